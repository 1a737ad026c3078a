/**
 * The buffer layout against itself: no two header, node, record, heap or block words overlap
 * (a lock word's sequence word included), every word lies inside its region, and the regions
 * follow each other in the order layout.ts draws.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import * as H from "../src/heap/layout.ts";
import * as LH from "../src/buffer/layout.ts";
import * as LN from "../src/buffer/node-layout.ts";
import * as R from "../src/buffer/record.ts";
import * as D from "../src/small/descriptor.ts";

type Words = Record<string, number>;

/** The buffer's constants: the header and records (layout.ts) and a node's words (node-layout.ts). */
const L = { ...LH, ...LN };

/**
 * Int32 words claimed by the constants of `table` whose names start with `i32` (one word each;
 * a name ending in _LOCK also claims its sequence word) or `f64` (a Float64 index: two words).
 * Returns the problems: a word claimed twice, or outside [0, limit).
 */
function overlaps(table: Words, i32: string, f64: string | undefined, limit: number, skip: readonly string[]): string[] {
	const owner = new Map<number, string>();
	const problems: string[] = [];
	const claim = (word: number, name: string) => {
		if (!(word >= 0 && word < limit)) problems.push(`${name} at word ${word} is outside [0, ${limit})`);
		const other = owner.get(word);
		if (other !== undefined) problems.push(`${name} and ${other} share word ${word}`);
		owner.set(word, name);
	};
	for (const [name, value] of Object.entries(table)) {
		if (typeof value !== "number" || skip.includes(name)) continue;
		if (f64 !== undefined && name.startsWith(f64)) {
			claim(2 * value, name);
			claim(2 * value + 1, `${name} (high half)`);
		} else if (name.startsWith(i32)) {
			claim(value, name);
			if (name.endsWith("_LOCK")) claim(value + L.LOCK_SEQ_OFFSET, `${name}'s sequence`);
		}
	}
	return problems;
}

test("layout: the overlap finder sees a shared word, a lock's sequence word and a word out of range", () => {
	assert.deepEqual(overlaps({ X_A: 1, X_B: 2 }, "X_", undefined, 4, []), []);
	assert.match(overlaps({ X_A: 1, XF_B: 0 }, "X_", "XF_", 4, []).join(), /share word 1/);
	assert.match(overlaps({ X_A_LOCK: 1, X_B: 2 }, "X_", undefined, 4, []).join(), /X_B and X_A_LOCK's sequence share word 2/);
	assert.match(overlaps({ X_A: 4 }, "X_", undefined, 4, []).join(), /outside/);
});

/** The layout's constants, with every per-batch word spelled out (the constants name batch 0's). */
function withBatches(): Words {
	const words: Words = { ...(L as unknown as Words) };
	for (let k = 1; k < L.BATCH_SLOTS; k++) {
		words[`HDR_BATCH_OWNER_${k}`] = L.HDR_BATCH_OWNER + k;
		words[`HDR_BATCH_GEN_${k}`] = L.HDR_BATCH_GEN + k;
		words[`HDR_BATCH_FLAGS_${k}`] = L.HDR_BATCH_FLAGS + k;
		words[`HDRF_BATCH_START_${k}`] = L.HDRF_BATCH_START + k;
		words[`HDRF_BATCH_END_${k}`] = L.HDRF_BATCH_END + k;
	}
	for (let k = 0; k < L.BATCH_SLOTS; k++) {
		words[`N_PURGE_ROOT_${k}`] = L.N_PURGE + 2 * k;
		words[`N_PURGE_NR_${k}`] = L.N_PURGE + 2 * k + 1;
		words[`N_PURGE_HEAD_${k}`] = L.N_PURGE_HEAD + k;
	}
	delete words.N_PURGE;
	delete words.N_PURGE_HEAD;
	return words;
}

test("layout: header, node, record, heap and block words do not overlap and stay in their regions", () => {
	const words = withBatches();
	const heap = H as unknown as Words;
	assert.deepEqual(overlaps(words, "HDR_", "HDRF_", L.HDR_WORDS, ["HDR_WORDS"]), [], "header");
	for (let v = 0; v < 3; v++) for (let k = 0; k < L.BATCH_SLOTS; k++) assert.equal(L.purgeTree(v, k), L.nodeBase(v) + L.N_PURGE + 2 * k);
	assert.ok(L.HDR_WORDS * 4 <= L.HEADER_BYTES, "the header words fit the header bytes");
	assert.deepEqual(overlaps(words, "N_", "NF_", L.N_POOL_TABLE, ["N_POOL_TABLE"]), [], "node block before its pools");
	assert.equal(L.NODE_WORDS, L.N_POOL_TABLE + L.MAX_VA_SIZE_PAGES * L.POOL_WORDS, "the pools end the node block");
	assert.deepEqual(overlaps(words, "POOL_", undefined, L.POOL_WORDS, ["POOL_WORDS"]), [], "pool");
	assert.deepEqual(overlaps(heap, "H_", undefined, H.H_QS, ["H_QS", "H_RING", "H_RING_CAP_MAX"]), [], "heap region before its QS words");
	assert.equal(H.H_RING, H.H_QS + L.HANDLE_MAX, "one QS word per handle, then the ring");
	assert.deepEqual(overlaps(heap, "B_", undefined, H.B_BITMAP, ["B_BITMAP", "B_STARTS"]), [], "block record before its bitmap");
	assert.ok(H.B_BITMAP + H.VMAP_BBMAP_MAX / 32 <= H.B_STARTS, "the mapped bitmap ends before the starts bitmap");
	assert.ok(H.B_STARTS + H.VMAP_BBMAP_MAX / 32 <= H.RAM_BLOCK_WORDS, "the starts bitmap fits the block record");
	assert.ok(H.R_TARGET >= 2 && H.R_TARGET < H.RING_WORDS, "a ring entry: the Float64 address, then its target");
});

const PER_BATCH = ["HDR_BATCH_OWNER", "HDR_BATCH_GEN", "HDR_BATCH_FLAGS", "HDRF_BATCH_START", "HDRF_BATCH_END"];

/**
 * The header constants of `words` (HDR_ one Int32 word, a lock also its sequence word; HDRF_ a
 * Float64 index: two words; per-batch ones BATCH_SLOTS times that) not on the 64-byte line
 * `lines` gives them, or on none; and names `lines` gives that are no constant.
 */
function misplaced(words: Words, lines: ReadonlyArray<{ words: readonly string[] }>): string[] {
	const listed = new Map<string, number>();
	for (const [line, l] of lines.entries()) for (const name of l.words) listed.set(name, line);
	const problems: string[] = [];
	for (const [name, value] of Object.entries(words)) {
		if (typeof value !== "number" || !/^HDRF?_/.test(name) || name === "HDR_WORDS") continue;
		const line = listed.get(name);
		listed.delete(name);
		if (line === undefined) {
			problems.push(`${name} is on no line`);
			continue;
		}
		const f64 = name.startsWith("HDRF_");
		const first = f64 ? 2 * value : value;
		const span = (PER_BATCH.includes(name) ? L.BATCH_SLOTS : 1) * (f64 ? 2 : 1) + (name.endsWith("_LOCK") ? 1 : 0);
		for (let w = first; w < first + span; w++) {
			if (Math.floor(w / 16) !== line) problems.push(`${name}: word ${w} is on line ${Math.floor(w / 16)}, not ${line}`);
		}
	}
	for (const name of listed.keys()) problems.push(`${name} is listed but no header constant`);
	return problems;
}

test("layout: the line checker sees a word on another line, a batch word past its line, a lock's owner, and an unlisted word", () => {
	const lines = [{ words: ["HDR_A", "HDRF_B", "HDR_X_LOCK"] }, { words: ["HDR_BATCH_OWNER"] }];
	assert.deepEqual(misplaced({ HDR_A: 0, HDRF_B: 1, HDR_X_LOCK: 4, HDR_BATCH_OWNER: 16 }, lines), []);
	assert.match(misplaced({ HDR_A: 16, HDRF_B: 1, HDR_X_LOCK: 4, HDR_BATCH_OWNER: 16 }, lines).join(), /HDR_A: word 16 is on line 1/);
	assert.match(
		misplaced({ HDR_A: 0, HDRF_B: 8, HDR_X_LOCK: 4, HDR_BATCH_OWNER: 16 }, lines).join(),
		/HDRF_B: word 16 is on line 1, not 0/,
	);
	assert.match(misplaced({ HDR_A: 0, HDRF_B: 1, HDR_X_LOCK: 15, HDR_BATCH_OWNER: 16 }, lines).join(), /HDR_X_LOCK: word 16/);
	assert.match(
		misplaced({ HDR_A: 0, HDRF_B: 1, HDR_X_LOCK: 4, HDR_BATCH_OWNER: 14 }, lines).join(),
		/HDR_BATCH_OWNER: word 14 is on line 0/,
	);
	assert.match(misplaced({ HDR_A: 0, HDRF_B: 1, HDR_X_LOCK: 4, HDR_BATCH_OWNER: 16, HDR_C: 2 }, lines).join(), /HDR_C is on no line/);
});

test("layout: every header word sits on the 64-byte line HEADER_LINES (and the drawing) gives it, per-batch words and lock owners included", () => {
	assert.deepEqual(misplaced(L as unknown as Words, L.HEADER_LINES), []);
	assert.equal(L.HEADER_LINES.length * 64, L.HDR_WORDS * 4, "the lines cover the header words");
});

test("layout: one record is the union the diagram draws", () => {
	const f64 = { VA_START: L.VA_START, VA_END: L.VA_END, VA_SUBTREE_MAX: L.VA_SUBTREE_MAX };
	assert.deepEqual(overlaps(f64, "-", "VA_", L.REC_I32, []), [], "the Float64 words");
	// Word 2 is a union: subtreeMaxSize (free) or flags and tag (busy, lazy, pooled).
	assert.equal(L.VA_FLAGS, 2 * L.VA_SUBTREE_MAX);
	assert.equal(L.VA_TAG, L.VA_FLAGS + 1);
	const links = {
		VA_LEFT: L.VA_LEFT,
		VA_RIGHT: L.VA_RIGHT,
		VA_PARENT: L.VA_PARENT,
		VA_NEXT: L.VA_NEXT,
		VA_FLAGS: L.VA_FLAGS,
		VA_TAG: L.VA_TAG,
	};
	assert.deepEqual(overlaps(links, "VA_", undefined, L.REC_I32, []), [], "the Int32 words");
	assert.ok(
		Math.min(L.VA_LEFT, L.VA_RIGHT, L.VA_PARENT, L.VA_NEXT) >= 2 * (L.VA_SUBTREE_MAX + 1),
		"the links lie after the Float64 words",
	);
	assert.equal(L.REC_BYTES, 8 * L.REC_F64);
	assert.ok(L.REC_BYTES <= 64, "a record is at most a cache line");
	assert.ok(L.MAX_AREAS_LIMIT < 2 ** 30, "slot << 1 | red fits an Int32 parent word");
});

test("layout: the regions follow each other in the drawn order", () => {
	assert.equal(L.TAG_OFFSET, L.HEADER_BYTES);
	assert.equal(L.HANDLE_OFFSET, L.TAG_OFFSET + L.TAG_MAX * L.TAG_BYTES);
	assert.equal(L.GAUGE_OFFSET, L.HANDLE_OFFSET + L.HANDLE_MAX * L.HANDLE_WORDS * 4);
	assert.equal(L.GAUGE_OFFSET % 64, 0, "each gauge is a cache line of its own");
	assert.equal(L.JOURNAL_OFFSET, L.GAUGE_OFFSET + L.HANDLE_MAX * L.GAUGE_BYTES);
	assert.equal(L.NODE_OFFSET, L.JOURNAL_OFFSET + L.JOURNALS * L.JOURNAL_BYTES);
	assert.equal(L.JOURNAL_OFFSET % 64, 0, "the journals start a cache line");
	assert.equal(L.JOURNAL_BYTES % 64, 0, "each journal starts a cache line");
	assert.ok(16 + 16 * L.JOURNAL_ENTRIES <= L.JOURNAL_BYTES, "the entries fit");
	for (const nodes of [1, 2, 128]) {
		assert.equal(L.extOffset(nodes), L.NODE_OFFSET + nodes * L.NODE_WORDS * 4);
		for (const ext of [0, 1, 17]) {
			const at = L.recordsOffset(nodes, ext);
			assert.ok(at >= L.extOffset(nodes) + ext * 4, "the records start after the extension");
			assert.equal(at % 64, 0, "record 0 starts a cache line");
		}
	}
	assert.equal(L.NODE_OFFSET % 64, 0, "the node table starts a cache line");
	assert.equal((L.NODE_WORDS * 4) % 64, 0, "so does every node block");
});

test("layout: every record accessor reads and writes the word layout.ts names (they use literal offsets)", () => {
	const f64 = new Float64Array(4 * L.REC_F64);
	const i32 = new Int32Array(f64.buffer);
	const va = 2;
	const fw = (field: number) => va * L.REC_F64 + field;
	const iw = (field: number) => va * L.REC_I32 + field;
	R.setVaRange(f64, va, 3, 7);
	assert.deepEqual([f64[fw(L.VA_START)], f64[fw(L.VA_END)], R.vaStart(f64, va), R.vaEnd(f64, va), R.vaSize(f64, va)], [3, 7, 3, 7, 4]);
	R.setVaStart(f64, va, 1);
	R.setVaEnd(f64, va, 9);
	R.setSubtreeMaxSize(f64, va, 5);
	assert.deepEqual([f64[fw(L.VA_START)], f64[fw(L.VA_END)], f64[fw(L.VA_SUBTREE_MAX)], R.subtreeMaxSize(f64, va)], [1, 9, 5, 5]);
	const fields: Array<[number, (i: Int32Array, v: number, x: number) => void, (i: Int32Array, v: number) => number]> = [
		[L.VA_FLAGS, R.setVaFlags, R.vaFlags],
		[L.VA_TAG, R.setVaTag, R.vaTag],
		[L.VA_NEXT, R.setVaNext, R.vaNext],
		[L.VA_LEFT, (i, v, x) => R.setVaChild(i, v, L.VA_LEFT, x), R.vaLeft],
		[L.VA_RIGHT, (i, v, x) => R.setVaChild(i, v, L.VA_RIGHT, x), R.vaRight],
	];
	for (const [field, set, get] of fields) {
		set(i32, va, 40 + field);
		assert.equal(i32[iw(field)], 40 + field, `word ${field}`);
		assert.equal(get(i32, va), 40 + field, `word ${field}`);
	}
	R.setVaFlags(i32, va, L.VA_BUSY | (L.VA_OWNER_MASK << L.VA_OWNER_SHIFT) | L.VA_SMALL_BLOCK);
	assert.equal(R.vaOwner(i32, va), L.VA_OWNER_MASK, "vaOwner reads the bits VA_OWNER_SHIFT and VA_OWNER_MASK name");
	assert.ok(
		L.HANDLE_MAX <= L.VA_OWNER_MASK && L.VA_OWNER_MASK << L.VA_OWNER_SHIFT < L.VA_SMALL_BLOCK,
		"every handle id fits below the block flag",
	);
	R.setVaParentColour(i32, va, 3, true);
	assert.equal(i32[iw(L.VA_PARENT)], (3 << 1) | 1);
	assert.deepEqual([R.vaParent(i32, va), R.vaIsRed(i32, va)], [3, true]);
	R.clearVaLinks(i32, va);
	assert.deepEqual([i32[iw(L.VA_LEFT)], i32[iw(L.VA_RIGHT)], i32[iw(L.VA_PARENT)]], [0, 0, 0]);
	assert.equal(R.recordIsZero(f64, va), false);
	R.clearRecord(f64, va);
	assert.equal(R.recordIsZero(f64, va), true);
	assert.ok(
		f64.every((w) => w === 0),
		"clearRecord touched only its record, and all of it",
	);
	f64[fw(L.REC_F64 - 1)] = 1;
	assert.equal(R.recordIsZero(f64, va), false, "recordIsZero looks at the record's last word");
});

test("layout: every small-area descriptor accessor reads the word descriptor.ts names (they use literal offsets)", () => {
	const i32 = new Int32Array(64);
	const f64 = new Float64Array(i32.buffer);
	const d = 2 * D.D_BITS; // an even word, as every descriptor's first is (records are 40 bytes)
	f64[(d >> 1) + D.DF_START] = 123;
	f64[(d >> 1) + D.DF_SLOT_BYTES] = 456;
	assert.deepEqual([D.blockStartOf(f64, d), D.slotBytesOf(f64, d)], [123, 456]);
	i32[d + D.D_SLOTS] = 40;
	i32[d + D.D_WORDS] = 2;
	i32[D.liveWord(d, 0)] = 0b1011;
	i32[D.liveWord(d, 1)] = 0b1;
	i32[d + D.D_DIRTY_NR] = 7;
	assert.deepEqual([D.liveSlots(i32, d), D.freeSlots(i32, d)], [4, 29], "liveSlots: the LIVE bits; freeSlots: SLOTS - live - DIRTY_NR");
	i32[D.liveWord(d, 0)] = i32[D.liveWord(d, 1)] = 0;
	for (const w of [0, 1, 2, 7]) {
		assert.equal(D.bitWord(d, D.LIVE, w), d + D.D_BITS + D.BITMAPS * w + D.LIVE);
		assert.equal(D.liveWord(d, w), D.bitWord(d, D.LIVE, w));
		assert.equal(D.dirtyWord(d, w), D.bitWord(d, D.DIRTY, w));
		assert.equal(D.freeWord(d, w), D.bitWord(d, D.FREE, w));
		assert.equal(D.remoteWord(d, w), D.bitWord(d, D.REMOTE, w));
		assert.equal(D.markWord(d, w), D.bitWord(d, D.MARK, w));
		assert.equal(D.bitWord(d, D.MARK, w) + 1, D.bitWord(d, D.LIVE, w + 1), "word w of every bitmap, then word w + 1");
	}
	assert.equal(D.D_TAG, D.DF_SLOT_BYTES * 2 + 2, "the tag follows the Float64 words");
	assert.equal(D.D_BITS, D.D_TAG + 1, "the bitmaps follow the tag");
});
