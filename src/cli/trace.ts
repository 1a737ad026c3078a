/**
 * Allocation traces for `vmalloc replay`: text, one operation per line, gzip accepted.
 *
 *   a SIZE ID     allocate SIZE bytes (a whole number, 0 allowed) and call the area ID
 *   f ID          free the area called ID
 *
 * ID is any run of non-blank characters, unique among the areas live at the time (a freed ID
 * may be used again). Blank lines and lines starting with # are skipped. The parser maps IDs to
 * dense slot numbers, so a replay indexes typed arrays, not a Map.
 *
 * A trace is read as a stream, a chunk at a time, in bounded memory: at most MAX_TRACE_OPS
 * operations and lines of at most MAX_LINE characters, so a gzip bomb is refused as soon as it
 * passes either bound, not after it was inflated whole. Every error names the file.
 */
import { createReadStream } from "node:fs";
import { createGunzip } from "node:zlib";

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

/** The most operations a trace may hold (12 bytes each once parsed): the recorded traces hold a few million. */
export const MAX_TRACE_OPS = 2 ** 24;
/** The longest line a trace may hold. */
export const MAX_LINE = 4096;

/** Read and parse the trace file `file`, gunzipping it when it starts with gzip's magic number. */
export async function readTrace(file: string): Promise<Trace> {
	const parser = new TraceParser(file);
	const decoder = new TextDecoder();
	let gz: boolean | undefined;
	let rest = "";
	const feed = (text: string) => {
		const lines = (rest + text).split("\n");
		rest = lines.pop()!;
		for (const line of lines) parser.line(line);
		if (rest.length > MAX_LINE) {
			parser.lineNo++;
			parser.fail(`the line is longer than ${MAX_LINE} characters: not a trace`);
		}
	};
	try {
		for await (const raw of createReadStream(file)) {
			const chunk = raw as Buffer;
			gz ??= chunk.length >= 2 && chunk[0] === 0x1f && chunk[1] === 0x8b;
			if (!gz) feed(decoder.decode(chunk, { stream: true }));
			else break;
		}
		if (gz === true) {
			const inflate = createReadStream(file).pipe(createGunzip());
			try {
				for await (const chunk of inflate) feed(decoder.decode(chunk as Buffer, { stream: true }));
			} finally {
				inflate.destroy();
			}
		}
	} catch (e) {
		if (e instanceof TraceError) throw e;
		const code = (e as { code?: string }).code;
		if (code?.startsWith("Z_") || code === "ERR_STREAM_PREMATURE_CLOSE")
			throw new TraceError(`${file}: not a whole gzip file (${(e as Error).message})`);
		throw new TraceError(`${file}: cannot read it (${(e as Error).message})`);
	}
	feed(`${decoder.decode()}\n`);
	return parser.finish();
}

/** An error in a trace, its message naming the file (and the line, when one is at fault). */
export class TraceError extends Error {}

/** The lines of one trace, parsed one at a time. */
class TraceParser {
	readonly #name: string;
	#slot = new Int32Array(1024);
	#size = new Float64Array(1024);
	#ops = 0;
	readonly #live = new Map<string, number>();
	readonly #freeSlots: number[] = [];
	#slots = 0;
	lineNo = 0;

	constructor(name: string) {
		this.#name = name;
	}

	fail(what: string): never {
		throw new TraceError(`${this.#name}:${this.lineNo}: ${what}`);
	}

	line(raw: string): void {
		this.lineNo++;
		const line = raw.trim();
		if (line === "" || line.startsWith("#")) return;
		const w = line.split(/\s+/);
		if (this.#ops === this.#slot.length) this.#grow();
		if (w[0] === "a") {
			if (w.length !== 3) this.fail(`an allocation is "a SIZE ID", got ${JSON.stringify(line)}`);
			const n = /^\d+$/.test(w[1]!) ? Number(w[1]) : Number.NaN;
			if (!Number.isSafeInteger(n)) this.fail(`SIZE must be a whole number of bytes, got ${JSON.stringify(w[1])}`);
			if (this.#live.has(w[2]!)) this.fail(`ID ${JSON.stringify(w[2])} is allocated again while it is live (free it first)`);
			const s = this.#freeSlots.pop() ?? this.#slots++;
			this.#live.set(w[2]!, s);
			this.#slot[this.#ops] = s;
			this.#size[this.#ops++] = n;
		} else if (w[0] === "f") {
			if (w.length !== 2) this.fail(`a free is "f ID", got ${JSON.stringify(line)}`);
			const s = this.#live.get(w[1]!);
			if (s === undefined) this.fail(`ID ${JSON.stringify(w[1])} is freed but not live (never allocated, or freed already)`);
			this.#live.delete(w[1]!);
			this.#freeSlots.push(s);
			this.#slot[this.#ops] = s;
			this.#size[this.#ops++] = -1;
		} else this.fail(`a line is "a SIZE ID" or "f ID" (or # a comment), got ${JSON.stringify(line)}`);
	}

	#grow(): void {
		const ops = this.#ops;
		if (ops >= MAX_TRACE_OPS) this.fail(`the trace holds more than ${MAX_TRACE_OPS} operations, the most vmalloc replay replays`);
		const slot = new Int32Array(Math.min(2 * ops, MAX_TRACE_OPS));
		slot.set(this.#slot);
		this.#slot = slot;
		const size = new Float64Array(slot.length);
		size.set(this.#size);
		this.#size = size;
	}

	finish(): Trace {
		const ops = this.#ops;
		if (ops === 0) throw new TraceError(`${this.#name}: no operation in the trace (a line is "a SIZE ID" or "f ID")`);
		return { ops, slot: this.#slot.subarray(0, ops), size: this.#size.subarray(0, ops), slots: this.#slots };
	}
}
