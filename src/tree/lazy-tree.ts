/**
 * Lazy trees and purge trees (kernel vn->lazy.root and vn->purge_list), and the flush range
 * each node keeps for its lazy tree.
 *
 * A lazily freed area is linked into a node's lazy tree, a red-black tree keyed by vaStart
 * (lazyTreeAdd). A purge moves every node's lazy tree to the node's purge tree of its batch k
 * at once (detachLazyTrees: one root word and one count per node), flushes, and then takes
 * each of batch k's purge trees apart from its lowest area up into pools or free space
 * (purge-node.ts, with rbFirst and removeFirst here). A flush that fails puts the purge
 * trees back (undoDetach).
 *
 * Why from the lowest area, with no rebalancing: a purge tree is only searched, never added
 * to, while it lasts. The lowest node has no left child; splicing it out (its right subtree
 * takes its place) keeps a binary search tree valid and cannot make it taller, so lookups of
 * the areas still waiting stay O(log n), and each area leaves in O(1) amortized. Rising
 * addresses are also what merging into free space likes best: each area usually extends the
 * block the one before it made. (An erase with its fixups, in list order, made the no-cache
 * W0 loop's purge four times slower.)
 *
 * The flush range: NF_LAZY_MIN / NF_LAZY_MAX hold the lowest vaStart and highest vaEnd in a
 * node's lazy tree (+-Infinity when it is empty), widened as areas are added, so that a purge
 * learns the range covering its batch without walking the trees. This file is their only
 * writer: widenFlushRange, resetFlushRange.
 */
import { addF, journalCommit, put, putF, touch } from "../buffer/journal.ts";
import { insertVmapArea } from "./busy-tree.ts";
import { HDRF_BATCH_END, HDRF_BATCH_START, VA_LAZY, VA_LEFT, VA_MERGED, VA_RIGHT, VA_STATE } from "../buffer/layout.ts";
import {
	N_LAZY_HEAD,
	N_LAZY_LAST,
	N_LAZY_LOCK,
	N_LAZY_NR,
	N_LAZY_ROOT,
	N_POOL_LOCK,
	NF_LAZY_ADDED,
	NF_LAZY_MAX,
	NF_LAZY_MIN,
	NF_LAZY_PURGED,
	nodeBase,
	purgeHead,
	purgeTree,
} from "../buffer/node-layout.ts";
import type { Locks } from "../buffer/lock.ts";
import { PLAIN, rbFirst, rbInsert, rbLeftmost, rbPrev } from "./rbtree.ts";
import {
	clearVaLinks,
	setVaChild,
	setVaFlags,
	setVaNext,
	setVaEnd,
	setVaParent,
	setVaStart,
	vaEnd,
	vaFlags,
	vaNext,
	vaParent,
	vaRight,
	vaStart,
} from "../buffer/record.ts";
import type { VaTable } from "../buffer/va-table.ts";

/**
 * Empty node `v`'s flush range. Under v's lazy lock (or before anyone else can see the space).
 * The range, like LAZY_LAST, is derived from the lazy tree: not journaled (repair.ts recomputes it).
 */
export function resetFlushRange(t: VaTable, v: number): void {
	const f = nodeBase(v) >> 1;
	t.hdrF[f + NF_LAZY_MIN] = Infinity;
	t.hdrF[f + NF_LAZY_MAX] = -Infinity;
}

/** Widen node `v`'s flush range to cover [start, end). Under v's lazy lock. */
function widenFlushRange(t: VaTable, v: number, start: number, end: number): void {
	const f = nodeBase(v) >> 1;
	const hdrF = t.hdrF;
	if (start < hdrF[f + NF_LAZY_MIN]!) hdrF[f + NF_LAZY_MIN] = start;
	if (end > hdrF[f + NF_LAZY_MAX]!) hdrF[f + NF_LAZY_MAX] = end;
}

/**
 * Link record `va`, [start, end), which is in no tree and on no list, into node `v`'s lazy
 * tree, flagged lazy (keeping the vn_id in `flags`), and count its pages in vmapLazyNr. The
 * caller holds v's lazy lock, taken before it unlinked `va` from anywhere. Once linked, `va`
 * belongs to the purges: the caller may not read it again (a purge in another worker may merge
 * it away at once: the kernel's free-path ordering race). Seven arguments, not an object: this
 * is every free's path, which makes no JS object.
 */
export function lazyTreeAdd(t: VaTable, v: number, va: number, start: number, end: number, flags: number, pageInverse: number): void {
	const b = nodeBase(v);
	countLazy(t, v, start, end, pageInverse);
	setVaFlags(t.i32, va, VA_LAZY | (flags & ~VA_STATE));
	linkLazy(t, b, va, start); // published
	t.hdr[b + N_LAZY_NR]!++; // derived: not journaled (tree/repair.ts recounts)
}

/**
 * With one node, the lazy area of node `v` that [start, end) would merge into: the tree's
 * highest area when it ends at `start`, else its lowest when it starts at `end`; 0 when
 * neither, or with several nodes (a pool takes areas of exactly one size, and a purge sends
 * each lazy area to the pool of the node that asked for it). Merging on insert is what the
 * kernel's lazy tree did before per-node pools (96e2db456135): areas freed one after another
 * at rising addresses (lowest fit, freed in turn: the locked path's commonest case) are one
 * record and one tree node, with no insert, and one merge into free space at the purge.
 */
export function lazyMergeTarget(t: VaTable, v: number, start: number, end: number): number {
	if (t.nodes !== 1) return 0;
	const b = nodeBase(v);
	const f64 = t.f64;
	const last = t.hdr[b + N_LAZY_LAST]!;
	if (last !== 0 && vaEnd(f64, last) === start) return last;
	const head = t.hdr[b + N_LAZY_HEAD]!;
	return head !== 0 && vaStart(f64, head) === end ? head : 0;
}

/**
 * [start, end) joins node `v`'s lazy tree merged into `into` (lazyMergeTarget), flagged
 * VA_MERGED, and its pages count in vmapLazyNr; the caller gives back the record that held the
 * range, if any, under the free-space lock (the record free list's). The caller holds v's lazy
 * lock: `into` is in v's lazy tree, not yet a purge's (a purge takes the tree whole under it).
 */
export function lazyMergeInto(t: VaTable, v: number, into: number, start: number, end: number, pageInverse: number): void {
	countLazy(t, v, start, end, pageInverse);
	const f64 = t.f64;
	if (vaEnd(f64, into) === start) setVaEnd(f64, into, end);
	else setVaStart(f64, into, start); // the lowest still: the tree's order holds
	setVaFlags(t.i32, into, vaFlags(t.i32, into) | VA_MERGED);
}

/** [start, end) joins node `v`'s lazy tree: its pages count in vmapLazyNr, and the flush range covers it. */
function countLazy(t: VaTable, v: number, start: number, end: number, pageInverse: number): void {
	addF(t.hdrF, (nodeBase(v) >> 1) + NF_LAZY_ADDED, (end - start) * pageInverse);
	widenFlushRange(t, v, start, end);
}

/**
 * Link `va`, starting at `start`, into node base `b`'s lazy tree and its list: as the right
 * child of the tree's last record when it starts above it (that record has no right child: the
 * common case of lowest-fit areas freed in turn, no descent), after it on the list; as the left
 * child of the first record when it starts below it (no left child: areas a pool hands out,
 * highest first, freed in turn), at the list's head; else by a descent, after its in-order
 * predecessor. Only the list's links are journaled: the tree is rebuilt from the list on
 * recovery (repair.ts).
 */
function linkLazy(t: VaTable, b: number, va: number, start: number): void {
	const hdr = t.hdr;
	const i32 = t.i32;
	const last = hdr[b + N_LAZY_LAST]!;
	let prev: number;
	if (last === 0 || start > vaStart(t.f64, last)) {
		rbInsert(t, b + N_LAZY_ROOT, va, last, VA_RIGHT, PLAIN);
		hdr[b + N_LAZY_LAST] = va; // derived
		prev = last;
	} else if (start < vaStart(t.f64, hdr[b + N_LAZY_HEAD]!)) {
		rbInsert(t, b + N_LAZY_ROOT, va, hdr[b + N_LAZY_HEAD]!, VA_LEFT, PLAIN);
		prev = 0;
	} else {
		insertVmapArea(t, b + N_LAZY_ROOT, va, "lazy tree");
		prev = rbPrev(t, va);
	}
	if (prev === 0) {
		setVaNext(i32, va, hdr[b + N_LAZY_HEAD]!);
		put(hdr, b + N_LAZY_HEAD, va);
	} else {
		setVaNext(i32, va, vaNext(i32, prev));
		setVaNext(i32, prev, va);
	}
}

/**
 * Splice out `x`, the lowest node of the tree rooted at header word `rootWord`, with no
 * rebalancing: its right subtree takes its place; and take it off the head of the tree's list
 * (header word `headWord`, which the caller journaled in this critical section: touch()),
 * where it is. Returns the next lowest node (0: the tree is empty). `x` is left with no tree
 * links; its `next` is the caller's to set.
 */
export function removeFirst(t: VaTable, rootWord: number, headWord: number, x: number): number {
	const i32 = t.i32;
	t.hdr[headWord] = vaNext(i32, x); // journaled by the caller, once per section
	const p = vaParent(i32, x);
	const r = vaRight(i32, x);
	clearVaLinks(i32, x);
	if (p === 0) t.hdr[rootWord] = r;
	else setVaChild(i32, p, VA_LEFT, r); // the lowest node is a left child
	if (r === 0) return p;
	setVaParent(i32, r, p);
	return rbLeftmost(t, r);
}

/** What detachLazyTrees took: the batch one flush covers. */
export interface Batch {
	/** Nodes whose lazy tree became their purge tree. */
	nodes: number[];
	areas: number;
	bytes: number;
	/** The range covering every area of the batch (Infinity, -Infinity when empty). */
	start: number;
	end: number;
}

/**
 * Move every node's lazy tree to its purge tree of batch `k` (empty: the caller owns the
 * batch, which the last purge of it emptied), and gather the batch's flush range from the
 * nodes' bounds into the batch's header words. Each node is moved under its pool and lazy
 * locks, so that lookups and check() see every area in one tree or the other; the range
 * grows in the same critical section, so that it covers what was moved at every instant.
 */
export function detachLazyTrees(t: VaTable, locks: Locks, k: number, pageInverse: number): Batch {
	const batch: Batch = { nodes: [], areas: 0, bytes: 0, start: Infinity, end: -Infinity };
	putF(t.hdrF, HDRF_BATCH_START + k, Infinity);
	putF(t.hdrF, HDRF_BATCH_END + k, -Infinity);
	// A lock wait that throws leaves the nodes detached so far as the batch, their range written.
	for (let v = 0; v < t.nodes; v++) detachNode(t, locks, v, k, pageInverse, batch);
	return batch;
}

/** Move node `v`'s lazy tree to its purge tree of batch `k`, adding it to `batch`. */
function detachNode(t: VaTable, locks: Locks, v: number, k: number, pageInverse: number, batch: Batch): void {
	const b = nodeBase(v);
	const f = b >> 1;
	locks.acquire(b + N_POOL_LOCK);
	locks.acquireUnder(b + N_LAZY_LOCK, b + N_POOL_LOCK);
	const hdr = t.hdr;
	const hdrF = t.hdrF;
	const root = hdr[b + N_LAZY_ROOT]!;
	if (root !== 0) {
		const p = purgeTree(v, k);
		hdr[p] = root; // the tree is derived from its list (repair.ts), which moves journaled
		put(hdr, purgeHead(v, k), hdr[b + N_LAZY_HEAD]!);
		hdr[p + 1] = hdr[b + N_LAZY_NR]!; // derived, as every tree's count
		batch.areas += hdr[b + N_LAZY_NR]!;
		// No purge tree existed: what is lazy on this node is what the lazy tree holds.
		batch.bytes += (hdrF[f + NF_LAZY_ADDED]! - hdrF[f + NF_LAZY_PURGED]!) / pageInverse;
		if (hdrF[f + NF_LAZY_MIN]! < batch.start) batch.start = hdrF[f + NF_LAZY_MIN]!;
		if (hdrF[f + NF_LAZY_MAX]! > batch.end) batch.end = hdrF[f + NF_LAZY_MAX]!;
		// The batch's flush range, in the same step as the move: a death after it leaves a
		// range that covers every tree the batch holds (the adopter flushes it again).
		putF(hdrF, HDRF_BATCH_START + k, batch.start);
		putF(hdrF, HDRF_BATCH_END + k, batch.end);
		hdr[b + N_LAZY_ROOT] = 0;
		put(hdr, b + N_LAZY_HEAD, 0);
		hdr[b + N_LAZY_NR] = 0;
		hdr[b + N_LAZY_LAST] = 0;
		resetFlushRange(t, v);
		batch.nodes.push(v);
	}
	locks.release(b + N_LAZY_LOCK);
	locks.release(b + N_POOL_LOCK);
}

/**
 * The flush failed: each node's purge tree of batch `k` goes back into its lazy tree,
 * unflushed, lowest area first (O(m log n) for m areas, on this rare path only), and the flush
 * range is widened over the areas it brings back.
 */
export function undoDetach(t: VaTable, locks: Locks, k: number): void {
	for (let v = 0; v < t.nodes; v++) {
		const p = purgeTree(v, k);
		if (t.hdr[p] === 0) continue; // a peek: only the batch's owner fills it
		const b = nodeBase(v);
		locks.acquire(b + N_POOL_LOCK);
		locks.acquireUnder(b + N_LAZY_LOCK, b + N_POOL_LOCK);
		t.sync();
		const f64 = t.f64;
		const hdr = t.hdr;
		for (let va = rbFirst(t, p); va !== 0; ) {
			touch(hdr, purgeHead(v, k)); // each area is a section of its own (below)
			const next = removeFirst(t, p, purgeHead(v, k), va);
			const start = vaStart(f64, va);
			widenFlushRange(t, v, start, vaEnd(f64, va));
			linkLazy(t, b, va, start);
			hdr[p + 1]!--;
			hdr[b + N_LAZY_NR]!++;
			journalCommit(); // each area is a step: what it did stays (journal.ts)
			va = next;
		}
		locks.release(b + N_LAZY_LOCK);
		locks.release(b + N_POOL_LOCK);
	}
}
