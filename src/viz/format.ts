/**
 * What the pictures share: a colour-blind-safe palette (Okabe and Ito's eight colours), the
 * patterns that mark states without relying on colour, number formats, and the checks of the
 * pictures' options. No Node imports: the pictures are drawn in browsers too.
 */
import { shown, VmapError } from "../api/errors.ts";

/** Option `name`: undefined gives `dflt`; else a whole number in [min, max], or EINVAL. */
export function wholeOption(cannot: string, name: string, v: unknown, min: number, max: number, dflt: number): number {
	if (v === undefined) return dflt;
	if (!(typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= max))
		throw new VmapError("EINVAL", `${cannot}: ${name} must be a whole number from ${min} to ${max}, got ${shown(v)}`);
	return v;
}

/** The title option: undefined, or a string (else EINVAL). */
export function titleOption(cannot: string, v: unknown): string | undefined {
	if (v !== undefined && typeof v !== "string") throw new VmapError("EINVAL", `${cannot}: title must be a string, got ${shown(v)}`);
	return v;
}

/** Okabe-Ito colours, distinguishable with the common colour-vision deficiencies. */
export const BLUE = "#0072B2";
export const ORANGE = "#E69F00";
export const PURPLE = "#CC79A7";
export const SKY = "#56B4E9";
export const VERMILLION = "#D55E00";
export const GREEN = "#009E73";
export const YELLOW = "#F0E442";
export const INK = "#222222";
export const GREY = "#888888";
export const FAINT = "#DDDDDD";

export const FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif\"";
export const MONO = "font-family=\"ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace\"";

/** Text for SVG content and attribute values. */
export function esc(s: string): string {
	return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** 1536 -> "1.5 KiB": three significant digits, binary units. */
export function bytes(n: number): string {
	let u = 0;
	let v = n;
	while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
		v /= 1024;
		u++;
	}
	const digits = u === 0 || Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
	return `${Number(v.toFixed(digits))} ${UNITS[u]}`;
}

/** 1234567 -> "1,234,567" (no Intl: identical output everywhere). */
export function count(n: number): string {
	return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** A number with at most 3 significant digits and no float noise: 0.1 + 0.2 -> "0.3". */
export function num(n: number): string {
	if (n === 0) return "0";
	const d = Math.max(0, 2 - Math.floor(Math.log10(Math.abs(n))));
	return String(Number(n.toFixed(Math.min(d, 6))));
}

/** Round coordinates to 0.01 px: shorter files, no visible change. */
export function px(n: number): string {
	return String(Math.round(n * 100) / 100);
}

/** About `want` round steps covering [0, max]: 1, 2 or 5 times a power of `base`. */
export function niceStep(max: number, want: number, base = 10): number {
	if (!(max > 0)) return 1;
	const raw = max / want;
	const p = base ** Math.floor(Math.log(raw) / Math.log(base));
	for (const m of [1, 2, 5, 10]) if (p * m >= raw) return p * m;
	return p * 10;
}
