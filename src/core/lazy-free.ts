/**
 * Freeing (kernel free_vmap_area_noflush): a busy area leaves its busy tree for a lazy tree,
 * and stays out of use until a purge has flushed it. Also resize, whose shrink frees its tail
 * the same way, and the one lookup all of them start with (lookupBusyAt: the busy hash, O(1)).
 */
import { addF } from "../buffer/journal.ts";
import { hashFind, hashRemove } from "../tree/busy-hash.ts";
import { findVmapArea } from "../tree/busy-tree.ts";
import { corrupt, hex, shown, VmapError } from "../api/errors.ts";
import { mergeOrAddVmapArea, vaClip } from "../tree/free-space.ts";
import { HDR_FREE_LOCK, HDR_FREE_ROOT, VA_SMALL_BLOCK } from "../buffer/layout.ts";
import { N_BUSY_LOCK, N_LAZY_LOCK, N_BUSY_NR, N_BUSY_ROOT, NF_BUSY_BYTES, NF_FREES, nodeBase } from "../buffer/node-layout.ts";
import { notAnArea } from "./locate.ts";
import { NOT_SMALL } from "../small/cache.ts";
import { decodeVnId } from "../tree/nodes.ts";
import { lazyMergeInto, lazyMergeTarget, lazyTreeAdd } from "../tree/lazy-tree.ts";
import { workPosted } from "../purge/work.ts";
import { PLAIN, rbErase } from "../tree/rbtree.ts";
import { setVaEnd, setVaRange, setVaTag, vaEnd, vaFlags, vaOwner, vaStart, vaTag } from "../buffer/record.ts";
import type { SpaceState } from "./state.ts";

/**
 * The busy area that starts exactly at `addr`, looked up in the busy hash of node base `b`
 * (s.busyNodeBase(addr)), under its busy lock, which this takes. Returns the record with the
 * lock still held, or 0 with the lock released.
 */
export function lookupBusyAt(s: SpaceState, b: number, addr: number): number {
	const t = s.table;
	s.locks.acquire(b + N_BUSY_LOCK);
	t.sync(); // another handle may have grown the table
	const va = hashFind(t, b, addr);
	if (va !== 0) return va;
	s.locks.release(b + N_BUSY_LOCK);
	return 0;
}

/** lookupBusyAt() for a caller holding the FREE lock, after `prepare`: a failure releases that lock too. */
function lookupBusyUnderFree(s: SpaceState, b: number, addr: number, prepare?: () => void): number {
	try {
		prepare?.();
		return lookupBusyAt(s, b, addr);
	} catch (e) {
		s.locks.release(HDR_FREE_LOCK);
		throw e;
	}
}

function validateAddress(addr: number, op: string): void {
	if (!Number.isSafeInteger(addr)) throw new VmapError("EINVAL", `Cannot ${op}: address must be a whole number, got ${shown(addr)}`);
}

/**
 * Free the area that starts at `addr`, lazily, in the words of `op`. An area whose tag id is
 * one of `refused` is not freed and that tag id is returned (0 otherwise): the test and the
 * free happen under one hold of the busy lock, for layers that mark areas (the heap).
 */
export function freeVmapArea(s: SpaceState, addr: number, op: string, refused: readonly number[]): number {
	s.locks.ensureAlive();
	validateAddress(addr, op);
	if (workPosted(s.table)) s.purger.help();
	// An area is in the busy tree of its start's node: one tree to search.
	const v = s.addrNode(addr);
	const b = nodeBase(v);
	const va = lookupBusyAt(s, b, addr);
	if (va === 0) notAnArea(s, addr, op);
	const tag = vaTag(s.table.i32, va);
	if (tag !== 0 && refused.includes(tag)) {
		s.locks.release(b + N_BUSY_LOCK);
		return tag;
	}
	const lazy = freeVmapAreaNoflush(s, v, va);
	s.locks.release(b + N_BUSY_LOCK);
	s.purger.drain.afterFree(lazy);
	return 0;
}

/**
 * Free the busy area at `addr` if handle `owner` allocated it, it is no small-area block and it
 * does not carry the tag `mark` (queued for a deferred free, which frees it): an ended
 * handle's area (WatchOptions.freeAreas). `release` is told first, under the area's busy
 * lock, so that nothing reuses the area before the layer above is done with it.
 */
export function freeOwnedArea(
	s: SpaceState,
	addr: number,
	owner: number,
	mark: number,
	release?: (addr: number, size: number) => void,
): void {
	const v = s.addrNode(addr);
	const b = nodeBase(v);
	const va = lookupBusyAt(s, b, addr);
	if (va === 0) return;
	const i32 = s.table.i32;
	let lazy = -1;
	if (vaOwner(i32, va) === owner && (vaFlags(i32, va) & VA_SMALL_BLOCK) === 0 && (mark === 0 || vaTag(i32, va) !== mark)) {
		release?.(addr, vaEnd(s.table.f64, va) - addr);
		lazy = freeVmapAreaNoflush(s, v, va);
	}
	s.locks.release(b + N_BUSY_LOCK);
	if (lazy >= 0) s.purger.drain.afterFree(lazy);
}

/**
 * Busy record `va` of node `v` (whose busy lock the caller holds) leaves its busy tree for a
 * lazy tree: its vn_id's node's if it has one, else v's (returned). That tree's lazy lock is taken before
 * anything changes (a wait that fails releases the busy lock too). Everything needed from the
 * area is read before it is published in the lazy tree: once there, a purge in another worker
 * may merge it away ("mm/vmalloc: Keep a separate lazy-free list": the free path must not
 * touch an area after it is visible to purges).
 */
function freeVmapAreaNoflush(s: SpaceState, v: number, va: number, outer2 = -1, before?: () => void): number {
	const t = s.table;
	const f64 = t.f64;
	const i32 = t.i32;
	const b = nodeBase(v);
	const start = vaStart(f64, va);
	const end = vaEnd(f64, va);
	const flags = vaFlags(i32, va) & ~VA_SMALL_BLOCK; // a block's area leaves as a plain area
	const lazy = lazyNode(flags, v);
	s.locks.acquireUnder(nodeBase(lazy) + N_LAZY_LOCK, b + N_BUSY_LOCK, outer2);
	before?.();
	leaveBusyTree(s, b, va);
	// A merge leaves the record with nothing to hold: this handle keeps it for its next
	// allocation (core/kept-record.ts), or it goes back to the record free list, which takes the
	// free-space lock: taken only if free now, since it comes before the busy lock in the lock order.
	const into = lazyMergeTarget(t, lazy, start, end);
	const freeHeld = outer2 === HDR_FREE_LOCK;
	const keep = into !== 0 && !freeHeld && t.canKeep();
	if (into !== 0 && (freeHeld || keep || s.locks.tryAcquire(HDR_FREE_LOCK))) {
		lazyMergeInto(t, lazy, into, start, end, s.pageInverse);
		if (keep) t.keep(va);
		else {
			t.freeSlot(va);
			if (!freeHeld) s.locks.release(HDR_FREE_LOCK); // commits: the area is lazy, whole
		}
	} else lazyTreeAdd(t, lazy, va, start, end, flags, s.pageInverse);
	s.locks.release(nodeBase(lazy) + N_LAZY_LOCK);
	return lazy;
}

/**
 * Free a small-area block's area (small/). Lazily, as one area, so that the ordinary purge
 * flushes its dirty slots before the range is handed out again; or, when `flushed` (every slot
 * FREE: never handed out, or freed and covered by a completed flush), straight back to free
 * space, as a purge would put it once flushed, since nothing in it waits for a flush. The FREE
 * lock (the block index's and free space's), the busy lock and, for a lazy free, the lazy lock
 * are all taken before anything changes; then `unindex` takes the block out of the index, and
 * the area leaves its busy tree.
 */
export function freeBlockArea(s: SpaceState, addr: number, unindex: () => void, flushed: boolean): void {
	const locks = s.locks;
	locks.acquire(HDR_FREE_LOCK);
	const v = s.addrNode(addr);
	const b = nodeBase(v);
	const va = lookupBusyUnderFree(s, b, addr);
	if (va === 0) {
		locks.release(HDR_FREE_LOCK);
		corrupt(`small-area block at ${hex(addr)} has no busy area`);
	}
	let lazy = -1;
	if (flushed) {
		unindex();
		leaveBusyTree(s, b, va);
		mergeOrAddVmapArea(s.table, va);
	} else lazy = freeVmapAreaNoflush(s, v, va, HDR_FREE_LOCK, unindex); // a wait that fails releases both
	locks.release(b + N_BUSY_LOCK);
	locks.release(HDR_FREE_LOCK);
	if (lazy >= 0) s.purger.drain.afterFree(lazy);
}

/** Busy record `va` of the node at base `b` (its busy lock held) leaves the busy hash and tree, counted as a free. */
function leaveBusyTree(s: SpaceState, b: number, va: number): void {
	const t = s.table;
	const start = vaStart(t.f64, va);
	hashRemove(t, b, va, start);
	rbErase(t, b + N_BUSY_ROOT, va, PLAIN);
	t.hdr[b + N_BUSY_NR]!--; // derived, as NF_BUSY_BYTES: not journaled (tree/repair.ts recounts)
	t.hdrF[(b >> 1) + NF_BUSY_BYTES]! -= vaEnd(t.f64, va) - start;
	addF(t.hdrF, (b >> 1) + NF_FREES, 1);
}

/** The node whose lazy tree takes an area with `flags` found at node `v`: its vn_id's if it has one. */
function lazyNode(flags: number, v: number): number {
	const vn = decodeVnId(flags);
	return vn >= 0 ? vn : v;
}

/** EINVAL unless `size` is a whole number of pages and [addr, addr + size) ends inside the space. */
function validateResizeSize(s: SpaceState, addr: number, size: number): void {
	const pages = typeof size === "number" ? size * s.pageInverse : NaN;
	if (!(pages >= 1 && Math.floor(pages) === pages && Number.isSafeInteger(size) && addr + size <= s.end)) {
		const what = typeof size === "number" ? shown(size) : `${typeof size} ${shown(size)}`;
		throw new VmapError(
			"EINVAL",
			`Cannot resize ${hex(addr)}: size must be a whole number of pages (a positive multiple of ${s.pageSize}) ending inside the space (at most ${hex(s.end)}), got ${what}`,
		);
	}
}

/**
 * Change the size of the busy area that starts at `addr`, in place (see VmapSpace.resize).
 * The tail of a shrink is freed lazily; a grow takes the head of the free block right after
 * the area, or nothing changes and it returns false.
 */
export function resizeVmapArea(s: SpaceState, addr: number, size: number): boolean {
	const locks = s.locks;
	locks.ensureAlive();
	validateAddress(addr, "resize");
	validateResizeSize(s, addr, size);
	const inBlock = s.small?.resize(addr, size) ?? NOT_SMALL; // a small area: in place within its size class
	if (inBlock !== NOT_SMALL) return inBlock;
	const t = s.table;
	if (workPosted(t)) s.purger.help();
	const b = s.busyNodeBase(addr);
	locks.acquire(HDR_FREE_LOCK);
	// The lazy tail of a shrink takes a record: running out fails before any change.
	const va = lookupBusyUnderFree(s, b, addr, () => t.reserve(1));
	if (va === 0) {
		locks.release(HDR_FREE_LOCK);
		notAnArea(s, addr, "resize");
	}
	const f64 = t.f64; // after reserve() and the lookup's sync(), which may replace the views
	const i32 = t.i32;
	const end = vaEnd(f64, va);
	const newEnd = addr + size;
	let done = true;
	let lazy = -1;
	if (newEnd < end) {
		// The tail leaves the area under the busy lock and joins a lazy tree under the lazy
		// lock, taken first: check(), holding everything, sees it in one place or the other.
		const flags = vaFlags(i32, va);
		lazy = lazyNode(flags, s.addrNode(newEnd));
		locks.acquireUnder(nodeBase(lazy) + N_LAZY_LOCK, b + N_BUSY_LOCK, HDR_FREE_LOCK);
		setVaEnd(f64, va, newEnd);
		t.hdrF[(b >> 1) + NF_BUSY_BYTES]! -= end - newEnd; // derived
		const into = lazyMergeTarget(t, lazy, newEnd, end);
		if (into !== 0) lazyMergeInto(t, lazy, into, newEnd, end, s.pageInverse);
		else {
			const tail = t.allocSlot();
			setVaRange(f64, tail, newEnd, end);
			setVaTag(i32, tail, vaTag(i32, va));
			lazyTreeAdd(t, lazy, tail, newEnd, end, flags, s.pageInverse);
		}
		locks.release(nodeBase(lazy) + N_LAZY_LOCK);
	} else if (newEnd > end) {
		const fb = findVmapArea(t, HDR_FREE_ROOT, end);
		if (fb !== 0 && vaStart(f64, fb) === end && vaEnd(f64, fb) >= newEnd) {
			const usedUp = vaClip(t, fb, end, newEnd - end);
			if (usedUp !== 0) t.freeSlot(usedUp);
			setVaEnd(f64, va, newEnd);
			t.hdrF[(b >> 1) + NF_BUSY_BYTES]! += newEnd - end; // derived
		} else done = false;
	}
	locks.release(b + N_BUSY_LOCK);
	locks.release(HDR_FREE_LOCK);
	if (lazy >= 0) s.purger.drain.afterFree(lazy);
	return done;
}

/**
 * Set the tag of the busy area that starts at `addr` to tag id `tag`, unless it has that tag
 * already. Returns false when no busy area starts there or it had the tag: a test-and-set
 * under the area's busy lock, for layers that mark areas (the heap's deferred frees).
 */
export function markVmapArea(s: SpaceState, addr: number, tag: number): boolean {
	s.locks.ensureAlive();
	const b = s.busyNodeBase(addr);
	const va = lookupBusyAt(s, b, addr);
	if (va === 0) return false;
	const set = vaTag(s.table.i32, va) !== tag;
	if (set) setVaTag(s.table.i32, va, tag);
	s.locks.release(b + N_BUSY_LOCK);
	return set;
}
