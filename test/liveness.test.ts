/**
 * Liveness with real workers: a worker that is slow, busy or paused never makes another fail
 * or take it for dead; a worker's end is known only when it is observed (watch(), exited());
 * a wait that has a deadline ends in ETIMEDOUT naming the holder, having changed nothing.
 * No assertion here depends on the machine's speed.
 */
import assert from "node:assert/strict";
import type { Worker } from "node:worker_threads";
import { test } from "node:test";
import { VmapError, VmapHeap, VmapSpace } from "../src/index.ts";
import { HDR_EXT_OFFSET, HDR_FREE_LOCK } from "../src/buffer/layout.ts";
import { H_RCU_LOCK } from "../src/heap/layout.ts";
import { CONTROL_BYTES, openGate, PROGRESS } from "../harness/gate.ts";
import { reportOf, startWorker, waitUntil } from "../harness/workers.ts";
import { longWait } from "../src/util/report.ts";

const P = 4096;

/** Start a slow-worker.ts in `mode`, release it, and wait (without blocking) until its slow part has begun. */
async function slowWorker(
	mode: string,
	handle: object,
	extra: Record<string, unknown> = {},
): Promise<{ worker: Worker; id: number; token: string; control: Int32Array; done: Promise<{ status: string }> }> {
	const control = new SharedArrayBuffer(CONTROL_BYTES);
	const flag = new Int32Array(control);
	const worker = startWorker(new URL("./support/slow-worker.ts", import.meta.url), { mode, handle, control, ms: 0, areas: 0, ...extra });
	const messages: unknown[] = [];
	const waiters: Array<(m: unknown) => void> = [];
	const errors: unknown[] = [];
	worker.on("message", (m) => (waiters.length > 0 ? waiters.shift()!(m) : messages.push(m)));
	worker.on("error", (e) => errors.push(e));
	const next = () => new Promise<unknown>((resolve) => (messages.length > 0 ? resolve(messages.shift()) : waiters.push(resolve)));
	const hello = (await next()) as { id: number; token: string };
	const failed = new Promise<never>((_, reject) => worker.once("error", reject));
	failed.catch(() => {});
	await openGate(flag, 1, [failed]);
	if (mode !== "heap-idle") {
		while (Atomics.load(flag, PROGRESS) === 0) {
			if (errors.length > 0) throw errors[0];
			await new Promise((r) => setTimeout(r, 2));
		}
	}
	return { worker, id: hello.id, token: hello.token, control: flag, done: next() as Promise<{ status: string }> };
}

test("liveness: a synchronous flush hook that runs 1.5 s makes others wait, never declares its worker dead", async () => {
	const space = VmapSpace.create({ size: 1024 * P });
	const slow = await slowWorker("slow-flush", space.handle, { ms: 1500 });
	// The worker holds the purge mutex inside its flush: everything that needs no purge goes on.
	const a = space.alloc(4 * P);
	assert.equal(space.find(a + 1)?.state, "busy");
	space.free(a);
	space.stats();
	// A sync purge waits for the mutex for as long as the flush runs, then purges.
	const r = space.purge({ sync: true });
	assert.ok(["done", "empty"].includes(r.status), r.status);
	assert.deepEqual(await slow.done, { status: "done" });
	await slow.worker.terminate();
	space.check();
	assert.equal(space.stats().flushErrors, 0);
});

test("liveness: a worker whose asynchronous flush is pending while its thread is busy for 3 s makes a sync purge wait, never declares it dead", async () => {
	const space = VmapSpace.create({ size: 1 << 24 });
	const slow = await slowWorker("busy-async-flush", space.handle, { ms: 3000 });
	space.free(space.alloc(P));
	const r = space.purge({ sync: true }); // waits, holding nothing, for the worker's batch
	assert.equal(r.status, "done");
	assert.deepEqual(await slow.done, { status: "flushing" });
	await slow.worker.terminate();
	assert.equal(space.stats().lazyAreas, 0);
	space.check();
});

test("liveness: a purge queued behind this handle's own flushes is cancelled by close(): the flush is not called again", async () => {
	const settle: Array<() => void> = [];
	let flushes = 0;
	const flush = () => {
		flushes++;
		return new Promise<void>((r) => settle.push(r));
	};
	const space = VmapSpace.create({ size: 1 << 24 });
	const mine = VmapSpace.attach(space.handle, { flush });
	const inFlight = [];
	for (let i = 0; i < 4; i++) {
		mine.free(mine.alloc(P));
		inFlight.push(mine.purge());
	}
	assert.deepEqual(
		inFlight.map((r) => r.status),
		["flushing", "flushing", "flushing", "flushing"],
	);
	mine.free(mine.alloc(P));
	const queued = mine.purge({ sync: true });
	assert.equal(queued.status, "queued");
	mine.close();
	for (const r of settle) r();
	await queued.done;
	await Promise.all(inFlight.map((r) => r.done.catch(() => {})));
	assert.equal(flushes, 4, "the queued purge did not run after close()");
	// The batches close() handed over go to the next purge: everything lazy is purged.
	space.purge({ sync: true });
	assert.equal(space.stats().lazyAreas, 0);
	space.check();
});

test("liveness: a drain paused between slices while its thread busy-loops 2 s stalls nobody for good", async () => {
	const space = VmapSpace.create({ size: 1 << 30, lazyMaxPages: 4096 });
	const slow = await slowWorker("busy-drain", space.handle, { ms: 2000 });
	const r = space.purge({ sync: true }); // waits for the drain's mutex; the drain's thread is busy
	assert.ok(["done", "empty"].includes(r.status), r.status);
	assert.deepEqual(await slow.done, { status: "done" });
	await slow.worker.terminate();
	space.check();
});

test("liveness: dump() of 300 k areas in one worker holds no lock while it lists: another worker allocates and frees meanwhile", async () => {
	const space = VmapSpace.create({ size: 2 ** 40 });
	const slow = await slowWorker("long-dump", space.handle, { areas: 300_000 });
	// Pairs begun and finished while the dump runs (that no lock is held between its chunks is
	// listing.test.ts's deterministic test): this thread is not stalled for the whole listing.
	let during = 0;
	while (Atomics.load(slow.control, PROGRESS) === 1) {
		space.free(space.alloc(P));
		if (Atomics.load(slow.control, PROGRESS) === 1) during++;
	}
	console.log(`# ${during} alloc+free pairs finished during the worker's dump of 300 k areas`);
	assert.ok(during > 0, "no alloc+free pair finished during the dump");
	const done = await slow.done;
	assert.equal(done.status, "done");
	await slow.worker.terminate();
	space.check();
});

test("liveness: an unwatched worker terminated holding a lock is waited for; timeoutMs ends the wait with ETIMEDOUT naming it and changing nothing; exited() then recovers the lock", async () => {
	const space = VmapSpace.create({ size: 64 * P, timeoutMs: 200 });
	const slow = await slowWorker("hold-lock", space.handle);
	await slow.worker.terminate();
	assert.throws(
		() => space.alloc(P),
		(e: unknown) =>
			e instanceof VmapError &&
			e.code === "ETIMEDOUT" &&
			new RegExp(`the free-space lock, held by handle ${slow.id}; nothing was changed`).test(e.message),
	);
	assert.throws(() => space.alloc(P, { timeoutMs: 50 }), { code: "ETIMEDOUT" }); // per call
	assert.equal(space.stats().busyAreas, 0, "the failed allocations left no area behind");
	assert.equal(space.stats().freeBytes, 64 * P);
	assert.throws(
		() => space.alloc(P, { timeoutMs: -1 }),
		/EINVAL: Cannot alloc: timeoutMs must be a number of milliseconds, at least 0, or Infinity, got -1/,
	);
	assert.throws(() => space.purge({ sync: true, timeoutMs: Number.NaN }), /EINVAL: Cannot purge: timeoutMs must be/);
	space.exited(slow.token); // its critical section is undone and its lock released
	space.free(space.alloc(P));
	space.purge({ sync: true });
	space.check();
	assert.equal(space.stats().freeBytes, 64 * P);
});

test("liveness: a watched heap worker that exits holding nothing is taken offline: grace periods stop waiting for it, and its id is free again", async () => {
	const heap = VmapHeap.create({ size: 1 << 20 });
	const idle = await slowWorker("heap-idle", heap.handle);
	heap.watch(idle.worker);
	const p = heap.vmalloc(100);
	heap.freeDeferred(p);
	// Online and silent: a grace period cannot end while it lives.
	assert.throws(
		() => heap.synchronize(100),
		new RegExp(`ETIMEDOUT: A grace period did not end within 100 ms: handle\\(s\\) ${idle.id} passed no quiescent point`),
	);
	await idle.worker.terminate();
	await new Promise((r) => setImmediate(r)); // the "exit" event
	heap.synchronize(5000);
	assert.equal(heap.stats().deferredPending, 0, "the deferred free went through");
	const again = VmapSpace.attach({ buffer: heap.handle.buffer });
	assert.equal(again.id, idle.id, "the ended handle's id was given back");
	again.close();
	heap.check();
});

test("liveness: a heap handle whose asynchronous flush is pending calls synchronize() while another purges: both finish (no lock is held across the flush; a handle blocked on a batch is quiescent)", async () => {
	const heap = VmapHeap.create({ size: 1 << 20 });
	const a = await slowWorker("heap-flush-sync", heap.handle, { ms: 300 });
	heap.vfree(heap.vmalloc(100));
	heap.purge({ sync: true }); // waits for a's batch, which waits for a's synchronize(), which waits for us
	assert.deepEqual(await a.done, { status: "flushing" });
	await a.worker.terminate();
	assert.equal(heap.stats().lazyAreas, 0);
	heap.check();
});

test("liveness: a flush that never settles keeps its batch out of use and nothing else; sync purges end in ETIMEDOUT; close() hands the batch to the next purge", async () => {
	const flushed: Array<[number, number]> = [];
	const space = VmapSpace.create({ size: 1024 * P, timeoutMs: 300, flush: (a, b) => void flushed.push([a, b]) });
	const w = await slowWorker("stuck-flush", space.handle);
	assert.throws(() => space.purge({ sync: true }), /ETIMEDOUT: Waited 300 ms for purge batch 0, which handle 2 is still flushing/);
	const p = space.alloc(4 * P); // allocation, free, find, trim and try purges go on
	space.free(p);
	assert.equal(space.find(p)?.state, "lazy");
	space.trim();
	assert.equal(space.purge().status, "done");
	assert.equal(space.find(p), undefined);
	assert.equal(space.stats().lazyAreas, 1, "the stuck batch's area is still out of use");
	w.worker.postMessage("close");
	assert.deepEqual(await w.done, { status: "closed" });
	const r = space.purge({ sync: true });
	assert.equal(r.status, "done", "the handed-over batch was adopted");
	assert.equal(space.stats().lazyAreas, 0);
	assert.equal(flushed.length, 2, "our purge's flush, then the adopted batch's");
	await w.worker.terminate();
	space.check();
});

test("liveness: synchronize() takes a number of milliseconds or Infinity, nothing else", () => {
	const heap = VmapHeap.create({ size: 1 << 20 });
	for (const bad of [-1, Number.NaN, null, "50", [], {}]) {
		assert.throws(
			() => heap.synchronize(bad as number),
			/EINVAL: Cannot synchronize: timeoutMs must be a number of milliseconds, at least 0, or Infinity/,
			String(bad),
		);
	}
	heap.synchronize(0);
	heap.synchronize(Infinity);
});

test("liveness: watch() and exited() check their arguments", () => {
	const space = VmapSpace.create({ size: 64 * P });
	assert.throws(() => space.watch({} as never), /EINVAL: Cannot watch: worker must be a running worker_threads Worker/);
	assert.throws(() => space.exited(space.token), /EINVAL: Cannot mark a handle exited: the token must be another handle.s token/);
	assert.throws(() => space.exited(1 as never), /EINVAL/);
	assert.throws(() => VmapSpace.attach(space.handle, { timeoutMs: -5 }), /EINVAL: Cannot attach: timeoutMs/);
	assert.throws(() => VmapSpace.create({ size: 64 * P, timeoutMs: Number.NaN }), /EINVAL: Cannot create a space: timeoutMs/);
});

test("liveness: a reader that went offline() is back online at its next bytes() or view(): a deferred free then waits for it", () => {
	const heap = VmapHeap.create({ size: 1 << 20 });
	const reader = VmapHeap.attach(heap.handle);
	const p = heap.vmalloc(64);
	reader.offline();
	reader.bytes(p, 8); // reading again: online, inside a read-side section
	heap.freeDeferred(p);
	assert.throws(() => heap.synchronize(50), new RegExp(`ETIMEDOUT: .*handle\\(s\\) ${reader.space.id} passed no quiescent point`));
	assert.equal(heap.space.find(p)?.state, "busy", "not freed while the reader may still read it");
	reader.quiescent();
	heap.quiescent(); // the grace period has ended: the heap's next call frees what it released
	assert.equal(heap.space.find(p)?.state, "lazy", "freed after the reader's quiescent point");
	reader.close();
	heap.check();
});

test("liveness: `using` closes a handle at the end of its block, as close() does (its id is free again; the space goes on)", () => {
	const space = VmapSpace.create({ size: 1 << 24, pageSize: P });
	let id = 0;
	{
		using other = VmapSpace.attach(space.handle);
		id = other.id;
		other.free(other.alloc(P));
	}
	const again = VmapSpace.attach(space.handle);
	assert.equal(again.id, id, "the disposed handle's id was released");
	{
		using heap = VmapHeap.create({ size: 1 << 20, pageSize: P });
		heap.vfree(heap.vmalloc(10));
	}
	space.check();
});

test("liveness: the exit listener never blocks: a worker that ends while its end hooks' locks are held (here by this thread) is finished from a timer once they are free", async () => {
	const heap = VmapHeap.create({ size: 1 << 20 });
	const idle = await slowWorker("heap-idle", heap.handle);
	heap.watch(idle.worker);
	const p = heap.vmalloc(100);
	heap.freeDeferred(p);
	const rcuLock = heap.space.table.hdr[HDR_EXT_OFFSET]! + H_RCU_LOCK;
	heap.space.locks.acquire(rcuLock); // what the heap's end hook needs (the grace-period ring)
	await idle.worker.terminate();
	await new Promise((r) => setImmediate(r)); // the "exit" event: its listener returned, with the lock still ours
	assert.equal(heap.space.locks.owner(rcuLock), heap.space.id);
	heap.space.locks.release(rcuLock);
	await new Promise((r) => setTimeout(r, 20)); // the hooks' timer
	heap.synchronize(5000);
	assert.equal(heap.stats().deferredPending, 0, "the ended handle was taken offline: the grace period ended");
	heap.check();
});

test("liveness: a thread back in its event loop holds up no grace period: its handle goes offline at the end of the turn; a readLock() section keeps it online across turns", async () => {
	const heap = VmapHeap.create({ size: 64 * P });
	const idle = VmapHeap.attach(heap.handle);
	const a = heap.vmalloc(P);
	idle.bytes(a, 8); // a reader: online, in this turn only
	heap.freeDeferred(a);
	await heap.synchronizeAsync(5000); // before: ETIMEDOUT, the idle handle held it up for ever
	assert.notEqual(heap.space.find(a)?.state, "busy", "freed after its grace period");

	const b = heap.vmalloc(P);
	idle.readLock();
	idle.readLock(); // nests
	idle.bytes(b, 8);
	heap.freeDeferred(b);
	await assert.rejects(
		heap.synchronizeAsync(300),
		(e: unknown) => e instanceof VmapError && e.code === "ETIMEDOUT" && /handle\(s\) 2 passed no quiescent point/.test(e.message),
	);
	idle.readUnlock();
	await assert.rejects(heap.synchronizeAsync(300), { code: "ETIMEDOUT" }, "one section still open");
	idle.readUnlock();
	await heap.synchronizeAsync(5000);
	assert.notEqual(heap.space.find(b)?.state, "busy");
	assert.throws(() => idle.readUnlock(), /EINVAL: Cannot readUnlock: no readLock\(\) section is open on this handle/);
	heap.check();
});

test("liveness: a wait on other handles without a deadline warns once when it lasts long (10 s; shortened here), naming the handle and the fix", async () => {
	const saved = longWait.longMs;
	longWait.longMs = 50;
	const warnings: string[] = [];
	const onWarning = (w: Error) => warnings.push(w.message);
	process.on("warning", onWarning);
	try {
		const heap = VmapHeap.create({ size: 64 * P });
		const reader = VmapHeap.attach(heap.handle);
		reader.readLock();
		const a = heap.vmalloc(P);
		heap.freeDeferred(a);
		const done = heap.synchronizeAsync(); // no timeout
		await new Promise((r) => setTimeout(r, 300));
		reader.readUnlock();
		await done;
		await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
		const mine = warnings.filter((m) => m.includes("grace period"));
		assert.equal(mine.length, 1, `warned once: ${warnings.join(" | ")}`);
		assert.match(
			mine[0]!,
			/synchronize\(\) has waited 0.05 s for a grace period, and waits on \(no timeoutMs\): handle\(s\) 2 passed no quiescent point\. .*readUnlock\(\)/,
		);
		heap.close();
	} finally {
		longWait.longMs = saved;
		process.off("warning", onWarning);
	}
});

test("liveness: a lock wait without a deadline warns once when it lasts long, naming the lock, its holder and the fix", async () => {
	const space = VmapSpace.create({ size: 1 << 24, pageSize: P, smallMax: 0 });
	const holder = VmapSpace.attach(space.handle);
	const control = new SharedArrayBuffer(CONTROL_BYTES);
	holder.locks.acquire(HDR_FREE_LOCK);
	const w = startWorker(new URL("../harness/lock-waiter.ts", import.meta.url), {
		handle: space.handle,
		control,
		longMs: 50,
		size: 4 * P,
	});
	const report = reportOf<{ addr: number; warnings: string[]; id: number }>(w);
	space.watch(w);
	try {
		const word = new Int32Array(control);
		await waitUntil("the waiter to start waiting", () => Atomics.load(word, 0) === 1, [report]);
		await new Promise((r) => setTimeout(r, 400)); // the waiter blocks on the lock meanwhile
		holder.locks.release(HDR_FREE_LOCK);
		const r = await report;
		const mine = r.warnings.filter((m) => m.includes("has waited"));
		assert.equal(mine.length, 1, `warned once: ${r.warnings.join(" | ")}`);
		assert.match(
			mine[0]!,
			new RegExp(
				`^vmalloc: handle ${r.id} has waited 0.05 s for the free-space lock, held by handle ${holder.id}, and waits on \\(no timeoutMs\\)\\. .*watch\\(worker\\).*timeoutMs bounds the wait`,
			),
		);
		assert.equal(space.find(r.addr)?.tag, "waiter", "the wait ended in the allocation once the lock was free");
	} finally {
		await w.terminate();
	}
	holder.close();
	space.check();
});
