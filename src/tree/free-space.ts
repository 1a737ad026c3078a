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
import { put } from "../buffer/journal.ts";
import { findVmapArea } from "./busy-tree.ts";
import { corrupt, hex } from "../api/errors.ts";
import { HDR_FREE_HEAD, HDR_FREE_NR, HDR_FREE_ROOT, HDRF_FREE_BYTES, VA_LEFT, VA_RIGHT } from "../buffer/layout.ts";
import type { Side } from "../buffer/record.ts";
import { AUGMENTED, augmentPropagate, augmentPropagateGrow, rbErase, rbInsert, rbInsertAfter, rbPrev } from "./rbtree.ts";
import type { VaTable } from "../buffer/va-table.ts";
import {
	setVaEnd,
	setVaNext,
	initVa,
	initVaNext,
	setVaStart,
	subtreeMaxSize,
	vaEnd,
	vaLeft,
	vaNext,
	vaRight,
	vaSize,
	vaStart,
} from "../buffer/record.ts";

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
		if (vaStart(f64, node) >= vstart) {
			const r = vaRight(i32, node);
			if (vaSize(f64, node) >= length || subtreeMaxSize(f64, r) >= length) {
				fallback = node;
			}
			const l = vaLeft(i32, node);
			if (subtreeMaxSize(f64, l) < length) break;
			node = l;
		} else {
			const r = vaRight(i32, node);
			if (subtreeMaxSize(f64, r) < length) break;
			node = r;
		}
	}
	if (fallback === 0) return 0;
	if (vaSize(f64, fallback) >= length) return fallback;
	node = vaRight(i32, fallback);
	while (node !== 0) {
		const l = vaLeft(i32, node);
		if (subtreeMaxSize(f64, l) >= length) node = l;
		else if (vaSize(f64, node) >= length) return node;
		else node = vaRight(i32, node);
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
	if (subtreeMaxSize(f64, node) < length) return 0;
	while (true) {
		const l = vaLeft(i32, node);
		if (subtreeMaxSize(f64, l) >= length) node = l;
		else if (vaSize(f64, node) >= length) return node;
		else node = vaRight(i32, node);
		if (node === 0) return corrupt(`free tree: subtreeMaxSize promises a block of ${length} bytes that is not there`);
	}
}

/** Where an allocation of `size` at `align` inside [vstart, vend) would go in block `va`; -1 if it does not fit. */
export function fitIn(t: VaTable, va: number, size: number, align: number, vstart: number, vend: number): number {
	const f64 = t.f64;
	const s = vaStart(f64, va);
	const nva = alignUp(s > vstart ? s : vstart, align);
	const e = vaEnd(f64, va);
	return nva + size <= (e < vend ? e : vend) ? nva : -1;
}

/**
 * The block to allocate `size` bytes at `align` inside [vstart, vend) from, 0 when none fits.
 * `align` is at least the page size; block boundaries are page multiples.
 *
 * - align == pageSize: the lowest block that fits, exactly (O(log n)).
 * - align > pageSize: first the kernel's adjusted search, tightened: a block starting at or
 *   above vstart with size >= size + align - pageSize always fits, since aligning a page
 *   boundary up wastes at most align - pageSize. What it finds, a few lower blocks may still
 *   beat (lowerAlignedFit). When it finds nothing inside the window, a
 *   pruned in-order scan tries every block big enough before alignment, so the call fails only
 *   when no block in the window fits.
 */
export function findVmapLowestMatch(t: VaTable, size: number, align: number, vstart: number, vend: number, pageSize: number): number {
	const f64 = t.f64;
	// The block holding vstart lies at or below every other candidate. There is none when
	// vstart is at or below the lowest free block (the common case: the whole space).
	const head = t.hdr[HDR_FREE_HEAD]!;
	if (head === 0) return 0;
	const slack = align - pageSize;
	let va: number;
	if (vstart <= vaStart(f64, head)) {
		va = lowestFit(t, size + slack);
	} else {
		const holding = findVmapArea(t, HDR_FREE_ROOT, vstart);
		if (holding !== 0 && fitIn(t, holding, size, align, vstart, vend) >= 0) return holding;
		va = lowestAtOrAbove(t, size + slack, vstart);
	}
	if (va !== 0 && fitIn(t, va, size, align, vstart, vend) >= 0)
		return slack === 0 ? va : lowerAlignedFit(t, size, align, vstart, vend, va);
	if (slack === 0) return 0;

	// Pruned scan: blocks of at least `size` bytes, in address order, that start early enough.
	const last = vend - size;
	let from = vstart;
	while (true) {
		const c = lowestAtOrAbove(t, size, from);
		if (c === 0 || vaStart(f64, c) > last) return 0;
		if (fitIn(t, c, size, align, vstart, vend) >= 0) return c;
		from = vaStart(f64, c) + 1;
	}
}

/** Blocks below the adjusted search's answer that an aligned request probes (lowerAlignedFit). */
export const ALIGNED_PROBES = 16;

/**
 * Block `va`, found by the adjusted search, fits `size` at `align`; a lower block may fit too,
 * which that search cannot see: one of less than size + align - pageSize whose start happens
 * to be aligned (a small-area block's 64 KiB at a 64 KiB boundary, freed by another block).
 * Left there, such holes stay empty while the space grows. So the blocks of at least `size`
 * bytes below `va` are tried in address order, at most ALIGNED_PROBES of them (a bound, as
 * the kernel keeps its search O(log n)): the first that fits, else `va`.
 */
function lowerAlignedFit(t: VaTable, size: number, align: number, vstart: number, vend: number, va: number): number {
	const f64 = t.f64;
	const limit = vaStart(f64, va);
	let from = vstart;
	for (let i = 0; i < ALIGNED_PROBES; i++) {
		const c = lowestAtOrAbove(t, size, from);
		if (c === 0 || vaStart(f64, c) >= limit) return va;
		if (fitIn(t, c, size, align, vstart, vend) >= 0) return c;
		from = vaStart(f64, c) + 1;
	}
	return va;
}

/**
 * The oracle for findVmapLowestMatch: a linear walk of the free list (not the tree) that
 * returns the lowest block in which the request fits, 0 when none does.
 */
export function findVmapLowestLinearMatch(t: VaTable, size: number, align: number, vstart: number, vend: number): number {
	const i32 = t.i32;
	for (let va = t.hdr[HDR_FREE_HEAD]!; va !== 0; va = vaNext(i32, va)) {
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
	const i32 = t.i32;
	const start = vaStart(f64, va);
	const end = vaEnd(f64, va);
	const nend = nva + size;
	if (nva < start || nend > end) corrupt(`va_clip: [${hex(nva)}, ${hex(nend)}) is not inside free block [${hex(start)}, ${hex(end)})`);
	t.hdrF[HDRF_FREE_BYTES]! -= size; // derived: not journaled (tree/repair.ts recounts)
	if (nva === start && nend === end) {
		// Full fit: the block leaves the free tree and the free list.
		unlinkFree(t, va);
		return va;
	}
	if (nva === start) {
		// Left edge: the block keeps its tail; its key grows but stays below its successor.
		setVaStart(f64, va, nend);
	} else if (nend === end) {
		// Right edge: the block keeps its head.
		setVaEnd(f64, va, nva);
	} else {
		// Middle: the block keeps its head; a new record takes the tail, right after it.
		setVaEnd(f64, va, nva);
		const tail = t.allocSlot();
		initVa(f64, i32, tail, nend, end, 0, 0); // a slot taken in this section: no journal entry (record.ts)
		initVaNext(i32, tail, vaNext(i32, va));
		setVaNext(i32, va, tail);
		t.hdr[HDR_FREE_NR]!++;
		augmentPropagate(t, va);
		rbInsertAfter(t, HDR_FREE_ROOT, va, tail, AUGMENTED);
		return 0;
	}
	augmentPropagate(t, va);
	return 0;
}

/** Remove free block `va` from the free tree and the free list. */
function unlinkFree(t: VaTable, va: number): void {
	const i32 = t.i32;
	const prev = rbPrev(t, va);
	const next = vaNext(i32, va);
	if (prev === 0) put(t.hdr, HDR_FREE_HEAD, next);
	else setVaNext(i32, prev, next);
	setVaNext(i32, va, 0);
	rbErase(t, HDR_FREE_ROOT, va, AUGMENTED);
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
	const start = vaStart(f64, va);
	const end = vaEnd(f64, va);
	let parent = 0;
	let side: Side = VA_RIGHT;
	let prev = 0;
	let next = 0;
	for (let node = t.hdr[HDR_FREE_ROOT]!; node !== 0; ) {
		parent = node;
		if (start < vaStart(f64, node)) {
			next = node;
			side = VA_LEFT;
			node = vaLeft(i32, node);
		} else {
			prev = node;
			side = VA_RIGHT;
			node = vaRight(i32, node);
		}
	}
	if ((prev !== 0 && vaEnd(f64, prev) > start) || (next !== 0 && vaStart(f64, next) < end)) {
		corrupt(`merge: [${hex(start)}, ${hex(end)}) overlaps a free block`);
	}
	t.hdrF[HDRF_FREE_BYTES]! += end - start; // derived, as the free tree's count
	const mergeNext = next !== 0 && vaStart(f64, next) === end;
	const mergePrev = prev !== 0 && vaEnd(f64, prev) === start;
	if (mergePrev && mergeNext) {
		// Both: `next` leaves the tree before `prev` grows over it (kernel: unlink the merged
		// "next" node first, so no augmented value is computed from a node about to go).
		const nextEnd = vaEnd(f64, next);
		setVaNext(i32, prev, vaNext(i32, next));
		setVaNext(i32, next, 0);
		rbErase(t, HDR_FREE_ROOT, next, AUGMENTED);
		t.hdr[HDR_FREE_NR]!--;
		t.freeSlot(next);
		setVaEnd(f64, prev, nextEnd);
		augmentPropagateGrow(t, prev);
		t.freeSlot(va);
		return prev;
	}
	if (mergeNext) {
		setVaStart(f64, next, start);
		augmentPropagateGrow(t, next);
		t.freeSlot(va);
		return next;
	}
	if (mergePrev) {
		setVaEnd(f64, prev, end);
		augmentPropagateGrow(t, prev);
		t.freeSlot(va);
		return prev;
	}
	setVaNext(i32, va, next);
	if (prev === 0) put(t.hdr, HDR_FREE_HEAD, va);
	else setVaNext(i32, prev, va);
	rbInsert(t, HDR_FREE_ROOT, va, parent, side, AUGMENTED);
	t.hdr[HDR_FREE_NR]!++;
	return va;
}
