/**
 * A first look at a space: allocate with alignment, windows and tags, look addresses up, free,
 * and validate. Run: npm run example
 */
import { VmapError, VmapSpace } from "../src/index.ts";

const hex = (n: number) => `0x${n.toString(16)}`;
const space = VmapSpace.create({ start: 0x1000_0000, size: 2 ** 40, pageSize: 4096 });

const tex = space.alloc(3 * 4096, { align: 65536, tag: "textures" });
const vbo = space.alloc(4096, { tag: "vertex buffers" });
const low = space.alloc(8 * 4096, { vstart: 0x2000_0000, vend: 0x2100_0000, tag: "window" });
console.log(`textures at ${hex(tex)}, vertex buffers at ${hex(vbo)}, windowed area at ${hex(low)}`);
console.log("find(tex + 5):", space.find(tex + 5));

space.free(vbo);
console.log("after free, find(vbo):", space.find(vbo));
try {
	space.free(tex + 4096);
} catch (e) {
	console.log(`free(tex + 4096) -> ${(e as VmapError).message}`);
}
try {
	space.alloc(2 ** 41);
} catch (e) {
	console.log(`alloc(2^41) -> ${(e as VmapError).code}`);
}

// A million areas, then all freed again: free space is one block once more.
const many: number[] = [];
for (let i = 0; i < 1_000_000; i++) many.push(space.alloc(4096 * (1 + (i % 4))));
for (const a of many) space.free(a);
space.free(tex);
space.free(low);
space.check();
console.log(`1,000,000 areas allocated and freed; check() passed; buffer ${(space.table.buffer.byteLength / 2 ** 20).toFixed(1)} MiB`);
