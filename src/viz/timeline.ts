/**
 * A run's timeline, sampled from stats() (which takes no allocator lock), and its picture.
 *
 * Timeline.sample() copies a few figures of one VmapStats into typed arrays (no object per
 * sample); timelineSvg() draws four panels over a shared time axis:
 * - the lazy backlog (vmapLazyNr) against lazyMaxPages, where a drain is due, and twice it, the
 *   priority threshold where the free path purges by itself;
 * - purges so far, by who ran them (drain, priority, overflow, the rest);
 * - live bytes (busyBytes) and the largest free block;
 * - fragmentation: the peak span so far over the peak live bytes so far.
 */
import type { VmapStats } from "../api/types.ts";
import { VmapError, shown } from "../api/errors.ts";
import { validateOptions } from "../core/options.ts";
import {
	BLUE,
	bytes,
	esc,
	FAINT,
	FONT,
	GREEN,
	GREY,
	INK,
	num,
	ORANGE,
	PURPLE,
	px,
	titleOption,
	VERMILLION,
	niceStep,
	wholeOption,
} from "./format.ts";

/** The figures a timeline keeps of each sample. */
const FIELDS = [
	"t",
	"lazyPages",
	"lazyMaxPages",
	"purges",
	"drainPurges",
	"priorityPurges",
	"overflowPurges",
	"liveBytes",
	"spanBytes",
	"largestFreeBlock",
] as const;
type Field = (typeof FIELDS)[number];

/** A timeline as JSON: one array per figure, `t` in seconds from the first sample. */
export type TimelineData = { [K in Field]: number[] } & { title?: string };

export class Timeline {
	#cols: Float64Array[] = FIELDS.map(() => new Float64Array(256));
	#n = 0;
	#t0 = -1;

	/** Samples taken. */
	get length(): number {
		return this.#n;
	}

	/** Record `stats` (of stats(); nothing of it is kept) as of `nowMs` (performance.now() when omitted). */
	sample(stats: VmapStats, nowMs: number = performance.now()): void {
		if (this.#n === this.#cols[0]!.length)
			this.#cols = this.#cols.map((c) => {
				const d = new Float64Array(c.length * 2);
				d.set(c);
				return d;
			});
		if (this.#t0 < 0) this.#t0 = nowMs;
		const c = this.#cols;
		const n = this.#n++;
		c[0]![n] = (nowMs - this.#t0) / 1000;
		c[1]![n] = stats.vmapLazyNr;
		c[2]![n] = stats.lazyMaxPages;
		c[3]![n] = stats.purges;
		c[4]![n] = stats.drainPurges;
		c[5]![n] = stats.priorityPurges;
		c[6]![n] = stats.overflowPurges;
		c[7]![n] = stats.busyBytes;
		c[8]![n] = stats.spanBytes;
		c[9]![n] = stats.largestFreeBlock;
	}

	/** The samples as plain arrays (JSON.stringify calls this). */
	toJSON(): TimelineData {
		const out = {} as TimelineData;
		for (const [k, f] of FIELDS.entries()) out[f] = Array.from(this.#cols[k]!.subarray(0, this.#n));
		return out;
	}

	/** A timeline from its toJSON(). */
	static fromJSON(data: TimelineData | string): Timeline {
		let d: unknown = data;
		if (typeof data === "string") {
			try {
				d = JSON.parse(data);
			} catch (e) {
				throw new VmapError("EINVAL", `Cannot read a timeline: not JSON (${(e as Error).message})`);
			}
		}
		const x = d as Partial<TimelineData> | null;
		const n = Array.isArray(x?.t) ? x.t.length : -1;
		const bad =
			typeof x !== "object" || x === null
				? "not an object"
				: FIELDS.find(
						(f) => !Array.isArray(x[f]) || x[f].length !== n || !x[f].every((v) => typeof v === "number" && Number.isFinite(v)),
					);
		if (bad !== undefined)
			throw new VmapError(
				"EINVAL",
				`Cannot read a timeline: it must be a Timeline's toJSON() (${FIELDS.join(", ")}: arrays of numbers of one length), got ${typeof bad === "string" && bad !== "not an object" ? `a bad ${bad}` : shown(d)}`,
			);
		const tl = new Timeline();
		tl.#cols = FIELDS.map((f) => Float64Array.from(x![f]!.length > 0 ? x![f]! : [0]));
		tl.#n = n;
		tl.#t0 = 0;
		return tl;
	}

	/** @internal Column `f`, the first `length` values. */
	column(f: Field): Float64Array {
		return this.#cols[FIELDS.indexOf(f)]!.subarray(0, this.#n);
	}
}

export interface TimelineOptions {
	/** Width of the plots, in pixels. @defaultValue 900 */
	width?: number;
	/** The title above the picture. @defaultValue "vmap timeline: <duration>, <samples> samples from stats()" */
	title?: string;
}

const TL_KEYS = ["width", "title"];
const LEFT = 96;
const PANEL_H = 130;
const PANEL_GAP = 58;
const TOP = 66;

interface Series {
	label: string;
	colour: string;
	values: ArrayLike<number>;
	dash?: string;
	step?: boolean;
}

/** Draw `timeline` as an SVG document. */
export function timelineSvg(timeline: Timeline | TimelineData | string, options: TimelineOptions = {}): string {
	const tl = timeline instanceof Timeline ? timeline : Timeline.fromJSON(timeline);
	const cannot = "Cannot draw a timeline";
	validateOptions(options, TL_KEYS, cannot);
	const W = wholeOption(cannot, "width", options.width, 200, 20_000, 900);
	titleOption(cannot, options.title);
	const n = tl.length;
	const t = tl.column("t");
	const tMax = n > 0 ? Math.max(t[n - 1]!, 1e-3) : 1;
	const title = options.title ?? `vmap timeline: ${num(n > 0 ? t[n - 1]! : 0)} s, ${n} samples of stats()`;

	const lazyMax = tl.column("lazyMaxPages");
	const lastMax = n > 0 ? lazyMax[n - 1]! : 0;
	const purges = tl.column("purges");
	const drain = tl.column("drainPurges");
	const prio = tl.column("priorityPurges");
	const over = tl.column("overflowPurges");
	const other = Float64Array.from(purges, (p, i) => p - drain[i]! - prio[i]! - over[i]!);
	const live = tl.column("liveBytes");
	const span = tl.column("spanBytes");
	// Fragmentation as the bench reports it: peak span / peak live bytes, both so far.
	const frag = new Float64Array(n);
	let peakSpan = 0;
	let peakLive = 0;
	for (let i = 0; i < n; i++) {
		peakSpan = Math.max(peakSpan, span[i]!);
		peakLive = Math.max(peakLive, live[i]!);
		frag[i] = peakLive > 0 ? peakSpan / peakLive : 0;
	}

	const panels: Array<{ title: string; unit: "pages" | "count" | "bytes" | "ratio"; series: Series[]; floor?: number }> = [
		{
			title: "Lazy backlog: freed pages waiting for a purge (vmapLazyNr)",
			unit: "pages",
			series: [
				{ label: "lazy pages", colour: BLUE, values: tl.column("lazyPages") },
				{ label: "lazyMaxPages: a drain is due", colour: ORANGE, values: lazyMax, dash: "6 4" },
				{
					label: "2 × lazyMaxPages: priority threshold",
					colour: VERMILLION,
					values: Float64Array.from(lazyMax, (v) => 2 * v),
					dash: "2 3",
				},
			],
			floor: 2.2 * lastMax,
		},
		{
			title: "Purges so far, by who ran them",
			unit: "count",
			series: [
				{ label: "drain (past lazyMaxPages)", colour: BLUE, values: drain, step: true },
				{ label: "priority (at 2 × lazyMaxPages)", colour: VERMILLION, values: prio, step: true },
				{ label: "overflow (an alloc found no fit)", colour: ORANGE, values: over, step: true },
				{ label: "purge() calls and adoptions", colour: GREY, values: other, step: true },
			],
		},
		{
			title: "Bytes: live (busy) and the largest free block",
			unit: "bytes",
			series: [
				{ label: "live bytes", colour: BLUE, values: live },
				{ label: "largest free block", colour: GREEN, values: tl.column("largestFreeBlock") },
			],
		},
		{
			title: "Fragmentation: peak address span / peak live bytes, so far",
			unit: "ratio",
			series: [{ label: "peak span / peak live", colour: PURPLE, values: frag }],
			floor: 1,
		},
	];

	const out: string[] = [];
	const height = TOP + panels.length * (PANEL_H + PANEL_GAP) + 10;
	const totalW = LEFT + W + 30;
	out.push(
		`<svg xmlns="http://www.w3.org/2000/svg" width="${totalW}" height="${height}" viewBox="0 0 ${totalW} ${height}" data-samples="${n}">`,
	);
	out.push(`<title>${esc(title)}</title>`);
	out.push(`<rect width="${totalW}" height="${height}" fill="#fff"/>`);
	out.push(`<text x="20" y="26" font-size="16" font-weight="600" ${FONT}>${esc(title)}</text>`);
	const xOf = (v: number) => LEFT + (v / tMax) * W;
	const tStep = niceStep(tMax, 8);

	panels.forEach((panel, k) => {
		const top = TOP + k * (PANEL_H + PANEL_GAP);
		const bottom = top + PANEL_H;
		let yMax = panel.floor ?? 0;
		for (const s of panel.series) for (let i = 0; i < n; i++) yMax = Math.max(yMax, s.values[i]!);
		if (!(yMax > 0)) yMax = 1;
		const step = panel.unit === "bytes" ? niceStep(yMax, 4, 2) : niceStep(yMax, 4);
		yMax = Math.ceil(yMax / step) * step;
		const yOf = (v: number) => bottom - (v / yMax) * PANEL_H;
		out.push(`<g data-panel="${panel.unit}">`);
		out.push(`<text x="${LEFT}" y="${top - 22}" font-size="13" font-weight="600" ${FONT}>${esc(panel.title)}</text>`);
		// Grid and y ticks.
		for (let v = 0; v <= yMax + step / 2; v += step) {
			const y = yOf(v);
			out.push(`<line x1="${LEFT}" y1="${px(y)}" x2="${LEFT + W}" y2="${px(y)}" stroke="${FAINT}" stroke-width="1"/>`);
			const label = panel.unit === "bytes" ? bytes(v) : panel.unit === "ratio" ? `${num(v)}×` : num(v);
			out.push(`<text x="${LEFT - 6}" y="${px(y + 4)}" text-anchor="end" font-size="10" ${FONT}>${label}</text>`);
		}
		const unitLabel = panel.unit === "pages" ? "pages" : panel.unit === "count" ? "purges" : panel.unit === "bytes" ? "bytes" : "ratio";
		out.push(
			`<text transform="translate(22 ${(top + bottom) / 2}) rotate(-90)" text-anchor="middle" font-size="11" fill="#444" ${FONT}>${unitLabel}</text>`,
		);
		// x ticks.
		for (let v = 0; v <= tMax + 1e-9; v += tStep) {
			const x = xOf(v);
			out.push(`<line x1="${px(x)}" y1="${bottom}" x2="${px(x)}" y2="${bottom + 4}" stroke="${INK}" stroke-width="1"/>`);
			out.push(`<text x="${px(x)}" y="${bottom + 15}" text-anchor="middle" font-size="10" ${FONT}>${num(v)}</text>`);
		}
		out.push(`<line x1="${LEFT}" y1="${bottom}" x2="${LEFT + W}" y2="${bottom}" stroke="${INK}" stroke-width="1"/>`);
		out.push(`<line x1="${LEFT}" y1="${top}" x2="${LEFT}" y2="${bottom}" stroke="${INK}" stroke-width="1"/>`);
		if (k === panels.length - 1)
			out.push(
				`<text x="${LEFT + W / 2}" y="${bottom + 32}" text-anchor="middle" font-size="11" fill="#444" ${FONT}>time since the first sample (s)</text>`,
			);
		// Lines, then their legend to the right of the panel title.
		let lx = LEFT + 8;
		for (const s of panel.series) {
			const pts = polyline(t, s.values, n, xOf, yOf, W, s.step === true);
			if (pts !== "")
				out.push(
					`<polyline points="${pts}" fill="none" stroke="${s.colour}" stroke-width="1.8"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}><title>${esc(s.label)}</title></polyline>`,
				);
			out.push(
				`<line x1="${lx}" y1="${top - 6}" x2="${lx + 18}" y2="${top - 6}" stroke="${s.colour}" stroke-width="2.4"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`,
			);
			const label = `${s.label}${n > 0 && panel.unit !== "pages" ? `: ${fmt(panel.unit, s.values[n - 1]!)}` : ""}`;
			out.push(`<text x="${lx + 23}" y="${top - 2}" font-size="11" ${FONT}>${esc(label)}</text>`);
			lx += 34 + label.length * 6.1;
		}
		out.push("</g>");
	});
	out.push("</svg>", "");
	return out.join("\n");
}

function fmt(unit: string, v: number): string {
	return unit === "bytes" ? bytes(v) : unit === "ratio" ? `${num(v)}×` : num(v);
}

/**
 * Polyline points for `values` against `t`; with more samples than pixels, each pixel column
 * keeps its first, lowest, highest and last value, so spikes survive.
 */
function polyline(
	t: ArrayLike<number>,
	values: ArrayLike<number>,
	n: number,
	xOf: (v: number) => number,
	yOf: (v: number) => number,
	width: number,
	step: boolean,
): string {
	const pts: string[] = [];
	let prevY = Number.NaN;
	const add = (x: number, y: number) => {
		if (step && !Number.isNaN(prevY) && y !== prevY) pts.push(`${px(x)},${px(prevY)}`);
		pts.push(`${px(x)},${px(y)}`);
		prevY = y;
	};
	if (n <= 2 * width) {
		for (let i = 0; i < n; i++) add(xOf(t[i]!), yOf(values[i]!));
		return pts.join(" ");
	}
	let i = 0;
	while (i < n) {
		const col = Math.floor(xOf(t[i]!));
		let lo = i;
		let hi = i;
		let j = i;
		while (j < n && Math.floor(xOf(t[j]!)) === col) {
			if (values[j]! < values[lo]!) lo = j;
			if (values[j]! > values[hi]!) hi = j;
			j++;
		}
		for (const k of [...new Set([i, Math.min(lo, hi), Math.max(lo, hi), j - 1])]) add(xOf(t[k]!), yOf(values[k]!));
		i = j;
	}
	return pts.join(" ");
}
