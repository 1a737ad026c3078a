/**
 * The block index: from a small-area block's start to its descriptor (descriptor.ts). An
 * open-addressing table in a run of records, written under the FREE lock, read without a lock.
 * Its first word holds its capacity (a power of two), its second its run's length; entry e is
 * four Int32 words at 4 + 4e: START (f64), DESC (the descriptor's d; 0 empty, -1 deleted),
 * MAKER (the token of the handle that made the block, buffer/gauges.ts makerToken: written once,
 * so a statistics reader learns whose gauges count the block without reading its descriptor,
 * whose line the owner keeps writing). A reader validates what it finds (STATE and START of
 * the descriptor), since a table replaced by growth is freed while readers may hold it.
 */
import { add, put, putAtomic } from "../buffer/journal.ts";
import { HDR_BLOCK_INDEX, HDR_BLOCK_NR, HDR_BLOCK_USED, REC_I32 } from "../buffer/layout.ts";
import { clearRecord, setRecWord, setRecWordF } from "../buffer/record.ts";
import type { VaTable } from "../buffer/va-table.ts";
import { BITMAPS, blockStartOf, D_BITS, D_STATE, D_WORDS, SMALL_BLOCK_ACTIVE } from "./descriptor.ts";

/** Words of an entry: its descriptor (d) and its maker's token. */
export const ENTRY_DESC = 2;
export const ENTRY_MAKER = 3;

/** Index word of the first entry of the block index at record `first`. */
export function indexBase(first: number): number {
	return first * REC_I32 + 4;
}

function slotOf(start: number, blockInverse: number, mask: number): number {
	const k = start * blockInverse; // exact: blocks are aligned to their power-of-two size
	return Math.imul(k >>> 0, 0x9e3779b1) & mask;
}

/**
 * The descriptor (d) of the block starting at `blockStart`, or 0. Without a lock: `first` is
 * the index the caller read (HDR_BLOCK_INDEX); a hit is validated by its descriptor.
 */
export function lookupBlock(t: VaTable, first: number, blockStart: number, blockInverse: number): number {
	if (first === 0 || first >= t.capacity) return 0;
	const i32 = t.i32;
	const f64 = t.f64;
	const cap = i32[first * REC_I32]!;
	const mask = cap - 1;
	const base = indexBase(first);
	for (let e = slotOf(blockStart, blockInverse, mask), n = 0; n < cap; e = (e + 1) & mask, n++) {
		const w = base + e * 4;
		const d = i32[w + 2]!;
		if (d === 0) return 0;
		if (d > 0 && f64[w >> 1] === blockStart) {
			if (d + D_BITS > i32.length || i32[d + D_STATE] !== SMALL_BLOCK_ACTIVE || blockStartOf(f64, d) !== blockStart) return 0;
			if (d + D_BITS + BITMAPS * i32[d + D_WORDS]! > i32.length) return 0; // a stale index's garbage
			return d;
		}
	}
	return 0;
}

/** Every descriptor in the index, with its maker's token (under the FREE lock, or of a still copy). */
export function eachBlock(t: VaTable, visit: (d: number, maker: number) => void): void {
	const first = t.hdr[HDR_BLOCK_INDEX]!;
	if (first === 0) return;
	const cap = t.i32[first * REC_I32]!;
	const base = indexBase(first);
	for (let e = 0; e < cap; e++) {
		const w = base + e * 4;
		const d = t.i32[w + ENTRY_DESC]!;
		if (d > 0) visit(d, t.i32[w + ENTRY_MAKER]!);
	}
}

/** Records of the block index's run for `cap` entries. */
export function indexRun(cap: number): number {
	return Math.ceil((4 + cap * 4) / REC_I32);
}

/**
 * Add descriptor `d` (its START set) to the index, under the FREE lock; grows the index first
 * when it is half full. The caller reserved indexRun(nextCapacity) records (reserveRun).
 */
export function indexInsert(t: VaTable, d: number, maker: number, blockInverse: number): void {
	const hdr = t.hdr;
	const cap = nextIndexCapacity(t);
	const first = cap === 0 ? hdr[HDR_BLOCK_INDEX]! : rebuildIndex(t, cap, blockInverse);
	if (putEntry(t, first, d, maker, blockInverse)) add(hdr, HDR_BLOCK_USED, 1);
	add(hdr, HDR_BLOCK_NR, 1);
}

/** The capacity of the index the next insert rebuilds (for reserving its run), or 0 when it inserts in place. */
export function nextIndexCapacity(t: VaTable): number {
	const hdr = t.hdr;
	const first = hdr[HDR_BLOCK_INDEX]!;
	if (first !== 0 && 2 * (hdr[HDR_BLOCK_USED]! + 1) <= t.i32[first * REC_I32]!) return 0;
	return Math.max(16, 2 ** Math.ceil(Math.log2(4 * (hdr[HDR_BLOCK_NR]! + 1))));
}

/** Put `d` (made by `maker`) in the first empty or deleted entry of its probe chain; true if the entry was empty. */
function putEntry(t: VaTable, first: number, d: number, maker: number, blockInverse: number): boolean {
	const i32 = t.i32;
	const f64 = t.f64;
	const start = blockStartOf(f64, d);
	const mask = i32[first * REC_I32]! - 1;
	const base = indexBase(first);
	let e = slotOf(start, blockInverse, mask);
	while (i32[base + e * 4 + 2]! > 0) e = (e + 1) & mask;
	const w = base + e * 4;
	const empty = i32[w + 2] === 0;
	setRecWordF(f64, w >> 1, start);
	setRecWord(i32, w + ENTRY_MAKER, maker);
	setRecWord(i32, w + ENTRY_DESC, d);
	return empty;
}

/** A new index with room for the blocks there are (tombstones dropped), published with one store. */
function rebuildIndex(t: VaTable, cap: number, blockInverse: number): number {
	const old = t.hdr[HDR_BLOCK_INDEX]!;
	const run = indexRun(cap);
	const first = t.takeRun(run);
	t.i32[first * REC_I32] = cap;
	t.i32[first * REC_I32 + 1] = run;
	let n = 0;
	if (old !== 0) {
		eachBlock(t, (d, maker) => {
			putEntry(t, first, d, maker, blockInverse);
			n++;
		});
	}
	// Readers without a lock load the index word, then its entries: publish it once filled.
	putAtomic(t.hdr, HDR_BLOCK_INDEX, first);
	put(t.hdr, HDR_BLOCK_USED, n);
	if (old !== 0) {
		// Its records go back as they are (readers validate what they find), its capacity word
		// zeroed so that a reader still holding it stops at once.
		const oldRun = t.i32[old * REC_I32 + 1]!;
		setRecWord(t.i32, old * REC_I32, 0);
		for (let r = 0; r < oldRun; r++) t.freeSlot(old + r);
	}
	return first;
}

/** Remove descriptor `d` from the index, under the FREE lock (its entry becomes a tombstone). */
export function indexRemove(t: VaTable, d: number, blockInverse: number): void {
	const first = t.hdr[HDR_BLOCK_INDEX]!;
	const i32 = t.i32;
	const start = blockStartOf(t.f64, d);
	const mask = i32[first * REC_I32]! - 1;
	const base = indexBase(first);
	for (let e = slotOf(start, blockInverse, mask); ; e = (e + 1) & mask) {
		const w = base + e * 4 + 2;
		if (i32[w] === d) {
			setRecWord(i32, w, -1);
			break;
		}
		if (i32[w] === 0) throw new Error(`block index: descriptor ${d} is not indexed`);
	}
	add(t.hdr, HDR_BLOCK_NR, -1);
}

/** Zero a record (a run's record may hold any words) and return it to the slot free list. */
export function clearAndFree(t: VaTable, rec: number): void {
	clearRecord(t.f64, rec);
	t.freeSlot(rec);
}
