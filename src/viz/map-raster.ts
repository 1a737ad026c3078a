/**
 * The map's raster: ranges painted into rows of address bands. A range at least BIG_PX pixels
 * wide becomes rectangles of its own, at its exact width; narrower ones add their bytes to the
 * coverage of the pixels they touch, per category, which stackedCells() turns into stacked
 * bars, each category as tall as its share of the pixel's bytes. So a million areas draw in
 * O(areas + pixels) time.
 */
import { hex } from "../api/errors.ts";
import { esc, FONT, INK, px } from "./format.ts";

/** An area at least this many pixels wide is drawn alone; narrower ones are aggregated. */
export const BIG_PX = 2;
export const LEFT = 150;
export const TOP = 84;
export const ROW_H = 14;
export const ROW_GAP = 4;
/** Most rectangles the aggregated pixels may take (about 3 MB of SVG). */
const AGG_RECTS = 40_000;

/** Where addresses fall: `rows` bands of `width` pixels from `from`, each pixel `pxBytes` of addresses. */
export interface Geometry {
	from: number;
	to: number;
	width: number;
	rows: number;
	rowBytes: number;
	pxBytes: number;
}

/** The y of row `r`'s band. */
export function rowY(r: number): number {
	return TOP + r * (ROW_H + ROW_GAP);
}

/** The pieces, one per row, of the pixel range [g0, g1) of bands `width` pixels wide: [row, x0, x1]. */
export function rowSegments(g0: number, g1: number, width: number): Array<[number, number, number]> {
	const out: Array<[number, number, number]> = [];
	for (let r = Math.floor(g0 / width); r * width < g1; r++) {
		const x0 = Math.max(g0, r * width) - r * width;
		const x1 = Math.min(g1, (r + 1) * width) - r * width;
		if (x1 > x0) out.push([r, x0, x1]);
	}
	return out;
}

/** The pieces of [start, end) clipped to the range drawn, as rowSegments(); none outside it. */
export function rangeSegments(g: Geometry, start: number, end: number): Array<[number, number, number]> {
	const s = Math.max(start, g.from);
	const e = Math.min(end, g.to);
	return s < e ? rowSegments((s - g.from) / g.pxBytes, (e - g.from) / g.pxBytes, g.width) : [];
}

export class Raster {
	readonly g: Geometry;
	/** Fill of each category. */
	readonly fills: readonly string[];
	/** Categories below this one get a white hairline between neighbours (the busy tags). */
	readonly strokeBelow: number;
	/** Bytes of each category under each pixel, from ranges narrower than BIG_PX. */
	readonly cov: Float64Array;
	/** The rectangles of the ranges drawn alone. */
	readonly big: string[] = [];
	/** cellHeights()'s scratch: each category's remainder. */
	readonly #frac: Float64Array;

	constructor(g: Geometry, fills: readonly string[], strokeBelow: number) {
		this.g = g;
		this.fills = fills;
		this.strokeBelow = strokeBelow;
		this.cov = new Float64Array(g.rows * g.width * fills.length);
		this.#frac = new Float64Array(fills.length);
	}

	/** Paint [start, end) in category `c`, with `title` as its tooltip when it is drawn alone. */
	paint(start: number, end: number, c: number, title: string | undefined): void {
		const g = this.g;
		const s = Math.max(start, g.from);
		const e = Math.min(end, g.to);
		if (s >= e) return;
		const g0 = (s - g.from) / g.pxBytes;
		const g1 = (e - g.from) / g.pxBytes;
		if (g1 - g0 >= BIG_PX) {
			const stroke = c < this.strokeBelow ? ` stroke="#fff" stroke-width="0.5"` : "";
			const tip = title === undefined ? "" : `<title>${esc(title)}</title>`;
			for (const [r, x0, x1] of rowSegments(g0, g1, g.width)) {
				this.big.push(
					`<rect data-start="${hex(start)}" x="${px(LEFT + x0)}" y="${rowY(r)}" width="${px(x1 - x0)}" height="${ROW_H}" fill="${this.fills[c]}"${stroke}>${tip}</rect>`,
				);
			}
			return;
		}
		this.#spread(g0, g1, c, e - s);
	}

	/** Spread the `bytes` of pixel range [g0, g1) over the pixels it touches. */
	#spread(g0: number, g1: number, c: number, bytes: number): void {
		const { cov, g } = this;
		const C = this.fills.length;
		const p0 = Math.floor(g0);
		const p1 = Math.min(g.rows * g.width, Math.ceil(g1)) - 1;
		if (p0 === p1) {
			cov[p0 * C + c]! += bytes;
			return;
		}
		cov[p0 * C + c]! += (p0 + 1 - g0) * g.pxBytes;
		for (let q = p0 + 1; q < p1; q++) cov[q * C + c]! += g.pxBytes;
		cov[p1 * C + c]! += (g1 - p1) * g.pxBytes;
	}

	/** How many pixels hold bytes of ranges narrower than BIG_PX. */
	aggregatedPixels(): number {
		const C = this.fills.length;
		let n = 0;
		for (let q = 0; q < this.g.rows * this.g.width; q++) {
			for (let c = 0; c < C; c++) {
				if (this.cov[q * C + c]! > 0) {
					n++;
					break;
				}
			}
		}
		return n;
	}

	/**
	 * The aggregated pixels as stacked bars; neighbours with the same bar merge. Cells widen (1,
	 * 2, 4... pixels) until the picture holds at most AGG_RECTS rectangles. Returns the
	 * rectangles and the cell width used.
	 */
	stackedBars(): { rects: string[]; cell: number } {
		let rects: string[] = [];
		let cell = 1;
		for (; cell <= this.g.width; cell *= 2) {
			rects = this.#stackedCells(cell);
			if (rects.length <= AGG_RECTS) break;
		}
		return { rects, cell };
	}

	/**
	 * The stacked bars of cells `cell` pixels wide: in each, category c is as tall (in whole
	 * pixels of ROW_H, by largest remainder) as its share of the cell's bytes; runs of equal bars merge.
	 */
	#stackedCells(cell: number): string[] {
		const out: string[] = [];
		const C = this.fills.length;
		const h = new Int32Array(C);
		const runH = new Int32Array(C);
		const flush = (r: number, x0: number, x1: number) => {
			let y = 0;
			for (let c = 0; c < C; c++) {
				if (runH[c]! > 0)
					out.push(`<rect x="${LEFT + x0}" y="${rowY(r) + y}" width="${x1 - x0}" height="${runH[c]}" fill="${this.fills[c]}"/>`);
				y += runH[c]!;
			}
		};
		for (let r = 0; r < this.g.rows; r++) {
			let runX = 0;
			runH.fill(0);
			for (let x = 0; x < this.g.width; x += cell) {
				this.#cellHeights(r, x, cell, h);
				if (h.some((v, c) => v !== runH[c])) {
					flush(r, runX, x);
					runH.set(h);
					runX = x;
				}
			}
			flush(r, runX, this.g.width);
		}
		return out;
	}

	/** Into `h`: each category's height in the cell at row `r`, pixels [x, x + cell): the total rounded, shared by largest remainder. */
	#cellHeights(r: number, x: number, cell: number, h: Int32Array): void {
		const { cov, g } = this;
		const C = this.fills.length;
		const frac = this.#frac;
		const cellBytes = cell * g.pxBytes;
		let total = 0;
		let given = 0;
		for (let c = 0; c < C; c++) {
			let b = 0;
			for (let k = x; k < Math.min(g.width, x + cell); k++) b += cov[(r * g.width + k) * C + c]!;
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
	}
}

/** The owner's id, written in a small-area block wide enough for it, and its outline. */
export function blockLabel(g: Geometry, start: number, end: number, owner: number): string[] {
	const out: string[] = [];
	for (const [r, x0, x1] of rangeSegments(g, start, end)) {
		if (x1 - x0 < 3) continue;
		out.push(
			`<rect x="${px(LEFT + x0)}" y="${rowY(r)}" width="${px(x1 - x0)}" height="${ROW_H}" fill="none" stroke="${INK}" stroke-width="0.8"/>`,
		);
		if (x1 - x0 >= 16) {
			out.push(
				`<text x="${px(LEFT + (x0 + x1) / 2)}" y="${rowY(r) + ROW_H - 3}" text-anchor="middle" font-size="9" ${FONT}>${owner}</text>`,
			);
		}
	}
	return out;
}
