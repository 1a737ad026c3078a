/**
 * Listings: /proc/vmallocinfo in the kernel's shape, and a JSON dump in the spirit of VMA's
 * stats string. Both walk the trees, so they are O(n) and belong to diagnostics, not hot paths.
 */
import type { VmapStats } from "./api.ts";
import {
	HDR_FREE_HEAD,
	N_BUSY_ROOT,
	N_LAZY_HEAD,
	nodeBase,
	purgeList,
	BATCH_SLOTS,
	HDRF_BLOCK_BYTES,
} from "./layout.ts";
import { rbFirst, rbNext } from "./rbtree.ts";
import { D_DIRTY_NR, D_FREE_NR, D_LIVE_NR, D_OWNER, D_REMOTE_NR, D_SLOTS, DF_SLOT_BYTES, DF_START, eachBlock } from "./small-blocks.ts";
import type { VaTable } from "./va-table.ts";
import { vaEnd, vaNext, vaStart, vaTag } from "./record.ts";

type TagName = (id: number) => string;

/** "0x" and 16 hex digits, as the kernel prints addresses (%pK on 64-bit). */
function addr(n: number): string {
	return `0x${n.toString(16).padStart(16, "0")}`;
}

/** Records in address order. */
function byAddress(t: VaTable, records: number[]): number[] {
	const f64 = t.f64;
	return records.sort((a, b) => vaStart(f64, a) - vaStart(f64, b));
}

/** Heads of node `v`'s purge lists, one per batch. */
export function purgeHeads(t: VaTable, v: number): number[] {
	const out: number[] = [];
	for (let k = 0; k < BATCH_SLOTS; k++) out.push(t.hdr[purgeList(v, k)]!);
	return out;
}

/** Lazy records (every node's lazy and purge lists) in address order. */
function lazyAreas(t: VaTable): number[] {
	const i32 = t.i32;
	const out: number[] = [];
	for (let v = 0; v < t.nodes; v++) {
		for (const head of [t.hdr[nodeBase(v) + N_LAZY_HEAD]!, ...purgeHeads(t, v)]) {
			for (let va = head; va !== 0; va = vaNext(i32, va)) out.push(va);
		}
	}
	return byAddress(t, out);
}

/** Busy records (every node's busy tree) in address order. */
function busyAreas(t: VaTable): number[] {
	const out: number[] = [];
	for (let v = 0; v < t.nodes; v++) {
		for (let va = rbFirst(t, nodeBase(v) + N_BUSY_ROOT); va !== 0; va = rbNext(t, va)) out.push(va);
	}
	return t.nodes === 1 ? out : byAddress(t, out);
}

function range(t: VaTable, va: number): { start: number; end: number; size: number } {
	const f64 = t.f64;
	const start = vaStart(f64, va);
	const end = vaEnd(f64, va);
	return { start, end, size: end - start };
}

/**
 * One line per busy area, `0x<start>-0x<end> <size> <tag>`, in address order; then one
 * `0x<start>-0x<end> <size> unpurged vm_area` line per lazy area, as the kernel lists them
 * after its busy areas.
 */
export function vmallocinfo(t: VaTable, tagName: TagName): string {
	const i32 = t.i32;
	const line = (va: number) => {
		const { start, end, size } = range(t, va);
		return `${addr(start)}-${addr(end)} ${String(size).padStart(7)}`;
	};
	let out = "";
	for (const va of busyAreas(t)) {
		const tag = vaTag(i32, va);
		out += tag === 0 ? `${line(va)}\n` : `${line(va)} ${tagName(tag)}\n`;
	}
	for (const va of lazyAreas(t)) out += `${line(va)} unpurged vm_area\n`;
	return out;
}

export function dumpSpace(t: VaTable, stats: VmapStats, tagName: TagName): string {
	const i32 = t.i32;
	type Area = { start: number; end: number; size: number; state: "busy" | "lazy"; tag?: string };
	const areas: Area[] = [];
	const add = (va: number, state: Area["state"]) => {
		const tag = vaTag(i32, va);
		areas.push(tag === 0 ? { ...range(t, va), state } : { ...range(t, va), state, tag: tagName(tag) });
	};
	for (const va of busyAreas(t)) add(va, "busy");
	for (const va of lazyAreas(t)) add(va, "lazy");
	areas.sort((a, b) => a.start - b.start);
	const free: Array<{ start: number; end: number; size: number }> = [];
	for (let va = t.hdr[HDR_FREE_HEAD]!; va !== 0; va = vaNext(i32, va)) free.push(range(t, va));
	// Small-area blocks: each is also one busy area above (tag vmap_block).
	const blocks: Array<{ start: number; end: number; owner: number; areaSize: number; slots: number; live: number; lazy: number; free: number }> = [];
	eachBlock(t, (d) => {
		const start = t.f64[(d >> 1) + DF_START]!;
		const remote = i32[d + D_REMOTE_NR]!;
		blocks.push({
			start,
			end: start + t.hdrF[HDRF_BLOCK_BYTES]!,
			owner: i32[d + D_OWNER]!,
			areaSize: t.f64[(d >> 1) + DF_SLOT_BYTES]!,
			slots: i32[d + D_SLOTS]!,
			live: i32[d + D_LIVE_NR]! - remote,
			lazy: i32[d + D_DIRTY_NR]! + remote,
			free: i32[d + D_FREE_NR]!,
		});
	});
	blocks.sort((a, b) => a.start - b.start);
	return JSON.stringify({ stats, areas, free, blocks });
}
