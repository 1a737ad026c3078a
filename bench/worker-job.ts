/**
 * One worker's share of a multi-worker benchmark: attach, wait at the gate, run `ops`
 * operations of the workload, report time and lock waits.
 * - W0: fixed-size alloc+free pairs of one page;
 * - W1: random sizes 1..4096 (pageSize 1), about `live` areas of this worker's own.
 */
import { parentPort, workerData } from "node:worker_threads";
import { VmapSpace } from "../src/index.ts";
import { xorshift32 } from "../test/support/xorshift.ts";

const { handle, control, workload, ops, live, seed } = workerData as {
	handle: { buffer: SharedArrayBuffer };
	control: SharedArrayBuffer;
	workload: "W0" | "W1";
	ops: number;
	live: number;
	seed: number;
};
const space = VmapSpace.attach(handle);
const gate = new Int32Array(control);
const rnd = xorshift32(seed);
const hs = new Float64Array(live + 200);
let n = 0;
if (workload === "W1") while (n < live) hs[n++] = space.alloc(1 + (rnd() % 4096));
Atomics.add(gate, 1, 1); // ready
Atomics.wait(gate, 0, 0);
const t0 = performance.now();
if (workload === "W0") {
	const size = space.pageSize;
	for (let i = 0; i < ops; i++) space.free(space.alloc(size));
} else {
	for (let i = 0; i < ops; i++) {
		if (n <= live - 100) hs[n++] = space.alloc(1 + (rnd() % 4096));
		else if (n >= live + 100 || rnd() & 1) {
			const k = rnd() % n;
			space.free(hs[k]!);
			hs[k] = hs[--n]!;
		} else hs[n++] = space.alloc(1 + (rnd() % 4096));
	}
}
const ms = performance.now() - t0;
const lockWaitMs = space.lockWaitMs;
space.close();
parentPort!.postMessage({ ops, ms, lockWaitMs });
