/**
 * A worker of the small-area churn test (small-churn.test.ts): rounds of fill-then-drain. Each
 * round it fills its outbox with `n` small areas of its own, then frees every area in the
 * previous worker's outbox (remote frees, each valid, none may throw), purging now and then so
 * that owners take remote frees in and retire emptied blocks while others still free into
 * them. Outbox k is `n` Float64 addresses at k * n of `areas`, its state in `state[k]`: 0
 * empty, 1 full. Reports what was thrown, if anything.
 */
import { parentPort, workerData } from "node:worker_threads";
import { VmapSpace } from "../../src/index.ts";
import { randomBelow } from "../../harness/random.ts";

const job = workerData as {
	handle: { buffer: SharedArrayBuffer };
	areas: SharedArrayBuffer;
	state: SharedArrayBuffer;
	k: number;
	workers: number;
	n: number;
	rounds: number;
	seed: number;
};
const space = VmapSpace.attach(job.handle, { timeoutMs: 30_000 });
const areas = new Float64Array(job.areas);
const state = new Int32Array(job.state);
const rnd = randomBelow(job.seed);
const P = space.pageSize;
const smallMax = space.stats().smallMax;
const from = (job.k + job.workers - 1) % job.workers;
const errors: string[] = [];
let frees = 0;

/** Wait for outbox `k` to be `value`, purging meanwhile: this owner takes in the frees others make into its blocks and retires those they empty, as they make them. */
function waitFor(k: number, value: number): void {
	while (Atomics.load(state, k) !== value) space.purge();
}

try {
	for (let round = 0; round < job.rounds; round++) {
		waitFor(job.k, 0);
		for (let i = 0; i < job.n; i++) areas[job.k * job.n + i] = space.alloc(P * (1 + rnd(smallMax / P)));
		Atomics.store(state, job.k, 1);
		Atomics.notify(state, job.k);
		waitFor(from, 1);
		for (let i = 0; i < job.n; i++) {
			space.free(areas[from * job.n + i]!);
			frees++;
			if (rnd(16) === 0) space.purge();
		}
		Atomics.store(state, from, 0);
		Atomics.notify(state, from);
		space.purge();
	}
	waitFor(job.k, 0);
	space.purge({ sync: true });
	space.check();
} catch (e) {
	errors.push(String(e));
}
space.close();
parentPort!.postMessage({ errors, frees });
