/**
 * Busy areas: a plain red-black tree keyed by vaStart, so that any address inside an area finds
 * it. Areas never overlap, so "greatest vaStart <= addr" is the only candidate.
 */
import { corrupt, hex } from "./errors.ts";

import { rbInsert } from "./rbtree.ts";
import type { VaTable } from "./va-table.ts";
import { vaEnd, vaLeft, vaRight, vaStart } from "./record.ts";

/** Link busy record `va` (vaStart/vaEnd set) into the tree rooted at header word `rootWord`. */
export function insertVmapArea(t: VaTable, rootWord: number, va: number): void {
	const f64 = t.f64;
	const i32 = t.i32;
	const start = vaStart(f64, va);
	let parent = 0;
	let left = false;
	for (let node = t.hdr[rootWord]!; node !== 0; ) {
		parent = node;
		const s = vaStart(f64, node);
		if (start < s) {
			left = true;
			node = vaLeft(i32, node);
		} else if (start > s) {
			left = false;
			node = vaRight(i32, node);
		} else {
			corrupt(`busy tree: an area already starts at ${hex(start)}`);
		}
	}
	rbInsert(t, rootWord, va, parent, left, false);
}

/**
 * The record with vaStart <= addr < vaEnd in the tree rooted at `rootWord`, 0 when there is
 * none. Serves any tree keyed by vaStart whose ranges do not overlap: busy or free.
 */
export function findVmapArea(t: VaTable, rootWord: number, addr: number): number {
	const f64 = t.f64;
	const i32 = t.i32;
	let node = t.hdr[rootWord]!;
	while (node !== 0) {
		const s = vaStart(f64, node);
		if (addr < s) node = vaLeft(i32, node);
		else if (addr < vaEnd(f64, node)) return node;
		else node = vaRight(i32, node);
	}
	return 0;
}
