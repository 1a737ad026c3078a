/**
 * The mail "mm/vmalloc: Keep a separate lazy-free list" (Roman Peniaev, 2016): free_vmap_area_noflush read the area after publishing it to
 * the purge list, where another CPU's purge could already have freed it. Here everything the
 * free path needs is read before the area is published; this storm runs two workers freeing
 * as fast as they can against a third purging, every live range claimed page by page in a
 * shared ownership map, then check(). Run: node --import tsx bench/mails/free-ordering.ts
 */
import { VmapSpace } from "../../src/index.ts";
import { runWorkers } from "./run-workers.ts";

const pages = 1 << 12;
const space = VmapSpace.create({ size: pages * 4096, lazyMaxPages: 64 });
const owners = new SharedArrayBuffer(4 * pages);
const ops = 200_000;
const r = await runWorkers<{ id: number; ops: number; violations: string[]; ms: number }>(
	["free-storm", "free-storm", "purge-storm"].map((mode, i) => ({
		entry: new URL("../../harness/space-worker.ts", import.meta.url),
		data: { handle: space.handle, owners, mode, seed: 40 + i, ops: mode === "purge-storm" ? ops / 10 : ops, maxLive: 0 },
	})),
	new SharedArrayBuffer(8),
);
space.purge({ sync: true });
space.check();
const st = space.stats();
console.log(
	"mm/vmalloc: Keep a separate lazy-free list: the free path read an area after publishing it to the purge list, where another CPU's purge could already free it (no figures in the mail)",
);
console.log("vmap: two workers free as fast as they can against a third purging, every live range claimed page by page:");
for (const w of r) console.log(`handle ${w.id}: ${w.ops} operations in ${w.ms.toFixed(0)} ms, ${w.violations.length} overlaps`);
console.log(
	`frees ${st.frees}, purges ${st.purges}, purged areas ${st.purgedAreas}; check() passed; free space whole again: ${st.freeBlocks === 1 && st.freeBytes === st.size}`,
);
