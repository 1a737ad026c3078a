/**
 * New work for a size class whose current block is full: another block of the class with FREE
 * slots, a flush when the dirty bytes are due, or a new block. A new block's area comes from
 * the space (BlockSource); its descriptor is written and indexed in the critical section that
 * allocates the area (BlockSetup), so that no other handle sees a block half made and a
 * failure or death leaves none.
 */
import { HDR_DEAD, REC_I32, VA_SMALL_BLOCK } from "../buffer/layout.ts";
import { setVaFlags, vaFlags } from "../buffer/record.ts";
import { indexInsert, indexRun, nextIndexCapacity } from "./block-index.ts";
import { drainLimbo } from "./limbo.ts";
import type { CacheState } from "./cache-state.ts";
import {
	bitmap,
	D_AREA,
	D_CLASS,
	D_FREE_NR,
	D_LISTED,
	D_OWNER,
	D_RUN,
	D_SLOTS,
	D_STATE,
	D_WORDS,
	DF_SLOT_BYTES,
	DF_START,
	descriptorRun,
	FREE,
	MAX_SLOTS,
	SMALL_BLOCK_ACTIVE,
} from "./descriptor.ts";
import { flushAt, flushCache } from "./flush.ts";

/** Allocations a cache that could not get a block leaves to the ordinary path before it tries again. */
const BACKOFF = 64;

/**
 * Class `k` has no FREE slot in its current block: take another block of the class that has
 * some, flushing first when the dirty bytes are due, or a new block. False when none can be
 * had (the request then goes to the ordinary path).
 */
export function refill(c: CacheState, k: number): boolean {
	if (c.max === 0 || c.t.hdr[HDR_DEAD] !== 0) return false;
	c.cur[k] = 0;
	for (let round = 0; round < 2; round++) {
		if (takeListed(c, k)) return true;
		if (round === 0 && c.dirtyBytes >= flushAt(c) && !c.inFlight) {
			flushCache(c);
			continue;
		}
		if (c.backoff > 0) {
			c.backoff--;
			return false;
		}
		const d = newBlock(c, k);
		if (d !== 0) {
			c.cur[k] = d;
			c.hint[k] = 0;
			return true;
		}
		// No room for a block: what this handle's flush frees may be.
		if (round === 0 && c.dirtyBytes > 0 && !c.inFlight) {
			flushCache(c);
			continue;
		}
		c.backoff = BACKOFF;
		return false;
	}
	return false;
}

/** Make the first listed block of class `k` that still has FREE slots the current one. */
function takeListed(c: CacheState, k: number): boolean {
	const list = c.avail[k]!;
	const i32 = c.t.i32;
	while (list.length > 0) {
		const d = list.pop()!;
		i32[d + D_LISTED] = 0;
		if (i32[d + D_FREE_NR]! > 0) {
			c.cur[k] = d;
			c.hint[k] = 0;
			return true;
		}
	}
	return false;
}

/**
 * A new block of class `k`, owned by this handle, or 0 when the space has no room for one. Its
 * area, descriptor and index entry are made in one critical section (BlockSetup): a failure
 * or a death leaves no block half made.
 */
function newBlock(c: CacheState, k: number): number {
	const t = c.t;
	const run = descriptorRun(slotsOf(c, k));
	let d = 0;
	const addr = c.source.allocBlockArea(c.blockBytes, {
		reserve: () => t.reserveRun(run + indexRun(nextIndexCapacity(t)) + 2), // + 2: the busy record and a split may come from the same end
		setUp: (va, start) => {
			d = t.takeRun(run) * REC_I32;
			writeDescriptor(c, d, k, va, run, start);
			setVaFlags(t.i32, va, vaFlags(t.i32, va) | VA_SMALL_BLOCK);
			indexInsert(t, d, c.blockInverse);
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

/** The words of a new block's descriptor `d` (area `va` at `addr`, `run` records): every slot FREE, owned by this handle; STATE last. */
function writeDescriptor(c: CacheState, d: number, k: number, va: number, run: number, addr: number): void {
	const i32 = c.t.i32;
	const slots = slotsOf(c, k);
	const f64 = c.t.f64;
	const words = Math.ceil(slots / 32);
	i32[d + D_OWNER] = c.self;
	i32[d + D_CLASS] = k;
	i32[d + D_SLOTS] = slots;
	i32[d + D_WORDS] = words;
	i32[d + D_AREA] = va;
	i32[d + D_RUN] = run;
	i32[d + D_LISTED] = 0;
	i32[d + D_FREE_NR] = slots;
	f64[(d >> 1) + DF_START] = addr;
	f64[(d >> 1) + DF_SLOT_BYTES] = c.classBytes[k]!;
	const free = bitmap(d, words, FREE);
	for (let w = 0; w < words; w++) i32[free + w] = slots - 32 * w >= 32 ? -1 : (1 << (slots - 32 * w)) - 1;
	i32[d + D_STATE] = SMALL_BLOCK_ACTIVE;
}
