/**
 * Lazy lists and purge lists (kernel vn->lazy and vn->purge_list), the address trees beside
 * them (kernel vn->lazy.root), and the flush range each node keeps for its lazy list.
 *
 * A lazily freed area is pushed on a node's lazy list (lazyListAdd). A purge moves every
 * node's lazy list to the node's purge list of its batch k at once (detachLazyLists),
 * flushes, and then purges each of batch k's purge lists into pools or free space
 * (purge-node.ts). A flush that fails puts the purge lists back (undoDetach).
 *
 * The flush range: NF_LAZY_MIN / NF_LAZY_MAX hold the lowest vaStart and highest vaEnd on a
 * node's lazy list (+-Infinity when it is empty), widened as areas are added, so that a purge
 * learns the range covering its batch without walking the lists. This file is their only
 * writer: widenFlushRange, resetFlushRange.
 */
import { insertVmapArea } from "./busy-tree.ts";
import {
	N_LAZY_HEAD,
	N_LAZY_ROOT,
	N_LAZY_LOCK,
	N_LAZY_NR,
	N_POOL_LOCK,
	HDRF_BATCH_END,
	HDRF_BATCH_START,
	NF_LAZY_ADDED,
	NF_LAZY_MAX,
	NF_LAZY_MIN,
	NF_LAZY_PURGED,
	nodeBase,
	purgeList,
	purgeRoot,
	VA_LAZY,
	VA_STATE,
} from "./layout.ts";
import type { Locks } from "./lock.ts";
import { setVaFlags, setVaNext, vaEnd, vaNext, vaStart } from "./record.ts";
import type { VaTable } from "./va-table.ts";

/** Empty node `v`'s flush range. Under v's lazy lock (or before anyone else can see the space). */
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
 * Push record `va`, [start, end), which is in no tree and on no list, on node `v`'s lazy list
 * and into its lazy tree, flagged lazy (keeping the vn_id in `flags`), and count its pages in
 * vmapLazyNr. The caller
 * holds v's lazy lock, taken before it unlinked `va` from anywhere. Once pushed, `va` belongs to the purges: the caller may not read it again
 * (a purge in another worker may merge it away at once: the kernel's free-path ordering race).
 */
export function lazyListAdd(t: VaTable, v: number, va: number, start: number, end: number, flags: number, pageInverse: number): void {
	const i32 = t.i32;
	const b = nodeBase(v);
	const hdr = t.hdr;
	t.hdrF[(b >> 1) + NF_LAZY_ADDED]! += (end - start) * pageInverse;
	widenFlushRange(t, v, start, end);
	setVaFlags(i32, va, VA_LAZY | (flags & ~VA_STATE));
	insertVmapArea(t, b + N_LAZY_ROOT, va, "lazy tree");
	setVaNext(i32, va, hdr[b + N_LAZY_HEAD]!);
	hdr[b + N_LAZY_HEAD] = va; // published
	hdr[b + N_LAZY_NR]!++;
}

/** What detachLazyLists took: the batch one flush covers. */
export interface Batch {
	/** Nodes whose lazy list became their purge list. */
	nodes: number[];
	areas: number;
	bytes: number;
	/** The range covering every area of the batch (Infinity, -Infinity when empty). */
	start: number;
	end: number;
}

/**
 * Move every node's lazy list to its purge list of batch `k` (empty: the caller owns the
 * batch, which the last purge of it emptied), and gather the batch's flush range from the
 * nodes' bounds into the batch's header words. Each node is moved under its pool and lazy
 * locks, so that check() sees every area on one list or the other.
 */
export function detachLazyLists(t: VaTable, locks: Locks, k: number, pageInverse: number): Batch {
	const batch: Batch = { nodes: [], areas: 0, bytes: 0, start: Infinity, end: -Infinity };
	try {
		for (let v = 0; v < t.nodes; v++) detachNode(t, locks, v, k, pageInverse, batch);
	} finally {
		// Also when a lock wait threw: the nodes detached so far are the batch.
		t.hdrF[HDRF_BATCH_START + k] = batch.start;
		t.hdrF[HDRF_BATCH_END + k] = batch.end;
	}
	return batch;
}

/** Move node `v`'s lazy list to its purge list of batch `k`, adding it to `batch`. */
function detachNode(t: VaTable, locks: Locks, v: number, k: number, pageInverse: number, batch: Batch): void {
	const b = nodeBase(v);
	const f = b >> 1;
	locks.acquire(b + N_POOL_LOCK);
	locks.acquireUnder(b + N_LAZY_LOCK, b + N_POOL_LOCK);
	const hdr = t.hdr;
	const hdrF = t.hdrF;
	const head = hdr[b + N_LAZY_HEAD]!;
	if (head !== 0) {
		const p = purgeList(v, k);
		hdr[p] = head;
		hdr[p + 1] = hdr[b + N_LAZY_NR]!;
		hdr[purgeRoot(v, k)] = hdr[b + N_LAZY_ROOT]!;
		batch.areas += hdr[b + N_LAZY_NR]!;
		// No purge list existed: what is lazy on this node is what the lazy list holds.
		batch.bytes += (hdrF[f + NF_LAZY_ADDED]! - hdrF[f + NF_LAZY_PURGED]!) / pageInverse;
		if (hdrF[f + NF_LAZY_MIN]! < batch.start) batch.start = hdrF[f + NF_LAZY_MIN]!;
		if (hdrF[f + NF_LAZY_MAX]! > batch.end) batch.end = hdrF[f + NF_LAZY_MAX]!;
		hdr[b + N_LAZY_HEAD] = 0;
		hdr[b + N_LAZY_NR] = 0;
		hdr[b + N_LAZY_ROOT] = 0;
		resetFlushRange(t, v);
		batch.nodes.push(v);
	}
	locks.release(b + N_LAZY_LOCK);
	locks.release(b + N_POOL_LOCK);
}

/**
 * The flush failed: each node's purge list of batch `k` goes back on the front of its lazy
 * list, unflushed, each area into the lazy tree, and the flush range is widened over the areas
 * it brings back. O(m log n) for m areas, on this rare path only.
 */
export function undoDetach(t: VaTable, locks: Locks, k: number): void {
	for (let v = 0; v < t.nodes; v++) {
		const p = purgeList(v, k);
		if (t.hdr[p] === 0) continue; // a peek: only the batch's owner fills it
		const b = nodeBase(v);
		locks.acquire(b + N_POOL_LOCK);
		locks.acquireUnder(b + N_LAZY_LOCK, b + N_POOL_LOCK);
		t.sync();
		const f64 = t.f64;
		const i32 = t.i32;
		const hdr = t.hdr;
		let tail = 0;
		// The purge tree is dropped whole: each insert below relinks a record of it. Lookups
		// of it hold the pool lock, which this holds.
		hdr[purgeRoot(v, k)] = 0;
		for (let va = hdr[p]!; va !== 0; va = vaNext(i32, va)) {
			tail = va;
			widenFlushRange(t, v, vaStart(f64, va), vaEnd(f64, va));
			insertVmapArea(t, b + N_LAZY_ROOT, va, "lazy tree");
		}
		if (tail !== 0) {
			setVaNext(i32, tail, hdr[b + N_LAZY_HEAD]!);
			hdr[b + N_LAZY_HEAD] = hdr[p]!;
			hdr[b + N_LAZY_NR]! += hdr[p + 1]!;
		}
		hdr[p] = 0;
		hdr[p + 1] = 0;
		locks.release(b + N_LAZY_LOCK);
		locks.release(b + N_POOL_LOCK);
	}
}
