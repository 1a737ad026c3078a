import assert from "node:assert/strict";
import { test } from "node:test";
import { VmapHeap } from "../src/index.ts";
import { B_MAPPED, RAM_BLOCK_WORDS, blocksOffset, H_RING_CAP } from "../src/heap/layout.ts";
import { HDR_EXT_OFFSET } from "../src/buffer/layout.ts";
import { code } from "./support/code.ts";

const P = 4096;

/** Everything a bad call must leave as it was. */
function snapshot(h: VmapHeap): unknown {
	const s = h.stats();
	return [
		s.busyBytes,
		s.lazyBytes,
		s.freeBytes,
		s.allocs,
		s.frees,
		s.blocks,
		s.mappedPages,
		s.dirtyPages,
		s.deferredPending,
		s.dataBytes,
		h.vmallocinfo(),
	];
}

test("heap options: every wrong value is EINVAL in the heap's words", () => {
	const bad: Array<[unknown, RegExp]> = [
		[undefined, /options must be an object/],
		[{ size: 0 }, /size must be a multiple of pageSize 4096, at least two pages, got 0/],
		[{ size: 3 * P + 1 }, /size must be a multiple/],
		[{ size: 4 * P, maxSize: 2 * P }, /maxSize must be a multiple of pageSize 4096 from size 16384 to 2\^32, got 8192/],
		[{ size: 4 * P, maxSize: 2 ** 33 }, /maxSize/],
		[{ size: 4 * P, pageSize: 4 }, /pageSize must be a power of two, at least 8, got 4/],
		[{ size: 4 * P, guardPages: -1 }, /guardPages must be a whole number from 0 to 16, got -1/],
		[{ size: 4 * P, poison: 1 }, /poison must be true or false/],
		[{ size: 4 * P, deferredMax: 0 }, /deferredMax/],
		[{ size: 4 * P, nodes: 0 }, /^EINVAL: Cannot create a heap: nodes must be a whole number from 1 to 128, got 0/],
		[{ size: 4 * P, sizee: 1 }, /unknown option "sizee"/],
	];
	for (const [options, message] of bad) {
		assert.throws(
			() => VmapHeap.create(options as never),
			(e: Error & { code?: string }) => e.code === "EINVAL" && message.test(e.message),
			JSON.stringify(options),
		);
	}
	assert.equal(
		code(() => VmapHeap.attach({ buffer: new SharedArrayBuffer(8) } as never)),
		"EINVAL",
	);
});

test("vmalloc: whole pages plus a guard page; bytes() and view() stop at the guard; page 0 is never handed out", () => {
	const h = VmapHeap.create({ size: 64 * P });
	const a = h.vmalloc(100);
	assert.ok(a > 0 && a % P === 0);
	const area = h.space.find(a)!;
	assert.deepEqual([area.size, area.tag], [2 * P, "vmalloc"]);
	h.bytes(a, P).fill(1);
	const f = h.view(a, Float64Array, P / 8);
	f[0] = 1.5;
	assert.equal(new Float64Array(h.data, a, 1)[0], 1.5, "views are over the shared data, at the address");
	assert.throws(
		() => h.bytes(a, P + 1),
		/EFAULT: bytes\(\) cannot reach \[0x1000, 0x2001\): it crosses the end of the area \[0x1000, 0x2000\) into its guard page/,
	);
	assert.throws(() => h.bytes(a + P, 1), /EFAULT/, "the guard page itself");
	assert.throws(
		() => h.view(a + 4, Float64Array, 1),
		/EINVAL: Cannot view: address must be a whole number and a multiple of 8, got 4100/,
	);
	assert.throws(() => h.view(a, Object as never, 1), /EINVAL: Cannot view: type must be a typed-array constructor/);
	const tagged = h.vmalloc(P, { tag: "frames" });
	assert.equal(h.space.find(tagged)!.tag, "frames");

	const flat = VmapHeap.create({ size: 64 * P, guardPages: 0 });
	const b = flat.vmalloc(P);
	assert.equal(flat.space.find(b)!.size, P, "guardPages: 0 is VM_NO_GUARD");
	flat.bytes(b, P);
	h.check();
});

test("vzalloc zeroes bytes that held data; vmalloc does not promise to", () => {
	const h = VmapHeap.create({ size: 16 * P, guardPages: 0, lazyMaxPages: 1 });
	const a = h.vmalloc(4 * P);
	h.bytes(a, 4 * P).fill(0xee);
	h.vfree(a);
	h.purge({ sync: true });
	const z = h.vzalloc(4 * P);
	assert.equal(z, a, "the lowest fit: the same range again");
	assert.ok(h.bytes(z, 4 * P).every((x) => x === 0));
});

test("bad calls are typed errors and change nothing", () => {
	const h = VmapHeap.create({ size: 64 * P });
	const a = h.vmalloc(P);
	const gone = h.vmalloc(P);
	h.vfree(gone);
	const before = snapshot(h);
	for (const bytes of [0, -1, 1.5, Number.NaN, 2 ** 60, "8" as never])
		assert.equal(
			code(() => h.vmalloc(bytes)),
			"EINVAL",
			String(bytes),
		);
	assert.equal(
		code(() => h.vzalloc(0)),
		"EINVAL",
	);
	assert.equal(
		code(() => h.vmalloc(P, { tag: "vm_map_ram" })),
		"EINVAL",
	);
	assert.throws(() => h.vmalloc(P, { align: 3 }), /EINVAL: Cannot vmalloc: align must be a power of two, got 3/);
	assert.equal(
		code(() => h.vfree(a + P)),
		"ENOENT",
		"the guard page",
	);
	assert.equal(
		code(() => h.vfree(a + 8)),
		"ENOENT",
		"inside an area",
	);
	assert.equal(
		code(() => h.vfree(40 * P)),
		"ENOENT",
		"never allocated",
	);
	assert.equal(
		code(() => h.vfree(gone)),
		"EDOUBLEFREE",
	);
	assert.equal(
		code(() => h.vfree(1.5)),
		"EINVAL",
	);
	assert.equal(
		code(() => h.vrealloc(gone, P)),
		"EDOUBLEFREE",
	);
	assert.equal(
		code(() => h.vrealloc(a, -4)),
		"EINVAL",
	);
	assert.equal(
		code(() => h.freeDeferred(gone)),
		"EDOUBLEFREE",
	);
	assert.equal(
		code(() => h.bytes(gone, 1)),
		"EFAULT",
	);
	assert.throws(() => h.bytes(gone, 1), /EFAULT: bytes\(\) cannot reach \[0x3000, 0x3001\): the area \[0x3000, 0x5000\) was freed/);
	assert.throws(() => h.bytes(50 * P, 1), /EFAULT: bytes\(\) cannot reach \[0x32000, 0x32001\): 0x32000 is in no area \(free space\)/);
	assert.equal(
		code(() => h.bytes(0, 1)),
		"EFAULT",
		"page 0",
	);
	assert.equal(
		code(() => h.bytes(a, -1)),
		"EINVAL",
	);
	assert.equal(
		code(() => h.vmMapRam(0)),
		"EINVAL",
	);
	assert.equal(
		code(() => h.vmUnmapRam(a, 1)),
		"EINVAL",
		"a vmalloc area is no mapping",
	);
	assert.equal(
		code(() => h.vmUnmapRam(50 * P, 1)),
		"EINVAL",
	);
	assert.deepEqual(snapshot(h), before);
	// Nothing fits: EBUSY, after the overflow purge (which does change things, as the kernel's).
	assert.equal(
		code(() => h.vmalloc(62 * P)),
		"EBUSY",
	);
	h.check();
});

test("vrealloc: the kernel's vrealloc_test (1 page, 4, 1, half, 1), data kept; in place when it can, moved when it cannot", () => {
	const h = VmapHeap.create({ size: 256 * P, lazyMaxPages: 1000, poison: true });
	const fill = (addr: number, n: number) => {
		const b = h.bytes(addr, n);
		for (let i = 0; i < n; i++) b[i] = (i * 7 + 3) & 0xff;
	};
	const same = (addr: number, n: number) => h.bytes(addr, n).every((x, i) => x === ((i * 7 + 3) & 0xff));
	let p = h.vmalloc(P);
	fill(p, P);
	for (const [bytes, keep] of [
		[4 * P, P],
		[P, P],
		[P / 2, P / 2],
		[P, P / 2],
	] as const) {
		p = h.vrealloc(p, bytes);
		assert.ok(same(p, keep), `data kept at ${bytes} bytes`);
		assert.equal(h.space.find(p)!.size, Math.ceil(bytes / P) * P + P);
		h.check();
	}
	// Blocked: the range after it is busy, so growing moves the area and frees the old one.
	const blocker = h.vmalloc(P);
	const moved = h.vrealloc(p, 8 * P);
	assert.notEqual(moved, p);
	assert.ok(same(moved, P / 2));
	assert.equal(h.space.find(p)?.state, "lazy", "the old area is freed lazily");
	// A shrink's tail is freed lazily too: not handed out before a purge.
	const shrunk = h.vrealloc(moved, P);
	assert.equal(shrunk, moved);
	assert.equal(h.space.find(moved + 4 * P)?.state, "lazy");
	assert.equal(h.vrealloc(0, P) > 0, true, "vrealloc(0, n) is vmalloc");
	assert.equal(h.vrealloc(blocker, 0), 0, "vrealloc(addr, 0) frees");
	assert.equal(h.space.find(blocker)?.state, "lazy");
	h.check();
});

test("the data grows up to maxSize when an area lands beyond it", () => {
	const h = VmapHeap.create({ size: 8 * P, maxSize: 256 * P, poison: true });
	assert.equal(h.data.byteLength, 8 * P);
	const a = h.vmalloc(20 * P);
	assert.ok(h.data.byteLength >= a + 21 * P, `data ${h.data.byteLength} bytes, area ends at ${a + 21 * P}`);
	assert.equal(h.stats().dataBytes, h.data.byteLength);
	h.bytes(a, 20 * P).fill(9);
	assert.equal(
		code(() => h.vmalloc(300 * P)),
		"EINVAL",
		"beyond maxSize",
	);
	h.check();
});

test("vm_map_ram: small mappings share a block, pages handed out once; a block with nothing mapped is purged past a quarter dirty", () => {
	// 16384 pages: a sixteenth is 1024, the largest block (kernel VMAP_BBMAP_BITS).
	const h = VmapHeap.create({ size: 16384 * P, lazyMaxPages: 100_000 });
	const maps: Array<[number, number]> = [];
	for (let pages = 1; pages <= 64; pages *= 2) maps.push([h.vmMapRam(pages), pages]);
	let s = h.stats();
	assert.equal(s.blocks, 1);
	assert.equal(s.mappedPages, 127);
	const block = h.space.find(maps[0]![0])!;
	assert.deepEqual([block.tag, block.size], ["vm_map_ram", 1024 * P]);
	assert.match(h.vmallocinfo(), /^0x[0-9a-f]+-0x[0-9a-f]+ +4194304 handle=1 vm_map_ram$/m);
	for (let i = 1; i < maps.length; i++) assert.equal(maps[i]![0], maps[i - 1]![0] + maps[i - 1]![1] * P, "handed out from the front");
	h.bytes(maps[3]![0], 8 * P).fill(3);
	assert.equal(
		code(() => h.bytes(maps[6]![0] + 64 * P, 1)),
		"EFAULT",
		"never-mapped pages of the block",
	);

	// A mapping is unmapped whole, as it was mapped (kernel vm_unmap_ram takes the count given to vm_map_ram), and once.
	assert.equal(
		code(() => h.vmUnmapRam(maps[2]![0], 3)),
		"EINVAL",
		"part of a 4-page mapping",
	);
	assert.equal(
		code(() => h.vmUnmapRam(maps[2]![0] + 3 * P, 1)),
		"EINVAL",
		"inside a mapping",
	);
	assert.equal(
		code(() => h.vmUnmapRam(maps[1]![0], 6)),
		"EINVAL",
		"across two mappings",
	);
	h.vmUnmapRam(maps[2]![0], 4);
	assert.equal(
		code(() => h.vmUnmapRam(maps[2]![0], 4)),
		"EINVAL",
		"pages unmapped already",
	);
	assert.equal(
		code(() => h.bytes(maps[2]![0], 1)),
		"EFAULT",
	);
	assert.equal(
		code(() => h.vfree(maps[0]![0])),
		"EINVAL",
		"vfree of a block",
	);
	for (const [addr, pages] of maps) if (pages !== 4) h.vmUnmapRam(addr, pages);
	s = h.stats();
	assert.deepEqual([s.blocks, s.mappedPages, s.dirtyPages], [1, 0, 127], "127 dirty pages < a quarter of 1024: the block stays");
	const again = h.vmMapRam(2);
	assert.equal(again, maps[0]![0] + 127 * P, "the next pages of the same block, never a dirty one");
	h.vmUnmapRam(again, 2);
	h.purge({ sync: true });
	s = h.stats();
	assert.equal(s.blocks, 0, "purge() takes blocks with nothing mapped, whatever their dirt");
	assert.equal(s.busyAreas, 0);
	h.check();

	// Past a quarter: 4 × 64 pages mapped and unmapped frees the block at once.
	const big = [0, 1, 2, 3].map(() => h.vmMapRam(64));
	for (const addr of big) h.vmUnmapRam(addr, 64);
	assert.equal(h.stats().blocks, 0);
	assert.equal(h.space.find(big[0]!)?.state, "lazy", "the block's area is freed lazily: its dirty pages wait for the flush");
	// Beyond VMAP_MAX_ALLOC: an area of its own.
	const large = h.vmMapRam(100);
	assert.deepEqual([h.space.find(large)!.size, h.stats().blocks], [100 * P, 0]);
	assert.equal(
		code(() => h.vmUnmapRam(large, 99)),
		"EINVAL",
	);
	h.vmUnmapRam(large, 100);
	h.check();
});

test("poisoning catches a write after free (on reuse) and a write into the guard page (on vfree)", () => {
	const h = VmapHeap.create({ size: 32 * P, poison: true, lazyMaxPages: 1000 });
	const a = h.vmalloc(P);
	assert.ok(
		h.bytes(a, P).every((x) => x === 0x6b),
		"fresh bytes hold the poison",
	);
	const stale = h.bytes(a, P);
	h.vfree(a);
	h.purge({ sync: true });
	stale[17] = 1; // use after free through a view kept too long
	assert.throws(
		() => h.vmalloc(P),
		/EFAULT: vmalloc: byte 0x1011 of \[0x1000, 0x3000\) was written after it was freed \(0x1, not the poison 0x6b\)/,
	);
	h.purge({ sync: true });
	const b = h.vmalloc(P);
	assert.equal(b, a, "the range was poisoned again and given back");
	new Uint8Array(h.data, b + P, 1)[0] = 0; // past the end, into the guard page
	assert.throws(() => h.vfree(b), /EFAULT: vfree 0x1000: its guard page was written at 0x2000/);
	assert.equal(h.space.find(b)?.state, "lazy", "freed anyway");
	h.check();
});

test("freeDeferred: the area stays readable until every online handle passed a quiescent point", () => {
	const h = VmapHeap.create({ size: 64 * P });
	const reader = VmapHeap.attach(h.handle);
	const a = h.vmalloc(P);
	h.bytes(a, P).fill(5);
	h.freeDeferred(a);
	assert.equal(
		code(() => h.freeDeferred(a)),
		"EDOUBLEFREE",
	);
	assert.equal(
		code(() => h.vfree(a)),
		"EDOUBLEFREE",
	);
	assert.equal(h.space.find(a)?.tag, "vfree_deferred");
	assert.ok(
		reader.bytes(a, P).every((x) => x === 5),
		"a reader may still read it",
	);
	h.vmalloc(P); // a call: a quiescent point of h, but the reader has passed none
	assert.equal(h.space.find(a)?.state, "busy");
	assert.throws(
		() => h.synchronize(30),
		new RegExp(`ETIMEDOUT: A grace period did not end within 30 ms: handle\\(s\\) ${reader.space.id} passed no quiescent point`),
	);
	reader.quiescent();
	h.quiescent(); // the grace period has ended: the next call frees the area
	assert.equal(h.space.find(a)?.state, "lazy", "freed after the grace period");
	const s = h.stats();
	assert.deepEqual([s.deferred, s.deferredFreed, s.deferredPending], [1, 1, 0]);

	// An offline handle holds no references: grace periods do not wait for it.
	const b = h.vmalloc(P);
	reader.offline();
	h.freeDeferred(b);
	h.synchronize(1000);
	assert.equal(h.space.find(b)?.state, "lazy");
	reader.close();
	h.check();
});

test("freeDeferred with the queue full waits for a grace period (this thread may block)", () => {
	const h = VmapHeap.create({ size: 64 * P, deferredMax: 4, guardPages: 0 });
	const got = Array.from({ length: 10 }, () => h.vmalloc(P));
	for (const a of got) h.freeDeferred(a);
	assert.ok(h.stats().deferredPending <= 4);
	h.synchronize();
	assert.equal(h.stats().deferredFreed, 10);
	h.check();
});

test("check() catches a block whose mapped count disagrees with its bitmap", () => {
	const h = VmapHeap.create({ size: 1024 * P });
	const m = h.vmMapRam(3);
	const hdr = h.space.table.hdr;
	const e = hdr[HDR_EXT_OFFSET]!;
	// 1024 pages: blocks of 128 pages (the kernel's floor), aligned to their size.
	const w = e + blocksOffset(hdr[e + H_RING_CAP]!) + Math.floor(m / (128 * P)) * RAM_BLOCK_WORDS;
	hdr[w + B_MAPPED]!++;
	assert.throws(
		() => h.check(),
		/ECORRUPT: vm_map_ram block \[0x[0-9a-f]+, 0x[0-9a-f]+\): free 125 \+ mapped 4 \+ dirty 0 != 128 pages; vm_map_ram block .*: 3 pages set in the bitmap, 4 counted mapped/,
	);
});

test("freeDeferred({ nowait }) with the queue full is EBUSY and changes nothing", () => {
	const h = VmapHeap.create({ size: 64 * P, deferredMax: 2, guardPages: 0 });
	const reader = VmapHeap.attach(h.handle); // online and silent: no grace period ends
	const [a, b, c] = [h.vmalloc(P, { tag: "mine" }), h.vmalloc(P), h.vmalloc(P)];
	h.freeDeferred(a);
	h.freeDeferred(b, { nowait: true });
	assert.throws(
		() => h.freeDeferred(c, { nowait: true }),
		/EBUSY: Cannot freeDeferred 0x3000: 2 areas already wait for a grace period \(deferredMax\)/,
	);
	assert.deepEqual([h.space.find(c)?.tag, h.stats().deferredPending], ["vmalloc", 2]);
	assert.equal(
		code(() => h.freeDeferred(c, { nowait: "no" as never })),
		"EINVAL",
	);
	reader.quiescent();
	h.freeDeferred(c, { nowait: true });
	assert.equal(h.space.find(a)?.state, "lazy");
	reader.close();
	h.check();
});

test("one vocabulary for space and heap: stats() has the space's figures at the top level, purge(options) takes the same options and checks and gives the same result, dump() is plain data", () => {
	const h = VmapHeap.create({ size: 64 * P, maxSize: 256 * P, nodes: 1, lazyMaxPages: 1 << 20 });
	const a = h.vmalloc(3 * P);
	h.vfree(a);
	const s = h.stats();
	const own = h.space.stats();
	for (const k of ["busyAreas", "lazyAreas", "lazyBytes", "freeBytes", "allocs", "frees", "size", "pageSize"] as const)
		assert.equal(s[k], own[k], `stats().${k}`);
	assert.equal((s as unknown as { space?: unknown }).space, undefined, "no second way to read them");
	const m = h.vmMapRam(2);
	h.vmUnmapRam(m, 2); // a vm_map_ram block with nothing mapped: a purge would free it
	const before = h.space.dump();
	assert.throws(() => h.purge({ sink: true } as never), /EINVAL: Cannot purge: unknown option "sink"/);
	assert.throws(() => h.purge({ sync: 1 } as never), /EINVAL: Cannot purge: sync must be true or false, got 1/);
	assert.throws(() => h.purge({ timeoutMs: -1 }), /EINVAL: Cannot purge: timeoutMs must be/);
	assert.deepEqual(h.space.dump(), before, "a refused purge changed nothing");
	const r = h.purge({ sync: true });
	assert.equal(r.status, "done");
	assert.equal(r.areas, 2, "the freed area and the purged block's area");
	assert.equal(h.stats().lazyAreas, 0);
	const d = h.space.dump();
	assert.equal(typeof d, "object");
	assert.deepEqual(JSON.parse(JSON.stringify(d)), d, "JSON keeps it whole");
	assert.equal(d.stats.size, h.space.size);
	h.close();
});
