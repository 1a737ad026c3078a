/**
 * Listings: /proc/vmallocinfo in the kernel's shape, and a JSON dump in the spirit of VMA's
 * stats string. Both walk the trees, so they are O(n) and belong to diagnostics, not hot paths.
 */
import type { VmapStats } from "./api.ts";
import { HDR_BUSY_ROOT, HDR_FREE_HEAD, REC_F64, REC_I32, VA_END, VA_FLAGS, VA_LAZY, VA_NEXT, VA_START, VA_TAG } from "./layout.ts";
import { rbFirst, rbNext } from "./rbtree.ts";
import type { VaTable } from "./va-table.ts";

type TagName = (id: number) => string;

/** "0x" and 16 hex digits, as the kernel prints addresses (%pK on 64-bit). */
function addr(n: number): string {
	return `0x${n.toString(16).padStart(16, "0")}`;
}

/**
 * One line per busy area, `0x<start>-0x<end> <size> <tag>`, in address order; then one
 * `0x<start>-0x<end> <size> unpurged vm_area` line per lazy area, as the kernel lists them
 * after its busy areas.
 */
export function vmallocinfo(t: VaTable, tagName: TagName): string {
	const busy: string[] = [];
	const lazy: string[] = [];
	for (let va = rbFirst(t, HDR_BUSY_ROOT); va !== 0; va = rbNext(t, va)) {
		const s = t.f64[va * REC_F64 + VA_START]!;
		const e = t.f64[va * REC_F64 + VA_END]!;
		const head = `${addr(s)}-${addr(e)} ${String(e - s).padStart(7)}`;
		if (t.i32[va * REC_I32 + VA_FLAGS] === VA_LAZY) {
			lazy.push(`${head} unpurged vm_area`);
		} else {
			const tag = t.i32[va * REC_I32 + VA_TAG]!;
			busy.push(tag === 0 ? head : `${head} ${tagName(tag)}`);
		}
	}
	return busy.concat(lazy).map((l) => `${l}\n`).join("");
}

export function dumpSpace(t: VaTable, stats: VmapStats, tagName: TagName): string {
	const areas: Array<{ start: number; end: number; size: number; state: "busy" | "lazy"; tag?: string }> = [];
	for (let va = rbFirst(t, HDR_BUSY_ROOT); va !== 0; va = rbNext(t, va)) {
		const start = t.f64[va * REC_F64 + VA_START]!;
		const end = t.f64[va * REC_F64 + VA_END]!;
		const tag = t.i32[va * REC_I32 + VA_TAG]!;
		const state = t.i32[va * REC_I32 + VA_FLAGS] === VA_LAZY ? "lazy" : "busy";
		areas.push(tag === 0 ? { start, end, size: end - start, state } : { start, end, size: end - start, state, tag: tagName(tag) });
	}
	const free: Array<{ start: number; end: number; size: number }> = [];
	for (let va = t.hdr[HDR_FREE_HEAD]!; va !== 0; va = t.i32[va * REC_I32 + VA_NEXT]!) {
		const start = t.f64[va * REC_F64 + VA_START]!;
		const end = t.f64[va * REC_F64 + VA_END]!;
		free.push({ start, end, size: end - start });
	}
	return JSON.stringify({ stats, areas, free });
}
