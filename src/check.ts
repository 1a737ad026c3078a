/**
 * The O(n) validator. Walks every structure in the buffer and throws ECORRUPT naming the first
 * broken invariant. It trusts nothing the fast paths maintain: counters, subtreeMaxSize, the
 * free list and the slot accounting are all recomputed from the records.
 */
import { corrupt, hex } from "./errors.ts";
import {
	HDR_CAPACITY,
	HDR_FREE_HEAD,
	HDR_FREE_NR,
	HDR_FREE_ROOT,
	HDR_MAGIC,
	HDR_MAX_CAPACITY,
	HDR_SLOT_FREE,
	HDR_SLOT_FREE_NR,
	HDR_SLOT_HIGH,
	HDR_VERSION,
	HDRF_FREE_BYTES,
	HDRF_PAGE_SIZE,
	HDRF_ZONE_SIZE,
	MAGIC,
	MAX_VA_SIZE_PAGES,
	N_BUSY_NR,
	N_BUSY_ROOT,
	N_LAZY_HEAD,
	N_LAZY_NR,
	N_LAZY_ROOT,
	N_POOL_NR,
	NF_BUSY_BYTES,
	NF_LAZY_ADDED,
	NF_LAZY_MAX,
	NF_LAZY_MIN,
	NF_LAZY_PURGED,
	NF_POOL_BYTES,
	nodeBase,
	purgeList,
	purgeRoot,
	BATCH_SLOTS,
	HDR_BATCH_OWNER,
	POOL_HEAD,
	POOL_LEN,
	POOL_TAIL,
	VA_BUSY,
	VA_LAZY,
	VA_POOL,
	VA_SMALL_BLOCK,
	VA_STATE,
	VERSION,
} from "./layout.ts";
import { addrToNode, encodeVnId, poolWord, decodeVnId } from "./nodes.ts";
import { checkBlocks } from "./small-check.ts";
import type { VaTable } from "./va-table.ts";
import { recordIsZero, subtreeMaxSize, vaEnd, vaFlags, vaIsRed, vaLeft, vaNext, vaParent, vaRight, vaStart } from "./record.ts";

type Bounds = { spaceStart: number; spaceEnd: number; pageSize: number; nodes: number; zoneInverse: number };

export function checkSpace(t: VaTable, spaceStart: number, spaceEnd: number, self: number): void {
	if (t.capacity !== t.hdr[HDR_CAPACITY]) t.remap();
	const f64 = t.f64;
	const i32 = t.i32;
	const hdr = t.hdr;
	const hdrF = t.hdrF;
	if (hdr[HDR_MAGIC] !== MAGIC || hdr[HDR_VERSION] !== VERSION) corrupt(`header: magic/version ${hex(hdr[HDR_MAGIC]!)}/${hdr[HDR_VERSION]} is not a vmap space`);
	const high = hdr[HDR_SLOT_HIGH]!;
	if (!(high >= 1 && high <= hdr[HDR_CAPACITY]! && hdr[HDR_CAPACITY]! <= hdr[HDR_MAX_CAPACITY]!)) {
		corrupt(`slots: SLOT_HIGH ${high}, CAPACITY ${hdr[HDR_CAPACITY]}, MAX_CAPACITY ${hdr[HDR_MAX_CAPACITY]} out of order`);
	}
	if (!recordIsZero(f64, 0)) corrupt(`slots: record 0 (nil) has been written`);

	const seen = new Uint8Array(high);
	// Which lazy or purge tree holds each record (1 + its index below): those trees index the
	// records of lists, which `seen` counts.
	const inTree = new Uint16Array(high);
	const pageSize = hdrF[HDRF_PAGE_SIZE]!;
	const bounds: Bounds = { spaceStart, spaceEnd, pageSize, nodes: t.nodes, zoneInverse: 1 / hdrF[HDRF_ZONE_SIZE]! };
	const free = walkTree(t, "free tree", HDR_FREE_ROOT, true, seen, bounds);

	// Free blocks: coalesced, the list is the tree's order, counters agree.
	let freeBytes = 0;
	let listed = t.hdr[HDR_FREE_HEAD]!;
	for (let i = 0; i < free.length; i++) {
		const va = free[i]!;
		if (listed !== va) corrupt(`free list: entry ${i} is record ${listed}, the tree's ${i}th block is record ${va}`);
		listed = vaNext(i32, va);
		const s = vaStart(f64, va);
		const e = vaEnd(f64, va);
		freeBytes += e - s;
		if (i > 0) {
			const prevEnd = vaEnd(f64, free[i - 1]!);
			if (prevEnd >= s) corrupt(`free tree: blocks ending at ${hex(prevEnd)} and starting at ${hex(s)} ${prevEnd === s ? "touch (not merged)" : "overlap"}`);
		}
	}
	if (listed !== 0) corrupt(`free list: continues past the tree's last block, at record ${listed}`);
	if (free.length !== hdr[HDR_FREE_NR]) corrupt(`free tree: holds ${free.length} blocks, header says ${hdr[HDR_FREE_NR]}`);
	if (freeBytes !== hdrF[HDRF_FREE_BYTES]) corrupt(`free tree: holds ${freeBytes} bytes, header says ${hdrF[HDRF_FREE_BYTES]}`);

	const all: Array<[number, number, string]> = [];
	for (const va of free) all.push([vaStart(f64, va), vaEnd(f64, va), "free block"]);
	let busyBytes = 0;
	let lazyBytes = 0;
	let poolBytes = 0;
	let records = free.length;
	const blockAreas: number[] = [];
	for (let v = 0; v < t.nodes; v++) {
		const b = nodeBase(v);
		const f = b >> 1;
		const node = `node ${v}`;
		// Busy areas live at their start's node, busy only; lazy areas are on lists.
		const busy = walkTree(t, `${node} busy tree`, b + N_BUSY_ROOT, false, seen, bounds);
		let bytes = 0;
		for (const va of busy) {
			const s = vaStart(f64, va);
			const e = vaEnd(f64, va);
			bytes += e - s;
			all.push([s, e, "busy area"]);
			const flags = vaFlags(i32, va);
			if ((flags & VA_STATE) !== VA_BUSY) corrupt(`${node} busy tree: record ${va} has state flags ${flags & VA_STATE}, not busy`);
			checkVn(flags, `${node} busy tree: record ${va}`, bounds.nodes);
			if (flags & VA_SMALL_BLOCK) blockAreas.push(va);
			const home = addrToNode(s, bounds.zoneInverse, bounds.nodes);
			if (home !== v) corrupt(`${node} busy tree: record ${va} starts at ${hex(s)}, which belongs to node ${home}`);
		}
		if (busy.length !== hdr[b + N_BUSY_NR]) corrupt(`${node} busy tree: holds ${busy.length} areas, header says ${hdr[b + N_BUSY_NR]}`);
		if (bytes !== hdrF[f + NF_BUSY_BYTES]) corrupt(`${node} busy tree: holds ${bytes} bytes in busy areas, header says ${hdrF[f + NF_BUSY_BYTES]}`);
		busyBytes += bytes;
		records += busy.length;

		// Each lazy and purge list has an address tree of exactly its records.
		const lazyId = 1 + v * (BATCH_SLOTS + 1);
		const lazyTree = { marks: inTree, id: lazyId, size: walkTree(t, `${node} lazy tree`, b + N_LAZY_ROOT, false, inTree, bounds, lazyId).length };
		const lazy = walkList(t, `${node} lazy list`, hdr[b + N_LAZY_HEAD]!, hdr[b + N_LAZY_NR]!, VA_LAZY, v, seen, bounds, all, lazyTree);
		const batch = { areas: 0, bytes: 0 };
		for (let k = 0; k < BATCH_SLOTS; k++) {
			const p = purgeList(v, k);
			const id = lazyId + 1 + k;
			const purgeTree = { marks: inTree, id, size: walkTree(t, `${node} purge tree of batch ${k}`, purgeRoot(v, k), false, inTree, bounds, id).length };
			const list = walkList(t, `${node} purge list of batch ${k}`, hdr[p]!, hdr[p + 1]!, VA_LAZY, v, seen, bounds, all, purgeTree);
			if (list.areas !== 0 && hdr[HDR_BATCH_OWNER + k] === 0) corrupt(`${node} purge list of batch ${k}: holds ${list.areas} areas, but the batch is free`);
			batch.areas += list.areas;
			batch.bytes += list.bytes;
		}
		const pages = (lazy.bytes + batch.bytes) / pageSize;
		const counted = hdrF[f + NF_LAZY_ADDED]! - hdrF[f + NF_LAZY_PURGED]!;
		if (pages !== counted) corrupt(`${node} vmapLazyNr: header says ${counted} pages, the lazy and purge lists hold ${pages}`);
		if (lazy.min !== hdrF[f + NF_LAZY_MIN] || lazy.max !== hdrF[f + NF_LAZY_MAX]) {
			corrupt(`${node} lazy list: covers [${lazy.min}, ${lazy.max}), the incremental flush range says [${hdrF[f + NF_LAZY_MIN]}, ${hdrF[f + NF_LAZY_MAX]})`);
		}
		lazyBytes += lazy.bytes + batch.bytes;
		records += lazy.areas + batch.areas;

		// Pools: LIFO lists of areas of exactly k pages, flagged pooled for this node.
		let pooled = 0;
		let pooledBytes = 0;
		for (let k = 1; k <= MAX_VA_SIZE_PAGES; k++) {
			const p = poolWord(v, k);
			const pool = walkList(t, `${node} pool ${k}`, hdr[p + POOL_HEAD]!, hdr[p + POOL_LEN]!, VA_POOL, v, seen, bounds, all);
			if (pool.areas !== 0 && pool.bytes !== pool.areas * k * pageSize) corrupt(`${node} pool ${k}: holds an area that is not ${k} pages`);
			if (hdr[p + POOL_TAIL] !== pool.last) corrupt(`${node} pool ${k}: tail is record ${hdr[p + POOL_TAIL]}, the list ends at record ${pool.last}`);
			pooled += pool.areas;
			pooledBytes += pool.bytes;
		}
		if (pooled !== hdr[b + N_POOL_NR]) corrupt(`${node} pools: hold ${pooled} areas, header says ${hdr[b + N_POOL_NR]}`);
		if (pooledBytes !== hdrF[f + NF_POOL_BYTES]) corrupt(`${node} pools: hold ${pooledBytes} bytes, header says ${hdrF[f + NF_POOL_BYTES]}`);
		poolBytes += pooledBytes;
		records += pooled;
	}

	// Busy, lazy, pooled and free ranges never overlap, and together they are the space.
	all.sort((a, b) => a[0] - b[0]);
	for (let i = 1; i < all.length; i++) {
		const [ps, pe, pw] = all[i - 1]!;
		const [s, e, w] = all[i]!;
		if (s < pe) corrupt(`${w} [${hex(s)}, ${hex(e)}) overlaps ${pw} [${hex(ps)}, ${hex(pe)})`);
	}
	if (freeBytes + busyBytes + lazyBytes + poolBytes !== spaceEnd - spaceStart) {
		corrupt(`accounting: free ${freeBytes} + busy ${busyBytes} + lazy ${lazyBytes} + pooled ${poolBytes} bytes != space ${spaceEnd - spaceStart} bytes`);
	}

	records += checkBlocks(t, self, blockAreas, seen, pageSize);

	// Slots: every record below SLOT_HIGH is in exactly one structure.
	let onFreeList = 0;
	for (let va = hdr[HDR_SLOT_FREE]!; va !== 0; va = vaNext(i32, va)) {
		if (va >= high) corrupt(`slot free list: record ${va} is at or past SLOT_HIGH ${high}`);
		if (seen[va]) corrupt(`slot free list: record ${va} is also in use (or listed twice)`);
		seen[va] = 1;
		onFreeList++;
	}
	if (onFreeList !== hdr[HDR_SLOT_FREE_NR]) corrupt(`slot free list: holds ${onFreeList} records, header says ${hdr[HDR_SLOT_FREE_NR]}`);
	if (records + onFreeList + 1 !== high) {
		corrupt(`slots: ${records + onFreeList} records accounted for (${records} in use, ${onFreeList} unused) but ${high - 1} handed out`);
	}
}

/** A record's vn_id is none or a node of the space. */
function checkVn(flags: number, what: string, nodes: number): void {
	const vn = decodeVnId(flags);
	if (vn < -1 || vn >= nodes) corrupt(`${what} carries node id ${vn}, not one of the ${nodes} nodes`);
}

/**
 * Walk a list of records of node `v` (a lazy list, a purge list or a pool): each must be in
 * `state`, on the right node (lazy: its vn_id's, else its address's; pooled: vn_id v), page
 * aligned, inside the space, and in no other structure. With `tree`, the list's address tree
 * (walked first: its `size` records marked `tree.id` in `tree.marks`) must hold exactly the list's
 * records. Adds them to `all`; returns their number, bytes, last record and the range they
 * cover (+-Infinity when empty).
 */
function walkList(
	t: VaTable,
	name: string,
	head: number,
	nr: number,
	state: number,
	v: number,
	seen: Uint8Array,
	bounds: Bounds,
	all: Array<[number, number, string]>,
	tree?: { marks: Uint16Array; id: number; size: number },
) {
	const f64 = t.f64;
	const i32 = t.i32;
	let areas = 0;
	let bytes = 0;
	let min = Infinity;
	let max = -Infinity;
	let last = 0;
	const what = state === VA_POOL ? "pooled area" : "lazy area";
	for (let va = head; va !== 0; va = vaNext(i32, va)) {
		if (va >= seen.length) corrupt(`${name}: record ${va} is at or past SLOT_HIGH ${seen.length}`);
		if (seen[va]) corrupt(`${name}: record ${va} is reached twice (or is in another structure too)`);
		seen[va] = 1;
		const flags = vaFlags(i32, va);
		if ((flags & VA_STATE) !== state) corrupt(`${name}: record ${va} has state flags ${flags & VA_STATE}, not ${state === VA_POOL ? "pooled" : "lazy"}`);
		checkVn(flags, `${name}: record ${va}`, bounds.nodes);
		const s = vaStart(f64, va);
		const e = vaEnd(f64, va);
		if (!(s < e) || s < bounds.spaceStart || e > bounds.spaceEnd || s % bounds.pageSize !== 0 || e % bounds.pageSize !== 0) {
			corrupt(`${name}: record ${va} [${hex(s)}, ${hex(e)}) is empty, outside the space or not page aligned`);
		}
		const vn = decodeVnId(flags);
		const home = state === VA_POOL ? v : vn >= 0 ? vn : addrToNode(s, bounds.zoneInverse, bounds.nodes);
		if (home !== v || (state === VA_POOL && flags !== (VA_POOL | encodeVnId(v)))) corrupt(`${name}: record ${va} [${hex(s)}, ${hex(e)}) belongs to node ${home}'s lists`);
		if (tree !== undefined && tree.marks[va] !== tree.id) {
			corrupt(`${name}: record ${va} [${hex(s)}, ${hex(e)}) is not in the list's address tree${tree.marks[va] === 0 ? "" : " (it is in another one)"}`);
		}
		all.push([s, e, what]);
		areas++;
		bytes += e - s;
		last = va;
		if (s < min) min = s;
		if (e > max) max = e;
	}
	if (areas !== nr) corrupt(`${name}: holds ${areas} areas, header says ${nr}`);
	// Every listed record is in the tree and no other list's: equal sizes make the sets equal.
	if (tree !== undefined && tree.size !== areas) corrupt(`${name}: its address tree holds ${tree.size} areas, the list ${areas}`);
	return { areas, bytes, min, max, last };
}

/**
 * In-order walk of one tree, checking the red-black properties, parent links, key order, page
 * alignment, the bounds of the space and, if `aug`, every subtreeMaxSize. Returns the slots in
 * address order. `seen` marks records (with `mark`) so that one record in two places is caught.
 */
function walkTree(
	t: VaTable,
	name: string,
	rootWord: number,
	aug: boolean,
	seen: Uint8Array | Uint16Array,
	bounds: Bounds,
	mark = 1,
): number[] {
	const { spaceStart, spaceEnd, pageSize } = bounds;
	const out: number[] = [];
	const root = t.hdr[rootWord]!;
	if (root === 0) return out;
	if (vaParent(t.i32, root) !== 0) corrupt(`${name}: root ${root} has a parent`);
	if (vaIsRed(t.i32, root)) corrupt(`${name}: root ${root} is red`);
	let prevEnd = -Infinity;

	// Returns the black height of the subtree and its maximal block size.
	const visit = (x: number, depth: number): { blacks: number; max: number } => {
		if (x === 0) return { blacks: 1, max: 0 };
		if (depth > 128) corrupt(`${name}: deeper than 128 levels (a cycle?) at record ${x}`);
		if (x >= seen.length) corrupt(`${name}: record ${x} is at or past SLOT_HIGH ${seen.length}`);
		if (seen[x]) corrupt(`${name}: record ${x} is reached twice (or is in another structure too)`);
		seen[x] = mark;
		const red = vaIsRed(t.i32, x);
		const l = vaLeft(t.i32, x);
		const r = vaRight(t.i32, x);
		for (const c of [l, r]) {
			if (c === 0) continue;
			if (c >= seen.length) corrupt(`${name}: record ${x} links child ${c}, at or past SLOT_HIGH ${seen.length}`);
			if (vaParent(t.i32, c) !== x) corrupt(`${name}: record ${c}'s parent is ${vaParent(t.i32, c)}, but record ${x} links it as a child`);
			if (red && vaIsRed(t.i32, c)) corrupt(`${name}: red record ${x} has red child ${c}`);
		}
		const left = visit(l, depth + 1);
		const s = vaStart(t.f64, x);
		const e = vaEnd(t.f64, x);
		if (!(s < e)) corrupt(`${name}: record ${x} is empty or inverted: [${hex(s)}, ${hex(e)})`);
		if (s < spaceStart || e > spaceEnd) corrupt(`${name}: record ${x} [${hex(s)}, ${hex(e)}) lies outside the space [${hex(spaceStart)}, ${hex(spaceEnd)})`);
		if (s % pageSize !== 0 || e % pageSize !== 0) corrupt(`${name}: record ${x} [${hex(s)}, ${hex(e)}) is not page aligned (pageSize ${pageSize})`);
		if (s < prevEnd) corrupt(`${name}: record ${x} starts at ${hex(s)}, before the previous one ends at ${hex(prevEnd)} (order or overlap)`);
		prevEnd = e;
		out.push(x);
		const right = visit(r, depth + 1);
		if (left.blacks !== right.blacks) corrupt(`${name}: record ${x} has black heights ${left.blacks} (left) and ${right.blacks} (right)`);
		const max = Math.max(e - s, left.max, right.max);
		if (aug && subtreeMaxSize(t.f64, x) !== max) {
			corrupt(`${name}: record ${x} [${hex(s)}, ${hex(e)}) has subtreeMaxSize ${subtreeMaxSize(t.f64, x)}, recomputed ${max}`);
		}
		return { blacks: left.blacks + (red ? 0 : 1), max };
	};
	visit(root, 0);
	return out;
}
