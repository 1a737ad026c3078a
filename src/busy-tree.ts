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
	const start = vaStart(t, va);
	let parent = 0;
	let left = false;
	for (let node = t.hdr[rootWord]!; node !== 0; ) {
		parent = node;
		const s = vaStart(t, node);
		if (start < s) {
			left = true;
			node = vaLeft(t, node);
		} else if (start > s) {
			left = false;
			node = vaRight(t, node);
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
	let node = t.hdr[rootWord]!;
	while (node !== 0) {
		const s = vaStart(t, node);
		if (addr < s) node = vaLeft(t, node);
		else if (addr < vaEnd(t, node)) return node;
		else node = vaRight(t, node);
	}
	return 0;
}
