/**
 * New work for a size class whose current block is full: another block of the class with FREE
 * slots, a flush when the dirty bytes are due, or a new block. A new block's area comes from
 * the space (BlockSource); its descriptor is written and indexed in the critical section that
 * allocates the area (BlockSetup), so that no other handle sees a block half made and a
 * failure or death leaves none.
 */
import { crashPoint } from "../buffer/journal.ts";
import { HDR_DEAD, REC_I32, VA_SMALL_BLOCK } from "../buffer/layout.ts";
import { setVaFlags, vaFlags } from "../buffer/record.ts";
import { indexInsert, indexRun, nextIndexCapacity } from "./block-index.ts";
import { drainLimbo } from "./limbo.ts";
import type { CacheState } from "./cache-state.ts";
import {
	bitWord,
	D_AREA,
	D_CLASS,
	D_LISTED,
	D_OWNER,
	D_RUN,
	D_SLOTS,
	D_STATE,
	D_TAG,
	D_WORDS,
	DF_SLOT_BYTES,
	DF_START,
	descriptorRun,
	FREE,
	hasFree,
	MAX_SLOTS,
	SMALL_BLOCK_ACTIVE,
} from "./descriptor.ts";
import { flushAt, flushCache, isSpare } from "./flush.ts";
import { takeRemoteFrees } from "./owner.ts";

/** Remote frees into this handle's blocks that make a refill take them in (owner.ts takeRemoteFrees walks its blocks). */
const REMOTE_BATCH = 64;

/** Allocations a cache that could not get a block leaves to the ordinary path before it tries again. */
const BACKOFF = 64;

/**
 * Queue `q` (a tag and a size class: cache-state.ts) has no FREE slot in its current block:
 * take another block of the queue that has some, flushing first when the dirty bytes are due,
 * or a new block. False when none can be had (the request then goes to the ordinary path).
 */
export function refill(c: CacheState, q: number): boolean {
	if (c.max === 0 || c.t.hdr[HDR_DEAD] !== 0) return false;
	c.cur[q] = 0;
	for (let round = 0; round < 2; round++) {
		if (takeListed(c, q)) return true;
		// Frees by other handles count toward the flush too: where they free most of what this
		// handle allocates (a grace period's frees, a consumer's), its own dirty bytes alone never
		// come due and new blocks would pile up, full of areas freed long ago.
		// The count is an Int32 that wraps: `| 0` keeps the difference right across the wrap.
		if (round === 0 && ((Atomics.load(c.t.handles, c.remoteWord) - c.t.hdr[c.remoteSeen]!) | 0) >= REMOTE_BATCH) takeRemoteFrees(c);
		if (round === 0 && c.t.hdrF[c.dirtyBytes]! >= flushAt(c) && !c.inFlight) {
			flushCache(c);
			continue;
		}
		if (c.backoff > 0) {
			c.backoff--;
			return false;
		}
		const d = takeSpare(c, q) || newBlock(c, q);
		if (d !== 0) {
			c.cur[q] = d;
			c.hint[q] = 0;
			return true;
		}
		// No room for a block: what this handle's flush frees may be.
		if (round === 0 && c.t.hdrF[c.dirtyBytes]! > 0 && !c.inFlight) {
			flushCache(c);
			continue;
		}
		c.backoff = BACKOFF;
		return false;
	}
	return false;
}

/** Make the first listed block of queue `q` that still has FREE slots the current one. */
function takeListed(c: CacheState, q: number): boolean {
	const list = c.avail[q]!;
	const i32 = c.t.i32;
	while (list.length > 0) {
		const d = list.pop()!;
		i32[d + D_LISTED] = 0;
		if (hasFree(i32, d)) {
			c.cur[q] = d;
			c.hint[q] = 0;
			return true;
		}
	}
	return false;
}

/**
 * The empty spare block of `q`'s size class (flush.ts keeps one per class, of whichever tag),
 * moved to queue `q`: off its lists, and retagged while nothing in it is live, so no reader
 * sees a small area change tag. 0 when there is none.
 */
function takeSpare(c: CacheState, q: number): number {
	const k = q % c.classes;
	const d = c.spareD[k]!;
	if (!isSpare(c, d)) return 0;
	c.spareD[k] = 0;
	const list = c.avail[c.queueOf(d)]!;
	const at = list.indexOf(d);
	if (at >= 0) list.splice(at, 1);
	const i32 = c.t.i32;
	crashPoint();
	i32[d + D_LISTED] = 0;
	crashPoint();
	i32[d + D_TAG] = c.groupTag[Math.floor(q / c.classes)]!;
	return d;
}

/**
 * A new block for queue `q`, owned by this handle, or 0 when the space has no room for one. Its
 * area, descriptor and index entry are made in one critical section (BlockSetup): a failure
 * or a death leaves no block half made.
 */
function newBlock(c: CacheState, q: number): number {
	const t = c.t;
	const k = q % c.classes;
	const tag = c.groupTag[Math.floor(q / c.classes)]!;
	const run = descriptorRun(slotsOf(c, k));
	let d = 0;
	const addr = c.source.allocBlockArea(c.blockBytes, {
		reserve: () => t.reserveRun(run + indexRun(nextIndexCapacity(t)) + 2), // + 2: the busy record and a split may come from the same end
		setUp: (va, start) => {
			d = t.takeRun(run) * REC_I32;
			writeDescriptor(c, d, k, tag, va, run, start);
			setVaFlags(t.i32, va, vaFlags(t.i32, va) | VA_SMALL_BLOCK);
			indexInsert(t, d, c.token, c.blockInverse);
			drainLimbo(t, c.self);
		},
	});
	if (addr < 0) return 0;
	c.mine.push(d);
	return d;
}

/** Slots of a block of class `k`. */
function slotsOf(c: CacheState, k: number): number {
	return Math.min(MAX_SLOTS, Math.floor(c.blockBytes / c.classBytes[k]!));
}

/** The words of a new block's descriptor `d` (class `k`, tag `tag`, area `va` at `addr`, `run` records): every slot FREE, owned by this handle; STATE last. */
function writeDescriptor(c: CacheState, d: number, k: number, tag: number, va: number, run: number, addr: number): void {
	const i32 = c.t.i32;
	const slots = slotsOf(c, k);
	const f64 = c.t.f64;
	const words = Math.ceil(slots / 32);
	i32[d + D_OWNER] = c.self;
	i32[d + D_CLASS] = k;
	i32[d + D_TAG] = tag;
	i32[d + D_SLOTS] = slots;
	i32[d + D_WORDS] = words;
	i32[d + D_AREA] = va;
	i32[d + D_RUN] = run;
	i32[d + D_LISTED] = 0;
	f64[(d >> 1) + DF_START] = addr;
	f64[(d >> 1) + DF_SLOT_BYTES] = c.classBytes[k]!;
	for (let w = 0; w < words; w++) i32[bitWord(d, FREE, w)] = slots - 32 * w >= 32 ? -1 : (1 << (slots - 32 * w)) - 1;
	i32[d + D_STATE] = SMALL_BLOCK_ACTIVE;
}
