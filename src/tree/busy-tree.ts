/**
 * Address trees: plain red-black trees keyed by vaStart, so that any address inside an area
 * finds it. Areas never overlap, so "greatest vaStart <= addr" is the only candidate. They
 * index the busy areas of a node, and the lazy areas of a node: its lazy tree and purge trees.
 */
import { corrupt, hex } from "../api/errors.ts";

import { PLAIN, rbInsert } from "./rbtree.ts";
import { VA_LEFT, VA_RIGHT } from "../buffer/layout.ts";
import type { Side } from "../buffer/record.ts";
import type { VaTable } from "../buffer/va-table.ts";
import { vaEnd, vaLeft, vaRight, vaStart } from "../buffer/record.ts";

/**
 * Link record `va` (vaStart/vaEnd set, in no tree) into the address tree rooted at header word
 * `rootWord`; `what` names the tree in the error a duplicate start raises.
 */
export function insertVmapArea(t: VaTable, rootWord: number, va: number, what = "busy tree"): void {
	const f64 = t.f64;
	const i32 = t.i32;
	const start = vaStart(f64, va);
	let parent = 0;
	let side: Side = VA_RIGHT;
	for (let node = t.hdr[rootWord]!; node !== 0; ) {
		parent = node;
		const s = vaStart(f64, node);
		if (start < s) {
			side = VA_LEFT;
			node = vaLeft(i32, node);
		} else if (start > s) {
			side = VA_RIGHT;
			node = vaRight(i32, node);
		} else {
			corrupt(`${what}: an area already starts at ${hex(start)}`);
		}
	}
	rbInsert(t, rootWord, va, parent, side, PLAIN);
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
