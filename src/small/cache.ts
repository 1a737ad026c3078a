/**
 * The small-area cache of one handle (the kernel's per-CPU vmap_block_queue, vb_alloc and
 * vb_free): requests up to smallMax bytes are carved out of blocks this handle owns, with no
 * lock and no atomic on its own path.
 *
 * The layer: the shared words of a block and their invariants (descriptor.ts), the index from
 * an address to its block (block-index.ts), this handle's lists (cache-state.ts), carving
 * (carve.ts), new blocks (refill.ts), the flush policy (flush.ts), ownership and remote frees
 * (owner.ts), repair after a death (repair.ts). It may import buffer/, tree/ and api/; the
 * space it lives in reaches it through the BlockSource port (core/block-source.ts), so nothing
 * here imports core/.
 *
 * One result style: every call that may not concern the cache (an address in no block, a
 * request that is not small) answers NOT_SMALL, and the caller asks the trees.
 */
import type { AreaInfo } from "../api/types.ts";
import { CacheState, type NOT_SMALL } from "./cache-state.ts";
import { carve, classSize, isSmall, findSmall, freeSmall, markSmall, resizeSmall } from "./carve.ts";
import { flushCache } from "./flush.ts";
import { ended, handOver, trimBlocks } from "./owner.ts";
import { markedAreas } from "./repair.ts";

export { type BlockSetup, type BlockSource, NOT_SMALL } from "./cache-state.ts";

export class SmallCache extends CacheState {
	/** A small area of at least `size` bytes tagged `tag` (a tag table index, 0 none), or NOT_SMALL (carve.ts). */
	alloc(size: number, tag = 0): number | typeof NOT_SMALL {
		return carve(this, size, tag);
	}

	/** Whether a request of `size` bytes is one the cache serves by its size (carve.ts). */
	serves(size: number): boolean {
		return isSmall(this, size);
	}

	/** Free the small area starting at `addr`: "freed", "marked" (kept: `keepMarked`) or NOT_SMALL (carve.ts). */
	free(addr: number, op = "free", keepMarked = false): "freed" | "marked" | typeof NOT_SMALL {
		return freeSmall(this, addr, op, keepMarked);
	}

	/** Set or clear the small-area mark of the live small area at `addr` (carve.ts). */
	mark(addr: number, on: boolean): boolean | typeof NOT_SMALL {
		return markSmall(this, addr, on);
	}

	/** The start of every marked small area, in every handle's blocks (repair.ts). */
	markedAreas(): number[] {
		return markedAreas(this.t, this.locks);
	}

	/** The bytes a small request of `size` takes (its class), or `size` when it is not small. */
	sizeFor(size: number): number {
		return classSize(this, size);
	}

	/** The small area holding `addr`, undefined for a free slot, NOT_SMALL outside every block. */
	find(addr: number): AreaInfo | undefined | typeof NOT_SMALL {
		return findSmall(this, addr);
	}

	/** resize() in place within the size class (true) or not (false); NOT_SMALL outside every block. */
	resize(addr: number, size: number): boolean | typeof NOT_SMALL {
		return resizeSmall(this, addr, size);
	}

	/** Flush this handle's dirty slots now (flush.ts). */
	flush(): void {
		flushCache(this);
	}

	/** trim(): empty blocks retire, this handle's and nobody's (owner.ts); returns how many. */
	trim(): number {
		return trimBlocks(this);
	}

	/** close(): the cache stops and its blocks are handed over (owner.ts). */
	handOver(): void {
		handOver(this);
	}

	/**
	 * Handle `id` ended without close(): its blocks are owned by nobody from now on; with
	 * `release`, its live small areas are freed, each told to `release` first (owner.ts).
	 */
	ended(id: number, release?: (addr: number, size: number) => void): void {
		ended(this, id, release);
	}
}
