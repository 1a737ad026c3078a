/**
 * Small-area blocks in the buffer (the kernel's vmap_block, for VmapSpace): what every handle
 * reads, whoever owns the block: the descriptor's words and their accessors, the size classes.
 * The owning handle's side: cache.ts; the index from a block's start to its descriptor:
 * block-index.ts.
 *
 * A block is one busy area of BLOCK_BYTES (a power of two, aligned to itself), flagged
 * VA_SMALL_BLOCK, cut into `slots` small areas of one size class. Its descriptor is a run of
 * records (VaTable.takeRun), Int32 words from d = first record * REC_I32:
 *
 * ```
 *  0 STATE  1 OWNER  2 CLASS  3 SLOTS  4 WORDS (W)  5 AREA  6 RUN  7 LISTED / LIMBO_NEXT
 *  8 (unused)  9 DIRTY_NR  10 (unused)  11 REMOTE_NR  12-13 START (f64)  14-15 SLOT_BYTES (f64)
 *  16 TAG  17 .. 17+6W: six bitmaps of W words, LIVE DIRTY FLUSHING FREE REMOTE MARK (bit s = slot s),
 *         interleaved by word: word w of bitmap k at 17 + 6w + k
 * ```
 *
 * Invariants (check.ts validates them for blocks the checking handle owns):
 * - LIVE, DIRTY and FREE are disjoint and together are the slots; FLUSHING ⊆ DIRTY;
 *   REMOTE ⊆ LIVE; MARK ⊆ LIVE; DIRTY_NR and REMOTE_NR count theirs (REMOTE_NR may run ahead
 *   of REMOTE by one free in progress). LIVE and FREE are not counted (liveSlots, freeSlots: a
 *   walk of the block's words where a count is wanted, which is off the carving path): the
 *   owner's gauges (buffer/gauges.ts) count the areas in use for the statistics instead.
 * - The owner's gauges sum LIVE + DIRTY slots, DIRTY slots and their bytes over the blocks it owns.
 * - LIVE: handed out and not freed by the owner. DIRTY: freed, not yet flushed (a small area
 *   is lazy until then: never handed out again before a flush covering it has completed).
 *   FLUSHING: part of DIRTY that a flush in flight covers. FREE: may be handed out.
 *   REMOTE: freed by another handle, not yet taken into DIRTY by the owner. MARK: the small
 *   area carries the space's one small-area tag (HDR_SMALL_MARK_TAG: the heap's "queued for a
 *   deferred free"); any handle sets and clears it with one atomic, a free clears it.
 * - Only the owner writes LIVE, DIRTY, FLUSHING, FREE and the counts, with plain stores:
 *   its own path takes no lock and no atomic. Another handle's free is one Atomics.or on
 *   REMOTE and one Atomics.add on REMOTE_NR. OWNER 0 means nobody (the owner closed or
 *   ended): a handle then owns the block for the moment it takes remote frees in, by CAS.
 *
 * The accessors below take a descriptor's d and write its word offsets as numbers, as
 * record.ts does and for its reason (an imported constant is a module-variable load, and the
 * carving path inlines them); test/layout.test.ts checks them against the D_ and DF_ constants.
 */
import { REC_I32 } from "../buffer/layout.ts";
import { shown } from "../api/errors.ts";

export const D_STATE = 0;
export const D_OWNER = 1;
export const D_CLASS = 2;
export const D_SLOTS = 3;
export const D_WORDS = 4;
export const D_AREA = 5;
export const D_RUN = 6;
/** 1 while the block is on its owner's list of blocks with FREE slots (cache-state.ts): the owner's bookkeeping, so a block is listed once. */
export const D_LISTED = 7;
/** Word 7 is a union: a descriptor in limbo (limbo.ts) is on no owner's list, and links the next one there. */
export const D_LIMBO_NEXT = 7;
export const D_DIRTY_NR = 9;
export const D_REMOTE_NR = 11;
/** Float64 words, relative to d / 2. */
export const DF_START = 6;
export const DF_SLOT_BYTES = 7;
/** The tag of every small area of the block (a tag table index, 0 none): a handle keeps blocks per (tag, class). Written once, before STATE. */
export const D_TAG = 16;
export const D_BITS = 17;
/** Word w of bitmap k is at d + D_BITS + BITMAPS * w + k (bitWord). */
export const LIVE = 0;
export const DIRTY = 1;
export const FLUSHING = 2;
export const FREE = 3;
export const REMOTE = 4;
export const MARK = 5;
export const BITMAPS = 6;

/** STATE of a descriptor in use ("blk"); LIMBO ("lmb") once retired while a remote freer may still touch it (limbo.ts); 0 once its records are freed. */
export const SMALL_BLOCK_ACTIVE = 0x626c6b;
export const SMALL_BLOCK_LIMBO = 0x6c6d62;
/** OWNER of a retired descriptor: no handle id, and not 0, so that no adoption's CAS (0 to its id) lands on it. */
export const OWNER_RETIRED = -1;
/** Most slots in a block: its smallest class is BLOCK_BYTES / MAX_SLOTS. */
export const MAX_SLOTS = 2048;
/** The largest class has at least this many slots: BLOCK_BYTES = pow2 >= MIN_SLOTS * smallMax. */
export const MIN_SLOTS = 16;
/** The tag of block areas in the listings. */
export const SMALL_BLOCK_TAG = "vmap_block";

/** START: the block's first address (Float64 word DF_START of d / 2). */
export function blockStartOf(f64: Float64Array, d: number): number {
	return f64[(d >> 1) + 6]!;
}

/** SLOT_BYTES: the block's size class, bytes (Float64 word DF_SLOT_BYTES of d / 2). */
export function slotBytesOf(f64: Float64Array, d: number): number {
	return f64[(d >> 1) + 7]!;
}

/** Block `d`'s LIVE slots (a popcount of its LIVE bitmap). */
export function liveSlots(i32: Int32Array, d: number): number {
	let n = 0;
	for (let w = 0, words = i32[d + D_WORDS]!; w < words; w++) n += popcount(i32[liveWord(d, w)]!);
	return n;
}

/** Whether block `d` has a LIVE slot. */
export function hasLive(i32: Int32Array, d: number): boolean {
	for (let w = 0, words = i32[d + D_WORDS]!; w < words; w++) if (i32[liveWord(d, w)] !== 0) return true;
	return false;
}

/** Whether block `d` has a FREE slot. */
export function hasFree(i32: Int32Array, d: number): boolean {
	for (let w = 0, words = i32[d + D_WORDS]!; w < words; w++) if (i32[freeWord(d, w)] !== 0) return true;
	return false;
}

/** Block `d`'s FREE slots: those neither LIVE nor DIRTY. */
export function freeSlots(i32: Int32Array, d: number): number {
	return i32[d + D_SLOTS]! - liveSlots(i32, d) - i32[d + D_DIRTY_NR]!;
}

/**
 * Word `w` of bitmap `k` (LIVE .. MARK) of descriptor `d`: the bitmaps are interleaved by
 * word, D_BITS + BITMAPS * w + k, so that every bit of a slot lies in one 24-byte group (a free
 * at a million live areas reads one line of bitmaps, not four).
 */
export function bitWord(d: number, k: number, w: number): number {
	return d + 17 + 6 * w + k;
}

/**
 * Word `w` of each bitmap the carving path reads, by name: bitWord(d, LIVE, w) and the others,
 * with the offsets written out (D_BITS + BITMAPS * w + k) for the reason record.ts gives.
 */
export function liveWord(d: number, w: number): number {
	return d + 17 + 6 * w;
}

export function dirtyWord(d: number, w: number): number {
	return d + 18 + 6 * w;
}

export function freeWord(d: number, w: number): number {
	return d + 20 + 6 * w;
}

export function remoteWord(d: number, w: number): number {
	return d + 21 + 6 * w;
}

export function markWord(d: number, w: number): number {
	return d + 22 + 6 * w;
}

/** Records of a descriptor for `slots` slots. */
export function descriptorRun(slots: number): number {
	return Math.ceil((D_BITS + BITMAPS * Math.ceil(slots / 32)) / REC_I32);
}

/**
 * The size classes (bytes) of a cache of blocks of `blockBytes` serving up to `smallMax`:
 * from the smallest a block may hold (blockBytes / MAX_SLOTS, at least a page), every page
 * up to 8 pages, then 4 per doubling (at most 25% rounding, as jemalloc's). The last class
 * is smallMax itself.
 */
export function sizeClasses(smallMax: number, blockBytes: number, pageSize: number): number[] {
	const units = smallMax / pageSize;
	const first = Math.max(1, Math.ceil(blockBytes / MAX_SLOTS / pageSize));
	const out: number[] = [];
	for (let u = first; u < units; ) {
		out.push(u * pageSize);
		const step = u < 8 ? 1 : 2 ** (Math.floor(Math.log2(u)) - 2);
		u = Math.floor(u / step) * step + step;
	}
	out.push(units * pageSize);
	return out;
}

/** BLOCK_BYTES for `smallMax`: the power of two that gives its class MIN_SLOTS slots. */
export function blockBytesFor(smallMax: number): number {
	return 2 ** Math.ceil(Math.log2(smallMax * MIN_SLOTS));
}

/** Set bits in a 32-bit word. */
export function popcount(x: number): number {
	x -= (x >>> 1) & 0x55555555;
	x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
	return Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** EINVAL message part for a bad smallMax. */
export function smallMaxProblem(smallMax: unknown, pageSize: number, size: number): string | undefined {
	if (!(typeof smallMax === "number" && Number.isSafeInteger(smallMax) && smallMax >= 0 && smallMax % pageSize === 0)) {
		return `smallMax must be 0 or a whole number of bytes, a multiple of pageSize ${pageSize}, got ${shown(smallMax)}`;
	}
	if (smallMax / pageSize > 65536) return `smallMax must be at most 65536 pages (${65536 * pageSize} bytes), got ${smallMax}`;
	if (smallMax > 0 && blockBytesFor(smallMax) > size) {
		return `smallMax ${smallMax} needs blocks of ${blockBytesFor(smallMax)} bytes (${MIN_SLOTS} areas of smallMax), larger than the space's size ${size}`;
	}
	return undefined;
}
