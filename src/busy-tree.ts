/**
 * Busy areas: a plain red-black tree keyed by vaStart, so that any address inside an area finds
 * it. Areas never overlap, so "greatest vaStart <= addr" is the only candidate.
 */
import { corrupt, hex } from "./errors.ts";
import { REC_F64, REC_I32, VA_END, VA_LEFT, VA_RIGHT, VA_START } from "./layout.ts";
import { rbInsert } from "./rbtree.ts";
import type { VaTable } from "./va-table.ts";

/** Link busy record `va` (vaStart/vaEnd set) into the tree rooted at header word `rootWord`. */
export function insertVmapArea(t: VaTable, rootWord: number, va: number): void {
	const f64 = t.f64;
	const i32 = t.i32;
	const start = f64[va * REC_F64 + VA_START]!;
	let parent = 0;
	let left = false;
	for (let node = t.hdr[rootWord]!; node !== 0; ) {
		parent = node;
		const s = f64[node * REC_F64 + VA_START]!;
		if (start < s) {
			left = true;
			node = i32[node * REC_I32 + VA_LEFT]!;
		} else if (start > s) {
			left = false;
			node = i32[node * REC_I32 + VA_RIGHT]!;
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
		const s = f64[node * REC_F64 + VA_START]!;
		if (addr < s) node = i32[node * REC_I32 + VA_LEFT]!;
		else if (addr < f64[node * REC_F64 + VA_END]!) return node;
		else node = i32[node * REC_I32 + VA_RIGHT]!;
	}
	return 0;
}
