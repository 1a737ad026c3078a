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

/** `beat` is called every few thousand records: a long check must not look like a dead lock owner. */
export function checkSpace(t: VaTable, spaceStart: number, spaceEnd: number, beat: () => void): void {
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
	const free = walkTree(t, "free tree", HDR_FREE_ROOT, true, seen, spaceStart, spaceEnd, pageSize, beat);
	const busy = walkTree(t, "busy tree", HDR_BUSY_ROOT, false, seen, spaceStart, spaceEnd, pageSize, beat);

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

	// The busy tree holds busy areas only; lazy areas are on the lazy list or in the purge batch.
	let busyBytes = 0;
	for (const va of busy) {
		busyBytes += t.f64[va * REC_F64 + VA_END]! - t.f64[va * REC_F64 + VA_START]!;
		if (t.i32[va * REC_I32 + VA_FLAGS] !== VA_BUSY) corrupt(`busy tree: record ${va} has state flags ${t.i32[va * REC_I32 + VA_FLAGS]}, not busy`);
	}
	if (busy.length !== hdr[HDR_BUSY_NR]) corrupt(`busy tree: holds ${busy.length} areas, header says ${hdr[HDR_BUSY_NR]}`);
	if (busyBytes !== t.hdrF[HDRF_BUSY_BYTES]) corrupt(`busy tree: holds ${busyBytes} bytes in busy areas, header says ${t.hdrF[HDRF_BUSY_BYTES]}`);
	const lazy = walkLazy(t, "lazy list", HDR_LAZY_HEAD, HDR_LAZY_NR, seen, spaceStart, spaceEnd, pageSize);
	const batch = walkLazy(t, "purge batch", HDR_PURGE_HEAD, HDR_PURGE_NR, seen, spaceStart, spaceEnd, pageSize);
	if (batch.areas.length !== 0 && hdr[HDR_PURGE_LOCK] === 0) corrupt(`purge batch: holds ${batch.areas.length} areas but no purge holds the purge mutex`);
	const lazyBytes = lazy.bytes + batch.bytes;
	if (lazyBytes / pageSize !== t.lazyPages()) {
		corrupt(`vmapLazyNr: header says ${t.lazyPages()} pages, the lazy list and purge batch hold ${lazyBytes / pageSize}`);
	}
	if (lazy.min !== t.hdrF[HDRF_LAZY_MIN] || lazy.max !== t.hdrF[HDRF_LAZY_MAX]) {
		corrupt(`lazy list: covers [${lazy.min}, ${lazy.max}), the incremental flush range says [${t.hdrF[HDRF_LAZY_MIN]}, ${t.hdrF[HDRF_LAZY_MAX]})`);
	}

	// Busy, lazy and free ranges never overlap, and together they are the space.
	const all: Array<[number, number, string]> = [];
	for (const va of free) all.push([t.f64[va * REC_F64 + VA_START]!, t.f64[va * REC_F64 + VA_END]!, "free block"]);
	for (const va of busy) all.push([t.f64[va * REC_F64 + VA_START]!, t.f64[va * REC_F64 + VA_END]!, "busy area"]);
	for (const va of [...lazy.areas, ...batch.areas]) all.push([t.f64[va * REC_F64 + VA_START]!, t.f64[va * REC_F64 + VA_END]!, "lazy area"]);
	all.sort((a, b) => a[0] - b[0]);
	for (let i = 1; i < all.length; i++) {
		const [ps, pe, pw] = all[i - 1]!;
		const [s, e, w] = all[i]!;
		if (s < pe) corrupt(`${w} [${hex(s)}, ${hex(e)}) overlaps ${pw} [${hex(ps)}, ${hex(pe)})`);
	}
	if (freeBytes + busyBytes + lazyBytes !== spaceEnd - spaceStart) {
		corrupt(`accounting: free ${freeBytes} + busy ${busyBytes} + lazy ${lazyBytes} bytes != space ${spaceEnd - spaceStart} bytes`);
	}

	// Slots: every record below SLOT_HIGH is in exactly one structure.
	let onFreeList = 0;
	for (let va = hdr[HDR_SLOT_FREE]!; va !== 0; va = t.i32[va * REC_I32 + VA_NEXT]!) {
		if (va >= high) corrupt(`slot free list: record ${va} is at or past SLOT_HIGH ${high}`);
		if (seen[va]) corrupt(`slot free list: record ${va} is also in use (or listed twice)`);
		seen[va] = 1;
		onFreeList++;
	}
	if (onFreeList !== hdr[HDR_SLOT_FREE_NR]) corrupt(`slot free list: holds ${onFreeList} records, header says ${hdr[HDR_SLOT_FREE_NR]}`);
	const lazyNr = lazy.areas.length + batch.areas.length;
	const accounted = free.length + busy.length + lazyNr + onFreeList + 1;
	if (accounted !== high) {
		corrupt(`slots: ${accounted - 1} records accounted for (free ${free.length}, busy ${busy.length}, lazy ${lazyNr}, unused ${onFreeList}) but ${high - 1} handed out`);
	}
}

/**
 * Walk a list of lazy records (the lazy list or the purge batch): each must be flagged lazy,
 * page aligned, inside the space, and in no other structure. Returns the records, their bytes
 * and the range they cover (+-Infinity when empty).
 */
function walkLazy(t: VaTable, name: string, headWord: number, nrWord: number, seen: Uint8Array, spaceStart: number, spaceEnd: number, pageSize: number) {
	const areas: number[] = [];
	let bytes = 0;
	let min = Infinity;
	let max = -Infinity;
	for (let va = t.hdr[headWord]!; va !== 0; va = t.i32[va * REC_I32 + VA_NEXT]!) {
		if (va >= seen.length) corrupt(`${name}: record ${va} is at or past SLOT_HIGH ${seen.length}`);
		if (seen[va]) corrupt(`${name}: record ${va} is reached twice (or is in another structure too)`);
		seen[va] = 1;
		if (t.i32[va * REC_I32 + VA_FLAGS] !== VA_LAZY) corrupt(`${name}: record ${va} has state flags ${t.i32[va * REC_I32 + VA_FLAGS]}, not lazy`);
		const s = t.f64[va * REC_F64 + VA_START]!;
		const e = t.f64[va * REC_F64 + VA_END]!;
		if (!(s < e) || s < spaceStart || e > spaceEnd || s % pageSize !== 0 || e % pageSize !== 0) {
			corrupt(`${name}: record ${va} [${hex(s)}, ${hex(e)}) is empty, outside the space or not page aligned`);
		}
		areas.push(va);
		bytes += e - s;
		if (s < min) min = s;
		if (e > max) max = e;
	}
	if (areas.length !== t.hdr[nrWord]) corrupt(`${name}: holds ${areas.length} areas, header says ${t.hdr[nrWord]}`);
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
	beat: () => void,
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
		if ((out.length & 4095) === 4095) beat();
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
