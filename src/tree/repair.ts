/**
 * Tree repair, after a recovery rolled back a dead holder's critical section (buffer/recover.ts).
 *
 * The undo journal restores every word a section changed except what a tree is made of: child
 * and parent links, colours, subtreeMaxSize, root words, and the counts and bounds of what a
 * tree holds (free blocks and bytes, busy areas and bytes, lazy and purge areas, a lazy tree's
 * last record and flush range, free slots). The tree code writes those without journaling
 * them (record.ts), because every tree has a list beside it whose links are journaled: the
 * address-ordered free list, a node's busy hash, the lazy tree's and each purge tree's list in
 * address order. A repair rebuilds each tree the dead holder's locks guarded from its list:
 * - the shape, balanced, from the records in address order (sorted, for the busy hash's);
 * - parents, by a walk from the root; subtreeMaxSize of the free tree, bottom up;
 * - colours of a red-black tree by a dynamic programme (any shape that has a colouring gets
 *   one): for each node, the black heights its subtree can have with a black root (B) and with
 *   a red root (R), as bit masks: B(nil) = {0}, R(nil) = {}; B(x) = {h + 1 : h in
 *   (B|R)(left) and (B|R)(right)}; R(x) = B(left) and B(right). The root takes a black height
 *   from B(root), then each child, top down, black when its parent's choice allows, else red;
 * - the counts and bounds, by counting.
 *
 * The result depends only on the lists and ranges, never on the words it overwrites: whatever
 * subset of its unjournaled writes the dead holder made, the repair ends the same, and a repair
 * cut short by its own thread's death can run again.
 */
import {
	BATCH_SLOTS,
	HDR_FREE_HEAD,
	HDR_FREE_LOCK,
	HDR_FREE_NR,
	HDR_FREE_ROOT,
	HDR_SLOT_FREE,
	HDR_SLOT_FREE_NR,
	HDRF_FREE_BYTES,
	VA_LEFT,
	VA_RIGHT,
} from "../buffer/layout.ts";
import {
	N_BUSY_LOCK,
	N_BUSY_NR,
	N_BUSY_ROOT,
	N_LAZY_HEAD,
	N_LAZY_LAST,
	N_LAZY_LOCK,
	N_LAZY_NR,
	N_LAZY_ROOT,
	N_POOL_LOCK,
	NF_BUSY_BYTES,
	NF_LAZY_MAX,
	NF_LAZY_MIN,
	nodeBase,
	purgeHead,
	purgeTree,
} from "../buffer/node-layout.ts";
import {
	setVaChild,
	setSubtreeMaxSize,
	setVaParentColour,
	subtreeMaxSize,
	vaIsRed,
	vaLeft,
	vaNext,
	vaRight,
	vaEnd,
	vaSize,
	vaStart,
} from "../buffer/record.ts";
import { hashMembers } from "./busy-hash.ts";
import type { VaTable } from "../buffer/va-table.ts";

/**
 * A tree to repair: its root word, whether it is red-black, whether it keeps subtreeMaxSize,
 * the header words that count its records (Int32) and bytes (Float64; -1: none), and its
 * records, in address order, from the list beside it.
 */
interface TreeRoot {
	rootWord: number;
	balanced: boolean;
	aug: boolean;
	countWord: number;
	bytesWord: number;
	members: () => number[] | undefined;
	/** For a lazy tree: the words of its last record (Int32) and of its flush range's bounds (Float64). */
	bounds?: { last: number; min: number; max: number };
}

/** The trees lock `word` guards (none for the space's other locks and the heap's). */
export function treesGuardedBy(t: VaTable, word: number): TreeRoot[] {
	const hdr = t.hdr;
	if (word === HDR_FREE_LOCK) {
		const members = () => listed(t, hdr[HDR_FREE_HEAD]!);
		return [{ rootWord: HDR_FREE_ROOT, balanced: true, aug: true, countWord: HDR_FREE_NR, bytesWord: HDRF_FREE_BYTES, members }];
	}
	for (let v = 0; v < t.nodes; v++) {
		const b = nodeBase(v);
		if (word === b + N_BUSY_LOCK) {
			const members = () => byStart(t, hashMembers(t, b));
			return [
				{
					rootWord: b + N_BUSY_ROOT,
					balanced: true,
					aug: false,
					countWord: b + N_BUSY_NR,
					bytesWord: (b >> 1) + NF_BUSY_BYTES,
					members,
				},
			];
		}
		if (word === b + N_LAZY_LOCK) {
			const members = () => listed(t, hdr[b + N_LAZY_HEAD]!);
			const bounds = { last: b + N_LAZY_LAST, min: (b >> 1) + NF_LAZY_MIN, max: (b >> 1) + NF_LAZY_MAX };
			return [{ rootWord: b + N_LAZY_ROOT, balanced: true, aug: false, countWord: b + N_LAZY_NR, bytesWord: -1, members, bounds }];
		}
		if (word !== b + N_POOL_LOCK) continue;
		// Purge trees are taken apart lowest first without rebalancing: no colours to keep.
		const trees: TreeRoot[] = [];
		for (let k = 0; k < BATCH_SLOTS; k++) {
			const members = () => listed(t, hdr[purgeHead(v, k)]!);
			trees.push({ rootWord: purgeTree(v, k), balanced: false, aug: false, countWord: purgeTree(v, k) + 1, bytesWord: -1, members });
		}
		return trees;
	}
	return [];
}

/**
 * Rebuild every tree lock `word` guards from its list, with its counts. False when a list is
 * not one (a loop, a record out of the table, addresses out of order): the rollback did not
 * give back a valid state, and the caller reports the space as lost.
 */
export function repairTrees(t: VaTable, word: number): boolean {
	for (const tree of treesGuardedBy(t, word)) if (!repairTree(t, tree)) return false;
	return word !== HDR_FREE_LOCK || recountSlots(t);
}

/** HDR_SLOT_FREE_NR, derived as the trees' counts: the slot free list's length (under the free-space lock). */
function recountSlots(t: VaTable): boolean {
	let n = 0;
	for (let va = t.hdr[HDR_SLOT_FREE]!; va !== 0; va = vaNext(t.i32, va)) if (va < 0 || va >= t.capacity || ++n > t.capacity) return false;
	t.hdr[HDR_SLOT_FREE_NR] = n;
	return true;
}

function repairTree(t: VaTable, { rootWord, balanced, aug, countWord, bytesWord, members, bounds }: TreeRoot): boolean {
	const m = members();
	if (m === undefined) return false;
	t.hdr[rootWord] = build(t.i32, m, 0, m.length - 1);
	const root = t.hdr[rootWord]!;
	const order = root === 0 ? [] : postOrder(t, root);
	if (order === undefined) return false;
	const i32 = t.i32;
	const f64 = t.f64;
	t.hdr[countWord] = order.length;
	if (bytesWord >= 0) t.hdrF[bytesWord] = order.reduce((sum, x) => sum + vaSize(f64, x), 0);
	if (bounds !== undefined) recomputeBounds(t, order, bounds);
	if (root === 0) return true;
	// Bottom up: subtreeMaxSize, and the masks of black heights (bit h: black height h).
	// Slot 0 is nil: black height 0 with a black root, none with a red one.
	const black = new Int32Array(t.capacity);
	const red = new Int32Array(t.capacity);
	black[0] = 1;
	for (const x of order) {
		const l = vaLeft(i32, x);
		const r = vaRight(i32, x);
		if (aug) setSubtreeMaxSize(f64, x, Math.max(vaSize(f64, x), subtreeMaxSize(f64, l), subtreeMaxSize(f64, r)));
		black[x] = ((black[l]! | red[l]!) & (black[r]! | red[r]!)) << 1;
		red[x] = black[l]! & black[r]!;
	}
	// Top down (order reversed: parents first): parents, and colours. `height` holds the black
	// height chosen for each record.
	const rootMask = balanced ? black[root]! : 1;
	if (rootMask === 0) return false;
	const height = black; // a record's mask is not read again once its parent chose for it
	height[root] = 31 - Math.clz32(rootMask & -rootMask);
	setVaParentColour(i32, root, 0, false);
	for (let n = order.length - 1; n >= 0; n--) {
		const x = order[n]!;
		const xRed = vaIsRed(i32, x);
		const h = height[x]!;
		if (
			!(
				linkChild(i32, x, vaLeft(i32, x), xRed, h, balanced, height, red) &&
				linkChild(i32, x, vaRight(i32, x), xRed, h, balanced, height, red)
			)
		)
			return false;
	}
	return true;
}

/**
 * Child `c` of `x` (black height `h`, red or not) gets its parent link and a colour: a black
 * parent wants h - 1 below it, black if `c`'s subtree allows, else red; a red parent wants h in
 * a black child. `height[c]` holds `c`'s black-root mask on entry, its chosen height on return.
 */
function linkChild(
	i32: Int32Array,
	x: number,
	c: number,
	xRed: boolean,
	h: number,
	balanced: boolean,
	height: Int32Array,
	red: Int32Array,
): boolean {
	if (c === 0) return true;
	if (!balanced) {
		setVaParentColour(i32, c, x, false);
		return true;
	}
	const want = xRed ? h : h - 1;
	if (want < 0) return false;
	const asBlack = ((height[c]! >>> want) & 1) === 1;
	if (!asBlack && (xRed || ((red[c]! >>> want) & 1) === 0)) return false;
	setVaParentColour(i32, c, x, !asBlack);
	height[c] = want;
	return true;
}

/** A lazy tree's last record and flush range (lowest start, highest end; +-Infinity when empty), from its records. */
function recomputeBounds(t: VaTable, order: number[], bounds: { last: number; min: number; max: number }): void {
	const f64 = t.f64;
	let last = 0;
	let min = Infinity;
	let max = -Infinity;
	for (const x of order) {
		if (last === 0 || vaStart(f64, x) > vaStart(f64, last)) last = x;
		min = Math.min(min, vaStart(f64, x));
		max = Math.max(max, vaEnd(f64, x));
	}
	t.hdr[bounds.last] = last;
	t.hdrF[bounds.min] = min;
	t.hdrF[bounds.max] = max;
}

/**
 * Link `m[lo..hi]` (in address order) as a balanced tree, its middle record the root; returns
 * the root (0 for none). Its height differs from a perfect tree's by at most one, so a
 * red-black colouring exists, and repairTree() finds it with the parents.
 */
function build(i32: Int32Array, m: number[], lo: number, hi: number): number {
	if (lo > hi) return 0;
	const mid = (lo + hi) >>> 1;
	const x = m[mid]!;
	setVaChild(i32, x, VA_LEFT, build(i32, m, lo, mid - 1));
	setVaChild(i32, x, VA_RIGHT, build(i32, m, mid + 1, hi));
	return x;
}

/** The records of the list from `head` through their `next` links, which must rise by address; undefined if they do not, or loop. */
function listed(t: VaTable, head: number): number[] | undefined {
	const out: number[] = [];
	for (let va = head; va !== 0; va = vaNext(t.i32, va)) {
		if (va < 0 || va >= t.capacity || out.length >= t.capacity) return undefined;
		out.push(va);
	}
	return rising(t, out) ? out : undefined;
}

/** `m` sorted by start; undefined if undefined, or if two records start at one address. */
function byStart(t: VaTable, m: number[] | undefined): number[] | undefined {
	if (m === undefined) return undefined;
	const f64 = t.f64;
	m.sort((a, b) => vaStart(f64, a) - vaStart(f64, b));
	return rising(t, m) ? m : undefined;
}

function rising(t: VaTable, m: number[]): boolean {
	for (let i = 1; i < m.length; i++) if (!(vaStart(t.f64, m[i - 1]!) < vaStart(t.f64, m[i]!))) return false;
	return true;
}

/** The tree's records, children before parents; undefined if the links are not a tree. */
function postOrder(t: VaTable, root: number): number[] | undefined {
	const i32 = t.i32;
	const seen = new Uint8Array(t.capacity);
	const out: number[] = [];
	const stack: number[] = [root];
	while (stack.length > 0) {
		const x = stack.pop()!;
		if (x <= 0 || x >= t.capacity || seen[x] === 1) return undefined;
		seen[x] = 1;
		out.push(x);
		const l = vaLeft(i32, x);
		const r = vaRight(i32, x);
		if (l !== 0) stack.push(l);
		if (r !== 0) stack.push(r);
	}
	return out.reverse(); // node, right subtree, left subtree, reversed: every child before its parent
}
