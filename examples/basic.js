/**
 * A first look at a space: allocate with alignment, windows and tags, look addresses up, free
 * lazily, purge with one flush, read statistics and listings, validate. Run: npm run example
 * (in a clone, after npm ci builds dist/), or node node_modules/vmalloc/examples/basic.js where
 * the package is installed: it imports the package by its own name.
 */
import { VmapSpace } from "vmalloc";

const hex = (n) => `0x${n.toString(16)}`;
let flushes = 0;
const space = VmapSpace.create({
	start: 0x1000_0000,
	size: 2 ** 40,
	pageSize: 4096,
	// The expensive "make reusable" step: a TLB flush in the kernel, a GPU fence here.
	flush: (start, end) => {
		if (++flushes <= 2) console.log(`flush [${hex(start)}, ${hex(end)})`);
	},
});

const tex = space.alloc(3 * 4096, { align: 65536, tag: "textures" });
const vbo = space.alloc(4096, { tag: "vertex buffers" });
const low = space.alloc(8 * 4096, { vstart: 0x2000_0000, vend: 0x2100_0000, tag: "window" });
console.log(`textures at ${hex(tex)}, vertex buffers at ${hex(vbo)}, windowed area at ${hex(low)}`);
console.log("find(tex + 5):", space.find(tex + 5));

space.free(vbo);
console.log("after free, find(vbo):", space.find(vbo));
process.stdout.write(space.vmallocinfo());
for (const bad of [() => space.free(vbo), () => space.free(tex + 4096), () => space.alloc(2 ** 41)]) {
	try {
		bad();
	} catch (e) {
		console.log(e.message);
	}
}
const r = space.purge();
console.log(`purge: ${r.status}, ${r.areas} area(s), ${r.bytes} bytes; find(vbo) now: ${space.find(vbo)}`);

// A million areas, then all freed again: the threshold batches a million frees into a few flushes.
const many = [];
for (let i = 0; i < 1_000_000; i++) many.push(space.alloc(4096 * (1 + (i % 4))));
for (const a of many) space.free(a);
space.free(tex);
space.free(low);
space.purge();
space.check();
const st = space.stats();
console.log(
	`1,000,000 areas allocated and freed with ${st.flushes} flushes; check() passed; free blocks ${st.freeBlocks}, ` +
		`largest ${st.largestFreeBlock} bytes of ${st.size}; buffer ${(space.handle.buffer.byteLength / 2 ** 20).toFixed(1)} MiB`,
);
