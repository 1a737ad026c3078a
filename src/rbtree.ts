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
import type { VaTable } from "./va-table.ts";
import { REC_F64, REC_I32, VA_END, VA_LEFT, VA_PARENT, VA_RIGHT, VA_START, VA_SUBTREE_MAX } from "./layout.ts";

const L = VA_LEFT;
const R = VA_RIGHT;
const P = VA_PARENT;

export function rbParent(i32: Int32Array, x: number): number {
	return i32[x * REC_I32 + P]! >>> 1;
}

function isRed(i32: Int32Array, x: number): boolean {
	return (i32[x * REC_I32 + P]! & 1) === 1;
}

function setParent(i32: Int32Array, x: number, p: number): void {
	const w = x * REC_I32 + P;
	i32[w] = (p << 1) | (i32[w]! & 1);
}

function setRed(i32: Int32Array, x: number): void {
	i32[x * REC_I32 + P]! |= 1;
}

function setBlack(i32: Int32Array, x: number): void {
	if (x !== 0) i32[x * REC_I32 + P]! &= ~1;
}

/** The value subtreeMaxSize(x) must have, given correct values in its children. */
export function augmentCompute(t: VaTable, x: number): number {
	const f64 = t.f64;
	const i32 = t.i32;
	const fx = x * REC_F64;
	let m = f64[fx + VA_END]! - f64[fx + VA_START]!;
	const l = f64[i32[x * REC_I32 + L]! * REC_F64 + VA_SUBTREE_MAX]!;
	const r = f64[i32[x * REC_I32 + R]! * REC_F64 + VA_SUBTREE_MAX]!;
	if (l > m) m = l;
	if (r > m) m = r;
	return m;
}

/** Recompute subtreeMaxSize from `x` up, stopping at the first node whose value holds. */
export function augmentPropagate(t: VaTable, x: number): void {
	const f64 = t.f64;
	while (x !== 0) {
		const v = augmentCompute(t, x);
		const w = x * REC_F64 + VA_SUBTREE_MAX;
		if (f64[w] === v) break;
		f64[w] = v;
		x = rbParent(t.i32, x);
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
	const v = f64[x * REC_F64 + VA_END]! - f64[x * REC_F64 + VA_START]!;
	while (x !== 0) {
		const w = x * REC_F64 + VA_SUBTREE_MAX;
		if (f64[w]! >= v) break;
		f64[w] = v;
		x = i32[x * REC_I32 + P]! >>> 1;
	}
}

/** Recompute subtreeMaxSize on the whole path from `x` to the root. */
function augmentPropagateToRoot(t: VaTable, x: number): void {
	const f64 = t.f64;
	while (x !== 0) {
		f64[x * REC_F64 + VA_SUBTREE_MAX] = augmentCompute(t, x);
		x = rbParent(t.i32, x);
	}
}

/** Point whatever pointed at `old` (its parent's child link, or the root word) at `now`. */
function replaceChild(t: VaTable, rootWord: number, parent: number, old: number, now: number): void {
	const i32 = t.i32;
	if (parent === 0) t.hdr[rootWord] = now;
	else if (i32[parent * REC_I32 + L] === old) i32[parent * REC_I32 + L] = now;
	else i32[parent * REC_I32 + R] = now;
}

/**
 * Rotate `x` down to the `side` (L: left rotation, its right child comes up).
 * Keeps subtreeMaxSize right when the tree is augmented.
 */
function rotate(t: VaTable, rootWord: number, x: number, side: number, aug: boolean): void {
	const i32 = t.i32;
	const other = side === L ? R : L;
	const y = i32[x * REC_I32 + other]!;
	const inner = i32[y * REC_I32 + side]!;
	const p = rbParent(i32, x);
	i32[x * REC_I32 + other] = inner;
	if (inner !== 0) setParent(i32, inner, x);
	setParent(i32, y, p);
	replaceChild(t, rootWord, p, x, y);
	i32[y * REC_I32 + side] = x;
	setParent(i32, x, y);
	if (aug) {
		const f64 = t.f64;
		f64[y * REC_F64 + VA_SUBTREE_MAX] = f64[x * REC_F64 + VA_SUBTREE_MAX]!;
		f64[x * REC_F64 + VA_SUBTREE_MAX] = augmentCompute(t, x);
	}
}

/**
 * Link `z` (a record with no tree links) as the `left`/right child of `parent` (0: as the root),
 * then restore the red-black properties.
 */
export function rbInsert(t: VaTable, rootWord: number, z: number, parent: number, left: boolean, aug: boolean): void {
	const i32 = t.i32;
	const zw = z * REC_I32;
	i32[zw + L] = 0;
	i32[zw + R] = 0;
	i32[zw + P] = (parent << 1) | 1; // red
	if (parent === 0) t.hdr[rootWord] = z;
	else i32[parent * REC_I32 + (left ? L : R)] = z;
	if (aug) {
		t.f64[z * REC_F64 + VA_SUBTREE_MAX] = 0;
		augmentPropagateGrow(t, z);
	}

	// CLRS RB-INSERT-FIXUP: z is red; the only possible violation is a red parent.
	while (true) {
		const p = rbParent(i32, z);
		if (p === 0 || !isRed(i32, p)) break;
		const g = rbParent(i32, p); // exists: a red node is never the root
		const side = i32[g * REC_I32 + L] === p ? L : R;
		const other = side === L ? R : L;
		const u = i32[g * REC_I32 + other]!;
		if (u !== 0 && isRed(i32, u)) {
			setBlack(i32, p);
			setBlack(i32, u);
			setRed(i32, g);
			z = g;
			continue;
		}
		if (i32[p * REC_I32 + other] === z) {
			rotate(t, rootWord, p, side, aug);
			z = p;
		}
		const zp = rbParent(i32, z);
		setBlack(i32, zp);
		setRed(i32, g);
		rotate(t, rootWord, g, other, aug);
		break;
	}
	setBlack(i32, t.hdr[rootWord]!);
}

/** Unlink `z` from the tree, then restore the red-black properties. */
export function rbErase(t: VaTable, rootWord: number, z: number, aug: boolean): void {
	const i32 = t.i32;
	const zl = i32[z * REC_I32 + L]!;
	const zr = i32[z * REC_I32 + R]!;
	const zp = rbParent(i32, z);
	let x: number; // the node that moved into the removed position (may be nil)
	let xp: number; // its parent: tracked apart, since nil has no parent word
	let removedBlack: boolean;

	if (zl === 0 || zr === 0) {
		x = zl === 0 ? zr : zl;
		xp = zp;
		removedBlack = !isRed(i32, z);
		replaceChild(t, rootWord, zp, z, x);
		if (x !== 0) setParent(i32, x, zp);
	} else {
		// y: z's successor, which has no left child, takes z's place and colour.
		let y = zr;
		while (i32[y * REC_I32 + L] !== 0) y = i32[y * REC_I32 + L]!;
		removedBlack = !isRed(i32, y);
		x = i32[y * REC_I32 + R]!;
		if (y === zr) {
			xp = y;
		} else {
			xp = rbParent(i32, y);
			i32[xp * REC_I32 + L] = x;
			if (x !== 0) setParent(i32, x, xp);
			i32[y * REC_I32 + R] = zr;
			setParent(i32, zr, y);
		}
		i32[y * REC_I32 + L] = zl;
		setParent(i32, zl, y);
		replaceChild(t, rootWord, zp, z, y);
		i32[y * REC_I32 + P] = i32[z * REC_I32 + P]!; // z's parent and colour
	}
	const zw = z * REC_I32;
	i32[zw + L] = 0;
	i32[zw + R] = 0;
	i32[zw + P] = 0;
	if (aug) augmentPropagateToRoot(t, xp);
	if (removedBlack) eraseFixup(t, rootWord, x, xp, aug);
}

/** CLRS RB-DELETE-FIXUP: `x` (child of `xp`, possibly nil) carries an extra black. */
function eraseFixup(t: VaTable, rootWord: number, x: number, xp: number, aug: boolean): void {
	const i32 = t.i32;
	while (xp !== 0 && (x === 0 || !isRed(i32, x))) {
		const side = i32[xp * REC_I32 + L] === x ? L : R;
		const other = side === L ? R : L;
		let w = i32[xp * REC_I32 + other]!; // non-nil: the other side is a black node taller
		if (isRed(i32, w)) {
			setBlack(i32, w);
			setRed(i32, xp);
			rotate(t, rootWord, xp, side, aug);
			w = i32[xp * REC_I32 + other]!;
		}
		const wNear = i32[w * REC_I32 + side]!;
		const wFar = i32[w * REC_I32 + other]!;
		if (!isRed(i32, wNear) && !isRed(i32, wFar)) {
			setRed(i32, w);
			x = xp;
			xp = rbParent(i32, x);
			continue;
		}
		if (!isRed(i32, wFar)) {
			setBlack(i32, wNear);
			setRed(i32, w);
			rotate(t, rootWord, w, other, aug);
			w = i32[xp * REC_I32 + other]!;
		}
		// w takes xp's colour, xp and w's far child turn black, rotate: the extra black is gone.
		i32[w * REC_I32 + P] = (i32[w * REC_I32 + P]! & ~1) | (i32[xp * REC_I32 + P]! & 1);
		setBlack(i32, xp);
		setBlack(i32, i32[w * REC_I32 + other]!);
		rotate(t, rootWord, xp, side, aug);
		x = t.hdr[rootWord]!;
		break;
	}
	setBlack(i32, x);
}

/** Lowest node of the tree, 0 when empty. */
export function rbFirst(t: VaTable, rootWord: number): number {
	const i32 = t.i32;
	let x = t.hdr[rootWord]!;
	if (x === 0) return 0;
	while (i32[x * REC_I32 + L] !== 0) x = i32[x * REC_I32 + L]!;
	return x;
}

/** In-order successor of `x`, 0 after the last. */
export function rbNext(t: VaTable, x: number): number {
	const i32 = t.i32;
	let y = i32[x * REC_I32 + R]!;
	if (y !== 0) {
		while (i32[y * REC_I32 + L] !== 0) y = i32[y * REC_I32 + L]!;
		return y;
	}
	let p = rbParent(i32, x);
	while (p !== 0 && i32[p * REC_I32 + R] === x) {
		x = p;
		p = rbParent(i32, p);
	}
	return p;
}

/** In-order predecessor of `x`, 0 before the first. */
export function rbPrev(t: VaTable, x: number): number {
	const i32 = t.i32;
	let y = i32[x * REC_I32 + L]!;
	if (y !== 0) {
		while (i32[y * REC_I32 + R] !== 0) y = i32[y * REC_I32 + R]!;
		return y;
	}
	let p = rbParent(i32, x);
	while (p !== 0 && i32[p * REC_I32 + L] === x) {
		x = p;
		p = rbParent(i32, p);
	}
	return p;
}

/** Link `z` as the in-order successor of `x`, which is in the tree. */
export function rbInsertAfter(t: VaTable, rootWord: number, x: number, z: number, aug: boolean): void {
	const i32 = t.i32;
	let y = i32[x * REC_I32 + R]!;
	if (y === 0) {
		rbInsert(t, rootWord, z, x, false, aug);
		return;
	}
	while (i32[y * REC_I32 + L] !== 0) y = i32[y * REC_I32 + L]!;
	rbInsert(t, rootWord, z, y, true, aug);
}
