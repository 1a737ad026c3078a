/**
 * Small-area blocks in the buffer (the kernel's vmap_block, for VmapSpace): what every handle
 * reads, whoever owns the block. small.ts is the owning handle's side.
 *
 * A block is one busy area of BLOCK_BYTES (a power of two, aligned to itself), flagged
 * VA_SMALL_BLOCK, cut into `slots` small areas of one size class. Its descriptor is a run of
 * records (VaTable.takeRun), Int32 words from d = first record * REC_I32:
 *
 * ```
 *  0 STATE  1 OWNER  2 CLASS  3 SLOTS  4 WORDS (W)  5 AREA  6 RUN  7 LISTED
 *  8 LIVE_NR  9 DIRTY_NR  10 FREE_NR  11 REMOTE_NR  12-13 START (f64)  14-15 SLOT_BYTES (f64)
 *  16 .. 16+6W: six bitmaps of W words, LIVE DIRTY FLUSHING FREE REMOTE MARK (bit s = slot s)
 * ```
 *
 * Invariants (check.ts validates them for blocks the checking handle owns):
 * - LIVE, DIRTY and FREE are disjoint and together are the slots; FLUSHING ⊆ DIRTY;
 *   REMOTE ⊆ LIVE; MARK ⊆ LIVE; the _NR words count them (REMOTE_NR may run ahead of REMOTE by one free
 *   in progress).
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
 * The block index maps a block's start to its descriptor: an open-addressing table in a run
 * of records, written under the FREE lock, read without a lock. Its first word holds its
 * capacity (a power of two); entry e is four Int32 words at 4 + 4e: START (f64), DESC (the
 * descriptor's d; 0 empty, -1 deleted). A reader validates what it finds (STATE and START
 * of the descriptor), since a table replaced by growth is freed while readers may hold it.
 */
import { HDR_BLOCK_INDEX, HDR_BLOCK_NR, HDR_BLOCK_USED, REC_I32 } from "../buffer/layout.ts";
import { shown } from "../api/errors.ts";
import type { VaTable } from "../buffer/va-table.ts";

export const D_STATE = 0;
export const D_OWNER = 1;
export const D_CLASS = 2;
export const D_SLOTS = 3;
export const D_WORDS = 4;
export const D_AREA = 5;
export const D_RUN = 6;
/** 1 while the block is on its owner's list of blocks with FREE slots (small.ts): the owner's bookkeeping, so a block is listed once. */
export const D_LISTED = 7;
export const D_LIVE_NR = 8;
export const D_DIRTY_NR = 9;
export const D_FREE_NR = 10;
export const D_REMOTE_NR = 11;
/** Float64 words, relative to d / 2. */
export const DF_START = 6;
export const DF_SLOT_BYTES = 7;
export const D_BITS = 16;
/** Bitmap k of a block with W words starts at d + D_BITS + k * W. */
export const LIVE = 0;
export const DIRTY = 1;
export const FLUSHING = 2;
export const FREE = 3;
export const REMOTE = 4;
export const MARK = 5;
export const BITMAPS = 6;

export const BLOCK_ACTIVE = 0x626c6b; // "blk"
/** Most slots in a block: its smallest class is BLOCK_BYTES / MAX_SLOTS. */
export const MAX_SLOTS = 1024;
/** The largest class has at least this many slots: BLOCK_BYTES = pow2 >= MIN_SLOTS * smallMax. */
export const MIN_SLOTS = 16;
/** The tag of block areas in the listings. */
export const BLOCK_TAG = "vmap_block";

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

/** Index word of the first entry of the block index at record `first`, and its capacity. */
function indexBase(first: number): number {
	return first * REC_I32 + 4;
}

function slotOf(start: number, blockInverse: number, mask: number): number {
	const k = start * blockInverse; // exact: blocks are aligned to their power-of-two size
	return Math.imul(k >>> 0, 0x9e3779b1) & mask;
}

/**
 * The descriptor (d) of the block starting at `blockStart`, or 0. Without a lock: `first` is
 * the index the caller read (HDR_BLOCK_INDEX); a hit is validated by its descriptor.
 */
export function lookupBlock(t: VaTable, first: number, blockStart: number, blockInverse: number): number {
	if (first === 0 || first >= t.capacity) return 0;
	const i32 = t.i32;
	const f64 = t.f64;
	const cap = i32[first * REC_I32]!;
	const mask = cap - 1;
	const base = indexBase(first);
	for (let e = slotOf(blockStart, blockInverse, mask), n = 0; n < cap; e = (e + 1) & mask, n++) {
		const w = base + e * 4;
		const d = i32[w + 2]!;
		if (d === 0) return 0;
		if (d > 0 && f64[w >> 1] === blockStart) {
			if (d + D_BITS > i32.length || i32[d + D_STATE] !== BLOCK_ACTIVE || f64[(d >> 1) + DF_START] !== blockStart) return 0;
			if (d + D_BITS + BITMAPS * i32[d + D_WORDS]! > i32.length) return 0; // a stale index's garbage
			return d;
		}
	}
	return 0;
}

/** Every descriptor in the index (under the FREE lock, or of a still copy). */
export function eachBlock(t: VaTable, visit: (d: number) => void): void {
	const first = t.hdr[HDR_BLOCK_INDEX]!;
	if (first === 0) return;
	const cap = t.i32[first * REC_I32]!;
	const base = indexBase(first);
	for (let e = 0; e < cap; e++) {
		const d = t.i32[base + e * 4 + 2]!;
		if (d > 0) visit(d);
	}
}

/** Records of the block index's run for `cap` entries. */
export function indexRun(cap: number): number {
	return Math.ceil((4 + cap * 4) / REC_I32);
}

/**
 * Add descriptor `d` (its START set) to the index, under the FREE lock; grows the index first
 * when it is half full. The caller reserved indexRun(nextCapacity) records (reserveRun).
 */
export function indexInsert(t: VaTable, d: number, blockInverse: number): void {
	const hdr = t.hdr;
	const cap = nextIndexCapacity(t);
	const first = cap === 0 ? hdr[HDR_BLOCK_INDEX]! : rebuildIndex(t, cap, blockInverse);
	if (put(t, first, d, blockInverse)) hdr[HDR_BLOCK_USED]!++;
	hdr[HDR_BLOCK_NR]!++;
}

/** The capacity of the index the next insert rebuilds (for reserving its run), or 0 when it inserts in place. */
export function nextIndexCapacity(t: VaTable): number {
	const hdr = t.hdr;
	const first = hdr[HDR_BLOCK_INDEX]!;
	if (first !== 0 && 2 * (hdr[HDR_BLOCK_USED]! + 1) <= t.i32[first * REC_I32]!) return 0;
	return Math.max(16, 2 ** Math.ceil(Math.log2(4 * (hdr[HDR_BLOCK_NR]! + 1))));
}

/** Put `d` in the first empty or deleted entry of its probe chain; true if the entry was empty. */
function put(t: VaTable, first: number, d: number, blockInverse: number): boolean {
	const i32 = t.i32;
	const f64 = t.f64;
	const start = f64[(d >> 1) + DF_START]!;
	const mask = i32[first * REC_I32]! - 1;
	const base = indexBase(first);
	let e = slotOf(start, blockInverse, mask);
	while (i32[base + e * 4 + 2]! > 0) e = (e + 1) & mask;
	const w = base + e * 4;
	const empty = i32[w + 2] === 0;
	f64[w >> 1] = start;
	i32[w + 2] = d;
	return empty;
}

/** A new index with room for the blocks there are (tombstones dropped), published with one store. */
function rebuildIndex(t: VaTable, cap: number, blockInverse: number): number {
	const old = t.hdr[HDR_BLOCK_INDEX]!;
	const run = indexRun(cap);
	const first = t.takeRun(run);
	t.i32[first * REC_I32] = cap;
	t.i32[first * REC_I32 + 1] = run;
	let n = 0;
	if (old !== 0) {
		eachBlock(t, (d) => {
			put(t, first, d, blockInverse);
			n++;
		});
	}
	// Readers without a lock load the index word, then its entries: publish it once filled.
	Atomics.store(t.hdr, HDR_BLOCK_INDEX, first);
	t.hdr[HDR_BLOCK_USED] = n;
	if (old !== 0) {
		const oldRun = t.i32[old * REC_I32 + 1]!;
		for (let r = 0; r < oldRun; r++) clearAndFree(t, old + r);
	}
	return first;
}

/** Remove descriptor `d` from the index, under the FREE lock (its entry becomes a tombstone). */
export function indexRemove(t: VaTable, d: number, blockInverse: number): void {
	const first = t.hdr[HDR_BLOCK_INDEX]!;
	const i32 = t.i32;
	const start = t.f64[(d >> 1) + DF_START]!;
	const mask = i32[first * REC_I32]! - 1;
	const base = indexBase(first);
	for (let e = slotOf(start, blockInverse, mask); ; e = (e + 1) & mask) {
		const w = base + e * 4 + 2;
		if (i32[w] === d) {
			i32[w] = -1;
			break;
		}
		if (i32[w] === 0) throw new Error(`block index: descriptor ${d} is not indexed`);
	}
	t.hdr[HDR_BLOCK_NR]!--;
}

/** Zero a record (a run's record may hold any words) and return it to the slot free list. */
export function clearAndFree(t: VaTable, rec: number): void {
	t.i32.fill(0, rec * REC_I32, (rec + 1) * REC_I32);
	t.freeSlot(rec);
}

/** Bitmap `k` of descriptor `d` with `w` words: its first word. */
export function bitmap(d: number, w: number, k: number): number {
	return d + D_BITS + k * w;
}

/** Set bits in a 32-bit word. */
export function popcount(x: number): number {
	x -= (x >>> 1) & 0x55555555;
	x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
	return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
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
