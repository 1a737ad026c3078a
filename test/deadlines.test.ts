/**
 * Every lock wait has the deadline timeoutMs, the inner locks of the lock order included: a
 * call that waits for an inner lock while holding an outer one gives up with ETIMEDOUT naming
 * the holder, releases what it held and changes nothing (dump() before and after agree); a
 * purge that times out between its steps hands its batch to the next purge, which finishes it.
 *
 * The holder here is a second handle of the same space in this thread: it takes lock words
 * and keeps them while the first handle's call waits (Atomics.wait, the real path) until its
 * deadline, then lets go. No assertion depends on the machine's speed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VmapError, VmapHeap, VmapSpace } from "../src/index.ts";
import { H_RCU_LOCK } from "../src/heap/layout.ts";
import { HDR_FREE_LOCK, HDR_PURGE_LOCK } from "../src/buffer/layout.ts";
import { N_BUSY_LOCK, N_LAZY_LOCK, N_POOL_LOCK, nodeBase } from "../src/buffer/node-layout.ts";

const P = 4096;
const MS = 50;

function spaces(nodes: number, flush?: (start: number, end: number) => void): { space: VmapSpace; other: VmapSpace } {
	const space = VmapSpace.create({ size: 1 << 24, pageSize: P, nodes, timeoutMs: MS, ...(flush ? { flush } : {}) });
	const other = VmapSpace.attach(space.handle, { timeoutMs: MS, ...(flush ? { flush } : {}) });
	return { space, other };
}

/** Every node's lock of `kind` (N_BUSY_LOCK, N_LAZY_LOCK, N_POOL_LOCK). */
function nodeLocks(space: VmapSpace, kind: number): number[] {
	return Array.from({ length: space.nodes }, (_, v) => nodeBase(v) + kind);
}

/** Run `fn` while `other` holds `words`; they are released whatever happens. */
function holding<T>(other: VmapSpace, words: number[], fn: () => T): T {
	for (const w of words) other.locks.acquire(w);
	try {
		return fn();
	} finally {
		for (const w of words.reverse()) other.locks.release(w);
	}
}

function timedOut(other: VmapSpace, lock: RegExp) {
	return (e: unknown) =>
		e instanceof VmapError && e.code === "ETIMEDOUT" && lock.test(e.message) && e.message.includes(`held by handle ${other.id}`);
}

/** No lock of the space is held by anyone. */
function allFree(space: VmapSpace): void {
	const words = [
		HDR_FREE_LOCK,
		HDR_PURGE_LOCK,
		...nodeLocks(space, N_BUSY_LOCK),
		...nodeLocks(space, N_LAZY_LOCK),
		...nodeLocks(space, N_POOL_LOCK),
	];
	for (const w of words) {
		assert.equal(space.locks.owner(w), 0, `lock word ${w} is still held`);
		assert.equal(Atomics.load(space.table.hdr, w) & 1, 0, `lock word ${w} is odd (held, or released twice)`);
	}
}

test("deadlines: alloc() waiting for a busy lock under the free-space lock gives up, releases it and changes nothing", () => {
	const { space, other } = spaces(2);
	space.alloc(3 * P);
	const before = space.dump();
	assert.throws(() => holding(other, nodeLocks(space, N_BUSY_LOCK), () => space.alloc(P)), timedOut(other, /node \d's busy lock/));
	allFree(space);
	assert.deepEqual(space.dump(), before);
	space.check();
	assert.equal(space.alloc(P), 3 * P + space.start);
});

test("deadlines: alloc() from a node pool waiting for a busy lock under the pool lock gives up; the area stays pooled", () => {
	const { space, other } = spaces(2);
	const a = space.alloc(P);
	space.free(a);
	space.purge({ sync: true });
	assert.equal(space.stats().poolAreas, 1);
	const before = space.dump();
	assert.throws(() => holding(other, nodeLocks(space, N_BUSY_LOCK), () => space.alloc(P)), timedOut(other, /node \d's busy lock/));
	allFree(space);
	assert.deepEqual(space.dump(), before);
	assert.equal(space.stats().poolAreas, 1);
	space.check();
	assert.equal(space.alloc(P), a, "the pooled area is handed out once the lock is free");
});

test("deadlines: free() and a shrinking resize() waiting for a lazy lock under the busy lock give up; the area stays busy", () => {
	const { space, other } = spaces(2);
	const a = space.alloc(4 * P);
	const before = space.dump();
	assert.throws(() => holding(other, nodeLocks(space, N_LAZY_LOCK), () => space.free(a)), timedOut(other, /node \d's lazy lock/));
	assert.throws(() => holding(other, nodeLocks(space, N_LAZY_LOCK), () => space.resize(a, P)), timedOut(other, /node \d's lazy lock/));
	allFree(space);
	assert.deepEqual(space.dump(), before);
	assert.equal(space.find(a)?.state, "busy");
	space.check();
	space.free(a);
	assert.equal(space.find(a)?.state, "lazy");
});

test("deadlines: dump(), check() and vmallocinfo() waiting for a lock give up and change nothing", () => {
	const { space, other } = spaces(2);
	space.alloc(P);
	const before = space.dump();
	for (const call of [() => space.dump(), () => space.check(), () => space.vmallocinfo()]) {
		assert.throws(() => holding(other, nodeLocks(space, N_LAZY_LOCK).slice(1), call), timedOut(other, /node 1's lazy lock/));
		allFree(space);
	}
	assert.deepEqual(space.dump(), before);
});

test("deadlines: find() and free() of a lazy or unknown address waiting for a node's lock give up, release what they held and change nothing", () => {
	const { space, other } = spaces(2);
	const a = space.alloc(P, {});
	space.alloc(P, {});
	space.free(a);
	const before = space.dump();
	for (const call of [() => space.find(a), () => space.free(a), () => space.free(space.start + 64 * P)]) {
		for (const kind of [N_LAZY_LOCK, N_POOL_LOCK]) {
			assert.throws(() => holding(other, nodeLocks(space, kind), call), timedOut(other, /node \d's (lazy|pool) lock/));
			allFree(space);
		}
	}
	assert.deepEqual(space.dump(), before);
	assert.equal(space.find(a)?.state, "lazy", "the space works afterwards");
	space.check();
});

test("deadlines: a purge whose detach times out half-way hands its batch over; the next purge flushes it again and purges everything", () => {
	const flushes: Array<[number, number]> = [];
	const { space, other } = spaces(2, (start, end) => void flushes.push([start, end]));
	// Lazy areas in both nodes' lazy trees: handle 1 allocates for node 0, handle 2 for node 1.
	const mine = [space.alloc(P), space.alloc(2 * P)];
	const theirs = [other.alloc(P), other.alloc(2 * P)];
	for (const a of mine) space.free(a);
	for (const a of theirs) other.free(a);
	const lazy = space.stats().lazyAreas;
	assert.equal(lazy, 4);
	// Node 0 is detached, node 1's lazy lock is held: the purge stops between the two.
	assert.throws(
		() => holding(other, [nodeBase(1) + N_LAZY_LOCK], () => space.purge({ sync: true })),
		(e: unknown) => e instanceof VmapError && e.code === "ETIMEDOUT" && /purge stopped.*node 1's lazy lock/.test(e.message),
	);
	allFree(space);
	assert.equal(flushes.length, 0, "the half-detached batch was not flushed");
	space.check();
	for (const a of [...mine, ...theirs]) assert.equal(space.find(a)?.state, "lazy", "every area stays lazy");
	const r = other.purge({ sync: true });
	assert.equal(r.status, "done");
	assert.equal(space.stats().lazyAreas, 0);
	assert.equal(flushes.length, 1, "one flush covers the adopted batch and the lazy trees");
	space.check();
});

test("deadlines: a purge whose node step times out after the flush hands its batch over; the next purge flushes it again", () => {
	const flushes: Array<[number, number]> = [];
	const { space, other } = spaces(1, (start, end) => void flushes.push([start, end]));
	const a = space.alloc(P);
	const b = space.alloc(P);
	space.free(a);
	assert.throws(
		() => holding(other, [HDR_FREE_LOCK], () => space.purge({ sync: true })),
		(e: unknown) => e instanceof VmapError && e.code === "ETIMEDOUT" && /purge stopped.*the free-space lock/.test(e.message),
	);
	allFree(space);
	assert.equal(flushes.length, 1);
	assert.equal(space.find(a)?.state, "lazy");
	space.check();
	space.free(b);
	space.purge({ sync: true });
	assert.deepEqual(flushes[1], [a, b + P], "the adopted batch's range is flushed again with the new lazy area");
	assert.equal(space.stats().lazyAreas, 0);
	space.check();
	assert.equal(space.alloc(2 * P), a, "the space is whole again");
});

test("deadlines: a heap's freeDeferred() waiting for the grace-period ring's lock gives up; the area stays live and freeable", () => {
	const heap = VmapHeap.create({ size: 1 << 22, pageSize: P, timeoutMs: MS });
	const other = VmapHeap.attach(heap.handle, { timeoutMs: MS });
	const p = heap.vmalloc(100, { tag: "mine" });
	const ring = other.space.extension().base + H_RCU_LOCK;
	const before = heap.space.dump();
	assert.throws(() => holding(other.space, [ring], () => heap.freeDeferred(p)), timedOut(other.space, /the heap's lock/));
	assert.deepEqual(heap.space.dump(), before);
	assert.equal(heap.space.find(p)?.tag, "mine");
	heap.check();
	heap.vfree(p);
	heap.check();
});

test("lockWaits(): the time a handle waited, by lock, named as errors name it; a handle that never waited has none", () => {
	const { space, other } = spaces(2);
	assert.deepEqual(space.lockWaits(), []);
	space.alloc(P);
	assert.deepEqual(space.lockWaits(), [], "an acquire that found its lock free counts nothing");
	assert.throws(() => holding(other, [HDR_FREE_LOCK], () => space.alloc(P)), timedOut(other, /the free-space lock/));
	assert.throws(() => holding(other, nodeLocks(space, N_BUSY_LOCK), () => space.alloc(P)), timedOut(other, /node \d's busy lock/));
	const waits = space.lockWaits();
	assert.deepEqual(waits.map((w) => w.lock).sort(), ["node 0's busy lock", "the free-space lock"], JSON.stringify(waits));
	for (const w of waits) assert.ok(w.ms >= MS * 0.9, `${w.lock}: ${w.ms} ms, the deadline was ${MS} ms`);
	assert.ok(waits[0]!.ms >= waits[1]!.ms, "the longest first");
	assert.ok(Math.abs(waits[0]!.ms + waits[1]!.ms - space.lockWaitMs) < 1e-6, "they add up to lockWaitMs");
	assert.deepEqual(other.lockWaits(), []);
});
