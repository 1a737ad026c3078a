import assert from "node:assert/strict";
import { test } from "node:test";
import { VmapError, VmapSpace } from "../src/index.ts";
import { PLAIN, rbErase } from "../src/tree/rbtree.ts";
import {
	setSubtreeMaxSize,
	setVaChild,
	setVaEnd,
	setVaFlags,
	setVaNext,
	setVaRed,
	subtreeMaxSize,
	vaEnd,
	vaLeft,
	vaNext,
	vaRight,
} from "../src/buffer/record.ts";
import { HDR_CAPACITY, HDR_FREE_ROOT, INITIAL_CAPACITY, VA_LEFT, VA_RIGHT, VA_BUSY } from "../src/buffer/layout.ts";
import {
	N_BUSY_ROOT,
	N_LAZY_HEAD,
	N_LAZY_NR,
	N_LAZY_LAST,
	N_LAZY_ROOT,
	NF_BUSY_BYTES,
	NF_LAZY_ADDED,
	NF_LAZY_MIN,
	nodeBase,
} from "../src/buffer/node-layout.ts";
import { busyAreas, freeBlocks } from "./support/inspect.ts";
import { code } from "./support/code.ts";

const P = 4096;

test("the record table grows while areas are allocated, and views follow", () => {
	for (const shared of [true, false]) {
		const s = VmapSpace.create({ size: 2 ** 40, shared, smallMax: 0 }); // areas, not small areas
		assert.equal(s.table.buffer instanceof SharedArrayBuffer, shared);
		const n = 5 * INITIAL_CAPACITY;
		const live: number[] = [];
		// Every other area freed: each free leaves a hole, so records are busy plus free blocks.
		for (let i = 0; i < n; i++) live.push(s.alloc(P));
		for (let i = 0; i < n; i += 2) s.free(live[i]!);
		s.purge();
		assert.ok(s.table.hdr[HDR_CAPACITY]! > INITIAL_CAPACITY, "the table should have grown");
		assert.equal(s.table.buffer.byteLength, s.table.i32.byteLength + s.table.i32.byteOffset);
		s.check();
		for (let i = 1; i < n; i += 2) s.free(live[i]!);
		s.purge();
		assert.deepEqual(freeBlocks(s), [[s.start, s.end]]);
		s.check();
	}
});

test("maxAreas: running out of records is ENOMEM and changes nothing", () => {
	const s = VmapSpace.create({ size: 64 * P, maxAreas: 8 });
	const got: number[] = [];
	let err = "";
	for (let i = 0; i < 64 && !err; i++) {
		try {
			got.push(s.alloc(P, { align: 2 * P })); // every area leaves a free hole: two records each
		} catch (e) {
			err = (e as VmapError).code;
		}
	}
	assert.equal(err, "ENOMEM");
	const before = [busyAreas(s), freeBlocks(s)];
	assert.equal(
		code(() => s.alloc(P, { align: 2 * P })),
		"ENOMEM",
	);
	assert.deepEqual([busyAreas(s), freeBlocks(s)], before);
	s.check();
	for (const a of got) s.free(a);
	s.purge();
	assert.deepEqual(freeBlocks(s), [[s.start, s.end]]);
	s.check();
});

test("addresses above 4 GiB and up to 2^53", () => {
	const top = VmapSpace.create({ start: 2 ** 52, size: 2 ** 52 - 2 ** 20, pageSize: 2 ** 20 });
	const a = top.alloc(2 ** 40, { align: 2 ** 50 });
	assert.equal(a, 2 ** 52);
	const b = top.alloc(2 ** 20, { vstart: 2 ** 53 - 2 ** 21 });
	assert.equal(b, 2 ** 53 - 2 ** 21);
	assert.deepEqual(top.find(b + 12345), { start: b, end: b + 2 ** 20, size: 2 ** 20, tag: undefined, state: "busy", owner: 1 });
	top.check();
	const big = VmapSpace.create({ start: 2 ** 33, size: 2 ** 40, smallMax: 0 }); // exact lowest fits
	const x = big.alloc(2 ** 33);
	assert.equal(x, 2 ** 33);
	assert.equal(big.alloc(P), 2 ** 34);
	big.free(x);
	big.purge();
	assert.equal(big.alloc(P), 2 ** 33);
	big.check();
});

test("tags are interned once and read back", () => {
	const s = VmapSpace.create({ size: 1024 * P });
	const a = s.alloc(P, { tag: "textures" });
	const b = s.alloc(P, { tag: "textures" });
	const c = s.alloc(P, { tag: "ünïcødé ✓" });
	assert.equal(s.find(a)?.tag, "textures");
	assert.equal(s.find(b)?.tag, "textures");
	assert.equal(s.find(c + P - 1)?.tag, "ünïcødé ✓");
	assert.equal(
		code(() => s.alloc(P, { tag: "é".repeat(32) })),
		"EINVAL",
	); // 64 bytes of UTF-8
	assert.equal(s.alloc(P, { tag: `${"é".repeat(31)}x` }) > 0, true); // 63 bytes
	for (let i = 0; i < 1020; i++) s.alloc(P, { tag: `t${i}` }); // 3 + 1020 = 1023 tags: the table is full
	assert.match(String(tryMsg(() => s.alloc(P, { tag: "one too many" }))), /EINVAL: .*tag table is full/);
	s.check();
});

function tryMsg(fn: () => unknown): string | undefined {
	try {
		fn();
	} catch (e) {
		return (e as Error).message;
	}
	return undefined;
}

test("create: bad options are EINVAL, with the option named", () => {
	const bad: Array<[unknown, RegExp]> = [
		[undefined, /options must be an object/],
		[{ size: 0 }, /size must be a positive multiple of pageSize 4096, got 0/],
		[{ size: 4097 }, /size must be/],
		[{ size: -4096 }, /size must be/],
		[{ size: Number.NaN }, /size must be/],
		[{ size: 2 ** 53 }, /size must be/],
		[{ size: P, pageSize: 3000 }, /pageSize must be a power of two, got 3000/],
		[{ size: P, pageSize: 0 }, /pageSize must be a power of two/],
		[{ size: P, start: 100 }, /start must be a non-negative multiple of pageSize 4096, got 100/],
		[{ size: P, start: -4096 }, /start must be/],
		[{ size: 2 ** 52, start: 2 ** 52 }, /start \+ size must be at most 2\^53 - 1/],
		[{ size: P, maxAreas: 0 }, /maxAreas must be a whole number from 1 to/],
		[{ size: P, maxAreas: 2 ** 40 }, /maxAreas/],
		[{ size: P, shared: "yes" }, /shared must be true or false, got "yes"/],
		[{ size: P, alignment: 4 }, /unknown option "alignment"/],
	];
	for (const [opts, msg] of bad) {
		assert.throws(
			() => VmapSpace.create(opts as never),
			(e: unknown) => e instanceof VmapError && e.code === "EINVAL" && msg.test(e.message),
			JSON.stringify(opts),
		);
	}
});

test("EBUSY names size, align and window, and says how full the space is; a failed alloc changes nothing", () => {
	const s = VmapSpace.create({ start: 0x10000000, size: 8 * P });
	s.alloc(6 * P);
	const before = [busyAreas(s), freeBlocks(s)];
	assert.throws(() => s.alloc(4 * P, { align: 65536 }), {
		name: "VmapError",
		code: "EBUSY",
		message:
			"EBUSY: alloc for size 16384 align 65536 failed: Address range restricted to 0x10000000 - 0x10008000: the space's largest free block is 8192 bytes",
	});
	assert.deepEqual([busyAreas(s), freeBlocks(s)], before);
	s.check();
});

test("free and find: wrong addresses are named in the message", () => {
	const s = VmapSpace.create({ start: 0x10000, size: 16 * P });
	const a = s.alloc(2 * P);
	assert.throws(() => s.free(a + P), /ENOENT: Cannot free 0x11000: no area starts there; it lies inside the area \[0x10000, 0x12000\)/);
	assert.throws(() => s.free(0x20000 - P), /ENOENT: Cannot free 0x1f000: no area starts there; the address is free/);
	assert.throws(() => s.free(0x20000), /ENOENT: Cannot free 0x20000: the address is outside the space \[0x10000, 0x20000\)/);
	assert.throws(() => s.free(Number.NaN), /EINVAL: Cannot free: address must be a whole number, got NaN/);
	assert.throws(() => s.find(1.5), /EINVAL: Cannot find: address must be a whole number, got 1.5/);
	assert.equal(s.find(0), undefined);
	assert.equal(s.find(a + 2 * P), undefined);
	s.free(a);
	assert.throws(
		() => s.free(a),
		/EDOUBLEFREE: Cannot free 0x10000: the area \[0x10000, 0x12000\) is freed already \(lazy, waiting for a purge\)/,
	);
	s.purge();
	assert.equal(
		code(() => s.free(a)),
		"ENOENT",
	);
	s.check();
});

test("check() catches corruption of every kind it promises to", () => {
	const B = nodeBase(0);
	const F = B >> 1;
	const corruptions: Array<[string, (s: VmapSpace) => void, RegExp]> = [
		[
			"subtreeMaxSize",
			(s) => {
				const va = s.table.hdr[HDR_FREE_ROOT]!;
				setSubtreeMaxSize(s.table.f64, va, subtreeMaxSize(s.table.f64, va) + P);
			},
			/subtreeMaxSize .* recomputed/,
		],
		[
			"red root",
			(s) => {
				setVaRed(s.table.i32, s.table.hdr[B + N_BUSY_ROOT]!);
			},
			/root \d+ is red/,
		],
		[
			"block end",
			(s) => {
				const va = s.table.hdr[HDR_FREE_ROOT]!;
				setVaEnd(s.table.f64, va, vaEnd(s.table.f64, va) + 1);
			},
			/not page aligned/,
		],
		[
			"overlap",
			(s) => {
				const va = s.table.hdr[B + N_BUSY_ROOT]!;
				setVaEnd(s.table.f64, va, vaEnd(s.table.f64, va) + P);
			},
			/overlap|touch|before the previous/,
		],
		[
			"free list",
			(s) => {
				setVaNext(s.table.i32, s.table.hdr[HDR_FREE_ROOT]!, 0);
			},
			/free list/,
		],
		[
			"byte counter",
			(s) => {
				s.table.hdrF[F + NF_BUSY_BYTES]! += P;
			},
			/busy tree: holds \d+ bytes in busy areas, header says/,
		],
		[
			"record 0",
			(s) => {
				s.table.f64[0] = 1;
			},
			/record 0 \(nil\) has been written/,
		],
		[
			"lazy flag",
			(s) => {
				setVaFlags(s.table.i32, s.table.hdr[B + N_LAZY_ROOT]!, VA_BUSY);
			},
			/lazy tree: record \d+ has state flags 1, not lazy/,
		],
		[
			"vmapLazyNr",
			(s) => {
				s.table.hdrF[F + NF_LAZY_ADDED]! -= 1;
			},
			/vmapLazyNr: header says/,
		],
		[
			"flush range",
			(s) => {
				s.table.hdrF[F + NF_LAZY_MIN]! -= P;
			},
			/incremental flush range says/,
		],
		[
			"lazy count",
			(s) => {
				s.table.hdr[B + N_LAZY_NR]!++;
			},
			/lazy tree: holds \d+ areas, header says/,
		],
		[
			"lazy tree lost an area",
			(s) => {
				rbErase(s.table, B + N_LAZY_ROOT, s.table.hdr[B + N_LAZY_ROOT]!, PLAIN);
			},
			/lazy tree: its list's entry \d+ is record \d+, the tree's is record \d+/,
		],
		[
			"lazy list longer than the tree",
			(s) => {
				const t = s.table;
				let last = t.hdr[B + N_LAZY_HEAD]!;
				while (vaNext(t.i32, last) !== 0) last = vaNext(t.i32, last);
				setVaNext(t.i32, last, last);
			},
			/lazy tree: its list continues past the tree's last record/,
		],
		[
			"lazy tree unbalanced",
			(s) => {
				setVaRed(s.table.i32, s.table.hdr[B + N_LAZY_ROOT]!);
			},
			/lazy tree: root \d+ is red/,
		],
		[
			"lazy tree's last",
			(s) => {
				s.table.hdr[B + N_LAZY_LAST] = s.table.hdr[B + N_LAZY_ROOT]!;
			},
			/lazy tree: its last record is \d+, LAZY_LAST says \d+/,
		],
		[
			"lazy tree order",
			(s) => {
				const t = s.table;
				const r = t.hdr[B + N_LAZY_ROOT]!;
				const l = vaLeft(t.i32, r);
				setVaChild(t.i32, r, VA_LEFT, vaRight(t.i32, r));
				setVaChild(t.i32, r, VA_RIGHT, l);
			},
			/lazy tree: record \d+ starts at 0x[0-9a-f]+, before the previous one ends/,
		],
	];
	for (const [what, breakIt, msg] of corruptions) {
		const s = VmapSpace.create({ size: 256 * P });
		const live = Array.from({ length: 40 }, (_, i) => s.alloc(P * (1 + (i % 3))));
		for (let i = 0; i < 40; i += 3) s.free(live[i]!);
		s.purge(); // holes in free space
		for (let i = 1; i < 40; i += 6) s.free(live[i]!); // and lazy areas (indices 1 mod 3: not freed above)
		s.check();
		breakIt(s);
		assert.throws(
			() => s.check(),
			(e: unknown) => e instanceof VmapError && e.code === "ECORRUPT" && msg.test(e.message),
			what,
		);
	}
});

test("nowait: an allocation that finds no fit fails at once, without the overflow purge", () => {
	let flushes = 0;
	const s = VmapSpace.create({ size: 8 * P, lazyMaxPages: 100, flush: () => void flushes++ });
	const a = s.alloc(8 * P);
	s.free(a);
	assert.equal(
		code(() => s.alloc(P, { nowait: true })),
		"EBUSY",
	);
	assert.deepEqual([flushes, s.stats().lazyAreas], [0, 1], "no purge: the lazy area stays");
	assert.equal(
		code(() => s.alloc(P, { nowait: 1 as never })),
		"EINVAL",
	);
	assert.equal(s.alloc(P), a, "without nowait the overflow purge makes room");
	assert.equal(flushes, 1);
});
