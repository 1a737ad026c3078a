/**
 * `vmalloc replay FILE`: an allocation trace (trace.ts) through a VmapSpace. It prints throughput
 * and fragmentation (peak address span / peak live bytes), and writes the map at the peak of
 * live bytes and at the end, and the timeline of the run.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { VmapSpace } from "../space/space.ts";
import type { VmapDump } from "../api/types.ts";
import { mapSvg } from "../viz/map.ts";
import { Timeline } from "../viz/timeline.ts";
import { timelineSvg } from "../viz/timeline-svg.ts";
import { bytes, count } from "../viz/format.ts";
import { parseWithFile, usageError, wholeNumber } from "./args.ts";
import { harnessCeiling, type NativeAnchor, nativeReplay } from "./native.ts";
import { readTrace, type Trace } from "./trace.ts";

interface ReplayParams {
	file: string;
	/** Folder for the pictures. */
	out: string;
	pageSize: number;
	/** Bytes of the space; undefined: a power of two, at least 4 × the peak of live bytes. */
	size: number | undefined;
	nodes: number;
	lazyMaxPages: number | undefined;
	smallMax: number | undefined;
	json: boolean;
}

/** The event loop gets a turn this often (in operations), so that drains run as in a real program. */
const YIELD_EVERY = 1024;
/** About this many timeline samples over the run. */
const SAMPLES = 2000;

/** The trace's shape, from a pass before the replay: its peak of live bytes (in whole pages) and where, and its allocations. */
export interface Prescan {
	peakLive: number;
	peakAt: number;
	allocs: number;
}

/** What the timed loop saw: its seconds (map dumps excluded), the highest end handed out, the dump at the peak, the timeline. */
interface Replayed {
	sec: number;
	peakEnd: number;
	peakDump: VmapDump | undefined;
	timeline: Timeline;
	/** Operations between timeline samples. */
	every: number;
}

/** Bytes a request of `n` takes: whole pages (0 bytes takes one page, as malloc(0) returns a unique pointer). */
export function pagesOf(n: number, page: number): number {
	return Math.max(page, Math.ceil(n / page) * page);
}

export function prescan(trace: Trace, page: number): Prescan {
	let liveNow = 0;
	let peakLive = 0;
	let peakAt = 0;
	let allocs = 0;
	const held = new Float64Array(trace.slots);
	for (let i = 0; i < trace.ops; i++) {
		const s = trace.size[i]!;
		if (s >= 0) {
			held[trace.slot[i]!] = pagesOf(s, page);
			liveNow += pagesOf(s, page);
			allocs++;
		} else liveNow -= held[trace.slot[i]!]!;
		if (liveNow > peakLive) {
			peakLive = liveNow;
			peakAt = i;
		}
	}
	return { peakLive, peakAt, allocs };
}

async function replay(p: ReplayParams): Promise<number> {
	const trace = await readTrace(p.file);
	const page = p.pageSize;
	const pre = prescan(trace, page);
	if (p.size === undefined && 4 * pre.peakLive > 2 ** 52) {
		throw new Error(
			`${p.file}: its peak of live bytes, ${pre.peakLive} in whole pages, needs a space of more than 2^52 bytes (4 x the peak), more than a space can hold; give --size`,
		);
	}
	const size = p.size ?? 2 ** Math.ceil(Math.log2(Math.max(4 * pre.peakLive, 64 * page)));
	// The space's default (32 MiB at 4 KiB pages) is made for kernel-sized spaces; a trace's
	// lazy backlog is sized to the trace instead: an eighth of its peak of live bytes.
	const lazyMaxPages = p.lazyMaxPages ?? Math.max(1, Math.ceil(pre.peakLive / page / 8));
	const space = VmapSpace.create({
		start: page,
		size,
		pageSize: page,
		nodes: p.nodes,
		lazyMaxPages,
		...(p.smallMax !== undefined && { smallMax: p.smallMax }),
	});
	const r = await run(space, trace, pre.peakAt);
	space.check();
	const endDump = space.dump();
	const end = space.stats();
	const peakSpan = r.peakEnd - space.start;
	// Live bytes: the busy areas, with the small areas handed out counted, not the blocks holding them.
	const blockBytes = endDump.blocks.reduce((sum, b) => sum + b.end - b.start, 0);
	const liveAtEnd = end.busyBytes - blockBytes + end.smallBytes;
	const figures = {
		file: p.file,
		ops: trace.ops,
		allocs: pre.allocs,
		frees: trace.ops - pre.allocs,
		pageSize: page,
		spaceBytes: size,
		nodes: p.nodes,
		lazyMaxPages: end.lazyMaxPages,
		smallMax: end.smallMax,
		sec: r.sec,
		opsPerSec: trace.ops / r.sec,
		peakLiveBytes: pre.peakLive,
		peakLiveAtOp: pre.peakAt + 1,
		peakSpanBytes: peakSpan,
		fragmentation: peakSpan / pre.peakLive,
		liveBytesAtEnd: liveAtEnd,
		purges: end.purges,
		drainPurges: end.drainPurges,
		priorityPurges: end.priorityPurges,
		overflowPurges: end.overflowPurges,
		pictures: [] as string[],
		native: nativeReplay(trace),
		harnessOpsPerSec: harnessCeiling(trace),
	};
	// The maps show the part of the space the run used, in whole rows.
	const to = Math.min(space.end, space.start + Math.max(64 * page, 2 ** Math.ceil(Math.log2(peakSpan))));
	const drawn = to < space.end ? `; the maps draw its first ${bytes(to - space.start)}, which hold every area the replay made` : "";
	figures.pictures = writeReplayPictures(p, { ...r, endDump, to, drawn, ops: trace.ops, peakAt: pre.peakAt });
	space.close();
	if (p.json) console.log(JSON.stringify(figures, null, 2));
	else {
		console.log(
			`vmalloc replay ${p.file}: ${count(trace.ops)} operations (${count(figures.allocs)} allocations, ${count(figures.frees)} frees)`,
		);
		console.log(
			`space: ${bytes(size)} from ${space.start}, page size ${page} B (sizes round up to pages), ${p.nodes} node(s), lazyMaxPages ${count(end.lazyMaxPages)}, smallMax ${end.smallMax}${drawn}`,
		);
		console.log(
			`throughput: ${count(figures.opsPerSec)} operations/s (${r.sec.toFixed(3)} s, timeline sampling and event-loop turns included, map dumps not)\n${anchorLine(figures.opsPerSec, figures.native, figures.harnessOpsPerSec)}`,
		);
		console.log(
			`peak live: ${bytes(pre.peakLive)} (${count(pre.peakLive)} B in whole pages) at operation ${count(pre.peakAt + 1)}; peak span: ${bytes(peakSpan)}; fragmentation (peak span / peak live): ${figures.fragmentation.toFixed(3)}`,
		);
		console.log(
			`purges: ${end.purges} (drain ${end.drainPurges}, priority ${end.priorityPurges}, overflow ${end.overflowPurges}); live at the end: ${bytes(liveAtEnd)} (small areas at their class sizes, not their blocks)`,
		);
		console.log(`pictures: ${figures.pictures.join(", ")}`);
	}
	return 0;
}

/** vmalloc's speed beside the C library's malloc on the same trace and beside the loop's own ceiling. */
function anchorLine(ops: number, native: NativeAnchor, ceiling: number): string {
	const c = `the replay loop alone (a bump allocator): ${count(ceiling)} operations/s`;
	if ("missing" in native) return `C malloc: not run: ${native.missing}; ${c}`;
	return `C malloc (examples/traces/replay.c, ${native.compiler} -O2, median of ${native.rounds} rounds): ${count(native.opsPerSec)} operations/s; vmalloc: ${(ops / native.opsPerSec).toFixed(2)}x of it; ${c}`;
}

/** The timed loop: every operation of `trace` on `space`, the timeline sampled, the space dumped at operation `peakAt`. */
async function run(space: VmapSpace, trace: Trace, peakAt: number): Promise<Replayed> {
	const page = space.pageSize;
	const addr = new Float64Array(trace.slots);
	const timeline = new Timeline();
	const st = space.stats();
	const every = Math.max(1, Math.floor(trace.ops / SAMPLES));
	let peakEnd = space.start;
	let peakDump: VmapDump | undefined;
	let dumpMs = 0;
	const t0 = performance.now();
	for (let i = 0; i < trace.ops; i++) {
		const s = trace.size[i]!;
		const k = trace.slot[i]!;
		if (s >= 0) {
			const n = pagesOf(s, page);
			let a: number;
			try {
				a = space.alloc(n);
			} catch (e) {
				throw new Error(
					`operation ${i + 1} (a ${s}): ${(e as Error).message}; a larger --size may help (the space has ${space.size} bytes)`,
				);
			}
			addr[k] = a;
			if (a + n > peakEnd) peakEnd = a + n;
		} else space.free(addr[k]!);
		if (i % every === 0) timeline.sample(space.stats({ into: st }));
		if (i === peakAt) {
			const d0 = performance.now();
			peakDump = space.dump();
			dumpMs += performance.now() - d0;
		}
		if (i % YIELD_EVERY === YIELD_EVERY - 1) await new Promise((r) => setImmediate(r));
	}
	timeline.sample(space.stats({ into: st }));
	return { sec: (performance.now() - t0 - dumpMs) / 1000, peakEnd, peakDump, timeline, every };
}

/** The maps at the peak and at the end, the timeline and its JSON, into p.out; returns the pictures' paths. */
function writeReplayPictures(
	p: ReplayParams,
	r: Replayed & { endDump: VmapDump; to: number; drawn: string; ops: number; peakAt: number },
): string[] {
	mkdirSync(p.out, { recursive: true });
	const name = p.file.replace(/^.*[\\/]/, "").replace(/(\.trace)?(\.gz)?$/, "");
	const pictures: Array<[string, string]> = [
		[
			"map-peak.svg",
			mapSvg(r.peakDump ?? r.endDump, {
				to: r.to,
				title: `${name}: the space at the peak of live bytes (operation ${count(r.peakAt + 1)} of ${count(r.ops)})${r.drawn && `, its first ${bytes(r.to - r.endDump.start)} of ${bytes(r.endDump.end - r.endDump.start)}`}`,
			}),
		],
		[
			"map-end.svg",
			mapSvg(r.endDump, {
				to: r.to,
				title: `${name}: the space after the last operation (${count(r.ops)})${r.drawn && `, its first ${bytes(r.to - r.endDump.start)} of ${bytes(r.endDump.end - r.endDump.start)}`}`,
			}),
		],
		[
			"timeline.svg",
			timelineSvg(r.timeline, {
				title: `${name}: ${count(r.ops)} operations replayed in ${r.sec.toFixed(2)} s (stats() every ${count(r.every)} operations)`,
			}),
		],
	];
	for (const [file, svg] of pictures) writeFileSync(join(p.out, file), svg);
	writeFileSync(join(p.out, "timeline.json"), JSON.stringify(r.timeline));
	return pictures.map(([file]) => join(p.out, file));
}

const REPLAY_HELP = `vmalloc replay FILE: an allocation trace through a VmapSpace

FILE holds one operation per line (gzip accepted, by its magic number):
  a SIZE ID    allocate SIZE bytes (0 allowed) and call the area ID
  f ID         free the area called ID
ID is any word, unique among the areas live at the time; # starts a comment line. The trace
is read as a stream: at most 16,777,216 operations, lines of at most 4096 characters. The
repository's examples/traces/ has real traces and the LD_PRELOAD shim that recorded them.

Sizes round up to whole pages, and live bytes count them so. It prints the operations per
second (the event loop gets a turn every 1024 operations, so that drains run as in a program
that yields), the peak of live bytes, the peak address span, fragmentation = peak span / peak
live, and the purges; and writes OUT/map-peak.svg (the space at the peak of live bytes),
OUT/map-end.svg, OUT/timeline.svg and OUT/timeline.json.

Options:
  --out DIR             folder for the pictures; default replay-out
  --page-size N         a power of two; default 16 (malloc's alignment: traces of malloc
                        calls keep their sizes)
  --size N              bytes of the space; default the power of two >= 4 x the peak of live
                        bytes in whole pages
  --nodes N             nodes (1 to 128); default 1
  --lazy-max-pages N    lazily freed pages that make a drain due; default an eighth of the
                        peak of live bytes, in pages
  --small-max N         the small-area cache's largest request (0: off); default the space's
  --json                print the figures as one JSON document
  -h, --help            this text
`;

/** `vmalloc replay` from its arguments; exits 2 on a bad one. */
export async function replayCommand(argv: string[]): Promise<number> {
	const { values: v, file } = parseWithFile(
		"replay",
		argv,
		{
			out: { type: "string" },
			"page-size": { type: "string" },
			size: { type: "string" },
			nodes: { type: "string" },
			"lazy-max-pages": { type: "string" },
			"small-max": { type: "string" },
			json: { type: "boolean" },
			help: { type: "boolean", short: "h" },
		},
		"FILE",
	);
	if (v.help) {
		process.stdout.write(REPLAY_HELP);
		return 0;
	}
	if (file === undefined) usageError("replay", "needs FILE: an allocation trace (see vmalloc replay --help)");
	if (!existsSync(file)) usageError("replay", `no such file: ${file}`);
	const n = (name: string, value: string | undefined, min: number, max: number) => wholeNumber("replay", name, value, min, max);
	const pageSize = n("page-size", v["page-size"], 1, 2 ** 30) ?? 16;
	if ((pageSize & (pageSize - 1)) !== 0) usageError("replay", `--page-size must be a power of two, got ${pageSize}`);
	return replay({
		file,
		out: v.out ?? "replay-out",
		pageSize,
		size: n("size", v.size, pageSize, 2 ** 52),
		nodes: n("nodes", v.nodes, 1, 128) ?? 1,
		lazyMaxPages: n("lazy-max-pages", v["lazy-max-pages"], 1, 2 ** 40),
		smallMax: n("small-max", v["small-max"], 0, 2 ** 40),
		json: v.json ?? false,
	});
}
