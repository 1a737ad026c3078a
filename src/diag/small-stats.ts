/**
 * The small-area figures of a statistics snapshot (stats.ts), read without a lock: the sums
 * of the handles that count their blocks (small/sums.ts: one line per handle, not one per
 * block), and a walk of the block index for the blocks no counting handle owns (their owners
 * closed or ended), whose descriptors are read; and the REMOTE counts of a counting handle's
 * blocks when remote frees may wait there. Each part is read as its writers left it; while
 * they run, the figures are a moment's estimate.
 */
import type { VmapStats } from "../api/types.ts";
import {
	HANDLE_MAX,
	HANDLE_REMOTE,
	HANDLE_WORDS,
	HDR_BLOCK_INDEX,
	HDR_HANDLE_HIGH,
	HDR_SMALL_FLUSHES,
	HDRF_SMALL_MAX,
	REC_I32,
} from "../buffer/layout.ts";
import type { VaTable } from "../buffer/va-table.ts";
import { D_DIRTY_NR, D_LIVE_NR, D_REMOTE_NR, D_STATE, slotBytesOf, SMALL_BLOCK_ACTIVE } from "../small/descriptor.ts";
import {
	HANDLE_ID_MASK,
	S_BLOCKS,
	S_DIRTY,
	S_LIVE,
	S_MAKER,
	S_REMOTE_SEEN,
	SF_DIRTY_BYTES,
	SF_LIVE_BYTES,
	sumsWord,
} from "../small/sums.ts";

/** Per handle id, readSmall's scratch: the maker its sums line counts for (0 none), and whether remote frees may wait in its blocks. */
const countedMaker = new Int32Array(HANDLE_MAX + 1);
const remotePending = new Uint8Array(HANDLE_MAX + 1);

/** Fill the small-area figures of `s`. */
export function readSmall(t: VaTable, s: VmapStats): void {
	s.smallMax = t.hdrF[HDRF_SMALL_MAX]!;
	s.smallFlushes = Atomics.load(t.hdr, HDR_SMALL_FLUSHES);
	s.smallBlocks = s.smallAreas = s.smallBytes = s.smallLazyAreas = s.smallLazyBytes = 0;
	const first = Atomics.load(t.hdr, HDR_BLOCK_INDEX);
	if (first === 0) return;
	readSums(t, s);
	t.sync();
	if (first >= t.capacity) return;
	const i32 = t.i32;
	const f64 = t.f64;
	const cap = i32[first * REC_I32]!;
	for (let e = 0; e < cap; e++) {
		const w = first * REC_I32 + 4 + e * 4;
		if (w + 3 >= i32.length) break; // the index was replaced while read
		const d = i32[w + 2]!;
		if (d <= 0 || d + D_REMOTE_NR >= i32.length) continue;
		const maker = i32[w + 3]!;
		const id = maker & HANDLE_ID_MASK;
		const counted = maker !== 0 && countedMaker[id] === maker;
		if (counted && remotePending[id] === 0) continue; // in its maker's sums, no remote free waiting
		if (i32[d + D_STATE] !== SMALL_BLOCK_ACTIVE) continue;
		const remote = i32[d + D_REMOTE_NR]!;
		const bytes = slotBytesOf(f64, d);
		if (counted) {
			// Its maker's sums count remote frees it has not taken in as live.
			s.smallAreas -= remote;
			s.smallBytes -= remote * bytes;
			s.smallLazyAreas += remote;
			s.smallLazyBytes += remote * bytes;
			continue;
		}
		const live = i32[d + D_LIVE_NR]! - remote;
		const lazy = i32[d + D_DIRTY_NR]! + remote;
		s.smallBlocks++;
		s.smallAreas += live;
		s.smallBytes += live * bytes;
		s.smallLazyAreas += lazy;
		s.smallLazyBytes += lazy * bytes;
	}
}

/** Add the sums lines of the handles that count their blocks, noting which (countedMaker, remotePending). */
function readSums(t: VaTable, s: VmapStats): void {
	const hdr = t.hdr;
	const hdrF = t.hdrF;
	const high = Math.min(Atomics.load(hdr, HDR_HANDLE_HIGH), HANDLE_MAX);
	for (let id = 1; id <= high; id++) {
		const w = sumsWord(id);
		const maker = Atomics.load(hdr, w + S_MAKER);
		countedMaker[id] = maker;
		remotePending[id] = 0;
		if (maker === 0) continue;
		s.smallBlocks += hdr[w + S_BLOCKS]!;
		s.smallAreas += hdr[w + S_LIVE]!;
		s.smallLazyAreas += hdr[w + S_DIRTY]!;
		s.smallBytes += hdrF[(w >> 1) + SF_LIVE_BYTES]!;
		s.smallLazyBytes += hdrF[(w >> 1) + SF_DIRTY_BYTES]!;
		if (Atomics.load(t.handles, (id - 1) * HANDLE_WORDS + HANDLE_REMOTE) !== hdr[w + S_REMOTE_SEEN]) remotePending[id] = 1;
	}
}
