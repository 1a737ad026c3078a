/**
 * Allocation (kernel alloc_vmap_area): the argument checks, the node pool path (node_alloc),
 * the lowest fit in free space, and the overflow purge and retry.
 */
import { addF } from "../buffer/journal.ts";
import type { AllocOptions } from "../api/types.ts";
import { hashInsert, hashMaintain } from "../tree/busy-hash.ts";
import { insertVmapArea } from "../tree/busy-tree.ts";
import { hex, shown, VmapError } from "../api/errors.ts";
import { alignUp, findVmapLowestMatch, vaClip } from "../tree/free-space.ts";
import { HDR_FREE_LOCK, HDR_FREE_ROOT, HDRF_FAILED, VA_BUSY } from "../buffer/layout.ts";
import {
	N_BUSY_LOCK,
	N_BUSY_NR,
	N_BUSY_ROOT,
	N_POOL_LOCK,
	N_POOL_NR,
	NF_ALLOCS,
	NF_BUSY_BYTES,
	NF_POOL_HITS,
	NF_POOL_MISSES,
	nodeBase,
	POOL_LEN,
} from "../buffer/node-layout.ts";
import { encodeVnId, poolable, poolPeek, poolPop, poolWord } from "../tree/nodes.ts";
import { isPowerOfTwo, validateAlign, validateNowait, validateOptions, validateTag, validateTimeout } from "./options.ts";
import { beforeDeadline, withTimeout } from "./deadline.ts";
import { flushingNote } from "../purge/batches.ts";
import { workPosted } from "../purge/work.ts";
import { ownZoneFit, zoneFitStart } from "./zone-fit.ts";
import { initVa, setVaFlags, setVaRange, setVaTag, subtreeMaxSize, vaEnd, vaStart } from "../buffer/record.ts";
import type { SpaceState } from "./state.ts";
import type { VaTable } from "../buffer/va-table.ts";
import { type BlockSetup, NOT_SMALL } from "../small/cache.ts";

const ALLOC_KEYS = ["align", "vstart", "vend", "tag", "nowait", "timeoutMs"];

/**
 * VmapSpace.allocAsync: allocVmapArea, and when nothing fits even after its purge, a wait for
 * the purge's flush (an asynchronous hook) and one more try. With `timeoutMs`, the lock waits
 * and the wait for the flush all end by then: ETIMEDOUT, nothing allocated.
 */
export async function allocVmapAreaAsync(s: SpaceState, size: number, options: AllocOptions | undefined): Promise<number> {
	const timeoutMs = options?.timeoutMs;
	if (timeoutMs !== undefined) validateTimeout(timeoutMs, "Cannot allocAsync");
	const deadline = performance.now() + (timeoutMs ?? Infinity);
	const within = <T>(call: () => T): T =>
		timeoutMs === undefined ? call() : withTimeout(s.locks, Math.max(0, deadline - performance.now()), "allocAsync", call);
	try {
		return within(() => allocVmapArea(s, size, options, "purge"));
	} catch (e) {
		if (!(e instanceof VmapError) || e.code !== "EBUSY") throw e;
	}
	const flushed = within(() => s.purger.purge("overflow")).done;
	const late = `Cannot allocAsync ${size} bytes: the purge's flush did not settle within timeoutMs ${timeoutMs}; nothing was allocated`;
	await (timeoutMs === undefined ? flushed : beforeDeadline(flushed, deadline, late));
	return within(() => allocVmapArea(s, size, options, "fail"));
}

/**
 * alloc() from this handle's small-area cache, or NOT_SMALL for the ordinary path: the space
 * has no cache, or the request is not one it serves (its size, then smallTag's rule), or no
 * block could be had. `timeoutMs` bounds the lock waits a new block may take.
 */
export function allocSmall(s: SpaceState, size: number, options: AllocOptions | undefined): number | typeof NOT_SMALL {
	const small = s.small;
	if (small === undefined || !small.serves(size)) return NOT_SMALL; // first: a tag is interned only for a request the cache may serve
	if (options === undefined) return small.alloc(size);
	const tag = smallTag(s, options);
	if (tag < 0) return NOT_SMALL;
	const timeoutMs = options.timeoutMs;
	if (timeoutMs === undefined) return small.alloc(size, tag);
	return withTimeout(s.locks, timeoutMs, "alloc", () => small.alloc(size, tag));
}

/**
 * The tag index a request with `options` takes from the small-area cache (0: no tag), or -1
 * when the cache does not serve it. The rule, by size and alignment only: a request of at most
 * smallMax bytes with `align` at most pageSize and no window narrower than the space comes from
 * the cache, tagged or not (`nowait` and `timeoutMs` change nothing there). -1 too for an
 * option the ordinary path refuses, so that its error says why.
 */
function smallTag(s: SpaceState, options: AllocOptions): number {
	if (typeof options !== "object" || options === null) return -1;
	for (const key in options) if (!ALLOC_KEYS.includes(key)) return -1;
	const { align, vstart, vend, tag, nowait } = options;
	if (align !== undefined && !(isPowerOfTwo(align) && align <= s.pageSize)) return -1;
	if ((vstart !== undefined && vstart !== s.start) || (vend !== undefined && vend !== s.end)) return -1;
	if (nowait !== undefined && typeof nowait !== "boolean") return -1;
	if (tag === undefined) return 0;
	return typeof tag === "string" ? s.tags.intern(tag) : -1;
}

/** When nothing fits: purge the lazy areas and retry once (kernel "overflow"), or fail at once. */
export type Overflow = "purge" | "fail";

/** What an alloc's options ask, checked. */
interface AllocRequest {
	align: number;
	vstart: number;
	vend: number;
	tagName: string | undefined;
	overflow: Overflow;
}

/**
 * Allocate `size` bytes at the lowest address that fits (see VmapSpace.alloc), or as
 * `overflow` says when nothing does. Every check that can fail runs before anything is
 * written (the tag is interned last of all), so a failed call changes nothing. `block`: the
 * area is a small-area block, set up in the same critical section (small/cache-state.ts
 * BlockSetup; from free space only).
 */
export function allocVmapArea(
	s: SpaceState,
	size: number,
	options: AllocOptions | undefined,
	overflow: Overflow,
	block?: BlockSetup,
): number {
	const pageSize = s.pageSize;
	let align = pageSize;
	let vstart = s.start;
	let vend = s.end;
	let tagName: string | undefined;
	if (options !== undefined) ({ align, vstart, vend, tagName, overflow } = allocRequest(s, options, overflow));
	// Whole pages: size / pageSize is exact (a power of two), and Math.floor is one instruction
	// where `%` on doubles is a call to fmod.
	const pages = typeof size === "number" ? size * s.pageInverse : NaN; // a bigint or symbol is EINVAL, not a TypeError
	if (!(pages >= 1 && Math.floor(pages) === pages && size <= vend - vstart && Number.isSafeInteger(size))) badSize(s, size, vstart, vend);
	const tag = tagName === undefined ? 0 : s.tags.intern(tagName);

	const t = s.table;
	const locks = s.locks;
	locks.ensureAlive();
	if (workPosted(t)) s.purger.help();

	// The pool path (kernel node_alloc): only over the whole space, with several nodes. The
	// area is tagged with this handle's node even when the pool has none, so that its purge
	// refills this node's pool: pools fill by demand ("mm: vmalloc: Offload free_vmap_area_lock lock").
	let vn = 0;
	let pool = 0;
	if (s.nodes > 1 && vstart === s.start && vend === s.end && block === undefined) {
		vn = encodeVnId(s.node);
		if (poolable(pages, s.pageInverse)) {
			pool = poolWord(s.node, pages);
			if (t.hdr[pool + POOL_LEN] !== 0) {
				// A peek first, as the kernel does: an empty pool costs no lock.
				const addr = nodeAlloc(s, pool, align, vn, tag);
				if (addr >= 0) return addr;
			}
		}
	}

	// Free space, then the busy tree of the address's node (the lock order), both taken before
	// anything changes: the new area joins its busy tree before the free-space lock is dropped,
	// so no one holding every lock ever sees a range in neither.
	locks.acquire(HDR_FREE_LOCK);
	let va: number;
	try {
		t.reserve(2); // the busy record and a middle split: running out fails before any change
		block?.reserve();
		va = findVmapLowestMatch(t, size, align, vstart, vend, pageSize);
	} catch (e) {
		locks.release(HDR_FREE_LOCK);
		// The table is full (maxAreas): lazy areas hold records that a purge gives back as it
		// merges them into free space. Purge and retry once, as when nothing fits.
		if (!(e instanceof VmapError && e.code === "ENOMEM" && overflow === "purge" && t.lazyPages() > 0)) throw e;
		overflowPurge(s);
		return allocVmapArea(s, size, options, "fail", block);
	}
	if (va === 0) {
		locks.release(HDR_FREE_LOCK);
		return noFit(s, size, options, { align, vstart, vend, tagName, overflow });
	}
	const start = vaStart(t.f64, va); // after reserve(), which may have replaced the views
	// Block starts are page aligned: the common case needs no rounding.
	let nva = start >= vstart && align === pageSize ? start : alignUp(start > vstart ? start : vstart, align);
	if (pool !== 0 && align === pageSize) {
		va = ownZoneFit(t, s, va, nva, size); // a pool miss starts in a zone of this node (zone-fit.ts)
		nva = zoneFitStart;
	}
	const b = s.busyNodeBase(nva);
	locks.acquireUnder(b + N_BUSY_LOCK, HDR_FREE_LOCK);
	const busy = carveBusy(t, va, nva, size, VA_BUSY | vn | s.ownerFlags, tag);
	if (pool !== 0) addF(t.hdrF, (nodeBase(s.node) >> 1) + NF_POOL_MISSES, 1);
	linkBusy(s, b, busy, nva, size, busy !== va); // not the free block's own record: a slot taken now
	block?.setUp(busy, nva); // before hashMaintain, which may take the records block.reserve() counted on
	hashMaintain(t, b); // last: it may grow the record table, which the free-space lock allows
	locks.release(b + N_BUSY_LOCK);
	locks.release(HDR_FREE_LOCK);
	return nva;
}

/**
 * The busy record of [nva, nva + size), carved from free block `va` (vaClip): the block's own
 * record when it is used whole, else a slot taken now, filled without journal entries (initVa).
 */
function carveBusy(t: VaTable, va: number, nva: number, size: number, flags: number, tag: number): number {
	const busy = vaClip(t, va, nva, size);
	if (busy === 0) {
		const fresh = t.allocSlot();
		initVa(t.f64, t.i32, fresh, nva, nva + size, flags, tag);
		return fresh;
	}
	setVaRange(t.f64, busy, nva, nva + size);
	setVaFlags(t.i32, busy, flags);
	setVaTag(t.i32, busy, tag);
	return busy;
}

/**
 * Take the head of this handle's pool `pool` and make it busy (kernel node_pool_del_va).
 * Returns its address, or -1 when the pool is empty or its head is not aligned (then moved
 * to the tail: one probe only).
 */
function nodeAlloc(s: SpaceState, pool: number, align: number, vn: number, tag: number): number {
	const t = s.table;
	const lock = nodeBase(s.node) + N_POOL_LOCK;
	s.locks.acquire(lock);
	t.sync();
	const va = poolPeek(t, pool, align);
	if (va === 0) {
		s.locks.release(lock);
		return -1;
	}
	const start = vaStart(t.f64, va);
	const b = s.busyNodeBase(start);
	s.locks.acquireUnder(b + N_BUSY_LOCK, lock);
	t.sync(); // the busy tree may reach records another handle's growth added
	// Under both locks: the area is never in neither structure.
	poolPop(t, s.node, pool);
	setVaFlags(t.i32, va, VA_BUSY | vn | s.ownerFlags);
	setVaTag(t.i32, va, tag);
	linkBusy(s, b, va, start, vaEnd(t.f64, va) - start, false);
	addF(t.hdrF, (nodeBase(s.node) >> 1) + NF_POOL_HITS, 1);
	s.locks.release(b + N_BUSY_LOCK);
	s.locks.release(lock);
	return start;
}

/**
 * Link record `va`, [start, start + size), flagged busy, into node base `b`'s busy tree and
 * hash; the caller holds b's busy lock. `fresh`: allocSlot() took `va` in this critical section.
 */
function linkBusy(s: SpaceState, b: number, va: number, start: number, size: number, fresh: boolean): void {
	const t = s.table;
	insertVmapArea(t, b + N_BUSY_ROOT, va);
	hashInsert(t, b, va, start, fresh);
	t.hdr[b + N_BUSY_NR]!++; // derived, as NF_BUSY_BYTES: not journaled (tree/repair.ts recounts)
	const f = b >> 1;
	t.hdrF[f + NF_BUSY_BYTES]! += size;
	t.hdrF[f + NF_ALLOCS]!++; // derived too: frees + busy areas (tree/repair.ts)
}

/** Areas in every node's pools (plain reads: a hint). */
function pooled(s: SpaceState): number {
	let n = 0;
	for (let v = 0; v < s.nodes; v++) n += s.table.hdr[nodeBase(v) + N_POOL_NR]!;
	return n;
}

/** The checked request of `options` (EINVAL naming what is wrong); `nowait` means no overflow purge. */
function allocRequest(s: SpaceState, options: AllocOptions, overflow: Overflow): AllocRequest {
	const cannot = "Cannot alloc";
	validateOptions(options, ALLOC_KEYS, cannot);
	// A null vstart or vend is EINVAL (validateWindow), not the default.
	const vstart = options.vstart !== undefined ? options.vstart : s.start;
	const vend = options.vend !== undefined ? options.vend : s.end;
	const r: AllocRequest = { align: s.pageSize, vstart, vend, tagName: options.tag, overflow };
	if (options.align !== undefined) {
		validateAlign(options.align, cannot);
		if (options.align > s.pageSize) r.align = options.align;
	}
	if (r.vstart !== s.start || r.vend !== s.end) validateWindow(s, r.vstart, r.vend);
	if (options.tag !== undefined) validateTag(options.tag, cannot);
	if (options.nowait !== undefined) {
		validateNowait(options.nowait, cannot);
		if (options.nowait) r.overflow = "fail";
	}
	return r;
}

/** The overflow purge before an allocation's one retry: what it could not do (a flush that failed, a wait that timed out) the retry lives with. */
function overflowPurge(s: SpaceState): void {
	try {
		s.purger.purge("overflow");
	} catch (e) {
		// A flush hook that threw leaves its batch lazy (counted in flushErrors), and a batch
		// still flushing elsewhere past timeoutMs stays out of use: retry with what there is.
		if (e instanceof VmapError && e.code === "EOWNERDEAD") throw e;
	}
}

/**
 * No block fits: purge and retry once (kernel "overflow"), or fail with EBUSY. A request that
 * no free space could ever meet (no multiple of `align` in the window leaves room for `size`)
 * fails at once: a purge, and its flush hook, could not help it.
 */
function noFit(s: SpaceState, size: number, options: AllocOptions | undefined, r: AllocRequest): number {
	const t = s.table;
	const possible = alignUp(r.vstart, r.align) + size <= r.vend;
	if (r.overflow === "purge" && possible && (t.lazyPages() > 0 || pooled(s) > 0)) {
		overflowPurge(s);
		return allocVmapArea(s, size, options, "fail");
	}
	s.locks.acquire(HDR_FREE_LOCK);
	addF(t.hdrF, HDRF_FAILED, 1);
	const largest = subtreeMaxSize(t.f64, t.hdr[HDR_FREE_ROOT]!);
	s.locks.release(HDR_FREE_LOCK);
	const lazy = t.lazyPages() * s.pageSize;
	throw new VmapError(
		"EBUSY",
		`alloc for size ${size} align ${r.align} failed: Address range restricted to ${hex(r.vstart)} - ${hex(r.vend)}: the space's largest free block is ${largest} bytes${lazy > 0 ? `, and ${lazy} bytes are lazy (freed, waiting for a purge)` : ""}${flushingNote(s.table)}`,
	);
}

function validateWindow(s: SpaceState, vstart: number, vend: number): void {
	if (!Number.isSafeInteger(vstart) || !Number.isSafeInteger(vend)) {
		throw new VmapError(
			"EINVAL",
			`Cannot alloc: vstart and vend must be whole numbers, got vstart ${shown(vstart)}, vend ${shown(vend)}`,
		);
	}
	if (vstart < s.start || vend > s.end || vstart >= vend) {
		throw new VmapError(
			"EINVAL",
			`Cannot alloc: the window [vstart, vend) = [${hex(vstart)}, ${hex(vend)}) must be non-empty and inside the space [${hex(s.start)}, ${hex(s.end)})`,
		);
	}
}

function badSize(s: SpaceState, size: number, vstart: number, vend: number): never {
	const what = typeof size === "number" ? shown(size) : `${typeof size} ${shown(size)}`;
	if (typeof size === "number" && Number.isSafeInteger(size) && size > 0 && size % s.pageSize === 0) {
		throw new VmapError(
			"EINVAL",
			`Cannot alloc: size ${what} is larger than the window [${hex(vstart)}, ${hex(vend)}) of ${vend - vstart} bytes`,
		);
	}
	throw new VmapError("EINVAL", `Cannot alloc: size must be a positive whole number of pages (pageSize ${s.pageSize}), got ${what}`);
}
