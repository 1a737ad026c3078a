/** Read a space's structures straight from its buffer, for assertions. */
import { HDR_BUSY_ROOT, HDR_FREE_HEAD, HDR_LAZY_HEAD, HDR_PURGE_HEAD, REC_F64, REC_I32, VA_END, VA_NEXT, VA_START } from "../../src/layout.ts";
import { rbFirst, rbNext } from "../../src/rbtree.ts";
import type { VmapSpace } from "../../src/space.ts";

export type Range = [start: number, end: number];

/** Free blocks in address order, read from the free list. */
export function freeBlocks(space: VmapSpace): Range[] {
	const t = space.table;
	const out: Range[] = [];
	for (let va = t.hdr[HDR_FREE_HEAD]!; va !== 0; va = t.i32[va * REC_I32 + VA_NEXT]!) {
		out.push([t.f64[va * REC_F64 + VA_START]!, t.f64[va * REC_F64 + VA_END]!]);
	}
	return out;
}

/** Lazy areas (lazy list and purge batch) in address order. */
export function lazyAreas(space: VmapSpace): Range[] {
	const t = space.table;
	const out: Range[] = [];
	for (const head of [t.hdr[HDR_LAZY_HEAD]!, t.hdr[HDR_PURGE_HEAD]!]) {
		for (let va = head; va !== 0; va = t.i32[va * REC_I32 + VA_NEXT]!) out.push([t.f64[va * REC_F64 + VA_START]!, t.f64[va * REC_F64 + VA_END]!]);
	}
	return out.sort((a, b) => a[0] - b[0]);
}

/** Busy areas in address order, read from the busy tree. */
export function busyAreas(space: VmapSpace): Range[] {
	const t = space.table;
	const out: Range[] = [];
	for (let va = rbFirst(t, HDR_BUSY_ROOT); va !== 0; va = rbNext(t, va)) {
		out.push([t.f64[va * REC_F64 + VA_START]!, t.f64[va * REC_F64 + VA_END]!]);
	}
	return out;
}
