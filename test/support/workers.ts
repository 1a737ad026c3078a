import { Worker } from "node:worker_threads";

/**
 * A real worker_threads Worker running a TypeScript file of test/ (path relative to test/),
 * through the ts-worker.mjs bootstrap. `data` reaches the worker as workerData.
 */
export function startWorker(entry: string, data: Record<string, unknown>): Worker {
	const url = new URL(`../${entry.replace(/^\.\//, "")}`, import.meta.url);
	return new Worker(new URL("./ts-worker.mjs", import.meta.url), { workerData: { ...data, entry: url.href } });
}
