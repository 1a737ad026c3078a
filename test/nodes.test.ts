/**
 * Nodes and pools ("mm: vmalloc: Offload free_vmap_area_lock lock"): decay arithmetic, full decay on overflow, trim(), the
 * pool probe, where areas live (busy by address, lazy and pooled by vn_id), find() across
 * zones, per-node statistics, check() on pools, and the parallel purge with a real helper.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VmapError, VmapSpace } from "../src/index.ts";
import { setVaFlags } from "../src/buffer/record.ts";
import { VA_LAZY } from "../src/buffer/layout.ts";
import { N_BUSY_ROOT, N_POOL_NR, NF_ALLOCS, nodeBase, POOL_LEN } from "../src/buffer/node-layout.ts";
import { poolWord } from "../src/tree/nodes.ts";
import { ZONE_TRIES } from "../src/core/zone-fit.ts";
import { freeBlocks, poolHead, pooledAreas } from "./support/inspect.ts";
import { startWorker } from "../harness/workers.ts";

const P = 4096;

/** `n` areas of `pages` pages taken through the pool path, freed and purged: they fill node 0's pool. */
function fillPool(s: VmapSpace, pages: number, n: number): number[] {
	const got = Array.from({ length: n }, () => s.alloc(pages * P));
	for (const a of got) s.free(a);
	s.purge();
	return got;
}

function poolLength(s: VmapSpace, pages: number): number {
	return s.stats({ pools: true }).nodes[s.node]!.poolLengths![pages - 1]!;
}

test("nodes option: default and bad values", () => {
	const cores = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency;
	assert.equal(VmapSpace.create({ size: 64 * P }).nodes, cores ? Math.min(128, cores) : 1);
	for (const bad of [0, 129, 1.5, -1, Number.NaN, "2"]) {
		assert.throws(
			() => VmapSpace.create({ size: 64 * P, nodes: bad as number }),
			/EINVAL: Cannot create a space: nodes must be a whole number from 1 to 128, got/,
		);
	}
	assert.throws(
		() => VmapSpace.create({ size: 64 * P, nodes: 2 }).stats({ pools: "yes" as never }),
		/EINVAL: Cannot read stats: pools must be true or false/,
	);
	// lazyMaxPages scales with fls(nodes), as the kernel's with fls(num_online_cpus()), up to an eighth of the space.
	assert.equal(VmapSpace.create({ size: 2 ** 40, nodes: 1 }).stats().lazyMaxPages, 8192);
	assert.equal(VmapSpace.create({ size: 2 ** 40, nodes: 4 }).stats().lazyMaxPages, 3 * 8192);
	assert.equal(VmapSpace.create({ size: 64 * P, nodes: 4 }).stats().lazyMaxPages, 8, "a small space drains by itself: an eighth of it");
	assert.equal(VmapSpace.create({ size: 2 * P, nodes: 1 }).stats().lazyMaxPages, 1);
});

test("one node: no pools, allocation is always the lowest fit", () => {
	const s = VmapSpace.create({ size: 64 * P, nodes: 1 });
	fillPool(s, 1, 8);
	assert.equal(s.stats().poolAreas, 0);
	assert.deepEqual(freeBlocks(s), [[s.start, s.end]]);
});

test("pools hold areas up to 1 MiB, in at most 4096 pools: bytes with pageSize 1, pages with pageSize 4096", () => {
	// pageSize 1: requests of 1..4096 bytes are pool sizes (the kernel's 256 pages would cover 256 bytes).
	const bytes = VmapSpace.create({ start: 1, size: 2 ** 24, pageSize: 1, nodes: 2, smallMax: 0 });
	for (const size of [256, 257, 4096]) {
		const got = Array.from({ length: 4 }, () => bytes.alloc(size));
		for (const a of got) bytes.free(a);
		bytes.purge();
		assert.equal(bytes.stats({ pools: true }).nodes[bytes.node]!.poolLengths![size - 1], 4, `${size}-byte areas pooled`);
		assert.ok(got.includes(bytes.alloc(size)), `a ${size}-byte request takes a pooled area`);
	}
	const beyond = bytes.alloc(4097);
	bytes.free(beyond);
	bytes.purge();
	assert.equal(bytes.stats().poolAreas, 4 * 3 - 3, "4097 bytes: no pool");
	bytes.check();
	// pageSize 4096: 256 pages (1 MiB) is the largest pooled area, as in the kernel.
	const pages = VmapSpace.create({ size: 2 ** 30, nodes: 2 });
	for (const n of [256, 257]) {
		const a = pages.alloc(n * P);
		pages.free(a);
		pages.purge();
	}
	assert.deepEqual([pages.stats().poolAreas, pages.stats().poolBytes], [1, 256 * P]);
	pages.check();
});

test("decay: each purge takes about 25% (len >> 2) from every pool; pools of fewer than 4 keep theirs", () => {
	const s = VmapSpace.create({ size: 256 * P, nodes: 2, lazyMaxPages: 1000 });
	fillPool(s, 1, 8);
	fillPool(s, 3, 2); // this purge decays pool 1 first: 8 -> 6
	const lengths: Array<[number, number]> = [[poolLength(s, 1), poolLength(s, 3)]];
	for (let i = 0; i < 5; i++) {
		assert.equal(s.purge().status, "empty", "nothing lazy, yet the purge decays");
		lengths.push([poolLength(s, 1), poolLength(s, 3)]);
		s.check();
	}
	assert.deepEqual(lengths, [
		[6, 2],
		[5, 2],
		[4, 2],
		[3, 2],
		[3, 2],
		[3, 2],
	]);
	const st = s.stats();
	assert.equal(st.nodes[0]!.decayedAreas, 5);
	assert.deepEqual([st.poolAreas, st.poolBytes], [5, (3 + 2 * 3) * P]);
});

test("trim(): every pool decays fully, under the purge mutex; the shrinker's count is the pooled areas", () => {
	const s = VmapSpace.create({ size: 256 * P, nodes: 4 });
	fillPool(s, 1, 7);
	fillPool(s, 5, 3);
	assert.deepEqual(s.trim(), { areas: 6 + 3, bytes: (6 + 15) * P, blocks: 0 }); // pool 1 lost 1 to the second purge's decay
	const st = s.stats();
	assert.deepEqual([st.poolAreas, st.poolBytes, st.trims], [0, 0, 1]);
	assert.deepEqual(freeBlocks(s), [[s.start, s.end]]);
	assert.deepEqual(s.trim(), { areas: 0, bytes: 0, blocks: 0 });
	s.check();
});

test("overflow: the purge decays every pool fully and does not refill them, so the retry succeeds", () => {
	const s = VmapSpace.create({ size: 16 * P, nodes: 2, lazyMaxPages: 1000 });
	fillPool(s, 1, 16); // the whole space is in node 0's pool of one-page areas
	assert.equal(freeBlocks(s).length, 0);
	const taken = [s.alloc(P), s.alloc(P), s.alloc(P)]; // pool hits
	for (const a of taken) s.free(a); // lazy, tagged for node 0: a normal purge would pool them
	const flushes: number[] = [];
	const a = s.alloc(2 * P); // pool 2 is empty and the free tree too: overflow purge, retry
	assert.equal(a, s.start);
	const st = s.stats();
	assert.deepEqual([st.overflowPurges, st.poolAreas, st.lazyAreas], [1, 0, 0], "no pool was refilled");
	assert.deepEqual(flushes, []);
	s.check();
});

test("the pool probe looks at the head only: a misaligned head moves to the tail and the allocation misses", () => {
	const s = VmapSpace.create({ start: P, size: 64 * P, nodes: 2, lazyMaxPages: 1000 });
	const a = s.alloc(P); // page 1 (an empty pool: a miss)
	const b = s.alloc(P); // page 2 (a miss)
	const c = s.alloc(P); // page 3: odd (a miss)
	for (const x of [a, b, c]) s.free(x);
	s.purge(); // the purge takes the lazy tree lowest first and pushes a, b, then c: c is the pool's head
	assert.deepEqual(poolHead(s, 0, 1), [c, c + P]);
	const d = s.alloc(P, { align: 2 * P }); // c is not 2-page aligned: rotated, and the free tree serves
	assert.equal(d, 4 * P);
	assert.deepEqual(poolHead(s, 0, 1), [b, b + P]);
	assert.deepEqual([s.stats().poolHits, s.stats().poolMisses], [0, 4]);
	assert.equal(s.alloc(P, { align: 2 * P }), b, "the aligned head is a hit");
	assert.equal(s.alloc(P), a);
	assert.equal(s.alloc(P), c, "the rotated head went to the tail");
	assert.deepEqual([s.stats().poolHits, s.stats().poolMisses], [3, 4]);
	// A window that is not the whole space never uses the pools, and its areas carry no node.
	fillPool(s, 1, 2);
	const e = s.alloc(P, { vend: s.end - P });
	assert.equal(
		pooledAreas(s).some(([x]) => x === e),
		false,
	);
	s.check();
});

test("busy areas live at their address's node, lazy ones at their vn_id's; find() searches nodes backwards", () => {
	const Z = 16 * P; // zone size
	// Four zones only: node 0's next zone after 40P would be zone 4, past the end, so a pool-path
	// allocation of node 0 lands in zone 2 (zone-fit.ts falls back to the lowest fit).
	const s = VmapSpace.create({ start: 0, size: 4 * Z, nodes: 4, lazyMaxPages: 1000 });
	const big = s.alloc(40 * P); // zones 0-2, stored at node 0
	assert.equal(big, 0);
	const inZone2 = big + 35 * P;
	assert.deepEqual(s.find(inZone2), { start: 0, end: 40 * P, size: 40 * P, tag: undefined, state: "busy", owner: 1 });
	const viaPool = s.alloc(P); // [40P, 41P): zone 2, address node 2, asked through node 0's pool path
	const windowed = s.alloc(P, { vend: s.end - P }); // zone 2 too, no node id
	let st = s.stats();
	assert.deepEqual(
		st.nodes.map((n) => n.busyAreas),
		[1, 0, 2, 0],
	);
	s.free(viaPool);
	s.free(windowed);
	st = s.stats();
	assert.deepEqual(
		st.nodes.map((n) => n.lazyAreas),
		[1, 0, 1, 0],
		"lazy: vn_id 0, and the address node for the windowed one",
	);
	assert.deepEqual(s.find(viaPool + 1)?.state, "lazy");
	s.check();
	s.purge();
	assert.deepEqual(pooledAreas(s), [[viaPool, viaPool + P]], "only the pool-path area refills node 0's pool");
	assert.equal(s.find(viaPool), undefined, "a pooled area is free space to callers");
	assert.throws(() => s.free(viaPool), /ENOENT: Cannot free 0x28000: no area starts there; the address is free/);
	s.free(big);
	s.purge();
	s.trim();
	assert.deepEqual(freeBlocks(s), [[s.start, s.end]]);
	s.check();
});

test("a pool miss starts in a zone of the asking handle's node, so that its busy tree and, after its purge, its pool are that node's: two handles on two nodes share no node lock", () => {
	const Z = 16 * P;
	const s = VmapSpace.create({ start: 0, size: 64 * Z, nodes: 2, lazyMaxPages: 1 << 20 });
	const other = VmapSpace.attach(s.handle);
	assert.deepEqual([s.node, other.node], [0, 1]);
	const zoneOf = (addr: number) => Math.floor(addr / Z) % 2;
	// Node 1's handle: its first area is its zone's first page, not the space's lowest page.
	const a = other.alloc(P);
	assert.equal(a, Z, "the lowest page of node 1's first zone (zone 1)");
	const b = s.alloc(P);
	assert.equal(b, 0, "node 0: the plain lowest fit is in its zone already");
	// Fill node 0's first zone: the next pool miss of node 0 goes to its next zone (zone 2), over
	// free pages in zone 1 that are lower.
	const fill = s.alloc(15 * P);
	assert.equal(fill, P);
	const c = s.alloc(P);
	assert.equal(c, 2 * Z, "node 0's next zone");
	for (const x of [a, b, c, fill]) assert.equal(s.state.addrNode(x), zoneOf(x));
	assert.deepEqual([zoneOf(a), zoneOf(b), zoneOf(c)], [1, 0, 0]);
	// Larger than a pool holds (256 pages) and windowed requests keep the plain lowest fit.
	const large = s.alloc(257 * P);
	assert.equal(large, 2 * Z + P, "not a pool's size: the lowest fit");
	const windowed = s.alloc(P, { vend: s.end - P });
	assert.equal(windowed, Z + P, "a window: the lowest fit, in zone 1 though node 0 asked");
	// Freed and purged, each area refills its own node's pool, and is handed out again by it.
	other.free(a);
	s.free(c);
	s.purge();
	assert.deepEqual(pooledAreas(s), [
		[Z, Z + P],
		[2 * Z, 2 * Z + P],
	]);
	assert.equal(other.alloc(P), a, "node 1's pool hit");
	assert.equal(s.alloc(P), c, "node 0's pool hit");
	s.check();
	other.close();
});

test("a pool miss whose node's zones are full as far as ZONE_TRIES searches reach takes the first zone of its node in a block long enough to hold one, else the plain lowest fit: the search under the free-space lock is bounded", () => {
	const Z = 16 * P;
	const zones = 2 * ZONE_TRIES + 8;
	const s = VmapSpace.create({ start: 0, size: zones * Z, nodes: 2, lazyMaxPages: 1 << 20 });
	assert.equal(s.node, 0);
	// Fill node 0's zones 0, 2, 4, ... up to one past the last the searches reach (each search
	// skips one zone of node 1), with areas larger than a pool holds (so no pool path); node 1's
	// zones stay free.
	const reach = 2 * ZONE_TRIES + 2;
	for (let z = 0; z < reach; z += 2) s.alloc(Z, { vstart: z * Z, vend: (z + 1) * Z });
	const far = s.alloc(P);
	assert.equal(far, reach * Z, "node 0's zone past them, in the free block above: one search for a block that holds a zone");
	// With no such block (everything above taken), the plain lowest fit.
	s.alloc(zones * Z - reach * Z - P, { vstart: reach * Z + P, vend: zones * Z });
	assert.equal(s.alloc(P), Z, "the plain lowest fit, in node 1's zone 1");
	// One zone of node 0 within reach is free again: the search finds it.
	s.free(2 * (ZONE_TRIES - 1) * Z);
	s.purge({ sync: true });
	assert.equal(s.alloc(P), 2 * (ZONE_TRIES - 1) * Z, "node 0's zone found by the last search");
	s.check();
});

test("check() catches corrupt pools and misplaced areas", () => {
	const cases: Array<[string, (s: VmapSpace) => void, RegExp]> = [
		[
			"pool count",
			(s) => {
				s.table.hdr[nodeBase(0) + N_POOL_NR]!++;
			},
			/node 0 pools: hold \d+ areas, header says/,
		],
		[
			"allocations count",
			(s) => {
				s.table.hdrF[(nodeBase(0) >> 1) + NF_ALLOCS]!++;
			},
			/node 0 busy tree: holds \d+ areas, but \d+ allocations less \d+ frees counted/,
		],
		[
			"pool length",
			(s) => {
				s.table.hdr[poolWord(0, 1) + POOL_LEN]!++;
			},
			/node 0 pool 1: holds \d+ areas, header says/,
		],
		[
			"pooled flag",
			(s) => {
				setVaFlags(s.table.i32, s.table.hdr[poolWord(0, 1)]!, VA_LAZY);
			},
			/node 0 pool 1: record \d+ has state flags 2, not pooled/,
		],
		[
			"busy node",
			(s) => {
				const t = s.table;
				const b0 = nodeBase(0) + N_BUSY_ROOT;
				const b1 = nodeBase(1) + N_BUSY_ROOT;
				[t.hdr[b0], t.hdr[b1]] = [t.hdr[b1]!, t.hdr[b0]!];
			},
			/node \d busy tree: record \d+ starts at 0x[0-9a-f]+, which belongs to node \d/,
		],
	];
	for (const [what, breakIt, msg] of cases) {
		const s = VmapSpace.create({ start: 0, size: 256 * P, nodes: 2, lazyMaxPages: 1000 });
		fillPool(s, 1, 4);
		s.alloc(P, { vend: s.end - P }); // zone 0: node 0
		s.alloc(P, { vstart: 16 * P }); // zone 1: node 1
		s.check();
		breakIt(s);
		assert.throws(
			() => s.check(),
			(e: unknown) => e instanceof VmapError && e.code === "ECORRUPT" && msg.test(e.message),
			what,
		);
	}
});

test("parallel purge: an idle attached worker purges posted nodes (helpers = clamp(vmapLazyNr / lazyMaxPages, 1, nodes with work) - 1)", async () => {
	const s = VmapSpace.create({ size: 2 ** 30, nodes: 4, lazyMaxPages: 1000, priorityPurge: false });
	const w = startWorker(new URL("./support/idle-helper.ts", import.meta.url), { handle: s.handle });
	try {
		await new Promise((resolve, reject) => {
			w.once("message", resolve);
			w.once("error", reject);
		});
		const rounds: string[] = [];
		for (let round = 0; round < 5 && s.stats().helped === 0; round++) {
			// Windowed allocations carry no node id: their lazy areas sit at their address's
			// node, so all four nodes have work, and 40 units of backlog post 3 of them.
			const live = Array.from({ length: 40_000 }, () => s.alloc(P, { vend: s.end - P }));
			for (const a of live) s.free(a);
			const t0 = performance.now();
			const r = s.purge({ sync: true });
			rounds.push(`${r.areas} areas in ${(performance.now() - t0).toFixed(1)} ms, helped ${s.stats().helped}`);
			assert.equal(r.status, "done");
		}
		console.log(`# parallel purge: ${rounds.join("; ")}`);
		const st = s.stats();
		assert.ok(st.helped > 0, "the idle worker helped");
		assert.equal(
			st.nodes.reduce((n, x) => n + x.helperRuns, 0),
			st.helped,
		);
		assert.deepEqual([st.lazyAreas, st.vmapLazyNr, st.busyAreas], [0, 0, 0]);
		s.check();
		assert.deepEqual(freeBlocks(s), [[s.start, s.end]]);
	} finally {
		w.postMessage("exit");
		await new Promise((resolve) => w.once("exit", resolve));
	}
});

test("a one-thread space purges every node itself", () => {
	const s = VmapSpace.create({ size: 2 ** 30, nodes: 4, lazyMaxPages: 100, priorityPurge: false, shared: false });
	const live = Array.from({ length: 4000 }, () => s.alloc(P, { vend: s.end - P }));
	for (const a of live) s.free(a);
	assert.equal(s.purge().status, "done");
	assert.equal(s.stats().helped, 0);
	s.check();
	assert.deepEqual(freeBlocks(s), [[s.start, s.end]]);
});
