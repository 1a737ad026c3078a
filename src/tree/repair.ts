/**
 * Tree repair, after a recovery rolled back a dead holder's critical section (buffer/recover.ts).
 *
 * The undo journal restores every word a section changed except what a tree is made of: child
 * and parent links, colours, subtreeMaxSize, root words, and the counts and bounds of what a
 * tree holds (free blocks and bytes, busy areas and bytes, lazy and purge areas, a lazy tree's
 * last record and flush range, free slots, a node's allocations: its frees and busy areas). The
 * tree code writes those without journaling them (record.ts), because every tree has a list
 * beside it whose links are journaled: the
 * address-ordered free list, a node's busy hash, the lazy tree's and each purge tree's list in
 * address order. A repair rebuilds each tree the dead holder's locks guarded from its list: the
 * records in address order (sorted, for the busy hash's) linked from the middle out, so that
 * every level is full but the deepest, whose records are red (a valid red-black colouring);
 * parents and subtreeMaxSize as they are linked; the counts and bounds by counting.
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
	NF_ALLOCS,
	NF_BUSY_BYTES,
	NF_FREES,
	NF_LAZY_MAX,
	NF_LAZY_MIN,
	nodeBase,
	purgeHead,
	purgeTree,
} from "../buffer/node-layout.ts";
import { setVaChild, setSubtreeMaxSize, setVaParentColour, subtreeMaxSize, vaNext, vaEnd, vaSize, vaStart } from "../buffer/record.ts";
import { hashMembers } from "./busy-hash.ts";
import type { VaTable } from "../buffer/va-table.ts";

/**
 * A tree to repair: its root word, whether it keeps subtreeMaxSize, the header words that
 * count its records (Int32) and bytes (Float64; -1: none), and its records, in address order,
 * from the list beside it.
 */
interface TreeRoot {
	rootWord: number;
	aug: boolean;
	countWord: number;
	bytesWord: number;
	members: () => number[] | undefined;
	/** For a lazy tree: the words of its last record (Int32) and of its flush range's bounds (Float64). */
	bounds?: { last: number; min: number; max: number };
	/**
	 * For a busy tree: its node's allocations count (Float64), derived as the tree's count: every
	 * busy area was counted once allocated and not yet freed (frees, journaled under the same busy
	 * lock, in Float64 word `frees`).
	 */
	allocs?: { word: number; frees: number };
}

/** The trees lock `word` guards (none for the space's other locks and the heap's). */
export function treesGuardedBy(t: VaTable, word: number): TreeRoot[] {
	const hdr = t.hdr;
	if (word === HDR_FREE_LOCK) {
		const members = () => listed(t, hdr[HDR_FREE_HEAD]!);
		return [{ rootWord: HDR_FREE_ROOT, aug: true, countWord: HDR_FREE_NR, bytesWord: HDRF_FREE_BYTES, members }];
	}
	for (let v = 0; v < t.nodes; v++) {
		const b = nodeBase(v);
		if (word === b + N_BUSY_LOCK) {
			const members = () => byStart(t, hashMembers(t, b));
			return [
				{
					rootWord: b + N_BUSY_ROOT,
					aug: false,
					countWord: b + N_BUSY_NR,
					bytesWord: (b >> 1) + NF_BUSY_BYTES,
					members,
					allocs: { word: (b >> 1) + NF_ALLOCS, frees: (b >> 1) + NF_FREES },
				},
			];
		}
		if (word === b + N_LAZY_LOCK) {
			const members = () => listed(t, hdr[b + N_LAZY_HEAD]!);
			const bounds = { last: b + N_LAZY_LAST, min: (b >> 1) + NF_LAZY_MIN, max: (b >> 1) + NF_LAZY_MAX };
			return [{ rootWord: b + N_LAZY_ROOT, aug: false, countWord: b + N_LAZY_NR, bytesWord: -1, members, bounds }];
		}
		if (word !== b + N_POOL_LOCK) continue;
		const trees: TreeRoot[] = [];
		for (let k = 0; k < BATCH_SLOTS; k++) {
			const members = () => listed(t, hdr[purgeHead(v, k)]!);
			trees.push({ rootWord: purgeTree(v, k), aug: false, countWord: purgeTree(v, k) + 1, bytesWord: -1, members });
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

function repairTree(t: VaTable, { rootWord, aug, countWord, bytesWord, members, bounds, allocs }: TreeRoot): boolean {
	const m = members();
	if (m === undefined) return false;
	const { i32, f64 } = t;
	// Built from the middle out, every level is full but the deepest: its records are red, all
	// others black (31 - clz32(n + 1) is floor(log2(n + 1)), the number of full levels).
	const redDepth = 31 - Math.clz32(m.length + 1);
	const build = (lo: number, hi: number, parent: number, depth: number): number => {
		if (lo > hi) return 0;
		const mid = (lo + hi) >>> 1;
		const x = m[mid]!;
		const l = build(lo, mid - 1, x, depth + 1);
		const r = build(mid + 1, hi, x, depth + 1);
		setVaChild(i32, x, VA_LEFT, l);
		setVaChild(i32, x, VA_RIGHT, r);
		setVaParentColour(i32, x, parent, depth >= redDepth);
		if (aug) setSubtreeMaxSize(f64, x, Math.max(vaSize(f64, x), subtreeMaxSize(f64, l), subtreeMaxSize(f64, r)));
		return x;
	};
	t.hdr[rootWord] = build(0, m.length - 1, 0, 0);
	t.hdr[countWord] = m.length;
	if (bytesWord >= 0) t.hdrF[bytesWord] = m.reduce((sum, x) => sum + vaSize(f64, x), 0);
	if (allocs !== undefined) t.hdrF[allocs.word] = t.hdrF[allocs.frees]! + m.length;
	if (bounds !== undefined) {
		// A lazy tree's last record and flush range (+-Infinity when empty); its areas do not overlap.
		const last = m[m.length - 1] ?? 0;
		t.hdr[bounds.last] = last;
		t.hdrF[bounds.min] = m.length > 0 ? vaStart(f64, m[0]!) : Infinity;
		t.hdrF[bounds.max] = last !== 0 ? vaEnd(f64, last) : -Infinity;
	}
	return true;
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
