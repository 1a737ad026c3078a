/**
 * The small-area cache (src/small/) beyond the model test: what check() catches in a block,
 * asynchronous flushes, handles that close or end holding small areas, and the option.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VmapError, VmapSpace } from "../src/index.ts";
import { HANDLE_HAZARD, HANDLE_WORDS, HDR_BLOCK_INDEX, HDR_SMALL_LIMBO, REC_I32, VA_FLAGS, VA_SMALL_BLOCK } from "../src/buffer/layout.ts";
import { GAUGE_DIRTY, GAUGE_IN_USE_BYTES, gaugeWord, gaugeWordF } from "../src/buffer/gauges.ts";
import {
	bitWord,
	D_AREA,
	DF_START,
	D_DIRTY_NR,
	D_OWNER,
	D_REMOTE_NR,
	D_STATE,
	DIRTY,
	FLUSHING,
	FREE,
	LIVE,
	OWNER_RETIRED,
	SMALL_BLOCK_LIMBO,
} from "../src/small/descriptor.ts";
import { eachBlock } from "../src/small/block-index.ts";
import { xorshift32 } from "../harness/random.ts";

const P = 16;
const options = { start: 1 << 20, size: 1 << 24, pageSize: P, smallMax: 256, nodes: 1 };

function expectCode(code: string, fn: () => unknown, what?: RegExp): void {
	assert.throws(fn, (e: unknown) => {
		assert.ok(e instanceof VmapError, String(e));
		assert.equal(e.code, code, e.message);
		if (what) assert.match(e.message, what);
		return true;
	});
}

/** The first block's descriptor word. */
function firstBlock(s: VmapSpace): number {
	let d = 0;
	eachBlock(s.table, (x) => (d ||= x));
	assert.ok(d > 0, "a block exists");
	return d;
}

test("small areas: check() names each broken block invariant", () => {
	const corruptions: Array<[string, (s: VmapSpace, d: number) => void, RegExp]> = [
		[
			"a slot both live and free",
			(s, d) => {
				s.table.i32[bitWord(d, FREE, 0)]! |= 1;
			},
			/in two of live, dirty and free/,
		],
		[
			"a dirty count off by one",
			(s, d) => {
				s.table.i32[d + D_DIRTY_NR]!++;
			},
			/the count says/,
		],
		[
			"a gauge off by one area",
			(s) => {
				s.table.hdr[gaugeWord(s.id) + GAUGE_DIRTY]!++;
			},
			/gauges of handle 1: .* are \[41,2,1280,16\], its blocks hold \[41,1,1280,16\]/,
		],
		[
			"a gauge off by some bytes",
			(s) => {
				s.table.hdrF[gaugeWordF(s.id) + GAUGE_IN_USE_BYTES]! += P;
			},
			/gauges of handle 1/,
		],
		[
			"an index entry naming another maker",
			(s, d) => {
				const i32 = s.table.i32;
				const first = s.table.hdr[HDR_BLOCK_INDEX]!;
				for (let w = first * REC_I32 + 4; ; w += 4) {
					if (i32[w + 2] !== d) continue;
					i32[w + 3] = 7;
					break;
				}
			},
			/its maker is handle 7, its area says 1/,
		],
		[
			"a flushing slot that is not dirty",
			(s, d) => {
				s.table.i32[bitWord(d, FLUSHING, 0)]! |= 1 << 30;
			},
			/flushing slot is not dirty/,
		],
		[
			"a slot in no bitmap",
			(s, d) => {
				s.table.i32[bitWord(d, LIVE, 0)]! &= ~1;
			},
			/live \| dirty \| free/,
		],
		[
			"a descriptor whose start moved",
			(s, d) => {
				s.table.f64[(d >> 1) + DF_START]! += 1 << 16;
			},
			/indexed at/,
		],
		[
			"a block area without its flag",
			(s, d) => {
				s.table.i32[s.table.i32[d + D_AREA]! * REC_I32 + VA_FLAGS]! &= ~VA_SMALL_BLOCK;
			},
			/flagged as a block/,
		],
		[
			"the index lost",
			(s) => {
				s.table.hdr[HDR_BLOCK_INDEX] = 0;
			},
			/no block index/,
		],
	];
	for (const [what, corrupt, message] of corruptions) {
		const s = VmapSpace.create(options);
		for (let i = 0; i < 40; i++) s.alloc(P * (1 + (i % 3)));
		s.free(s.alloc(P));
		s.check();
		corrupt(s, firstBlock(s));
		expectCode("ECORRUPT", () => s.check(), message);
		assert.ok(what);
	}
});

test("small areas: with an asynchronous flush, freed small areas stay lazy until it resolves, then are reused", async () => {
	const pending: Array<() => void> = [];
	const s = VmapSpace.create({ ...options, flush: () => new Promise<void>((r) => pending.push(r)) });
	const a = Array.from({ length: 64 }, () => s.alloc(P));
	for (const x of a) s.free(x);
	s.purge(); // the cache's flush starts and waits
	assert.equal(pending.length, 1, "one flush for the cache's dirty areas (the space has no lazy area)");
	assert.equal(s.find(a[0]!)?.state, "lazy");
	expectCode("EDOUBLEFREE", () => s.free(a[0]!));
	// While the flush is pending, allocations never reuse them.
	const more = Array.from({ length: 64 }, () => s.alloc(P));
	for (const x of more) assert.ok(!a.includes(x), `${x} reused before its flush resolved`);
	pending.shift()!();
	await new Promise((r) => setTimeout(r, 0));
	assert.equal(s.find(a[0]!), undefined, "flushed: free again");
	expectCode("ENOENT", () => s.free(a[0]!));
	s.check();
	assert.equal(s.stats().smallLazyAreas, 0);
	let reused = false;
	for (let i = 0; i < 512 && !reused; i++) reused = a.includes(s.alloc(P));
	assert.ok(reused, "after the flush, freed slots are handed out again");
});

test("small areas: an area freed while its block's flush is in flight waits for the next flush, which covers it", async () => {
	const pending: Array<() => void> = [];
	const ranges: Array<[number, number]> = [];
	const s = VmapSpace.create({
		...options,
		flush: (lo, hi) => {
			ranges.push([lo, hi]);
			return new Promise<void>((r) => pending.push(r));
		},
	});
	const a = Array.from({ length: 8 }, () => s.alloc(P));
	const late = a.pop()!; // same block as the others
	for (const x of a) s.free(x);
	s.purge(); // the flush of the first seven starts and waits
	assert.equal(pending.length, 1);
	s.free(late); // its block is being flushed: this slot is not covered by that flush
	pending.shift()!();
	await new Promise((r) => setTimeout(r, 0));
	assert.equal(s.find(a[0]!), undefined, "the first seven are free");
	assert.equal(s.find(late)?.state, "lazy", "the late one waits for a flush of its own");
	s.check();
	s.purge(); // the next flush
	assert.equal(pending.length, 1, "the late one's block is flushed again");
	assert.ok(ranges[1]![0] <= late && late < ranges[1]![1], "and the flush covers it");
	pending.shift()!();
	await new Promise((r) => setTimeout(r, 0));
	assert.equal(s.find(late), undefined, "flushed: free again");
	assert.equal(s.stats().smallLazyAreas, 0);
	s.check();
});

test("small areas: a flush that empties blocks keeps one spare per size class and retires the rest; a spare taken into use is replaced", () => {
	const s = VmapSpace.create(options);
	const a: number[] = [];
	while (s.stats().smallBlocks < 4) a.push(s.alloc(P));
	a.push(...Array.from({ length: 8 }, () => s.alloc(P))); // into the fourth block
	assert.equal(s.stats().smallBlocks, 4);
	for (const x of a) s.free(x);
	s.purge(); // the flush completes at once: every block is empty
	assert.equal(s.stats().smallBlocks, 2, "the current block and one spare kept, two retired");
	s.check();
	// The spare goes into use and empties again; blocks emptied alongside retire again, one stays.
	const b: number[] = [];
	while (s.stats().smallBlocks < 4) b.push(s.alloc(P));
	for (const x of b) s.free(x);
	s.purge();
	assert.equal(s.stats().smallBlocks, 2, "again the current block and one spare");
	// A spare taken into use is no spare: the next block emptied is kept in its place. The
	// current block fills first, then the spare, then a new block comes.
	const c: number[] = [];
	while (s.stats().smallBlocks < 3) c.push(s.alloc(P));
	const keep = c[c.length - 2]!; // the spare's last area
	for (const x of c) if (x !== keep) s.free(x);
	s.purge();
	assert.equal(s.stats().smallBlocks, 3, "the old spare (holding one area), the emptied block as the new spare, the current block");
	assert.equal(s.find(keep)?.state, "busy");
	s.check();
});

test("small areas: a block whose slots were freed is used again after every flush, so churn needs no new blocks", () => {
	const s = VmapSpace.create(options);
	const rnd = xorshift32(7);
	const live: number[] = [];
	while (live.length < 2000) live.push(s.alloc(P));
	const blocks = s.stats().smallBlocks;
	for (let round = 0; round < 50; round++) {
		for (let i = 0; i < 1000; i++) {
			const k = rnd() % live.length;
			s.free(live[k]!);
			live[k] = live[live.length - 1]!;
			live.pop();
		}
		s.purge(); // the flush completes at once: the freed slots are FREE again
		while (live.length < 2000) live.push(s.alloc(P));
		assert.ok(s.stats().smallBlocks <= blocks + 1, `round ${round}: ${s.stats().smallBlocks} blocks for what ${blocks} held`);
	}
	s.check();
});

test("small areas: a flush hook that throws leaves them lazy; the next flush covers them", () => {
	let fail = true;
	const flushed: Array<[number, number]> = [];
	const s = VmapSpace.create({
		...options,
		flush: (lo, hi) => {
			if (fail) throw new Error("fence lost");
			flushed.push([lo, hi]);
		},
	});
	const a = s.alloc(P);
	s.free(a);
	s.purge();
	assert.equal(s.find(a)?.state, "lazy", "still lazy after the failed flush");
	s.check();
	fail = false;
	s.purge();
	assert.ok(
		flushed.some(([lo, hi]) => lo <= a && a < hi),
		"the next flush covers it",
	);
	assert.equal(s.find(a), undefined);
	s.check();
});

test("small areas: a handle that closes with live small areas; another frees them, and the emptied blocks retire", () => {
	const s = VmapSpace.create(options);
	const other = VmapSpace.attach(s.handle);
	const mine = Array.from({ length: 300 }, (_, i) => other.alloc(P * (1 + (i % 16))));
	const blocks = s.stats().smallBlocks;
	assert.ok(blocks >= 16);
	other.close();
	expectCode("EINVAL", () => other.free(mine[0]!), /closed/);
	expectCode("EINVAL", () => other.alloc(P), /closed/);
	s.check();
	for (const x of mine) {
		assert.equal(s.find(x)?.state, "busy");
		s.free(x);
	}
	assert.equal(s.stats().smallBlocks, 0, "every block of the closed handle retired when its last area was freed");
	s.purge({ sync: true });
	s.check();
	const d = s.dump() as { areas: unknown[] };
	assert.deepEqual(d.areas, []);
});

test("small areas: using the space's own block words from a second handle in the same thread: remote frees, double frees refused", () => {
	const s = VmapSpace.create(options);
	const b = VmapSpace.attach(s.handle);
	const a = Array.from({ length: 50 }, () => s.alloc(2 * P));
	for (const x of a) b.free(x); // remote frees: one atomic OR each
	for (const x of a) expectCode("EDOUBLEFREE", () => b.free(x));
	for (const x of a) expectCode("EDOUBLEFREE", () => s.free(x));
	assert.equal(s.stats().smallLazyAreas, 50);
	s.purge(); // the owner takes the remote frees in and flushes them
	for (const x of a) expectCode("ENOENT", () => b.free(x));
	s.check();
	b.check();
	const d = firstBlock(s);
	assert.equal(s.table.i32[bitWord(d, DIRTY, 0)], 0);
});

test("small areas: smallMax is checked", () => {
	for (const bad of [-16, 8, 1.5, Number.NaN, "256", 2 ** 40]) {
		expectCode("EINVAL", () => VmapSpace.create({ ...options, smallMax: bad as number }), /smallMax/);
	}
	expectCode("EINVAL", () => VmapSpace.create({ ...options, size: 1 << 11, smallMax: 256 }), /larger than the space/);
	assert.equal(VmapSpace.create({ ...options, smallMax: 0 }).stats().smallMax, 0);
	assert.equal(VmapSpace.create({ size: 2 ** 30 }).stats().smallMax, 65536, "default at pageSize 4096: 16 pages");
	assert.equal(VmapSpace.create({ size: 2 ** 20 }).stats().smallMax, 0, "default off in a space too small for 64 blocks");
});

test("small areas in a heap: vmalloc with or without a tag takes them; vfree, vzalloc, vrealloc, freeDeferred and bytes() behave as for any area", async () => {
	const { VmapHeap } = await import("../src/index.ts");
	const heap = VmapHeap.create({ size: 1 << 20, maxSize: 1 << 27, nodes: 1 });
	const s = heap.space;
	assert.equal(s.stats().smallMax, 65536, "a heap of 128 MiB has the cache by default");
	const a = heap.vmalloc(100); // one page and the guard page: two pages, a small area
	const info = s.find(a)!;
	assert.deepEqual([info.start, info.size, info.state, info.tag], [a, 2 * 4096, "busy", "vmalloc"], "tagged as every vmalloc area");
	assert.equal(s.stats().smallAreas, 1);
	const tagged = heap.vmalloc(100, { tag: "particles" });
	assert.deepEqual([s.find(tagged)?.tag, s.stats().smallAreas], ["particles", 2], "a tag keeps a request on the cache");
	const aligned = heap.vmalloc(100, { align: 8 * 4096 });
	assert.deepEqual([aligned % (8 * 4096), s.stats().smallAreas], [0, 2], "align above pageSize: the ordinary path");
	heap.vfree(tagged);
	heap.vfree(aligned);
	heap.bytes(a, 4096).fill(7);
	expectCode("EFAULT", () => heap.bytes(a, 4097), /guard page/);
	// vzalloc zeroes what the caller may touch.
	heap.vfree(a);
	const z = heap.vzalloc(4096 * 3); // 4 pages with the guard: a small area of 4 pages
	assert.ok(heap.bytes(z, 3 * 4096).every((b) => b === 0));
	// vrealloc: within the class in place, beyond it a move that keeps the bytes.
	heap.bytes(z, 8).set([1, 2, 3, 4, 5, 6, 7, 8]);
	assert.equal(heap.vrealloc(z, 4096), z, "a shrink within the class stays in place");
	const moved = heap.vrealloc(z, 4096 * 40);
	assert.notEqual(moved, z);
	assert.deepEqual([...heap.bytes(moved, 8)], [1, 2, 3, 4, 5, 6, 7, 8]);
	expectCode("EDOUBLEFREE", () => heap.vfree(z));
	// freeDeferred marks the small area: vfree refuses it until the grace period ends.
	const reader = VmapHeap.attach(heap.handle); // online and never quiescent: grace periods wait for it
	const d = heap.vmalloc(4096);
	heap.freeDeferred(d);
	assert.equal(s.find(d)?.tag, "vfree_deferred");
	expectCode("EDOUBLEFREE", () => heap.vfree(d), /grace period/);
	expectCode("EDOUBLEFREE", () => heap.freeDeferred(d));
	heap.check();
	s.check();
	reader.close();
	heap.synchronize();
	assert.notEqual(s.find(d)?.state, "busy", "freed after the grace period");
	heap.vfree(moved);
	heap.check();
	s.check();
	assert.equal(s.stats().smallAreas, 0);
	heap.close();
});

test("small areas: a handle whose views predate another's table growth frees, finds and marks small areas in the new blocks", () => {
	const s = VmapSpace.create({ ...options, size: 1 << 26, maxAreas: 1 << 16 });
	const b = VmapSpace.attach(s.handle); // maps the table as it is now
	const capacity = b.table.capacity;
	const areas: number[] = [];
	for (let i = 0; areas.length < 20_000; i++) areas.push(s.alloc(P * (1 + (i % 16))));
	assert.ok(s.table.capacity > capacity, "the table grew after b mapped it");
	const last = areas[areas.length - 1]!;
	b.free(last); // first: no call of b's has taken a lock (and followed the growth) since
	assert.equal(b.find(last)?.state, "lazy");
	for (const x of areas) if (x !== last) b.free(x);
	assert.equal(s.stats().smallAreas, 0);
	s.purge();
	s.check();
	b.check();
});

test("small areas: an owner that died between its plain writes (a carve, a flush, a takeRemote cut short): the handle that observes its end repairs each block from its bitmaps and goes on", () => {
	// [what was cut short, the cut, whether check() sees it (REMOTE_NR is a hint it does not check)]
	const cases: Array<[string, (s: VmapSpace, d: number) => void, boolean]> = [
		["a carve cut short: a slot out of FREE, not yet in LIVE", (s, d) => cutCarve(s, d), true],
		[
			"a takeRemote() cut short: REMOTE exchanged, its count not taken back",
			(s, d) => {
				s.table.i32[d + D_REMOTE_NR]! += 3;
			},
			false,
		],
		[
			"a flush cut short: slots in FREE and still in DIRTY, FLUSHING set",
			(s, d) => {
				const free = s.table.i32[bitWord(d, FREE, 0)]!;
				const low = free & -free; // a free slot, shown as dirty and flushing as well
				s.table.i32[bitWord(d, DIRTY, 0)]! |= low;
				s.table.i32[bitWord(d, FLUSHING, 0)]! |= low;
			},
			true,
		],
	];
	for (const [name, cut, seen] of cases) {
		const s = VmapSpace.create(options);
		const b = VmapSpace.attach(s.handle);
		const a = Array.from({ length: 20 }, () => s.alloc(2 * P));
		b.free(a[0]!); // a remote free: the block has a REMOTE bit
		cut(s, firstBlock(s));
		if (seen) assert.throws(() => s.check(), { code: "ECORRUPT" }, `${name}: check() sees the cut`);
		b.exited(s.token); // before: a spin for ever in adopt() (the count), or ECORRUPT later
		b.check();
		for (const x of a.slice(1)) b.free(x); // every live area is still live, and frees as such
		b.purge({ sync: true });
		b.check();
		assert.equal(b.stats().smallAreas, 0, name);
	}
});

/** The first FREE slot of block `d` taken out of FREE and put nowhere, as a carve that stopped after its first write. */
function cutCarve(s: VmapSpace, d: number): void {
	const w = bitWord(d, FREE, 0);
	const f = s.table.i32[w]!;
	s.table.i32[w] = f & (f - 1);
}

test("small areas: a block retired while a remote freer is still inside it (between its OR and its look at OWNER) keeps its descriptor in limbo: the freer's late count and CAS land on no other record's words, and the records are freed once it has left", () => {
	const s = VmapSpace.create(options);
	const owner = VmapSpace.attach(s.handle);
	const freer = VmapSpace.attach(s.handle);
	const x = owner.alloc(P);
	const d = firstBlock(s);
	const i32 = s.table.i32;
	const hazard = (freer.id - 1) * HANDLE_WORDS + HANDLE_HAZARD;
	freer.free(x); // the OR, the count, the look at OWNER...
	Atomics.store(s.table.handles, hazard, d); // ...and the freer stalls before it is done with the block
	owner.close(); // the owner takes the free in: nothing live, so the block retires
	assert.equal(s.stats().smallBlocks, 0, "retired");
	assert.equal(s.table.hdr[HDR_SMALL_LIMBO], d, "its descriptor waits in limbo");
	assert.deepEqual([i32[d + D_STATE], i32[d + D_OWNER]], [SMALL_BLOCK_LIMBO, OWNER_RETIRED]);
	s.check();
	// The stalled freer's last steps: its count lands in the limbo descriptor, and an adoption's
	// CAS (nobody owns it, 0, to its id) fails: before, it took a zeroed record for a block.
	Atomics.add(i32, d + D_REMOTE_NR, 1);
	assert.equal(Atomics.compareExchange(i32, d + D_OWNER, 0, freer.id), OWNER_RETIRED);
	s.free(s.alloc(P)); // a new block: the limbo descriptor stays while the hazard names it
	assert.equal(s.table.hdr[HDR_SMALL_LIMBO], d);
	Atomics.store(s.table.handles, hazard, 0); // the freer is done
	freer.alloc(P); // its new block drains the limbo
	assert.equal(s.table.hdr[HDR_SMALL_LIMBO], 0, "freed");
	assert.equal(i32[d + D_STATE], 0);
	s.check();
});

test("small areas: a remote freer that ends inside a block leaves no hazard: the handle that observes its end clears it, and the limbo drains", () => {
	const s = VmapSpace.create(options);
	const owner = VmapSpace.attach(s.handle);
	const freer = VmapSpace.attach(s.handle);
	const x = owner.alloc(P);
	const d = firstBlock(s);
	freer.free(x);
	Atomics.store(s.table.handles, (freer.id - 1) * HANDLE_WORDS + HANDLE_HAZARD, d); // dies inside its window
	owner.close();
	assert.equal(s.table.hdr[HDR_SMALL_LIMBO], d);
	s.exited(freer.token);
	s.free(s.alloc(P)); // a new block drains it
	assert.equal(s.table.hdr[HDR_SMALL_LIMBO], 0);
	s.check();
});

test("small areas: trim() retires every block with nothing live, this handle's (spares and current blocks too) and nobody's; their areas are free space at once, or after the next purge for those whose slots wait for a flush (purge_fragmented_blocks)", () => {
	const s = VmapSpace.create(options);
	const other = VmapSpace.attach(s.handle);
	const mine = Array.from({ length: 400 }, (_, i) => s.alloc(P * (1 + (i % 16))));
	const theirs = Array.from({ length: 100 }, (_, i) => other.alloc(P * (1 + (i % 16))));
	other.close(); // its blocks are nobody's, its areas still live
	for (const x of [...mine, ...theirs]) s.free(x);
	s.purge({ sync: true });
	const before = s.stats().smallBlocks;
	assert.ok(before > 0, "empty blocks stay after a purge: spares, current blocks");
	const r = s.trim();
	assert.equal(r.blocks, before, "trim() says how many it retired");
	assert.equal(s.stats().smallBlocks, 0);
	s.purge({ sync: true });
	s.check();
	const st = s.stats();
	assert.deepEqual([st.busyAreas, st.lazyAreas, st.freeBytes], [0, 0, st.size], "the space is one free block again");
	assert.equal(s.alloc(P) > 0, true, "the cache makes new blocks after a trim");
	s.check();
});

test("small areas: a block a flush left empty beyond its class's spare retires straight to free space (every slot flushed or never used); one retired with slots still dirty is lazy until a purge", () => {
	const s = VmapSpace.create(options);
	const areas = Array.from({ length: 49 }, () => s.alloc(256)); // 16 a block: three full blocks and a current one
	const starts = s.dump().blocks.map((b) => b.start);
	for (const a of areas.slice(0, 48)) s.free(a);
	s.purge({ sync: true }); // the cache flushes: its dirty slots turn FREE, and empty blocks retire
	const after = s.dump().blocks.map((b) => b.start);
	const gone = starts.filter((x) => !after.includes(x));
	assert.equal(gone.length, 2, "one empty block stays as the class's spare");
	for (const x of gone) assert.equal(s.find(x), undefined, "free space at once, no purge needed");
	assert.deepEqual([s.stats().lazyAreas, s.stats().purgedAreas], [0, 0], "nothing lazily freed, nothing purged");
	assert.equal(s.alloc(4096), gone.sort((a, b) => a - b)[0], "the lowest fit finds the first of them");
	s.check();
	// close() retires a block whose slots are DIRTY: its area is lazy, so a purge flushes them first.
	const t = VmapSpace.attach(s.handle);
	const x = t.alloc(256);
	t.free(x);
	const block = s.dump().blocks.find((b) => b.start <= x && x < b.end)!;
	t.close();
	assert.equal(s.find(block.start)?.state, "lazy");
	s.check();
});

test("small areas: the rule is size and alignment; a tag keeps a request on the cache, in blocks of its own tag", () => {
	const s = VmapSpace.create(options); // pageSize 16, smallMax 256
	const inBlock = (addr: number) => s.dump().blocks.find((b) => b.start <= addr && addr < b.end);
	const a = s.alloc(64, { tag: "meshes" });
	const b = s.alloc(64, { tag: "textures", align: P, nowait: true, timeoutMs: 1000, vstart: s.start, vend: s.end });
	const plain = s.alloc(64);
	assert.deepEqual(
		[a, b, plain].map((x) => [s.find(x)?.tag, s.find(x)?.size, inBlock(x)?.tag]),
		[
			["meshes", 64, "meshes"],
			["textures", 64, "textures"],
			[undefined, 64, undefined],
		],
		"each tag has its own blocks; the block's areas carry its tag",
	);
	assert.equal(new Set([a, b, plain].map((x) => inBlock(x)!.start)).size, 3);
	assert.match(s.vmallocinfo(), /vmap_block/, "a block's own area keeps its tag in the listings");
	// Outside the rule: align above pageSize, a window narrower than the space, a size above smallMax.
	for (const o of [
		{ tag: "meshes", align: 2 * P },
		{ tag: "meshes", vstart: s.start + P },
		{ tag: "meshes", vend: s.end - P },
	]) {
		const x = s.alloc(64, o);
		assert.equal(inBlock(x), undefined, `${JSON.stringify(o)}: the ordinary path`);
		assert.equal(s.find(x)?.tag, "meshes");
	}
	assert.equal(inBlock(s.alloc(512, { tag: "meshes" })), undefined, "above smallMax: the ordinary path");
	// Bad options on a small size fail as on any size, changing nothing.
	const before = s.dump();
	expectCode("EINVAL", () => s.alloc(64, { tag: 5 as unknown as string }), /tag must be a string/);
	expectCode("EINVAL", () => s.alloc(64, { tagg: "x" } as never), /unknown option "tagg"/);
	expectCode("EINVAL", () => s.alloc(64, { tag: "x", align: 3 }), /align/);
	expectCode("EINVAL", () => s.alloc(64, { tag: "x", timeoutMs: -1 }), /timeoutMs/);
	expectCode("EINVAL", () => s.alloc(64, { tag: "x".repeat(300) }), /at most/);
	assert.deepEqual(s.dump(), before);
	s.check();
});

test("small areas: an empty spare block of one tag serves another tag, retagged, before a new block is made", () => {
	const s = VmapSpace.create(options);
	const first = Array.from({ length: 64 }, () => s.alloc(256, { tag: "meshes" })); // whole blocks of one class
	const blocksOfMeshes = new Set(s.dump().blocks.map((b) => b.start));
	for (const x of first) s.free(x);
	s.purge({ sync: true }); // the flush makes them empty: one stays as the class's spare
	const blocks = s.stats().smallBlocks;
	const c = s.alloc(256, { tag: "textures" });
	const block = s.dump().blocks.find((b) => b.start <= c && c < b.end)!;
	assert.ok(blocksOfMeshes.has(block.start), "the spare came back");
	assert.deepEqual([block.tag, s.find(c)?.tag, s.stats().smallBlocks], ["textures", "textures", blocks]);
	s.check();
});

test("small areas: a spare that trim() retires is no class's spare any more: its records, taken by another handle's block, are never taken for this handle's spare", () => {
	const s = VmapSpace.create(options);
	const other = VmapSpace.attach(s.handle);
	const filled = Array.from({ length: 17 }, () => s.alloc(256)); // a block of 16 areas, and one in the next
	for (const a of filled.slice(0, 16)) s.free(a);
	s.purge({ sync: true }); // the first block is empty: the class's spare
	assert.equal(s.trim().blocks, 1, "trim retires the spare");
	other.free(other.alloc(256)); // another handle's block, of the same class, on the records the retired one freed
	other.purge({ sync: true }); // and empty: nothing live or dirty in it
	const x = s.alloc(256, { tag: "after" });
	const block = s.dump().blocks.find((b) => b.start <= x && x < b.end)!;
	assert.deepEqual([block.owner, block.tag], [s.id, "after"], "a block of this handle's own, not the other's");
	s.check();
	other.check();
	other.close();
});

test("small areas: stats() sums each live maker's gauges and reads every other block, the same figures a block-by-block count gives", () => {
	// The oracle: dump()'s blocks, each read from its descriptor (info.ts), summed.
	const byBlocks = (s: VmapSpace) => {
		const blocks = (s.dump() as { blocks: Array<{ areaSize: number; live: number; lazy: number }> }).blocks;
		const sum = (f: (b: (typeof blocks)[0]) => number) => blocks.reduce((a, b) => a + f(b), 0);
		return [blocks.length, sum((b) => b.live), sum((b) => b.live * b.areaSize), sum((b) => b.lazy), sum((b) => b.lazy * b.areaSize)];
	};
	const byStats = (s: VmapSpace) => {
		const st = s.stats();
		return [st.smallBlocks, st.smallAreas, st.smallBytes, st.smallLazyAreas, st.smallLazyBytes];
	};
	const s = VmapSpace.create(options);
	let handles = [s, VmapSpace.attach(s.handle), VmapSpace.attach(s.handle), VmapSpace.attach(s.handle)];
	const rnd = xorshift32(7);
	const live: number[] = [];
	let steps = 0;
	for (let i = 0; i < 3000; i++) {
		const h = handles[rnd() % handles.length]!;
		const r = rnd() % 100;
		if (r < 50 || live.length === 0) live.push(h.alloc(P * (1 + (rnd() % 16))));
		else if (r < 97) {
			// Any handle frees: most frees land in another handle's block (remote frees, counted
			// by the descriptor until the owner takes them in).
			const k = rnd() % live.length;
			h.free(live[k]!);
			live[k] = live[live.length - 1]!;
			live.pop();
		} else if (r < 99) h.purge({ sync: true });
		else h.trim();
		if (i === 1000) {
			handles[3]!.close(); // its blocks: owned by nobody, read one by one
			handles = handles.slice(0, 3);
		}
		if (i === 2000) {
			handles[0]!.exited(handles[2]!.token); // ended without close: its gauges are read no more
			handles = handles.slice(0, 2);
		}
		assert.deepEqual(byStats(handles[0]!), byBlocks(handles[0]!), `step ${i}`);
		steps++;
	}
	handles[0]!.check();
	assert.equal(steps, 3000);
});
