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

/**
 * How long a progress handshake waits before it calls the run hung. Not a speed claim: a live
 * run on a loaded 2-core machine makes the progress asked for in well under a second.
 */
export const HANG_MS = 30_000;

/**
 * A progress handshake: wait, without blocking the event loop, until `done()`; reject with a
 * worker's error if one of `reports` fails first, or naming `what` after HANG_MS.
 */
export async function waitUntil(what: string, done: () => boolean, reports: readonly Promise<unknown>[] = []): Promise<void> {
	let failed: { error: unknown } | undefined;
	for (const r of reports) r.catch((error: unknown) => (failed ??= { error }));
	const hang = performance.now() + HANG_MS;
	while (!done()) {
		if (failed !== undefined) throw failed.error;
		if (performance.now() > hang) throw new Error(`no progress in ${HANG_MS} ms: still waiting for ${what}`);
		await new Promise((r) => setTimeout(r, 5));
	}
}
