/**
 * mapSvg(): a picture of an address space from its dump(), as rows of address bands.
 *
 * Every busy area is coloured by its tag (the five largest tags get a colour each, the rest
 * share one), lazy areas are hatched, pooled ones dotted, small-area blocks gridded with their
 * owning handle's id, free space is left blank and the largest free block is outlined. An area
 * at least BIG_PX pixels wide is drawn alone at its exact width; narrower ones are aggregated
 * per pixel into a stacked bar, each state as tall as its share of the pixel's bytes, so a
 * million areas draw in O(areas + pixels) time into at most about AGG_RECTS rectangles.
 *
 * Pooled space is what lies in no area and no free block: exact on a still space; on one that
 * others change while the dump reads it, a range that moved between listings shows as pooled.
 */
import type { DumpArea, DumpFreeBlock, DumpSmallBlock, VmapDump } from "../api/types.ts";
import { hex, VmapError, shown } from "../api/errors.ts";
import { validateOptions } from "../core/options.ts";
import {
	BLUE,
	bytes,
	count,
	esc,
	FAINT,
	FONT,
	GREEN,
	GREY,
	INK,
	MONO,
	ORANGE,
	PURPLE,
	px,
	SKY,
	titleOption,
	VERMILLION,
	wholeOption,
	YELLOW,
} from "./format.ts";

export interface MapOptions {
	/** Width of the address bands, in pixels. @defaultValue 960 */
	width?: number;
	/** Number of address bands. @defaultValue 32 */
	rows?: number;
	/** The range drawn, [from, to): within the space. @defaultValue the whole space */
	from?: number;
	to?: number;
	/** The title above the picture. @defaultValue the range, its size and the number of areas */
	title?: string;
	/** Prefix of the ids of the SVG's patterns, for several pictures in one HTML page. @defaultValue "vmap-" */
	idPrefix?: string;
}

const MAP_KEYS = ["width", "rows", "from", "to", "title", "idPrefix"];
/** An area at least this many pixels wide is drawn alone; narrower ones are aggregated. */
const BIG_PX = 2;
/** Busy tags that get a colour of their own, largest first. */
const TAG_COLOURS = [BLUE, ORANGE, PURPLE, SKY, VERMILLION];
const BLOCK_TAG = "vmap_block";
const LEFT = 150;
const TOP = 84;
const ROW_H = 14;
const ROW_GAP = 4;
/** Most rectangles the aggregated pixels may take (about 3 MB of SVG). */
const AGG_RECTS = 40_000;

interface Category {
	label: string;
	fill: string;
	bytes: number;
	areas: number;
}

/** Totals from the dump beside the categories' (the legend's figures): all busy areas, and free space. */
interface MapTotals {
	busyBytes: number;
	busyAreas: number;
	freeBytes: number;
	freeBlocks: number;
	largestFreeBlock: number;
	largestFreeStart: number;
}

/** Draw `dump` (a dump() string or its JSON.parse) as an SVG document. */
export function mapSvg(dump: VmapDump | string, options: MapOptions = {}): string {
	const d = parseDump(dump);
	const o = mapOptions(d, options);
	const p = o.idPrefix;
	const span = o.to - o.from;
	const pageSize = d.stats.pageSize;
	const W = o.width;
	const rowBytes = Math.max(pageSize, Math.ceil(span / o.rows / pageSize) * pageSize);
	const rows = Math.ceil(span / rowBytes);
	const pxBytes = rowBytes / W;

	// Categories: the largest busy tags, other tags, untagged, small-area blocks, lazy, pooled.
	const blockAt = new Map<number, DumpSmallBlock>(d.blocks.map((b) => [b.start, b]));
	const tagBytes = new Map<string, number>();
	for (const a of d.areas)
		if (a.state === "busy" && !blockAt.has(a.start)) tagBytes.set(a.tag ?? "", (tagBytes.get(a.tag ?? "") ?? 0) + a.size);
	const named = [...tagBytes.entries()].filter(([t]) => t !== "").sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1));
	const cats: Category[] = [];
	const catOfTag = new Map<string, number>();
	named.slice(0, TAG_COLOURS.length).forEach(([tag], i) => {
		catOfTag.set(tag, cats.length);
		cats.push({ label: `busy · ${tag}`, fill: TAG_COLOURS[i]!, bytes: 0, areas: 0 });
	});
	const OTHER = cats.length;
	cats.push({ label: `busy · ${named.length - TAG_COLOURS.length} other tags`, fill: GREY, bytes: 0, areas: 0 });
	const UNTAGGED = cats.length;
	cats.push({ label: "busy · no tag", fill: "#555555", bytes: 0, areas: 0 });
	const BLOCK = cats.length;
	cats.push({ label: "small-area blocks (busy; label: owning handle)", fill: `url(#${p}block)`, bytes: 0, areas: 0 });
	const LAZY = cats.length;
	cats.push({ label: "lazy: freed, waiting for a purge", fill: `url(#${p}lazy)`, bytes: 0, areas: 0 });
	const POOLED = cats.length;
	cats.push({ label: "pooled: purged into a node's pool", fill: `url(#${p}pooled)`, bytes: 0, areas: 0 });
	const C = cats.length;

	const t: MapTotals = { busyBytes: 0, busyAreas: 0, freeBytes: 0, freeBlocks: 0, largestFreeBlock: 0, largestFreeStart: -1 };
	const cov = new Float64Array(rows * W * C); // bytes of each category under each pixel, from areas narrower than BIG_PX
	const big: string[] = [];
	const labels: string[] = [];

	const paint = (start: number, end: number, c: number, title: string | undefined) => {
		const s = Math.max(start, o.from);
		const e = Math.min(end, o.to);
		if (s >= e) return;
		const g0 = (s - o.from) / pxBytes;
		const g1 = (e - o.from) / pxBytes;
		if (g1 - g0 >= BIG_PX) {
			const stroke = c < BLOCK ? ` stroke="#fff" stroke-width="0.5"` : "";
			const tip = title === undefined ? "" : `<title>${esc(title)}</title>`;
			for (const [r, x0, x1] of rowSegments(g0, g1, W)) {
				big.push(
					`<rect data-start="${hex(start)}" x="${px(LEFT + x0)}" y="${rowY(r)}" width="${px(x1 - x0)}" height="${ROW_H}" fill="${cats[c]!.fill}"${stroke}>${tip}</rect>`,
				);
			}
			return;
		}
		// Spread the bytes over the pixels the range touches.
		const p0 = Math.floor(g0);
		const p1 = Math.min(rows * W, Math.ceil(g1)) - 1;
		if (p0 === p1) {
			cov[p0 * C + c]! += e - s;
			return;
		}
		cov[p0 * C + c]! += (p0 + 1 - g0) * pxBytes;
		for (let q = p0 + 1; q < p1; q++) cov[q * C + c]! += pxBytes;
		cov[p1 * C + c]! += (g1 - p1) * pxBytes;
	};
	const areaTitle = (a: DumpArea) => `${hex(a.start)}–${hex(a.end)} ${bytes(a.size)} ${a.state}${a.tag === undefined ? "" : ` ${a.tag}`}`;

	// One sweep in address order over areas and free blocks; what lies in neither is pooled.
	let cursor = d.start;
	const gap = (end: number) => {
		if (end > cursor) {
			cats[POOLED]!.bytes += end - cursor;
			cats[POOLED]!.areas++;
			paint(cursor, end, POOLED, `${hex(cursor)}–${hex(end)} ${bytes(end - cursor)} pooled`);
		}
	};
	let i = 0;
	let j = 0;
	const free = d.free;
	while (i < d.areas.length || j < free.length) {
		if (j >= free.length || (i < d.areas.length && d.areas[i]!.start < free[j]!.start)) {
			const a = d.areas[i++]!;
			gap(a.start);
			cursor = Math.max(cursor, a.end);
			const block = a.state === "busy" ? blockAt.get(a.start) : undefined;
			let c: number;
			if (a.state === "lazy") c = LAZY;
			else {
				t.busyBytes += a.size;
				t.busyAreas++;
				// A block is a busy area tagged vmap_block; dump.blocks, read without a lock, may
				// miss one made meanwhile (it is drawn as a block, without its owner).
				if (block !== undefined || a.tag === BLOCK_TAG) c = BLOCK;
				else c = a.tag === undefined ? UNTAGGED : (catOfTag.get(a.tag) ?? OTHER);
			}
			cats[c]!.bytes += a.size;
			cats[c]!.areas++;
			paint(a.start, a.end, c, areaTitle(a));
			if (block !== undefined) labels.push(...blockLabel(block, o.from, o.to, pxBytes, W, rowY));
		} else {
			const b = free[j++]!;
			gap(b.start);
			cursor = Math.max(cursor, b.end);
			t.freeBytes += b.size;
			t.freeBlocks++;
			if (b.size > t.largestFreeBlock) {
				t.largestFreeBlock = b.size;
				t.largestFreeStart = b.start;
			}
		}
	}
	gap(d.end);

	// Aggregated pixels: a stacked bar each, every category as tall as its share of the pixel's
	// bytes (free space leaves the rest blank); neighbours with the same bar merge. Cells widen
	// (1, 2, 4... pixels) until the picture holds at most AGG_RECTS rectangles.
	let aggregated = 0;
	for (let q = 0; q < rows * W; q++) {
		for (let c = 0; c < C; c++) {
			if (cov[q * C + c]! > 0) {
				aggregated++;
				break;
			}
		}
	}
	let agg: string[] = [];
	let cell = 1;
	for (; cell <= W; cell *= 2) {
		agg = stackedCells(
			cov,
			rows,
			W,
			C,
			cell,
			pxBytes,
			(x, r, w, y0, h, c) => `<rect x="${LEFT + x}" y="${rowY(r) + y0}" width="${w}" height="${h}" fill="${cats[c]!.fill}"/>`,
		);
		if (agg.length <= AGG_RECTS) break;
	}

	// The largest free block, outlined.
	const outline: string[] = [];
	if (t.largestFreeStart >= 0) {
		const s = Math.max(t.largestFreeStart, o.from);
		const e = Math.min(t.largestFreeStart + t.largestFreeBlock, o.to);
		if (s < e) {
			for (const [r, x0, x1] of rowSegments((s - o.from) / pxBytes, (e - o.from) / pxBytes, W)) {
				outline.push(
					`<rect x="${px(LEFT + x0 + 1)}" y="${rowY(r) + 1}" width="${px(Math.max(0, x1 - x0 - 2))}" height="${ROW_H - 2}" fill="none" stroke="${INK}" stroke-width="1.5" stroke-dasharray="4 3"/>`,
				);
			}
		}
	}

	// Axes: each row's first address on the left, the offset within a row on top.
	const digits = Math.max(4, (o.to - 1).toString(16).length);
	const plotBottom = rowY(rows) - ROW_GAP;
	const axes: string[] = [];
	const rowLabelEvery = Math.ceil(rows / 40);
	for (let r = 0; r < rows; r++) {
		axes.push(`<rect x="${LEFT}" y="${rowY(r)}" width="${W}" height="${ROW_H}" fill="#fff" stroke="${FAINT}" stroke-width="1"/>`);
		if (r % rowLabelEvery === 0)
			axes.push(
				`<text x="${LEFT - 6}" y="${rowY(r) + ROW_H - 3}" text-anchor="end" font-size="10" ${MONO}>0x${(o.from + r * rowBytes).toString(16).padStart(digits, "0")}</text>`,
			);
	}
	for (let k = 0; k <= 4; k++) {
		const x = LEFT + (W * k) / 4;
		const anchor = k === 0 ? "start" : k === 4 ? "end" : "middle";
		axes.push(`<line x1="${px(x)}" y1="${TOP - 6}" x2="${px(x)}" y2="${plotBottom}" stroke="${FAINT}" stroke-width="1"/>`);
		axes.push(`<text x="${px(x)}" y="${TOP - 9}" text-anchor="${anchor}" font-size="10" ${MONO}>+${hex((rowBytes * k) / 4)}</text>`);
	}
	axes.push(
		`<text x="${LEFT + W / 2}" y="${TOP - 24}" text-anchor="middle" font-size="11" fill="#444" ${FONT}>offset within the row (hex, bytes): each row is ${bytes(rowBytes)} of addresses, left to right</text>`,
	);
	axes.push(
		`<text transform="translate(16 ${(TOP + plotBottom) / 2}) rotate(-90)" text-anchor="middle" font-size="11" fill="#444" ${FONT}>row start address (hex)</text>`,
	);

	// Legend: a swatch and the bytes of each category present, then the totals.
	const legend: string[] = [];
	let ly = plotBottom + 26;
	const present = cats.map((c, k) => ({ ...c, k })).filter((c) => c.areas > 0);
	const colW = (W + LEFT - 20) / 2;
	present.forEach((c, n) => {
		const x = 20 + (n % 2) * colW;
		const y = ly + Math.floor(n / 2) * 18;
		const what =
			c.k === POOLED
				? `${bytes(c.bytes)} in ${count(c.areas)} ranges`
				: `${bytes(c.bytes)} in ${count(c.areas)} area${c.areas === 1 ? "" : "s"}`;
		legend.push(`<rect x="${x}" y="${y - 10}" width="18" height="12" fill="${c.fill}" stroke="${GREY}" stroke-width="0.5"/>`);
		legend.push(`<text x="${x + 24}" y="${y}" font-size="12" ${FONT}>${esc(c.label)}: ${what}</text>`);
	});
	ly += Math.ceil(present.length / 2) * 18;
	const freeRow = [
		`<rect x="20" y="${ly - 10}" width="18" height="12" fill="#fff" stroke="${GREY}" stroke-width="0.5"/>`,
		`<text x="44" y="${ly}" font-size="12" ${FONT}>free: ${bytes(t.freeBytes)} in ${count(t.freeBlocks)} block${t.freeBlocks === 1 ? "" : "s"}</text>`,
	];
	if (t.largestFreeStart >= 0) {
		freeRow.push(
			`<rect x="${20 + colW}" y="${ly - 10}" width="18" height="12" fill="none" stroke="${INK}" stroke-width="1.5" stroke-dasharray="4 3"/>`,
		);
		freeRow.push(
			`<text x="${44 + colW}" y="${ly}" font-size="12" ${FONT}>largest free block: ${bytes(t.largestFreeBlock)} at ${hex(t.largestFreeStart)}</text>`,
		);
	}
	legend.push(...freeRow);
	ly += 22;
	const lazy = cats[LAZY]!;
	const pooled = cats[POOLED]!.bytes;
	const totals = `busy ${bytes(t.busyBytes)} (${count(t.busyAreas)} areas) · lazy ${bytes(lazy.bytes)} (${count(lazy.areas)}) · pooled ${bytes(pooled)} · free ${bytes(t.freeBytes)} (${count(t.freeBlocks)} blocks)`;
	legend.push(
		`<text id="${p}totals" x="20" y="${ly}" font-size="12" font-weight="600" ${FONT} data-busy-bytes="${t.busyBytes}" data-busy-areas="${t.busyAreas}" data-lazy-bytes="${lazy.bytes}" data-lazy-areas="${lazy.areas}" data-pooled-bytes="${pooled}" data-free-bytes="${t.freeBytes}" data-free-blocks="${t.freeBlocks}" data-block-bytes="${cats[BLOCK]!.bytes}" data-largest-free-block="${t.largestFreeBlock}">Totals: ${totals}</text>`,
	);
	ly += 18;
	const note =
		aggregated > 0
			? `1 px = ${bytes(pxBytes)}. ${count(aggregated)} pixels hold areas narrower than ${BIG_PX} px: there each state is as tall as its share of the bytes${cell > 1 ? ` of ${cell} px` : ""}.`
			: `1 px = ${bytes(pxBytes)}; every area is drawn at its own width.`;
	legend.push(`<text x="20" y="${ly}" font-size="11" fill="#444" ${FONT}>${esc(note)}</text>`);
	const height = ly + 16;
	const totalW = LEFT + W + 20;

	const title = o.title ?? `vmap address space [${hex(o.from)}, ${hex(o.to)}): ${bytes(span)}, ${count(t.busyAreas + lazy.areas)} areas`;
	const head = [
		`<svg xmlns="http://www.w3.org/2000/svg" width="${totalW}" height="${height}" viewBox="0 0 ${totalW} ${height}" data-px-bytes="${pxBytes}" data-row-bytes="${rowBytes}" data-rows="${rows}" data-from="${o.from}" data-to="${o.to}">`,
		`<title>${esc(title)}</title>`,
		"<defs>",
		`<pattern id="${p}lazy" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="${YELLOW}"/><line x1="1" y1="0" x2="1" y2="6" stroke="${INK}" stroke-width="1.6"/></pattern>`,
		`<pattern id="${p}pooled" width="5" height="5" patternUnits="userSpaceOnUse"><rect width="5" height="5" fill="#D4EEE5"/><circle cx="2.5" cy="2.5" r="1.3" fill="${GREEN}"/></pattern>`,
		`<pattern id="${p}block" width="4" height="4" patternUnits="userSpaceOnUse"><rect width="4" height="4" fill="#EDEDED"/><path d="M0 0H4M0 0V4" stroke="${GREY}" stroke-width="0.6"/></pattern>`,
		"</defs>",
		`<rect width="${totalW}" height="${height}" fill="#fff"/>`,
		`<text x="20" y="24" font-size="16" font-weight="600" ${FONT}>${esc(title)}</text>`,
	];
	return [...head, ...axes, ...agg, ...big, ...labels, ...outline, ...legend, "</svg>", ""].join("\n");

	function rowY(r: number): number {
		return TOP + r * (ROW_H + ROW_GAP);
	}
}

/**
 * The stacked bars of cells `cell` pixels wide: in each, category c is as tall (in whole pixels
 * of ROW_H, by largest remainder) as its share of the cell's bytes; runs of equal bars merge.
 */
function stackedCells(
	cov: Float64Array,
	rows: number,
	W: number,
	C: number,
	cell: number,
	pxBytes: number,
	rect: (x: number, r: number, w: number, y0: number, h: number, c: number) => string,
): string[] {
	const out: string[] = [];
	const h = new Int32Array(C);
	const runH = new Int32Array(C);
	const frac = new Float64Array(C);
	const cellBytes = cell * pxBytes;
	const flush = (r: number, x0: number, x1: number) => {
		let y = 0;
		for (let c = 0; c < C; c++) {
			if (runH[c]! > 0) out.push(rect(x0, r, x1 - x0, y, runH[c]!, c));
			y += runH[c]!;
		}
	};
	for (let r = 0; r < rows; r++) {
		let runX = 0;
		runH.fill(0);
		for (let x = 0; x < W; x += cell) {
			// Bytes of each category in the cell, as heights; the total rounded, shared by largest remainder.
			let total = 0;
			let given = 0;
			for (let c = 0; c < C; c++) {
				let b = 0;
				for (let k = x; k < Math.min(W, x + cell); k++) b += cov[(r * W + k) * C + c]!;
				const exact = (b / cellBytes) * ROW_H;
				h[c] = Math.floor(exact);
				frac[c] = exact - h[c]!;
				total += exact;
				given += h[c]!;
			}
			for (let left = Math.min(ROW_H, Math.round(total)) - given; left > 0; left--) {
				let best = 0;
				for (let c = 1; c < C; c++) if (frac[c]! > frac[best]!) best = c;
				h[best]!++;
				frac[best] = -1;
			}
			let same = true;
			for (let c = 0; c < C; c++) if (h[c] !== runH[c]) same = false;
			if (!same) {
				flush(r, runX, x);
				runH.set(h);
				runX = x;
			}
		}
		flush(r, runX, W);
	}
	return out;
}

/** The pieces, one per row, of the pixel range [g0, g1) of bands `width` pixels wide: [row, x0, x1]. */
function rowSegments(g0: number, g1: number, width: number): Array<[number, number, number]> {
	const out: Array<[number, number, number]> = [];
	for (let r = Math.floor(g0 / width); r * width < g1; r++) {
		const x0 = Math.max(g0, r * width) - r * width;
		const x1 = Math.min(g1, (r + 1) * width) - r * width;
		if (x1 > x0) out.push([r, x0, x1]);
	}
	return out;
}

/** The owner's id, written in a small-area block wide enough for it, and its outline. */
function blockLabel(b: DumpSmallBlock, from: number, to: number, pxBytes: number, width: number, rowY: (r: number) => number): string[] {
	const s = Math.max(b.start, from);
	const e = Math.min(b.end, to);
	if (s >= e) return [];
	const out: string[] = [];
	for (const [r, x0, x1] of rowSegments((s - from) / pxBytes, (e - from) / pxBytes, width)) {
		if (x1 - x0 < 3) continue;
		out.push(
			`<rect x="${px(LEFT + x0)}" y="${rowY(r)}" width="${px(x1 - x0)}" height="${ROW_H}" fill="none" stroke="${INK}" stroke-width="0.8"/>`,
		);
		if (x1 - x0 >= 16)
			out.push(
				`<text x="${px(LEFT + (x0 + x1) / 2)}" y="${rowY(r) + ROW_H - 3}" text-anchor="middle" font-size="9" ${FONT}>${b.owner}</text>`,
			);
	}
	return out;
}

function parseDump(dump: VmapDump | string): VmapDump {
	let d: unknown = dump;
	if (typeof dump === "string") {
		try {
			d = JSON.parse(dump);
		} catch (e) {
			throw new VmapError("EINVAL", `Cannot draw a map: dump is not JSON (${(e as Error).message})`);
		}
	}
	const x = d as Partial<VmapDump> | null;
	const ok =
		typeof x === "object" &&
		x !== null &&
		Number.isSafeInteger(x.start) &&
		Number.isSafeInteger(x.end) &&
		x.start! < x.end! &&
		typeof x.stats === "object" &&
		x.stats !== null &&
		Number.isSafeInteger(x.stats.pageSize) &&
		Array.isArray(x.areas) &&
		Array.isArray(x.free) &&
		Array.isArray(x.blocks);
	if (!ok)
		throw new VmapError(
			"EINVAL",
			`Cannot draw a map: dump must be what VmapSpace.dump() returns ({ start, end, stats, areas, free, blocks }), got ${shown(d)}`,
		);
	checkSorted(x.areas!, "areas");
	checkSorted(x.free!, "free");
	return x as VmapDump;
}

function checkSorted(list: Array<DumpArea | DumpFreeBlock>, name: string): void {
	let last = -Infinity;
	for (const a of list) {
		if (
			!(
				typeof a === "object" &&
				a !== null &&
				Number.isSafeInteger(a.start) &&
				Number.isSafeInteger(a.end) &&
				a.start < a.end &&
				a.start > last
			)
		) {
			throw new VmapError(
				"EINVAL",
				`Cannot draw a map: dump.${name} must list ranges { start, end } with start < end, in rising order, got ${shown(a)} after start ${last}`,
			);
		}
		last = a.start;
	}
}

const CANNOT = "Cannot draw a map";

function mapOptions(d: VmapDump, options: MapOptions): Required<Omit<MapOptions, "title">> & { title: string | undefined } {
	validateOptions(options, MAP_KEYS, CANNOT);
	const width = wholeOption(CANNOT, "width", options.width, 100, 20_000, 960);
	const rows = wholeOption(CANNOT, "rows", options.rows, 1, 4096, 32);
	const from = wholeOption(CANNOT, "from", options.from, d.start, d.end - 1, d.start);
	const to = wholeOption(CANNOT, "to", options.to, from + 1, d.end, d.end);
	const title = titleOption(CANNOT, options.title);
	const idPrefix = options.idPrefix ?? "vmap-";
	if (typeof idPrefix !== "string" || !/^[A-Za-z][\w-]*$/.test(idPrefix))
		throw new VmapError(
			"EINVAL",
			`${CANNOT}: idPrefix must be letters, digits, _ or -, starting with a letter, got ${shown(idPrefix)}`,
		);
	return { width, rows, from, to, title, idPrefix };
}
