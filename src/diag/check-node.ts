/**
 * The validator, node by node: the busy tree and its hash, the lazy tree and the purge trees of
 * every batch, the pools; each against the node's counters.
 */
import { corrupt, hex } from "../api/errors.ts";
import { BATCH_SLOTS, HDR_BATCH_OWNER, REC_I32, VA_BUSY, VA_SMALL_BLOCK, VA_STATE } from "../buffer/layout.ts";
import {
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
	N_LAZY_HEAD,
	N_LAZY_LAST,
	N_LAZY_NR,
	N_LAZY_ROOT,
	N_POOL_NR,
	NF_ALLOCS,
	NF_BUSY_BYTES,
	NF_FREES,
	NF_LAZY_ADDED,
	NF_LAZY_MAX,
	NF_LAZY_MIN,
	NF_LAZY_PURGED,
	NF_POOL_BYTES,
	nodeBase,
	POOL_HEAD,
	POOL_LEN,
	POOL_TAIL,
	purgeHead,
	purgeTree,
	HASH_MIN_LOG,
} from "../buffer/node-layout.ts";
import { vaEnd, vaFlags, vaNext, vaStart } from "../buffer/record.ts";
import { hashBucket, hashRecords } from "../tree/busy-hash.ts";
import { addrToNode, poolWord } from "../tree/nodes.ts";
import { checkVn, type Walk, walkLazy, walkPool, walkTree } from "./check-walk.ts";

/** What checkNode() found of a node: bytes in busy, lazy (lazy and purge trees) and pooled areas, and the records its hash tables take. */
export interface NodeFigures {
	busy: number;
	lazy: number;
	pooled: number;
	hashRecords: number;
}

/**
 * Check node `v` (see the header); returns its figures and adds its records (hash tables
 * included) to `w.records`; its busy small-area block areas go to `blockAreas`.
 */
export function checkNode(w: Walk, v: number, blockAreas: number[]): NodeFigures {
	const busy = checkBusy(w, v, blockAreas);
	return { ...busy, lazy: checkLazy(w, v), pooled: checkPools(w, v) };
}

/** Busy areas live at their start's node, busy only, each chained once in the node's hash. */
function checkBusy(w: Walk, v: number, blockAreas: number[]): { busy: number; hashRecords: number } {
	const { hdr, hdrF, f64, i32 } = w.t;
	const b = nodeBase(v);
	const node = `node ${v}`;
	const busy = walkTree(w, `${node} busy tree`, b + N_BUSY_ROOT, false);
	let bytes = 0;
	for (const va of busy) {
		const s = vaStart(f64, va);
		const e = vaEnd(f64, va);
		bytes += e - s;
		w.all.push([s, e, "busy area"]);
		const flags = vaFlags(i32, va);
		if ((flags & VA_STATE) !== VA_BUSY) corrupt(`${node} busy tree: record ${va} has state flags ${flags & VA_STATE}, not busy`);
		checkVn(flags, w.bounds.nodes, () => `${node} busy tree: record ${va}`);
		if (flags & VA_SMALL_BLOCK) blockAreas.push(va);
		const home = addrToNode(s, w.bounds.zoneInverse, w.bounds.nodes);
		if (home !== v) corrupt(`${node} busy tree: record ${va} starts at ${hex(s)}, which belongs to node ${home}`);
	}
	if (busy.length !== hdr[b + N_BUSY_NR]) corrupt(`${node} busy tree: holds ${busy.length} areas, header says ${hdr[b + N_BUSY_NR]}`);
	const allocs = hdrF[(b >> 1) + NF_ALLOCS]!;
	const frees = hdrF[(b >> 1) + NF_FREES]!;
	if (allocs - frees !== busy.length)
		corrupt(`${node} busy tree: holds ${busy.length} areas, but ${allocs} allocations less ${frees} frees counted`);
	const hashRuns = checkHash(w, b, node, busy, v + 1);
	if (bytes !== hdrF[(b >> 1) + NF_BUSY_BYTES])
		corrupt(`${node} busy tree: holds ${bytes} bytes in busy areas, header says ${hdrF[(b >> 1) + NF_BUSY_BYTES]}`);
	w.records += busy.length + hashRuns;
	return { busy: bytes, hashRecords: hashRuns };
}

/**
 * Lazy areas: the lazy tree, red-black; purge trees, search trees that their purge takes apart
 * lowest area first (not balanced, lazy-tree.ts). Their pages are the node's vmapLazyNr.
 */
function checkLazy(w: Walk, v: number): number {
	const { hdr, hdrF } = w.t;
	const b = nodeBase(v);
	const f = b >> 1;
	const node = `node ${v}`;
	const lazy = walkLazy(w, `${node} lazy tree`, b + N_LAZY_ROOT, b + N_LAZY_HEAD, hdr[b + N_LAZY_NR]!, true, v);
	if (hdr[b + N_LAZY_LAST] !== lazy.last)
		corrupt(`${node} lazy tree: its last record is ${lazy.last}, LAZY_LAST says ${hdr[b + N_LAZY_LAST]}`);
	const batch = { areas: 0, bytes: 0 };
	for (let k = 0; k < BATCH_SLOTS; k++) {
		const p = purgeTree(v, k);
		const tree = walkLazy(w, `${node} purge tree of batch ${k}`, p, purgeHead(v, k), hdr[p + 1]!, false, v);
		if (tree.areas !== 0 && hdr[HDR_BATCH_OWNER + k] === 0)
			corrupt(`${node} purge tree of batch ${k}: holds ${tree.areas} areas, but the batch is free`);
		batch.areas += tree.areas;
		batch.bytes += tree.bytes;
	}
	const pages = (lazy.bytes + batch.bytes) / w.bounds.pageSize;
	const counted = hdrF[f + NF_LAZY_ADDED]! - hdrF[f + NF_LAZY_PURGED]!;
	if (pages !== counted) corrupt(`${node} vmapLazyNr: header says ${counted} pages, the lazy and purge trees hold ${pages}`);
	if (lazy.min !== hdrF[f + NF_LAZY_MIN] || lazy.max !== hdrF[f + NF_LAZY_MAX]) {
		corrupt(
			`${node} lazy tree: covers [${lazy.min}, ${lazy.max}), the incremental flush range says [${hdrF[f + NF_LAZY_MIN]}, ${hdrF[f + NF_LAZY_MAX]})`,
		);
	}
	w.records += lazy.areas + batch.areas;
	return lazy.bytes + batch.bytes;
}

/** Pools: LIFO lists of areas of exactly k pages, flagged pooled for this node. */
function checkPools(w: Walk, v: number): number {
	const { hdr, hdrF } = w.t;
	const b = nodeBase(v);
	const node = `node ${v}`;
	let pooled = 0;
	let bytes = 0;
	for (let k = 1; k <= MAX_VA_SIZE_PAGES; k++) {
		const p = poolWord(v, k);
		if ((hdr[p + POOL_HEAD]! | hdr[p + POOL_LEN]! | hdr[p + POOL_TAIL]!) === 0) continue; // empty, as it says: nothing to walk
		const pool = walkPool(w, `${node} pool ${k}`, hdr[p + POOL_HEAD]!, hdr[p + POOL_LEN]!, v);
		if (pool.areas !== 0 && pool.bytes !== pool.areas * k * w.bounds.pageSize)
			corrupt(`${node} pool ${k}: holds an area that is not ${k} pages`);
		if (hdr[p + POOL_TAIL] !== pool.last)
			corrupt(`${node} pool ${k}: tail is record ${hdr[p + POOL_TAIL]}, the list ends at record ${pool.last}`);
		pooled += pool.areas;
		bytes += pool.bytes;
	}
	if (pooled !== hdr[b + N_POOL_NR]) corrupt(`${node} pools: hold ${pooled} areas, header says ${hdr[b + N_POOL_NR]}`);
	if (bytes !== hdrF[(b >> 1) + NF_POOL_BYTES])
		corrupt(`${node} pools: hold ${bytes} bytes, header says ${hdrF[(b >> 1) + NF_POOL_BYTES]}`);
	w.records += pooled;
	return bytes;
}

/**
 * Node base `b`'s busy hash agrees with its busy tree `busy`: every busy area is chained
 * exactly once, in the bucket its start hashes to, in the table or in a bucket of the old
 * table not moved yet; moved old buckets are empty; nothing else is chained. The tables' runs
 * of records are marked in `w.seen`; returns how many records they take. What the chains reach
 * is marked `id` in `w.hashed`.
 */
function checkHash(w: Walk, b: number, node: string, busy: number[], id: number): number {
	const { hdr, f64, i32 } = w.t;
	const { seen, high } = w;
	const marks = w.hashed;
	const name = `${node} busy hash`;
	const log = hdr[b + N_HASH_LOG]!;
	const oldLog = hdr[b + N_HASH_OLD_LOG]!;
	const moved = hdr[b + N_HASH_MOVED]!;
	if (!(log >= HASH_MIN_LOG && log <= 30 && oldLog >= 0 && oldLog < log && moved >= 0 && moved <= (oldLog === 0 ? 0 : 2 ** oldLog))) {
		corrupt(
			`${name}: log ${log}, old log ${oldLog}, ${moved} old buckets moved: out of range (every node has a table from the space's creation)`,
		);
	}
	const runs: Array<[what: string, first: number, records: number]> = [["table", hdr[b + N_HASH_FIRST]!, hashRecords(log)]];
	if (oldLog !== 0) runs.push(["old table", hdr[b + N_HASH_OLD_FIRST]!, hashRecords(oldLog)]);
	if (hdr[b + N_HASH_RETIRED_LEFT]! > 0) runs.push(["retired table", hdr[b + N_HASH_RETIRED_FIRST]!, hdr[b + N_HASH_RETIRED_LEFT]!]);
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
	chains(hdr[b + N_HASH_FIRST]!, log, 0);
	if (oldLog !== 0) chains(hdr[b + N_HASH_OLD_FIRST]!, oldLog, moved);
	for (const va of busy)
		if (marks[va] !== id) corrupt(`${name}: busy area ${va} [${hex(vaStart(f64, va))}, ${hex(vaEnd(f64, va))}) is in no bucket`);
	if (chained !== busy.length) corrupt(`${name}: chains ${chained} records, the busy tree holds ${busy.length}`);
	return records;
}
