/** The heap's public types. */
import type { VmapStats } from "./types.ts";

/** A heap's handle: post it to a worker and VmapHeap.attach() it there. */
export interface VmapHeapHandle {
	buffer: SharedArrayBuffer;
	data: SharedArrayBuffer;
}

export interface VmallocOptions {
	/** A label shown by find() and vmallocinfo(). @defaultValue "vmalloc" */
	tag?: string;
	/** Power of two; the address is a multiple of max(align, pageSize). */
	align?: number;
	/** Fail with EBUSY at once when nothing fits: no purge, no wait for a grace period (GFP_NOWAIT). */
	nowait?: boolean;
}

/** The space's statistics, and the heap's own. */
export interface HeapStats extends VmapStats {
	/** Data bytes backed now, and the most they may grow to. */
	dataBytes: number;
	maxBytes: number;
	/** vm_map_ram blocks, and their pages mapped, dirty (unmapped, awaiting purge) and never used. */
	blocks: number;
	mappedPages: number;
	dirtyPages: number;
	blockFreePages: number;
	/** Areas freeDeferred queued ever, freed after their grace period, and waiting now. */
	deferred: number;
	deferredFreed: number;
	deferredPending: number;
	/** The grace-period counter. */
	gracePeriod: number;
}

/** A typed-array constructor such as Float64Array, for view(). */
export type TypedArrayConstructor<T> = {
	new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
	readonly BYTES_PER_ELEMENT: number;
};
