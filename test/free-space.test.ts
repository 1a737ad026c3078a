import assert from "node:assert/strict";
import { test } from "node:test";
import { VmapSpace } from "../src/index.ts";
import { ALIGNED_PROBES, findVmapLowestLinearMatch, findVmapLowestMatch, fitIn } from "../src/tree/free-space.ts";
import { vaStart } from "../src/buffer/record.ts";
import { HDR_FREE_NR } from "../src/buffer/layout.ts";
import { busyAreas, freeBlocks } from "./support/inspect.ts";
import { randomBelow } from "../harness/random.ts";

const P = 4096;
const B = 0x10000;
/** A space of 16 pages at B. */
const space16 = () => VmapSpace.create({ start: B, size: 16 * P });
const at = (pages: number) => B + pages * P;

test("fit types: full, left edge, right edge, middle split", () => {
	// Full fit: the only block is used whole and leaves the free tree.
	let s = space16();
	assert.equal(s.alloc(16 * P), at(0));
	assert.deepEqual(freeBlocks(s), []);
	assert.equal(s.table.hdr[HDR_FREE_NR], 0);
	s.check();

	// Left edge: the block keeps its tail.
	s = space16();
	assert.equal(s.alloc(3 * P), at(0));
	assert.deepEqual(freeBlocks(s), [[at(3), at(16)]]);
	s.check();

	// Right edge: the window ends where the block ends, vstart puts the area at its end.
	s = space16();
	assert.equal(s.alloc(2 * P, { vstart: at(14) }), at(14));
	assert.deepEqual(freeBlocks(s), [[at(0), at(14)]]);
	s.check();

	// Middle: the block splits in two.
	s = space16();
	assert.equal(s.alloc(2 * P, { vstart: at(5) }), at(5));
	assert.deepEqual(freeBlocks(s), [
		[at(0), at(5)],
		[at(7), at(16)],
	]);
	assert.deepEqual(busyAreas(s), [[at(5), at(7)]]);
	s.check();

	// Middle by alignment: align 8 pages (0x8000) inside the block [B + 1 page, B + 16 pages).
	s = space16();
	s.alloc(P);
	assert.equal(s.alloc(P, { align: 8 * P }), 0x18000);
	assert.deepEqual(freeBlocks(s), [
		[at(1), 0x18000],
		[0x19000, at(16)],
	]);
	s.check();
});

test("merge on free: with the previous block, the next, both, neither", () => {
	const s = space16();
	const a = [0, 1, 2, 3, 4].map(() => s.alloc(P)); // pages 0..4 busy, [5, 16) free
	s.alloc(11 * P); // everything busy
	assert.deepEqual(freeBlocks(s), []);
	// Free is lazy: each range joins free space at the purge after it.
	const release = (addr: number) => {
		s.free(addr);
		s.purge();
	};
	release(a[1]!); // neither neighbour free: a new block
	assert.deepEqual(freeBlocks(s), [[at(1), at(2)]]);
	release(a[2]!); // touches the previous block
	assert.deepEqual(freeBlocks(s), [[at(1), at(3)]]);
	release(a[0]!); // touches the next block
	assert.deepEqual(freeBlocks(s), [[at(0), at(3)]]);
	release(a[4]!);
	assert.deepEqual(freeBlocks(s), [
		[at(0), at(3)],
		[at(4), at(5)],
	]);
	release(a[3]!); // touches both: three blocks become one
	assert.deepEqual(freeBlocks(s), [[at(0), at(5)]]);
	assert.equal(s.table.hdr[HDR_FREE_NR], 1);
	s.check();
});

test("the lowest fit honours vstart, vend and large alignments", () => {
	const s = VmapSpace.create({ start: 0, size: 1 << 30, smallMax: 0 }); // the lowest fit, every time
	const a = s.alloc(P, { align: 1 << 20 });
	assert.equal(a, 0);
	assert.equal(s.alloc(P, { align: 1 << 20 }), 1 << 20);
	assert.equal(s.alloc(P), P);
	assert.equal(s.alloc(P, { vstart: 5 * P + 1 }), 6 * P, "a ragged vstart rounds up to the next page");
	assert.equal(s.alloc(3 * P, { vend: 5 * P }), 2 * P);
	assert.throws(
		() => s.alloc(2 * P, { vend: 6 * P }),
		/EBUSY: alloc for size 8192 align 4096 failed: Address range restricted to 0x0 - 0x6000/,
	);
	s.check();
});

/** A free space of many blocks of mixed sizes, from a seeded random alloc/free history. */
function fragmented(pageSize: number, seed: number): VmapSpace {
	const s = VmapSpace.create({ start: pageSize * 7, size: pageSize * 200_000, pageSize, shared: false });
	const rnd = randomBelow(seed);
	const live: number[] = [];
	for (let i = 0; i < 6000; i++) live.push(s.alloc((1 + rnd(24)) * pageSize, { align: pageSize * 2 ** rnd(4) }));
	for (let i = 0; i < 6000; i++) if (rnd(2) === 0) s.free(live[i]!);
	s.purge();
	s.check();
	return s;
}

/** Free blocks of at least `size` bytes starting in [lo, the start of block `va`): what an aligned search probes before taking `va`. */
function bigBlocksBelow(s: VmapSpace, va: number, size: number, lo: number): number {
	const limit = va === 0 ? Infinity : vaStart(s.table.f64, va);
	return freeBlocks(s).filter(([start, end]) => start >= lo && start < limit && end - start >= size).length;
}

test("findVmapLowestMatch agrees with the linear oracle (aligned: exactly while few blocks lie below)", () => {
	for (const pageSize of [1, 4096]) {
		const s = fragmented(pageSize, 7 + pageSize);
		const t = s.table;
		const rnd = randomBelow(99);
		let found = 0;
		for (let q = 0; q < 20_000; q++) {
			const size = (1 + rnd(40)) * pageSize;
			const align = pageSize * 2 ** rnd(q % 2 === 0 ? 1 : 9);
			const lo = s.start + rnd(s.size);
			const hi = Math.min(s.end, lo + size + rnd(s.size));
			const fast = findVmapLowestMatch(t, size, align, lo, hi, pageSize);
			const slow = findVmapLowestLinearMatch(t, size, align, lo, hi);
			if (align === pageSize || bigBlocksBelow(s, fast, size, lo) < ALIGNED_PROBES)
				assert.equal(fast, slow, `size ${size} align ${align} window [${lo}, ${hi})`);
			else assert.equal(fast === 0, slow === 0, `exhaustion must mean no fit: size ${size} align ${align} window [${lo}, ${hi})`);
			if (fast !== 0) {
				assert.ok(fitIn(t, fast, size, align, lo, hi) >= 0);
				found++;
			}
		}
		assert.ok(found > 5000, `too few queries found a block (${found}): the test would prove little`);
	}
});

test("an aligned request takes an exact aligned hole below the top, which the adjusted search cannot see", () => {
	// A hole of exactly 16 pages at a 16-page boundary, busy areas on both sides, and the
	// rest of the space free above: the kernel's adjusted search (size + align - pageSize)
	// finds only the top, and the space would grow while the hole stays empty.
	const s = VmapSpace.create({ start: 0, size: 256 * P, pageSize: P, shared: false });
	const below = s.alloc(16 * P);
	const hole = s.alloc(16 * P);
	const above = s.alloc(16 * P);
	s.free(hole);
	s.purge();
	assert.deepEqual(freeBlocks(s)[0], [16 * P, 32 * P]);
	assert.equal(s.alloc(16 * P, { align: 16 * P }), hole);
	assert.equal(s.alloc(16 * P, { align: 16 * P }), 48 * P);
	s.free(below);
	s.free(above);
	s.check();
});
