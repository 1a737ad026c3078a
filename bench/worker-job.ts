/**
 * One worker's share of a multi-worker benchmark: attach, wait at the gate, run `ops`
 * operations of the workload, then hold PROBE more areas (W0) or keep its live set (W1) and
 * post the ranges back so the parent checks them for overlap across all workers.
 * - W0: fixed-size alloc+free pairs (one page for vmap, 64 B for shared-memory-objects);
 * - W1: random sizes 1..4096 (vmap, pageSize 1), about `live` areas of this worker's own.
 */
import { parentPort, workerData } from "node:worker_threads";
import { VmapSpace } from "../src/index.ts";
import { xorshift32 } from "../harness/random.ts";
import { loadSmo } from "./peers/smo.ts";
import { Held, PROBE, workersSpace } from "./workloads.ts";

export interface WorkerJob {
	peer: "vmap" | "smo";
	/** vmap: the space's handle (null: create a private space); smo: the MemoryBuffer's SharedArrayBuffer. */
	handle: { buffer: SharedArrayBuffer } | null;
	/** vmap: nodes and the small-area cache of a private space. */
	nodes: number;
	cache: boolean;
	control: SharedArrayBuffer;
	workload: "W0" | "W1";
	ops: number;
	live: number;
	seed: number;
	/** Define the browser global `self` before shared-memory-objects runs (its lock reads it). */
	selfShim: boolean;
}

export interface WorkerReport {
	ops: number;
	ms: number;
	/** vmap only: time the timed loop spent waiting for lock words (shared-memory-objects keeps no such figure). */
	lockWaitMs: number | null;
	/** vmap only: that time by lock (VmapSpace.lockWaits()), milliseconds per lock name. */
	lockWaits: Record<string, number> | null;
	fails: number;
	/** Private spaces: overlaps among this worker's own ranges. */
	overlaps: number;
	addr: Float64Array;
	size: Float64Array;
}

interface Allocator {
	alloc(n: number): number;
	free(a: number): void;
}

const job = workerData as WorkerJob;
const gate = new Int32Array(job.control);
const rnd = xorshift32(job.seed);
let a: Allocator;
let lockWaitMs = (): number | null => null;
let lockWaits = (): Record<string, number> | null => null;
let close = () => {};
let unit: number;
if (job.peer === "vmap") {
	const space = job.handle !== null ? VmapSpace.attach(job.handle) : workersSpace(job.workload, job.nodes, job.cache);
	a = space;
	unit = space.pageSize;
	lockWaitMs = () => space.lockWaitMs;
	lockWaits = () => Object.fromEntries(space.lockWaits().map((w) => [w.lock, w.ms]));
	close = () => space.close();
} else {
	if (job.selfShim) (globalThis as { self?: unknown }).self = globalThis;
	const { MemoryBuffer } = await loadSmo();
	const pool = new MemoryBuffer({ buf: job.handle!.buffer, skipInitialization: true });
	a = { alloc: (n) => pool.malloc(n), free: (x) => void pool.free(x) };
	unit = 64;
}

const cap = job.workload === "W0" ? PROBE : job.live + 201;
const addr = new Float64Array(cap);
const size = new Float64Array(cap);
let n = 0;
let fails = 0;
const take = (s: number) => {
	const h = a.alloc(s);
	if (!h) fails++;
	else {
		addr[n] = h;
		size[n++] = s;
	}
};
if (job.workload === "W1") while (n < job.live && fails < job.live) take(1 + (rnd() % 4096));
Atomics.add(gate, 1, 1); // ready
Atomics.wait(gate, 0, 0);
const waitedBefore = lockWaitMs() ?? 0; // the fill's waits are not the timed loop's
const waitsBefore = lockWaits();
const t0 = performance.now();
if (job.workload === "W0") {
	for (let i = 0; i < job.ops; i++) {
		const h = a.alloc(unit);
		if (h) a.free(h);
		else fails++;
	}
} else {
	for (let i = 0; i < job.ops; i++) {
		if (n <= job.live - 100) take(1 + (rnd() % 4096));
		else if (n >= job.live + 100 || rnd() & 1) {
			const k = rnd() % n;
			a.free(addr[k]!);
			n--;
			addr[k] = addr[n]!;
			size[k] = size[n]!;
		} else take(1 + (rnd() % 4096));
	}
}
const ms = performance.now() - t0;
if (job.workload === "W0") for (let i = 0; i < PROBE; i++) take(unit);
let overlaps = 0;
if (job.handle === null) {
	const own = new Held(n);
	own.addr.set(addr.subarray(0, n));
	own.size.set(size.subarray(0, n));
	own.n = n;
	overlaps = own.overlaps(-Infinity, Infinity);
}
const waited = lockWaitMs();
const byLock = lockWaits();
if (byLock !== null) for (const [lock, ms] of Object.entries(waitsBefore ?? {})) byLock[lock] = byLock[lock]! - ms;
const report: WorkerReport = {
	ops: job.ops,
	ms,
	lockWaitMs: waited === null ? null : waited - waitedBefore,
	lockWaits: byLock,
	fails,
	overlaps,
	addr: addr.slice(0, n),
	size: size.slice(0, n),
};
// Closing frees no live area (its small-area blocks with live areas pass to nobody), and the
// parent terminates this worker once it has the report: close first, so that it never ends
// holding a lock. The parent checks the ranges against every other worker's.
close();
parentPort!.postMessage(report);
