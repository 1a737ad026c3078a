/**
 * Looking addresses up: find() (kernel find_vmap_area), where an address lies when it starts
 * no busy area, and the error that says so in the words of the call that asked. Every lookup
 * is a descent of address trees (busy, lazy, purge), holding one node's locks at a time.
 */
import type { AreaInfo } from "../api/types.ts";
import { findVmapArea } from "../tree/busy-tree.ts";
import { hex, shown, VmapError } from "../api/errors.ts";
import { BATCH_SLOTS, VA_MERGED } from "../buffer/layout.ts";
import { N_BUSY_LOCK, N_BUSY_ROOT, N_LAZY_LOCK, N_LAZY_ROOT, N_POOL_LOCK, nodeBase, purgeTree } from "../buffer/node-layout.ts";
import { vaEnd, vaFlags, vaOwner, vaStart, vaTag } from "../buffer/record.ts";
import { NOT_SMALL } from "../small/cache.ts";
import type { SpaceState } from "./state.ts";

/**
 * The area holding `addr`, busy or lazy, or undefined when the address is free (in a free
 * block or a pool, which to a caller are the same: nothing is allocated there). O(nodes log n),
 * holding one node's locks at a time, never every lock.
 */
export function findArea(s: SpaceState, addr: number): AreaInfo | undefined {
	s.locks.ensureAlive();
	if (!Number.isSafeInteger(addr)) throw new VmapError("EINVAL", `Cannot find: address must be a whole number, got ${shown(addr)}`);
	if (addr < s.start || addr >= s.end) return undefined;
	if (s.small !== undefined) {
		const info = s.small.find(addr); // an address in a small-area block: its small area, or none
		if (info !== NOT_SMALL) return info;
	}
	return findBusy(s, addr) ?? findLazy(s, addr);
}

/**
 * The busy area holding `addr`: the busy trees are searched from the address's node backwards,
 * so an area spanning zones is found at its start's node. One busy lock at a time.
 */
function findBusy(s: SpaceState, addr: number): AreaInfo | undefined {
	const t = s.table;
	const locks = s.locks;
	for (let i = 0, v = s.addrNode(addr); i < s.nodes; i++, v = v === 0 ? s.nodes - 1 : v - 1) {
		const b = nodeBase(v);
		locks.acquire(b + N_BUSY_LOCK);
		t.sync();
		const va = findVmapArea(t, b + N_BUSY_ROOT, addr);
		const info = va === 0 ? undefined : describe(s, va, "busy");
		locks.release(b + N_BUSY_LOCK);
		if (info !== undefined) return info;
	}
	return undefined;
}

/** Whether the lazy area findLazy() found last holds several freed areas (VA_MERGED): module scratch, as the answer is one more bit. */
let lazyMerged = false;

/**
 * The lazy area holding `addr`: each node's lazy tree and purge trees, searched holding that
 * node's pool and lazy locks, so that a purge moving the node's lazy tree (or a failed flush
 * moving it back) is seen before or after, never half done.
 *
 * Why "undefined" is a true answer without holding every lock: an area moves busy -> lazy ->
 * purge tree -> pool or free block, each step under the locks of both ends. A lookup that
 * missed the area in the busy trees and then in its lazy node's trees saw it leave them, so at
 * some moment during the call the address was free.
 */
function findLazy(s: SpaceState, addr: number): AreaInfo | undefined {
	const t = s.table;
	const locks = s.locks;
	lazyMerged = false;
	for (let v = 0; v < s.nodes; v++) {
		const b = nodeBase(v);
		locks.acquire(b + N_POOL_LOCK);
		locks.acquireUnder(b + N_LAZY_LOCK, b + N_POOL_LOCK); // a wait that fails releases the pool lock too
		t.sync();
		let va = findVmapArea(t, b + N_LAZY_ROOT, addr);
		for (let k = 0; va === 0 && k < BATCH_SLOTS; k++) va = findVmapArea(t, purgeTree(v, k), addr);
		const info = va === 0 ? undefined : describe(s, va, "lazy");
		if (va !== 0) lazyMerged = (vaFlags(t.i32, va) & VA_MERGED) !== 0;
		locks.release(b + N_LAZY_LOCK);
		locks.release(b + N_POOL_LOCK);
		if (info !== undefined) return info;
	}
	return undefined;
}

function describe(s: SpaceState, va: number, state: "busy" | "lazy"): AreaInfo {
	const t = s.table;
	const f64 = t.f64;
	const i32 = t.i32;
	const start = vaStart(f64, va);
	const end = vaEnd(f64, va);
	const tag = vaTag(i32, va);
	const owner = vaOwner(i32, va);
	return { start, end, size: end - start, tag: tag === 0 ? undefined : s.tags.name(tag), state, owner };
}

/** `addr` starts no busy area: throw the error that says what lies there, in the words of `op`. */
export function notAnArea(s: SpaceState, addr: number, op: string): never {
	if (addr < s.start || addr >= s.end) {
		throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: the address is outside the space [${hex(s.start)}, ${hex(s.end)})`);
	}
	const info = findBusy(s, addr) ?? findLazy(s, addr);
	if (info === undefined) {
		throw new VmapError(
			"ENOENT",
			`Cannot ${op} ${hex(addr)}: no area starts there; the address is free (never allocated, or already freed and purged)`,
		);
	}
	const range = `[${hex(info.start)}, ${hex(info.end)})`;
	if (info.state === "lazy" && info.start === addr) {
		throw new VmapError("EDOUBLEFREE", `Cannot ${op} ${hex(addr)}: the area ${range} is freed already (lazy, waiting for a purge)`);
	}
	if (info.state === "lazy" && lazyMerged) {
		// Areas freed one after another merged into one lazy range: where each began is not kept.
		throw new VmapError(
			"EDOUBLEFREE",
			`Cannot ${op} ${hex(addr)}: it lies in ${range}, areas freed already and merged while they wait for a purge (lazy): a second free of one of them, or an address inside one`,
		);
	}
	if (info.start === addr) {
		// Between the failed lookup and this diagnosis another worker allocated an area here.
		throw new VmapError(
			"ENOENT",
			`Cannot ${op} ${hex(addr)}: no area started there when the call looked (another worker allocated ${range} since)`,
		);
	}
	throw new VmapError(
		"ENOENT",
		`Cannot ${op} ${hex(addr)}: no area starts there; it lies inside the area ${range}${info.state === "lazy" ? ", which is freed already" : ""}`,
	);
}
