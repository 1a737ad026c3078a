/**
 * Ownership and remote frees (mimalloc's thread-free lists, in bitmaps). A free from another
 * handle is one Atomics.or on the block's REMOTE bitmap, counted in the block (REMOTE_NR) and
 * in its owner's handle entry (HANDLE_REMOTE); the owner takes REMOTE into DIRTY before it
 * flushes, looking through its blocks only when that count moved.
 *
 * A block whose owner closed or ended is owned by nobody (OWNER 0): each free into it takes it
 * for a moment (CAS on OWNER), repairs what a dead owner may have left half-written
 * (repair.ts), takes remote frees in, and the free that empties it retires it.
 * A retired block leaves the index, and its area goes back through the ordinary lazy free (or
 * straight to free space when no slot of it waits for a flush).
 */
import { crashPoint, hasCrashed } from "../buffer/journal.ts";
import { VmapError } from "../api/errors.ts";
import { HANDLE_ALIVE, HANDLE_MAX, HANDLE_REMOTE, HANDLE_STATE, HANDLE_WORDS, HDR_BLOCK_INDEX, HDR_FREE_LOCK } from "../buffer/layout.ts";
import { vaOwner } from "../buffer/record.ts";
import { eachBlock, indexRemove, lookupBlock } from "./block-index.ts";
import { dropDescriptor } from "./limbo.ts";
import type { CacheState } from "./cache-state.ts";
import { hasRemote, repairBlock } from "./repair.ts";
import {
	bitWord,
	blockStartOf,
	D_AREA,
	D_CLASS,
	D_DIRTY_NR,
	D_LISTED,
	hasLive,
	liveSlots,
	D_OWNER,
	D_REMOTE_NR,
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
 * blocks sees the bit then, or the count moved at its next flush. From the OR on, the owner may
 * retire the block: the hazard, published before it, keeps the descriptor's records from
 * serving anything else until this free is done with them (limbo.ts). A block nobody owns is
 * adopted; if its retire cannot take a lock in time, the free still stands (the next free into
 * the block, or a handle's end, retires it).
 */
export function remoteFree(c: CacheState, d: number, remote: number, bit: number): boolean {
	const t = c.t;
	const i32 = t.i32;
	crashPoint();
	Atomics.store(t.handles, c.hazardWord, d);
	try {
		crashPoint();
		if ((Atomics.or(i32, remote, bit) & bit) !== 0) return false;
		crashPoint();
		Atomics.add(i32, d + D_REMOTE_NR, 1);
		const owner = Atomics.load(i32, d + D_OWNER);
		crashPoint();
		if (owner > 0) Atomics.add(t.handles, (owner - 1) * HANDLE_WORDS + HANDLE_REMOTE, 1);
		else if (owner === 0) adoptOrLeave(c, d);
		return true;
	} finally {
		if (!hasCrashed()) Atomics.store(t.handles, c.hazardWord, 0); // a stopped thread writes nothing more (tests)
	}
}

/** adopt(), except that a retire timed out leaves the block ownerless, for the next free or a handle's end to retire. */
function adoptOrLeave(c: CacheState, d: number): void {
	try {
		adopt(c, d);
	} catch (e) {
		if (!(e instanceof VmapError && e.code === "ETIMEDOUT")) throw e;
	}
}

/** Take the frees other handles made into this handle's blocks into DIRTY (none counted since the last look: nothing to do). */
export function takeRemoteFrees(c: CacheState): void {
	const t = c.t;
	const seen = Atomics.load(t.handles, c.remoteWord);
	if (seen === t.hdr[c.remoteSeen]) return;
	for (const d of c.mine) {
		if (Atomics.load(t.i32, d + D_REMOTE_NR) === 0) continue;
		const clean = t.i32[d + D_DIRTY_NR] === 0;
		takeRemoteMine(c, d);
		if (clean && t.i32[d + D_DIRTY_NR] !== 0) c.dirtyList.push(d);
	}
	// Published after the look: a statistics reader counts remote frees not taken in while
	// the handle's HANDLE_REMOTE differs from it (stats.ts).
	t.hdr[c.remoteSeen] = seen;
}

/** takeRemote() of a block this handle owns: its gauges count the frees taken in as DIRTY. */
function takeRemoteMine(c: CacheState, d: number): void {
	c.addGauges(0, takeRemote(c, d), slotBytesOf(c.t.f64, d));
}

/**
 * Block `d`'s remote frees, into DIRTY, by its owner of the moment; returns how many. Each
 * word's bits leave REMOTE last (an AND of just those bits: frees landing meanwhile stay), so
 * an owner that stops between any two writes leaves every free it took still in REMOTE or in
 * DIRTY: repair.ts drops the REMOTE bits of slots no longer live.
 */
function takeRemote(c: CacheState, d: number): number {
	const i32 = c.t.i32;
	const words = i32[d + D_WORDS]!;
	let n = 0;
	for (let w = 0; w < words; w++) {
		const remote = bitWord(d, REMOTE, w);
		const r = Atomics.load(i32, remote);
		if (r === 0) continue;
		crashPoint();
		i32[bitWord(d, LIVE, w)]! &= ~r;
		crashPoint();
		i32[bitWord(d, DIRTY, w)]! |= r;
		crashPoint();
		Atomics.and(i32, remote, ~r);
		n += popcount(r);
	}
	if (n === 0) return 0;
	crashPoint();
	Atomics.sub(i32, d + D_REMOTE_NR, n);
	crashPoint();
	i32[d + D_DIRTY_NR]! += n;
	return n;
}

/**
 * Block `d` is owned by nobody and a free went into it: own it for the moment, take the
 * remote frees in, retire it if nothing in it is live, else give it back. A free that lands
 * while another handle holds it is seen by that handle's second look, or takes it after. The
 * caller's hazard names `d` (limbo.ts): once nobody owns it, others may retire it.
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
	if (hasLive(i32, d)) {
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
 * finds it freed. False when another handle holds the block at this moment. The caller's
 * hazard names `d`.
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
		const want = i32[bitWord(d, LIVE, w)]! & ~Atomics.load(i32, bitWord(d, MARK, w));
		if (want === 0) continue;
		const mine = want & ~Atomics.or(i32, bitWord(d, REMOTE, w), want);
		for (let m = mine; m !== 0; m &= m - 1) release(start + (w * 32 + 31 - Math.clz32(m & -m)) * bytes, bytes);
		n += popcount(mine);
	}
	if (n !== 0) Atomics.add(i32, d + D_REMOTE_NR, n);
	if (keepOrRetire(c, d) && hasRemote(i32, d)) adopt(c, d);
	return true;
}

/**
 * Block `d`, owned by this handle and with nothing live, leaves: out of the index, and its
 * area freed as one: lazily when it has dirty slots, so that the ordinary purge flushes them,
 * else (every slot FREE: flushed, or never handed out) straight back to free space.
 */
export function retire(c: CacheState, d: number): void {
	const t = c.t;
	// Its queue, class and counts first: freeing the area frees the descriptor's records (zeroed).
	const q = c.queueOf(d);
	const k = t.i32[d + D_CLASS]!;
	const dirty = t.i32[d + D_DIRTY_NR]!;
	const inUse = dirty + liveSlots(t.i32, d);
	const bytes = slotBytesOf(t.f64, d);
	// Nothing live and nothing dirty: every slot is FREE, flushed or never handed out.
	const flushed = inUse === 0;
	c.source.freeBlockArea(
		blockStartOf(t.f64, d),
		() => {
			indexRemove(t, d, c.blockInverse);
			dropDescriptor(t, d, c.self);
		},
		flushed,
	);
	// Out of every list of this handle's: its records now serve others.
	const list = c.avail[q];
	if (list !== undefined) for (let i = list.indexOf(d); i >= 0; i = list.indexOf(d)) list.splice(i, 1);
	const at = c.mine.indexOf(d);
	if (at >= 0) {
		c.mine[at] = c.mine[c.mine.length - 1]!;
		c.mine.pop();
		// Its dirty slots are the lazy area's now (the purge flushes them); its gauges leave this handle's.
		c.addGauges(-inUse, -dirty, bytes);
	}
	if (c.cur[q] === d) c.cur[q] = 0;
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
		takeRemoteMine(c, d);
		const i32 = c.t.i32;
		i32[d + D_LISTED] = 0; // on no list now
		if (!hasLive(i32, d)) {
			try {
				c.mine.push(d);
				retire(c, d);
				continue;
			} catch (e) {
				failed ??= e;
			}
		}
		// Others may retire it once it is nobody's: the hazard keeps its records for this look.
		Atomics.store(c.t.handles, c.hazardWord, d);
		try {
			Atomics.store(i32, d + D_OWNER, 0);
			if (Atomics.load(i32, d + D_REMOTE_NR) !== 0) adopt(c, d);
		} catch (e) {
			failed ??= e;
		} finally {
			Atomics.store(c.t.handles, c.hazardWord, 0);
		}
	}
	c.mine.length = 0;
	if (failed !== undefined) throw failed;
}

/**
 * Handle `id` ended without close(): its blocks are owned by nobody from now on. Then each
 * block nobody owns that may need a look is adopted (its remote frees taken in, retired if
 * empty), or, if `id` made it and `release` is given, reclaimed (reclaimBlock): those it made
 * (the handle that made a block is the only one that carved it, and the area says who made
 * it), another's it held for a moment, and any with a remote free in it (an ended freer may
 * have set its bit without telling anyone). Every live owner looks through its blocks once
 * more for the same reason. A run cut short by a busy lock (ETIMEDOUT) is run again whole.
 */
export function ended(c: CacheState, id: number, release: ((addr: number, size: number) => void) | undefined): void {
	const t = c.t;
	const look: number[] = []; // [d, start, made by id] triples
	c.locks.acquire(HDR_FREE_LOCK);
	try {
		t.sync();
		eachBlock(t, (d) => {
			const i32 = t.i32;
			const was = Atomics.compareExchange(i32, d + D_OWNER, id, 0);
			const made = vaOwner(i32, i32[d + D_AREA]!) === id;
			if (was === id || (Atomics.load(i32, d + D_OWNER) === 0 && (made || hasRemote(i32, d))))
				look.push(d, blockStartOf(t.f64, d), made ? 1 : 0);
		});
	} finally {
		c.locks.release(HDR_FREE_LOCK);
	}
	for (let i = 0; i < HANDLE_MAX; i++)
		if (t.handles[i * HANDLE_WORDS + HANDLE_STATE] === HANDLE_ALIVE) Atomics.add(t.handles, i * HANDLE_WORDS + HANDLE_REMOTE, 1);
	if (c.max === 0) return; // this handle closed: the next free into each adopts it
	let busy = false;
	for (let i = 0; i < look.length; i += 3) {
		const d = look[i]!;
		if (!guard(c, d, look[i + 1]!)) continue; // retired meanwhile
		try {
			if (release !== undefined && look[i + 2] === 1) busy = !reclaimBlock(c, d, release) || busy;
			else adopt(c, d);
		} finally {
			Atomics.store(t.handles, c.hazardWord, 0);
		}
	}
	if (busy)
		throw new VmapError("ETIMEDOUT", `Cannot free the small areas of ended handle ${id} yet: another handle holds one of its blocks`);
}

/**
 * trim() (the kernel's purge_fragmented_blocks): this handle's blocks with nothing live and
 * nothing dirty retire, its spares and current ones too, but those a flush in flight covers;
 * then every block nobody owns is adopted, which retires it when nothing in it is live.
 * Returns the blocks retired.
 */
export function trimBlocks(c: CacheState): number {
	if (c.max === 0) return 0;
	takeRemoteFrees(c);
	const i32 = c.t.i32;
	let n = 0;
	for (const d of [...c.mine]) {
		if (hasLive(i32, d) || i32[d + D_DIRTY_NR] !== 0 || c.flushing.includes(d)) continue;
		retire(c, d);
		n++;
	}
	const look: number[] = [];
	c.locks.acquire(HDR_FREE_LOCK);
	try {
		c.t.sync();
		eachBlock(c.t, (d) => {
			if (Atomics.load(c.t.i32, d + D_OWNER) === 0) look.push(d, blockStartOf(c.t.f64, d));
		});
	} finally {
		c.locks.release(HDR_FREE_LOCK);
	}
	for (let i = 0; i < look.length; i += 2) {
		const d = look[i]!;
		if (!guard(c, d, look[i + 1]!)) continue;
		try {
			adopt(c, d);
			if (!guard(c, d, look[i + 1]!)) n++; // no longer in the index: retired
		} finally {
			Atomics.store(c.t.handles, c.hazardWord, 0);
		}
	}
	return n;
}

/**
 * Publish block `d` (starting at `start`) as this handle's hazard if it is still in the index,
 * checked under the FREE lock, under which blocks retire: true then, and its records are this
 * block's until the hazard is cleared. (A descriptor's records are never-used ones, VaTable.takeRun,
 * so an indexed d is the same block.)
 */
function guard(c: CacheState, d: number, start: number): boolean {
	const t = c.t;
	c.locks.acquire(HDR_FREE_LOCK);
	t.sync();
	const ok = lookupBlock(t, t.hdr[HDR_BLOCK_INDEX]!, start, c.blockInverse) === d;
	if (ok) Atomics.store(t.handles, c.hazardWord, d);
	c.locks.release(HDR_FREE_LOCK);
	return ok;
}
