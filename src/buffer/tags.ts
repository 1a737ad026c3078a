/**
 * Tags: short strings that label busy areas (shown by find() and the listings). Each distinct
 * tag is stored once in the buffer's tag table, so a tag set by one worker reads the same in
 * every other; a record keeps only the tag's index. Index 0 means "no tag".
 */
import { VmapError } from "../api/errors.ts";
import { HDR_TAG_LOCK, HDR_TAG_NR, TAG_BYTES, TAG_MAX, TAG_MAX_LEN, TAG_OFFSET } from "./layout.ts";
import type { Locks } from "./lock.ts";
import type { VaTable } from "./va-table.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class TagTable {
	readonly #table: VaTable;
	readonly #locks: Locks;
	/** This handle's cache of the table; entries are never removed, so it can only lag. */
	readonly #ids = new Map<string, number>();
	readonly #names: string[] = [""];

	constructor(table: VaTable, locks: Locks) {
		this.#table = table;
		this.#locks = locks;
	}

	/** The tag table's bytes (the buffer of a one-thread space is replaced when it grows). */
	get #bytes(): Uint8Array {
		return new Uint8Array(this.#table.buffer, TAG_OFFSET, TAG_MAX * TAG_BYTES);
	}

	get #hdr(): Int32Array {
		return this.#table.hdr;
	}

	/** The last tag interned and its index: tagged allocations come in runs of one tag, and a string compare is cheaper than a Map lookup. */
	#lastName: string | undefined;
	#lastId = 0;

	/** The index of `tag`, adding it to the table if it is new. Throws EINVAL on a bad tag. */
	intern(tag: string): number {
		if (tag === this.#lastName) return this.#lastId;
		const id = this.#ids.get(tag);
		if (id !== undefined) {
			this.#lastName = tag;
			this.#lastId = id;
			return id;
		}
		const utf8 = encoder.encode(tag);
		if (utf8.length > TAG_MAX_LEN) {
			throw new VmapError(
				"EINVAL",
				`Cannot alloc: tag must be at most ${TAG_MAX_LEN} bytes of UTF-8, got ${utf8.length} (${JSON.stringify(tag)})`,
			);
		}
		this.#locks.acquire(HDR_TAG_LOCK);
		try {
			this.#refresh();
			const known = this.#ids.get(tag);
			if (known !== undefined) return known;
			const nr = this.#hdr[HDR_TAG_NR]!;
			if (nr >= TAG_MAX) {
				throw new VmapError(
					"EINVAL",
					`Cannot alloc: the tag table is full (${TAG_MAX - 1} distinct tags); cannot add ${JSON.stringify(tag)}`,
				);
			}
			const at = nr * TAG_BYTES;
			const bytes = this.#bytes;
			bytes[at] = utf8.length;
			bytes.set(utf8, at + 1);
			Atomics.store(this.#hdr, HDR_TAG_NR, nr + 1); // publishes the entry written above
			this.#remember(tag, nr);
			return nr;
		} finally {
			this.#locks.release(HDR_TAG_LOCK);
		}
	}

	/** The tag at `id` ("" for 0). */
	name(id: number): string {
		if (id >= this.#names.length) this.#refresh();
		return this.#names[id] ?? "";
	}

	/** Read entries other handles added since we last looked. */
	#refresh(): void {
		const nr = Atomics.load(this.#hdr, HDR_TAG_NR);
		const bytes = this.#bytes;
		for (let id = this.#names.length; id < nr; id++) {
			const at = id * TAG_BYTES;
			this.#remember(decoder.decode(bytes.slice(at + 1, at + 1 + bytes[at]!)), id);
		}
	}

	#remember(tag: string, id: number): void {
		this.#names[id] = tag;
		this.#ids.set(tag, id);
	}
}
