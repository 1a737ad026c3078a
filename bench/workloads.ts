/**
 * The workloads of `vmap bench`, the same for every allocator and every seed. They follow
 * the published JavaScript-allocator benchmark this project started from (the same
 * xorshift32, the same live band, the same 1e6 timed operations), so its figures compare
 * directly.
 *
 * Honesty counters, outside the timed loops:
 * - fails: allocations that returned 0 (no room);
 * - overlaps: neighbouring live ranges that overlap after the fill and after the run, plus
 *   live ranges outside the allocator's [base, limit);
 * - the allocator's own check() after the run, where it has one.
 */
import { xorshift32 } from "../harness/random.ts";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { VmapSpace } from "../src/index.ts";
import { mapSvg, Timeline, timelineSvg } from "../src/viz.ts";
import type { Subject } from "./peers.ts";

/** Live ranges held by a workload: addresses and sizes in the allocator's units. */
export class Held {
	readonly addr: Float64Array;
	readonly size: Float64Array;
	n = 0;

	constructor(capacity: number) {
		this.addr = new Float64Array(capacity);
		this.size = new Float64Array(capacity);
	}

	/** Overlapping neighbours once sorted by address, plus ranges outside [base, limit). */
	overlaps(base: number, limit: number): number {
		const order = new Uint32Array(this.n);
		for (let i = 0; i < this.n; i++) order[i] = i;
		const a = this.addr;
		const s = this.size;
		order.sort((x, y) => a[x]! - a[y]!);
		let bad = 0;
		for (let k = 0; k < this.n; k++) {
			const i = order[k]!;
			if (a[i]! < base || a[i]! + s[i]! > limit) bad++;
			if (k > 0 && a[order[k - 1]!]! + s[order[k - 1]!]! > a[i]!) bad++;
		}
		return bad;
	}
}

/** Peak resident set so far, read as a timed loop ends, before the checks build their own structures. */
export function rssMiB(): number {
	return process.resourceUsage().maxRSS / 1024;
}

export interface FixedParams {
	size: number;
	pairs: number;
	ids: boolean;
}

/** Ranges held at once by the check after W0: pairs alone never hold two. */
export const PROBE = 1_000;

/**
 * W0: `pairs` alloc+free pairs of one fixed size, after 10,000 untimed warm-up pairs. Then
 * PROBE areas are held at once and checked for overlap, since pairs never hold two.
 */
export function fixed(a: Subject, p: FixedParams) {
	const unit = p.ids ? 1 : p.size;
	for (let i = 0; i < 10_000; i++) {
		const h = a.alloc(p.size);
		if (h) a.free(h);
	}
	let fails = 0;
	const t0 = performance.now();
	for (let i = 0; i < p.pairs; i++) {
		const h = a.alloc(p.size);
		if (!h) {
			fails++;
			continue;
		}
		a.free(h);
	}
	const sec = (performance.now() - t0) / 1000;
	const maxRssMiB = rssMiB();
	const probe = probeOverlaps(a, p.size, unit);
	a.check();
	return {
		pairs: p.pairs,
		sec,
		pairsPerSec: p.pairs / sec,
		fails: fails + probe.fails,
		overlaps: probe.overlaps,
		maxRssMiB,
		...a.audit?.(0),
	};
}

/** After alloc+free pairs, which never hold two ranges: hold PROBE at once, count overlaps, free them. */
export function probeOverlaps(a: Subject, size: number, unit: number): { fails: number; overlaps: number } {
	const held = new Held(PROBE);
	let fails = 0;
	for (let i = 0; i < PROBE; i++) {
		const h = a.alloc(size);
		if (!h) fails++;
		else {
			held.addr[held.n] = h;
			held.size[held.n++] = unit;
		}
	}
	const overlaps = held.overlaps(a.base, a.limit);
	for (let i = 0; i < held.n; i++) a.free(held.addr[i]!);
	return { fails, overlaps };
}

export interface RandomParams {
	/** Allocations held, kept within [live - band, live + band], band = max(100, live / 100). */
	live: number;
	/** Timed operations, each an alloc or a free of a random live range. */
	ops: number;
	/** Sizes are 1..maxSize bytes, uniform. */
	maxSize: number;
	/** Sizes ignored, each allocation one unit (number-allocator). */
	ids: boolean;
	/** The timed loop stops here even if `ops` are not done. */
	timeLimitMs: number;
	seed: number;
	/** `vmap bench --viz`: the folder and file-name stem of this run's pictures (vmap peers only). */
	viz?: { dir: string; name: string; title: string } | undefined;
}

/**
 * W1 and the scale runs: fill to `live` (untimed), then time `ops` operations. Spans and live
 * totals count every allocation from the first, so fragmentation = peak span / peak live is the
 * address room the allocator needed per byte it had to hold.
 */
export function random(a: Subject, p: RandomParams) {
	const rnd = xorshift32(p.seed);
	const band = Math.max(100, Math.floor(p.live / 100));
	const held = new Held(p.live + band + 1);
	const hs = held.addr;
	const sizes = held.size;
	let fails = 0;
	let liveUnits = 0;
	let peakLive = 0;
	let peakEnd = a.base;
	const doAlloc = () => {
		const size = 1 + (rnd() % p.maxSize);
		const unit = p.ids ? 1 : size;
		const h = a.alloc(size);
		if (!h) {
			fails++;
			return;
		}
		hs[held.n] = h;
		sizes[held.n++] = unit;
		liveUnits += unit;
		if (liveUnits > peakLive) peakLive = liveUnits;
		if (h + unit > peakEnd) peakEnd = h + unit;
	};
	const doFree = () => {
		const i = rnd() % held.n;
		a.free(hs[i]!);
		liveUnits -= sizes[i]!;
		const n = --held.n;
		hs[i] = hs[n]!;
		sizes[i] = sizes[n]!;
	};
	while (held.n < p.live && fails < p.live) doAlloc();
	const fillFails = fails;
	const overlaps = held.overlaps(a.base, a.limit);
	fails = 0;
	let done = 0;
	let capped: "time" | false = false;
	// The clock is read after every operation for the first millisecond, then about once a
	// millisecond: cheap for fast allocators, and a slow one overruns the limit by one operation.
	let mask = 0;
	// --viz: the timeline, from stats() at every clock reading (no lock, no object made).
	const space = p.viz === undefined ? undefined : a.space;
	const timeline = new Timeline();
	const st = space?.stats();
	const t0 = performance.now();
	for (; done < p.ops; done++) {
		const n = held.n;
		if (n <= p.live - band) doAlloc();
		else if (n >= p.live + band || n === 0) doFree();
		else if (rnd() & 1) doAlloc();
		else doFree();
		if ((done & mask) === mask) {
			if (space !== undefined) timeline.sample(space.stats({ into: st! }));
			const ms = performance.now() - t0;
			if (ms > p.timeLimitMs) {
				done++;
				capped = "time";
				break;
			}
			if (mask === 0 && ms >= 1) mask = 2 ** Math.floor(Math.log2(done + 1)) - 1;
		}
	}
	const sec = (performance.now() - t0) / 1000;
	if (space !== undefined)
		vizFiles(p.viz!, space, timeline, peakEnd - a.base, `${done.toLocaleString("en-US")} operations in ${sec.toFixed(2)} s`);
	return randomResult(a, p, held, { ops: done, sec, capped, fillFails, fails, overlaps, peakLive, peakSpan: peakEnd - a.base });
}

/** What random() counted in its timed loop, before the last overlap check and the allocator's own. */
interface RandomCounts {
	ops: number;
	sec: number;
	capped: "time" | false;
	fillFails: number;
	fails: number;
	overlaps: number;
	peakLive: number;
	peakSpan: number;
}

/** random()'s figures: its counts, the ranges still held checked for overlap, the allocator checked, and its audit. */
function randomResult(a: Subject, p: RandomParams, held: Held, c: RandomCounts) {
	const maxRssMiB = rssMiB();
	const overlaps = c.overlaps + held.overlaps(a.base, a.limit);
	a.check();
	return {
		opsPlanned: p.ops,
		ops: c.ops,
		sec: c.sec,
		opsPerSec: c.ops / c.sec,
		capped: c.capped,
		fillFails: c.fillFails,
		fails: c.fails,
		overlaps,
		live: held.n,
		peakLive: c.peakLive,
		peakSpan: c.peakSpan,
		fragmentation: c.peakSpan / c.peakLive,
		maxRssMiB,
		...a.audit?.(held.n),
	};
}

/** The pictures of a vmap run: the map of the part of the space it used, and the timeline. */
function vizFiles(
	v: { dir: string; name: string; title: string },
	space: VmapSpace,
	timeline: Timeline,
	peakSpan: number,
	what: string,
): void {
	mkdirSync(v.dir, { recursive: true });
	timeline.sample(space.stats());
	const to = Math.min(space.end, space.start + 2 ** Math.ceil(Math.log2(Math.max(peakSpan, 64 * space.pageSize))));
	writeFileSync(join(v.dir, `${v.name}.map.svg`), mapSvg(space.dump(), { to, title: `${v.title}: the space after the timed loop` }));
	writeFileSync(join(v.dir, `${v.name}.timeline.svg`), timelineSvg(timeline, { title: `${v.title}: ${what}` }));
}

/** The space of a workers case: W0 allocates pages (pageSize 4096), W1 bytes (pageSize 1). */
export function workersSpace(workload: "W0" | "W1", nodes: number, cache: boolean): VmapSpace {
	const smallMax = cache ? {} : { smallMax: 0 };
	return workload === "W0"
		? VmapSpace.create({ size: 2 ** 40, nodes, ...smallMax })
		: VmapSpace.create({ start: 1, size: 2 ** 40, pageSize: 1, nodes, ...smallMax });
}
