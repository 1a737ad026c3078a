/**
 * The O(n) validator. Walks every structure in the buffer and throws ECORRUPT naming the first
 * broken invariant. It trusts nothing the fast paths maintain: counters, subtreeMaxSize, the
 * free list and the slot accounting are all recomputed from the records.
 */
import { corrupt, hex } from "../api/errors.ts";
import {
	HDR_CAPACITY,
	HDR_FREE_HEAD,
	HDR_FREE_NR,
	HDR_FREE_ROOT,
	HDR_MAGIC,
	HDR_HASH_BUDGET,
	HDR_HASH_RECORDS,
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
	N_HASH_FIRST,
	N_HASH_LOG,
	N_HASH_MOVED,
	N_HASH_OLD_FIRST,
	N_HASH_OLD_LOG,
	N_HASH_RETIRED_FIRST,
	N_HASH_RETIRED_LEFT,
	REC_I32,
	N_LAZY_LAST,
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
	purgeTree,
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
} from "../buffer/layout.ts";
import { hashBucket, hashRecords } from "../tree/busy-hash.ts";
import { addrToNode, encodeVnId, poolWord, decodeVnId } from "../tree/nodes.ts";
import { checkBlocks } from "../small/check.ts";
import type { VaTable } from "../buffer/va-table.ts";
import { recordIsZero, subtreeMaxSize, vaEnd, vaFlags, vaIsRed, vaLeft, vaNext, vaParent, vaRight, vaStart } from "../buffer/record.ts";

type Bounds = { spaceStart: number; spaceEnd: number; pageSize: number; nodes: number; zoneInverse: number };

export function checkSpace(t: VaTable, spaceStart: number, spaceEnd: number, self: number): void {
	if (t.capacity !== t.hdr[HDR_CAPACITY]) t.remap();
	const f64 = t.f64;
	const i32 = t.i32;
	const hdr = t.hdr;
	const hdrF = t.hdrF;
	if (hdr[HDR_MAGIC] !== MAGIC || hdr[HDR_VERSION] !== VERSION)
		corrupt(`header: magic/version ${hex(hdr[HDR_MAGIC]!)}/${hdr[HDR_VERSION]} is not a vmap space`);
	const high = hdr[HDR_SLOT_HIGH]!;
	if (!(high >= 1 && high <= hdr[HDR_CAPACITY]! && hdr[HDR_CAPACITY]! <= hdr[HDR_MAX_CAPACITY]!)) {
		corrupt(`slots: SLOT_HIGH ${high}, CAPACITY ${hdr[HDR_CAPACITY]}, MAX_CAPACITY ${hdr[HDR_MAX_CAPACITY]} out of order`);
	}
	if (!recordIsZero(f64, 0)) corrupt(`slots: record 0 (nil) has been written`);

	const seen = new Uint8Array(high);
	// The node (+ 1) whose busy hash chains each record.
	const hashed = new Uint8Array(high);
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
			if (prevEnd >= s)
				corrupt(
					`free tree: blocks ending at ${hex(prevEnd)} and starting at ${hex(s)} ${prevEnd === s ? "touch (not merged)" : "overlap"}`,
				);
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
	let hashTables = 0; // records the busy hashes' tables take
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
		const hashRuns = checkHash(t, b, node, busy, hashed, v + 1, seen, high);
		hashTables += hashRuns;
		records += hashRuns;
		if (bytes !== hdrF[f + NF_BUSY_BYTES])
			corrupt(`${node} busy tree: holds ${bytes} bytes in busy areas, header says ${hdrF[f + NF_BUSY_BYTES]}`);
		busyBytes += bytes;
		records += busy.length;

		// Lazy areas: the lazy tree, red-black; purge trees, search trees that their purge takes
		// apart lowest area first (not balanced, lazy-tree.ts).
		const lazy = walkLazy(t, `${node} lazy tree`, b + N_LAZY_ROOT, hdr[b + N_LAZY_NR]!, true, v, seen, bounds, all);
		if (hdr[b + N_LAZY_LAST] !== lazy.last)
			corrupt(`${node} lazy tree: its last record is ${lazy.last}, LAZY_LAST says ${hdr[b + N_LAZY_LAST]}`);
		const batch = { areas: 0, bytes: 0 };
		for (let k = 0; k < BATCH_SLOTS; k++) {
			const p = purgeTree(v, k);
			const tree = walkLazy(t, `${node} purge tree of batch ${k}`, p, hdr[p + 1]!, false, v, seen, bounds, all);
			if (tree.areas !== 0 && hdr[HDR_BATCH_OWNER + k] === 0)
				corrupt(`${node} purge tree of batch ${k}: holds ${tree.areas} areas, but the batch is free`);
			batch.areas += tree.areas;
			batch.bytes += tree.bytes;
		}
		const pages = (lazy.bytes + batch.bytes) / pageSize;
		const counted = hdrF[f + NF_LAZY_ADDED]! - hdrF[f + NF_LAZY_PURGED]!;
		if (pages !== counted) corrupt(`${node} vmapLazyNr: header says ${counted} pages, the lazy and purge trees hold ${pages}`);
		if (lazy.min !== hdrF[f + NF_LAZY_MIN] || lazy.max !== hdrF[f + NF_LAZY_MAX]) {
			corrupt(
				`${node} lazy tree: covers [${lazy.min}, ${lazy.max}), the incremental flush range says [${hdrF[f + NF_LAZY_MIN]}, ${hdrF[f + NF_LAZY_MAX]})`,
			);
		}
		lazyBytes += lazy.bytes + batch.bytes;
		records += lazy.areas + batch.areas;

		// Pools: LIFO lists of areas of exactly k pages, flagged pooled for this node.
		let pooled = 0;
		let pooledBytes = 0;
		for (let k = 1; k <= MAX_VA_SIZE_PAGES; k++) {
			const p = poolWord(v, k);
			const pool = walkPool(t, `${node} pool ${k}`, hdr[p + POOL_HEAD]!, hdr[p + POOL_LEN]!, v, seen, bounds, all);
			if (pool.areas !== 0 && pool.bytes !== pool.areas * k * pageSize)
				corrupt(`${node} pool ${k}: holds an area that is not ${k} pages`);
			if (hdr[p + POOL_TAIL] !== pool.last)
				corrupt(`${node} pool ${k}: tail is record ${hdr[p + POOL_TAIL]}, the list ends at record ${pool.last}`);
			pooled += pool.areas;
			pooledBytes += pool.bytes;
		}
		if (pooled !== hdr[b + N_POOL_NR]) corrupt(`${node} pools: hold ${pooled} areas, header says ${hdr[b + N_POOL_NR]}`);
		if (pooledBytes !== hdrF[f + NF_POOL_BYTES])
			corrupt(`${node} pools: hold ${pooledBytes} bytes, header says ${hdrF[f + NF_POOL_BYTES]}`);
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
		corrupt(
			`accounting: free ${freeBytes} + busy ${busyBytes} + lazy ${lazyBytes} + pooled ${poolBytes} bytes != space ${spaceEnd - spaceStart} bytes`,
		);
	}

	records += checkBlocks(t, self, blockAreas, seen, pageSize);
	if (hashTables !== hdr[HDR_HASH_RECORDS] || hashTables > hdr[HDR_HASH_BUDGET]!) {
		corrupt(
			`busy hash: the tables hold ${hashTables} records, the header says ${hdr[HDR_HASH_RECORDS]} of a budget of ${hdr[HDR_HASH_BUDGET]}`,
		);
	}

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
		corrupt(
			`slots: ${records + onFreeList} records accounted for (${records} in use, ${onFreeList} unused) but ${high - 1} handed out`,
		);
	}
}

/**
 * Node base `b`'s busy hash agrees with its busy tree `busy`: every busy area is chained
 * exactly once, in the bucket its start hashes to, in the table or in a bucket of the old
 * table not moved yet; moved old buckets are empty; nothing else is chained. The tables' runs
 * of records are marked in `seen`; returns how many records they take. `marks`/`id` mark
 * what the chains reach.
 */
function checkHash(
	t: VaTable,
	b: number,
	node: string,
	busy: number[],
	marks: Uint8Array,
	id: number,
	seen: Uint8Array,
	high: number,
): number {
	const hdr = t.hdr;
	const f64 = t.f64;
	const i32 = t.i32;
	const name = `${node} busy hash`;
	const log = hdr[b + N_HASH_LOG]!;
	const oldLog = hdr[b + N_HASH_OLD_LOG]!;
	const moved = hdr[b + N_HASH_MOVED]!;
	const runs: Array<[what: string, first: number, records: number]> = [];
	if (log !== 0) runs.push(["table", hdr[b + N_HASH_FIRST]!, hashRecords(log)]);
	if (oldLog !== 0) runs.push(["old table", hdr[b + N_HASH_OLD_FIRST]!, hashRecords(oldLog)]);
	if (hdr[b + N_HASH_RETIRED_LEFT]! > 0) runs.push(["retired table", hdr[b + N_HASH_RETIRED_FIRST]!, hdr[b + N_HASH_RETIRED_LEFT]!]);
	if (log === 0 && (oldLog !== 0 || hdr[b + N_HASH_FIRST] !== 0))
		corrupt(`${name}: no table (log 0), but table record ${hdr[b + N_HASH_FIRST]} or an old table of log ${oldLog}`);
	if (!(log >= 0 && log <= 30 && oldLog >= 0 && oldLog < Math.max(1, log) && moved >= 0 && moved <= (oldLog === 0 ? 0 : 2 ** oldLog))) {
		corrupt(`${name}: log ${log}, old log ${oldLog}, ${moved} old buckets moved: out of range`);
	}
	let records = 0;
	for (const [what, first, n] of runs) {
		if (!(first >= 1 && first + n <= high))
			corrupt(`${name}: its ${what} (${n} records from record ${first}) lies outside the records handed out (SLOT_HIGH ${high})`);
		for (let r = first; r < first + n; r++) {
			if (seen[r]) corrupt(`${name}: record ${r} of its ${what} is also in another structure`);
			seen[r] = 1;
		}
		records += n;
	}
	let chained = 0;
	const chains = (first: number, bucketLog: number, from: number) => {
		for (let i = 0, n = 2 ** bucketLog; i < n; i++) {
			let va = i32[first * REC_I32 + i]!;
			if (i < from && va !== 0) corrupt(`${name}: old bucket ${i} has moved but still chains record ${va}`);
			for (let steps = 0; va !== 0; va = vaNext(i32, va), steps++) {
				if (va >= marks.length || marks[va] !== 0 || steps > busy.length)
					corrupt(
						`${name}: bucket ${i} chains record ${va} twice, or a record past SLOT_HIGH, or a record that is not busy on this node`,
					);
				marks[va] = id;
				chained++;
				const want = hashBucket(vaStart(f64, va), bucketLog);
				if (want !== i)
					corrupt(
						`${name}: record ${va} (start ${hex(vaStart(f64, va))}) is chained in bucket ${i}, its start hashes to ${want}`,
					);
			}
		}
	};
	if (log !== 0) chains(hdr[b + N_HASH_FIRST]!, log, 0);
	if (oldLog !== 0) chains(hdr[b + N_HASH_OLD_FIRST]!, oldLog, moved);
	if (log !== 0) {
		for (const va of busy)
			if (marks[va] !== id) corrupt(`${name}: busy area ${va} [${hex(vaStart(f64, va))}, ${hex(vaEnd(f64, va))}) is in no bucket`);
		if (chained !== busy.length) corrupt(`${name}: chains ${chained} records, the busy tree holds ${busy.length}`);
	}
	return records;
}

/** A record's vn_id is none or a node of the space. */
function checkVn(flags: number, what: string, nodes: number): void {
	const vn = decodeVnId(flags);
	if (vn < -1 || vn >= nodes) corrupt(`${what} carries node id ${vn}, not one of the ${nodes} nodes`);
}

/**
 * Walk the lazy tree or a purge tree of node `v` (rooted at header word `rootWord`, `nr` areas
 * by its count): a search tree, red-black if `balanced`, of lazy records on the right node
 * (their vn_id's, else their address's), each in no other structure. Adds them to `all`;
 * returns their number, bytes, last record and the range they cover (+-Infinity when empty).
 */
function walkLazy(
	t: VaTable,
	name: string,
	rootWord: number,
	nr: number,
	balanced: boolean,
	v: number,
	seen: Uint8Array,
	bounds: Bounds,
	all: Array<[number, number, string]>,
) {
	const f64 = t.f64;
	const i32 = t.i32;
	const records = walkTree(t, name, rootWord, false, seen, bounds, balanced);
	let bytes = 0;
	let min = Infinity;
	let max = -Infinity;
	for (const va of records) {
		const flags = vaFlags(i32, va);
		if ((flags & VA_STATE) !== VA_LAZY) corrupt(`${name}: record ${va} has state flags ${flags & VA_STATE}, not lazy`);
		checkVn(flags, `${name}: record ${va}`, bounds.nodes);
		const s = vaStart(f64, va);
		const e = vaEnd(f64, va);
		const vn = decodeVnId(flags);
		const home = vn >= 0 ? vn : addrToNode(s, bounds.zoneInverse, bounds.nodes);
		if (home !== v) corrupt(`${name}: record ${va} [${hex(s)}, ${hex(e)}) belongs to node ${home}'s lazy tree`);
		all.push([s, e, "lazy area"]);
		bytes += e - s;
		if (s < min) min = s;
		if (e > max) max = e;
	}
	if (records.length !== nr) corrupt(`${name}: holds ${records.length} areas, header says ${nr}`);
	return { areas: records.length, bytes, min, max, last: records[records.length - 1] ?? 0 };
}

/**
 * Walk a pool of node `v`: each record must be pooled for v, page aligned, inside the space,
 * and in no other structure. Adds them to `all`; returns their number, bytes and last record.
 */
function walkPool(
	t: VaTable,
	name: string,
	head: number,
	nr: number,
	v: number,
	seen: Uint8Array,
	bounds: Bounds,
	all: Array<[number, number, string]>,
) {
	const f64 = t.f64;
	const i32 = t.i32;
	let areas = 0;
	let bytes = 0;
	let last = 0;
	for (let va = head; va !== 0; va = vaNext(i32, va)) {
		if (va >= seen.length) corrupt(`${name}: record ${va} is at or past SLOT_HIGH ${seen.length}`);
		if (seen[va]) corrupt(`${name}: record ${va} is reached twice (or is in another structure too)`);
		seen[va] = 1;
		const flags = vaFlags(i32, va);
		if ((flags & VA_STATE) !== VA_POOL) corrupt(`${name}: record ${va} has state flags ${flags & VA_STATE}, not pooled`);
		checkVn(flags, `${name}: record ${va}`, bounds.nodes);
		const s = vaStart(f64, va);
		const e = vaEnd(f64, va);
		if (!(s < e) || s < bounds.spaceStart || e > bounds.spaceEnd || s % bounds.pageSize !== 0 || e % bounds.pageSize !== 0) {
			corrupt(`${name}: record ${va} [${hex(s)}, ${hex(e)}) is empty, outside the space or not page aligned`);
		}
		if (flags !== (VA_POOL | encodeVnId(v)))
			corrupt(`${name}: record ${va} [${hex(s)}, ${hex(e)}) belongs to node ${decodeVnId(flags)}'s pools`);
		all.push([s, e, "pooled area"]);
		areas++;
		bytes += e - s;
		last = va;
	}
	if (areas !== nr) corrupt(`${name}: holds ${areas} areas, header says ${nr}`);
	return { areas, bytes, last };
}

/**
 * In-order walk of one tree, checking parent links, key order, page alignment, the bounds of
 * the space, if `balanced` the red-black properties, and if `aug` every subtreeMaxSize.
 * Returns the slots in address order. `seen` marks records so that one record in two places
 * is caught.
 */
function walkTree(t: VaTable, name: string, rootWord: number, aug: boolean, seen: Uint8Array, bounds: Bounds, balanced = true): number[] {
	const { spaceStart, spaceEnd, pageSize } = bounds;
	const out: number[] = [];
	const root = t.hdr[rootWord]!;
	if (root === 0) return out;
	if (vaParent(t.i32, root) !== 0) corrupt(`${name}: root ${root} has a parent`);
	if (balanced && vaIsRed(t.i32, root)) corrupt(`${name}: root ${root} is red`);
	let prevEnd = -Infinity;

	// Returns the black height of the subtree and its maximal block size.
	const visit = (x: number, depth: number): { blacks: number; max: number } => {
		if (x === 0) return { blacks: 1, max: 0 };
		if (depth > 128) corrupt(`${name}: deeper than 128 levels (a cycle?) at record ${x}`);
		if (x >= seen.length) corrupt(`${name}: record ${x} is at or past SLOT_HIGH ${seen.length}`);
		if (seen[x]) corrupt(`${name}: record ${x} is reached twice (or is in another structure too)`);
		seen[x] = 1;
		const red = vaIsRed(t.i32, x);
		const l = vaLeft(t.i32, x);
		const r = vaRight(t.i32, x);
		for (const c of [l, r]) {
			if (c === 0) continue;
			if (c >= seen.length) corrupt(`${name}: record ${x} links child ${c}, at or past SLOT_HIGH ${seen.length}`);
			if (vaParent(t.i32, c) !== x)
				corrupt(`${name}: record ${c}'s parent is ${vaParent(t.i32, c)}, but record ${x} links it as a child`);
			if (balanced && red && vaIsRed(t.i32, c)) corrupt(`${name}: red record ${x} has red child ${c}`);
		}
		const left = visit(l, depth + 1);
		const s = vaStart(t.f64, x);
		const e = vaEnd(t.f64, x);
		if (!(s < e)) corrupt(`${name}: record ${x} is empty or inverted: [${hex(s)}, ${hex(e)})`);
		if (s < spaceStart || e > spaceEnd)
			corrupt(`${name}: record ${x} [${hex(s)}, ${hex(e)}) lies outside the space [${hex(spaceStart)}, ${hex(spaceEnd)})`);
		if (s % pageSize !== 0 || e % pageSize !== 0)
			corrupt(`${name}: record ${x} [${hex(s)}, ${hex(e)}) is not page aligned (pageSize ${pageSize})`);
		if (s < prevEnd)
			corrupt(`${name}: record ${x} starts at ${hex(s)}, before the previous one ends at ${hex(prevEnd)} (order or overlap)`);
		prevEnd = e;
		out.push(x);
		const right = visit(r, depth + 1);
		if (balanced && left.blacks !== right.blacks)
			corrupt(`${name}: record ${x} has black heights ${left.blacks} (left) and ${right.blacks} (right)`);
		const max = Math.max(e - s, left.max, right.max);
		if (aug && subtreeMaxSize(t.f64, x) !== max) {
			corrupt(`${name}: record ${x} [${hex(s)}, ${hex(e)}) has subtreeMaxSize ${subtreeMaxSize(t.f64, x)}, recomputed ${max}`);
		}
		return { blacks: left.blacks + (red ? 0 : 1), max };
	};
	visit(root, 0);
	return out;
}
