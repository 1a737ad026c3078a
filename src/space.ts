import type { AllocOptions, AreaInfo, AttachOptions, FlushHook, PurgeOptions, PurgeResult, StatsOptions, TrimResult, VmapHandle, VmapSpaceOptions, VmapStats } from "./api.ts";
import { findVmapArea, insertVmapArea } from "./busy-tree.ts";
import { rbErase } from "./rbtree.ts";
import { checkSpace } from "./check.ts";
import { corrupt, hex, shown, VmapError } from "./errors.ts";
import { alignUp, findVmapLowestMatch, mergeOrAddVmapArea, vaClip } from "./free-space.ts";
import { listenForWork, workPosted } from "./helpers.ts";
import {
	bytesForCapacity,
	HANDLE_FREE,
	HANDLE_STATE,
	HANDLE_WORDS,
	HDR_CAPACITY,
	HDR_DEAD,
	HDR_FREE_LOCK,
	HDR_FREE_ROOT,
	HDR_MAGIC,
	HDR_MAX_CAPACITY,
	HDR_NO_PRIORITY,
	HDR_NODES,
	HDR_RECORDS_OFFSET,
	HDR_EXT_OFFSET,
	HDR_EXT_WORDS,
	extOffset,
	HDR_SLOT_HIGH,
	HDR_TAG_NR,
	HDR_VERSION,
	HDR_WORDS,
	HDRF_END,
	HDRF_FAILED,
	HDRF_LAZY_MAX_PAGES,
	HDRF_PAGE_SIZE,
	HDRF_START,
	HDRF_ZONE_SIZE,
	HEADER_BYTES,
	INITIAL_CAPACITY,
	MAGIC,
	N_BUSY_LOCK,
	N_BUSY_NR,
	N_BUSY_ROOT,
	N_LAZY_HEAD,
	N_LAZY_LOCK,
	N_LAZY_NR,
	N_POOL_LOCK,
	N_POOL_NR,
	N_PURGE_HEAD,
	NF_ALLOCS,
	NF_BUSY_BYTES,
	NF_FREES,
	NF_LAZY_ADDED,
	NF_LAZY_MAX,
	NF_LAZY_MIN,
	NF_POOL_HITS,
	NF_POOL_MISSES,
	nodeBase,
	POOL_LEN,
	recordsOffset,
	MAX_VA_SIZE_PAGES,
	VA_BUSY,
	VA_LAZY,
	VA_STATE,
	VERSION,
} from "./layout.ts";
import { dumpSpace, vmallocinfo } from "./info.ts";
import { claimHandle, Locks } from "./lock.ts";
import { addrToNode, encodeVn, findListed, poolable, poolTake, poolWord, vnOf, ZONE_PAGES } from "./nodes.ts";
import { flushingNote, Purger } from "./purge.ts";
import { isPowerOfTwo, parseSpaceOptions, type SpaceParams } from "./options.ts";
import { readStats } from "./stats.ts";
import { TagTable } from "./tags.ts";
import { isShared, type SpaceBuffer, VaTable } from "./va-table.ts";
import { setVaEnd, setVaFlags, setVaNext, setVaStart, setVaTag, vaEnd, vaFlags, vaStart, vaTag } from "./record.ts";

/**
 * A range allocator over [start, start + size), with all of its state in one buffer.
 *
 * Freeing is lazy, as in the kernel: a freed area becomes reusable only after a purge has
 * called the flush hook over it (see purge.ts for when purges run).
 *
 * Busy areas are split over nodes by address, and each node keeps pools of recently purged
 * areas of 1..256 pages that allocations of those sizes take first (see nodes.ts).
 *
 * Complexity: alloc O(1) from a pool, else O(log n) (a larger alignment may scan, see
 * findVmapLowestMatch); free O(log n); find O(nodes log n); purge O(k log n) for k lazy areas;
 * check O(n); n is the number of areas and free blocks.
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
	/** 1 / pageSize and 1 / zone size, exact: multiplying by them divides without rounding. */
	private readonly pageInverse: number;
	private readonly zoneInverse: number;
	/** @internal */
	readonly table: VaTable;
	/** This handle's id: the kernel's "CPU" (1 for the handle that created the space). */
	readonly id: number;
	/** @internal */
	readonly locks: Locks;
	private readonly tags: TagTable;
	private readonly purger: Purger;

	private constructor(buffer: SpaceBuffer, flush: FlushHook | undefined) {
		this.table = new VaTable(buffer);
		const hdrF = this.table.hdrF;
		this.start = hdrF[HDRF_START]!;
		this.end = hdrF[HDRF_END]!;
		this.pageSize = hdrF[HDRF_PAGE_SIZE]!;
		this.pageInverse = 1 / this.pageSize;
		this.nodes = this.table.nodes;
		this.zoneInverse = 1 / hdrF[HDRF_ZONE_SIZE]!;
		this.id = claimHandle(this.table);
		this.node = (this.id - 1) % this.nodes;
		this.locks = new Locks(this.table, this.id);
		this.tags = new TagTable(this.table, this.locks);
		this.purger = new Purger(this.table, this.locks, flush, this.pageSize);
	}

	/**
	 * Attach to a space created elsewhere (another worker posted its `handle`). Each attached
	 * handle gets its own id; `flush` is this handle's own hook for the purges it runs.
	 */
	static attach(handle: VmapHandle, options?: AttachOptions): VmapSpace {
		const buffer = (handle as { buffer?: unknown } | null)?.buffer;
		if (!isShared(buffer) || buffer.byteLength < HEADER_BYTES) {
			throw new VmapError("EINVAL", `Cannot attach: the handle must be a space's \`handle\` ({ buffer: SharedArrayBuffer }), got ${shown(handle)}`);
		}
		const hdr = new Int32Array(buffer, 0, HDR_WORDS);
		if (hdr[HDR_MAGIC] !== MAGIC || hdr[HDR_VERSION] !== VERSION) {
			throw new VmapError("EINVAL", `Cannot attach: the buffer holds no vmap space of version ${VERSION} (magic ${hex(hdr[HDR_MAGIC]!)}, version ${hdr[HDR_VERSION]})`);
		}
		const flush = options?.flush;
		if (flush !== undefined && typeof flush !== "function") {
			throw new VmapError("EINVAL", `Cannot attach: flush must be a function (start, end) => void | Promise<void>, got ${shown(flush)}`);
		}
		const space = new VmapSpace(buffer, flush);
		space.locks.checkAlive();
		// An attached handle is another worker: while idle, it helps purges (parallel purge).
		if (space.nodes > 1) listenForWork(space.table, () => space.purger.help(), () => space.locks.closed || space.table.hdr[HDR_DEAD] !== 0);
		return space;
	}

	/** What another worker needs to attach: post it (structured clone), then VmapSpace.attach(). */
	get handle(): VmapHandle {
		const buffer = this.table.buffer;
		if (!isShared(buffer)) {
			throw new VmapError("EINVAL", "Cannot share a space created with shared: false: its buffer is a plain ArrayBuffer");
		}
		return { buffer };
	}

	/**
	 * Done with this handle: it runs no more scheduled drains, any later call on it throws
	 * EINVAL, and its id returns to the handle table (which holds HANDLE_MAX). A worker should
	 * close its handle before it is terminated, so that no drain is cut short holding the purge
	 * mutex. Lazy areas it freed stay for other handles' purges.
	 */
	close(): void {
		if (this.locks.closed) return;
		this.purger.finishDrain();
		this.locks.closed = true;
		Atomics.store(this.table.handles, (this.id - 1) * HANDLE_WORDS + HANDLE_STATE, HANDLE_FREE);
	}

	/** Create a space: one free block covering [start, start + size). */
	static create(options: VmapSpaceOptions): VmapSpace {
		return VmapSpace.createWith(parseSpaceOptions(options), 0);
	}

	/** @internal A space whose buffer holds `extWords` zeroed words of extension (HDR_EXT_OFFSET) for the layer above. */
	static createWith(params: SpaceParams, extWords: number): VmapSpace {
		const { start, size, pageSize, shared, maxAreas, lazyMaxPages, flush, priorityPurge, nodes } = params;

		const maxCapacity = maxAreas + 1; // record 0 is nil
		const capacity = Math.min(INITIAL_CAPACITY, maxCapacity);
		const recordsAt = recordsOffset(nodes, extWords);
		const bytes = bytesForCapacity(recordsAt, capacity);
		const buffer = shared ? new SharedArrayBuffer(bytes, { maxByteLength: bytesForCapacity(recordsAt, maxCapacity) }) : new ArrayBuffer(bytes);

		const hdr = new Int32Array(buffer, 0, recordsAt / 4);
		const hdrF = new Float64Array(buffer, 0, recordsAt / 8);
		hdr[HDR_MAGIC] = MAGIC;
		hdr[HDR_VERSION] = VERSION;
		hdr[HDR_CAPACITY] = capacity;
		hdr[HDR_MAX_CAPACITY] = maxCapacity;
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
		for (let v = 0; v < nodes; v++) {
			const f = nodeBase(v) >> 1;
			hdrF[f + NF_LAZY_MIN] = Infinity;
			hdrF[f + NF_LAZY_MAX] = -Infinity;
		}

		const space = new VmapSpace(buffer, flush);
		const t = space.table;
		t.reserve(1);
		const va = t.allocSlot();
		setVaStart(t, va, start);
		setVaEnd(t, va, start + size);
		mergeOrAddVmapArea(t, va);
		return space;
	}

	/** Bytes in the space. */
	get size(): number {
		return this.end - this.start;
	}

	/**
	 * Allocate `size` bytes (a whole number of pages) at the lowest address that fits, at a
	 * multiple of `align`, inside [vstart, vend). Returns the address.
	 * When nothing fits, purges the lazy areas and tries once more (kernel "overflow").
	 * Throws EINVAL for bad arguments and EBUSY when nothing fits; either way nothing changes.
	 */
	alloc(size: number, options?: AllocOptions): number {
		return this.allocate(size, options, true);
	}

	/**
	 * alloc() that, when nothing fits even after its purge, waits for the purge's flush (an
	 * asynchronous flush hook), purges again and retries once before it rejects with EBUSY.
	 */
	async allocAsync(size: number, options?: AllocOptions): Promise<number> {
		try {
			return this.allocate(size, options, true);
		} catch (e) {
			if (!(e instanceof VmapError) || e.code !== "EBUSY") throw e;
		}
		await this.purger.purge(true, true).done;
		return this.allocate(size, options, false);
	}

	private allocate(size: number, options: AllocOptions | undefined, overflowPurge: boolean): number {
		const pageSize = this.pageSize;
		let align = pageSize;
		let vstart = this.start;
		let vend = this.end;
		let tag = 0;
		if (options !== undefined) {
			if (typeof options !== "object" || options === null) {
				throw new VmapError("EINVAL", `Cannot alloc: options must be an object like { align, vstart, vend, tag, nowait }, got ${shown(options)}`);
			}
			if (options.align !== undefined) {
				align = options.align;
				if (!isPowerOfTwo(align)) throw new VmapError("EINVAL", `Cannot alloc: align must be a power of two, got ${shown(align)}`);
				if (align < pageSize) align = pageSize;
			}
			if (options.vstart !== undefined) vstart = options.vstart;
			if (options.vend !== undefined) vend = options.vend;
			if (vstart !== this.start || vend !== this.end) this.checkWindow(vstart, vend);
			if (options.tag !== undefined) {
				if (typeof options.tag !== "string") throw new VmapError("EINVAL", `Cannot alloc: tag must be a string, got ${shown(options.tag)}`);
				tag = this.tags.intern(options.tag);
			}
			if (options.nowait !== undefined) {
				if (typeof options.nowait !== "boolean") throw new VmapError("EINVAL", `Cannot alloc: nowait must be true or false, got ${shown(options.nowait)}`);
				if (options.nowait) overflowPurge = false;
			}
		}
		// Whole pages: size / pageSize is exact (a power of two), and Math.floor is one instruction
		// where `%` on doubles is a call to fmod.
		const pages = size * this.pageInverse;
		if (!(pages >= 1 && Math.floor(pages) === pages && size <= vend - vstart && Number.isSafeInteger(size))) this.badSize(size, vstart, vend);

		const t = this.table;
		const locks = this.locks;
		locks.checkAlive();
		if (workPosted(t)) this.purger.help();

		// The pool path (kernel node_alloc): only over the whole space, with several nodes. The
		// area is tagged with this handle's node even when the pool has none, so that its purge
		// refills this node's pool: pools fill by demand (seed 003's thread).
		let vn = 0;
		let pool = 0;
		if (this.nodes > 1 && vstart === this.start && vend === this.end) {
			vn = encodeVn(this.node);
			if (poolable(pages)) {
				pool = poolWord(this.node, pages);
				if (t.hdr[pool + POOL_LEN] !== 0) {
					// A peek first, as the kernel does: an empty pool costs no lock.
					const addr = this.poolAlloc(pool, align, vn, tag);
					if (addr >= 0) return addr;
				}
			}
		}

		// Free space, then the busy tree of the address's node (the lock order): the new area
		// joins its busy tree before the free-space lock is dropped, so no one holding every lock
		// ever sees a range in neither.
		locks.acquire(HDR_FREE_LOCK);
		let va: number;
		try {
			t.reserve(2); // the busy record and a middle split: running out fails before any change
			va = findVmapLowestMatch(t, size, align, vstart, vend, pageSize);
		} catch (e) {
			locks.release(HDR_FREE_LOCK);
			throw e;
		}
		if (va === 0) {
			locks.release(HDR_FREE_LOCK);
			return this.noFit(size, options, align, vstart, vend, overflowPurge);
		} // after reserve(), which may have replaced the buffer and every view
		const s = vaStart(t, va);
		// Block starts are page aligned: the common case needs no rounding.
		const nva = s >= vstart && align === pageSize ? s : alignUp(s > vstart ? s : vstart, align);
		let busy = vaClip(t, va, nva, size);
		if (busy === 0) busy = t.allocSlot();
		if (pool !== 0) t.hdrF[(nodeBase(this.node) >> 1) + NF_POOL_MISSES]!++;
		setVaStart(t, busy, nva);
		setVaEnd(t, busy, nva + size);
		this.insertBusy(busy, nva, size, vn, tag);
		locks.release(HDR_FREE_LOCK);
		return nva;
	}

	/**
	 * Take the head of this handle's pool `pool` and make it busy (kernel node_pool_del_va).
	 * Returns its address, or -1 when the pool is empty or its head is not aligned (then moved
	 * to the tail: one probe only).
	 */
	private poolAlloc(pool: number, align: number, vn: number, tag: number): number {
		const t = this.table;
		const lock = nodeBase(this.node) + N_POOL_LOCK;
		this.locks.acquire(lock);
		t.sync();
		const va = poolTake(t, this.node, pool, align);
		if (va === 0) {
			this.locks.release(lock);
			return -1;
		}
		const start = vaStart(t, va);
		// Still under the pool lock: the area is never in neither structure.
		this.insertBusy(va, start, vaEnd(t, va) - start, vn, tag);
		t.hdrF[(nodeBase(this.node) >> 1) + NF_POOL_HITS]!++;
		this.locks.release(lock);
		return start;
	}

	/** Link record `va` (vaStart/vaEnd set) into its node's busy tree, under that node's busy lock. */
	private insertBusy(va: number, start: number, size: number, vn: number, tag: number): void {
		const t = this.table;
		const b = nodeBase(addrToNode(start, this.zoneInverse, this.nodes));
		this.locks.acquire(b + N_BUSY_LOCK);
		t.sync();
		setVaFlags(t, va, VA_BUSY | vn);
		setVaTag(t, va, tag);
		insertVmapArea(t, b + N_BUSY_ROOT, va);
		t.hdr[b + N_BUSY_NR]!++;
		const f = b >> 1;
		t.hdrF[f + NF_BUSY_BYTES]! += size;
		t.hdrF[f + NF_ALLOCS]!++;
		this.locks.release(b + N_BUSY_LOCK);
	}

	/** No block fits: purge and retry once (kernel "overflow"), or fail with EBUSY. */
	private noFit(size: number, options: AllocOptions | undefined, align: number, vstart: number, vend: number, overflowPurge: boolean): number {
		const t = this.table;
		if (overflowPurge && (t.lazyPages() > 0 || this.pooled() > 0)) {
			try {
				this.purger.purge(true, true);
			} catch (e) {
				// A flush hook that threw leaves its batch lazy (counted in flushErrors): fail below.
				if (e instanceof VmapError && e.code === "EOWNERDEAD") throw e;
			}
			return this.allocate(size, options, false);
		}
		this.locks.acquire(HDR_FREE_LOCK);
		t.hdrF[HDRF_FAILED]!++;
		this.locks.release(HDR_FREE_LOCK);
		throw new VmapError(
			"EBUSY",
			`alloc for size ${size} align ${align} failed: Address range restricted to ${hex(vstart)} - ${hex(vend)}${flushingNote(this.purger)}`,
		);
	}

	/**
	 * Free the area that starts at `addr`, lazily: it stays unusable until a purge has flushed
	 * it. Throws EINVAL for a bad address, ENOENT when no area starts there and EDOUBLEFREE
	 * when the area is freed already; nothing changes then.
	 */
	free(addr: number): void {
		this.freeArea(addr, "free", 0, 0);
	}

	/**
	 * @internal free() in the words of `op`, for layers that mark areas with tags: an area whose
	 * tag id is `refusedA` or `refusedB` (0: none) is not freed, and its tag id is returned;
	 * otherwise 0. The test and the free happen under one hold of the busy lock.
	 */
	freeArea(addr: number, op: string, refusedA: number, refusedB: number): number {
		const locks = this.locks;
		locks.checkAlive();
		if (!Number.isSafeInteger(addr)) throw new VmapError("EINVAL", `Cannot ${op}: address must be a whole number, got ${shown(addr)}`);
		const t = this.table;
		if (workPosted(t)) this.purger.help();
		// An area is in the busy tree of its start's node: one tree to search.
		const b = nodeBase(addrToNode(addr, this.zoneInverse, this.nodes));
		locks.acquire(b + N_BUSY_LOCK);
		t.sync();
		const va = findVmapArea(t, b + N_BUSY_ROOT, addr);
		if (va === 0 || vaStart(t, va) !== addr) {
			locks.release(b + N_BUSY_LOCK);
			this.notAnArea(addr, op);
		}
		const tag = vaTag(t, va);
		if (tag !== 0 && (tag === refusedA || tag === refusedB)) {
			locks.release(b + N_BUSY_LOCK);
			return tag;
		}
		this.makeLazy(b, va);
		locks.release(b + N_BUSY_LOCK);
		this.purger.afterFree();
		return 0;
	}

	/** @internal The id of tag `name` (interned if new), for freeArea(). */
	tagId(name: string): number {
		return this.tags.intern(name);
	}

	/**
	 * Busy record `va` of the node at `b` (whose busy lock the caller holds) leaves its busy tree
	 * for a lazy list: its vn_id's node's if it has one, else its address node's (kernel
	 * free_vmap_area_noflush). Everything needed from the area is read before it is published
	 * on the lazy list (seed 004): once there, a purge in another worker may merge it away.
	 */
	private makeLazy(b: number, va: number): void {
		const t = this.table;
		const start = vaStart(t, va);
		const end = vaEnd(t, va);
		const flags = vaFlags(t, va);
		rbErase(t, b + N_BUSY_ROOT, va, false);
		t.hdr[b + N_BUSY_NR]!--;
		t.hdrF[(b >> 1) + NF_BUSY_BYTES]! -= end - start;
		t.hdrF[(b >> 1) + NF_FREES]!++;
		this.publishLazy(b, va, start, end, flags);
	}

	/**
	 * Put record `va`, [start, end), in no tree and on no list, on a lazy list: its vn_id's
	 * node's (from `flags`) if it has one, else the node at `b`. The caller holds `b`'s busy lock.
	 */
	private publishLazy(b: number, va: number, start: number, end: number, flags: number): void {
		const t = this.table;
		const vn = vnOf(flags);
		const l = vn >= 0 ? nodeBase(vn) : b;
		const f = l >> 1;
		this.locks.acquire(l + N_LAZY_LOCK);
		const hdr = t.hdr;
		const hdrF = t.hdrF;
		hdrF[f + NF_LAZY_ADDED]! += (end - start) * this.pageInverse;
		if (start < hdrF[f + NF_LAZY_MIN]!) hdrF[f + NF_LAZY_MIN] = start;
		if (end > hdrF[f + NF_LAZY_MAX]!) hdrF[f + NF_LAZY_MAX] = end;
		setVaFlags(t, va, VA_LAZY | (flags & ~VA_STATE)); // keeps the vn_id
		setVaNext(t, va, hdr[l + N_LAZY_HEAD]!);
		hdr[l + N_LAZY_HEAD] = va; // published: `va` may not be read from here on
		hdr[l + N_LAZY_NR]!++;
		this.locks.release(l + N_LAZY_LOCK);
	}

	/**
	 * Change the size of the busy area that starts at `addr`, in place (vrealloc). Shrinking
	 * always succeeds: the tail is freed lazily, as free() would free it, so it is not handed
	 * out before a purge has flushed it. Growing succeeds when [end, addr + size) is the head of
	 * one free block (not busy, lazy or pooled); otherwise nothing changes and it returns false.
	 * The area keeps its tag and node. Errors as free(), and EINVAL for a bad size.
	 */
	resize(addr: number, size: number): boolean {
		const locks = this.locks;
		locks.checkAlive();
		if (!Number.isSafeInteger(addr)) throw new VmapError("EINVAL", `Cannot resize: address must be a whole number, got ${shown(addr)}`);
		const pages = size * this.pageInverse;
		if (!(pages >= 1 && Math.floor(pages) === pages && Number.isSafeInteger(size) && addr + size <= this.end)) {
			const what = typeof size === "number" ? shown(size) : `${typeof size} ${shown(size)}`;
			throw new VmapError(
				"EINVAL",
				`Cannot resize ${hex(addr)}: size must be a whole number of pages (a positive multiple of ${this.pageSize}) ending inside the space (at most ${hex(this.end)}), got ${what}`,
			);
		}
		const t = this.table;
		if (workPosted(t)) this.purger.help();
		const b = nodeBase(addrToNode(addr, this.zoneInverse, this.nodes));
		locks.acquire(HDR_FREE_LOCK);
		try {
			t.reserve(1); // the lazy tail of a shrink: running out fails before any change
		} catch (e) {
			locks.release(HDR_FREE_LOCK);
			throw e;
		}
		locks.acquire(b + N_BUSY_LOCK);
		t.sync();
		const va = findVmapArea(t, b + N_BUSY_ROOT, addr);
		if (va === 0 || vaStart(t, va) !== addr) {
			locks.release(b + N_BUSY_LOCK);
			locks.release(HDR_FREE_LOCK);
			this.notAnArea(addr, "resize");
		}
		const end = vaEnd(t, va);
		const newEnd = addr + size;
		let done = true;
		if (newEnd < end) {
			// The tail leaves the area under the busy lock and joins a lazy list under the lazy
			// lock: check(), holding everything, sees it in one place or the other.
			setVaEnd(t, va, newEnd);
			t.hdrF[(b >> 1) + NF_BUSY_BYTES]! -= end - newEnd;
			const tail = t.allocSlot();
			setVaStart(t, tail, newEnd);
			setVaEnd(t, tail, end);
			setVaTag(t, tail, vaTag(t, va));
			this.publishLazy(nodeBase(addrToNode(newEnd, this.zoneInverse, this.nodes)), tail, newEnd, end, vaFlags(t, va));
		} else if (newEnd > end) {
			const fb = findVmapArea(t, HDR_FREE_ROOT, end);
			if (fb !== 0 && vaStart(t, fb) === end && vaEnd(t, fb) >= newEnd) {
				const whole = vaClip(t, fb, end, newEnd - end);
				if (whole !== 0) t.freeSlot(whole);
				setVaEnd(t, va, newEnd);
				t.hdrF[(b >> 1) + NF_BUSY_BYTES]! += newEnd - end;
			} else done = false;
		}
		locks.release(b + N_BUSY_LOCK);
		locks.release(HDR_FREE_LOCK);
		if (newEnd < end) this.purger.afterFree();
		return done;
	}

	/**
	 * @internal Set the tag of the busy area that starts at `addr` to `tag`, unless it has that
	 * tag already. Returns false when no busy area starts there or it had the tag: a
	 * test-and-set, under the area's busy lock, for layers that mark areas (the heap's
	 * deferred frees).
	 */
	retag(addr: number, tag: string): boolean {
		this.locks.checkAlive();
		const id = this.tags.intern(tag);
		const t = this.table;
		const b = nodeBase(addrToNode(addr, this.zoneInverse, this.nodes));
		this.locks.acquire(b + N_BUSY_LOCK);
		t.sync();
		const va = findVmapArea(t, b + N_BUSY_ROOT, addr);
		const set = va !== 0 && vaStart(t, va) === addr && vaTag(t, va) !== id;
		if (set) setVaTag(t, va, id);
		this.locks.release(b + N_BUSY_LOCK);
		return set;
	}

	/** Areas in every node's pools (plain reads: a hint). */
	private pooled(): number {
		let n = 0;
		for (let v = 0; v < this.nodes; v++) n += this.table.hdr[nodeBase(v) + N_POOL_NR]!;
		return n;
	}

	/**
	 * Purge the lazy areas: one flush over the range covering them, then back to free space.
	 * Try semantics unless `sync` (see PurgeOptions). Throws what a synchronous flush hook
	 * throws (the areas stay lazy).
	 */
	purge(options?: PurgeOptions): PurgeResult {
		this.locks.checkAlive();
		const sync = options?.sync ?? false;
		if (typeof sync !== "boolean") throw new VmapError("EINVAL", `Cannot purge: sync must be true or false, got ${shown(sync)}`);
		return this.purger.purge(sync, false);
	}

	/**
	 * Give every pooled area back to free space (the kernel's shrinker, for memory pressure):
	 * a full decay of every pool, under the purge mutex. Returns the areas and bytes released.
	 */
	trim(): TrimResult {
		this.locks.checkAlive();
		return this.purger.trim();
	}

	/**
	 * Counters, read without taking allocator locks (see VmapStats for what agrees with what).
	 * `{ pools: true }` adds each node's 256 pool lengths; `{ into }` refills an earlier result.
	 */
	stats(options?: StatsOptions): VmapStats {
		const pools = options?.pools ?? false;
		if (typeof pools !== "boolean") throw new VmapError("EINVAL", `Cannot read stats: pools must be true or false, got ${shown(pools)}`);
		const into = options?.into;
		if (into !== undefined && !(typeof into === "object" && into !== null && Array.isArray(into.nodes) && into.nodes.length === this.nodes)) {
			const got = typeof into === "object" && into !== null ? (Array.isArray(into.nodes) ? `a result with ${into.nodes.length} nodes` : "an object without nodes") : shown(into);
			throw new VmapError("EINVAL", `Cannot read stats: into must be a previous stats() result of this space (${this.nodes} nodes), got ${got}`);
		}
		return readStats(this.table, pools, into);
	}

	/** The busy and lazy areas in the style of /proc/vmallocinfo. */
	vmallocinfo(): string {
		return this.whole(() => vmallocinfo(this.table, (id) => this.tags.name(id)));
	}

	/** JSON: the space, its statistics, every area and every free block. */
	dump(): string {
		const stats = this.stats();
		return this.whole(() => dumpSpace(this.table, stats, (id) => this.tags.name(id)));
	}

	/**
	 * Run `read` over the whole space, still: holding every lock but the purge mutex, in the
	 * lock order (free space, then each kind of node lock in node order).
	 */
	private whole<T>(read: () => T): T {
		const locks = this.locks;
		locks.checkAlive();
		const words = [HDR_FREE_LOCK];
		for (const kind of [N_POOL_LOCK, N_BUSY_LOCK, N_LAZY_LOCK]) for (let v = 0; v < this.nodes; v++) words.push(nodeBase(v) + kind);
		let held = 0;
		try {
			for (; held < words.length; held++) locks.acquire(words[held]!);
			this.table.sync();
			return read();
		} finally {
			while (held > 0) locks.release(words[--held]!);
		}
	}

	/**
	 * The area holding `addr`, busy or lazy, or undefined. A busy area is found in O(nodes
	 * log n): the busy trees are searched from the address's node backwards, so an area
	 * spanning zones is found at its start's node (kernel find_vmap_area). Any other address
	 * is looked up with every lock held, a scan of the lazy and pooled areas included.
	 */
	find(addr: number): AreaInfo | undefined {
		this.locks.checkAlive();
		if (!Number.isSafeInteger(addr)) throw new VmapError("EINVAL", `Cannot find: address must be a whole number, got ${shown(addr)}`);
		if (addr < this.start || addr >= this.end) return undefined;
		const t = this.table;
		const locks = this.locks;
		const first = addrToNode(addr, this.zoneInverse, this.nodes);
		for (let i = 0, v = first; i < this.nodes; i++, v = v === 0 ? this.nodes - 1 : v - 1) {
			const b = nodeBase(v);
			locks.acquire(b + N_BUSY_LOCK);
			t.sync();
			const va = findVmapArea(t, b + N_BUSY_ROOT, addr);
			const info = va === 0 ? undefined : this.describe(va, "busy");
			locks.release(b + N_BUSY_LOCK);
			if (info !== undefined) return info;
		}
		const where = this.locate(addr);
		return where.state === "busy" || where.state === "lazy" ? where.info : undefined;
	}

	private describe(va: number, state: "busy" | "lazy"): AreaInfo {
		const t = this.table;
		const start = vaStart(t, va);
		const end = vaEnd(t, va);
		const tag = vaTag(t, va);
		return { start, end, size: end - start, tag: tag === 0 ? undefined : this.tags.name(tag), state };
	}

	/**
	 * Where `addr` lies, looked up with every lock held: in a busy area, a lazy one, free space
	 * (a free block or a pooled area), or "nowhere", which only a broken space allows. `info`
	 * describes a busy or lazy area.
	 */
	private locate(addr: number): { state: "busy" | "lazy" | "free" | "nowhere"; info: AreaInfo | undefined } {
		return this.whole(() => {
			const t = this.table;
			for (let v = 0; v < this.nodes; v++) {
				const b = nodeBase(v);
				const busy = findVmapArea(t, b + N_BUSY_ROOT, addr);
				if (busy !== 0) return { state: "busy", info: this.describe(busy, "busy") };
				const lazy = findListed(t, t.hdr[b + N_LAZY_HEAD]!, addr) || findListed(t, t.hdr[b + N_PURGE_HEAD]!, addr);
				if (lazy !== 0) return { state: "lazy", info: this.describe(lazy, "lazy") };
			}
			if (findVmapArea(t, HDR_FREE_ROOT, addr) !== 0) return { state: "free", info: undefined };
			for (let v = 0; v < this.nodes; v++) {
				for (let pages = 1; pages <= MAX_VA_SIZE_PAGES; pages++) {
					if (findListed(t, t.hdr[poolWord(v, pages)]!, addr) !== 0) return { state: "free", info: undefined };
				}
			}
			return { state: "nowhere", info: undefined };
		});
	}

	/** Validate every structure in O(n); throws VmapError ECORRUPT naming the broken invariant. */
	check(): void {
		this.whole(() => checkSpace(this.table, this.start, this.end, () => this.locks.heartbeat()));
	}

	/** Milliseconds this handle has spent waiting for locks other handles held. */
	get lockWaitMs(): number {
		return this.locks.waitMs;
	}

	/** `addr` starts no busy area: throw the error that says what lies there, in the words of `op`. */
	private notAnArea(addr: number, op: string): never {
		if (addr < this.start || addr >= this.end) {
			throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: the address is outside the space [${hex(this.start)}, ${hex(this.end)})`);
		}
		const where = this.locate(addr);
		const info = where.info;
		if (where.state === "nowhere") return corrupt(`${hex(addr)} is in no busy area, no lazy area, no free block and no pool`);
		if (info === undefined) {
			throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: no area starts there; the address is free (never allocated, or already freed and purged)`);
		}
		const range = `[${hex(info.start)}, ${hex(info.end)})`;
		if (info.state === "lazy" && info.start === addr) {
			throw new VmapError("EDOUBLEFREE", `Cannot ${op} ${hex(addr)}: the area ${range} is freed already (lazy, waiting for a purge)`);
		}
		if (info.start === addr) {
			// Between the failed lookup and this diagnosis another worker allocated an area here.
			throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: no area started there when the call looked (another worker allocated ${range} since)`);
		}
		throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: no area starts there; it lies inside the area ${range}${info.state === "lazy" ? ", which is freed already" : ""}`);
	}

	private checkWindow(vstart: number, vend: number): void {
		if (!Number.isSafeInteger(vstart) || !Number.isSafeInteger(vend)) {
			throw new VmapError("EINVAL", `Cannot alloc: vstart and vend must be whole numbers, got vstart ${shown(vstart)}, vend ${shown(vend)}`);
		}
		if (vstart < this.start || vend > this.end || vstart >= vend) {
			throw new VmapError(
				"EINVAL",
				`Cannot alloc: the window [vstart, vend) = [${hex(vstart)}, ${hex(vend)}) must be non-empty and inside the space [${hex(this.start)}, ${hex(this.end)})`,
			);
		}
	}

	private badSize(size: number, vstart: number, vend: number): never {
		const what = typeof size === "number" ? shown(size) : `${typeof size} ${shown(size)}`;
		if (typeof size === "number" && Number.isSafeInteger(size) && size > 0 && size % this.pageSize === 0) {
			throw new VmapError("EINVAL", `Cannot alloc: size ${what} is larger than the window [${hex(vstart)}, ${hex(vend)}) of ${vend - vstart} bytes`);
		}
		throw new VmapError("EINVAL", `Cannot alloc: size must be a positive whole number of pages (pageSize ${this.pageSize}), got ${what}`);
	}
}
