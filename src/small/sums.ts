/**
 * Per-handle sums of the small-area blocks (the kernel's per-CPU counters, summed by the
 * reader): "vmalloc: use rcu list iterator to reduce vmap_area_lock contention" asks that
 * readers of the statistics cost the allocator nothing. Reading every block's counts did cost
 * it: each descriptor's count words share a line that its owner writes at every allocation, so
 * a back-to-back stats() reader made the owner's next write of each line a cache miss (W1 ran
 * at 0.62-0.70 of its speed beside a thread that only spun).
 *
 * A handle that owns blocks keeps, in its own line of the sums table (layout.ts SUMS_OFFSET),
 * what its blocks' descriptors say in sum: blocks, LIVE and DIRTY slots and their bytes. It
 * writes them where it writes the descriptors' counts, plainly; nobody else writes them while
 * it counts. A reader adds the lines of the handles counting and reads descriptors only of
 * blocks no counting handle owns (closed or ended owners': their counts are repaired by then)
 * and, for a handle whose blocks got remote frees it has not taken in yet (HANDLE_REMOTE moved
 * since the count it published in REMOTE_SEEN), the REMOTE counts of its blocks.
 *
 * Which blocks a line covers: a block's descriptor (D_MAKER) and its index entry name its maker
 * (makerOf: the handle's id and generation). A block changes owner only from its maker to
 * nobody (close, or the maker's end), and the line's MAKER is cleared before that: a block
 * whose maker word equals a line's MAKER is counted in that line. Death needs no repair here:
 * the line of a handle that died is dropped (MAKER cleared by the handle that observed the end,
 * before it orphans the blocks), and the blocks' own counts, repaired, are what readers read.
 *
 * Line (Int32 words): 0 MAKER (the maker counted for, 0 none), 1 BLOCKS, 2 LIVE, 3 DIRTY,
 * 4 REMOTE_SEEN; Float64 words 4 LIVE_BYTES, 5 DIRTY_BYTES.
 */
import { HANDLE_GEN, HANDLE_WORDS, SUMS_BYTES, SUMS_OFFSET } from "../buffer/layout.ts";
import type { VaTable } from "../buffer/va-table.ts";

export const S_MAKER = 0;
export const S_BLOCKS = 1;
export const S_LIVE = 2;
export const S_DIRTY = 3;
export const S_REMOTE_SEEN = 4;
/** Float64 words, relative to the line's first word / 2. */
export const SF_LIVE_BYTES = 4;
export const SF_DIRTY_BYTES = 5;

/** The first Int32 word (of t.hdr) of handle `id`'s line. */
export function sumsWord(id: number): number {
	return (SUMS_OFFSET + (id - 1) * SUMS_BYTES) / 4;
}

/** The handle id in a maker word: its low 11 bits (ids 1..HANDLE_MAX). */
export const HANDLE_ID_MASK = 0x7ff;

/** Handle `id` as the maker of blocks: its id and the low 20 bits of its generation (a reused id is another maker). */
export function makerOf(t: VaTable, id: number): number {
	return ((Atomics.load(t.handles, (id - 1) * HANDLE_WORDS + HANDLE_GEN) & 0xfffff) << 11) | id;
}

/** Start counting for handle `id` (its cache opens, owning no block, HANDLE_REMOTE at `remoteSeen`): the line zeroed, then MAKER. */
export function openSums(t: VaTable, id: number, remoteSeen: number): void {
	const s = sumsWord(id);
	t.hdrF.fill(0, s >> 1, (s >> 1) + SUMS_BYTES / 8);
	t.hdr[s + S_REMOTE_SEEN] = remoteSeen;
	Atomics.store(t.hdr, s + S_MAKER, makerOf(t, id));
}

/** Stop counting for handle `id`: from now on readers read its blocks' descriptors. Before its blocks are anybody else's. */
export function dropSums(t: VaTable, id: number): void {
	Atomics.store(t.hdr, sumsWord(id) + S_MAKER, 0);
}

/** LIVE and DIRTY of a counting handle's blocks changed by `live` and `dirty` slots of `bytes` each. */
export function addSlots(hdr: Int32Array, hdrF: Float64Array, s: number, live: number, dirty: number, bytes: number): void {
	hdr[s + S_LIVE]! += live;
	hdr[s + S_DIRTY]! += dirty;
	const f = s >> 1;
	hdrF[f + SF_LIVE_BYTES]! += live * bytes;
	hdrF[f + SF_DIRTY_BYTES]! += dirty * bytes;
}
