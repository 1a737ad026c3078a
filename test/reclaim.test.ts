/**
 * An ended handle's areas (issue "a dead worker's areas are findable and can be freed"): every
 * area carries the id of the handle that allocated it (find(), dump(), vmallocinfo()), a token
 * names one handle for ever (exited() of an old token cannot end a newer handle with the same
 * id), and watch()/exited() with freeAreas free what the ended handle still held.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VmapHeap, VmapSpace } from "../src/index.ts";
import { reportOf, startWorker } from "../harness/workers.ts";

const P = 4096;

type Dumped = { areas: Array<{ start: number; state: string; owner?: number; tag?: string }> };
const busyOf = (d: Dumped, owner: number) => d.areas.filter((a) => a.state === "busy" && a.owner === owner).map((a) => a.start);

test("reclaim: each area names the handle that allocated it, in find(), dump() and vmallocinfo()", () => {
	const a = VmapSpace.create({ size: 256 * P, smallMax: 2 * P });
	const b = VmapSpace.attach(a.handle);
	const x = a.alloc(3 * P, { tag: "x" });
	const y = b.alloc(5 * P);
	const small = b.alloc(P);
	assert.deepEqual([a.find(x)?.owner, a.find(y)?.owner, a.find(small)?.owner], [a.id, b.id, b.id]);
	b.free(y);
	assert.equal(a.find(y)?.owner, b.id, "a lazy area keeps it");
	const d = a.dump() as Dumped;
	assert.ok(busyOf(d, a.id).includes(x));
	assert.match(a.vmallocinfo(), new RegExp(`^0x0*${x.toString(16)}-\\S+ +12288 handle=${a.id} x$`, "m"));
	assert.match(a.vmallocinfo(), new RegExp(` handle=${b.id} vmap_block$`, "m"), "the block of b's small area is b's");
	a.check();
});

test("reclaim: a token names one handle for ever: exited() of a closed handle's token leaves the newer handle with its id alone", () => {
	const a = VmapSpace.create({ size: 256 * P, smallMax: 0 });
	const old = VmapSpace.attach(a.handle);
	const token = old.token;
	old.close();
	const young = VmapSpace.attach(a.handle);
	assert.equal(young.id, old.id, "the id is reused");
	assert.notEqual(young.token, token);
	const mine = young.alloc(2 * P);
	a.exited(token, { freeAreas: true }); // before: exited(id) ended the newer handle and freed its areas
	assert.equal(a.find(mine)?.state, "busy");
	young.free(mine);
	young.check();
	assert.throws(
		() => a.exited("7" as string),
		/EINVAL: Cannot mark a handle exited: the token must be another handle's token \("id\.generation", space\.token\), got "7"/,
	);
	assert.throws(() => a.exited(a.token), /EINVAL/, "its own");
	assert.throws(
		() => a.exited(young.token, { freeAreas: 1 as never }),
		/EINVAL: Cannot mark a handle exited: freeAreas must be true or false, got 1/,
	);
	assert.throws(
		() => a.watch({ threadId: 1, once() {} } as never, { freeAreas: "yes" as never }),
		/EINVAL: Cannot watch: freeAreas must be true or false/,
	);
});

test("reclaim: exited(token, { freeAreas }) frees every area the ended handle held, small and large, and nobody else's", () => {
	for (const freeAreas of [false, true]) {
		const a = VmapSpace.create({ size: 1024 * P, smallMax: 2 * P, lazyMaxPages: 4096 });
		const victim = VmapSpace.attach(a.handle);
		const other = VmapSpace.attach(a.handle);
		const theirs = [other.alloc(P), other.alloc(7 * P, { tag: "t" })];
		const held = [victim.alloc(P), victim.alloc(P), victim.alloc(2 * P), victim.alloc(7 * P), victim.alloc(9 * P, { tag: "t" })];
		const handed = victim.alloc(P);
		other.free(handed); // a remote free before the end: not freed twice
		victim.free(victim.alloc(3 * P)); // lazy already
		const id = victim.id;
		a.exited(victim.token, { freeAreas });
		a.check();
		for (const x of theirs) assert.equal(a.find(x)?.state, "busy", `another handle's area ${x}`);
		for (const x of held) assert.equal(a.find(x)?.state, freeAreas ? "lazy" : "busy", `freeAreas ${freeAreas}: area ${x}`);
		assert.deepEqual(busyOf(a.dump() as Dumped, id).length === 0, freeAreas);
		for (const x of theirs) other.free(x);
		if (!freeAreas) for (const x of held) a.free(x);
		a.purge({ sync: true });
		a.trim();
		a.check();
		const s = a.stats();
		assert.deepEqual([s.busyAreas - s.smallBlocks, s.lazyAreas], [0, 0], `freeAreas ${freeAreas}: only the blocks still busy`);
	}
});

test("reclaim: areas queued by freeDeferred are left to their grace period, small and large", () => {
	const heap = VmapHeap.create({ size: 4 << 20 });
	const victim = VmapHeap.attach(heap.handle);
	const queued = [victim.vmalloc(9 * P), victim.vmalloc(100)];
	for (const q of queued) victim.freeDeferred(q);
	const plain = [victim.vmalloc(9 * P), victim.vmalloc(100)];
	heap.exited(victim.space.token, { freeAreas: true });
	for (const q of queued)
		assert.deepEqual([heap.space.find(q)?.state, heap.space.find(q)?.tag], ["busy", "vfree_deferred"], `queued ${q}`);
	for (const a of plain) assert.equal(heap.space.find(a)?.state, "lazy", `plain ${a}`);
	heap.synchronize(10_000);
	for (const q of queued) assert.equal(heap.space.find(q)?.state, "lazy", `queued ${q}, after its grace period`);
	heap.check();
});

test("reclaim: a heap's worker terminated holding areas of every kind: watch(worker, { freeAreas }) frees them, as vfree() and vmUnmapRam() would, and leaves the deferred free to its grace period", async () => {
	const heap = VmapHeap.create({ size: 16 << 20, maxSize: 64 << 20, poison: true });
	heap.offline();
	const w = startWorker(new URL("./support/holder-worker.ts", import.meta.url), { handle: heap.handle });
	const errors: unknown[] = [];
	heap.watch(w, { freeAreas: true, onError: (e) => errors.push(e) });
	const r = await reportOf<{ id: number; token: string; held: number[]; mapped: number[]; deferred: number }>(w);
	const before = heap.space.dump() as Dumped;
	assert.ok(busyOf(before, r.id).length >= 4, "its areas carry its id");
	await w.terminate();
	await new Promise((res) => setTimeout(res, 20)); // an end hook put off by a busy lock runs from a timer
	assert.deepEqual(errors, []);
	const after = heap.space.dump() as Dumped;
	const left = after.areas.filter((a) => a.state === "busy" && a.owner === r.id && a.start !== r.deferred);
	assert.deepEqual(left, [], "nothing but the area queued for a grace period (if that has not ended yet)");
	for (const a of [...r.held, ...r.mapped]) assert.notEqual(heap.space.find(a)?.state, "busy", `${a} was freed`);
	assert.equal(heap.stats().mappedPages, 0, "its mappings were unmapped");
	heap.synchronize(10_000);
	heap.space.purge({ sync: true });
	heap.space.trim();
	heap.check();
	const s = heap.stats();
	assert.deepEqual([s.busyAreas, s.lazyAreas, s.freeBytes], [0, 0, s.size], "the space is whole");
	// Poisoned on the way out: an area handed out again over those pages passes its poison check.
	for (let i = 0; i < 50; i++) heap.vfree(heap.vmalloc(9 * heap.pageSize));
	heap.close();
});
