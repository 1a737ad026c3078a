/**
 * The tree layer (src/tree/): the indexes of areas by address, each single-threaded under the
 * lock its caller holds: this red-black tree, the free space with its lowest-fit search
 * (free-space.ts), the busy trees and their hash (busy-tree.ts, busy-hash.ts), the lazy and
 * purge trees (lazy-tree.ts), a node's pools (nodes.ts). It may import buffer/ and api/.
 * Every tree has its validator in diag/ and a slow oracle in the tests.
 *
 * A red-black tree over record slots, with parent links and an optional augmented value.
 *
 * The tree does not compare keys: callers find the link position (parent and side) by their
 * own descent, as the kernel's `find_va_links` does, and hand it to `rbInsert`. The root lives
 * in a header word, so the same code serves the free tree and every busy tree.
 *
 * Augmented trees (the free tree) keep, in every node,
 *   subtreeMaxSize(n) = max(vaEnd(n) - vaStart(n), subtreeMaxSize(left), subtreeMaxSize(right))
 * with subtreeMaxSize(nil) = 0. The value is restored:
 * - after a link, or after a block grows in place (`augmentPropagateGrow`): raised from the node
 *   up, stopping at the first ancestor already as large;
 * - after an erase: on the whole path from the splice point to the root (the moved successor
 *   sits on it, so an early stop could miss it);
 * - by every rotation, locally: the node that takes the subtree's place takes its old value
 *   (the subtree holds the same blocks), and the node that went down is recomputed;
 * - after a block shrinks in place: `augmentPropagate`, recomputed from the node up, stopping
 *   where a value does not change.
 */
import { VA_LEFT, VA_RIGHT } from "../buffer/layout.ts";
import {
	clearVaLinks,
	initSubtreeMaxSize,
	setSubtreeMaxSize,
	setVaBlack,
	setVaChild,
	setVaParent,
	setVaParentColour,
	setVaRed,
	type Side,
	subtreeMaxSize,
	vaChild,
	vaIsRed,
	vaLeft,
	vaParent,
	vaRight,
	vaSize,
} from "../buffer/record.ts";
import type { VaTable } from "../buffer/va-table.ts";

const L = VA_LEFT;
const R = VA_RIGHT;

/**
 * The `aug` argument of the calls below: the tree keeps subtreeMaxSize (the free tree), or not
 * (the busy, lazy and purge trees). No write here is journaled (journal.ts): a recovery
 * rebuilds every tree from the list beside it (repair.ts).
 */
export const AUGMENTED = true;
export const PLAIN = false;

function opposite(side: Side): Side {
	return side === L ? R : L;
}

/** The value subtreeMaxSize(x) must have, given correct values in its children. */
export function augmentCompute(t: VaTable, x: number): number {
	const f64 = t.f64;
	const i32 = t.i32;
	let m = vaSize(f64, x);
	const l = subtreeMaxSize(f64, vaLeft(i32, x));
	const r = subtreeMaxSize(f64, vaRight(i32, x));
	if (l > m) m = l;
	if (r > m) m = r;
	return m;
}

/** Recompute subtreeMaxSize from `x` up, stopping at the first node whose value holds. */
export function augmentPropagate(t: VaTable, x: number): void {
	const f64 = t.f64;
	const i32 = t.i32;
	while (x !== 0) {
		const v = augmentCompute(t, x);
		if (subtreeMaxSize(f64, x) === v) break;
		setSubtreeMaxSize(f64, x, v);
		x = vaParent(i32, x);
	}
}

/**
 * After block `x` grew (or was linked as a leaf): raise subtreeMaxSize on the path up to its
 * size. Growth can only raise values, so no sibling need be read, and the walk stops at the
 * first ancestor already at least as large.
 */
export function augmentPropagateGrow(t: VaTable, x: number): void {
	const f64 = t.f64;
	const i32 = t.i32;
	const v = vaSize(f64, x);
	while (x !== 0) {
		if (subtreeMaxSize(f64, x) >= v) break;
		setSubtreeMaxSize(f64, x, v);
		x = vaParent(i32, x);
	}
}

/** Recompute subtreeMaxSize on the whole path from `x` to the root. */
function augmentPropagateToRoot(t: VaTable, x: number): void {
	const f64 = t.f64;
	const i32 = t.i32;
	while (x !== 0) {
		setSubtreeMaxSize(f64, x, augmentCompute(t, x));
		x = vaParent(i32, x);
	}
}

/** Point whatever pointed at `old` (its parent's child link, or the root word) at `now`. */
function replaceChild(t: VaTable, rootWord: number, parent: number, old: number, now: number): void {
	const i32 = t.i32;
	if (parent === 0) t.hdr[rootWord] = now;
	else setVaChild(i32, parent, vaLeft(i32, parent) === old ? L : R, now);
}

/**
 * Rotate `x` down to the `side` (L: left rotation, its right child comes up).
 * Keeps subtreeMaxSize right when the tree is augmented.
 */
function rotate(t: VaTable, rootWord: number, x: number, side: Side, aug: boolean): void {
	const f64 = t.f64;
	const i32 = t.i32;
	const other = opposite(side);
	const y = vaChild(i32, x, other);
	const inner = vaChild(i32, y, side);
	const p = vaParent(i32, x);
	setVaChild(i32, x, other, inner);
	if (inner !== 0) setVaParent(i32, inner, x);
	setVaParent(i32, y, p);
	replaceChild(t, rootWord, p, x, y);
	setVaChild(i32, y, side, x);
	setVaParent(i32, x, y);
	if (aug) {
		setSubtreeMaxSize(f64, y, subtreeMaxSize(f64, x));
		setSubtreeMaxSize(f64, x, augmentCompute(t, x));
	}
}

/**
 * Link `z` (a record with no tree links) as the `side` child of `parent` (0: as the root), then
 * restore the red-black properties.
 */
export function rbInsert(t: VaTable, rootWord: number, z: number, parent: number, side: Side, aug: boolean): void {
	const f64 = t.f64;
	const i32 = t.i32;
	setVaChild(i32, z, L, 0);
	setVaChild(i32, z, R, 0);
	setVaParentColour(i32, z, parent, true);
	if (parent === 0) t.hdr[rootWord] = z;
	else setVaChild(i32, parent, side, z);
	if (aug) {
		initSubtreeMaxSize(f64, z);
		augmentPropagateGrow(t, z);
	}

	// CLRS RB-INSERT-FIXUP: z is red; the only possible violation is a red parent.
	while (true) {
		const p = vaParent(i32, z);
		if (p === 0 || !vaIsRed(i32, p)) break;
		const g = vaParent(i32, p); // exists: a red node is never the root
		const side: Side = vaLeft(i32, g) === p ? L : R;
		const other = opposite(side);
		const u = vaChild(i32, g, other);
		if (u !== 0 && vaIsRed(i32, u)) {
			setVaBlack(i32, p);
			setVaBlack(i32, u);
			setVaRed(i32, g);
			z = g;
			continue;
		}
		if (vaChild(i32, p, other) === z) {
			rotate(t, rootWord, p, side, aug);
			z = p;
		}
		setVaBlack(i32, vaParent(i32, z));
		setVaRed(i32, g);
		rotate(t, rootWord, g, other, aug);
		break;
	}
	setVaBlack(i32, t.hdr[rootWord]!);
}

/** Unlink `z` from the tree, then restore the red-black properties. */
export function rbErase(t: VaTable, rootWord: number, z: number, aug: boolean): void {
	const i32 = t.i32;
	const zl = vaLeft(i32, z);
	const zr = vaRight(i32, z);
	const zp = vaParent(i32, z);
	let x: number; // the node that moved into the removed position (may be nil)
	let xp: number; // its parent: tracked apart, since nil has no parent word
	let removedBlack: boolean;

	if (zl === 0 || zr === 0) {
		x = zl === 0 ? zr : zl;
		xp = zp;
		removedBlack = !vaIsRed(i32, z);
		replaceChild(t, rootWord, zp, z, x);
		if (x !== 0) setVaParent(i32, x, zp);
	} else {
		// y: z's successor, which has no left child, takes z's place and colour.
		let y = zr;
		while (vaLeft(i32, y) !== 0) y = vaLeft(i32, y);
		removedBlack = !vaIsRed(i32, y);
		x = vaRight(i32, y);
		if (y === zr) {
			xp = y;
		} else {
			xp = vaParent(i32, y);
			setVaChild(i32, xp, L, x);
			if (x !== 0) setVaParent(i32, x, xp);
			setVaChild(i32, y, R, zr);
			setVaParent(i32, zr, y);
		}
		setVaChild(i32, y, L, zl);
		setVaParent(i32, zl, y);
		replaceChild(t, rootWord, zp, z, y);
		setVaParentColour(i32, y, zp, vaIsRed(i32, z)); // z's parent and colour
	}
	clearVaLinks(i32, z);
	if (aug) augmentPropagateToRoot(t, xp);
	if (removedBlack) eraseFixup(t, rootWord, x, xp, aug);
}

/** CLRS RB-DELETE-FIXUP: `x` (child of `xp`, possibly nil) carries an extra black. */
function eraseFixup(t: VaTable, rootWord: number, x: number, xp: number, aug: boolean): void {
	const i32 = t.i32;
	while (xp !== 0 && (x === 0 || !vaIsRed(i32, x))) {
		const side: Side = vaLeft(i32, xp) === x ? L : R;
		const other = opposite(side);
		let w = vaChild(i32, xp, other); // non-nil: the other side is a black node taller
		if (vaIsRed(i32, w)) {
			setVaBlack(i32, w);
			setVaRed(i32, xp);
			rotate(t, rootWord, xp, side, aug);
			w = vaChild(i32, xp, other);
		}
		const wNear = vaChild(i32, w, side);
		const wFar = vaChild(i32, w, other);
		if (!vaIsRed(i32, wNear) && !vaIsRed(i32, wFar)) {
			setVaRed(i32, w);
			x = xp;
			xp = vaParent(i32, x);
			continue;
		}
		if (!vaIsRed(i32, wFar)) {
			setVaBlack(i32, wNear);
			setVaRed(i32, w);
			rotate(t, rootWord, w, other, aug);
			w = vaChild(i32, xp, other);
		}
		// w takes xp's colour, xp and w's far child turn black, rotate: the extra black is gone.
		setVaParentColour(i32, w, vaParent(i32, w), vaIsRed(i32, xp));
		setVaBlack(i32, xp);
		setVaBlack(i32, vaChild(i32, w, other));
		rotate(t, rootWord, xp, side, aug);
		x = t.hdr[rootWord]!;
		break;
	}
	setVaBlack(i32, x);
}

/** Lowest node of the tree, 0 when empty. */
export function rbFirst(t: VaTable, rootWord: number): number {
	return rbLeftmost(t, t.hdr[rootWord]!);
}

/** Lowest node of the subtree under `x` (0 for none). */
export function rbLeftmost(t: VaTable, x: number): number {
	const i32 = t.i32;
	if (x === 0) return 0;
	while (vaLeft(i32, x) !== 0) x = vaLeft(i32, x);
	return x;
}

/** In-order successor of `x`, 0 after the last. */
export function rbNext(t: VaTable, x: number): number {
	const i32 = t.i32;
	let y = vaRight(i32, x);
	if (y !== 0) {
		while (vaLeft(i32, y) !== 0) y = vaLeft(i32, y);
		return y;
	}
	let p = vaParent(i32, x);
	while (p !== 0 && vaRight(i32, p) === x) {
		x = p;
		p = vaParent(i32, p);
	}
	return p;
}

/** In-order predecessor of `x`, 0 before the first. */
export function rbPrev(t: VaTable, x: number): number {
	const i32 = t.i32;
	let y = vaLeft(i32, x);
	if (y !== 0) {
		while (vaRight(i32, y) !== 0) y = vaRight(i32, y);
		return y;
	}
	let p = vaParent(i32, x);
	while (p !== 0 && vaLeft(i32, p) === x) {
		x = p;
		p = vaParent(i32, p);
	}
	return p;
}

/** Link `z` as the in-order successor of `x`, which is in the tree. */
export function rbInsertAfter(t: VaTable, rootWord: number, x: number, z: number, aug: boolean): void {
	const i32 = t.i32;
	let y = vaRight(i32, x);
	if (y === 0) {
		rbInsert(t, rootWord, z, x, R, aug);
		return;
	}
	while (vaLeft(i32, y) !== 0) y = vaLeft(i32, y);
	rbInsert(t, rootWord, z, y, L, aug);
}
