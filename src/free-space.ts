/**
 * Free space: the free tree (augmented with subtreeMaxSize, keyed by vaStart) and the
 * address-ordered free list threaded through `next`. Single-threaded: callers hold the free
 * lock.
 *
 * Invariants (check.ts verifies every one):
 * - free blocks never overlap and never touch: a block that would touch a neighbour is merged;
 * - the free list is the tree's in-order sequence;
 * - every block starts and ends on a page boundary.
 */
import { findVmapArea } from "./busy-tree.ts";
import { corrupt, hex } from "./errors.ts";
import {
	HDR_FREE_HEAD,
	HDR_FREE_NR,
	HDR_FREE_ROOT,
	HDRF_FREE_BYTES,
	REC_F64,
	REC_I32,
	VA_END,
	VA_LEFT,
	VA_NEXT,
	VA_RIGHT,
	VA_START,
	VA_SUBTREE_MAX,
} from "./layout.ts";
import { augmentPropagate, augmentPropagateGrow, rbErase, rbInsert, rbInsertAfter, rbPrev } from "./rbtree.ts";
import type { VaTable } from "./va-table.ts";

/** Round `x` up to a multiple of `align`, a power of two. Exact on all safe integers. */
export function alignUp(x: number, align: number): number {
	return Math.ceil(x / align) * align;
}

/**
 * Lowest block, by address, that starts at or above `vstart` and has at least `length`
 * bytes; 0 when there is none. O(log n).
 *
 * One descent. Where a node starts at or above vstart, the node and its right subtree are all
 * candidates and lie above everything in its left subtree: remember the node as the fallback
 * if it or its right subtree is big enough, then look for something lower on the left. Each
 * fallback found lies below the one before, so only the last is kept. At the end the answer is
 * the fallback itself or the leftmost big-enough block of its right subtree.
 */
function lowestAtOrAbove(t: VaTable, length: number, vstart: number): number {
	const f64 = t.f64;
	const i32 = t.i32;
	let node = t.hdr[HDR_FREE_ROOT]!;
	let fallback = 0;
	while (node !== 0) {
		const nw = node * REC_I32;
		if (f64[node * REC_F64 + VA_START]! >= vstart) {
			const r = i32[nw + VA_RIGHT]!;
			if (
				f64[node * REC_F64 + VA_END]! - f64[node * REC_F64 + VA_START]! >= length ||
				f64[r * REC_F64 + VA_SUBTREE_MAX]! >= length
			) {
				fallback = node;
			}
			const l = i32[nw + VA_LEFT]!;
			if (f64[l * REC_F64 + VA_SUBTREE_MAX]! < length) break;
			node = l;
		} else {
			const r = i32[nw + VA_RIGHT]!;
			if (f64[r * REC_F64 + VA_SUBTREE_MAX]! < length) break;
			node = r;
		}
	}
	if (fallback === 0) return 0;
	if (f64[fallback * REC_F64 + VA_END]! - f64[fallback * REC_F64 + VA_START]! >= length) return fallback;
	node = i32[fallback * REC_I32 + VA_RIGHT]!;
	while (node !== 0) {
		const l = i32[node * REC_I32 + VA_LEFT]!;
		if (f64[l * REC_F64 + VA_SUBTREE_MAX]! >= length) node = l;
		else if (f64[node * REC_F64 + VA_END]! - f64[node * REC_F64 + VA_START]! >= length) return node;
		else node = i32[node * REC_I32 + VA_RIGHT]!;
	}
	return corrupt(`free tree: subtreeMaxSize under record ${fallback} promises a block of ${length} bytes that is not there`);
}

/**
 * Lowest block with at least `length` bytes, 0 when there is none: lowestAtOrAbove for a vstart
 * at or below every block. Every block qualifies by address, so a subtree whose subtreeMaxSize
 * is large enough always holds the answer and the descent never needs to turn back.
 */
function lowestFit(t: VaTable, length: number): number {
	const f64 = t.f64;
	const i32 = t.i32;
	let node = t.hdr[HDR_FREE_ROOT]!;
	if (f64[node * REC_F64 + VA_SUBTREE_MAX]! < length) return 0;
	while (true) {
		const l = i32[node * REC_I32 + VA_LEFT]!;
		if (f64[l * REC_F64 + VA_SUBTREE_MAX]! >= length) node = l;
		else if (f64[node * REC_F64 + VA_END]! - f64[node * REC_F64 + VA_START]! >= length) return node;
		else node = i32[node * REC_I32 + VA_RIGHT]!;
		if (node === 0) return corrupt(`free tree: subtreeMaxSize promises a block of ${length} bytes that is not there`);
	}
}

/** Where an allocation of `size` at `align` inside [vstart, vend) would go in block `va`; -1 if it does not fit. */
export function fitIn(t: VaTable, va: number, size: number, align: number, vstart: number, vend: number): number {
	const f64 = t.f64;
	const s = f64[va * REC_F64 + VA_START]!;
	const nva = alignUp(s > vstart ? s : vstart, align);
	const e = f64[va * REC_F64 + VA_END]!;
	return nva + size <= (e < vend ? e : vend) ? nva : -1;
}

/**
 * The block to allocate `size` bytes at `align` inside [vstart, vend) from, 0 when none fits.
 * `align` is at least the page size; block boundaries are page multiples.
 *
 * - align == pageSize: the lowest block that fits, exactly (O(log n)).
 * - align > pageSize: first the kernel's adjusted search, tightened: a block starting at or
 *   above vstart with size >= size + align - pageSize always fits, since aligning a page
 *   boundary up wastes at most align - pageSize. When that finds nothing inside the window, a
 *   pruned in-order scan tries every block big enough before alignment, so the call fails only
 *   when no block in the window fits.
 */
export function findVmapLowestMatch(
	t: VaTable,
	size: number,
	align: number,
	vstart: number,
	vend: number,
	pageSize: number,
): number {
	// The block holding vstart lies at or below every other candidate. There is none when
	// vstart is at or below the lowest free block (the common case: the whole space).
	const head = t.hdr[HDR_FREE_HEAD]!;
	if (head === 0) return 0;
	const slack = align - pageSize;
	let va: number;
	if (vstart <= t.f64[head * REC_F64 + VA_START]!) {
		va = lowestFit(t, size + slack);
	} else {
		const holding = findVmapArea(t, HDR_FREE_ROOT, vstart);
		if (holding !== 0 && fitIn(t, holding, size, align, vstart, vend) >= 0) return holding;
		va = lowestAtOrAbove(t, size + slack, vstart);
	}
	if (va !== 0 && fitIn(t, va, size, align, vstart, vend) >= 0) return va;
	if (slack === 0) return 0;

	// Pruned scan: blocks of at least `size` bytes, in address order, that start early enough.
	const f64 = t.f64;
	const last = vend - size;
	let from = vstart;
	while (true) {
		const c = lowestAtOrAbove(t, size, from);
		if (c === 0 || f64[c * REC_F64 + VA_START]! > last) return 0;
		if (fitIn(t, c, size, align, vstart, vend) >= 0) return c;
		from = f64[c * REC_F64 + VA_START]! + 1;
	}
}

/**
 * The oracle for findVmapLowestMatch: a linear walk of the free list (not the tree) that
 * returns the lowest block in which the request fits, 0 when none does.
 */
export function findVmapLowestLinearMatch(t: VaTable, size: number, align: number, vstart: number, vend: number): number {
	for (let va = t.hdr[HDR_FREE_HEAD]!; va !== 0; va = t.i32[va * REC_I32 + VA_NEXT]!) {
		if (fitIn(t, va, size, align, vstart, vend) >= 0) return va;
	}
	return 0;
}

/**
 * Carve [nva, nva + size) out of free block `va` (kernel va_clip). Returns `va` itself when the
 * block is used whole (it has left the free tree and list and may become the busy record),
 * otherwise 0. A middle split takes one record: the caller has reserved it.
 */
export function vaClip(t: VaTable, va: number, nva: number, size: number): number {
	const f64 = t.f64;
	const fw = va * REC_F64;
	const start = f64[fw + VA_START]!;
	const end = f64[fw + VA_END]!;
	const nend = nva + size;
	if (nva < start || nend > end) corrupt(`va_clip: [${hex(nva)}, ${hex(nend)}) is not inside free block [${hex(start)}, ${hex(end)})`);
	t.hdrF[HDRF_FREE_BYTES]! -= size;
	if (nva === start && nend === end) {
		// Full fit: the block leaves the free tree and the free list.
		unlinkFree(t, va);
		return va;
	}
	if (nva === start) {
		// Left edge: the block keeps its tail; its key grows but stays below its successor.
		f64[fw + VA_START] = nend;
	} else if (nend === end) {
		// Right edge: the block keeps its head.
		f64[fw + VA_END] = nva;
	} else {
		// Middle: the block keeps its head; a new record takes the tail, right after it.
		f64[fw + VA_END] = nva;
		const tail = t.allocSlot();
		f64[tail * REC_F64 + VA_START] = nend;
		f64[tail * REC_F64 + VA_END] = end;
		t.i32[tail * REC_I32 + VA_NEXT] = t.i32[va * REC_I32 + VA_NEXT]!;
		t.i32[va * REC_I32 + VA_NEXT] = tail;
		t.hdr[HDR_FREE_NR]!++;
		augmentPropagate(t, va);
		rbInsertAfter(t, HDR_FREE_ROOT, va, tail, true);
		return 0;
	}
	augmentPropagate(t, va);
	return 0;
}

/** Remove free block `va` from the free tree and the free list. */
function unlinkFree(t: VaTable, va: number): void {
	const i32 = t.i32;
	const prev = rbPrev(t, va);
	const next = i32[va * REC_I32 + VA_NEXT]!;
	if (prev === 0) t.hdr[HDR_FREE_HEAD] = next;
	else i32[prev * REC_I32 + VA_NEXT] = next;
	i32[va * REC_I32 + VA_NEXT] = 0;
	rbErase(t, HDR_FREE_ROOT, va, true);
	t.hdr[HDR_FREE_NR]!--;
}

/**
 * Return record `va` (vaStart/vaEnd set, in no tree, on no list) to free space, merging it
 * with the blocks it touches (kernel merge_or_add_vmap_area). Records that merge away go back
 * to the slot free list. Returns the slot that now holds the range.
 *
 * One descent finds where `va` would link and, on the way, its neighbours: the last node the
 * descent left to the right of is the predecessor, the last it left to the left of is the
 * successor.
 */
export function mergeOrAddVmapArea(t: VaTable, va: number): number {
	const f64 = t.f64;
	const i32 = t.i32;
	const start = f64[va * REC_F64 + VA_START]!;
	const end = f64[va * REC_F64 + VA_END]!;
	let parent = 0;
	let left = false;
	let prev = 0;
	let next = 0;
	for (let node = t.hdr[HDR_FREE_ROOT]!; node !== 0; ) {
		parent = node;
		if (start < f64[node * REC_F64 + VA_START]!) {
			next = node;
			left = true;
			node = i32[node * REC_I32 + VA_LEFT]!;
		} else {
			prev = node;
			left = false;
			node = i32[node * REC_I32 + VA_RIGHT]!;
		}
	}
	if ((prev !== 0 && f64[prev * REC_F64 + VA_END]! > start) || (next !== 0 && f64[next * REC_F64 + VA_START]! < end)) {
		corrupt(`merge: [${hex(start)}, ${hex(end)}) overlaps a free block`);
	}
	t.hdrF[HDRF_FREE_BYTES]! += end - start;
	const mergeNext = next !== 0 && f64[next * REC_F64 + VA_START] === end;
	const mergePrev = prev !== 0 && f64[prev * REC_F64 + VA_END] === start;
	if (mergePrev && mergeNext) {
		// Both: `next` leaves the tree before `prev` grows over it (kernel: unlink the merged
		// "next" node first, so no augmented value is computed from a node about to go).
		const nextEnd = f64[next * REC_F64 + VA_END]!;
		i32[prev * REC_I32 + VA_NEXT] = i32[next * REC_I32 + VA_NEXT]!;
		i32[next * REC_I32 + VA_NEXT] = 0;
		rbErase(t, HDR_FREE_ROOT, next, true);
		t.hdr[HDR_FREE_NR]!--;
		t.freeSlot(next);
		f64[prev * REC_F64 + VA_END] = nextEnd;
		augmentPropagateGrow(t, prev);
		t.freeSlot(va);
		return prev;
	}
	if (mergeNext) {
		f64[next * REC_F64 + VA_START] = start;
		augmentPropagateGrow(t, next);
		t.freeSlot(va);
		return next;
	}
	if (mergePrev) {
		f64[prev * REC_F64 + VA_END] = end;
		augmentPropagateGrow(t, prev);
		t.freeSlot(va);
		return prev;
	}
	i32[va * REC_I32 + VA_NEXT] = next;
	if (prev === 0) t.hdr[HDR_FREE_HEAD] = va;
	else i32[prev * REC_I32 + VA_NEXT] = va;
	rbInsert(t, HDR_FREE_ROOT, va, parent, left, true);
	t.hdr[HDR_FREE_NR]!++;
	return va;
}
