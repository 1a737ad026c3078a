/**
 * timelineSvg(): a Timeline drawn as four panels over a shared time axis (timeline.ts says
 * what each shows): the panels and their series (panelsOf), each panel drawn in turn
 * (drawPanel: grid, axes, lines, legend).
 */
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
	niceStep,
	num,
	ORANGE,
	PURPLE,
	px,
	titleOption,
	VERMILLION,
	wholeOption,
} from "./format.ts";
import { Timeline, type TimelineData } from "./timeline.ts";

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

type Unit = "pages" | "count" | "bytes" | "ratio";

interface Panel {
	title: string;
	unit: Unit;
	series: Series[];
	/** The y axis reaches at least this far. */
	floor?: number;
}

/** The time axis every panel shares: `n` samples at times `t`, drawn `width` pixels wide. */
interface TimeAxis {
	n: number;
	t: Float64Array;
	tMax: number;
	width: number;
}

/** Draw `timeline` as an SVG document. */
export function timelineSvg(timeline: Timeline | TimelineData | string, options: TimelineOptions = {}): string {
	const tl = timeline instanceof Timeline ? timeline : Timeline.fromJSON(timeline);
	const cannot = "Cannot draw a timeline";
	validateOptions(options, TL_KEYS, cannot);
	const width = wholeOption(cannot, "width", options.width, 200, 20_000, 900);
	titleOption(cannot, options.title);
	const n = tl.length;
	const t = tl.column("t");
	const axis: TimeAxis = { n, t, tMax: n > 0 ? Math.max(t[n - 1]!, 1e-3) : 1, width };
	const title = options.title ?? `vmap timeline: ${num(n > 0 ? t[n - 1]! : 0)} s, ${n} samples of stats()`;
	const panels = panelsOf(tl);
	const height = TOP + panels.length * (PANEL_H + PANEL_GAP) + 10;
	const totalW = LEFT + width + 30;
	const out = [
		`<svg xmlns="http://www.w3.org/2000/svg" width="${totalW}" height="${height}" viewBox="0 0 ${totalW} ${height}" data-samples="${n}">`,
		`<title>${esc(title)}</title>`,
		`<rect width="${totalW}" height="${height}" fill="#fff"/>`,
		`<text x="20" y="26" font-size="16" font-weight="600" ${FONT}>${esc(title)}</text>`,
	];
	for (const [k, panel] of panels.entries())
		out.push(...drawPanel(panel, TOP + k * (PANEL_H + PANEL_GAP), k === panels.length - 1, axis));
	out.push("</svg>", "");
	return out.join("\n");
}

/** The four panels and their series, from the timeline's columns. */
function panelsOf(tl: Timeline): Panel[] {
	const n = tl.length;
	const lazyMax = tl.column("lazyMaxPages");
	const purges = tl.column("purges");
	const drain = tl.column("drainPurges");
	const prio = tl.column("priorityPurges");
	const over = tl.column("overflowPurges");
	const other = Float64Array.from(purges, (p, i) => p - drain[i]! - prio[i]! - over[i]!);
	const live = tl.column("liveBytes");
	return [
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
			floor: 2.2 * (n > 0 ? lazyMax[n - 1]! : 0),
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
			series: [{ label: "peak span / peak live", colour: PURPLE, values: fragmentation(live, tl.column("spanBytes")) }],
			floor: 1,
		},
	];
}

/** Fragmentation as the bench reports it: peak span / peak live bytes, both so far. */
function fragmentation(live: Float64Array, span: Float64Array): Float64Array {
	const frag = new Float64Array(live.length);
	let peakSpan = 0;
	let peakLive = 0;
	for (let i = 0; i < live.length; i++) {
		peakSpan = Math.max(peakSpan, span[i]!);
		peakLive = Math.max(peakLive, live[i]!);
		frag[i] = peakLive > 0 ? peakSpan / peakLive : 0;
	}
	return frag;
}

/** One panel whose plot starts at `top`: its grid and y ticks, its time ticks, its lines and their legend. */
function drawPanel(panel: Panel, top: number, last: boolean, axis: TimeAxis): string[] {
	const { n, width: W } = axis;
	const bottom = top + PANEL_H;
	let yMax = panel.floor ?? 0;
	for (const s of panel.series) for (let i = 0; i < n; i++) yMax = Math.max(yMax, s.values[i]!);
	if (!(yMax > 0)) yMax = 1;
	const step = panel.unit === "bytes" ? niceStep(yMax, 4, 2) : niceStep(yMax, 4);
	yMax = Math.ceil(yMax / step) * step;
	const yOf = (v: number) => bottom - (v / yMax) * PANEL_H;
	const out = [
		`<g data-panel="${panel.unit}">`,
		`<text x="${LEFT}" y="${top - 22}" font-size="13" font-weight="600" ${FONT}>${esc(panel.title)}</text>`,
	];
	for (let v = 0; v <= yMax + step / 2; v += step) {
		const y = yOf(v);
		out.push(`<line x1="${LEFT}" y1="${px(y)}" x2="${LEFT + W}" y2="${px(y)}" stroke="${FAINT}" stroke-width="1"/>`);
		out.push(`<text x="${LEFT - 6}" y="${px(y + 4)}" text-anchor="end" font-size="10" ${FONT}>${fmt(panel.unit, v)}</text>`);
	}
	const unitLabel = panel.unit === "count" ? "purges" : panel.unit;
	out.push(
		`<text transform="translate(22 ${(top + bottom) / 2}) rotate(-90)" text-anchor="middle" font-size="11" fill="#444" ${FONT}>${unitLabel}</text>`,
	);
	out.push(...timeTicks(axis, bottom));
	out.push(`<line x1="${LEFT}" y1="${bottom}" x2="${LEFT + W}" y2="${bottom}" stroke="${INK}" stroke-width="1"/>`);
	out.push(`<line x1="${LEFT}" y1="${top}" x2="${LEFT}" y2="${bottom}" stroke="${INK}" stroke-width="1"/>`);
	if (last) {
		out.push(
			`<text x="${LEFT + W / 2}" y="${bottom + 32}" text-anchor="middle" font-size="11" fill="#444" ${FONT}>time since the first sample (s)</text>`,
		);
	}
	out.push(...seriesLines(panel, top, axis, yOf), "</g>");
	return out;
}

/** The time axis's ticks and labels under a panel whose plot ends at `bottom`. */
function timeTicks(axis: TimeAxis, bottom: number): string[] {
	const out: string[] = [];
	const tStep = niceStep(axis.tMax, 8);
	for (let v = 0; v <= axis.tMax + 1e-9; v += tStep) {
		const x = xOf(axis, v);
		out.push(`<line x1="${px(x)}" y1="${bottom}" x2="${px(x)}" y2="${bottom + 4}" stroke="${INK}" stroke-width="1"/>`);
		out.push(`<text x="${px(x)}" y="${bottom + 15}" text-anchor="middle" font-size="10" ${FONT}>${num(v)}</text>`);
	}
	return out;
}

/** The panel's lines, then their legend to the right of its title. */
function seriesLines(panel: Panel, top: number, axis: TimeAxis, yOf: (v: number) => number): string[] {
	const out: string[] = [];
	const n = axis.n;
	let lx = LEFT + 8;
	for (const s of panel.series) {
		const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : "";
		const pts = polyline(axis, s.values, yOf, s.step === true);
		if (pts !== "")
			out.push(
				`<polyline points="${pts}" fill="none" stroke="${s.colour}" stroke-width="1.8"${dash}><title>${esc(s.label)}</title></polyline>`,
			);
		out.push(`<line x1="${lx}" y1="${top - 6}" x2="${lx + 18}" y2="${top - 6}" stroke="${s.colour}" stroke-width="2.4"${dash}/>`);
		const label = `${s.label}${n > 0 && panel.unit !== "pages" ? `: ${fmt(panel.unit, s.values[n - 1]!)}` : ""}`;
		out.push(`<text x="${lx + 23}" y="${top - 2}" font-size="11" ${FONT}>${esc(label)}</text>`);
		lx += 34 + label.length * 6.1;
	}
	return out;
}

function xOf(axis: TimeAxis, v: number): number {
	return LEFT + (v / axis.tMax) * axis.width;
}

function fmt(unit: Unit, v: number): string {
	return unit === "bytes" ? bytes(v) : unit === "ratio" ? `${num(v)}×` : num(v);
}

/**
 * Polyline points for `values` against the axis's times; with more samples than pixels, each
 * pixel column keeps its first, lowest, highest and last value, so spikes survive.
 */
function polyline(axis: TimeAxis, values: ArrayLike<number>, yOf: (v: number) => number, step: boolean): string {
	const { t, n } = axis;
	const pts: string[] = [];
	let prevY = Number.NaN;
	const add = (k: number) => {
		const x = xOf(axis, t[k]!);
		const y = yOf(values[k]!);
		if (step && !Number.isNaN(prevY) && y !== prevY) pts.push(`${px(x)},${px(prevY)}`);
		pts.push(`${px(x)},${px(y)}`);
		prevY = y;
	};
	if (n <= 2 * axis.width) {
		for (let i = 0; i < n; i++) add(i);
		return pts.join(" ");
	}
	for (let i = 0; i < n; ) {
		const col = Math.floor(xOf(axis, t[i]!));
		let lo = i;
		let hi = i;
		let j = i;
		while (j < n && Math.floor(xOf(axis, t[j]!)) === col) {
			if (values[j]! < values[lo]!) lo = j;
			if (values[j]! > values[hi]!) hi = j;
			j++;
		}
		for (const k of new Set([i, Math.min(lo, hi), Math.max(lo, hi), j - 1])) add(k);
		i = j;
	}
	return pts.join(" ");
}
