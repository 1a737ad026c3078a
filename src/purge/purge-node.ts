/**
 * Moving areas back to where they can be handed out again: a node's purge tree into its pools
 * or free space (kernel purge_vmap_node), and pools into free space (decay_va_pool_node).
 *
 * Every move is made holding the locks of both structures the area leaves and joins, so that
 * check() and the listings, which take every lock, never see an area in neither. Work is done
 * in steps of PURGE_STEP areas per lock hold: allocators interleave with a long purge, and a
 * statistics reader waits at most one step.
 */
import { addF, touch } from "../buffer/journal.ts";
import { mergeOrAddVmapArea } from "../tree/free-space.ts";
import { HDR_FREE_LOCK, HDR_PURGE_LOCK, HDRF_TRIMS, BATCH_SKIP_POPULATE, HDR_BATCH_FLAGS } from "../buffer/layout.ts";
import {
	MAX_VA_SIZE_PAGES,
	N_POOL_NR,
	N_POOL_LOCK,
	purgeHead,
	purgeTree,
	NF_DECAYED,
	NF_LAZY_PURGED,
	NF_PURGED_AREAS,
	nodeBase,
	POOL_LEN,
} from "../buffer/node-layout.ts";
import { type Locks, seqBegin, seqEnd } from "../buffer/lock.ts";
import { decayCount, poolable, poolAdd, poolPop, poolWord, decodeVnId } from "../tree/nodes.ts";
import { removeFirst } from "../tree/lazy-tree.ts";
import { rbFirst } from "../tree/rbtree.ts";
import type { VaTable } from "../buffer/va-table.ts";
import { growVaEnd, setVaEnd, vaEnd, vaFlags, vaSize, vaStart } from "../buffer/record.ts";

/** Areas moved per lock hold. */
export const PURGE_STEP = 64;

/**
 * Whether purged area `va` of node `v` goes to v's pool: it was asked for through node v's
 * pool path (vn_id v), it fits a pool, and the running purge refills pools (not an overflow
 * purge or trim: kernel skip_populate, so that the retry finds the space in the free tree).
 */
function toPool(t: VaTable, va: number, v: number, k: number, pageInverse: number): boolean {
	const f64 = t.f64;
	const i32 = t.i32;
	if ((t.hdr[HDR_BATCH_FLAGS + k]! & BATCH_SKIP_POPULATE) !== 0) return false;
	if (decodeVnId(vaFlags(i32, va)) !== v) return false;
	return poolable(vaSize(f64, va) * pageInverse, pageInverse);
}

/**
 * One step of node `v`'s purge tree of batch `k`: up to PURGE_STEP areas, each into v's pool or
 * free space (areas that touch each other merged as one), and their pages subtracted from
 * vmapLazyNr in the same critical section (the backlog is never reported lower than it is: "mm:
 * vmalloc: Replace purge_lock spinlock with atomic refcount"). A step is one section: its journal
 * holds what up to PURGE_STEP areas wrote (a decay's pop and a merge on both sides are about 12
 * entries: the most seen in one section, purging and trimming 20,000 areas that merge on both
 * sides with two nodes, was 769 of JOURNAL_ENTRIES 1024). Areas leave the tree lowest first
 * (lazy-tree.ts: no rebalancing, and lookups stay O(log n) meanwhile). Only the batch's purge and
 * the one helper that took node v take this tree apart, so its lowest area may be peeked without
 * the lock. When that area goes to a pool the step holds only v's pool lock and stops at the first
 * area that does not; otherwise it also holds the free-space lock (taken first: the lock order).
 * Returns false when the tree is empty.
 */
export function purgeVmapNodeStep(t: VaTable, locks: Locks, v: number, k: number, pageInverse: number): boolean {
	t.sync();
	const b = nodeBase(v);
	const tree = purgeTree(v, k);
	if (t.hdr[tree] === 0) return false;
	const poolOnly = toPool(t, rbFirst(t, tree), v, k, pageInverse);
	if (poolOnly) locks.acquire(b + N_POOL_LOCK);
	else {
		locks.acquire(HDR_FREE_LOCK);
		locks.acquireUnder(b + N_POOL_LOCK, HDR_FREE_LOCK);
	}
	t.sync();
	const f64 = t.f64;
	const hdr = t.hdr;
	const hdrF = t.hdrF;
	let n = 0;
	let pages = 0;
	// Areas leave lowest first, so those that touch come in runs: a run grows in its first
	// record, off every tree until it is merged, once (the others' records are freed).
	let run = 0;
	let grown = false; // the run's end was journaled in this step (setVaEnd), then grows plainly
	touch(hdr, purgeHead(v, k)); // the list's head, journaled once for the step (removeFirst)
	for (let va = rbFirst(t, tree); va !== 0 && n < PURGE_STEP; n++) {
		const p = vaSize(f64, va) * pageInverse;
		const pool = toPool(t, va, v, k, pageInverse);
		if (poolOnly && !pool) break;
		const next = removeFirst(t, tree, purgeHead(v, k), va);
		hdr[tree + 1]!--; // derived: not journaled (tree/repair.ts recounts)
		if (!pool && run !== 0 && vaEnd(f64, run) === vaStart(f64, va)) {
			if (grown) growVaEnd(f64, run, vaEnd(f64, va));
			else setVaEnd(f64, run, vaEnd(f64, va));
			grown = true;
			t.freeSlot(va);
		} else {
			if (run !== 0) mergeOrAddVmapArea(t, run);
			run = 0;
			grown = false;
			if (pool) poolAdd(t, v, va, p);
			else run = va;
		}
		pages += p;
		va = next;
	}
	if (run !== 0) mergeOrAddVmapArea(t, run);
	addF(hdrF, (b >> 1) + NF_LAZY_PURGED, pages);
	addF(hdrF, (b >> 1) + NF_PURGED_AREAS, n);
	locks.release(b + N_POOL_LOCK);
	if (!poolOnly) locks.release(HDR_FREE_LOCK);
	return true;
}

/**
 * Decay node `v`'s pools (kernel decay_va_pool_node): from each pool, decayCount(len, full)
 * areas from its head go back to free space. The caller holds the purge mutex (the thread of "mm: vmalloc: Offload free_vmap_area_lock lock" and its
 * thread: decays must not run concurrently). Returns the areas and pages decayed.
 */
export function decayVaPoolNode(t: VaTable, locks: Locks, v: number, full: boolean): { areas: number; pages: number } {
	const b = nodeBase(v);
	let areas = 0;
	let decayedPages = 0;
	// Peeks: allocators only take from pools meanwhile (purges, which add, hold the purge mutex),
	// so once the pools looked at held every area the node had at the start, the rest are empty.
	let unseen = t.hdr[b + N_POOL_NR]!;
	for (let pages = 1; pages <= MAX_VA_SIZE_PAGES && unseen > 0; pages++) {
		const p = poolWord(v, pages);
		const len = t.hdr[p + POOL_LEN]!;
		if (len === 0) continue;
		unseen -= len;
		let left = -1;
		while (left !== 0) {
			locks.acquire(HDR_FREE_LOCK);
			locks.acquireUnder(b + N_POOL_LOCK, HDR_FREE_LOCK);
			t.sync();
			const hdr = t.hdr;
			if (left < 0) left = decayCount(hdr[p + POOL_LEN]!, full);
			let n = 0;
			for (; n < PURGE_STEP && left > 0; n++, left--) {
				const va = poolPop(t, v, p);
				if (va === 0) {
					left = 0; // allocators emptied it meanwhile
					break;
				}
				mergeOrAddVmapArea(t, va);
			}
			addF(t.hdrF, (b >> 1) + NF_DECAYED, n); // the step is one critical section, counted once
			areas += n;
			decayedPages += n * pages;
			locks.release(b + N_POOL_LOCK);
			locks.release(HDR_FREE_LOCK);
		}
	}
	return { areas, pages: decayedPages };
}

/** decayVaPoolNode()'s `full`: every area of every pool. */
const FULLY = true;

/**
 * Shrinker (kernel vmap_node_shrink_scan): decay every pool fully, under the purge mutex
 * (decays must not run concurrently: kernel fix ec05f51f1e65).
 */
export function trimPools(t: VaTable, locks: Locks, pageInverse: number): { areas: number; bytes: number } {
	locks.acquire(HDR_PURGE_LOCK);
	let areas = 0;
	let bytes = 0;
	try {
		for (let v = 0; v < t.nodes; v++) {
			const decayed = decayVaPoolNode(t, locks, v, FULLY);
			areas += decayed.areas;
			bytes += decayed.pages / pageInverse;
		}
		seqBegin(t.hdr);
		addF(t.hdrF, HDRF_TRIMS, 1);
		seqEnd(t.hdr);
	} finally {
		locks.release(HDR_PURGE_LOCK);
	}
	return { areas, bytes };
}
