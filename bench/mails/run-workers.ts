/** Start TypeScript workers for the mail benches, release them together, collect their reports. */
import { reportOf, startWorker } from "../../harness/workers.ts";

export async function runWorkers<T>(
	entries: Array<{ entry: URL; data: Record<string, unknown> }>,
	control: SharedArrayBuffer,
): Promise<T[]> {
	const gate = new Int32Array(control);
	const ws = entries.map(({ entry, data }) => startWorker(entry, { ...data, control }));
	const reports = ws.map((w) => reportOf<T>(w));
	while (Atomics.load(gate, 1) < ws.length) await new Promise((r) => setTimeout(r, 5)); // all ready
	Atomics.store(gate, 0, 1);
	Atomics.notify(gate, 0);
	const out = await Promise.all(reports);
	await Promise.all(ws.map((w) => w.terminate()));
	return out;
}
