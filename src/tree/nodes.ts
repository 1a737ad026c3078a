/**
 * Nodes and their pools (kernel struct vmap_node, node_alloc, node_pool_add_va,
 * node_pool_del_va; "mm: vmalloc: Offload free_vmap_area_lock lock", 2024).
 *
 * Busy areas are split over nodes by address (zones of ZONE_PAGES pages, dealt round-robin),
 * so frees and allocations of different zones take different busy locks. Each node also keeps
 * LIFO pools of areas of exactly 1..MAX_VA_SIZE_PAGES pages, up to POOL_MAX_BYTES, that purges refill: an allocation of such a
 * size, over the whole space, takes the head of its handle's node pool without touching the
 * free-space lock. A handle's node is its id modulo the nodes (the kernel's CPU id).
 */
import { add, addF, put } from "../buffer/journal.ts";
import { VA_POOL, VN_MASK, VN_SHIFT } from "../buffer/layout.ts";
import {
	MAX_VA_SIZE_PAGES,
	N_POOL_NR,
	N_POOL_TABLE,
	NF_POOL_BYTES,
	nodeBase,
	POOL_HEAD,
	POOL_LEN,
	POOL_TAIL,
	POOL_WORDS,
} from "../buffer/node-layout.ts";
import type { VaTable } from "../buffer/va-table.ts";
import { setVaFlags, setVaNext, setVaTag, vaNext, vaSize, vaStart } from "../buffer/record.ts";

/** Pages per zone with several nodes (kernel: "Node partition is 16 pages"). */
export const ZONE_PAGES = 16;

/** The default node count: clamp(hardware concurrency, 1, 128), 1 where the runtime does not say (Node 20). */
export function defaultNodes(): number {
	const n = (globalThis as { navigator?: { hardwareConcurrency?: unknown } }).navigator?.hardwareConcurrency;
	return typeof n === "number" && Number.isSafeInteger(n) ? Math.min(128, Math.max(1, n)) : 1;
}

/** kernel addr_to_node_id: the zone of `addr`, modulo the nodes. */
export function addrToNode(addr: number, zoneInverse: number, nodes: number): number {
	if (nodes === 1) return 0;
	const zone = Math.floor(addr * zoneInverse); // exact: zoneInverse is a power of two
	return zone - Math.floor(zone / nodes) * nodes; // `%` on doubles is a call to fmod
}

/**
 * A record's vn_id, in its flags word above the state byte (kernel encode_vn_id /
 * decode_vn_id): (node + 1) << VN_SHIFT, so that 0 means "no node". The two functions are the
 * only code that knows the encoding.
 */
export function encodeVnId(node: number): number {
	return (node + 1) << VN_SHIFT;
}

/** The node id in a record's flags, -1 for none. */
export function decodeVnId(flags: number): number {
	return ((flags >>> VN_SHIFT) & VN_MASK) - 1;
}

/** Word of node `v`'s pool of `pages`-page areas (1 <= pages <= MAX_VA_SIZE_PAGES). */
export function poolWord(v: number, pages: number): number {
	return nodeBase(v) + N_POOL_TABLE + (pages - 1) * POOL_WORDS;
}

/** The largest area a pool holds, bytes: the kernel's (256 pages of 4 KiB). */
export const POOL_MAX_BYTES = 2 ** 20;

/** Whether an area of `pages` pages (of 1 / `pageInverse` bytes) fits a pool: at most MAX_VA_SIZE_PAGES and POOL_MAX_BYTES. */
export function poolable(pages: number, pageInverse: number): boolean {
	return pages <= MAX_VA_SIZE_PAGES && pages <= POOL_MAX_BYTES * pageInverse;
}

/**
 * Push record `va` (not linked anywhere, vaStart/vaEnd set) on the head of node `v`'s pool of
 * `pages`-page areas. The caller holds v's pool lock.
 */
export function poolAdd(t: VaTable, v: number, va: number, pages: number): void {
	const f64 = t.f64;
	const i32 = t.i32;
	const hdr = t.hdr;
	const p = poolWord(v, pages);
	const head = hdr[p + POOL_HEAD]!;
	setVaFlags(i32, va, VA_POOL | encodeVnId(v));
	setVaTag(i32, va, 0);
	setVaNext(i32, va, head);
	put(hdr, p + POOL_HEAD, va);
	if (head === 0) put(hdr, p + POOL_TAIL, va);
	add(hdr, p + POOL_LEN, 1);
	const b = nodeBase(v);
	add(hdr, b + N_POOL_NR, 1);
	addF(t.hdrF, (b >> 1) + NF_POOL_BYTES, vaSize(f64, va));
}

/**
 * Unlink and return the head of pool `p` (poolWord), 0 when empty. The caller holds the pool
 * lock and resets the record's flags.
 */
export function poolPop(t: VaTable, v: number, p: number): number {
	const f64 = t.f64;
	const i32 = t.i32;
	const hdr = t.hdr;
	const va = hdr[p + POOL_HEAD]!;
	if (va === 0) return 0;
	const next = vaNext(i32, va);
	put(hdr, p + POOL_HEAD, next);
	if (next === 0) put(hdr, p + POOL_TAIL, 0);
	setVaNext(i32, va, 0);
	add(hdr, p + POOL_LEN, -1);
	const b = nodeBase(v);
	add(hdr, b + N_POOL_NR, -1);
	addF(t.hdrF, (b >> 1) + NF_POOL_BYTES, -vaSize(f64, va));
	return va;
}

/**
 * node_pool_del_va's probe: the head of pool `p` if it starts at a multiple of `align` (then
 * poolPop() takes it), else 0. A misaligned head moves to the tail and the probe counts as a
 * miss: one probe only, so the pool path stays O(1). The caller holds the pool lock.
 */
export function poolPeek(t: VaTable, p: number, align: number): number {
	const f64 = t.f64;
	const i32 = t.i32;
	const hdr = t.hdr;
	const va = hdr[p + POOL_HEAD]!;
	if (va === 0) return 0;
	const start = vaStart(f64, va);
	if (start === Math.floor(start / align) * align) return va;
	const next = vaNext(i32, va);
	if (next !== 0) {
		// Rotate: the head becomes the tail.
		put(hdr, p + POOL_HEAD, next);
		setVaNext(i32, hdr[p + POOL_TAIL]!, va);
		setVaNext(i32, va, 0);
		put(hdr, p + POOL_TAIL, va);
	}
	return 0;
}

/**
 * How many areas a decay takes from a pool of `len` areas: all of them on a full decay, else
 * about 25% (len >> 2). A pool of fewer than 4 areas keeps them all (the 2025 kernel's
 * behaviour, not 6.9's, which reclaimed them all): "the last three objects do not play a big
 * game" either way, and keeping them keeps a small working set warm.
 */
export function decayCount(len: number, full: boolean): number {
	return full ? len : len >> 2;
}
