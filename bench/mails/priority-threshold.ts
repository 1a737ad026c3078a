/**
 * The mail "mm: add priority threshold to __purge_vmap_area_lazy()" (Uladzislau Rezki, 2019): under test_vmalloc's stress mode, purges that yield too
 * politely let vmap_lazy_nr run "far beyond acceptable lazy_max_pages()", up to an OOM panic;
 * the fix purges without yielding above 2 * lazy_max_pages(). Here: two workers stress one
 * space (random 1..16-page areas, never yielding), with the priority threshold on and off;
 * peak vmapLazyNr and failed allocations. Run: node --import tsx bench/mails/priority-threshold.ts
 */
import { VmapSpace } from "../../src/index.ts";
import { runWorkers } from "./run-workers.ts";

const lazyMaxPages = 1024;
for (const priorityPurge of [true, false]) {
	const space = VmapSpace.create({ size: 2 ** 16 * 4096, lazyMaxPages, priorityPurge });
	const data = { handle: space.handle, ops: 300_000, maxLive: 400 };
	const r = await runWorkers<{ ops: number; failed: number; peak: number; ms: number }>(
		[1, 2].map((seed) => ({ entry: new URL("./stress-worker.ts", import.meta.url), data: { ...data, seed } })),
		new SharedArrayBuffer(8),
	);
	space.purge({ sync: true });
	space.check();
	const st = space.stats();
	console.log(
		`priority threshold ${priorityPurge ? "on " : "off"}: peak vmapLazyNr ${Math.max(...r.map((w) => w.peak))} pages ` +
			`(lazyMaxPages ${lazyMaxPages}, 2x = ${2 * lazyMaxPages}, space ${2 ** 16} pages), failed allocations ${r.reduce((n, w) => n + w.failed, 0)} ` +
			`of ${r.reduce((n, w) => n + w.ops, 0)} ops, purges ${st.purges} (overflow ${st.overflowPurges}), ${Math.max(...r.map((w) => w.ms)).toFixed(0)} ms`,
	);
}
console.log(
	'mm: add priority threshold to __purge_vmap_area_lazy(): without the threshold vmap_lazy_nr went "far beyond" lazy_max_pages() until OOM (HiKey 960, test_vmalloc.sh stress)',
);
