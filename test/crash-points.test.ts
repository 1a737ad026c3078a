/**
 * Death at every instant of every critical section: a handle stops at its k-th crash point
 * (each journaled write and each step of the lock protocol), for every k, and another handle
 * that observes its end recovers the space (test/support/crash.ts says what is checked).
 */
import { test } from "node:test";
import { VmapHeap, VmapSpace } from "../src/index.ts";
import { crashEveryPoint, type Scenario } from "./support/crash.ts";
import { JOURNALS_OWN } from "../src/buffer/layout.ts";

const P = 4096;

/**
 * A space of `pages` pages with `live` areas of 1..4 pages, every third one freed (lazily), and
 * a recoverer. The frees go in order of `rank`, then of address (with one node, an area freed
 * right after the lazy tree's highest area, or right before its lowest, merges into it).
 */
function spaceWith(
	pages: number,
	live: number,
	options: { nodes?: number; lazyMaxPages?: number; smallMax?: number } = {},
	freed = (i: number) => i % 3 === 0,
	rank = (_i: number) => 0,
) {
	return () => {
		const victim = VmapSpace.create({ size: pages * P, nodes: 1, smallMax: 0, lazyMaxPages: 1 << 20, ...options });
		const areas: number[] = [];
		for (let i = 0; i < live; i++) areas.push(victim.alloc(P * (1 + (i % 4))));
		const order = areas.map((_, i) => i).sort((a, b) => rank(a) - rank(b) || a - b);
		for (const i of order) if (freed(i)) victim.free(areas[i]!);
		(victim as unknown as { areas: number[] }).areas = areas;
		return { victim, token: victim.token, recoverer: VmapSpace.attach(victim.handle) };
	};
}

/** The live small areas and the busy areas that are not blocks: what a small-area operation must keep or make. */
function smallLive(r: VmapSpace): unknown {
	const d = r.dump() as { areas: Array<{ tag: string; state: string }>; stats: { smallAreas: number; smallBytes: number } };
	return { small: [d.stats.smallAreas, d.stats.smallBytes], areas: d.areas.filter((a) => a.tag !== "vmap_block" && a.state === "busy") };
}

/** How many allocations of 256 bytes make a fresh small-area space's `n`-th block. */
function allocsToBlock(n: number): number {
	const space = smallWith(0)().victim;
	let i = 0;
	while (space.stats().smallBlocks < n) {
		space.alloc(256);
		i++;
	}
	return i;
}

const areasOf = (v: VmapSpace) => (v as unknown as { areas: number[] }).areas;

/** A space with the small-area cache: `live` small areas of 16..256 bytes (pageSize 16), every third freed. */
function smallWith(live: number) {
	return () => {
		const victim = VmapSpace.create({ start: 1 << 20, size: 1 << 22, pageSize: 16, smallMax: 256, nodes: 1 });
		const areas: number[] = [];
		for (let i = 0; i < live; i++) areas.push(victim.alloc(16 * (1 + (i % 16))));
		for (let i = 0; i < live; i += 3) victim.free(areas[i]!);
		(victim as unknown as { areas: number[] }).areas = areas;
		return { victim, token: victim.token, recoverer: VmapSpace.attach(victim.handle) };
	};
}

const scenarios: Array<Scenario<VmapSpace>> = [
	{ name: "alloc (free space: split, rebalance, busy tree and hash)", setup: spaceWith(512, 40), op: (v) => void v.alloc(2 * P) },
	{
		name: "alloc by a handle with a shared journal (an id past JOURNALS_OWN: its journal claimed and given back)",
		setup: () => {
			const first = spaceWith(512, 40)();
			for (let i = 2; i <= JOURNALS_OWN; i++) VmapSpace.attach(first.victim.handle);
			const victim = VmapSpace.attach(first.victim.handle);
			return { victim, token: victim.token, recoverer: first.recoverer };
		},
		op: (v) => void v.alloc(2 * P),
	},
	{ name: "alloc of a whole free block", setup: spaceWith(64, 8), op: (v) => void v.alloc(P, { vstart: v.start + 62 * P }) },
	{ name: "alloc, tagged (the tag table)", setup: spaceWith(256, 20), op: (v) => void v.alloc(P, { tag: "crash" }) },
	{ name: "free (busy to lazy)", setup: spaceWith(512, 40), op: (v) => v.free(areasOf(v)[7]!) },
	{
		name: "free right after the highest lazy area (merged into it; the record kept by the handle)",
		setup: spaceWith(512, 41),
		op: (v) => v.free(areasOf(v)[40]!),
	},
	{
		name: "free merged into the highest lazy area with a record kept already (this one freed under the free-space lock)",
		setup: spaceWith(512, 42, {}, (i) => i % 3 === 0 || i === 40),
		op: (v) => v.free(areasOf(v)[41]!),
	},
	{
		name: "alloc that takes the handle's kept record",
		setup: spaceWith(512, 41, {}, (i) => i % 3 === 0 || i === 40),
		op: (v) => void v.alloc(P),
	},
	{
		name: "free right before the lowest lazy area (merged into it)",
		setup: spaceWith(512, 40, {}, (i) => i % 3 === 1),
		op: (v) => v.free(areasOf(v)[0]!),
	},
	{ name: "resize, shrinking", setup: spaceWith(512, 40), op: (v) => void v.resize(areasOf(v)[7]!, P) },
	{ name: "resize, growing", setup: spaceWith(512, 40), op: (v) => void v.resize(areasOf(v)[8]!, 4 * P) },
	{
		name: "purge (detach, purge steps, merges into free space)",
		setup: spaceWith(512, 60),
		op: (v) => void v.purge({ sync: true }),
		settle: (r) => void r.purge({ sync: true }),
	},
	{
		name: "purge of lazy areas that touch (each run merged into free space as one)",
		setup: spaceWith(
			512,
			60,
			{},
			(i) => i % 5 < 3,
			(i) => [0, 2, 1][i % 5] ?? 3,
		), // in an order that merges none as it frees
		op: (v) => void v.purge({ sync: true }),
		settle: (r) => void r.purge({ sync: true }),
	},
	{
		name: "purge with 2 nodes (pools, decay)",
		setup: spaceWith(1024, 60, { nodes: 2 }),
		op: (v) => void v.purge({ sync: true }),
		settle: (r) => {
			r.purge({ sync: true });
			r.trim();
		},
	},
	{
		name: "small alloc that makes a new block (area, descriptor and index in one section)",
		setup: smallWith(40),
		op: (v) => void v.alloc(4096 - 16 * 3),
		project: smallLive,
	},
	{
		name: "small alloc from a block (lock-free: FREE and LIVE, one plain write each; the gauges are not read after a death)",
		setup: smallWith(40),
		op: (v) => void v.alloc(16),
		project: smallLive,
	},
	{
		name: "small alloc, tagged, that makes a block of its tag (the tag interned, the descriptor's TAG word)",
		setup: smallWith(40),
		op: (v) => void v.alloc(64, { tag: "crash" }),
		project: smallLive,
	},
	{
		name: "small alloc, tagged, that takes the class's empty spare of no tag (off its lists, retagged)",
		setup: () => {
			const st = smallWith(0)();
			const filled = Array.from({ length: 17 }, () => st.victim.alloc(256)); // a block of 16 areas, and one in the next
			for (const a of filled.slice(0, 16)) st.victim.free(a);
			st.victim.purge({ sync: true }); // the flush empties the first block: the class's spare
			return st;
		},
		op: (v) => void v.alloc(256, { tag: "crash" }),
		project: smallLive,
	},
	{
		name: "small free by the block's owner (lock-free: LIVE, DIRTY and the dirty count)",
		setup: smallWith(40),
		op: (v) => v.free(areasOf(v)[1]!),
		project: smallLive,
	},
	{
		name: "small free into another handle's block (remote: the hazard, the OR on REMOTE, the counts, the owner told)",
		setup: () => {
			const owner = smallWith(40)();
			const victim = VmapSpace.attach(owner.victim.handle);
			(victim as unknown as { areas: number[] }).areas = areasOf(owner.victim);
			return { victim, token: victim.token, recoverer: owner.victim };
		},
		op: (v) => v.free(areasOf(v)[1]!),
		tidy: (r) => void r.purge({ sync: true }), // the owner takes the free in, however far it got
		project: smallLive,
	},
	{
		name: "purge of small areas: the owner takes remote frees in and flushes (no hook: DIRTY to FREE; spares and retires)",
		setup: () => {
			const st = smallWith(60)();
			const other = VmapSpace.attach(st.victim.handle);
			areasOf(st.victim).forEach((a, i) => {
				if (i % 3 === 1) other.free(a);
			});
			return st;
		},
		op: (v) => void v.purge({ sync: true }),
		project: smallLive,
	},
	{
		name: "purge of small areas through a flush hook (DIRTY, FLUSHING, the hook, FREE; spares and retires)",
		setup: () => {
			const st = smallWith(60)();
			const victim = VmapSpace.attach(st.victim.handle, { flush: () => {} });
			const other = VmapSpace.attach(st.victim.handle);
			const areas = Array.from({ length: 60 }, (_, i) => victim.alloc(16 * (1 + (i % 16))));
			areas.forEach((a, i) => {
				if (i % 3 === 0) victim.free(a);
				if (i % 3 === 1) other.free(a);
			});
			return { victim, token: victim.token, recoverer: st.victim };
		},
		op: (v) => void v.purge({ sync: true }),
		project: smallLive,
	},
	{
		name: "a flush that empties three blocks of one class (one stays its spare, two retire straight to free space: every slot flushed)",
		setup: () => {
			const st = smallWith(0)();
			const areas = Array.from({ length: 49 }, () => st.victim.alloc(256)); // 16 a block: the 4th is the current one
			for (const a of areas.slice(0, 48)) st.victim.free(a);
			return st;
		},
		op: (v) => void v.purge({ sync: true }),
		project: smallLive,
	},
	{
		name: "small alloc that makes the 9th block (the block index is rebuilt, its old run freed)",
		setup: () => {
			const st = smallWith(0)();
			for (let i = 1; i < allocsToBlock(9); i++) st.victim.alloc(256);
			return st;
		},
		op: (v) => void v.alloc(256),
		project: smallLive,
	},
	{
		name: "close with small areas live (empty blocks retire)",
		setup: () => {
			const st = smallWith(40)();
			// Two classes' blocks empty: their areas not freed yet go now.
			areasOf(st.victim).forEach((a, i) => {
				if (i % 16 < 2 && i % 3 !== 0) st.victim.free(a);
			});
			return st;
		},
		op: (v) => v.close(),
		project: smallLive,
	},
	{
		name: "trim (full decay of the pools)",
		setup: () => {
			const st = spaceWith(1024, 60, { nodes: 2 })();
			st.victim.purge({ sync: true });
			return st;
		},
		op: (v) => void v.trim(),
		settle: (r) => void r.trim(),
	},
];

for (const s of scenarios) {
	test(`crash points: ${s.name}`, () => {
		const points = crashEveryPoint(s);
		console.log(`# ${s.name}: ${points} crash points, each recovered`);
	});
}

/** A heap of 256 pages (growing to 1024) with 30 areas of 1..4 pages, every third one freed, and a recoverer. */
function heapWith(options: { poison?: boolean } = {}) {
	return () => {
		const victim = VmapHeap.create({ size: 256 * P, maxSize: 1024 * P, nodes: 1, smallMax: 0, lazyMaxPages: 1 << 20, ...options });
		const areas: number[] = [];
		for (let i = 0; i < 30; i++) areas.push(victim.vmalloc(P * (1 + (i % 4))));
		for (let i = 0; i < 30; i += 3) victim.vfree(areas[i]!);
		(victim as unknown as { areas: number[] }).areas = areas;
		return { victim, token: victim.space.token, recoverer: VmapHeap.attach(victim.handle) };
	};
}

const heapAreas = (v: VmapHeap) => (v as unknown as { areas: number[] }).areas;

const heapScenarios: Array<Scenario<VmapHeap, VmapHeap>> = [
	{ name: "heap vmalloc", setup: heapWith(), op: (v) => void v.vmalloc(3 * P) },
	{ name: "heap vmalloc that grows the data", setup: heapWith(), op: (v) => void v.vmalloc(400 * P) },
	{ name: "heap vfree", setup: heapWith(), op: (v) => v.vfree(heapAreas(v)[4]!) },
	{
		name: "heap vrealloc that moves (two critical sections around the copy)",
		setup: heapWith({ poison: true }),
		op: (v) => void v.vrealloc(heapAreas(v)[4]!, 9 * P),
		both: true,
	},
	{ name: "heap freeDeferred", setup: heapWith(), op: (v) => v.freeDeferred(heapAreas(v)[5]!) },
	{ name: "heap vmMapRam", setup: heapWith(), op: (v) => void v.vmMapRam(3) },
	{
		name: "heap vmUnmapRam",
		setup: () => {
			const st = heapWith()();
			(st.victim as unknown as { areas: number[] }).areas = [st.victim.vmMapRam(3)];
			return st;
		},
		op: (v) => v.vmUnmapRam(heapAreas(v)[0]!, 3),
	},
	{
		name: "heap synchronize (the grace-period ring, the deferred areas freed)",
		setup: () => {
			const st = heapWith()();
			for (const i of [4, 5, 7]) st.victim.freeDeferred(heapAreas(st.victim)[i]!);
			st.recoverer.offline(); // holds no reference: the grace period waits for nobody else
			return st;
		},
		op: (v) => v.synchronize(),
		settle: (r) => r.synchronize(), // the frees a death left to do
	},
];

for (const s of heapScenarios) {
	test(`crash points: ${s.name}`, () => {
		const points = crashEveryPoint(s);
		console.log(`# ${s.name}: ${points} crash points, each recovered`);
	});
}
