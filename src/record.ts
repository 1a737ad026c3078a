/**
 * Record accessors: the only code that indexes the record table's words (layout.ts draws one
 * record). Everything else names the field it reads: `vaStart(t, va)`, `setVaNext(t, va, n)`.
 *
 * The views are read from the table at every call, never cached by callers across a call that
 * may grow the table (`VaTable.reserve()` replaces them). V8 inlines these one-line functions;
 * `vmap bench` measured no difference against the raw expressions they replaced.
 *
 * Word 2 is a union (layout.ts): subtreeMaxSize for a free-tree record, flags and tag for a
 * busy, lazy or pooled one. Nothing checks which: the caller knows the record's state.
 */
import { REC_F64, REC_I32, VA_END, VA_FLAGS, VA_LEFT, VA_NEXT, VA_PARENT, VA_RIGHT, VA_START, VA_SUBTREE_MAX, VA_TAG } from "./layout.ts";
import type { VaTable } from "./va-table.ts";

/** A child side of a tree node: VA_LEFT or VA_RIGHT. */
export type Side = typeof VA_LEFT | typeof VA_RIGHT;

// ── Float64 words: the range, and the free tree's augmented value ───────────────────────

export function vaStart(t: VaTable, va: number): number {
	return t.f64[va * REC_F64 + VA_START]!;
}

export function vaEnd(t: VaTable, va: number): number {
	return t.f64[va * REC_F64 + VA_END]!;
}

/** vaEnd - vaStart (kernel va_size). */
export function vaSize(t: VaTable, va: number): number {
	const f = va * REC_F64;
	return t.f64[f + VA_END]! - t.f64[f + VA_START]!;
}

/** Largest free block in the subtree under free-tree record `va` (0 for nil). */
export function subtreeMaxSize(t: VaTable, va: number): number {
	return t.f64[va * REC_F64 + VA_SUBTREE_MAX]!;
}

export function setVaStart(t: VaTable, va: number, start: number): void {
	t.f64[va * REC_F64 + VA_START] = start;
}

export function setVaEnd(t: VaTable, va: number, end: number): void {
	t.f64[va * REC_F64 + VA_END] = end;
}

export function setVaRange(t: VaTable, va: number, start: number, end: number): void {
	const f = va * REC_F64;
	t.f64[f + VA_START] = start;
	t.f64[f + VA_END] = end;
}

export function setSubtreeMaxSize(t: VaTable, va: number, size: number): void {
	t.f64[va * REC_F64 + VA_SUBTREE_MAX] = size;
}

/** Zero every word of record `va`. */
export function clearRecord(t: VaTable, va: number): void {
	const f = va * REC_F64;
	t.f64.fill(0, f, f + REC_F64);
}

// ── Int32 words: state, tag, links ───────────────────────────────────────────────────────

/** State (VA_BUSY, VA_LAZY, VA_POOL) and vn_id of a busy, lazy or pooled record. */
export function vaFlags(t: VaTable, va: number): number {
	return t.i32[va * REC_I32 + VA_FLAGS]!;
}

export function setVaFlags(t: VaTable, va: number, flags: number): void {
	t.i32[va * REC_I32 + VA_FLAGS] = flags;
}

/** Tag id of a busy or lazy record (0: none). */
export function vaTag(t: VaTable, va: number): number {
	return t.i32[va * REC_I32 + VA_TAG]!;
}

export function setVaTag(t: VaTable, va: number, tag: number): void {
	t.i32[va * REC_I32 + VA_TAG] = tag;
}

/** The next record on whichever list `va` is on (free, lazy, purge, pool or slot list). */
export function vaNext(t: VaTable, va: number): number {
	return t.i32[va * REC_I32 + VA_NEXT]!;
}

export function setVaNext(t: VaTable, va: number, next: number): void {
	t.i32[va * REC_I32 + VA_NEXT] = next;
}

export function vaLeft(t: VaTable, va: number): number {
	return t.i32[va * REC_I32 + VA_LEFT]!;
}

export function vaRight(t: VaTable, va: number): number {
	return t.i32[va * REC_I32 + VA_RIGHT]!;
}

export function vaChild(t: VaTable, va: number, side: Side): number {
	return t.i32[va * REC_I32 + side]!;
}

export function setVaChild(t: VaTable, va: number, side: Side, child: number): void {
	t.i32[va * REC_I32 + side] = child;
}

/** Parent slot (the parent word holds it shifted left by one). */
export function vaParent(t: VaTable, va: number): number {
	return t.i32[va * REC_I32 + VA_PARENT]! >>> 1;
}

/** Whether tree record `va` is red (bit 0 of its parent word); nil is black. */
export function vaIsRed(t: VaTable, va: number): boolean {
	return (t.i32[va * REC_I32 + VA_PARENT]! & 1) === 1;
}

/** Set the parent, keeping the colour. */
export function setVaParent(t: VaTable, va: number, parent: number): void {
	const w = va * REC_I32 + VA_PARENT;
	t.i32[w] = (parent << 1) | (t.i32[w]! & 1);
}

/** Set parent and colour at once (a new leaf, or a node taking another's place). */
export function setVaParentColour(t: VaTable, va: number, parent: number, red: boolean): void {
	t.i32[va * REC_I32 + VA_PARENT] = (parent << 1) | (red ? 1 : 0);
}

export function setVaRed(t: VaTable, va: number): void {
	t.i32[va * REC_I32 + VA_PARENT]! |= 1;
}

/** Paint `va` black; nil stays untouched (record 0 is never written). */
export function setVaBlack(t: VaTable, va: number): void {
	if (va !== 0) t.i32[va * REC_I32 + VA_PARENT]! &= ~1;
}

/** Unlink `va` from every tree: no children, no parent, black. */
export function clearVaLinks(t: VaTable, va: number): void {
	const w = va * REC_I32;
	t.i32[w + VA_LEFT] = 0;
	t.i32[w + VA_RIGHT] = 0;
	t.i32[w + VA_PARENT] = 0;
}

/** Whether every word of record `va` is zero (record 0, nil, must stay so). */
export function recordIsZero(t: VaTable, va: number): boolean {
	const f = va * REC_F64;
	for (let w = f; w < f + REC_F64; w++) if (t.f64[w] !== 0) return false;
	return true;
}
