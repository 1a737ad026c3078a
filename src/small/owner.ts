/**
 * Ownership and remote frees (mimalloc's thread-free lists, in bitmaps). A free from another
 * handle is one Atomics.or on the block's REMOTE bitmap, counted in the block (REMOTE_NR) and
 * in its owner's handle entry (HANDLE_REMOTE); the owner takes REMOTE into DIRTY before it
 * flushes, looking through its blocks only when that count moved.
 *
 * A block whose owner closed or ended is owned by nobody (OWNER 0): each free into it takes it
 * for a moment (CAS on OWNER), repairs what a dead owner may have left half-written
 * (repair.ts), takes remote frees in, and the free that empties it retires it.
 * A retired block leaves the index, and its area goes back through the ordinary lazy free.
 */
import { VmapError } from "../api/errors.ts";
import { HANDLE_REMOTE, HANDLE_WORDS, HDR_FREE_LOCK, REC_I32 } from "../buffer/layout.ts";
import { vaOwner } from "../buffer/record.ts";
import { clearAndFree, eachBlock, indexRemove } from "./block-index.ts";
import type { CacheState } from "./cache-state.ts";
import { hasRemote, repairBlock } from "./repair.ts";
import {
	bitmap,
	blockStartOf,
	D_AREA,
	D_CLASS,
	D_DIRTY_NR,
	D_LISTED,
	D_LIVE_NR,
	D_OWNER,
	D_REMOTE_NR,
	D_RUN,
	D_WORDS,
	DIRTY,
	LIVE,
	MARK,
	popcount,
	REMOTE,
	slotBytesOf,
} from "./descriptor.ts";

/**
 * A free into another handle's block (or nobody's), at word `remote` of its REMOTE bitmap: an
 * atomic OR, counted in the block and in its owner's handle entry; the owner takes it in at its
 * next flush. False, changing nothing, when the bit was set already (a double free). The count
 * goes up after the bit is set, so an owner that reads the count before it looks through its
 * blocks sees the bit then, or the count moved at its next flush.
 */
export function remoteFree(c: CacheState, d: number, remote: number, bit: number): boolean {
	const i32 = c.t.i32;
	if ((Atomics.or(i32, remote, bit) & bit) !== 0) return false;
	Atomics.add(i32, d + D_REMOTE_NR, 1);
	const owner = Atomics.load(i32, d + D_OWNER);
	if (owner === 0) adopt(c, d);
	else Atomics.add(c.t.handles, (owner - 1) * HANDLE_WORDS + HANDLE_REMOTE, 1);
	return true;
}

/** Take the frees other handles made into this handle's blocks into DIRTY (none counted since the last look: nothing to do). */
export function takeRemoteFrees(c: CacheState): void {
	const t = c.t;
	const seen = Atomics.load(t.handles, c.remoteWord);
	if (seen === c.remoteSeen) return;
	c.remoteSeen = seen;
	for (const d of c.mine) {
		if (Atomics.load(t.i32, d + D_REMOTE_NR) === 0) continue;
		const clean = t.i32[d + D_DIRTY_NR] === 0;
		c.dirtyBytes += takeRemote(c, d);
		if (clean && t.i32[d + D_DIRTY_NR] !== 0) c.dirtyList.push(d);
	}
}

/** Block `d`'s remote frees, into DIRTY, by its owner of the moment; returns their bytes. */
function takeRemote(c: CacheState, d: number): number {
	const i32 = c.t.i32;
	const words = i32[d + D_WORDS]!;
	const remote = bitmap(d, words, REMOTE);
	const live = bitmap(d, words, LIVE);
	const dirty = bitmap(d, words, DIRTY);
	let n = 0;
	for (let w = 0; w < words; w++) {
		if (Atomics.load(i32, remote + w) === 0) continue;
		const r = Atomics.exchange(i32, remote + w, 0);
		i32[live + w]! &= ~r;
		i32[dirty + w]! |= r;
		n += popcount(r);
	}
	if (n === 0) return 0;
	Atomics.sub(i32, d + D_REMOTE_NR, n);
	i32[d + D_LIVE_NR]! -= n;
	i32[d + D_DIRTY_NR]! += n;
	return n * slotBytesOf(c.t.f64, d);
}

/**
 * Block `d` is owned by nobody and a free went into it: own it for the moment, take the
 * remote frees in, retire it if nothing in it is live, else give it back. A free that lands
 * while another handle holds it is seen by that handle's second look, or takes it after.
 */
function adopt(c: CacheState, d: number): void {
	while (Atomics.compareExchange(c.t.i32, d + D_OWNER, 0, c.self) === 0 && keepOrRetire(c, d)) {
		if (!hasRemote(c.t.i32, d)) return; // the bitmap, not the count: a dead owner may have left the count high
	}
}

/**
 * Block `d`, owned by nobody, that this handle has just taken (its CAS on OWNER): repaired
 * (its last owner may have died mid-write: the bitmaps say what is true), with the remote
 * frees taken in; retired when nothing in it is live, else given back (OWNER 0): true then.
 * A retire that fails (its lock was busy) gives the block back too, for the next free or end
 * hook to retire it, and throws.
 */
function keepOrRetire(c: CacheState, d: number): boolean {
	const i32 = c.t.i32;
	repairBlock(i32, d);
	takeRemote(c, d);
	if (i32[d + D_LIVE_NR] !== 0) {
		Atomics.store(i32, d + D_OWNER, 0);
		return true;
	}
	try {
		retire(c, d);
	} catch (e) {
		Atomics.store(i32, d + D_OWNER, 0);
		throw e;
	}
	return false;
}

/**
 * Block `d`, made by an ended handle and owned by nobody: free each of its live small areas
 * (WatchOptions.freeAreas) but those carrying the mark (queued for a deferred free, which
 * frees them), telling `release` of each first; then it retires. Each slot is claimed as a
 * remote free claims it (Atomics.or on REMOTE), so a free of the same area racing this one
 * finds it freed. False when another handle holds the block at this moment.
 */
function reclaimBlock(c: CacheState, d: number, release: (addr: number, size: number) => void): boolean {
	const i32 = c.t.i32;
	if (Atomics.compareExchange(i32, d + D_OWNER, 0, c.self) !== 0) return false;
	repairBlock(i32, d);
	const words = i32[d + D_WORDS]!;
	const start = blockStartOf(c.t.f64, d);
	const bytes = slotBytesOf(c.t.f64, d);
	let n = 0;
	for (let w = 0; w < words; w++) {
		const want = i32[bitmap(d, words, LIVE) + w]! & ~Atomics.load(i32, bitmap(d, words, MARK) + w);
		if (want === 0) continue;
		const mine = want & ~Atomics.or(i32, bitmap(d, words, REMOTE) + w, want);
		for (let m = mine; m !== 0; m &= m - 1) release(start + (w * 32 + 31 - Math.clz32(m & -m)) * bytes, bytes);
		n += popcount(mine);
	}
	if (n !== 0) Atomics.add(i32, d + D_REMOTE_NR, n);
	if (keepOrRetire(c, d) && hasRemote(i32, d)) adopt(c, d);
	return true;
}

/**
 * Block `d`, owned by this handle and with nothing live, leaves: out of the index, and its
 * area freed lazily as one, so that the ordinary purge flushes its dirty slots.
 */
export function retire(c: CacheState, d: number): void {
	const t = c.t;
	const k = t.i32[d + D_CLASS]!;
	c.source.freeBlockArea(blockStartOf(t.f64, d), () => {
		indexRemove(t, d, c.blockInverse);
		const first = d / REC_I32;
		const run = t.i32[d + D_RUN]!;
		for (let r = 0; r < run; r++) clearAndFree(t, first + r);
	});
	// Out of every list of this handle's: its records now serve others.
	const list = c.avail[k];
	if (list !== undefined) for (let i = list.indexOf(d); i >= 0; i = list.indexOf(d)) list.splice(i, 1);
	const at = c.mine.indexOf(d);
	if (at >= 0) {
		c.mine[at] = c.mine[c.mine.length - 1]!;
		c.mine.pop();
	}
	if (c.cur[k] === d) c.cur[k] = 0;
	if (c.spareD[k] === d) c.spareD[k] = 0;
	if (c.lastD === d) c.lastStart = -1;
}

/**
 * close(): the cache stops; its empty blocks retire and the others are owned by nobody
 * (their live small areas stay valid, and the free that empties one retires it).
 */
export function handOver(c: CacheState): void {
	if (c.max === 0) return;
	c.max = c.maxUnits = 0;
	c.lastStart = -1;
	c.cur.fill(0);
	c.spareD.fill(0);
	c.dirtyList.length = 0;
	c.flushing.length = 0;
	for (const list of c.avail) list.length = 0;
	const blocks = c.mine.splice(0);
	let failed: unknown;
	for (const d of blocks) {
		takeRemote(c, d);
		const i32 = c.t.i32;
		i32[d + D_LISTED] = 0; // on no list now
		if (i32[d + D_LIVE_NR] === 0) {
			try {
				c.mine.push(d);
				retire(c, d);
				continue;
			} catch (e) {
				failed ??= e;
			}
		}
		Atomics.store(c.t.i32, d + D_OWNER, 0);
		if (Atomics.load(c.t.i32, d + D_REMOTE_NR) !== 0) adopt(c, d);
	}
	c.mine.length = 0;
	if (failed !== undefined) throw failed;
}

/**
 * Handle `id` ended without close(): its blocks are owned by nobody from now on, and each
 * block it made and nobody owns is adopted (its remote frees taken in, retired if empty), or
 * with `release` reclaimed (reclaimBlock). Blocks are found by the id their area carries (the
 * handle that made a block is the only one that carved it), so a run cut short by a busy lock
 * (ETIMEDOUT) is run again whole. Another's block it held for a moment (adopt) is adopted
 * here once; if that is cut short, the next free into it adopts it.
 */
export function ended(c: CacheState, id: number, release: ((addr: number, size: number) => void) | undefined): void {
	const t = c.t;
	const made: number[] = [];
	const held: number[] = []; // another's block it held for a moment
	c.locks.acquire(HDR_FREE_LOCK);
	try {
		t.sync();
		eachBlock(t, (d) => {
			const was = Atomics.compareExchange(t.i32, d + D_OWNER, id, 0);
			if (vaOwner(t.i32, t.i32[d + D_AREA]!) === id) {
				if (Atomics.load(t.i32, d + D_OWNER) === 0) made.push(d);
			} else if (was === id) held.push(d);
		});
	} finally {
		c.locks.release(HDR_FREE_LOCK);
	}
	if (c.max === 0) return; // this handle closed: the next free into each adopts it
	for (const d of held) adopt(c, d);
	let busy = false;
	for (const d of made) {
		if (release === undefined) adopt(c, d);
		else if (!reclaimBlock(c, d, release)) busy = true;
	}
	if (busy)
		throw new VmapError("ETIMEDOUT", `Cannot free the small areas of ended handle ${id} yet: another handle holds one of its blocks`);
}
