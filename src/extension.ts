/**
 * What a layer built on a space (the heap) may use beyond the public calls: its own region of
 * the header (HDR_EXT_OFFSET, HDR_EXT_WORDS), the space's locks for the lock words there (so a
 * dead holder is detected as for the space's own), tag ids, and two operations that test an
 * area's tag under the same hold of its busy lock as they act on it.
 */
import { HDR_EXT_OFFSET, HDR_EXT_WORDS } from "./layout.ts";
import { freeVmapArea, markVmapArea } from "./lazy-free.ts";
import type { SpaceState } from "./space-init.ts";

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

	/** EOWNERDEAD if a handle died holding a lock, EINVAL if this handle was closed. */
	checkAlive(): void {
		this.#s.locks.checkAlive();
	}

	/**
	 * What the layer adds when a handle's end is observed (watch(), exited()): `lockWords` lists
	 * its lock words (an ended handle holding one poisons the space as for the space's own), and
	 * `ended` runs for a handle that ended holding nothing.
	 */
	onHandleEnded(lockWords: () => number[], ended: (id: number) => void): void {
		this.#s.moreLockWords = lockWords;
		this.#s.endHooks.push(ended);
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
		return freeVmapArea(this.#s, addr, op, refused);
	}

	/** Set the tag id of the busy area starting at `addr` unless it has it already; false if it had, or no such area. */
	markArea(addr: number, tag: number): boolean {
		return markVmapArea(this.#s, addr, tag);
	}
}
