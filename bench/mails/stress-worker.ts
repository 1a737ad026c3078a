/**
 * The stress load of the priority-threshold bench (priority-threshold.ts) for one worker: random allocations of 1..16 pages and frees, up to
 * `maxLive` live, `ops` operations, never yielding; samples vmapLazyNr for its peak and counts
 * the allocations that failed (EBUSY).
 */
import { parentPort, workerData } from "node:worker_threads";
import { VmapSpace } from "../../src/index.ts";
import { xorshift32 } from "../../harness/random.ts";

const { handle, control, ops, maxLive, seed } = workerData as {
	handle: { buffer: SharedArrayBuffer };
	control: SharedArrayBuffer;
	ops: number;
	maxLive: number;
	seed: number;
};
const space = VmapSpace.attach(handle);
const gate = new Int32Array(control);
const next = xorshift32(seed);
const rnd = (n: number) => next() % n;
const live: number[] = [];
let failed = 0;
let peak = 0;
Atomics.add(gate, 1, 1);
Atomics.wait(gate, 0, 0);
const t0 = performance.now();
for (let i = 0; i < ops; i++) {
	if (live.length > 0 && (live.length >= maxLive || rnd(2) === 0)) {
		const k = rnd(live.length);
		space.free(live[k]!);
		live[k] = live[live.length - 1]!;
		live.pop();
	} else {
		try {
			live.push(space.alloc(space.pageSize * (1 + rnd(16))));
		} catch (e) {
			if ((e as { code?: string }).code !== "EBUSY") throw e;
			failed++;
		}
	}
	if ((i & 63) === 0) peak = Math.max(peak, space.stats().vmapLazyNr);
}
const ms = performance.now() - t0;
for (const a of live) space.free(a);
space.close();
parentPort!.postMessage({ ops, failed, peak, ms });
