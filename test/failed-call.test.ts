/**
 * "A failed call changes nothing": every public method of a space and of a heap, called with
 * bad arguments, throws a VmapError (never a TypeError or RangeError) with the expected code,
 * and dump() (with the heap's stats) reads the same before and after.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VmapError, VmapHeap, VmapSpace, type VmapStats } from "../src/index.ts";
import { Timeline } from "../src/viz.ts";
import { waitUntil } from "../harness/workers.ts";

const P = 4096;

type Case = [name: string, call: () => unknown, code: string];

function expectNoChange(cases: Case[], snapshot: () => string): void {
	const before = snapshot();
	for (const [name, call, code] of cases) {
		assert.throws(
			call,
			(e: unknown) => {
				assert.ok(e instanceof VmapError, `${name}: threw ${String(e)}, not a VmapError`);
				assert.equal(e.code, code, `${name}: ${e.message}`);
				return true;
			},
			name,
		);
		assert.equal(snapshot(), before, `${name} changed the space`);
	}
}

test("a failed call changes nothing: every VmapSpace method with bad arguments", () => {
	const space = VmapSpace.create({ size: 256 * P, nodes: 2 });
	const kept = space.alloc(4 * P, { tag: "kept" });
	const lazy = space.alloc(2 * P);
	space.free(lazy);
	const other = VmapSpace.attach(space.handle);
	const bad: unknown[] = [0, -P, 1.5, Number.NaN, Infinity, 2 ** 60, 4096n, Symbol("x"), "4096", null, undefined, {}];
	const cases: Case[] = [
		...bad.map((size): Case => [`alloc(${String(size)})`, () => space.alloc(size as number), "EINVAL"]),
		...bad.map(
			(size): Case => [
				`alloc(${String(size)}, { tag })`,
				() => space.alloc(size as number, { tag: `fresh tag ${String(size)}` }),
				"EINVAL",
			],
		),
		["alloc align 3", () => space.alloc(P, { align: 3 }), "EINVAL"],
		["alloc align 2^60", () => space.alloc(P, { align: 2 ** 60 }), "EINVAL"],
		["alloc vstart -1", () => space.alloc(P, { vstart: -1 }), "EINVAL"],
		["alloc vend past the end", () => space.alloc(P, { vend: space.end + P }), "EINVAL"],
		["alloc empty window", () => space.alloc(P, { vstart: space.start + P, vend: space.start + P }), "EINVAL"],
		["alloc tag 5", () => space.alloc(P, { tag: 5 as unknown as string }), "EINVAL"],
		["alloc tag too long", () => space.alloc(P, { tag: "x".repeat(64) }), "EINVAL"],
		["alloc nowait 'yes'", () => space.alloc(P, { nowait: "yes" as unknown as boolean }), "EINVAL"],
		["alloc timeoutMs -1", () => space.alloc(P, { timeoutMs: -1 }), "EINVAL"],
		["alloc options null", () => space.alloc(P, null as never), "EINVAL"],
		["free NaN", () => space.free(Number.NaN), "EINVAL"],
		["free 4096n", () => space.free(4096n as unknown as number), "EINVAL"],
		["free outside the space", () => space.free(space.end + P), "ENOENT"],
		["free -2^40", () => space.free(-(2 ** 40)), "ENOENT"],
		["free never allocated", () => space.free(space.end - P), "ENOENT"],
		["free inside an area", () => space.free(kept + P), "ENOENT"],
		["free twice", () => space.free(lazy), "EDOUBLEFREE"],
		["free twice from another handle", () => other.free(lazy), "EDOUBLEFREE"],
		["resize 0", () => space.resize(kept, 0), "EINVAL"],
		["resize 1.5 pages", () => space.resize(kept, 1.5 * P), "EINVAL"],
		["resize past the end", () => space.resize(kept, space.size + P), "EINVAL"],
		["resize 4096n", () => space.resize(kept, 4096n as unknown as number), "EINVAL"],
		["resize a lazy area", () => space.resize(lazy, P), "EDOUBLEFREE"],
		["resize never allocated", () => space.resize(space.end - P, P), "ENOENT"],
		["find NaN", () => space.find(Number.NaN), "EINVAL"],
		["purge sync 'yes'", () => space.purge({ sync: "yes" as unknown as boolean }), "EINVAL"],
		["purge timeoutMs NaN", () => space.purge({ timeoutMs: Number.NaN }), "EINVAL"],
		["stats pools 1", () => space.stats({ pools: 1 as unknown as boolean }), "EINVAL"],
		["stats into {}", () => space.stats({ into: {} as never }), "EINVAL"],
		["attach a heap's data", () => VmapSpace.attach({ buffer: new SharedArrayBuffer(8) }), "EINVAL"],
		["attach flush 5", () => VmapSpace.attach(space.handle, { flush: 5 as never }), "EINVAL"],
		["exited(own token)", () => space.exited(space.token), "EINVAL"],
		["watch({})", () => space.watch({} as never), "EINVAL"],
	];
	expectNoChange(cases, () => JSON.stringify(space.dump()));
	// The failed allocations with fresh tags interned none: the tag table still takes new tags.
	for (let i = 0; i < 1100; i++) assert.throws(() => space.alloc(-1, { tag: `t${i}` }), { code: "EINVAL" });
	const tagged = space.alloc(P, { tag: "after 1100 failures" });
	assert.equal(space.find(tagged)?.tag, "after 1100 failures");
	other.close();
	space.check();
});

test("a failed call changes nothing: every VmapHeap method with bad arguments", () => {
	const heap = VmapHeap.create({ size: 1 << 20, poison: true });
	const p = heap.vmalloc(10_000, { tag: "kept" });
	const m = heap.vmMapRam(2);
	const m2 = heap.vmMapRam(1); // right after m in the same block
	assert.equal(m2, m + 2 * heap.pageSize);
	const q = heap.vmalloc(100);
	heap.vfree(q);
	const bad: unknown[] = [0, -1, 1.5, Number.NaN, 2 ** 60, 4096n, Symbol("x"), "100", null];
	const cases: Case[] = [
		...bad.map((n): Case => [`vmalloc(${String(n)})`, () => heap.vmalloc(n as number), "EINVAL"]),
		...bad.map((n): Case => [`vzalloc(${String(n)})`, () => heap.vzalloc(n as number), "EINVAL"]),
		["vmalloc align 3", () => heap.vmalloc(100, { align: 3 }), "EINVAL"],
		["vmalloc the heap's own tag", () => heap.vmalloc(100, { tag: "vm_map_ram" }), "EINVAL"],
		["vfree NaN", () => heap.vfree(Number.NaN), "EINVAL"],
		["vfree never allocated", () => heap.vfree(heap.maxSize - 2 * heap.pageSize), "ENOENT"],
		["vfree twice", () => heap.vfree(q), "EDOUBLEFREE"],
		["vfree a vm_map_ram mapping", () => heap.vfree(m), "EINVAL"],
		["vrealloc 1.5", () => heap.vrealloc(p, 1.5), "EINVAL"],
		["vrealloc 4096n", () => heap.vrealloc(p, 4096n as unknown as number), "EINVAL"],
		["vrealloc a freed area", () => heap.vrealloc(q, 10), "EDOUBLEFREE"],
		["freeDeferred nowait 'yes'", () => heap.freeDeferred(p, { nowait: "yes" as unknown as boolean }), "EINVAL"],
		["freeDeferred never allocated", () => heap.freeDeferred(heap.maxSize - 2 * heap.pageSize), "ENOENT"],
		["vmMapRam 0", () => heap.vmMapRam(0), "EINVAL"],
		["vmMapRam 1.5", () => heap.vmMapRam(1.5), "EINVAL"],
		["vmUnmapRam -2^40", () => heap.vmUnmapRam(-(2 ** 40), 1), "EINVAL"],
		["vmUnmapRam 0 pages", () => heap.vmUnmapRam(m, 0), "EINVAL"],
		["vmUnmapRam 3 pages of 2", () => heap.vmUnmapRam(m, 3), "EINVAL"],
		["vmUnmapRam 1 page of a 2-page mapping", () => heap.vmUnmapRam(m, 1), "EINVAL"],
		["vmUnmapRam inside a mapping", () => heap.vmUnmapRam(m + heap.pageSize, 1), "EINVAL"],
		["vmUnmapRam across two mappings", () => heap.vmUnmapRam(m + heap.pageSize, 2), "EINVAL"],
		["bytes NaN", () => heap.bytes(Number.NaN, 1), "EINVAL"],
		["bytes length -1", () => heap.bytes(p, -1), "EINVAL"],
		["bytes past the area", () => heap.bytes(p, 20_000), "EFAULT"],
		["bytes of a freed area", () => heap.bytes(q, 1), "EFAULT"],
		["view 1n", () => heap.view(p, Float64Array, 1n as unknown as number), "EINVAL"],
		["view of {}", () => heap.view(p, {} as never, 1), "EINVAL"],
		["view misaligned", () => heap.view(p + 4, Float64Array, 1), "EINVAL"],
		["synchronize -1", () => heap.synchronize(-1), "EINVAL"],
		["synchronize NaN", () => heap.synchronize(Number.NaN), "EINVAL"],
		["synchronize '50'", () => heap.synchronize("50" as unknown as number), "EINVAL"],
	];
	expectNoChange(cases, () => {
		const { gracePeriod, ...stats } = heap.stats();
		void gracePeriod;
		return heap.space.dump() + JSON.stringify(stats) + Array.from(heap.bytes(p, 10_000).subarray(0, 64)).join();
	});
	heap.check();
});

test("vrealloc with poisoning: a shrink whose resize fails keeps every byte; a move onto bytes written after free gives the new area back", () => {
	const heap = VmapHeap.create({ size: 1 << 20, poison: true, guardPages: 0, maxAreas: 16 });
	const P4 = 4 * heap.pageSize;
	const areas: number[] = [];
	for (;;) {
		try {
			areas.push(heap.vmalloc(P4));
		} catch (e) {
			assert.equal((e as VmapError).code, "ENOMEM");
			break;
		}
	}
	const a = areas[0]!;
	heap.bytes(a, P4).fill(0x5a);
	heap.vrealloc(areas[1]!, heap.pageSize); // its tail takes the last record (alloc keeps two in hand)
	// A shrink frees its tail, which takes a record: the table is full, so the resize fails.
	assert.throws(() => heap.vrealloc(a, heap.pageSize), { code: "ENOMEM" });
	assert.ok(
		heap.bytes(a, P4).every((b) => b === 0x5a),
		"the tail kept its bytes",
	);
	heap.check();

	const h = VmapHeap.create({ size: 1 << 20, poison: true, guardPages: 0 });
	const P = h.pageSize;
	const x = h.vmalloc(4 * P);
	const b = h.vmalloc(P);
	h.vmalloc(P); // b cannot grow in place
	h.vfree(x);
	h.purge({ sync: true });
	new Uint8Array(h.data)[x + 10] = 1; // a write after free
	const busy = h.stats().busyAreas;
	assert.throws(() => h.vrealloc(b, 4 * P), /EFAULT: vrealloc: byte 0x[0-9a-f]+ of \[.*\) was written after it was freed/);
	assert.equal(h.stats().busyAreas, busy, "the new area was given back");
	assert.equal(h.space.find(b)?.state, "busy", "the old area stays");
	h.check();
});

test("odd arguments are EINVAL, not a TypeError: an object without a prototype, stats({ into }) with no node figures, Timeline.sample() of nothing, a heap's nowait or tag of the wrong type", () => {
	const space = VmapSpace.create({ size: 64 * P, pageSize: P, nodes: 2 });
	space.alloc(P);
	const heap = VmapHeap.create({ size: 64 * P });
	const timeline = new Timeline();
	expectNoChange(
		[
			["free of an object without a prototype", () => space.free(Object.create(null) as number), "EINVAL"],
			["stats into nodes of numbers", () => space.stats({ into: { nodes: [1, 2] } as unknown as VmapStats }), "EINVAL"],
			["Timeline.sample(undefined)", () => timeline.sample(undefined as unknown as VmapStats), "EINVAL"],
			["vmalloc nowait 'yes'", () => heap.vmalloc(P, { nowait: "yes" as unknown as boolean }), "EINVAL"],
			["vmalloc tag null", () => heap.vmalloc(P, { tag: null as unknown as string }), "EINVAL"],
		],
		() => `${space.dump()} ${heap.space.dump()} ${timeline.length}`,
	);
});

test("after close() every call is EINVAL (stats(), dump(), dumpAsync(), watch() and exited() too); its properties stay readable", async () => {
	const space = VmapSpace.create({ size: 64 * P, pageSize: P });
	const other = VmapSpace.attach(space.handle);
	other.close();
	for (const [name, call] of [
		["stats", () => other.stats()],
		["dump", () => other.dump()],
		["watch", () => other.watch({ threadId: 1, once() {} } as never)],
		["exited", () => other.exited(space.token)],
		["alloc", () => other.alloc(P)],
		["check", () => other.check()],
	] as const) {
		assert.throws(call, (e: unknown) => e instanceof VmapError && e.code === "EINVAL" && /was closed/.test(e.message), name);
	}
	await assert.rejects(other.dumpAsync(), (e: unknown) => e instanceof VmapError && e.code === "EINVAL");
	assert.equal(other.pageSize, P);
	space.check();
});

test("an alloc no free space could ever meet fails at once: no purge, no flush hook", () => {
	let flushes = 0;
	const space = VmapSpace.create({ size: 64 * P, pageSize: P, flush: () => void flushes++ });
	space.free(space.alloc(P)); // something lazy, so that an overflow purge would have work
	const ranges = () => {
		const d = space.dump() as { areas: unknown[]; free: unknown[] };
		return JSON.stringify([d.areas, d.free]);
	};
	const before = ranges();
	assert.throws(
		() => space.alloc(P, { align: 2 ** 52 }),
		(e: unknown) => e instanceof VmapError && e.code === "EBUSY",
	);
	assert.equal(flushes, 0, "the flush hook ran for a request that could never fit");
	assert.equal(ranges(), before, "the lazy area is still lazy: nothing was purged");
});

test("allocAsync({ timeoutMs }) ends by then when the purge's flush does not settle: ETIMEDOUT, nothing allocated", async () => {
	const space = VmapSpace.create({ size: 4 * P, pageSize: P, smallMax: 0, flush: () => new Promise<void>(() => {}) });
	const held = [space.alloc(P), space.alloc(P), space.alloc(P), space.alloc(P)];
	space.free(held[0]!);
	const busy = space.stats().busyAreas;
	const t0 = performance.now();
	await assert.rejects(space.allocAsync(2 * P, { timeoutMs: 100 }), (e: unknown) => e instanceof VmapError && e.code === "ETIMEDOUT");
	// A bound no live system reaches (the call waited for ever before): not a speed claim.
	assert.ok(performance.now() - t0 < 30_000, "allocAsync outlived its timeoutMs by far");
	assert.equal(space.stats().busyAreas, busy, "nothing was allocated");
	for (const a of held.slice(1)) assert.equal(space.find(a)?.state, "busy");
});

test("lazy areas that hold every record of a bounded table: an alloc purges and retries instead of ENOMEM, and frees schedule a drain by records as well as pages", async () => {
	const space = VmapSpace.create({ size: 4096 * P, pageSize: P, maxAreas: 64, smallMax: 0, lazyMaxPages: 1 << 20 });
	const held: number[] = [];
	assert.throws(
		() => {
			for (;;) held.push(space.alloc(P));
		},
		(e: unknown) => e instanceof VmapError && e.code === "ENOMEM",
	);
	// Freed in turn, touching areas would merge into one lazy record as they are freed (at the
	// lazy tree's ends): every other one first, then those between them, so that each is a record.
	const apart = (areas: number[]) => [...areas.filter((_, i) => i % 2 === 0), ...areas.filter((_, i) => i % 2 === 1)];
	for (const a of apart(held.slice(0, -1))) space.free(a); // the lazy areas touch: a purge merges them into one free block
	assert.ok(space.stats().lazyAreas >= held.length - 3, `${space.stats().lazyAreas} lazy records of ${held.length - 1} frees`);
	const a = space.alloc(P); // was ENOMEM: the table full of lazy records, no purge, no retry
	assert.equal(space.find(a)?.state, "busy");
	assert.equal(space.stats().lazyAreas, 0, "the overflow purge gave the lazy records back");
	space.check();
	// Far below lazyMaxPages, but most records lazy: the frees schedule a drain.
	const more: number[] = [];
	for (let i = 0; i < 50; i++) more.push(space.alloc(P));
	for (const b of apart(more)) space.free(b);
	await waitUntil("a drain of the lazy records", () => space.stats().lazyAreas === 0);
	space.check();
});

test("watch()'s exit listener never throws: what goes wrong ending the worker's handles goes to onError", () => {
	// Every handle here is this thread's; a fake worker of thread 0 makes the listener end them all.
	const space = VmapSpace.create({ size: 64 * P, pageSize: P });
	VmapSpace.attach(space.handle);
	space.state.endHooks.push(() => {
		throw new Error("an end hook that fails");
	});
	let listener: ((code: number) => void) | undefined;
	const errors: unknown[] = [];
	space.watch({ threadId: 0, once: (_event: "exit", l: (code: number) => void) => (listener = l) }, { onError: (e) => errors.push(e) });
	assert.doesNotThrow(() => listener!(1));
	assert.ok(errors.length > 0 && errors.every((e) => String(e) === "Error: an end hook that fails"), String(errors));
	assert.throws(
		() => space.watch({ threadId: 0, once: () => {} }, { onError: 5 as never }),
		(e: unknown) => e instanceof VmapError && e.code === "EINVAL",
	);
});
