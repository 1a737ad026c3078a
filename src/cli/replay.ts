/**
 * `vmap replay FILE`: an allocation trace (trace.ts) through a VmapSpace. It prints throughput
 * and fragmentation (peak address span / peak live bytes), and writes the map at the peak of
 * live bytes and at the end, and the timeline of the run.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { VmapSpace } from "../space.ts";
import { mapSvg } from "../viz/map.ts";
import { Timeline, timelineSvg } from "../viz/timeline.ts";
import { bytes, count } from "../viz/format.ts";
import { parseTrace, traceText } from "./trace.ts";

export interface ReplayParams {
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

export async function replay(p: ReplayParams): Promise<number> {
	const trace = parseTrace(traceText(readFileSync(p.file)), p.file);
	const page = p.pageSize;
	// Sizes in whole pages (0 bytes takes one page, as malloc(0) returns a unique pointer).
	const pages = (n: number) => Math.max(page, Math.ceil(n / page) * page);
	let liveNow = 0;
	let peakLive = 0;
	let peakAt = 0;
	const held = new Float64Array(trace.slots);
	for (let i = 0; i < trace.ops; i++) {
		const s = trace.size[i]!;
		if (s >= 0) {
			held[trace.slot[i]!] = pages(s);
			liveNow += pages(s);
		} else liveNow -= held[trace.slot[i]!]!;
		if (liveNow > peakLive) {
			peakLive = liveNow;
			peakAt = i;
		}
	}
	const size = p.size ?? 2 ** Math.ceil(Math.log2(Math.max(4 * peakLive, 64 * page)));
	// The space's default (32 MiB at 4 KiB pages) is made for kernel-sized spaces; a trace's
	// lazy backlog is sized to the trace instead: an eighth of its peak of live bytes.
	const lazyMaxPages = p.lazyMaxPages ?? Math.max(1, Math.ceil(peakLive / page / 8));
	let allocs = 0;
	for (let i = 0; i < trace.ops; i++) if (trace.size[i]! >= 0) allocs++;
	const space = VmapSpace.create({
		start: page,
		size,
		pageSize: page,
		nodes: p.nodes,
		lazyMaxPages,
		...(p.smallMax !== undefined && { smallMax: p.smallMax }),
	});
	const addr = new Float64Array(trace.slots);
	const timeline = new Timeline();
	const st = space.stats();
	const every = Math.max(1, Math.floor(trace.ops / SAMPLES));
	let peakEnd = space.start;
	let peakDump = "";
	let dumpMs = 0;
	const t0 = performance.now();
	for (let i = 0; i < trace.ops; i++) {
		const s = trace.size[i]!;
		const k = trace.slot[i]!;
		if (s >= 0) {
			const n = pages(s);
			let a: number;
			try {
				a = space.alloc(n);
			} catch (e) {
				throw new Error(`operation ${i + 1} (a ${s}): ${(e as Error).message}; a larger --size may help (the space has ${size} bytes)`);
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
	const sec = (performance.now() - t0 - dumpMs) / 1000;
	space.check();
	const endDump = space.dump();
	const end = space.stats();
	const peakSpan = peakEnd - space.start;
	const figures = {
		file: p.file,
		ops: trace.ops,
		allocs,
		frees: trace.ops - allocs,
		pageSize: page,
		spaceBytes: size,
		nodes: p.nodes,
		lazyMaxPages: end.lazyMaxPages,
		smallMax: end.smallMax,
		sec,
		opsPerSec: trace.ops / sec,
		peakLiveBytes: peakLive,
		peakLiveAtOp: peakAt + 1,
		peakSpanBytes: peakSpan,
		fragmentation: peakSpan / peakLive,
		liveBytesAtEnd: end.busyBytes,
		purges: end.purges,
		drainPurges: end.drainPurges,
		priorityPurges: end.priorityPurges,
		overflowPurges: end.overflowPurges,
		pictures: [] as string[],
	};

	mkdirSync(p.out, { recursive: true });
	// The maps show the part of the space the run used, in whole rows.
	const to = Math.min(space.end, space.start + Math.max(64 * page, 2 ** Math.ceil(Math.log2(peakSpan))));
	const name = p.file.replace(/^.*[\\/]/, "").replace(/(\.trace)?(\.gz)?$/, "");
	const write = (file: string, svg: string) => {
		writeFileSync(join(p.out, file), svg);
		figures.pictures.push(join(p.out, file));
	};
	write("map-peak.svg", mapSvg(peakDump, { to, title: `${name}: the space at the peak of live bytes (operation ${count(peakAt + 1)} of ${count(trace.ops)})` }));
	write("map-end.svg", mapSvg(endDump, { to, title: `${name}: the space after the last operation (${count(trace.ops)})` }));
	write("timeline.svg", timelineSvg(timeline, { title: `${name}: ${count(trace.ops)} operations replayed in ${sec.toFixed(2)} s (stats() every ${count(every)} operations)` }));
	writeFileSync(join(p.out, "timeline.json"), JSON.stringify(timeline));
	space.close();

	if (p.json) {
		console.log(JSON.stringify(figures, null, 2));
		return 0;
	}
	console.log(`vmap replay ${p.file}: ${count(trace.ops)} operations (${count(figures.allocs)} allocations, ${count(figures.frees)} frees)`);
	console.log(`space: ${bytes(size)} from ${space.start}, page size ${page} B (sizes round up to pages), ${p.nodes} node(s), lazyMaxPages ${count(end.lazyMaxPages)}, smallMax ${end.smallMax}`);
	console.log(`throughput: ${count(figures.opsPerSec)} operations/s (${sec.toFixed(3)} s, timeline sampling and event-loop turns included, map dumps not)`);
	console.log(`peak live: ${bytes(peakLive)} (${count(peakLive)} B in whole pages) at operation ${count(peakAt + 1)}; peak span: ${bytes(peakSpan)}; fragmentation (peak span / peak live): ${figures.fragmentation.toFixed(3)}`);
	console.log(`purges: ${end.purges} (drain ${end.drainPurges}, priority ${end.priorityPurges}, overflow ${end.overflowPurges}); live at the end: ${bytes(end.busyBytes)}`);
	console.log(`pictures: ${figures.pictures.join(", ")}`);
	return 0;
}
