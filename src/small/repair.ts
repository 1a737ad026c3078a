/**
 * Repair on adoption: a block's owner may have died between any two of its plain writes (a
 * carve takes a slot out of FREE before it puts it in LIVE; a flush puts slots in FREE before
 * it takes them out of DIRTY; takeRemote() exchanges REMOTE words before it counts them). So
 * the handle that takes an ownerless block over trusts no count and no half-made partition:
 * the bitmaps say what each slot is, resolved to the side that can never hand a slot out
 * twice, and the dirty and remote counts are recounted from them. Idempotent: an adopter that dies in it leaves
 * it for the next. And the sweep of marks a dead handle may have left (markedAreas).
 */
import { HDR_FREE_LOCK } from "../buffer/layout.ts";
import type { Locks } from "../buffer/lock.ts";
import type { VaTable } from "../buffer/va-table.ts";
import { eachBlock } from "./block-index.ts";
import {
	bitWord,
	blockStartOf,
	D_DIRTY_NR,
	D_REMOTE_NR,
	D_SLOTS,
	D_WORDS,
	DIRTY,
	FLUSHING,
	FREE,
	LIVE,
	popcount,
	MARK,
	REMOTE,
	slotBytesOf,
} from "./descriptor.ts";

/**
 * Make block `d`'s bitmaps a partition again and recount it; the caller owns `d` now (its
 * CAS on OWNER succeeded). A slot in no bitmap (a carve or a takeRemote() cut short) goes to
 * DIRTY, flushed before reuse; a slot both LIVE and elsewhere stays LIVE; one both DIRTY and
 * FREE (a flush cut short) stays DIRTY. A dead owner's flush in flight is forgotten: its slots
 * stay dirty for the next flush. A REMOTE bit of a slot no longer LIVE was taken in by a
 * takeRemote() cut short: it goes. REMOTE_NR becomes the REMOTE bits now, never fewer than
 * there are: a freer that has set its bit and not yet counted it adds one more, which only
 * makes the owner look once more.
 */
export function repairBlock(i32: Int32Array, d: number): void {
	const words = i32[d + D_WORDS]!;
	const slots = i32[d + D_SLOTS]!;
	let nDirty = 0;
	let nRemote = 0;
	for (let w = 0; w < words; w++) {
		const all = slots - 32 * w >= 32 ? -1 : (1 << (slots - 32 * w)) - 1;
		const live = bitWord(d, LIVE, w);
		const dirty = bitWord(d, DIRTY, w);
		const free = bitWord(d, FREE, w);
		const l = i32[live]! & all;
		const dt = ((i32[dirty]! | ~(l | i32[dirty]! | i32[free]!)) & all & ~l) | 0;
		const f = i32[free]! & all & ~l & ~dt;
		i32[live] = l;
		i32[dirty] = dt;
		i32[free] = f;
		i32[bitWord(d, FLUSHING, w)] = 0;
		nDirty += popcount(dt);
		nRemote += popcount(Atomics.and(i32, bitWord(d, REMOTE, w), l) & l); // a slot no longer live was taken in
	}
	i32[d + D_DIRTY_NR] = nDirty;
	Atomics.store(i32, d + D_REMOTE_NR, nRemote);
}

/** Whether any slot of block `d` was freed by another handle and not taken in yet (the bitmap, not the count). */
export function hasRemote(i32: Int32Array, d: number): boolean {
	const words = i32[d + D_WORDS]!;
	for (let w = 0; w < words; w++) if (Atomics.load(i32, bitWord(d, REMOTE, w)) !== 0) return true;
	return false;
}

/**
 * The start of every marked small area (MARK: the heap's freeDeferred), in every block: what a
 * sweep after a death compares with the grace-period ring. Under the FREE lock (the index).
 */
export function markedAreas(t: VaTable, locks: Locks): number[] {
	const out: number[] = [];
	locks.acquire(HDR_FREE_LOCK);
	try {
		t.sync();
		eachBlock(t, (d) => {
			const words = t.i32[d + D_WORDS]!;
			for (let w = 0; w < words; w++) {
				for (let m = Atomics.load(t.i32, bitWord(d, MARK, w)); m !== 0; m &= m - 1) {
					const slot = 32 * w + (31 - Math.clz32(m & -m));
					out.push(blockStartOf(t.f64, d) + slot * slotBytesOf(t.f64, d));
				}
			}
		});
	} finally {
		locks.release(HDR_FREE_LOCK);
	}
	return out;
}
