/**
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
import { VA_LEFT, VA_RIGHT } from "./layout.ts";
import {
	clearVaLinks,
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
} from "./record.ts";
import type { VaTable } from "./va-table.ts";

const L = VA_LEFT;
const R = VA_RIGHT;

function opposite(side: Side): Side {
	return side === L ? R : L;
}

/** The value subtreeMaxSize(x) must have, given correct values in its children. */
export function augmentCompute(t: VaTable, x: number): number {
	let m = vaSize(t, x);
	const l = subtreeMaxSize(t, vaLeft(t, x));
	const r = subtreeMaxSize(t, vaRight(t, x));
	if (l > m) m = l;
	if (r > m) m = r;
	return m;
}

/** Recompute subtreeMaxSize from `x` up, stopping at the first node whose value holds. */
export function augmentPropagate(t: VaTable, x: number): void {
	while (x !== 0) {
		const v = augmentCompute(t, x);
		if (subtreeMaxSize(t, x) === v) break;
		setSubtreeMaxSize(t, x, v);
		x = vaParent(t, x);
	}
}

/**
 * After block `x` grew (or was linked as a leaf): raise subtreeMaxSize on the path up to its
 * size. Growth can only raise values, so no sibling need be read, and the walk stops at the
 * first ancestor already at least as large.
 */
export function augmentPropagateGrow(t: VaTable, x: number): void {
	const v = vaSize(t, x);
	while (x !== 0) {
		if (subtreeMaxSize(t, x) >= v) break;
		setSubtreeMaxSize(t, x, v);
		x = vaParent(t, x);
	}
}

/** Recompute subtreeMaxSize on the whole path from `x` to the root. */
function augmentPropagateToRoot(t: VaTable, x: number): void {
	while (x !== 0) {
		setSubtreeMaxSize(t, x, augmentCompute(t, x));
		x = vaParent(t, x);
	}
}

/** Point whatever pointed at `old` (its parent's child link, or the root word) at `now`. */
function replaceChild(t: VaTable, rootWord: number, parent: number, old: number, now: number): void {
	if (parent === 0) t.hdr[rootWord] = now;
	else setVaChild(t, parent, vaLeft(t, parent) === old ? L : R, now);
}

/**
 * Rotate `x` down to the `side` (L: left rotation, its right child comes up).
 * Keeps subtreeMaxSize right when the tree is augmented.
 */
function rotate(t: VaTable, rootWord: number, x: number, side: Side, aug: boolean): void {
	const other = opposite(side);
	const y = vaChild(t, x, other);
	const inner = vaChild(t, y, side);
	const p = vaParent(t, x);
	setVaChild(t, x, other, inner);
	if (inner !== 0) setVaParent(t, inner, x);
	setVaParent(t, y, p);
	replaceChild(t, rootWord, p, x, y);
	setVaChild(t, y, side, x);
	setVaParent(t, x, y);
	if (aug) {
		setSubtreeMaxSize(t, y, subtreeMaxSize(t, x));
		setSubtreeMaxSize(t, x, augmentCompute(t, x));
	}
}

/**
 * Link `z` (a record with no tree links) as the `left`/right child of `parent` (0: as the root),
 * then restore the red-black properties.
 */
export function rbInsert(t: VaTable, rootWord: number, z: number, parent: number, left: boolean, aug: boolean): void {
	setVaChild(t, z, L, 0);
	setVaChild(t, z, R, 0);
	setVaParentColour(t, z, parent, true);
	if (parent === 0) t.hdr[rootWord] = z;
	else setVaChild(t, parent, left ? L : R, z);
	if (aug) {
		setSubtreeMaxSize(t, z, 0);
		augmentPropagateGrow(t, z);
	}

	// CLRS RB-INSERT-FIXUP: z is red; the only possible violation is a red parent.
	while (true) {
		const p = vaParent(t, z);
		if (p === 0 || !vaIsRed(t, p)) break;
		const g = vaParent(t, p); // exists: a red node is never the root
		const side: Side = vaLeft(t, g) === p ? L : R;
		const other = opposite(side);
		const u = vaChild(t, g, other);
		if (u !== 0 && vaIsRed(t, u)) {
			setVaBlack(t, p);
			setVaBlack(t, u);
			setVaRed(t, g);
			z = g;
			continue;
		}
		if (vaChild(t, p, other) === z) {
			rotate(t, rootWord, p, side, aug);
			z = p;
		}
		setVaBlack(t, vaParent(t, z));
		setVaRed(t, g);
		rotate(t, rootWord, g, other, aug);
		break;
	}
	setVaBlack(t, t.hdr[rootWord]!);
}

/** Unlink `z` from the tree, then restore the red-black properties. */
export function rbErase(t: VaTable, rootWord: number, z: number, aug: boolean): void {
	const zl = vaLeft(t, z);
	const zr = vaRight(t, z);
	const zp = vaParent(t, z);
	let x: number; // the node that moved into the removed position (may be nil)
	let xp: number; // its parent: tracked apart, since nil has no parent word
	let removedBlack: boolean;

	if (zl === 0 || zr === 0) {
		x = zl === 0 ? zr : zl;
		xp = zp;
		removedBlack = !vaIsRed(t, z);
		replaceChild(t, rootWord, zp, z, x);
		if (x !== 0) setVaParent(t, x, zp);
	} else {
		// y: z's successor, which has no left child, takes z's place and colour.
		let y = zr;
		while (vaLeft(t, y) !== 0) y = vaLeft(t, y);
		removedBlack = !vaIsRed(t, y);
		x = vaRight(t, y);
		if (y === zr) {
			xp = y;
		} else {
			xp = vaParent(t, y);
			setVaChild(t, xp, L, x);
			if (x !== 0) setVaParent(t, x, xp);
			setVaChild(t, y, R, zr);
			setVaParent(t, zr, y);
		}
		setVaChild(t, y, L, zl);
		setVaParent(t, zl, y);
		replaceChild(t, rootWord, zp, z, y);
		setVaParentColour(t, y, zp, vaIsRed(t, z)); // z's parent and colour
	}
	clearVaLinks(t, z);
	if (aug) augmentPropagateToRoot(t, xp);
	if (removedBlack) eraseFixup(t, rootWord, x, xp, aug);
}

/** CLRS RB-DELETE-FIXUP: `x` (child of `xp`, possibly nil) carries an extra black. */
function eraseFixup(t: VaTable, rootWord: number, x: number, xp: number, aug: boolean): void {
	while (xp !== 0 && (x === 0 || !vaIsRed(t, x))) {
		const side: Side = vaLeft(t, xp) === x ? L : R;
		const other = opposite(side);
		let w = vaChild(t, xp, other); // non-nil: the other side is a black node taller
		if (vaIsRed(t, w)) {
			setVaBlack(t, w);
			setVaRed(t, xp);
			rotate(t, rootWord, xp, side, aug);
			w = vaChild(t, xp, other);
		}
		const wNear = vaChild(t, w, side);
		const wFar = vaChild(t, w, other);
		if (!vaIsRed(t, wNear) && !vaIsRed(t, wFar)) {
			setVaRed(t, w);
			x = xp;
			xp = vaParent(t, x);
			continue;
		}
		if (!vaIsRed(t, wFar)) {
			setVaBlack(t, wNear);
			setVaRed(t, w);
			rotate(t, rootWord, w, other, aug);
			w = vaChild(t, xp, other);
		}
		// w takes xp's colour, xp and w's far child turn black, rotate: the extra black is gone.
		setVaParentColour(t, w, vaParent(t, w), vaIsRed(t, xp));
		setVaBlack(t, xp);
		setVaBlack(t, vaChild(t, w, other));
		rotate(t, rootWord, xp, side, aug);
		x = t.hdr[rootWord]!;
		break;
	}
	setVaBlack(t, x);
}

/** Lowest node of the tree, 0 when empty. */
export function rbFirst(t: VaTable, rootWord: number): number {
	let x = t.hdr[rootWord]!;
	if (x === 0) return 0;
	while (vaLeft(t, x) !== 0) x = vaLeft(t, x);
	return x;
}

/** In-order successor of `x`, 0 after the last. */
export function rbNext(t: VaTable, x: number): number {
	let y = vaRight(t, x);
	if (y !== 0) {
		while (vaLeft(t, y) !== 0) y = vaLeft(t, y);
		return y;
	}
	let p = vaParent(t, x);
	while (p !== 0 && vaRight(t, p) === x) {
		x = p;
		p = vaParent(t, p);
	}
	return p;
}

/** In-order predecessor of `x`, 0 before the first. */
export function rbPrev(t: VaTable, x: number): number {
	let y = vaLeft(t, x);
	if (y !== 0) {
		while (vaRight(t, y) !== 0) y = vaRight(t, y);
		return y;
	}
	let p = vaParent(t, x);
	while (p !== 0 && vaLeft(t, p) === x) {
		x = p;
		p = vaParent(t, p);
	}
	return p;
}

/** Link `z` as the in-order successor of `x`, which is in the tree. */
export function rbInsertAfter(t: VaTable, rootWord: number, x: number, z: number, aug: boolean): void {
	let y = vaRight(t, x);
	if (y === 0) {
		rbInsert(t, rootWord, z, x, false, aug);
		return;
	}
	while (vaLeft(t, y) !== 0) y = vaLeft(t, y);
	rbInsert(t, rootWord, z, y, true, aug);
}
