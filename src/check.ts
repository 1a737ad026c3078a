/**
 * The O(n) validator. Walks every structure in the buffer and throws ECORRUPT naming the first
 * broken invariant. It trusts nothing the fast paths maintain: counters, subtreeMaxSize, the
 * free list and the slot accounting are all recomputed from the records.
 */
import { corrupt, hex } from "./errors.ts";
import {
	HDR_BUSY_NR,
	HDR_BUSY_ROOT,
	HDR_CAPACITY,
	HDR_FREE_HEAD,
	HDR_FREE_NR,
	HDR_FREE_ROOT,
	HDR_LAZY_HEAD,
	HDR_LAZY_NR,
	HDR_MAGIC,
	HDR_MAX_CAPACITY,
	HDR_PURGE_HEAD,
	HDR_PURGE_LOCK,
	HDR_PURGE_NR,
	HDR_SLOT_FREE,
	HDR_SLOT_FREE_NR,
	HDR_SLOT_HIGH,
	HDR_VERSION,
	HDRF_BUSY_BYTES,
	HDRF_FREE_BYTES,
	HDRF_LAZY_MAX,
	HDRF_LAZY_MIN,
	HDRF_LAZY_PAGES,
	HDRF_PAGE_SIZE,
	MAGIC,
	REC_F64,
	REC_I32,
	VA_BUSY,
	VA_END,
	VA_FLAGS,
	VA_LAZY,
	VA_LEFT,
	VA_NEXT,
	VA_PARENT,
	VA_RIGHT,
	VA_START,
	VA_SUBTREE_MAX,
	VERSION,
} from "./layout.ts";
import type { VaTable } from "./va-table.ts";

export function checkSpace(t: VaTable, spaceStart: number, spaceEnd: number): void {
	if (t.capacity !== t.hdr[HDR_CAPACITY]) t.remap();
	const hdr = t.hdr;
	if (hdr[HDR_MAGIC] !== MAGIC || hdr[HDR_VERSION] !== VERSION) corrupt(`header: magic/version ${hex(hdr[HDR_MAGIC]!)}/${hdr[HDR_VERSION]} is not a vmap space`);
	const high = hdr[HDR_SLOT_HIGH]!;
	if (!(high >= 1 && high <= hdr[HDR_CAPACITY]! && hdr[HDR_CAPACITY]! <= hdr[HDR_MAX_CAPACITY]!)) {
		corrupt(`slots: SLOT_HIGH ${high}, CAPACITY ${hdr[HDR_CAPACITY]}, MAX_CAPACITY ${hdr[HDR_MAX_CAPACITY]} out of order`);
	}
	for (let w = 0; w < REC_F64; w++) if (t.f64[w] !== 0) corrupt(`slots: record 0 (nil) has been written (word ${w})`);

	const seen = new Uint8Array(high);
	const pageSize = t.hdrF[HDRF_PAGE_SIZE]!;
	const free = walkTree(t, "free tree", HDR_FREE_ROOT, true, seen, spaceStart, spaceEnd, pageSize);
	const busy = walkTree(t, "busy tree", HDR_BUSY_ROOT, false, seen, spaceStart, spaceEnd, pageSize);

	// Free blocks: coalesced, the list is the tree's order, counters agree.
	let freeBytes = 0;
	let listed = t.hdr[HDR_FREE_HEAD]!;
	for (let i = 0; i < free.length; i++) {
		const va = free[i]!;
		if (listed !== va) corrupt(`free list: entry ${i} is record ${listed}, the tree's ${i}th block is record ${va}`);
		listed = t.i32[va * REC_I32 + VA_NEXT]!;
		const s = t.f64[va * REC_F64 + VA_START]!;
		const e = t.f64[va * REC_F64 + VA_END]!;
		freeBytes += e - s;
		if (i > 0) {
			const prevEnd = t.f64[free[i - 1]! * REC_F64 + VA_END]!;
			if (prevEnd >= s) corrupt(`free tree: blocks ending at ${hex(prevEnd)} and starting at ${hex(s)} ${prevEnd === s ? "touch (not merged)" : "overlap"}`);
		}
	}
	if (listed !== 0) corrupt(`free list: continues past the tree's last block, at record ${listed}`);
	if (free.length !== hdr[HDR_FREE_NR]) corrupt(`free tree: holds ${free.length} blocks, header says ${hdr[HDR_FREE_NR]}`);
	if (freeBytes !== t.hdrF[HDRF_FREE_BYTES]) corrupt(`free tree: holds ${freeBytes} bytes, header says ${t.hdrF[HDRF_FREE_BYTES]}`);

	// The busy tree holds busy and lazy areas; every lazy one is on the lazy list or in the
	// purge batch, exactly once.
	let busyBytes = 0;
	let lazyBytes = 0;
	const lazyFlagged = new Set<number>();
	for (const va of busy) {
		const size = t.f64[va * REC_F64 + VA_END]! - t.f64[va * REC_F64 + VA_START]!;
		const flags = t.i32[va * REC_I32 + VA_FLAGS];
		if (flags === VA_BUSY) busyBytes += size;
		else if (flags === VA_LAZY) {
			lazyBytes += size;
			lazyFlagged.add(va);
		} else corrupt(`busy tree: record ${va} has state flags ${flags}, neither busy nor lazy`);
	}
	if (busy.length !== hdr[HDR_BUSY_NR]) corrupt(`busy tree: holds ${busy.length} areas, header says ${hdr[HDR_BUSY_NR]}`);
	if (busyBytes !== t.hdrF[HDRF_BUSY_BYTES]) corrupt(`busy tree: holds ${busyBytes} bytes in busy areas, header says ${t.hdrF[HDRF_BUSY_BYTES]}`);
	const lazy = walkLazy(t, "lazy list", HDR_LAZY_HEAD, HDR_LAZY_NR, lazyFlagged);
	const batch = walkLazy(t, "purge batch", HDR_PURGE_HEAD, HDR_PURGE_NR, lazyFlagged);
	if (lazyFlagged.size !== 0) corrupt(`busy tree: ${lazyFlagged.size} lazy areas are on neither the lazy list nor the purge batch (record ${[...lazyFlagged][0]})`);
	if (batch.areas !== 0 && hdr[HDR_PURGE_LOCK] === 0) corrupt(`purge batch: holds ${batch.areas} areas but no purge holds the purge mutex`);
	if ((lazy.bytes + batch.bytes) / pageSize !== t.hdrF[HDRF_LAZY_PAGES]) {
		corrupt(`vmapLazyNr: header says ${t.hdrF[HDRF_LAZY_PAGES]} pages, the lazy list and purge batch hold ${(lazy.bytes + batch.bytes) / pageSize}`);
	}
	if (lazy.min !== t.hdrF[HDRF_LAZY_MIN] || lazy.max !== t.hdrF[HDRF_LAZY_MAX]) {
		corrupt(`lazy list: covers [${lazy.min}, ${lazy.max}), the incremental flush range says [${t.hdrF[HDRF_LAZY_MIN]}, ${t.hdrF[HDRF_LAZY_MAX]})`);
	}

	// Busy and free never overlap: merge the two address-ordered sequences.
	for (let i = 0, j = 0; i < free.length && j < busy.length; ) {
		const f = free[i]!;
		const b = busy[j]!;
		const fs = t.f64[f * REC_F64 + VA_START]!;
		const fe = t.f64[f * REC_F64 + VA_END]!;
		const bs = t.f64[b * REC_F64 + VA_START]!;
		const be = t.f64[b * REC_F64 + VA_END]!;
		if (fs < be && bs < fe) corrupt(`busy area [${hex(bs)}, ${hex(be)}) overlaps free block [${hex(fs)}, ${hex(fe)})`);
		if (fe <= bs) i++;
		else j++;
	}
	if (freeBytes + busyBytes + lazyBytes !== spaceEnd - spaceStart) {
		corrupt(`accounting: free ${freeBytes} + busy ${busyBytes} + lazy ${lazyBytes} bytes != space ${spaceEnd - spaceStart} bytes`);
	}

	// Slots: every record below SLOT_HIGH is in exactly one structure.
	// (Lazy records were counted in the busy tree; their lists were checked against it above.)
	let onFreeList = 0;
	for (let va = hdr[HDR_SLOT_FREE]!; va !== 0; va = t.i32[va * REC_I32 + VA_NEXT]!) {
		if (va >= high) corrupt(`slot free list: record ${va} is at or past SLOT_HIGH ${high}`);
		if (seen[va]) corrupt(`slot free list: record ${va} is also in use (or listed twice)`);
		seen[va] = 1;
		onFreeList++;
	}
	if (onFreeList !== hdr[HDR_SLOT_FREE_NR]) corrupt(`slot free list: holds ${onFreeList} records, header says ${hdr[HDR_SLOT_FREE_NR]}`);
	const accounted = free.length + busy.length + onFreeList + 1;
	if (accounted !== high) corrupt(`slots: ${accounted - 1} records accounted for (free ${free.length}, busy ${busy.length}, unused ${onFreeList}) but ${high - 1} handed out`);
}

/**
 * Walk a list of lazy records (the lazy list or the purge batch): each must be a lazy area of
 * the busy tree, taken off `lazyFlagged` so that none is listed twice or left out. Returns the
 * bytes listed and the range they cover (+-Infinity when empty).
 */
function walkLazy(t: VaTable, name: string, headWord: number, nrWord: number, lazyFlagged: Set<number>) {
	let areas = 0;
	let bytes = 0;
	let min = Infinity;
	let max = -Infinity;
	for (let va = t.hdr[headWord]!; va !== 0; va = t.i32[va * REC_I32 + VA_NEXT]!) {
		if (!lazyFlagged.delete(va)) corrupt(`${name}: record ${va} is not a lazy area of the busy tree (or is listed twice)`);
		const s = t.f64[va * REC_F64 + VA_START]!;
		const e = t.f64[va * REC_F64 + VA_END]!;
		areas++;
		bytes += e - s;
		if (s < min) min = s;
		if (e > max) max = e;
	}
	if (areas !== t.hdr[nrWord]) corrupt(`${name}: holds ${areas} areas, header says ${t.hdr[nrWord]}`);
	return { areas, bytes, min, max };
}

/**
 * In-order walk of one tree, checking the red-black properties, parent links, key order, page
 * alignment, the bounds of the space and, if `aug`, every subtreeMaxSize. Returns the slots in
 * address order. `seen` marks records so that one record in two places is caught.
 */
function walkTree(
	t: VaTable,
	name: string,
	rootWord: number,
	aug: boolean,
	seen: Uint8Array,
	spaceStart: number,
	spaceEnd: number,
	pageSize: number,
): number[] {
	const out: number[] = [];
	const f64 = t.f64;
	const i32 = t.i32;
	const root = t.hdr[rootWord]!;
	if (root === 0) return out;
	if ((i32[root * REC_I32 + VA_PARENT]! >>> 1) !== 0) corrupt(`${name}: root ${root} has a parent`);
	if (i32[root * REC_I32 + VA_PARENT]! & 1) corrupt(`${name}: root ${root} is red`);
	let prevEnd = -Infinity;

	// Returns the black height of the subtree and its maximal block size.
	const visit = (x: number, depth: number): { blacks: number; max: number } => {
		if (x === 0) return { blacks: 1, max: 0 };
		if (depth > 128) corrupt(`${name}: deeper than 128 levels (a cycle?) at record ${x}`);
		if (x >= seen.length) corrupt(`${name}: record ${x} is at or past SLOT_HIGH ${seen.length}`);
		if (seen[x]) corrupt(`${name}: record ${x} is reached twice (or is in another structure too)`);
		seen[x] = 1;
		const w = x * REC_I32;
		const red = (i32[w + VA_PARENT]! & 1) === 1;
		const l = i32[w + VA_LEFT]!;
		const r = i32[w + VA_RIGHT]!;
		for (const c of [l, r]) {
			if (c === 0) continue;
			if (c >= seen.length) corrupt(`${name}: record ${x} links child ${c}, at or past SLOT_HIGH ${seen.length}`);
			if ((i32[c * REC_I32 + VA_PARENT]! >>> 1) !== x) corrupt(`${name}: record ${c}'s parent is ${i32[c * REC_I32 + VA_PARENT]! >>> 1}, but record ${x} links it as a child`);
			if (red && (i32[c * REC_I32 + VA_PARENT]! & 1)) corrupt(`${name}: red record ${x} has red child ${c}`);
		}
		const left = visit(l, depth + 1);
		const s = f64[x * REC_F64 + VA_START]!;
		const e = f64[x * REC_F64 + VA_END]!;
		if (!(s < e)) corrupt(`${name}: record ${x} is empty or inverted: [${hex(s)}, ${hex(e)})`);
		if (s < spaceStart || e > spaceEnd) corrupt(`${name}: record ${x} [${hex(s)}, ${hex(e)}) lies outside the space [${hex(spaceStart)}, ${hex(spaceEnd)})`);
		if (s % pageSize !== 0 || e % pageSize !== 0) corrupt(`${name}: record ${x} [${hex(s)}, ${hex(e)}) is not page aligned (pageSize ${pageSize})`);
		if (s < prevEnd) corrupt(`${name}: record ${x} starts at ${hex(s)}, before the previous one ends at ${hex(prevEnd)} (order or overlap)`);
		prevEnd = e;
		out.push(x);
		const right = visit(r, depth + 1);
		if (left.blacks !== right.blacks) corrupt(`${name}: record ${x} has black heights ${left.blacks} (left) and ${right.blacks} (right)`);
		const max = Math.max(e - s, left.max, right.max);
		if (aug && f64[x * REC_F64 + VA_SUBTREE_MAX] !== max) {
			corrupt(`${name}: record ${x} [${hex(s)}, ${hex(e)}) has subtreeMaxSize ${f64[x * REC_F64 + VA_SUBTREE_MAX]}, recomputed ${max}`);
		}
		return { blacks: left.blacks + (red ? 0 : 1), max };
	};
	visit(root, 0);
	return out;
}
