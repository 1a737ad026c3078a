/**
 * Record accessors: the only code that indexes the record table's words (layout.ts draws one
 * record). Everything else names the field it reads: `vaStart(f64, va)`, `setVaNext(i32, va, n)`.
 *
 * They take the table's views, `t.f64` or `t.i32`, which a caller reads once into a local.
 * Hazard: `VaTable.reserve()` may replace the views; read them again after it.
 *
 * The word offsets are written as numbers (REC_F64 = 5, REC_I32 = 10, VA_START = 0, ...), not
 * as the imported constants: each imported constant is a module-variable load in V8's
 * bytecode, and in these one-line functions, inlined at every use, those loads used up the
 * inlining budget of the hot paths (W0 alloc+free pairs fell from 3.3 M/s to 2.2 M/s, with
 * fitIn, lowestFit and afterFree no longer inlined). test/layout.test.ts checks every accessor
 * against layout.ts.
 *
 * The setters of ranges, flags, tags and `next` journal the word's old value first
 * (journal.ts): under a lock, a critical section its holder does not finish is undone. A write
 * of the value a word holds already is skipped.
 *
 * Tree words are not journaled: child and parent links, colours, subtreeMaxSize. Every tree has
 * a list beside it whose links are (the free list, the busy hash, the lazy and purge lists), and
 * a recovery rebuilds every tree its dead holder's locks guarded from that list
 * (tree/repair.ts). They were 25 of the 35 journaled writes of an alloc or free at 10k live
 * areas. Nor are the words of a record taken in the open section (initVa): the journal holds
 * its old words already.
 *
 * Word 2 is a union (layout.ts): subtreeMaxSize for a free-tree record, flags and tag for a
 * busy, lazy or pooled one. Nothing checks which: the caller knows the record's state.
 */
import { logRec, logRecF } from "./journal.ts";
import type { VA_LEFT, VA_RIGHT } from "./layout.ts";

/** A child side of a tree node: VA_LEFT or VA_RIGHT. */
export type Side = typeof VA_LEFT | typeof VA_RIGHT;

// ── Float64 words: the range, and the free tree's augmented value ───────────────────────

export function vaStart(f64: Float64Array, va: number): number {
	return f64[va * 5]!;
}

export function vaEnd(f64: Float64Array, va: number): number {
	return f64[va * 5 + 1]!;
}

/** vaEnd - vaStart (kernel va_size). */
export function vaSize(f64: Float64Array, va: number): number {
	return f64[va * 5 + 1]! - f64[va * 5]!;
}

/** Largest free block in the subtree under free-tree record `va` (0 for nil). */
export function subtreeMaxSize(f64: Float64Array, va: number): number {
	return f64[va * 5 + 2]!;
}

export function setVaStart(f64: Float64Array, va: number, start: number): void {
	const i = va * 5;
	const old = f64[i]!;
	if (old === start) return;
	logRecF(i, old);
	f64[i] = start;
}

export function setVaEnd(f64: Float64Array, va: number, end: number): void {
	const i = va * 5 + 1;
	const old = f64[i]!;
	if (old === end) return;
	logRecF(i, old);
	f64[i] = end;
}

/** End of record `va` := end, unjournaled: setVaEnd() journaled the word in this critical section already (a run that grows area by area). */
export function growVaEnd(f64: Float64Array, va: number, end: number): void {
	f64[va * 5 + 1] = end;
}

export function setVaRange(f64: Float64Array, va: number, start: number, end: number): void {
	setVaStart(f64, va, start);
	setVaEnd(f64, va, end);
}

/** Not journaled: a recovery rebuilds the tree (see above). */
export function setSubtreeMaxSize(f64: Float64Array, va: number, size: number): void {
	f64[va * 5 + 2] = size;
}

/**
 * subtreeMaxSize := 0 for a record entering the free tree, journaled: word 2 held its flags and
 * tag until now, and a rollback that puts it back where it was needs them.
 */
export function initSubtreeMaxSize(f64: Float64Array, va: number): void {
	const i = va * 5 + 2;
	logRecF(i, f64[i]!);
	f64[i] = 0;
}

/**
 * Fill record `va`, which VaTable.allocSlot() took in the current critical section: range,
 * flags and tag (word 2), unjournaled. allocSlot journaled the record's old words as it
 * cleared them, and a rollback (newest entry first) puts those back over whatever is written
 * here, so these writes owe the journal nothing.
 */
export function initVa(f64: Float64Array, i32: Int32Array, va: number, start: number, end: number, flags: number, tag: number): void {
	f64[va * 5] = start;
	f64[va * 5 + 1] = end;
	i32[va * 10 + 4] = flags;
	i32[va * 10 + 5] = tag;
}

/** `next` of record `va`, which VaTable.allocSlot() took in the current critical section: unjournaled, as initVa. */
export function initVaNext(i32: Int32Array, va: number, next: number): void {
	i32[va * 10 + 9] = next;
}

/**
 * Zero record `va`, taken from the slot free list where it was when the critical section
 * began: only its `next` word, the list's link, matters to a rollback (which puts the record
 * back on the list), so only Float64 word 4 (parent and next) is journaled.
 */
export function clearListedRecord(f64: Float64Array, va: number): void {
	logRecF(va * 5 + 4, f64[va * 5 + 4]!);
	zeroRecord(f64, va);
}

/**
 * Zero record `va`, unjournaled: its words mean nothing to a rollback (a handle's kept record,
 * VaTable.allocSlot). Five stores, not fill(): a builtin call, a quarter of allocSlot's time in
 * a profile.
 */
export function zeroRecord(f64: Float64Array, va: number): void {
	const f = va * 5;
	f64[f] = 0;
	f64[f + 1] = 0;
	f64[f + 2] = 0;
	f64[f + 3] = 0;
	f64[f + 4] = 0;
}

/** Zero every word of record `va`. */
export function clearRecord(f64: Float64Array, va: number): void {
	const f = va * 5;
	for (let i = f; i < f + 5; i++) {
		logRecF(i, f64[i]!);
		f64[i] = 0;
	}
}

/** Int32 word `i` of the record table (a run's words: busy hash tables, small-area descriptors, the block index). */
export function setRecWord(i32: Int32Array, i: number, v: number): void {
	const old = i32[i]!;
	if (old === v) return;
	logRec(i, old);
	i32[i] = v;
}

/** setRecWord() with Atomics.store, for a word threads holding no lock read. */
export function setRecWordAtomic(i32: Int32Array, i: number, v: number): void {
	logRec(i, i32[i]!);
	Atomics.store(i32, i, v);
}

/** Float64 word `i` of the record table (a run's words). */
export function setRecWordF(f64: Float64Array, i: number, v: number): void {
	const old = f64[i]!;
	if (old === v) return;
	logRecF(i, old);
	f64[i] = v;
}

// ── Int32 words: state, tag, links ───────────────────────────────────────────────────────

/** State (VA_BUSY, VA_LAZY, VA_POOL), vn_id and owner of a busy, lazy or pooled record. */
export function vaFlags(i32: Int32Array, va: number): number {
	return i32[va * 10 + 4]!;
}

/** The id of the handle that allocated a busy or lazy record (flags from bit VA_OWNER_SHIFT, 16; 11 bits), 0 for none. */
export function vaOwner(i32: Int32Array, va: number): number {
	return (i32[va * 10 + 4]! >>> 16) & 0x7ff;
}

export function setVaFlags(i32: Int32Array, va: number, flags: number): void {
	const i = va * 10 + 4;
	const old = i32[i]!;
	if (old === flags) return;
	logRec(i, old);
	i32[i] = flags;
}

/** Tag id of a busy or lazy record (0: none). */
export function vaTag(i32: Int32Array, va: number): number {
	return i32[va * 10 + 5]!;
}

export function setVaTag(i32: Int32Array, va: number, tag: number): void {
	const i = va * 10 + 5;
	const old = i32[i]!;
	if (old === tag) return;
	logRec(i, old);
	i32[i] = tag;
}

/** The next record on whichever list `va` is on (free, lazy, purge, pool or slot list). */
export function vaNext(i32: Int32Array, va: number): number {
	return i32[va * 10 + 9]!;
}

export function setVaNext(i32: Int32Array, va: number, next: number): void {
	const i = va * 10 + 9;
	const old = i32[i]!;
	if (old === next) return;
	logRec(i, old);
	i32[i] = next;
}

export function vaLeft(i32: Int32Array, va: number): number {
	return i32[va * 10 + 6]!;
}

export function vaRight(i32: Int32Array, va: number): number {
	return i32[va * 10 + 7]!;
}

export function vaChild(i32: Int32Array, va: number, side: Side): number {
	return i32[va * 10 + side]!;
}

/** A child link, not journaled: a recovery rebuilds every tree from the list beside it (tree/repair.ts). */
export function setVaChild(i32: Int32Array, va: number, side: Side, child: number): void {
	i32[va * 10 + side] = child;
}

/** Parent slot (the parent word holds it shifted left by one). */
export function vaParent(i32: Int32Array, va: number): number {
	return i32[va * 10 + 8]! >>> 1;
}

/** Whether tree record `va` is red (bit 0 of its parent word); nil is black. */
export function vaIsRed(i32: Int32Array, va: number): boolean {
	return (i32[va * 10 + 8]! & 1) === 1;
}

/** Set the parent, keeping the colour. Not journaled, nor are the colour setters below (see above). */
export function setVaParent(i32: Int32Array, va: number, parent: number): void {
	const w = va * 10 + 8;
	i32[w] = (parent << 1) | (i32[w]! & 1);
}

/** Set parent and colour at once (a new leaf, or a node taking another's place). */
export function setVaParentColour(i32: Int32Array, va: number, parent: number, red: boolean): void {
	i32[va * 10 + 8] = (parent << 1) | (red ? 1 : 0);
}

export function setVaRed(i32: Int32Array, va: number): void {
	i32[va * 10 + 8]! |= 1;
}

/** Paint `va` black; nil stays untouched (record 0 is never written). */
export function setVaBlack(i32: Int32Array, va: number): void {
	if (va !== 0) i32[va * 10 + 8]! &= ~1;
}

/** Unlink `va` from every tree: no children, no parent, black. Not journaled: trees are rebuilt on recovery (tree/repair.ts). */
export function clearVaLinks(i32: Int32Array, va: number): void {
	const i = va * 10 + 6;
	i32[i] = 0;
	i32[i + 1] = 0;
	i32[i + 2] = 0;
}

/** Whether every word of record `va` is zero (record 0, nil, must stay so). */
export function recordIsZero(f64: Float64Array, va: number): boolean {
	const f = va * 5;
	for (let w = f; w < f + 5; w++) if (f64[w] !== 0) return false;
	return true;
}
