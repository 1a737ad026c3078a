/**
 * Real traces beside the C library's malloc: each recorded trace of examples/traces/ replayed
 * in a tight loop through vmalloc (the small-area cache on, then off), through the C library's
 * malloc (src/cli/native.ts: replay.c, compiled at run time) and through the loop alone with a
 * bump allocator (the harness's ceiling). The space is the one `vmalloc replay` makes for the
 * trace: pageSize 16, four times the peak of live bytes, lazyMaxPages an eighth of that peak.
 */
import { harnessCeiling, nativeReplay } from "../src/cli/native.ts";
import { pagesOf, prescan } from "../src/cli/replay.ts";
import { readTrace, type Trace } from "../src/cli/trace.ts";
import { VmapSpace } from "../src/index.ts";

const PAGE = 16;
/** vmalloc's rounds: its figure is their median, as the C replayer's is. */
const ROUNDS = 5;
/**
 * With the cache, vmalloc replays ROUNDS more after those: their median is its figure once the
 * JIT is warm, as in a long-running program (a trace of 126k operations replays in 0.05 s, and
 * its first rounds are mostly V8 compiling). The C replayer needs no warm-up.
 */
const WARM_ROUNDS = 5;

/** The trace `file` through vmalloc (with and without the cache), C malloc and the bare loop. */
export async function traceCase(file: string): Promise<Record<string, number | string>> {
	const trace = await readTrace(file);
	const withCache = replayVmap(trace, undefined, ROUNDS + WARM_ROUNDS);
	const noCache = replayVmap(trace, 0, ROUNDS);
	const native = nativeReplay(trace);
	const c = "missing" in native ? { nativeMissing: native.missing } : { nativeOpsPerSec: native.opsPerSec, compiler: native.compiler };
	return {
		ops: trace.ops,
		...prefixed("cache", withCache),
		...prefixed("nocache", noCache),
		...c,
		harnessOpsPerSec: harnessCeiling(trace),
	};
}

function prefixed(p: string, r: { opsPerSec: number; warmOpsPerSec: number; fragmentation: number }): Record<string, number> {
	return { [`${p}OpsPerSec`]: r.opsPerSec, [`${p}WarmOpsPerSec`]: r.warmOpsPerSec, [`${p}Fragmentation`]: r.fragmentation };
}

/**
 * `rounds` replays on fresh spaces: the median ops/s of the first ROUNDS, of the rest (NaN if
 * none), and the fragmentation (peak span / peak live bytes) of the last.
 */
function replayVmap(
	trace: Trace,
	smallMax: number | undefined,
	rounds: number,
): { opsPerSec: number; warmOpsPerSec: number; fragmentation: number } {
	const pre = prescan(trace, PAGE);
	const addr = new Float64Array(trace.slots);
	const secs: number[] = [];
	let peakEnd = 0;
	for (let r = 0; r < rounds; r++) {
		const space = VmapSpace.create({
			start: PAGE,
			size: 2 ** Math.ceil(Math.log2(Math.max(4 * pre.peakLive, 64 * PAGE))),
			pageSize: PAGE,
			nodes: 1,
			lazyMaxPages: Math.max(1, Math.ceil(pre.peakLive / PAGE / 8)),
			...(smallMax !== undefined && { smallMax }),
		});
		peakEnd = space.start;
		const t0 = performance.now();
		for (let i = 0; i < trace.ops; i++) {
			const s = trace.size[i]!;
			const k = trace.slot[i]!;
			if (s >= 0) {
				const n = pagesOf(s, PAGE);
				const a = space.alloc(n);
				addr[k] = a;
				if (a + n > peakEnd) peakEnd = a + n;
			} else space.free(addr[k]!);
		}
		secs.push((performance.now() - t0) / 1000);
		space.check();
		space.close();
		peakEnd -= space.start;
	}
	const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
	const warm = secs.slice(ROUNDS);
	return {
		opsPerSec: trace.ops / median(secs.slice(0, ROUNDS)),
		warmOpsPerSec: warm.length > 0 ? trace.ops / median(warm) : Number.NaN,
		fragmentation: peakEnd / pre.peakLive,
	};
}
