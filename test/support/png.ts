/**
 * Just enough of a PNG decoder for screenshots: 8-bit RGB or RGBA, not interlaced (what
 * Chromium writes). Returns RGBA pixels.
 */
import { inflateSync } from "node:zlib";

export interface Image {
	width: number;
	height: number;
	/** RGBA, row after row. */
	rgba: Uint8Array;
}

export function decodePng(png: Uint8Array): Image {
	const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
	if (!sig.every((b, i) => png[i] === b)) throw new Error("not a PNG");
	const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
	let width = 0;
	let height = 0;
	let channels = 0;
	const idat: Uint8Array[] = [];
	for (let p = 8; p < png.length; ) {
		const len = view.getUint32(p);
		const type = String.fromCharCode(...png.subarray(p + 4, p + 8));
		const data = png.subarray(p + 8, p + 8 + len);
		if (type === "IHDR") {
			width = view.getUint32(p + 8);
			height = view.getUint32(p + 12);
			const depth = data[8];
			const colour = data[9];
			if (depth !== 8 || (colour !== 2 && colour !== 6) || data[12] !== 0)
				throw new Error(`unsupported PNG: depth ${depth}, colour type ${colour}, interlace ${data[12]}`);
			channels = colour === 6 ? 4 : 3;
		} else if (type === "IDAT") idat.push(data);
		else if (type === "IEND") break;
		p += 12 + len;
	}
	const raw = inflateSync(Buffer.concat(idat));
	const stride = width * channels;
	const out = new Uint8Array(width * height * 4);
	let prev = new Uint8Array(stride);
	for (let y = 0; y < height; y++) {
		const filter = raw[y * (stride + 1)]!;
		const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
		const cur = new Uint8Array(stride);
		for (let i = 0; i < stride; i++) {
			const a = i >= channels ? cur[i - channels]! : 0;
			const b = prev[i]!;
			const c = i >= channels ? prev[i - channels]! : 0;
			let v = line[i]!;
			if (filter === 1) v += a;
			else if (filter === 2) v += b;
			else if (filter === 3) v += (a + b) >> 1;
			else if (filter === 4) {
				const pa = Math.abs(b - c);
				const pb = Math.abs(a - c);
				const pc = Math.abs(a + b - 2 * c);
				v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
			} else if (filter !== 0) throw new Error(`bad PNG filter ${filter}`);
			cur[i] = v & 0xff;
		}
		for (let x = 0; x < width; x++) {
			const o = (y * width + x) * 4;
			out[o] = cur[x * channels]!;
			out[o + 1] = cur[x * channels + 1]!;
			out[o + 2] = cur[x * channels + 2]!;
			out[o + 3] = channels === 4 ? cur[x * channels + 3]! : 255;
		}
		prev = cur;
	}
	return { width, height, rgba: out };
}

/** Pixels of `img` inside the box whose colour lies within `tol` of `hex` (#rrggbb) in every channel. */
export function countColour(img: Image, box: { x: number; y: number; width: number; height: number }, hex: string, tol = 24): number {
	const r = Number.parseInt(hex.slice(1, 3), 16);
	const g = Number.parseInt(hex.slice(3, 5), 16);
	const b = Number.parseInt(hex.slice(5, 7), 16);
	let n = 0;
	for (let y = Math.max(0, Math.floor(box.y)); y < Math.min(img.height, box.y + box.height); y++) {
		for (let x = Math.max(0, Math.floor(box.x)); x < Math.min(img.width, box.x + box.width); x++) {
			const o = (y * img.width + x) * 4;
			if (Math.abs(img.rgba[o]! - r) <= tol && Math.abs(img.rgba[o + 1]! - g) <= tol && Math.abs(img.rgba[o + 2]! - b) <= tol) n++;
		}
	}
	return n;
}
