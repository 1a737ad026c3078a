/**
 * Allocation traces for `vmap replay`: text, one operation per line, gzip accepted.
 *
 *   a SIZE ID     allocate SIZE bytes (a whole number, 0 allowed) and call the area ID
 *   f ID          free the area called ID
 *
 * ID is any run of non-blank characters, unique among the areas live at the time (a freed ID
 * may be used again). Blank lines and lines starting with # are skipped. The parser maps IDs to
 * dense slot numbers, so a replay indexes typed arrays, not a Map.
 */
import { gunzipSync } from "node:zlib";

export interface Trace {
	/** Operations: ops of them; op i allocates when size[i] >= 0, else frees. */
	ops: number;
	/** Slot of the area each operation names. */
	slot: Int32Array;
	/** Bytes to allocate; -1 for a free. */
	size: Float64Array;
	/** Slots used: at most the areas live at once. */
	slots: number;
}

/** The most text a trace may hold, gunzipped: beyond it a trace (or a gzip bomb) is refused before it is read whole. */
export const MAX_TRACE_BYTES = 256 * 2 ** 20;

/** Bytes of the trace file `name`, gunzipped when they start with gzip's magic number; errors name the file. */
export function traceText(buf: Uint8Array, name: string): string {
	const gz = buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
	const tooLarge = `${name}: the trace holds more than ${MAX_TRACE_BYTES / 2 ** 20} MiB of text, the most vmap replay reads`;
	if (!gz && buf.length > MAX_TRACE_BYTES) throw new Error(tooLarge);
	let text = buf;
	if (gz) {
		try {
			text = gunzipSync(buf, { maxOutputLength: MAX_TRACE_BYTES });
		} catch (e) {
			if ((e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw new Error(`${tooLarge} once gunzipped`);
			throw new Error(`${name}: not a whole gzip file (${(e as Error).message})`);
		}
	}
	return new TextDecoder().decode(text);
}

/** Parse `text`; errors name `name`, the line and what was expected. */
export function parseTrace(text: string, name: string): Trace {
	let slot = new Int32Array(1024);
	let size = new Float64Array(1024);
	let ops = 0;
	const live = new Map<string, number>();
	const freeSlots: number[] = [];
	let slots = 0;
	let lineNo = 0;
	const bad = (what: string): never => {
		throw new Error(`${name}:${lineNo}: ${what}`);
	};
	for (const raw of text.split("\n")) {
		lineNo++;
		const line = raw.trim();
		if (line === "" || line.startsWith("#")) continue;
		const w = line.split(/\s+/);
		if (ops === slot.length) {
			const s2 = new Int32Array(ops * 2);
			s2.set(slot);
			slot = s2;
			const z2 = new Float64Array(ops * 2);
			z2.set(size);
			size = z2;
		}
		if (w[0] === "a") {
			if (w.length !== 3) bad(`an allocation is "a SIZE ID", got ${JSON.stringify(line)}`);
			const n = /^\d+$/.test(w[1]!) ? Number(w[1]) : Number.NaN;
			if (!Number.isSafeInteger(n)) bad(`SIZE must be a whole number of bytes, got ${JSON.stringify(w[1])}`);
			if (live.has(w[2]!)) bad(`ID ${JSON.stringify(w[2])} is allocated again while it is live (free it first)`);
			const s = freeSlots.pop() ?? slots++;
			live.set(w[2]!, s);
			slot[ops] = s;
			size[ops++] = n;
		} else if (w[0] === "f") {
			if (w.length !== 2) bad(`a free is "f ID", got ${JSON.stringify(line)}`);
			const s = live.get(w[1]!);
			if (s === undefined) bad(`ID ${JSON.stringify(w[1])} is freed but not live (never allocated, or freed already)`);
			live.delete(w[1]!);
			freeSlots.push(s!);
			slot[ops] = s!;
			size[ops++] = -1;
		} else bad(`a line is "a SIZE ID" or "f ID" (or # a comment), got ${JSON.stringify(line)}`);
	}
	if (ops === 0) throw new Error(`${name}: no operation in the trace (a line is "a SIZE ID" or "f ID")`);
	return { ops, slot: slot.subarray(0, ops), size: size.subarray(0, ops), slots };
}
