/**
 * The cache's flush policy (lazy free, kept for small areas): a freed small area turns DIRTY
 * and is handed out again only after a flush covering its block has completed. The cache
 * batches those flushes: it calls the handle's flush hook over the range of its dirty blocks
 * once they hold flushAt() bytes, then the dirty slots turn FREE. A block with no live slot
 * beyond one spare per size class retires (owner.ts): it leaves with every slot FREE, so its
 * area goes straight back to free space.
 *
 * Scale: a flush and its completion visit the blocks on this handle's dirty list, not every
 * block it owns. At a million live small areas of random sizes a handle owns some 35 k blocks
 * and flushes every lazyMaxPages of frees, with about 11 k blocks dirty; walking all of them
 * three times per flush (remote frees, FLUSHING, reclaim) took about a quarter of an
 * operation's time (98 of 400 ns in a CPU profile of that loop). Each walk misses the cache on
 * nearly every block, so a handle with no hook skips FLUSHING (in a profile of 2 M operations
 * at a million live areas: 183 ms in the two walks, 146 ms in the one).
 */
import { crashPoint } from "../buffer/journal.ts";
import { HDR_SMALL_FLUSHES, HDRF_LAZY_MAX_PAGES } from "../buffer/layout.ts";
import type { CacheState } from "./cache-state.ts";
import {
	bitWord,
	D_CLASS,
	blockStartOf,
	D_DIRTY_NR,
	D_LISTED,
	hasLive,
	D_WORDS,
	DIRTY,
	FLUSHING,
	FREE,
	popcount,
	slotBytesOf,
} from "./descriptor.ts";
import { retire, takeRemoteFrees } from "./owner.ts";

/** Dirty bytes that make a flush due: a quarter of this handle's blocks, at least one block, at most lazyMaxPages. */
export function flushAt(c: CacheState): number {
	const lazyMax = c.t.hdrF[HDRF_LAZY_MAX_PAGES]! * c.pageSize;
	return Math.max(c.blockBytes, Math.min(lazyMax, (c.mine.length * c.blockBytes) / 4));
}

/**
 * Flush this handle's dirty slots: take remote frees in, mark every DIRTY slot FLUSHING, call
 * the flush hook once over the range of the blocks holding them, and when it has completed
 * turn them FREE. An asynchronous hook leaves them FLUSHING until it settles; one that throws
 * or rejects leaves them DIRTY for the next flush. At most one flush is in flight per handle.
 * A handle with no hook has nothing to wait for: its DIRTY slots turn FREE at once.
 */
export function flushCache(c: CacheState): void {
	if (c.inFlight || c.max === 0) return;
	takeRemoteFrees(c);
	if (c.t.hdrF[c.dirtyBytes] === 0) return;
	Atomics.add(c.t.hdr, HDR_SMALL_FLUSHES, 1);
	if (c.hook === undefined) {
		// Nothing to wait for: the DIRTY slots turn FREE at once, in one walk of the dirty
		// list instead of two (at a million live areas each walk misses the cache on every block).
		takeDirtyList(c);
		reclaim(c, DIRTY);
		return;
	}
	const [lo, hi] = startFlushing(c);
	let pending: void | PromiseLike<void>;
	c.inFlight = true; // a hook that allocates does not flush again from inside
	try {
		pending = c.hook(lo, hi);
	} catch {
		c.inFlight = false;
		unflush(c); // the slots stay dirty: the next flush covers them
		return;
	}
	c.inFlight = false;
	if (pending === null || typeof pending !== "object" || typeof pending.then !== "function") {
		reclaim(c, FLUSHING);
		return;
	}
	c.inFlight = true;
	pending.then(
		() => {
			c.inFlight = false;
			if (c.max !== 0) reclaim(c, FLUSHING);
		},
		() => {
			c.inFlight = false;
			if (c.max !== 0) unflush(c);
		},
	);
}

/** The dirty list becomes the flushing list (the empty flushing list the dirty one: no flush is in flight); returns it. */
function takeDirtyList(c: CacheState): number[] {
	const flushing = c.dirtyList;
	c.dirtyList = c.flushing;
	c.flushing = flushing;
	return flushing;
}

/** The dirty list becomes the flushing list, its DIRTY slots FLUSHING; returns the range of its blocks. */
function startFlushing(c: CacheState): [lo: number, hi: number] {
	const i32 = c.t.i32;
	let lo = Infinity;
	let hi = -Infinity;
	for (const d of takeDirtyList(c)) {
		const words = i32[d + D_WORDS]!;
		crashPoint();
		for (let w = 0; w < words; w++) i32[bitWord(d, FLUSHING, w)] = i32[bitWord(d, DIRTY, w)]!;
		const start = blockStartOf(c.t.f64, d);
		if (start < lo) lo = start;
		if (start + c.blockBytes > hi) hi = start + c.blockBytes;
	}
	return [lo, hi];
}

/** The flush failed: FLUSHING slots are plain DIRTY again, their blocks on the dirty list. */
function unflush(c: CacheState): void {
	const i32 = c.t.i32;
	for (const d of c.flushing) {
		const words = i32[d + D_WORDS]!;
		for (let w = 0; w < words; w++) i32[bitWord(d, FLUSHING, w)] = 0;
		c.dirtyList.push(d);
	}
	c.flushing.length = 0;
}

/**
 * The flush completed: the slots of bitmap `from` (FLUSHING, or DIRTY when there was no hook
 * to wait for) turn FREE; a block that it left empty is kept as its class's spare (of
 * whichever tag: refill.ts retags it) or, when the class has one, retires. A block dirtied
 * again meanwhile goes back on the dirty list. Only a completed flush empties a block (a free
 * leaves its slot DIRTY), so the blocks it covered are the only new candidates.
 */
function reclaim(c: CacheState, from: typeof FLUSHING | typeof DIRTY): void {
	const i32 = c.t.i32;
	const retired: number[] = [];
	for (const d of c.flushing) {
		const n = flushedSlots(c, d, from);
		const q = c.queueOf(d);
		if (n !== 0) {
			crashPoint();
			i32[d + D_DIRTY_NR]! -= n;
			c.addGauges(-n, -n, slotBytesOf(c.t.f64, d));
			if (d === c.cur[q])
				c.hint[q] = 0; // the freed slots may lie below the word it looked at last
			else if (i32[d + D_LISTED] === 0) {
				// Listed once: a block that gets FREE slots at every flush would otherwise pile up in
				// the list (measured: 123 k entries for 35 k blocks after 8 M operations, growing).
				i32[d + D_LISTED] = 1;
				c.avail[q]!.push(d);
			}
		}
		if (i32[d + D_DIRTY_NR] !== 0) c.dirtyList.push(d);
		else if (d !== c.cur[q] && !hasLive(i32, d)) {
			const k = i32[d + D_CLASS]!;
			if (isSpare(c, c.spareD[k]!) && c.spareD[k] !== d) retired.push(d);
			else c.spareD[k] = d;
		}
	}
	c.flushing.length = 0;
	for (const d of retired) retire(c, d);
}

/** Block `d`'s slots of bitmap `from` (FLUSHING, or DIRTY itself) turn FREE, and leave DIRTY and FLUSHING; returns how many. */
function flushedSlots(c: CacheState, d: number, from: typeof FLUSHING | typeof DIRTY): number {
	const i32 = c.t.i32;
	const words = i32[d + D_WORDS]!;
	let n = 0;
	for (let w = 0; w < words; w++) {
		const f = i32[bitWord(d, from, w)]!;
		if (f === 0) continue;
		crashPoint();
		i32[bitWord(d, FREE, w)]! |= f;
		crashPoint();
		i32[bitWord(d, DIRTY, w)]! &= ~f;
		if (from === FLUSHING) {
			crashPoint();
			i32[bitWord(d, FLUSHING, w)] = 0;
		}
		n += popcount(f);
	}
	return n;
}

/** Whether block `d` (0: none) is an empty block kept aside: not its queue's current one, nothing live or dirty. */
export function isSpare(c: CacheState, d: number): boolean {
	const i32 = c.t.i32;
	return d !== 0 && d !== c.cur[c.queueOf(d)] && i32[d + D_DIRTY_NR] === 0 && !hasLive(i32, d);
}
