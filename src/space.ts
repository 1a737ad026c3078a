import type { AllocOptions, AreaInfo, AttachOptions, FlushHook, PurgeOptions, PurgeResult, VmapHandle, VmapSpaceOptions, VmapStats } from "./api.ts";
import { findVmapArea, insertVmapArea } from "./busy-tree.ts";
import { checkSpace } from "./check.ts";
import { corrupt, hex, shown, VmapError } from "./errors.ts";
import { alignUp, findVmapLowestMatch, mergeOrAddVmapArea, vaClip } from "./free-space.ts";
import {
	bytesForCapacity,
	HANDLE_FREE,
	HANDLE_STATE,
	HANDLE_WORDS,
	HDR_BUSY_LOCK,
	HDR_BUSY_NR,
	HDR_BUSY_ROOT,
	HDR_CAPACITY,
	HDR_FREE_LOCK,
	HDR_FREE_ROOT,
	HDR_MAGIC,
	HDR_MAX_CAPACITY,
	HDR_NO_PRIORITY,
	HDR_SLOT_HIGH,
	HDR_TAG_NR,
	HDR_VERSION,
	HDR_WORDS,
	HEADER_BYTES,
	HDRF_ALLOCS,
	HDRF_BUSY_BYTES,
	HDRF_END,
	HDRF_FAILED,
	HDRF_LAZY_MAX,
	HDRF_LAZY_MAX_PAGES,
	HDRF_LAZY_MIN,
	HDRF_PAGE_SIZE,
	HDRF_START,
	INITIAL_CAPACITY,
	MAGIC,
	REC_F64,
	REC_I32,
	RECORDS_OFFSET,
	VA_BUSY,
	VA_END,
	VA_FLAGS,
	VA_START,
	VA_TAG,
	VERSION,
} from "./layout.ts";
import { dumpSpace, vmallocinfo } from "./info.ts";
import { claimHandle, Locks } from "./lock.ts";
import { findLazyArea, flushingNote, Purger } from "./purge.ts";
import { isPowerOfTwo, parseSpaceOptions } from "./options.ts";
import { readStats } from "./stats.ts";
import { TagTable } from "./tags.ts";
import { isShared, type SpaceBuffer, VaTable } from "./va-table.ts";


/**
 * A range allocator over [start, start + size), with all of its state in one buffer.
 *
 * Freeing is lazy, as in the kernel: a freed area becomes reusable only after a purge has
 * called the flush hook over it (see purge.ts for when purges run).
 *
 * Complexity: alloc O(log n) (a larger alignment may scan, see findVmapLowestMatch),
 * free O(log n), find O(log n), purge O(k log n) for k lazy areas, check O(n); n is the number
 * of busy and lazy areas plus free blocks.
 */
export class VmapSpace {
	/** First address of the space. */
	readonly start: number;
	/** One past the last address of the space. */
	readonly end: number;
	readonly pageSize: number;
	/** 1 / pageSize, exact: multiplying by it divides without rounding. */
	private readonly pageInverse: number;
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
		this.id = claimHandle(this.table);
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
		if (!isShared(buffer) || buffer.byteLength < RECORDS_OFFSET) {
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
		const { start, size, pageSize, shared, maxAreas, lazyMaxPages, flush, priorityPurge } = parseSpaceOptions(options);

		const maxCapacity = maxAreas + 1; // record 0 is nil
		const capacity = Math.min(INITIAL_CAPACITY, maxCapacity);
		const bytes = bytesForCapacity(capacity);
		const buffer = shared ? new SharedArrayBuffer(bytes, { maxByteLength: bytesForCapacity(maxCapacity) }) : new ArrayBuffer(bytes);

		const hdr = new Int32Array(buffer, 0, HDR_WORDS);
		const hdrF = new Float64Array(buffer, 0, HEADER_BYTES / 8);
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
		hdrF[HDRF_LAZY_MIN] = Infinity;
		hdrF[HDRF_LAZY_MAX] = -Infinity;

		const space = new VmapSpace(buffer, flush);
		const t = space.table;
		t.reserve(1);
		const va = t.allocSlot();
		t.f64[va * REC_F64 + VA_START] = start;
		t.f64[va * REC_F64 + VA_END] = start + size;
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
				throw new VmapError("EINVAL", `Cannot alloc: options must be an object like { align, vstart, vend, tag }, got ${shown(options)}`);
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
		}
		// Whole pages: size / pageSize is exact (a power of two), and Math.floor is one instruction
		// where `%` on doubles is a call to fmod.
		const pages = size * this.pageInverse;
		if (!(pages >= 1 && Math.floor(pages) === pages && size <= vend - vstart && Number.isSafeInteger(size))) this.badSize(size, vstart, vend);

		// Busy, then free space (the lock order): the new area joins the busy tree before the
		// free-space lock is dropped, so no one holding both ever sees a range in neither.
		const t = this.table;
		const locks = this.locks;
		locks.checkAlive();
		locks.acquire(HDR_BUSY_LOCK);
		locks.acquire(HDR_FREE_LOCK);
		let va: number;
		try {
			t.reserve(2); // the busy record and a middle split: running out fails before any change
			va = findVmapLowestMatch(t, size, align, vstart, vend, pageSize);
		} catch (e) {
			locks.release(HDR_FREE_LOCK);
			locks.release(HDR_BUSY_LOCK);
			throw e;
		}
		if (va === 0) {
			locks.release(HDR_FREE_LOCK);
			locks.release(HDR_BUSY_LOCK);
			return this.noFit(size, options, align, vstart, vend, overflowPurge);
		}
		const hdr = t.hdr; // after reserve(), which may have replaced the buffer and every view
		const f64 = t.f64;
		const s = f64[va * REC_F64 + VA_START]!;
		// Block starts are page aligned: the common case needs no rounding.
		const nva = s >= vstart && align === pageSize ? s : alignUp(s > vstart ? s : vstart, align);
		let busy = vaClip(t, va, nva, size);
		if (busy === 0) busy = t.allocSlot();
		locks.release(HDR_FREE_LOCK);

		f64[busy * REC_F64 + VA_START] = nva;
		f64[busy * REC_F64 + VA_END] = nva + size;
		t.i32[busy * REC_I32 + VA_FLAGS] = VA_BUSY;
		t.i32[busy * REC_I32 + VA_TAG] = tag;
		insertVmapArea(t, HDR_BUSY_ROOT, busy);
		hdr[HDR_BUSY_NR]!++;
		t.hdrF[HDRF_BUSY_BYTES]! += size;
		t.hdrF[HDRF_ALLOCS]!++;
		locks.release(HDR_BUSY_LOCK);
		return nva;
	}

	/** No block fits: purge and retry once (kernel "overflow"), or fail with EBUSY. */
	private noFit(size: number, options: AllocOptions | undefined, align: number, vstart: number, vend: number, overflowPurge: boolean): number {
		const t = this.table;
		if (overflowPurge && t.lazyPages() > 0) {
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
		const locks = this.locks;
		locks.checkAlive();
		if (!Number.isSafeInteger(addr)) throw new VmapError("EINVAL", `Cannot free: address must be a whole number, got ${shown(addr)}`);
		const t = this.table;
		locks.acquire(HDR_BUSY_LOCK);
		t.sync();
		const va = findVmapArea(t, HDR_BUSY_ROOT, addr);
		if (va === 0 || t.f64[va * REC_F64 + VA_START] !== addr) {
			locks.release(HDR_BUSY_LOCK);
			this.notAnArea(addr, "free");
		}
		const nrLazy = this.purger.freeLocked(va);
		locks.release(HDR_BUSY_LOCK);
		this.purger.afterFree(nrLazy);
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

	/** Counters, read without taking allocator locks (see VmapStats for what agrees with what). */
	stats(): VmapStats {
		return readStats(this.table);
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

	/** Run `read` over the whole space, still: holding the busy and free-space locks. */
	private whole<T>(read: () => T): T {
		const locks = this.locks;
		locks.checkAlive();
		locks.acquire(HDR_BUSY_LOCK);
		try {
			locks.acquire(HDR_FREE_LOCK);
			try {
				this.table.sync();
				return read();
			} finally {
				locks.release(HDR_FREE_LOCK);
			}
		} finally {
			locks.release(HDR_BUSY_LOCK);
		}
	}

	/**
	 * The area holding `addr`, busy or lazy, or undefined. O(log n) for busy and free
	 * addresses; an address in a lazily freed area is found by a scan of the lazy areas.
	 */
	find(addr: number): AreaInfo | undefined {
		this.locks.checkAlive();
		if (!Number.isSafeInteger(addr)) throw new VmapError("EINVAL", `Cannot find: address must be a whole number, got ${shown(addr)}`);
		if (addr < this.start || addr >= this.end) return undefined;
		// An area moves busy -> lazy list -> purge batch -> free space; looking in that order,
		// each under its lock, finds it wherever it is (or finds it free).
		const where = this.locate(addr);
		return where.va === 0 || where.state === "free" ? undefined : where.info!;
	}

	/**
	 * Where `addr` lies: in a busy area, a lazy one, or free space (va 0: in nothing, which only
	 * a broken space allows). `info` describes the area, read while its lock was held.
	 */
	private locate(addr: number): { va: number; state: "busy" | "lazy" | "free"; info: AreaInfo | undefined } {
		const t = this.table;
		const locks = this.locks;
		const describe = (va: number, state: "busy" | "lazy"): AreaInfo => {
			const start = t.f64[va * REC_F64 + VA_START]!;
			const end = t.f64[va * REC_F64 + VA_END]!;
			const tag = t.i32[va * REC_I32 + VA_TAG]!;
			return { start, end, size: end - start, tag: tag === 0 ? undefined : this.tags.name(tag), state };
		};
		locks.acquire(HDR_BUSY_LOCK);
		t.sync();
		let va = findVmapArea(t, HDR_BUSY_ROOT, addr);
		let state: "busy" | "lazy" | "free" = "busy";
		if (va === 0) {
			va = findLazyArea(t, addr, "lazy");
			state = "lazy";
		}
		const info = va === 0 ? undefined : describe(va, state);
		locks.release(HDR_BUSY_LOCK);
		if (va !== 0) return { va, state, info };
		locks.acquire(HDR_FREE_LOCK);
		t.sync();
		va = findVmapArea(t, HDR_FREE_ROOT, addr);
		state = "free";
		if (va === 0) {
			va = findLazyArea(t, addr, "batch");
			state = "lazy";
		}
		const batchInfo = va === 0 || state === "free" ? undefined : describe(va, "lazy");
		locks.release(HDR_FREE_LOCK);
		return { va, state, info: batchInfo };
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
		if (where.va === 0) return corrupt(`${hex(addr)} is in no busy area, no free block and no lazy area`);
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
