/**
 * The api layer (src/api/): the public types and options (types.ts, heap-types.ts) and the
 * error class with its wording helpers (errors.ts). It is the bottom layer: it imports nothing
 * of the project, and every other layer may import it. Nothing here touches a buffer.
 */

export interface VmapSpaceOptions {
	/** First address of the managed range; a multiple of pageSize. @defaultValue pageSize */
	start?: number;
	/** Bytes in the managed range [start, start + size); a multiple of pageSize, start + size <= 2^53. */
	size: number;
	/** Power of two; every size and address handed out is a multiple of it. @defaultValue 4096 */
	pageSize?: number;
	/**
	 * Put the space in a growable SharedArrayBuffer, so that workers can share it (true), or in
	 * a plain ArrayBuffer for one thread (false), which growth replaces with a larger copy
	 * (views over a resizable ArrayBuffer are slower on Node 20). @defaultValue true
	 */
	shared?: boolean;
	/**
	 * Areas (busy plus free blocks) the record table has room for; the buffer reserves room
	 * for this many (40 bytes each), and an eighth more for the busy hash's tables (which
	 * areas may use while the hash does not), and grows into it as needed. @defaultValue 2^22
	 */
	maxAreas?: number;
	/**
	 * Lazily freed pages that make a drain due (kernel lazy_max_pages()). At twice this the
	 * free path purges by itself, so a loop that never yields cannot grow the backlog without
	 * bound ("mm: add priority threshold to __purge_vmap_area_lazy()"). @defaultValue min(fls(nodes) * 32 MiB, size / 8) / pageSize
	 */
	lazyMaxPages?: number;
	/**
	 * Makes [start, end) safe to hand out again: called once per purge with the range covering
	 * every area the purge returns (the kernel's single TLB flush). It may return a promise:
	 * the purged areas then stay unusable until it resolves. If it throws or rejects, the areas
	 * stay lazy and a later purge flushes them. @defaultValue nothing (only counted)
	 */
	flush?: FlushHook;
	/**
	 * For experiments (the case of "mm: add priority threshold to __purge_vmap_area_lazy()"): false turns off the priority purge, so the free path never
	 * purges and only drains, overflow purges and purge() return lazy areas; a loop that never
	 * yields then lets the backlog grow until the space runs out. @defaultValue true
	 */
	priorityPurge?: boolean;
	/**
	 * Nodes (kernel vmap_nodes): busy areas are split over them by address, in zones of 16
	 * pages, and each keeps pools of purged areas of 1, 2, 3, ... pages (up to 1 MiB, at most
	 * 4096 pools) for instant reuse. A handle
	 * allocates from the pool of node (id - 1) % nodes. With one node there are no pools and
	 * allocation always takes the lowest fit. From 1 to 128.
	 * @defaultValue clamp(navigator.hardwareConcurrency, 1, 128); 1 where that is missing (Node 20)
	 */
	nodes?: number;
	/**
	 * How long a call may wait for a lock another handle holds, or for a batch another purge
	 * is flushing, in milliseconds, before it fails with ETIMEDOUT having changed nothing. A
	 * holder is never taken for dead because it is slow: waits last as long as it lives unless
	 * this is finite. Handles whose workers exit unwatched look alive forever; see watch().
	 * Per call: alloc's and purge's `timeoutMs`. @defaultValue Infinity
	 */
	timeoutMs?: number;
	/**
	 * Requests up to this many bytes (a multiple of pageSize) come from the handle's own
	 * small-area blocks (the kernel's vmap_block): no lock and no atomic on the handle's own
	 * alloc and free, one atomic for a free from another handle. A block is one busy area of
	 * the power of two >= 16 * smallMax bytes (tagged "vmap_block"); sizes round up to a size
	 * class (every page up to 8 pages, then 4 classes per doubling: at most 25% more, and at
	 * least blockBytes / 2048). The rule: a request of at most smallMax bytes with `align` at
	 * most pageSize and no window narrower than the space comes from the blocks, tagged or not
	 * (a handle keeps blocks per tag and size class). 0 turns it off.
	 * @defaultValue max(4096, 16 * pageSize) bytes when the space holds 64 such blocks, else 0
	 */
	smallMax?: number;
}

export interface StatsOptions {
	/** Add each node's pool lengths (`NodeStats.poolLengths`). @defaultValue false */
	pools?: boolean;
	/**
	 * A previous result of this space's stats() to refill in place and return, so that a
	 * monitoring loop creates no objects.
	 */
	into?: VmapStats;
}

/** What trim() gave back to free space. */
export interface TrimResult {
	/** Pooled areas given back to free space, and their bytes. */
	areas: number;
	bytes: number;
	/**
	 * Small-area blocks retired: their areas are free space at once when no slot waits for a flush
	 * (this handle's blocks), else freed lazily (the next purge makes them free space).
	 */
	blocks: number;
}

/** One node's figures (each group read consistently, like VmapStats). */
export interface NodeStats {
	/** Busy areas whose start lies in this node's zones, and their bytes. */
	busyAreas: number;
	busyBytes: number;
	/** Areas in this node's lazy tree and purge trees (with one node, areas that touched as they were freed count as one). */
	lazyAreas: number;
	/** Areas in this node's pools, and their bytes. */
	poolAreas: number;
	poolBytes: number;
	/** Pool-path allocations of this node's handles served by its pool, and not. */
	poolHits: number;
	poolMisses: number;
	/** Areas purges returned from this node (into its pools or free space). */
	purgedAreas: number;
	/** Areas decays moved from this node's pools to free space. */
	decayedAreas: number;
	/** Purges of this node's list done by a helper (another handle). */
	helperRuns: number;
	/** With `stats({ pools: true })`: poolLengths[k] areas of k + 1 pages. */
	poolLengths?: number[];
}

export type FlushHook = (start: number, end: number) => void | PromiseLike<void>;

/** A space's handle: structured-cloneable; post it to a worker and VmapSpace.attach() it there. */
export interface VmapHandle {
	buffer: SharedArrayBuffer;
}

export interface AttachOptions {
	/** This handle's flush hook (see VmapSpaceOptions.flush). */
	flush?: FlushHook;
	/** This handle's timeoutMs (see VmapSpaceOptions.timeoutMs). @defaultValue the space's */
	timeoutMs?: number;
}

/** A worker that watch() can follow: Node's worker_threads Worker. */
/** watch()'s options. */
export interface WatchOptions {
	/**
	 * Told what went wrong while the worker's handles were ended after it exited (a lock wait
	 * that timed out, a space left unusable): the exit listener itself never throws. By default
	 * a process warning (Node) or console.warn elsewhere.
	 */
	onError?: (error: unknown) => void;
	/**
	 * Free every area the ended handle allocated and still holds (for a worker pool that
	 * terminates workers mid-task): its busy areas, its small areas, and in a heap its
	 * vm_map_ram mappings, as free(), vfree() and vmUnmapRam() would free them. Areas queued
	 * by freeDeferred are left to their grace period. Only for workers whose areas die with
	 * them: an area the worker handed to another thread is freed too. @defaultValue false
	 */
	freeAreas?: boolean;
}

/** exited()'s options. */
export interface ExitedOptions {
	/** As WatchOptions.freeAreas. @defaultValue false */
	freeAreas?: boolean;
	/** As WatchOptions.onError. */
	onError?: (error: unknown) => void;
}

export interface WatchedWorker {
	readonly threadId: number;
	once(event: "exit", listener: (code: number) => void): unknown;
}

export interface PurgeOptions {
	/**
	 * false (try): if another purge holds the purge mutex, return at once with status
	 * "skipped". true: wait for it, then purge. @defaultValue false
	 */
	sync?: boolean;
	/** This call's timeoutMs (see VmapSpaceOptions.timeoutMs). */
	timeoutMs?: number;
}

export interface PurgeResult {
	/**
	 * - "done": the batch was flushed and merged back into free space;
	 * - "flushing": the flush hook returned a promise; `done` resolves once the batch is free;
	 * - "queued": (sync) a purge of this handle is waiting for its flush; this purge runs after
	 *   it, and `done` resolves when it has;
	 * - "skipped": (try) another purge is running;
	 * - "empty": nothing was lazy.
	 */
	status: "done" | "flushing" | "queued" | "skipped" | "empty";
	/**
	 * Areas and bytes in the batch, and the range flushed ([0, 0) when none). With one node,
	 * areas that touched as they were freed are one lazy area (VmapSpace.free).
	 */
	areas: number;
	bytes: number;
	start: number;
	end: number;
	/** Resolves when the batch is reusable; rejects with the flush hook's error. */
	done: Promise<void>;
}

/** Time one handle spent waiting for one lock another handle held (VmapSpace.lockWaits()). */
export interface LockWait {
	/** The lock, as errors name it: "the free-space lock", "node 1's busy lock", "the purge mutex". */
	lock: string;
	/** Milliseconds waited for it, over the handle's life. */
	ms: number;
}

/**
 * Counters read without taking allocator locks. Figures of one group (free space; busy and
 * lazy areas with allocs and frees; purges) always agree with each other; between groups a
 * read may catch an operation in flight (see stats.ts). `consistent` is false only when a
 * writer kept a group changing for the whole of a long retry loop.
 */
export interface VmapStats {
	size: number;
	pageSize: number;
	busyBytes: number;
	busyAreas: number;
	lazyBytes: number;
	lazyAreas: number;
	freeBytes: number;
	freeBlocks: number;
	largestFreeBlock: number;
	/**
	 * Bytes from the space's start to the end of its highest area that is not free space
	 * (busy, lazy or pooled): the address span in use. Fragmentation is this over busyBytes.
	 */
	spanBytes: number;
	/** Lazily freed pages not yet merged back (the kernel's vmap_lazy_nr). */
	vmapLazyNr: number;
	lazyMaxPages: number;
	allocs: number;
	frees: number;
	failedAllocs: number;
	purges: number;
	flushes: number;
	flushedBytes: number;
	purgedAreas: number;
	/**
	 * Purges (each also counted in `purges`) by who ran them: an allocation that found no fit;
	 * the free path at twice lazyMaxPages (priority); the drain the free path schedules past
	 * lazyMaxPages. The rest were purge() calls and helpers' adoptions.
	 */
	overflowPurges: number;
	priorityPurges: number;
	drainPurges: number;
	flushErrors: number;
	/** Bytes and areas in every node's pools (reusable at once, not part of freeBytes). */
	poolBytes: number;
	poolAreas: number;
	poolHits: number;
	poolMisses: number;
	/** Node purge trees purged by helpers; trim() calls. */
	helped: number;
	trims: number;
	/**
	 * The small-area cache (smallMax, 0 when off): its blocks (each also one of busyAreas, of
	 * the block size), the small areas handed out and their bytes (class sizes), the ones freed
	 * and waiting for a flush, and the caches' flushes. Read from every block without a lock:
	 * exact when no handle is allocating, a moment's estimate while they are.
	 */
	smallMax: number;
	smallBlocks: number;
	smallAreas: number;
	smallBytes: number;
	smallLazyAreas: number;
	smallLazyBytes: number;
	smallFlushes: number;
	nodes: NodeStats[];
	consistent: boolean;
}

export interface AllocOptions {
	/** Power of two; the address returned is a multiple of max(align, pageSize). @defaultValue pageSize */
	align?: number;
	/** Lowest address the area may start at. @defaultValue the space's start */
	vstart?: number;
	/** The area must end at or below this address. @defaultValue the space's end */
	vend?: number;
	/** A label shown by find() and the listings (at most 63 bytes of UTF-8). */
	tag?: string;
	/**
	 * When nothing fits, fail with EBUSY at once instead of purging and retrying (the kernel's
	 * GFP_NOWAIT / GFP_ATOMIC: an allocation that may not sleep). @defaultValue false
	 */
	nowait?: boolean;
	/** This call's timeoutMs (see VmapSpaceOptions.timeoutMs). */
	timeoutMs?: number;
}

export type AreaState = "busy" | "lazy";

/** What find() reports about the area holding an address. */
export interface AreaInfo {
	start: number;
	end: number;
	size: number;
	tag: string | undefined;
	state: AreaState;
	/**
	 * The id of the handle that allocated it (the kernel's vmallocinfo shows the caller). An id
	 * is reused once its handle has ended: see VmapSpace.token and WatchOptions.freeAreas.
	 */
	owner: number;
}

declare global {
	/**
	 * Symbol.dispose (explicit resource management: `using`), which VmapSpace and VmapHeap
	 * implement. Declared here so that consumers typecheck without lib "esnext.disposable" or
	 * @types/node; identical to their declarations, with which it merges.
	 */
	interface SymbolConstructor {
		readonly dispose: unique symbol;
	}
}

/** An area in a dump: busy or lazy (freed, awaiting a purge). */
export interface DumpArea {
	start: number;
	end: number;
	size: number;
	state: AreaState;
	tag?: string;
	/** The id of the handle that allocated it (AreaInfo.owner). */
	owner?: number;
}

/** A free block in a dump. */
export interface DumpFreeBlock {
	start: number;
	end: number;
	size: number;
}

/** A small-area block in a dump: one busy area, owned by handle `owner`, cut in `slots` areas of `areaSize`. */
export interface DumpSmallBlock {
	start: number;
	end: number;
	owner: number;
	areaSize: number;
	slots: number;
	live: number;
	lazy: number;
	free: number;
	/** The tag every small area of the block carries; absent for none. */
	tag?: string;
}

/**
 * What space.dump() returns: plain data (JSON.stringify() keeps it, JSON.parse() gives it back). Addresses in [start, end) that are in no area and no free block
 * are pooled (purged into a node's pool), or moved between listings while others worked.
 */
export interface VmapDump {
	start: number;
	end: number;
	stats: VmapStats;
	areas: DumpArea[];
	free: DumpFreeBlock[];
	blocks: DumpSmallBlock[];
}
