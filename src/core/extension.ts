/**
 * What a layer built on a space (the heap) may use beyond the public calls: its own region of
 * the header (HDR_EXT_OFFSET, HDR_EXT_WORDS), the space's locks for the lock words there (so a
 * dead holder is detected as for the space's own), tag ids, and two operations that test an
 * area's tag under the same hold of its busy lock as they act on it.
 */
import { HDR_EXT_OFFSET, HDR_EXT_WORDS, HDR_SMALL_MARK_TAG } from "../buffer/layout.ts";
import { freeVmapArea, markVmapArea } from "./lazy-free.ts";
import { NOT_SMALL } from "../small/cache.ts";
import type { SpaceState } from "./state.ts";
import type { AllocOptions } from "../api/types.ts";
import { allocSmall } from "./alloc.ts";

export class SpaceExtension {
	readonly #s: SpaceState;
	/** First Int32 word of the region, in `words` (the header view). */
	readonly base: number;
	/** The region's length in Int32 words (0: a bare space). */
	readonly length: number;

	constructor(s: SpaceState) {
		this.#s = s;
		this.base = s.table.hdr[HDR_EXT_OFFSET]!;
		this.length = s.table.hdr[HDR_EXT_WORDS]!;
	}

	/** The header as Int32 words; the region is [base, base + length). Read it anew after a call that may grow the table. */
	get words(): Int32Array {
		return this.#s.table.hdr;
	}

	/** The header as Float64 words (index `w >> 1` for an even Int32 word `w`). */
	get wordsF64(): Float64Array {
		return this.#s.table.hdrF;
	}

	/** The handle's id. */
	get id(): number {
		return this.#s.id;
	}

	/** Take or release a lock word of the region, as the space's own locks are. */
	lock(word: number): void {
		this.#s.locks.acquire(word);
	}

	unlock(word: number): void {
		this.#s.locks.release(word);
	}

	/** Whether this handle was closed. */
	get closed(): boolean {
		return this.#s.locks.closed;
	}

	/** EOWNERDEAD if a handle died in a section that could not be undone, EINVAL if this handle was closed. */
	ensureAlive(): void {
		this.#s.locks.ensureAlive();
	}

	/**
	 * What the layer adds when a handle's end is observed (watch(), exited()): `lockWords` lists
	 * its lock words (an ended handle's are released after its journal is undone, as the
	 * space's own), and `ended` runs after that, from a timer when a lock it needs is busy (it
	 * may run again after a timeout: it takes its locks before it changes anything), with
	 * `reclaim` true when the handle's areas are to be freed (WatchOptions.freeAreas): the
	 * layer frees what it keeps its own books of (the heap's vm_map_ram blocks) before the space
	 * frees the handle's areas, telling `release` of each first.
	 */
	onHandleEnded(
		lockWords: () => number[],
		ended: (id: number, reclaim: boolean) => void,
		release: (addr: number, size: number) => void,
	): void {
		this.#s.moreLockWords = lockWords;
		this.#s.endHooks.push(ended);
		this.#s.releaseArea = release;
	}

	/**
	 * `blocked(true)` runs before this handle blocks waiting for other handles' purge batches,
	 * `blocked(false)` after: the heap takes the handle offline for grace periods meanwhile.
	 */
	onBlocking(blocked: (blocked: boolean) => void): void {
		this.#s.purger.blocking = blocked;
	}

	/** The id of tag `name`, interned if new. */
	tagId(name: string): number {
		return this.#s.tags.intern(name);
	}

	/**
	 * space.free(addr) in the words of `op`, unless the area's tag id is one of `refused`: then
	 * nothing is freed and that id is returned (0 when freed).
	 */
	freeUnlessTagged(addr: number, op: string, refused: readonly number[]): number {
		const small = this.#s.small;
		if (small !== undefined) {
			this.#s.locks.ensureAlive();
			const mark = this.#s.table.hdr[HDR_SMALL_MARK_TAG]!;
			const done = small.free(addr, op, mark !== 0 && refused.includes(mark));
			if (done === "freed") return 0;
			if (done === "marked") return mark;
		}
		return freeVmapArea(this.#s, addr, op, refused);
	}

	/**
	 * Set the tag id of the busy area starting at `addr` unless it has it already; false if it
	 * had, or no such area. A small area carries no tag of its own: setting the small-area mark
	 * tag marks it, setting any other clears its mark.
	 */
	markArea(addr: number, tag: number): boolean {
		const small = this.#s.small;
		if (small !== undefined) {
			this.#s.locks.ensureAlive();
			const marked = small.mark(addr, tag === this.#s.table.hdr[HDR_SMALL_MARK_TAG]);
			if (marked !== NOT_SMALL) return marked;
		}
		return markVmapArea(this.#s, addr, tag);
	}

	/** The start of every small area that carries the mark (setSmallMarkTag), in every handle's blocks; [] without the cache. */
	markedSmallAreas(): number[] {
		return this.#s.small?.markedAreas() ?? [];
	}

	/** The one tag small areas can carry (markArea), for every handle of the space: set it before sharing the space. */
	setSmallMarkTag(tag: number): void {
		this.#s.table.hdr[HDR_SMALL_MARK_TAG] = tag;
	}

	/**
	 * A small area tagged `tag` (a tagIndex(), 0 none) from the space's small-area cache, of at
	 * least `size` bytes, or -1 when `size` is not small or no block can be had.
	 */
	allocSmall(size: number, tag: number): number {
		return this.#s.small?.alloc(size, tag) ?? -1; // NOT_SMALL (null) too
	}

	/** As allocSmall, for a request with the space's alloc() `options`: -1 too when the cache does not serve them (core/alloc.ts allocSmall). */
	allocSmallWith(size: number, options: AllocOptions): number {
		return allocSmall(this.#s, size, options) ?? -1; // NOT_SMALL (null) too
	}

	/** The tag table index of `name`, added to the table when new (EINVAL for a tag too long or a full table). */
	tagIndex(name: string): number {
		return this.#s.tags.intern(name);
	}

	/** The bytes a small area for `size` takes (its size class), or `size` when it is not small. */
	smallSize(size: number): number {
		return this.#s.small?.sizeFor(size) ?? size;
	}
}
