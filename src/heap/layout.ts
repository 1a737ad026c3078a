/**
 * The heap's shared state, in the space buffer's extension region (layout.ts HDR_EXT_OFFSET).
 * Word offsets below are relative to the region's first Int32 word, which is 16-word (cache
 * line) aligned, so Float64 words sit at even offsets.
 *
 * ```
 *  line 0   GROW_LOCK seq COMMITTED FLAGS GUARD BLOCK_PAGES NR_BLOCKS RING_CAP     growth, constants
 *  line 1   RCU_LOCK seq GP RING_HEAD RING_NR DEFERRED FREED QS_HIGH RECLAIMING  grace periods
 *  QS       HANDLE_MAX words: the grace period each handle last passed; 0 = offline
 *  RING     RING_CAP × [addr (Float64), target, taker]: areas waiting for a grace period
 *  BLOCKS   NR_BLOCKS × RAM_BLOCK_WORDS: vm_map_ram blocks, indexed by address / block bytes
 * ```
 *
 * Invariants:
 * - COMMITTED pages of the data buffer are backed and, with poisoning, filled; every area the
 *   heap hands out lies below COMMITTED × pageSize before its address is returned.
 * - GP only grows. A handle's QS word is 0 (offline: it holds no references into the heap) or
 *   a GP value it read at a quiescent point. A ring entry of target T may be freed once every
 *   non-zero QS word is >= T.
 * - Ring entries are busy areas of the space, in the order of their targets.
 * - A block record in state RAM_BLOCK_ACTIVE describes the busy area at its index × block bytes:
 *   free + dirty + mapped = BLOCK_PAGES, the used bitmap has `mapped` bits, all below
 *   BLOCK_PAGES - free (pages are handed out from the front, never twice: kernel vb_alloc).
 */
import { HANDLE_MAX } from "../buffer/layout.ts";

export const H_GROW_LOCK = 0;
/** Data pages ready for use (backed, and filled with POISON_BYTE when poisoning). */
export const H_COMMITTED = 2;
export const H_FLAGS = 3;
export const H_GUARD = 4;
export const H_BLOCK_PAGES = 5;
export const H_NR_BLOCKS = 6;
export const H_RING_CAP = 7;
/** H_FLAGS bit: freed bytes are poisoned and checked on reuse. */
export const HF_POISON = 1;

export const H_RCU_LOCK = 16;
/** The grace-period counter: freeDeferred and synchronize advance it. */
export const H_GP = 18;
export const H_RING_HEAD = 19;
export const H_RING_NR = 20;
/** [rcu] Areas ever queued by freeDeferred, and ever freed after their grace period. */
export const H_DEFERRED = 21;
export const H_FREED_DEFERRED = 22;
/** One past the highest handle id that ever went online: QS words beyond it are all 0. */
export const H_QS_HIGH = 23;
/** [rcu] Areas taken off the ring whose frees have not finished yet. */
export const H_RECLAIMING = 24;

export const H_QS = 32;
export const H_RING = H_QS + HANDLE_MAX;
export const RING_WORDS = 4;
/**
 * Ring entry words: the address as Float64 at +0, the target grace period at +2, and at +3
 * the taker: 0 waiting, a handle id while that handle frees the area, R_DONE once freed (the
 * entry leaves when the ring's head passes it).
 */
export const R_TARGET = 2;
export const R_TAKER = 3;
export const R_DONE = -1;

export const RAM_BLOCK_WORDS = 96;
export const B_LOCK = 0;
export const B_STATE = 2;
export const B_OWNER = 3;
/** Pages never handed out, at the end of the block (kernel vb->free). */
export const B_FREE = 4;
/** Pages unmapped and not yet reusable (kernel vb->dirty), and the range they span. */
export const B_DIRTY = 5;
export const B_DIRTY_MIN = 6;
export const B_DIRTY_MAX = 7;
/** Pages mapped now. */
export const B_MAPPED = 8;
export const B_BITMAP = 16;
/** One bit per page that starts a mapping (so an unmap must name a whole mapping), 32 words after B_BITMAP. */
export const B_STARTS = 48;
export const RAM_BLOCK_NONE = 0;
export const RAM_BLOCK_ACTIVE = 1;

/** Most pages one vm_map_ram call maps (kernel VMAP_MAX_ALLOC = BITS_PER_LONG). */
export const VMAP_MAX_ALLOC = 64;
/** Most pages in a block (the kernel's cap too): the bitmap's 32 words hold 1024 bits. */
export const VMAP_BBMAP_MAX = 1024;
export const POISON_BYTE = 0x6b;
export const POISON_WORD = 0x6b6b6b6b;

export function blocksOffset(ringCap: number): number {
	return Math.ceil((H_RING + ringCap * RING_WORDS) / 16) * 16;
}

/** Extension words for a heap of `nrBlocks` blocks and a ring of `ringCap` entries. */
export function heapWords(ringCap: number, nrBlocks: number): number {
	return blocksOffset(ringCap) + nrBlocks * RAM_BLOCK_WORDS;
}

/**
 * Pages per vm_map_ram block (kernel VMAP_BBMAP_BITS): a sixteenth of the space per
 * roundup_pow_of_two(nodes), between 128 and 1024 pages, and a power of two so that blocks
 * are aligned to their size; in a space of fewer than 256 pages, at most half of it.
 */
export function blockPages(spacePages: number, nodes: number): number {
	const share = spacePages / 2 ** Math.ceil(Math.log2(nodes)) / 16;
	let p = 2 ** Math.floor(Math.log2(Math.max(128, Math.min(VMAP_BBMAP_MAX, share))));
	while (p > 1 && 2 * p > spacePages) p /= 2;
	return p;
}
