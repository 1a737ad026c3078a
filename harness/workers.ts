import { type Transferable, Worker } from "node:worker_threads";

/**
 * A real worker_threads Worker running the TypeScript file `entry` (a URL: `new URL("./x.ts",
 * import.meta.url)` from the caller), through the scripts/ts-worker.mjs bootstrap. `data` reaches the worker as workerData; `transfer`
 * lists what in it moves rather than copies (MessagePorts).
 */
export function startWorker(entry: URL, data: Record<string, unknown>, transfer: Transferable[] = []): Worker {
	return new Worker(new URL("../scripts/ts-worker.mjs", import.meta.url), {
		workerData: { ...data, entry: entry.href },
		transferList: transfer,
	});
}

/** The first message a worker posts (its report); rejects if it fails or exits first. */
export function reportOf<T>(w: Worker): Promise<T> {
	return new Promise((resolve, reject) => {
		w.once("message", resolve);
		w.once("error", reject);
		w.once("exit", (code) => reject(new Error(`worker exited with ${code} before reporting`)));
	});
}
