/**
 * `vmap bench --svg FILE`: ops/s against live count for every allocator, both axes log
 * scale. Each line is labelled at its right end in its own colour, so no legend is needed;
 * hollow points are capped runs; broken peers are named under the plot with their error.
 */
import { esc } from "../src/viz/format.ts";
import { SCALE } from "./cases.ts";
import { PEERS, peer, type PeerId } from "./peers.ts";
import { brokenNote, rate } from "./report.ts";
import type { Meta, Run } from "./results.ts";

/** Okabe-Ito and Tol colours, distinguishable with the common colour-vision deficiencies. */
const COLOURS: Record<PeerId, string> = {
	vmap: "#0072B2",
	"vmap-nocache": "#44AA99",
	"vmap-tagged": "#117733",
	"vmap-1m": "#56B4E9",
	"vmap-heap": "#332288",
	"thi.ng": "#E69F00",
	smo: "#CC79A7",
	"smo-heap": "#882255",
	"number-allocator": "#009E73",
	"first-fit": "#D55E00",
	lifo: "#555555",
};

const W = 1080;
const H = 640;
const PLOT = { left: 96, right: 660, top: 92, bottom: 500 };

/** 10, 100, 1 k, 10 k, 100 k, 1 M, 10 M: decade ticks. */
function decade(d: number): string {
	const units = ["", " k", " M", " G"];
	const u = Math.min(Math.floor(d / 3), units.length - 1);
	return `${10 ** (d - 3 * u)}${units[u]}`;
}

function liveLabel(n: number): string {
	return n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`;
}

interface Point {
	live: number;
	opsPerSec: number;
	capped: boolean;
}

/** Lines of at most `width` characters, broken at spaces. */
function wrap(text: string, width: number): string[] {
	const lines: string[] = [];
	let line = "";
	for (const word of text.split(" ")) {
		if (line && line.length + 1 + word.length > width) {
			lines.push(line);
			line = word;
		} else line = line ? `${line} ${word}` : word;
	}
	if (line) lines.push(line);
	return lines;
}

/** One peer's line: its points, one per scale point it ran. */
interface Series {
	peer: (typeof PEERS)[number];
	colour: string | undefined;
	points: Point[];
}

/** The plot's log scales: a live count to x, a rate to y, and the decades drawn. */
interface Scales {
	sx: (live: number) => number;
	sy: (v: number) => number;
	x0: number;
	x1: number;
	y0: number;
	y1: number;
}

export function chart(runs: Run[], m: Meta): string {
	const series = PEERS.map((p) => {
		const points: Point[] = [];
		for (const live of SCALE) {
			const r = runs.find((x) => x.name === `scale ${live} ${p.id}`);
			if (r?.status === "ok") points.push({ live, opsPerSec: Number(r.result.opsPerSec), capped: p.linear });
		}
		return { peer: p, colour: COLOURS[p.id], points };
	}).filter((s) => s.points.length > 0);
	const broken = runs.filter((r) => r.spec.kind === "scale" || r.spec.kind === "W0").filter((r) => r.status === "broken");
	const sc = scales(series);
	const o: string[] = [
		`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="14">`,
		`<rect width="${W}" height="${H}" fill="#ffffff"/>`,
		`<text x="${PLOT.left}" y="34" font-size="20" font-weight="bold">Allocator throughput as the live count grows</text>`,
		`<text x="${PLOT.left}" y="58" fill="#444">Random sizes 1..4096 B, one alloc or free per operation; higher is faster; both axes log scale.</text>`,
		`<text x="${PLOT.left}" y="78" fill="#444">vmap bench, ${esc(m.date.slice(0, 10))}, Node ${esc(m.node)}, ${m.cores} cores, seed ${m.seed}${m.quick ? ", --quick" : ""}. Hollow points: O(n) peer, capped run.</text>`,
		...axes(sc),
		...lines(series, sc),
		...endLabels(series, sc),
	];
	// Peers that broke, in their own words.
	let y = PLOT.bottom + 78;
	for (const r of broken) {
		const p = peer(r.spec.peer);
		for (const text of wrap(`Not drawn: ${p.label} broke in ${r.name}: ${brokenNote(r)}`, 130)) {
			o.push(`<text x="${PLOT.left}" y="${y}" fill="#a00" font-size="13">${esc(text)}</text>`);
			y += 17;
		}
	}
	o.push(`</svg>`);
	return `${o.join("\n")}\n`;
}

function scales(series: Series[]): Scales {
	const lives = series.flatMap((s) => s.points.map((p) => p.live));
	const rates = series.flatMap((s) => s.points.map((p) => p.opsPerSec));
	const x0 = Math.log10(Math.min(...lives, 1_000));
	const x1 = Math.max(Math.log10(Math.max(...lives, 10_000)), x0 + 1);
	const y0 = Math.floor(Math.log10(Math.min(...rates, 1e4)));
	const y1 = Math.ceil(Math.log10(Math.max(...rates, 1e5)));
	const sx = (live: number) => PLOT.left + ((Math.log10(live) - x0) / (x1 - x0)) * (PLOT.right - PLOT.left);
	const sy = (v: number) => PLOT.bottom - ((Math.log10(v) - y0) / (y1 - y0)) * (PLOT.bottom - PLOT.top);
	return { sx, sy, x0, x1, y0, y1 };
}

/** Grid and axes. */
function axes({ sx, sy, x0, x1, y0, y1 }: Scales): string[] {
	const o: string[] = [];
	for (let d = y0; d <= y1; d++) {
		const y = sy(10 ** d);
		o.push(`<line x1="${PLOT.left}" y1="${y.toFixed(1)}" x2="${PLOT.right}" y2="${y.toFixed(1)}" stroke="#ddd"/>`);
		o.push(`<text x="${PLOT.left - 10}" y="${(y + 5).toFixed(1)}" text-anchor="end" fill="#333">${decade(d)}</text>`);
	}
	for (const live of SCALE.filter((l) => Math.log10(l) >= x0 - 1e-9 && Math.log10(l) <= x1 + 1e-9)) {
		const x = sx(live);
		o.push(`<line x1="${x.toFixed(1)}" y1="${PLOT.top}" x2="${x.toFixed(1)}" y2="${PLOT.bottom}" stroke="#ddd"/>`);
		o.push(
			`<text x="${x.toFixed(1)}" y="${PLOT.bottom + 22}" text-anchor="middle" fill="#333">${liveLabel(live)}${live === 10_000 ? " (W1)" : ""}</text>`,
		);
	}
	o.push(
		`<rect x="${PLOT.left}" y="${PLOT.top}" width="${PLOT.right - PLOT.left}" height="${PLOT.bottom - PLOT.top}" fill="none" stroke="#888"/>`,
	);
	o.push(`<text x="${(PLOT.left + PLOT.right) / 2}" y="${PLOT.bottom + 48}" text-anchor="middle" fill="#222">allocations live</text>`);
	o.push(
		`<text transform="translate(26 ${(PLOT.top + PLOT.bottom) / 2}) rotate(-90)" text-anchor="middle" fill="#222">operations per second</text>`,
	);
	return o;
}

/** Lines and points; vmap's drawn last, on top, and thicker. */
function lines(series: Series[], { sx, sy }: Scales): string[] {
	const o: string[] = [];
	const order = [...series].sort((a, b) => Number(a.peer.id.startsWith("vmap")) - Number(b.peer.id.startsWith("vmap")));
	for (const s of order) {
		const width = s.peer.id.startsWith("vmap") ? 3.5 : 2;
		const d = s.points.map((p, i) => `${i ? "L" : "M"}${sx(p.live).toFixed(1)} ${sy(p.opsPerSec).toFixed(1)}`).join(" ");
		o.push(
			`<path d="${d}" fill="none" stroke="${s.colour}" stroke-width="${width}"${s.peer.id === "lifo" ? ` stroke-dasharray="6 4"` : ""}/>`,
		);
		for (const p of s.points) {
			o.push(
				`<circle cx="${sx(p.live).toFixed(1)}" cy="${sy(p.opsPerSec).toFixed(1)}" r="4.5" fill="${p.capped ? "#fff" : s.colour}" stroke="${s.colour}" stroke-width="2"/>`,
			);
		}
	}
	return o;
}

/** Labels at each line's right end, pushed apart so none overlap, each joined to its point. */
function endLabels(series: Series[], { sx, sy }: Scales): string[] {
	const o: string[] = [];
	const GAP = 17;
	const labels = series.map((s) => {
		const last = s.points[s.points.length - 1]!;
		return { s, last, y: sy(last.opsPerSec) };
	});
	labels.sort((a, b) => a.y - b.y);
	for (let i = 1; i < labels.length; i++) labels[i]!.y = Math.max(labels[i]!.y, labels[i - 1]!.y + GAP);
	const overflow = labels.length ? labels[labels.length - 1]!.y - (PLOT.bottom + 30) : 0;
	if (overflow > 0) for (const l of labels) l.y -= overflow;
	for (let i = labels.length - 2; i >= 0; i--) labels[i]!.y = Math.min(labels[i]!.y, labels[i + 1]!.y - GAP);
	const lx = PLOT.right + 40;
	for (const l of labels) {
		const px = sx(l.last.live);
		const py = sy(l.last.opsPerSec);
		o.push(
			`<polyline points="${(px + 6).toFixed(1)},${py.toFixed(1)} ${(lx - 6).toFixed(1)},${l.y.toFixed(1)}" fill="none" stroke="${l.s.colour}" stroke-width="1"/>`,
		);
		const at = l.last.live === SCALE[SCALE.length - 1] ? "" : ` at ${liveLabel(l.last.live)}`;
		o.push(
			`<text x="${lx}" y="${(l.y + 5).toFixed(1)}" fill="${l.s.colour}" font-weight="${l.s.peer.id.startsWith("vmap") ? "bold" : "normal"}">${esc(l.s.peer.label)}: ${rate(l.last.opsPerSec)}/s${at}</text>`,
		);
	}
	return o;
}
