/**
 * A worker that is slow, busy or silent in one of the ways that must never break the others
 * (the liveness tests). It reports progress in the control words after the gate's: PROGRESS
 * is set to 1 when the slow part has begun. Modes:
 * - "slow-flush": a synchronous flush hook that burns `ms` of CPU, run by purge({ sync: true });
 * - "busy-drain": frees past lazyMaxPages, lets the scheduled drain take its first slice, then
 *   busy-loops `ms` without yielding (the drain stays between slices);
 * - "long-dump": allocates `areas` areas, then dump()s them; PROGRESS is 1 during the dump, 2 after;
 * - "hold-lock": takes the free-space lock and never lets go (the test terminates it);
 * - "heap-idle": attaches to a heap and waits, holding nothing (the test terminates it);
 * - "heap-flush-sync": a heap handle whose asynchronous flush (settling after `ms`, on this
 *   thread's event loop) is pending calls synchronize(), blocking that event loop;
 * - "busy-async-flush": frees, purges with an asynchronous flush, then keeps its thread busy for
 *   `ms` (the flush cannot settle meanwhile), then reports the purge's status;
 * - "stuck-flush": a flush whose promise never settles; then closes on message "close".
 */
import { parentPort, workerData } from "node:worker_threads";
import { VmapHeap, VmapSpace } from "../../src/index.ts";
import { HDR_FREE_LOCK } from "../../src/buffer/layout.ts";
import { PROGRESS, waitAtGate } from "../../harness/gate.ts";

const job = workerData as {
	mode: string;
	handle: { buffer: SharedArrayBuffer; data?: SharedArrayBuffer };
	control: SharedArrayBuffer;
	ms: number;
	areas: number;
};
const control = new Int32Array(job.control);
const burn = (ms: number) => {
	const until = performance.now() + ms;
	while (performance.now() < until);
};
const begun = () => {
	Atomics.store(control, PROGRESS, 1);
	Atomics.notify(control, PROGRESS);
};

if (job.mode === "heap-idle") {
	const heap = VmapHeap.attach(job.handle as { buffer: SharedArrayBuffer; data: SharedArrayBuffer });
	parentPort!.postMessage({ id: heap.space.id, token: heap.space.token });
	waitAtGate(control);
	for (;;) Atomics.wait(control, PROGRESS, 0, 1000);
}

if (job.mode === "heap-flush-sync") {
	const heap = VmapHeap.attach(job.handle as { buffer: SharedArrayBuffer; data: SharedArrayBuffer }, {
		flush: () => new Promise<void>((r) => setTimeout(r, job.ms)),
	});
	parentPort!.postMessage({ id: heap.space.id, token: heap.space.token });
	waitAtGate(control);
	heap.vfree(heap.vmalloc(100));
	const r = heap.space.purge();
	begun();
	heap.synchronize(60_000); // blocks this thread: its own flush cannot settle meanwhile
	await r.done;
	heap.close();
	parentPort!.postMessage({ status: r.status });
	await new Promise(() => {}); // done: the worker ends here
}

if (job.mode === "busy-async-flush") {
	const space = VmapSpace.attach(job.handle, { flush: () => new Promise<void>((r) => setTimeout(r, 1)) });
	parentPort!.postMessage({ id: space.id, token: space.token });
	waitAtGate(control);
	space.free(space.alloc(space.pageSize));
	const r = space.purge();
	begun();
	burn(job.ms); // busy: the flush's timer cannot fire, its batch stays in flight meanwhile
	await r.done;
	space.close();
	parentPort!.postMessage({ status: r.status });
	await new Promise(() => {});
}

const stuck = () => new Promise<void>(() => {});
const space = VmapSpace.attach(
	job.handle,
	job.mode === "slow-flush"
		? {
				flush: () => {
					begun();
					burn(job.ms);
				},
			}
		: job.mode === "stuck-flush"
			? { flush: stuck }
			: {},
);
const P = space.pageSize;
parentPort!.postMessage({ id: space.id, token: space.token });
waitAtGate(control);
if (job.mode === "slow-flush") {
	space.free(space.alloc(P));
	const r = space.purge({ sync: true });
	parentPort!.postMessage({ status: r.status });
} else if (job.mode === "busy-drain") {
	const lazyMax = space.stats().lazyMaxPages;
	const live: number[] = [];
	for (let i = 0; i <= lazyMax; i++) live.push(space.alloc(P));
	for (const a of live) space.free(a); // past lazyMaxPages, under twice it: a drain is scheduled
	setImmediate(() => {
		// The drain ran its first slice in the check phase before us.
		begun();
		burn(job.ms);
		// Report once the drain is done: terminating a worker inside a purge step would leave
		// its locks held by a handle nobody watches.
		const whenDrained = () => (space.stats().lazyAreas === 0 ? parentPort!.postMessage({ status: "done" }) : setImmediate(whenDrained));
		whenDrained();
	});
} else if (job.mode === "long-dump") {
	for (let i = 0; i < job.areas; i++) space.alloc(P);
	begun();
	const json = JSON.stringify(space.dump());
	Atomics.store(control, PROGRESS, 2);
	parentPort!.postMessage({ status: "done", bytes: json.length });
} else if (job.mode === "stuck-flush") {
	space.free(space.alloc(P));
	parentPort!.once("message", () => {
		space.close(); // hands the stuck batch over
		parentPort!.postMessage({ status: "closed" });
	});
	const r = space.purge();
	if (r.status !== "flushing") throw new Error(`stuck-flush: ${r.status}`);
	begun();
} else if (job.mode === "hold-lock") {
	space.locks.acquire(HDR_FREE_LOCK);
	begun();
	for (;;) Atomics.wait(control, PROGRESS, 1, 1000);
}
