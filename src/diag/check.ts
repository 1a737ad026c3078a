/**
 * The diag layer (src/diag/): reading a space whole, for people and tests: the validator
 * (this file, check-node.ts, check-walk.ts), the listings (info.ts), the lock-free statistics
 * (stats.ts) and the snapshot (snapshot.ts). It may import core/ and every layer below; it
 * changes nothing in the buffer.
 *
 * The O(n) validator. Walks every structure in the buffer and throws ECORRUPT naming the first
 * broken invariant. It trusts nothing the fast paths maintain: counters, subtreeMaxSize, the
 * free list and the slot accounting are all recomputed from the records.
 *
 * The steps: the header; free space (the free tree, its list, its counters); every node
 * (check-node.ts); coverage (no two ranges overlap, and together they are the space); the
 * small-area blocks (small/check.ts); the busy hashes' budget; every record accounted for.
 */
import { corrupt, hex } from "../api/errors.ts";
import {
	HDR_CAPACITY,
	HDR_FREE_HEAD,
	HDR_FREE_NR,
	HDR_FREE_ROOT,
	HDR_HASH_BUDGET,
	HDR_HASH_RECORDS,
	HDR_MAGIC,
	HDR_MAX_CAPACITY,
	HDR_SLOT_FREE,
	HDR_SLOT_FREE_NR,
	HANDLE_MAX,
	HDR_SLOT_HIGH,
	HDR_VERSION,
	HDRF_FREE_BYTES,
	MAGIC,
	VERSION,
} from "../buffer/layout.ts";
import { recordIsZero, vaEnd, vaNext, vaStart } from "../buffer/record.ts";
import { keptWord } from "../buffer/gauges.ts";
import type { VaTable } from "../buffer/va-table.ts";
import { checkBlocks } from "../small/check.ts";
import { checkNode } from "./check-node.ts";
import { Walk, walkTree } from "./check-walk.ts";

/** Validate the space of `t`, [spaceStart, spaceEnd), as handle `self` sees it (its own small-area blocks in full). */
export function checkSpace(t: VaTable, spaceStart: number, spaceEnd: number, self: number): void {
	if (t.capacity !== t.hdr[HDR_CAPACITY]) t.remap();
	checkHeader(t);
	const w = new Walk(t, spaceStart, spaceEnd);
	const freeBytes = checkFreeSpace(w);
	const used = { busy: 0, lazy: 0, pooled: 0 };
	let hashTables = 0;
	const blockAreas: number[] = [];
	for (let v = 0; v < t.nodes; v++) {
		const n = checkNode(w, v, blockAreas);
		used.busy += n.busy;
		used.lazy += n.lazy;
		used.pooled += n.pooled;
		hashTables += n.hashRecords;
	}
	checkCoverage(w, freeBytes, used);
	w.records += checkBlocks(t, self, blockAreas, w.seen, w.bounds.pageSize);
	const hdr = t.hdr;
	if (hashTables !== hdr[HDR_HASH_RECORDS] || hashTables > hdr[HDR_HASH_BUDGET]!) {
		corrupt(
			`busy hash: the tables hold ${hashTables} records, the header says ${hdr[HDR_HASH_RECORDS]} of a budget of ${hdr[HDR_HASH_BUDGET]}`,
		);
	}
	checkSlots(w);
}

/** A vmap space of this version, its slot words in order, record 0 (nil) untouched. */
function checkHeader(t: VaTable): void {
	const hdr = t.hdr;
	if (hdr[HDR_MAGIC] !== MAGIC || hdr[HDR_VERSION] !== VERSION)
		corrupt(`header: magic/version ${hex(hdr[HDR_MAGIC]!)}/${hdr[HDR_VERSION]} is not a vmap space`);
	const high = hdr[HDR_SLOT_HIGH]!;
	if (!(high >= 1 && high <= hdr[HDR_CAPACITY]! && hdr[HDR_CAPACITY]! <= hdr[HDR_MAX_CAPACITY]!)) {
		corrupt(`slots: SLOT_HIGH ${high}, CAPACITY ${hdr[HDR_CAPACITY]}, MAX_CAPACITY ${hdr[HDR_MAX_CAPACITY]} out of order`);
	}
	if (!recordIsZero(t.f64, 0)) corrupt("slots: record 0 (nil) has been written");
}

/** Free blocks: the augmented tree; coalesced; the list is the tree's order; the counters agree. Returns their bytes. */
function checkFreeSpace(w: Walk): number {
	const { hdr, hdrF, f64, i32 } = w.t;
	const free = walkTree(w, "free tree", HDR_FREE_ROOT, true);
	let bytes = 0;
	let listed = hdr[HDR_FREE_HEAD]!;
	for (let i = 0; i < free.length; i++) {
		const va = free[i]!;
		if (listed !== va) corrupt(`free list: entry ${i} is record ${listed}, the tree's ${i}th block is record ${va}`);
		listed = vaNext(i32, va);
		const s = vaStart(f64, va);
		const e = vaEnd(f64, va);
		bytes += e - s;
		w.all.push([s, e, "free block"]);
		if (i === 0) continue;
		const prevEnd = vaEnd(f64, free[i - 1]!);
		if (prevEnd >= s)
			corrupt(
				`free tree: blocks ending at ${hex(prevEnd)} and starting at ${hex(s)} ${prevEnd === s ? "touch (not merged)" : "overlap"}`,
			);
	}
	if (listed !== 0) corrupt(`free list: continues past the tree's last block, at record ${listed}`);
	if (free.length !== hdr[HDR_FREE_NR]) corrupt(`free tree: holds ${free.length} blocks, header says ${hdr[HDR_FREE_NR]}`);
	if (bytes !== hdrF[HDRF_FREE_BYTES]) corrupt(`free tree: holds ${bytes} bytes, header says ${hdrF[HDRF_FREE_BYTES]}`);
	w.records += free.length;
	return bytes;
}

/** Busy, lazy, pooled and free ranges never overlap, and together they are the space. */
function checkCoverage(w: Walk, freeBytes: number, used: { busy: number; lazy: number; pooled: number }): void {
	const all = w.all.sort((a, b) => a[0] - b[0]);
	for (let i = 1; i < all.length; i++) {
		const [ps, pe, pw] = all[i - 1]!;
		const [s, e, what] = all[i]!;
		if (s < pe) corrupt(`${what} [${hex(s)}, ${hex(e)}) overlaps ${pw} [${hex(ps)}, ${hex(pe)})`);
	}
	const { spaceStart, spaceEnd } = w.bounds;
	if (freeBytes + used.busy + used.lazy + used.pooled !== spaceEnd - spaceStart) {
		corrupt(
			`accounting: free ${freeBytes} + busy ${used.busy} + lazy ${used.lazy} + pooled ${used.pooled} bytes != space ${spaceEnd - spaceStart} bytes`,
		);
	}
}

/** Slots: every record below SLOT_HIGH is in exactly one structure, or on the slot free list. */
function checkSlots(w: Walk): void {
	const { hdr, i32 } = w.t;
	const { high, seen, records } = w;
	let onFreeList = 0;
	for (let va = hdr[HDR_SLOT_FREE]!; va !== 0; va = vaNext(i32, va)) {
		if (va >= high) corrupt(`slot free list: record ${va} is at or past SLOT_HIGH ${high}`);
		if (seen[va]) corrupt(`slot free list: record ${va} is also in use (or listed twice)`);
		seen[va] = 1;
		onFreeList++;
	}
	if (onFreeList !== hdr[HDR_SLOT_FREE_NR]) corrupt(`slot free list: holds ${onFreeList} records, header says ${hdr[HDR_SLOT_FREE_NR]}`);
	let kept = 0;
	for (let id = 1; id <= HANDLE_MAX; id++) {
		const va = hdr[keptWord(id)]!;
		if (va === 0) continue;
		if (!(va > 0 && va < high)) corrupt(`handle ${id}'s kept record ${va} is not below SLOT_HIGH ${high}`);
		if (seen[va]) corrupt(`handle ${id}'s kept record ${va} is also in use (or another's kept record, or free)`);
		seen[va] = 1;
		kept++;
	}
	if (records + onFreeList + kept + 1 !== high) {
		corrupt(
			`slots: ${records + onFreeList + kept} records accounted for (${records} in use, ${onFreeList} unused, ${kept} kept by handles) but ${high - 1} handed out`,
		);
	}
}
