/** Read a space's structures straight from its buffer, for assertions. */
import assert from "node:assert/strict";
import { BATCH_SLOTS, HDR_FREE_HEAD } from "../../src/buffer/layout.ts";
import { MAX_VA_SIZE_PAGES, N_BUSY_ROOT, N_LAZY_ROOT, nodeBase, purgeTree } from "../../src/buffer/node-layout.ts";
import { poolWord } from "../../src/tree/nodes.ts";
import { rbFirst, rbNext } from "../../src/tree/rbtree.ts";
import type { VmapSpace } from "../../src/space/space.ts";
import { vaEnd, vaNext, vaStart } from "../../src/buffer/record.ts";

export type Range = [start: number, end: number];

/** Free blocks in address order, read from the free list. */
export function freeBlocks(space: VmapSpace): Range[] {
	const t = space.table;
	const out: Range[] = [];
	for (let va = t.hdr[HDR_FREE_HEAD]!; va !== 0; va = vaNext(t.i32, va)) {
		out.push([vaStart(t.f64, va), vaEnd(t.f64, va)]);
	}
	return out;
}

/** The ranges on the lists from `heads` (linked through `next`), in address order. */
function listed(space: VmapSpace, heads: number[]): Range[] {
	const t = space.table;
	const out: Range[] = [];
	for (const head of heads) {
		for (let va = head; va !== 0; va = vaNext(t.i32, va)) out.push([vaStart(t.f64, va), vaEnd(t.f64, va)]);
	}
	return out.sort((a, b) => a[0] - b[0]);
}

function nodes(space: VmapSpace): number[] {
	return Array.from({ length: space.nodes }, (_, v) => v);
}

/** The ranges in the trees rooted at header words `roots`, in address order. */
function treed(space: VmapSpace, roots: number[]): Range[] {
	const t = space.table;
	const out: Range[] = [];
	for (const root of roots)
		for (let va = rbFirst(t, root); va !== 0; va = rbNext(t, va)) out.push([vaStart(t.f64, va), vaEnd(t.f64, va)]);
	return out.sort((a, b) => a[0] - b[0]);
}

/** Lazy areas (every node's lazy tree and purge trees) in address order. */
export function lazyAreas(space: VmapSpace): Range[] {
	return treed(
		space,
		nodes(space).flatMap((v) => [nodeBase(v) + N_LAZY_ROOT, ...Array.from({ length: BATCH_SLOTS }, (_, k) => purgeTree(v, k))]),
	);
}

/** Pooled areas (every pool of every node) in address order. */
export function pooledAreas(space: VmapSpace): Range[] {
	const hdr = space.table.hdr;
	const heads: number[] = [];
	for (let v = 0; v < space.nodes; v++) {
		for (let k = 1; k <= MAX_VA_SIZE_PAGES; k++) if (hdr[poolWord(v, k)] !== 0) heads.push(hdr[poolWord(v, k)]!);
	}
	return listed(space, heads);
}

/** Busy areas in address order, read from every node's busy tree. */
export function busyAreas(space: VmapSpace): Range[] {
	const t = space.table;
	const out: Range[] = [];
	for (const v of nodes(space)) {
		for (let va = rbFirst(t, nodeBase(v) + N_BUSY_ROOT); va !== 0; va = rbNext(t, va)) {
			out.push([vaStart(t.f64, va), vaEnd(t.f64, va)]);
		}
	}
	return out.sort((a, b) => a[0] - b[0]);
}

/** The head of node `v`'s pool of `pages`-page areas (what the next pool-path allocation probes), or undefined. */
export function poolHead(space: VmapSpace, v: number, pages: number): Range | undefined {
	const t = space.table;
	const va = t.hdr[poolWord(v, pages)]!;
	return va === 0 ? undefined : [vaStart(t.f64, va), vaEnd(t.f64, va)];
}

/** Ranges sorted and with touching ones joined. */
export function coalesce(ranges: Range[]): Range[] {
	const out: Range[] = [];
	for (const [s, e] of [...ranges].sort((a, b) => a[0] - b[0])) {
		const last = out[out.length - 1];
		if (last !== undefined && last[1] === s) last[1] = e;
		else out.push([s, e]);
	}
	return out;
}

/** assert.deepEqual for lists of ranges, fast when they agree (the model tests compare after every command). */
export function sameRanges(actual: readonly Range[], expected: readonly Range[], message?: string): void {
	let same = actual.length === expected.length;
	for (let i = 0; same && i < actual.length; i++) same = actual[i]![0] === expected[i]![0] && actual[i]![1] === expected[i]![1];
	if (!same) assert.deepEqual(actual, expected, message);
}
