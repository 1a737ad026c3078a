/** The map's frame: the axes, the outline of the largest free block, the legend, and the SVG head. */
import { hex } from "../api/errors.ts";
import type { Categories, MapTotals } from "./map-categories.ts";
import { BIG_PX, type Geometry, LEFT, ROW_GAP, ROW_H, rangeSegments, rowY, TOP } from "./map-raster.ts";
import { bytes, count, esc, FAINT, FONT, GREEN, GREY, INK, MONO, px, YELLOW } from "./format.ts";

/** The bottom of the plot: below the last row. */
export function plotBottom(g: Geometry): number {
	return rowY(g.rows) - ROW_GAP;
}

/** The largest free block, outlined. */
export function outline(g: Geometry, t: MapTotals): string[] {
	if (t.largestFreeStart < 0) return [];
	return rangeSegments(g, t.largestFreeStart, t.largestFreeStart + t.largestFreeBlock).map(
		([r, x0, x1]) =>
			`<rect x="${px(LEFT + x0 + 1)}" y="${rowY(r) + 1}" width="${px(Math.max(0, x1 - x0 - 2))}" height="${ROW_H - 2}" fill="none" stroke="${INK}" stroke-width="1.5" stroke-dasharray="4 3"/>`,
	);
}

/** Axes: each row's first address on the left, the offset within a row on top. */
export function axes(g: Geometry): string[] {
	const digits = Math.max(4, (g.to - 1).toString(16).length);
	const bottom = plotBottom(g);
	const out: string[] = [];
	const rowLabelEvery = Math.ceil(g.rows / 40);
	for (let r = 0; r < g.rows; r++) {
		out.push(`<rect x="${LEFT}" y="${rowY(r)}" width="${g.width}" height="${ROW_H}" fill="#fff" stroke="${FAINT}" stroke-width="1"/>`);
		if (r % rowLabelEvery !== 0) continue;
		const label = `0x${(g.from + r * g.rowBytes).toString(16).padStart(digits, "0")}`;
		out.push(`<text x="${LEFT - 6}" y="${rowY(r) + ROW_H - 3}" text-anchor="end" font-size="10" ${MONO}>${label}</text>`);
	}
	for (let k = 0; k <= 4; k++) {
		const x = LEFT + (g.width * k) / 4;
		const anchor = k === 0 ? "start" : k === 4 ? "end" : "middle";
		out.push(`<line x1="${px(x)}" y1="${TOP - 6}" x2="${px(x)}" y2="${bottom}" stroke="${FAINT}" stroke-width="1"/>`);
		out.push(`<text x="${px(x)}" y="${TOP - 9}" text-anchor="${anchor}" font-size="10" ${MONO}>+${hex((g.rowBytes * k) / 4)}</text>`);
	}
	const across = `offset within the row (hex, bytes): each row is ${bytes(g.rowBytes)} of addresses, left to right`;
	out.push(`<text x="${LEFT + g.width / 2}" y="${TOP - 24}" text-anchor="middle" font-size="11" fill="#444" ${FONT}>${across}</text>`);
	out.push(
		`<text transform="translate(16 ${(TOP + bottom) / 2}) rotate(-90)" text-anchor="middle" font-size="11" fill="#444" ${FONT}>row start address (hex)</text>`,
	);
	return out;
}

/** What the legend says of the aggregated pixels: how many, and the cell width their bars used. */
export interface Aggregation {
	pixels: number;
	cell: number;
}

/** Legend: a swatch and the bytes of each category present, then free space, the totals and a note; and the picture's height. */
export function legend(
	g: Geometry,
	cats: Categories,
	t: MapTotals,
	agg: Aggregation,
	idPrefix: string,
): { lines: string[]; height: number } {
	const lines: string[] = [];
	let ly = plotBottom(g) + 26;
	const present = cats.list.map((c, k) => ({ ...c, k })).filter((c) => c.areas > 0);
	const colW = (g.width + LEFT - 20) / 2;
	for (const [n, c] of present.entries()) {
		const x = 20 + (n % 2) * colW;
		const y = ly + Math.floor(n / 2) * 18;
		const unit = c.k === cats.pooled ? "ranges" : c.areas === 1 ? "area" : "areas";
		lines.push(`<rect x="${x}" y="${y - 10}" width="18" height="12" fill="${c.fill}" stroke="${GREY}" stroke-width="0.5"/>`);
		lines.push(
			`<text x="${x + 24}" y="${y}" font-size="12" ${FONT}>${esc(c.label)}: ${bytes(c.bytes)} in ${count(c.areas)} ${unit}</text>`,
		);
	}
	ly += Math.ceil(present.length / 2) * 18;
	lines.push(...freeRow(t, ly, colW));
	ly += 22;
	lines.push(totalsLine(cats, t, ly, idPrefix));
	ly += 18;
	const note =
		agg.pixels > 0
			? `1 px = ${bytes(g.pxBytes)}. ${count(agg.pixels)} pixels hold areas narrower than ${BIG_PX} px: there each state is as tall as its share of the bytes${agg.cell > 1 ? ` of ${agg.cell} px` : ""}.`
			: `1 px = ${bytes(g.pxBytes)}; every area is drawn at its own width.`;
	lines.push(`<text x="20" y="${ly}" font-size="11" fill="#444" ${FONT}>${esc(note)}</text>`);
	return { lines, height: ly + 16 };
}

function freeRow(t: MapTotals, ly: number, colW: number): string[] {
	const out = [
		`<rect x="20" y="${ly - 10}" width="18" height="12" fill="#fff" stroke="${GREY}" stroke-width="0.5"/>`,
		`<text x="44" y="${ly}" font-size="12" ${FONT}>free: ${bytes(t.freeBytes)} in ${count(t.freeBlocks)} block${t.freeBlocks === 1 ? "" : "s"}</text>`,
	];
	if (t.largestFreeStart >= 0) {
		out.push(
			`<rect x="${20 + colW}" y="${ly - 10}" width="18" height="12" fill="none" stroke="${INK}" stroke-width="1.5" stroke-dasharray="4 3"/>`,
			`<text x="${44 + colW}" y="${ly}" font-size="12" ${FONT}>largest free block: ${bytes(t.largestFreeBlock)} at ${hex(t.largestFreeStart)}</text>`,
		);
	}
	return out;
}

/** The totals line, its figures also as data- attributes (the tests read them). */
function totalsLine(cats: Categories, t: MapTotals, ly: number, idPrefix: string): string {
	const lazy = cats.list[cats.lazy]!;
	const pooled = cats.list[cats.pooled]!.bytes;
	const text = `busy ${bytes(t.busyBytes)} (${count(t.busyAreas)} areas) · lazy ${bytes(lazy.bytes)} (${count(lazy.areas)}) · pooled ${bytes(pooled)} · free ${bytes(t.freeBytes)} (${count(t.freeBlocks)} blocks)`;
	const data = [
		`data-busy-bytes="${t.busyBytes}" data-busy-areas="${t.busyAreas}" data-lazy-bytes="${lazy.bytes}" data-lazy-areas="${lazy.areas}"`,
		`data-pooled-bytes="${pooled}" data-free-bytes="${t.freeBytes}" data-free-blocks="${t.freeBlocks}"`,
		`data-block-bytes="${cats.list[cats.block]!.bytes}" data-largest-free-block="${t.largestFreeBlock}"`,
	].join(" ");
	return `<text id="${idPrefix}totals" x="20" y="${ly}" font-size="12" font-weight="600" ${FONT} ${data}>Totals: ${text}</text>`;
}

/** The SVG's opening: its size and geometry as data- attributes, the title, the patterns of lazy, pooled and block. */
export function head(g: Geometry, title: string, height: number, p: string): string[] {
	const totalW = LEFT + g.width + 20;
	return [
		`<svg xmlns="http://www.w3.org/2000/svg" width="${totalW}" height="${height}" viewBox="0 0 ${totalW} ${height}" data-px-bytes="${g.pxBytes}" data-row-bytes="${g.rowBytes}" data-rows="${g.rows}" data-from="${g.from}" data-to="${g.to}">`,
		`<title>${esc(title)}</title>`,
		"<defs>",
		`<pattern id="${p}lazy" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="${YELLOW}"/><line x1="1" y1="0" x2="1" y2="6" stroke="${INK}" stroke-width="1.6"/></pattern>`,
		`<pattern id="${p}pooled" width="5" height="5" patternUnits="userSpaceOnUse"><rect width="5" height="5" fill="#D4EEE5"/><circle cx="2.5" cy="2.5" r="1.3" fill="${GREEN}"/></pattern>`,
		`<pattern id="${p}block" width="4" height="4" patternUnits="userSpaceOnUse"><rect width="4" height="4" fill="#EDEDED"/><path d="M0 0H4M0 0V4" stroke="${GREY}" stroke-width="0.6"/></pattern>`,
		"</defs>",
		`<rect width="${totalW}" height="${height}" fill="#fff"/>`,
		`<text x="20" y="24" font-size="16" font-weight="600" ${FONT}>${esc(title)}</text>`,
	];
}
