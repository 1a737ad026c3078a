/**
 * The validator's walks: one tree, one lazy or purge tree, one pool. Each checks the records
 * it reaches against the space's bounds and marks them in the Walk's `seen`, so that a record
 * reached twice, or in two structures, is caught; each adds the ranges it reaches to `all`,
 * which check.ts checks for overlap and coverage.
 */
import { corrupt, hex } from "../api/errors.ts";
import { HDR_SLOT_HIGH, HDRF_PAGE_SIZE, HDRF_ZONE_SIZE, VA_LAZY, VA_POOL, VA_STATE } from "../buffer/layout.ts";
import { subtreeMaxSize, vaEnd, vaFlags, vaIsRed, vaLeft, vaNext, vaParent, vaRight, vaStart } from "../buffer/record.ts";
import type { VaTable } from "../buffer/va-table.ts";
import { addrToNode, decodeVnId, encodeVnId } from "../tree/nodes.ts";

export interface Bounds {
	spaceStart: number;
	spaceEnd: number;
	pageSize: number;
	nodes: number;
	zoneInverse: number;
}

/** One validation's state: what it has reached so far. */
export class Walk {
	readonly t: VaTable;
	readonly bounds: Bounds;
	/** SLOT_HIGH: records at or past it were never handed out. */
	readonly high: number;
	/** Records reached (1), so that none is in two structures. */
	readonly seen: Uint8Array;
	/** The node (+ 1) whose busy hash chains each record. */
	readonly hashed: Uint8Array;
	/** Every range reached, [start, end, what]. */
	readonly all: Array<[number, number, string]> = [];
	/** Records in use, counted as the walks reach them. */
	records = 0;

	constructor(t: VaTable, spaceStart: number, spaceEnd: number) {
		this.t = t;
		this.high = t.hdr[HDR_SLOT_HIGH]!;
		this.seen = new Uint8Array(this.high);
		this.hashed = new Uint8Array(this.high);
		const hdrF = t.hdrF;
		this.bounds = { spaceStart, spaceEnd, pageSize: hdrF[HDRF_PAGE_SIZE]!, nodes: t.nodes, zoneInverse: 1 / hdrF[HDRF_ZONE_SIZE]! };
	}
}

/** A record's vn_id is none or a node of the space. */
export function checkVn(flags: number, nodes: number, what: () => string): void {
	const vn = decodeVnId(flags);
	if (vn < -1 || vn >= nodes) corrupt(`${what()} carries node id ${vn}, not one of the ${nodes} nodes`);
}

/**
 * Walk the lazy tree or a purge tree of node `v` (rooted at header word `rootWord`, `nr` areas
 * by its count): a search tree, red-black if `balanced`, of lazy records on the right node
 * (their vn_id's, else their address's), each in no other structure, and its list from header
 * word `headWord`, the same records in the same order. Adds them to `w.all`; returns their
 * number, bytes, last record and the range they cover (+-Infinity when empty).
 */
export function walkLazy(w: Walk, name: string, rootWord: number, headWord: number, nr: number, balanced: boolean, v: number) {
	const { f64, i32 } = w.t;
	const { bounds, all } = w;
	const records = walkTree(w, name, rootWord, false, balanced);
	let listed = w.t.hdr[headWord]!;
	for (let i = 0; i < records.length; i++) {
		if (listed !== records[i]) corrupt(`${name}: its list's entry ${i} is record ${listed}, the tree's is record ${records[i]}`);
		listed = vaNext(i32, listed);
	}
	if (listed !== 0) corrupt(`${name}: its list continues past the tree's last record, at record ${listed}`);
	let bytes = 0;
	let min = Infinity;
	let max = -Infinity;
	for (const va of records) {
		const flags = vaFlags(i32, va);
		if ((flags & VA_STATE) !== VA_LAZY) corrupt(`${name}: record ${va} has state flags ${flags & VA_STATE}, not lazy`);
		checkVn(flags, bounds.nodes, () => `${name}: record ${va}`);
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
 * and in no other structure. Adds them to `w.all`; returns their number, bytes and last record.
 */
export function walkPool(w: Walk, name: string, head: number, nr: number, v: number) {
	const { f64, i32 } = w.t;
	const { seen, bounds, all } = w;
	let areas = 0;
	let bytes = 0;
	let last = 0;
	for (let va = head; va !== 0; va = vaNext(i32, va)) {
		if (va >= seen.length) corrupt(`${name}: record ${va} is at or past SLOT_HIGH ${seen.length}`);
		if (seen[va]) corrupt(`${name}: record ${va} is reached twice (or is in another structure too)`);
		seen[va] = 1;
		const flags = vaFlags(i32, va);
		if ((flags & VA_STATE) !== VA_POOL) corrupt(`${name}: record ${va} has state flags ${flags & VA_STATE}, not pooled`);
		checkVn(flags, bounds.nodes, () => `${name}: record ${va}`);
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
 * Returns the slots in address order. It marks the records in `w.seen`, so that one record
 * in two places is caught.
 */
export function walkTree(w: Walk, name: string, rootWord: number, aug: boolean, balanced = true): number[] {
	const { t, seen } = w;
	const { spaceStart, spaceEnd, pageSize } = w.bounds;
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
