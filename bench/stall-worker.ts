/**
 * The other worker of the lookups case (bench/lookups.ts): alloc+free pairs on the locked path
 * until told to stop, keeping the longest gap between two pairs for each phase the parent
 * announces, and the longest wait for a lock within one pair. It gives its event loop a turn every 64 pairs, as a real worker would, so that
 * its space's drain runs (bounded slices) instead of the free path's priority purge. Control words: [0] the phase (-1: stop), [1] pairs done; then two Float64s per
 * phase: the worst gap and the worst lock wait (ms). In the last phase (FLOOR) it only reads
 * the clock: no allocator, no event loop, so its gap is the machine's.
 */
import { workerData } from "node:worker_threads";
import { VmapSpace } from "../src/index.ts";
import { PHASES, type StallJob } from "./stall-protocol.ts";

const job = workerData as StallJob;
const words = new Int32Array(job.control);
const gaps = new Float64Array(job.control, 8);
const space = VmapSpace.attach(job.handle);
const P = space.pageSize;
let last = performance.now();
let pairs = 0;
const FLOOR = PHASES.indexOf("floor");
for (;;) {
	const phase = Atomics.load(words, 0);
	if (phase < 0) break;
	if (phase === FLOOR) {
		const now = performance.now();
		if (now - last > gaps[2 * phase]!) gaps[2 * phase] = now - last;
		last = now;
		continue;
	}
	// Sizes of 1..4 pages, with options: the node pools, busy and lazy locks, the free-space lock.
	const waited = space.lockWaitMs;
	space.free(space.alloc(P * (1 + (pairs & 3)), {}));
	const now = performance.now();
	if (now - last > gaps[2 * phase]!) gaps[2 * phase] = now - last;
	const wait = space.lockWaitMs - waited;
	if (wait > gaps[2 * phase + 1]!) gaps[2 * phase + 1] = wait;
	last = now;
	if ((++pairs & 63) === 0) {
		Atomics.store(words, 1, pairs);
		await new Promise((r) => setImmediate(r)); // a turn of the event loop: the space's drain purges there
	}
}
Atomics.store(words, 1, pairs);
space.close();
