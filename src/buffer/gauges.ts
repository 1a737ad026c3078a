/**
 * Small-area gauges, the buffer's region at GAUGE_OFFSET (layout.ts): one cache line per handle
 * entry, the sums over the small-area blocks that handle owns, written by it alone with plain
 * stores on its own path (the kernel's per-CPU counters). The line also holds the handle's
 * kept record (GAUGE_KEPT), written by it alone too. A statistics reader sums a line per
 * handle instead of reading every block's descriptor, whose words the owner rewrites on every
 * small alloc and free (a reader that did made the owner's next write to each block miss the
 * cache: a W1 loop ran at 0.87 of its speed beside a back-to-back reader).
 *
 * Float64 words GAUGE_IN_USE_BYTES and GAUGE_DIRTY_BYTES, Int32 words GAUGE_IN_USE (slots LIVE
 * or DIRTY in its blocks, remote frees not yet taken in among them), GAUGE_DIRTY and
 * GAUGE_REMOTE_SEEN (its HANDLE_REMOTE when it last took remote frees in: while HANDLE_REMOTE
 * differs, a reader looks for frees not taken in yet). Read only while the entry is ALIVE and
 * of the generation that made the block (the block index keeps the maker's token): an ended
 * handle's gauges may be off by the write it died before, and are never read again; its
 * blocks are read one by one.
 */
import { GAUGE_BYTES, GAUGE_OFFSET, HANDLE_ALIVE, HANDLE_GEN, HANDLE_MAX, HANDLE_STATE, HANDLE_WORDS } from "./layout.ts";
import type { VaTable } from "./va-table.ts";

/** Float64 words of a gauge line (GAUGE_OFFSET / 8 + id - 1 lines). */
export const GAUGE_IN_USE_BYTES = 0;
export const GAUGE_DIRTY_BYTES = 1;
/** Int32 words of a gauge line. */
export const GAUGE_IN_USE = 4;
export const GAUGE_DIRTY = 5;
export const GAUGE_REMOTE_SEEN = 6;
/**
 * Not a gauge: a record this handle took out of a lazy free that merged (tree/lazy-tree.ts)
 * and keeps for its next allocation (VaTable.keep, allocSlot), 0 for none. Giving it back to
 * the record free list would take the free-space lock, which comes before the busy lock in the
 * lock order. A handle that closes or ends gives it back (core/kept-record.ts); check() counts it.
 */
export const GAUGE_KEPT = 7;

/** Handle `id`'s gauge line, as an index of Int32 header words (hdr), and of Float64 ones (hdrF). */
export const gaugeWord = (id: number): number => GAUGE_OFFSET / 4 + (id - 1) * (GAUGE_BYTES / 4);
export const gaugeWordF = (id: number): number => GAUGE_OFFSET / 8 + (id - 1) * (GAUGE_BYTES / 8);
/** Header word of handle `id`'s kept record (GAUGE_KEPT). */
export const keptWord = (id: number): number => gaugeWord(id) + GAUGE_KEPT;

/** Handle `id`'s gauges into `into`: [in use, dirty, in-use bytes, dirty bytes]; returns `into`. */
export function readGauges(t: VaTable, id: number, into: Float64Array): Float64Array {
	const g = gaugeWord(id);
	const gf = gaugeWordF(id);
	into[0] = t.hdr[g + GAUGE_IN_USE]!;
	into[1] = t.hdr[g + GAUGE_DIRTY]!;
	into[2] = t.hdrF[gf + GAUGE_IN_USE_BYTES]!;
	into[3] = t.hdrF[gf + GAUGE_DIRTY_BYTES]!;
	return into;
}

/**
 * A handle's token as a block index entry keeps it (the block's maker): its id in the low 11
 * bits (VA_OWNER_MASK), the low 20 bits of its entry's generation above. It names the maker
 * until its entry has been claimed 2^20 more times.
 */
export const makerToken = (id: number, gen: number): number => id | ((gen & 0xfffff) << 11);
/** Whether the handle entry `token` (makerToken) names is ALIVE and of its generation; false for what is no token (a stale read). */
export function makerAlive(handles: Int32Array, token: number): boolean {
	const id = token & 0x7ff;
	const w = (id - 1) * HANDLE_WORDS;
	return (
		id >= 1 &&
		id <= HANDLE_MAX &&
		Atomics.load(handles, w + HANDLE_STATE) === HANDLE_ALIVE &&
		makerToken(token & 0x7ff, Atomics.load(handles, w + HANDLE_GEN)) === token
	);
}
