/**
 * The core layer (src/core/): the space's operations on the layers below: one handle's state
 * (this file), options (options.ts), alloc (alloc.ts), lazy free and resize (lazy-free.ts),
 * find (locate.ts), handles (handles.ts), the small-area cache's port (block-source.ts) and the
 * heap's (extension.ts). It may import small/, purge/, tree/, buffer/, util/ and api/. Every
 * operation checks everything that can fail before its first shared write.
 *
 * Setting a space up: the header of a new buffer, the checks on a buffer handed to attach(),
 * and SpaceState, what one handle of a space holds (its views, its locks, its tag cache, its
 * purger, and the space's fixed geometry), which the space's files (alloc.ts, lazy-free.ts,
 * locate.ts) all take as their first argument.
 */
import type { FlushHook, VmapHandle } from "../api/types.ts";
import { hex, shown, VmapError } from "../api/errors.ts";
import { mergeOrAddVmapArea } from "../tree/free-space.ts";
import {
	bytesForCapacity,
	HDR_CAPACITY,
	HDR_EXT_OFFSET,
	HDR_EXT_WORDS,
	HDR_MAGIC,
	HDR_HASH_BUDGET,
	HDR_MAX_CAPACITY,
	HDR_NO_PRIORITY,
	HDR_NODES,
	HDR_RECORDS_OFFSET,
	HDR_SLOT_HIGH,
	HDR_TAG_NR,
	HDR_VERSION,
	HDR_WORDS,
	HDRF_END,
	HDRF_LAZY_MAX_PAGES,
	HDRF_PAGE_SIZE,
	HDRF_START,
	HDRF_TIMEOUT_MS,
	HDRF_SMALL_MAX,
	HDRF_BLOCK_BYTES,
	HDRF_ZONE_SIZE,
	HEADER_BYTES,
	INITIAL_CAPACITY,
	MAGIC,
	VA_OWNER_SHIFT,
	VERSION,
} from "../buffer/layout.ts";
import { extOffset, hashBudget, nodeBase, recordsOffset } from "../buffer/node-layout.ts";
import { claimHandle } from "./handles.ts";
import { Locks } from "../buffer/lock.ts";
import { addrToNode, ZONE_PAGES } from "../tree/nodes.ts";
import type { SpaceParams } from "./options.ts";
import { Purger } from "../purge/purge.ts";
import { resetFlushRange } from "../tree/lazy-tree.ts";
import { hashFirstTable } from "../tree/busy-hash.ts";
import { setVaRange } from "../buffer/record.ts";
import { blockBytesFor } from "../small/descriptor.ts";
import { keptWord } from "../buffer/gauges.ts";
import { giveBackKept } from "./kept-record.ts";
import type { SmallCache } from "../small/cache.ts";
import { TagTable } from "../buffer/tags.ts";
import { isShared, type SpaceBuffer, VaTable } from "../buffer/va-table.ts";

/** One handle's state. Every field is fixed for the handle's life. */
export class SpaceState {
	readonly table: VaTable;
	/** This handle's id: the kernel's "CPU" (1 for the handle that created the space). */
	readonly id: number;
	/** The id in a busy record's flags (VA_OWNER_SHIFT): the areas this handle allocates carry it. */
	readonly ownerFlags: number;
	readonly locks: Locks;
	readonly tags: TagTable;
	readonly purger: Purger;
	readonly start: number;
	readonly end: number;
	readonly pageSize: number;
	readonly nodes: number;
	/** This handle's node: its pool serves this handle's allocations (id - 1 modulo nodes). */
	readonly node: number;
	/** Bytes of a zone: the addresses dealt to the nodes in turn (one node: a page). */
	readonly zoneSize: number;
	/** 1 / pageSize and 1 / zoneSize, exact: multiplying by them divides without rounding. */
	readonly pageInverse: number;
	readonly zoneInverse: number;
	/** What the layer above (the heap) adds: its lock words, and what it does when a handle ends. */
	moreLockWords: () => number[] = () => [];
	/** Run when a handle ends (after its locks are recovered); `reclaim`: its areas are to be freed (WatchOptions.freeAreas). */
	readonly endHooks: Array<(id: number, reclaim: boolean) => void> = [];
	/** What the layer above does to an ended handle's area before freeAreas frees it (the heap poisons it), if anything. */
	releaseArea: ((addr: number, size: number) => void) | undefined = undefined;
	/** This handle's small-area cache; undefined when the space has none (smallMax 0). Set once, by openSmallCache(), right after construction. */
	small: SmallCache | undefined = undefined;

	constructor(buffer: SpaceBuffer, flush: FlushHook | undefined, timeoutMs: number | undefined) {
		this.table = new VaTable(buffer);
		const hdrF = this.table.hdrF;
		this.start = hdrF[HDRF_START]!;
		this.end = hdrF[HDRF_END]!;
		this.pageSize = hdrF[HDRF_PAGE_SIZE]!;
		this.pageInverse = 1 / this.pageSize;
		this.nodes = this.table.nodes;
		this.zoneSize = hdrF[HDRF_ZONE_SIZE]!;
		this.zoneInverse = 1 / this.zoneSize;
		this.id = claimHandle(this.table);
		this.table.keptWord = keptWord(this.id);
		this.node = (this.id - 1) % this.nodes;
		this.ownerFlags = this.id << VA_OWNER_SHIFT;
		this.locks = new Locks(this.table, this.id);
		this.locks.timeoutMs = timeoutMs ?? hdrF[HDRF_TIMEOUT_MS]!;
		this.tags = new TagTable(this.table, this.locks);
		this.purger = new Purger(this.table, this.locks, flush, this.pageSize);
		this.endHooks.push((id) => giveBackKept(this.table, this.locks, id));
	}

	/** The node whose busy tree holds an area starting at `addr` (kernel addr_to_node_id). */
	addrNode(addr: number): number {
		return addrToNode(addr, this.zoneInverse, this.nodes);
	}

	/** Base word of that node's block. */
	busyNodeBase(addr: number): number {
		return nodeBase(addrToNode(addr, this.zoneInverse, this.nodes));
	}
}

/**
 * A new buffer for a space of `params` with `extWords` zeroed words of extension (the layer
 * above's shared state), its header written, and no area: openSpace() adds the free block.
 */
export function createSpaceBuffer(params: SpaceParams, extWords: number): SpaceBuffer {
	const { start, size, pageSize, shared, maxAreas, lazyMaxPages, priorityPurge, nodes } = params;
	const maxCapacity = maxAreas + hashBudget(maxAreas, nodes) + 1; // record 0 is nil
	const capacity = Math.min(INITIAL_CAPACITY, maxCapacity);
	const recordsAt = recordsOffset(nodes, extWords);
	const bytes = bytesForCapacity(recordsAt, capacity);
	const buffer = shared
		? new SharedArrayBuffer(bytes, { maxByteLength: bytesForCapacity(recordsAt, maxCapacity) })
		: new ArrayBuffer(bytes);

	const hdr = new Int32Array(buffer, 0, recordsAt / 4);
	const hdrF = new Float64Array(buffer, 0, recordsAt / 8);
	hdr[HDR_MAGIC] = MAGIC;
	hdr[HDR_VERSION] = VERSION;
	hdr[HDR_CAPACITY] = capacity;
	hdr[HDR_MAX_CAPACITY] = maxCapacity;
	hdr[HDR_HASH_BUDGET] = hashBudget(maxAreas, nodes);
	hdr[HDR_SLOT_HIGH] = 1;
	hdr[HDR_TAG_NR] = 1;
	hdrF[HDRF_START] = start;
	hdrF[HDRF_END] = start + size;
	hdrF[HDRF_PAGE_SIZE] = pageSize;
	hdrF[HDRF_LAZY_MAX_PAGES] = lazyMaxPages;
	hdr[HDR_NO_PRIORITY] = priorityPurge ? 0 : 1;
	hdr[HDR_NODES] = nodes;
	hdr[HDR_RECORDS_OFFSET] = recordsAt;
	hdr[HDR_EXT_OFFSET] = extOffset(nodes) / 4;
	hdr[HDR_EXT_WORDS] = extWords;
	// One node: every address maps to it, whatever the zone size (kernel: zone size 1).
	hdrF[HDRF_ZONE_SIZE] = nodes > 1 ? ZONE_PAGES * pageSize : pageSize;
	hdrF[HDRF_TIMEOUT_MS] = params.timeoutMs;
	hdrF[HDRF_SMALL_MAX] = params.smallMax;
	hdrF[HDRF_BLOCK_BYTES] = params.smallMax > 0 ? blockBytesFor(params.smallMax) : 0;
	return buffer;
}

/** The first handle of a new space: its state, with one free block covering the space. */
export function openSpace(buffer: SpaceBuffer, flush: FlushHook | undefined): SpaceState {
	const s = new SpaceState(buffer, flush, undefined);
	const t = s.table;
	for (let v = 0; v < s.nodes; v++) {
		resetFlushRange(t, v);
		hashFirstTable(t, nodeBase(v));
	}
	t.reserve(1);
	const va = t.allocSlot();
	setVaRange(t.f64, va, s.start, s.end);
	mergeOrAddVmapArea(t, va);
	return s;
}

/** The buffer of a handle posted for attach(); EINVAL unless it holds a space of this version. */
export function attachableBuffer(handle: VmapHandle): SharedArrayBuffer {
	const wrong = wrongHandle(handle, "space");
	if (wrong !== undefined) throw new VmapError("EINVAL", `Cannot attach: the handle is ${wrong}`);
	const buffer = (handle as { buffer?: unknown } | null)?.buffer;
	if (!isShared(buffer) || buffer.byteLength < HEADER_BYTES) {
		throw new VmapError(
			"EINVAL",
			`Cannot attach: the handle must be a space's \`handle\` ({ buffer: SharedArrayBuffer }), got ${shown(handle)}`,
		);
	}
	const hdr = new Int32Array(buffer, 0, HDR_WORDS);
	if (hdr[HDR_MAGIC] !== MAGIC || hdr[HDR_VERSION] !== VERSION) {
		throw new VmapError(
			"EINVAL",
			`Cannot attach: the buffer holds no vmap space of version ${VERSION} (magic ${hex(hdr[HDR_MAGIC]!)}, version ${hdr[HDR_VERSION]})`,
		);
	}
	return buffer;
}

/**
 * What a handle given to `want`'s attach() really is, when it is a usual mistake, and what to
 * post instead; undefined otherwise. An object posted to a worker arrives as a plain copy of
 * its public fields (structured clone), so a posted VmapSpace or VmapHeap is recognised by them.
 */
export function wrongHandle(handle: unknown, want: "space" | "heap"): string | undefined {
	if (typeof handle !== "object" || handle === null) return undefined;
	const h = handle as Record<string, unknown>;
	const copied = "a plain copy, as every object posted to a worker arrives";
	if (!("buffer" in h) && "space" in h && "data" in h)
		return `a VmapHeap object (${copied}): post \`heap.handle\`, and call VmapHeap.attach(handle) in the worker`;
	if (!("buffer" in h) && "nodes" in h && "id" in h)
		return `a VmapSpace object (${copied}): post \`space.handle\`, and call VmapSpace.attach(handle) in the worker`;
	if (want === "space" && isShared(h.buffer) && h.data instanceof SharedArrayBuffer)
		return "a heap's handle: attach it with VmapHeap.attach(handle) (the heap's space is then heap.space)";
	if (want === "heap" && isShared(h.buffer) && !("data" in h))
		return "a space's handle, which has no data: a heap's `heap.handle` is { buffer, data }";
	return undefined;
}
