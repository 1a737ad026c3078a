/**
 * The space layer: VmapSpace, the public face of a space. Each call checks its arguments and
 * hands over to the layer that does the work: core/ (a handle's state, alloc, lazy free and
 * resize, find), purge/ (purges and when they run), diag/ (the validator, the listings, the
 * lock-free counters). It may import every layer below it, and nothing above (heap/, viz/, cli/).
 */
import { allocSmall, allocVmapArea, allocVmapAreaAsync } from "../core/alloc.ts";
import { withTimeout } from "../core/deadline.ts";
import type {
	AllocOptions,
	AreaInfo,
	AttachOptions,
	ExitedOptions,
	LockWait,
	PurgeOptions,
	PurgeResult,
	StatsOptions,
	TrimResult,
	VmapDump,
	VmapHandle,
	VmapSpaceOptions,
	VmapStats,
	WatchedWorker,
	WatchOptions,
} from "../api/types.ts";
import { checkSpace } from "../diag/check.ts";
import { shown, VmapError } from "../api/errors.ts";
import { SpaceExtension } from "../core/extension.ts";
import { dumpText, listAreas, runChunks, runChunksAsync, vmallocinfoText } from "../diag/info.ts";
import { handleToken, releaseHandle } from "../core/handles.ts";
import { endByToken, watchWorker } from "./end.ts";
import { HDR_DEAD } from "../buffer/layout.ts";
import type { Locks } from "../buffer/lock.ts";
import { findArea } from "../core/locate.ts";
import { snapshot } from "../diag/snapshot.ts";
import { freeVmapArea, resizeVmapArea } from "../core/lazy-free.ts";
import { NOT_SMALL } from "../small/cache.ts";
import { openSmallCache } from "../core/block-source.ts";
import { giveBackKept } from "../core/kept-record.ts";
import { purgeKind, validateOptions, validateTimeout, parseSpaceOptions, type SpaceParams } from "../core/options.ts";
import { listenForWork } from "../purge/work.ts";
import { readStats, validateStatsInto } from "../diag/stats.ts";
import { attachableBuffer, createSpaceBuffer, openSpace, SpaceState } from "../core/state.ts";
import { isShared, type VaTable } from "../buffer/va-table.ts";

const NOTHING_REFUSED: readonly number[] = [];

/** The keys each options object may have (module constants: a call allocates no array). */
const ATTACH_KEYS = ["flush", "timeoutMs"];
const STATS_KEYS = ["pools", "into"];

/**
 * A range allocator over [start, start + size), with all of its state in one buffer.
 *
 * Freeing is lazy, as in the kernel: a freed area becomes reusable only after a purge has
 * called the flush hook over it: purges run by themselves once `lazyMaxPages` is passed, when
 * an allocation finds no room, and on purge().
 *
 * Busy areas are split over nodes by address, and each node keeps pools of recently purged
 * areas of 1..256 pages that allocations of those sizes take first.
 *
 * Small requests (at most smallMax bytes, `align` at most pageSize, no window narrower than
 * the space; tagged or not) come from the handle's own blocks: no lock, no atomic.
 *
 * Complexity: alloc of a small area O(1) (a scan of a block's bitmap, 32 slots a word, and a
 * new block now and then), from a pool O(1), else O(log n) (a larger alignment may scan, see
 * findVmapLowestMatch); free of a small area O(1) (one probe of the block index), else
 * O(log n); find O(nodes log n); purge O(k log n) for k lazy areas; check O(n); n is the
 * number of areas and free blocks.
 */
export class VmapSpace {
	/** First address of the space. */
	readonly start: number;
	/** One past the last address of the space. */
	readonly end: number;
	readonly pageSize: number;
	/** Number of nodes (kernel nr_vmap_nodes). */
	readonly nodes: number;
	/** This handle's node: its pool serves this handle's allocations (id - 1 modulo nodes). */
	readonly node: number;
	/**
	 * This handle's id: the kernel's "CPU" (1 for the handle that created the space), shown
	 * as the owner of the areas it allocates. Reused once the handle has ended: `token` is not.
	 */
	readonly id: number;
	/**
	 * This handle's token, "id.generation": it names this handle and never a later one that
	 * reuses the id. Post it to the thread that may have to call exited() for it.
	 */
	readonly token: string;
	readonly #s: SpaceState;

	private constructor(s: SpaceState) {
		this.#s = s;
		this.start = s.start;
		this.end = s.end;
		this.pageSize = s.pageSize;
		this.nodes = s.nodes;
		this.node = s.node;
		this.id = s.id;
		this.token = handleToken(s.table, s.id);
	}

	/** Create a space: one free block covering [start, start + size). */
	static create(options: VmapSpaceOptions): VmapSpace {
		return VmapSpace.createWith(parseSpaceOptions(options, "a space"), 0);
	}

	/** @internal A space whose buffer holds `extWords` zeroed words of extension for the layer above (the heap). */
	static createWith(params: SpaceParams, extWords: number): VmapSpace {
		const s = openSpace(createSpaceBuffer(params, extWords), params.flush);
		openSmallCache(s, params.flush);
		return new VmapSpace(s);
	}

	/**
	 * Attach to a space created elsewhere (another worker posted its `handle`). Each attached
	 * handle gets its own id; `flush` is this handle's own hook for the purges it runs.
	 */
	static attach(handle: VmapHandle, options?: AttachOptions): VmapSpace {
		const buffer = attachableBuffer(handle);
		validateOptions(options, ATTACH_KEYS, "Cannot attach");
		const flush = options?.flush;
		if (flush !== undefined && typeof flush !== "function") {
			throw new VmapError(
				"EINVAL",
				`Cannot attach: flush must be a function (start, end) => void | Promise<void>, got ${shown(flush)}`,
			);
		}
		const timeoutMs = options?.timeoutMs;
		if (timeoutMs !== undefined) validateTimeout(timeoutMs, "Cannot attach");
		const s = new SpaceState(buffer, flush, timeoutMs);
		openSmallCache(s, flush);
		s.locks.ensureAlive();
		// An attached handle is another worker: while idle, it helps purges (parallel purge).
		if (s.nodes > 1)
			listenForWork(
				s.table,
				() => s.purger.help(),
				() => s.locks.closed || s.table.hdr[HDR_DEAD] !== 0,
			);
		return new VmapSpace(s);
	}

	/** What another worker needs to attach: post it (structured clone), then VmapSpace.attach(). */
	get handle(): VmapHandle {
		const buffer = this.#s.table.buffer;
		if (!isShared(buffer)) {
			throw new VmapError("EINVAL", "Cannot share a space created with shared: false: its buffer is a plain ArrayBuffer");
		}
		return { buffer };
	}

	/**
	 * Done with this handle: a drain of its own in progress finishes now, batches waiting for
	 * its asynchronous flush go to the next purge (which flushes them again), purges it queued
	 * are cancelled, any later call on it throws EINVAL, and its id returns to the handle table.
	 * Lazy areas it freed stay for other handles' purges. Idempotent; `using` calls it.
	 */
	close(): void {
		const s = this.#s;
		if (s.locks.closed) return;
		try {
			s.small?.handOver();
			s.purger.handOver();
			giveBackKept(s.table, s.locks, s.id);
		} finally {
			s.locks.closed = true;
			s.locks.closeJournal();
			releaseHandle(s.table, s.id);
		}
	}

	/** close(), for `using` (explicit resource management). */
	[Symbol.dispose](): void {
		this.close();
	}

	/** Bytes in the space. */
	get size(): number {
		return this.end - this.start;
	}

	/**
	 * Allocate `size` bytes (a whole number of pages). A request of at most smallMax bytes with
	 * `align` at most pageSize and no window narrower than the space comes from this handle's
	 * small-area blocks, tagged or not (rounded up to a size class; find() gives the area's
	 * size); any other at the lowest address that fits, at a multiple of `align`, inside
	 * [vstart, vend). Returns the address.
	 * When nothing fits, purges the lazy areas and tries once more (kernel "overflow").
	 * Throws EINVAL for bad arguments and EBUSY when nothing fits; either way nothing changes.
	 */
	alloc(size: number, options?: AllocOptions): number {
		if (options === undefined) {
			// The small-area cache first: no lock, no atomic (small/carve.ts).
			const small = this.#s.small;
			if (small !== undefined) {
				const addr = small.alloc(size);
				if (addr !== NOT_SMALL) return addr;
			}
			return allocVmapArea(this.#s, size, undefined, "purge");
		}
		const addr = allocSmall(this.#s, size, options);
		if (addr !== NOT_SMALL) return addr;
		if (options?.timeoutMs !== undefined)
			return withTimeout(this.#s.locks, options.timeoutMs, "alloc", () => allocVmapArea(this.#s, size, options, "purge"));
		return allocVmapArea(this.#s, size, options, "purge");
	}

	/**
	 * alloc() that, when nothing fits even after its purge, waits for the purge's flush (an
	 * asynchronous flush hook), purges again and retries once before it rejects with EBUSY.
	 * With `timeoutMs`, the whole call (its lock waits and the wait for the flush) ends by then:
	 * ETIMEDOUT, nothing allocated. Small requests come from the small-area blocks, as alloc()'s.
	 */
	async allocAsync(size: number, options?: AllocOptions): Promise<number> {
		const addr = allocSmall(this.#s, size, options);
		return addr !== NOT_SMALL ? addr : allocVmapAreaAsync(this.#s, size, options);
	}

	/**
	 * Free the area that starts at `addr`, lazily: it stays unusable until a purge has flushed
	 * it. Throws EINVAL for a bad address, ENOENT when no area starts there and EDOUBLEFREE
	 * when the area is freed already (with one node, areas freed one after another merge into
	 * one lazy range, and any address inside that is EDOUBLEFREE); nothing changes then.
	 */
	free(addr: number): void {
		const small = this.#s.small;
		if (small !== undefined && small.free(addr) !== NOT_SMALL) return;
		freeVmapArea(this.#s, addr, "free", NOTHING_REFUSED);
	}

	/**
	 * Change the size of the busy area that starts at `addr`, in place (vrealloc). Shrinking
	 * always succeeds: the tail is freed lazily, as free() would free it, so it is not handed
	 * out before a purge has flushed it. Growing succeeds when [end, addr + size) is the head of
	 * one free block (not busy, lazy or pooled); otherwise nothing changes and it returns false.
	 * The area keeps its tag and node. Errors as free(), and EINVAL for a bad size.
	 */
	resize(addr: number, size: number): boolean {
		return resizeVmapArea(this.#s, addr, size);
	}

	/**
	 * Purge the lazy areas: one flush over the range covering them, then back to free space.
	 * Try semantics unless `sync` (see PurgeOptions). Throws what a synchronous flush hook
	 * throws (the areas stay lazy).
	 */
	purge(options?: PurgeOptions): PurgeResult {
		this.#s.locks.ensureAlive();
		const kind = purgeKind(options);
		this.#s.small?.flush(); // this handle's freed small areas: its own flush
		if (options?.timeoutMs !== undefined)
			return withTimeout(this.#s.locks, options.timeoutMs, "purge", () => this.#s.purger.purge(kind));
		return this.#s.purger.purge(kind);
	}

	/**
	 * Give memory back (the kernel's shrinker, for memory pressure): every pooled area to free
	 * space, a full decay of every pool under the purge mutex; and every small-area block with
	 * nothing live, this handle's (its spares too) and nobody's, retired (purge_fragmented_blocks).
	 * Returns the pooled areas and bytes released and the blocks retired.
	 */
	trim(): TrimResult {
		this.#s.locks.ensureAlive();
		const blocks = this.#s.small?.trim() ?? 0; // retired blocks' areas are lazy: the next purge frees them
		return { ...this.#s.purger.trim(), blocks };
	}

	/**
	 * Counters, read without taking allocator locks (see VmapStats for what agrees with what).
	 * `{ pools: true }` adds each node's 256 pool lengths; `{ into }` refills an earlier result.
	 */
	stats(options?: StatsOptions): VmapStats {
		this.#s.locks.ensureOpen();
		validateOptions(options, STATS_KEYS, "Cannot read stats");
		const pools = options?.pools ?? false;
		if (typeof pools !== "boolean")
			throw new VmapError("EINVAL", `Cannot read stats: pools must be true or false, got ${shown(pools)}`);
		const into = options?.into;
		if (into !== undefined) validateStatsInto(into, this.nodes);
		return readStats(this.#s.table, pools, into);
	}

	/**
	 * The busy and lazy areas in the style of /proc/vmallocinfo. Like dump(), it reads the
	 * trees in chunks of at most 256 areas, each without a lock when no writer came meanwhile,
	 * else under that tree's locks: other handles wait at most one chunk. While they work,
	 * each chunk is consistent, not the whole (an area that changes state meanwhile may show
	 * in both states or in neither).
	 */
	vmallocinfo(): string {
		const s = this.#s;
		s.locks.ensureAlive();
		return vmallocinfoText(runChunks(listAreas(s, { free: false })), (id) => s.tags.name(id));
	}

	/** vmallocinfo(), giving the event loop a turn every few milliseconds of work. */
	async vmallocinfoAsync(): Promise<string> {
		const s = this.#s;
		s.locks.ensureAlive();
		return vmallocinfoText(await runChunksAsync(listAreas(s, { free: false })), (id) => s.tags.name(id));
	}

	/**
	 * A snapshot: the space, its statistics, every area, every free block and every small-area
	 * block (see vmallocinfo() for how it is read), as plain data: JSON.stringify() it to keep it.
	 */
	dump(): VmapDump {
		this.#s.locks.ensureOpen();
		const s = this.#s;
		const stats = this.stats();
		return JSON.parse(dumpText(s, runChunks(listAreas(s, { free: true })), stats, (id) => s.tags.name(id))) as VmapDump;
	}

	/** dump(), giving the event loop a turn every few milliseconds of work. */
	async dumpAsync(): Promise<VmapDump> {
		this.#s.locks.ensureOpen();
		const s = this.#s;
		const stats = this.stats();
		return JSON.parse(dumpText(s, await runChunksAsync(listAreas(s, { free: true })), stats, (id) => s.tags.name(id))) as VmapDump;
	}

	/**
	 * The area holding `addr` (busy, or lazy: freed and not yet purged; with one node, lazy
	 * areas that touch are one range), or undefined.
	 */
	find(addr: number): AreaInfo | undefined {
		return findArea(this.#s, addr);
	}

	/** Validate every structure in O(n); throws VmapError ECORRUPT naming the broken invariant. */
	check(): void {
		const s = this.#s;
		checkSpace(snapshot(s), s.start, s.end, s.id);
	}

	/**
	 * Follow `worker` (Node's worker_threads Worker), which holds handles of this space: when it
	 * exits (after terminate() or a crash), each of its handles ends as if closed: what it was
	 * changing under a lock is undone from its journal and its locks released (EOWNERDEAD only
	 * if that journal had overflowed), and waits for it end. Call it where the Worker was
	 * created; without it, a worker that exits without close() looks alive forever. With
	 * `freeAreas`, the areas its handles still held are freed too. The exit listener never
	 * throws: what goes wrong is told to `options.onError` (by default a warning).
	 */
	watch(worker: WatchedWorker, options?: WatchOptions): void {
		this.#s.locks.ensureOpen();
		watchWorker(this.#s, worker, options);
	}

	/**
	 * The handle whose `token` this is has a worker that is known to have exited without closing
	 * it (a browser page that terminated a Web Worker, which had posted `space.token`): end it,
	 * as watch() would, undoing what it was changing under a lock. Call it only once that
	 * worker runs no more: terminate() returns at once, but Chromium lets the worker's current
	 * task run on for up to 2 s (whatwg/html#6210), so 2.5 s after it. Nothing happens when that
	 * handle has ended or closed already (its id may serve a newer handle by then: the token
	 * does not name it). What goes wrong after the handle's locks are recovered goes to
	 * `options.onError`, as for watch().
	 */
	exited(token: string, options?: ExitedOptions): void {
		this.#s.locks.ensureOpen();
		endByToken(this.#s, token, options);
	}

	/** Milliseconds this handle has spent waiting for locks other handles held. */
	get lockWaitMs(): number {
		return this.#s.locks.waitMs;
	}

	/**
	 * Where lockWaitMs went: milliseconds per lock this handle has waited for, the longest
	 * first (an acquire that found its lock free counts nothing). For workers that contend,
	 * e.g. on the busy locks of nodes whose address zones their areas share.
	 */
	lockWaits(): LockWait[] {
		return this.#s.locks.waitsByLock();
	}

	/** @internal The record table (tests and tools inspect the buffer through it). */
	get table(): VaTable {
		return this.#s.table;
	}

	/** @internal This handle's state (tests step the listings' generators with it). */
	get state(): SpaceState {
		return this.#s;
	}

	/** @internal This handle's locks. */
	get locks(): Locks {
		return this.#s.locks;
	}

	/** @internal What a layer built on this space (the heap) uses beyond the public calls. */
	extension(): SpaceExtension {
		return new SpaceExtension(this.#s);
	}
}
