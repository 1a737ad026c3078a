/**
 * The small-area figures of stats() (stats.ts), read without a lock: from each live maker's
 * gauges (buffer/gauges.ts), and from the descriptor of every block whose maker has closed or
 * ended.
 */
import type { VmapStats } from "../api/types.ts";
import {
	HDR_BLOCK_INDEX,
	HDR_SMALL_FLUSHES,
	HDRF_SMALL_MAX,
	HANDLE_REMOTE,
	HANDLE_WORDS,
	REC_I32,
	VA_OWNER_MASK,
} from "../buffer/layout.ts";
import { GAUGE_REMOTE_SEEN, gaugeWord, makerAlive, readGauges } from "../buffer/gauges.ts";
import type { VaTable } from "../buffer/va-table.ts";
import { ENTRY_DESC, ENTRY_MAKER, indexBase } from "../small/block-index.ts";
import {
	BITMAPS,
	D_BITS,
	D_DIRTY_NR,
	D_WORDS,
	liveSlots,
	D_REMOTE_NR,
	D_STATE,
	slotBytesOf,
	SMALL_BLOCK_ACTIVE,
} from "../small/descriptor.ts";

// Per handle entry, for readSmall: the token it last met as a maker in this snapshot (makerTok,
// of snapshot makerEpoch) and what it found (makerState: 0 ended, 1 alive, 2 alive with remote
// frees not taken in); the alive makers met, each once (makers, listedEpoch). Module scratch:
// a snapshot creates no objects.
const makerEpoch = new Int32Array(VA_OWNER_MASK + 1);
const makerTok = new Int32Array(VA_OWNER_MASK + 1);
const makerState = new Uint8Array(VA_OWNER_MASK + 1);
const listedEpoch = new Int32Array(VA_OWNER_MASK + 1);
const makers = new Int32Array(VA_OWNER_MASK + 1);
const gauges = new Float64Array(4);
let epoch = 0;
let met = 0;

/** What readSmall finds of the maker `token` names: 0 ended (read its blocks one by one), 1 alive, 2 alive with remote frees not taken in. */
function makerOf(t: VaTable, token: number): number {
	const id = token & VA_OWNER_MASK;
	if (makerEpoch[id] === epoch && makerTok[id] === token) return makerState[id]!;
	let state = 0;
	if (id !== 0 && makerAlive(t.handles, token)) {
		const seen = t.hdr[gaugeWord(id) + GAUGE_REMOTE_SEEN]!;
		state = Atomics.load(t.handles, (id - 1) * HANDLE_WORDS + HANDLE_REMOTE) !== seen ? 2 : 1;
		if (listedEpoch[id] !== epoch) {
			listedEpoch[id] = epoch;
			makers[met++] = id;
		}
	}
	makerEpoch[id] = epoch;
	makerTok[id] = token;
	makerState[id] = state;
	return state;
}

/**
 * The small-area figures, without a lock: the blocks of a live maker from its gauges (one
 * line per handle, buffer/gauges.ts), each other block (its maker closed or ended: owned by
 * nobody, or for a moment by a handle taking frees in) from its descriptor, and the remote
 * frees not taken in from the descriptors of the makers that have some. A reader never reads
 * the descriptor of a block whose owner is carving and freeing in it: the owner's next write
 * to that line would miss (about 15 % of a W1 loop beside a back-to-back reader). While owners
 * run, the sums are a moment's estimate.
 */
export function readSmall(t: VaTable, s: VmapStats): void {
	s.smallMax = t.hdrF[HDRF_SMALL_MAX]!;
	s.smallFlushes = Atomics.load(t.hdr, HDR_SMALL_FLUSHES);
	s.smallBlocks = s.smallAreas = s.smallBytes = s.smallLazyAreas = s.smallLazyBytes = 0;
	const first = Atomics.load(t.hdr, HDR_BLOCK_INDEX);
	if (first === 0) return;
	t.sync();
	const i32 = t.i32;
	const f64 = t.f64;
	if (first >= t.capacity) return;
	epoch = (epoch + 1) | 0 || 1;
	met = 0;
	let remote = 0;
	let remoteBytes = 0;
	const cap = i32[first * REC_I32]!;
	const base = indexBase(first);
	for (let e = 0; e < cap; e++) {
		const w = base + e * 4;
		if (w + ENTRY_MAKER >= i32.length) break; // the index was replaced while read
		const d = i32[w + ENTRY_DESC]!;
		if (d <= 0 || d + D_REMOTE_NR >= i32.length) continue;
		const maker = makerOf(t, i32[w + ENTRY_MAKER]!);
		if (maker !== 0) {
			s.smallBlocks++;
			if (maker === 2 && i32[d + D_STATE] === SMALL_BLOCK_ACTIVE) {
				const r = Atomics.load(i32, d + D_REMOTE_NR);
				remote += r;
				remoteBytes += r * slotBytesOf(f64, d);
			}
			continue;
		}
		if (i32[d + D_STATE] !== SMALL_BLOCK_ACTIVE) continue;
		if (d + D_BITS + BITMAPS * i32[d + D_WORDS]! > i32.length) continue; // a stale index's garbage: its words end past the view
		const r = i32[d + D_REMOTE_NR]!;
		const live = liveSlots(i32, d) - r;
		const lazy = i32[d + D_DIRTY_NR]! + r;
		const bytes = slotBytesOf(f64, d);
		s.smallBlocks++;
		s.smallAreas += live;
		s.smallBytes += live * bytes;
		s.smallLazyAreas += lazy;
		s.smallLazyBytes += lazy * bytes;
	}
	for (let i = 0; i < met; i++) {
		const g = readGauges(t, makers[i]!, gauges); // in use, dirty, in-use bytes, dirty bytes
		s.smallAreas += g[0]! - g[1]!;
		s.smallBytes += g[2]! - g[3]!;
		s.smallLazyAreas += g[1]!;
		s.smallLazyBytes += g[3]!;
	}
	s.smallAreas -= remote;
	s.smallBytes -= remoteBytes;
	s.smallLazyAreas += remote;
	s.smallLazyBytes += remoteBytes;
}
