import type { AllocOptions, AreaInfo, PurgeOptions, PurgeResult, VmapSpaceOptions, VmapStats } from "./api.ts";
import { findVmapArea, insertVmapArea } from "./busy-tree.ts";
import { checkSpace } from "./check.ts";
import { corrupt, hex, shown, VmapError } from "./errors.ts";
import { alignUp, findVmapLowestMatch, mergeOrAddVmapArea, vaClip } from "./free-space.ts";
import {
	bytesForCapacity,
	DEFAULT_MAX_AREAS,
	HDR_BUSY_NR,
	HDR_BUSY_ROOT,
	HDR_CAPACITY,
	HDR_FREE_ROOT,
	HDR_MAGIC,
	HDR_MAX_CAPACITY,
	HDR_SLOT_HIGH,
	HDR_TAG_NR,
	HDR_VERSION,
	HDR_WORDS,
	HEADER_BYTES,
	HDR_SEQ_BUSY,
	HDR_SEQ_FREE,
	HDRF_ALLOCS,
	HDRF_BUSY_BYTES,
	HDRF_END,
	HDRF_FAILED,
	HDRF_LAZY_MAX,
	HDRF_LAZY_MAX_PAGES,
	HDRF_LAZY_MIN,
	HDRF_LAZY_PAGES,
	HDRF_PAGE_SIZE,
	HDRF_START,
	INITIAL_CAPACITY,
	MAGIC,
	MAX_AREAS_LIMIT,
	REC_F64,
	REC_I32,
	VA_BUSY,
	VA_END,
	VA_FLAGS,
	VA_LAZY,
	VA_START,
	VA_TAG,
	VERSION,
} from "./layout.ts";
import { dumpSpace, vmallocinfo } from "./info.ts";
import { findLazyArea, flushingNote, Purger } from "./purge.ts";
import { readStats, seqBegin, seqEnd } from "./stats.ts";
import { TagTable } from "./tags.ts";
import { type SpaceBuffer, VaTable } from "./va-table.ts";

const OPTION_KEYS = new Set(["start", "size", "pageSize", "shared", "maxAreas", "lazyMaxPages", "flush"]);

/** The kernel's lazy_max_pages() unit: fls(nr_cpus) * 32 MiB worth of pages. */
const LAZY_MAX_BYTES = 32 * 2 ** 20;

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
	private readonly tags: TagTable;
	private readonly purger: Purger;

	private constructor(buffer: SpaceBuffer, flush: VmapSpaceOptions["flush"]) {
		this.table = new VaTable(buffer);
		const hdrF = this.table.hdrF;
		this.start = hdrF[HDRF_START]!;
		this.end = hdrF[HDRF_END]!;
		this.pageSize = hdrF[HDRF_PAGE_SIZE]!;
		this.pageInverse = 1 / this.pageSize;
		this.tags = new TagTable(this.table);
		this.purger = new Purger(this.table, flush, this.pageSize);
	}

	/** Create a space: one free block covering [start, start + size). */
	static create(options: VmapSpaceOptions): VmapSpace {
		if (typeof options !== "object" || options === null) {
			throw new VmapError("EINVAL", `Cannot create a space: options must be an object like { size }, got ${shown(options)}`);
		}
		for (const key of Object.keys(options)) {
			if (!OPTION_KEYS.has(key)) {
				throw new VmapError("EINVAL", `Cannot create a space: unknown option ${JSON.stringify(key)} (known: ${[...OPTION_KEYS].join(", ")})`);
			}
		}
		const pageSize = options.pageSize ?? 4096;
		if (!isPowerOfTwo(pageSize)) {
			throw new VmapError("EINVAL", `Cannot create a space: pageSize must be a power of two, got ${shown(pageSize)}`);
		}
		const start = options.start ?? pageSize;
		if (!Number.isSafeInteger(start) || start < 0 || start % pageSize !== 0) {
			throw new VmapError("EINVAL", `Cannot create a space: start must be a non-negative multiple of pageSize ${pageSize}, got ${shown(start)}`);
		}
		const size = options.size;
		if (!Number.isSafeInteger(size) || size <= 0 || size % pageSize !== 0) {
			throw new VmapError("EINVAL", `Cannot create a space: size must be a positive multiple of pageSize ${pageSize}, got ${shown(size)}`);
		}
		if (!Number.isSafeInteger(start + size)) {
			throw new VmapError("EINVAL", `Cannot create a space: start + size must be at most 2^53 - 1, got ${hex(start)} + ${hex(size)}`);
		}
		const maxAreas = options.maxAreas ?? DEFAULT_MAX_AREAS;
		if (!Number.isSafeInteger(maxAreas) || maxAreas < 1 || maxAreas > MAX_AREAS_LIMIT) {
			throw new VmapError("EINVAL", `Cannot create a space: maxAreas must be a whole number from 1 to ${MAX_AREAS_LIMIT}, got ${shown(maxAreas)}`);
		}
		const shared = options.shared ?? true;
		if (typeof shared !== "boolean") {
			throw new VmapError("EINVAL", `Cannot create a space: shared must be true or false, got ${shown(shared)}`);
		}
		const lazyMaxPages = options.lazyMaxPages ?? Math.max(1, LAZY_MAX_BYTES / pageSize);
		if (!Number.isSafeInteger(lazyMaxPages) || lazyMaxPages < 1) {
			throw new VmapError("EINVAL", `Cannot create a space: lazyMaxPages must be a whole number of pages, at least 1, got ${shown(lazyMaxPages)}`);
		}
		if (options.flush !== undefined && typeof options.flush !== "function") {
			throw new VmapError("EINVAL", `Cannot create a space: flush must be a function (start, end) => void | Promise<void>, got ${shown(options.flush)}`);
		}

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
		hdrF[HDRF_LAZY_MIN] = Infinity;
		hdrF[HDRF_LAZY_MAX] = -Infinity;

		const space = new VmapSpace(buffer, options.flush);
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

		const t = this.table;
		t.reserve(2); // the busy record and a middle split: running out fails before any change
		const hdr = t.hdr; // after reserve(), which may have replaced the buffer and every view
		seqBegin(hdr, HDR_SEQ_FREE);
		let va = findVmapLowestMatch(t, size, align, vstart, vend, pageSize);
		if (va === 0 && overflowPurge && t.hdrF[HDRF_LAZY_PAGES]! > 0) {
			seqEnd(hdr, HDR_SEQ_FREE);
			try {
				this.purger.purge(true, true);
			} catch {
				// The flush hook threw: the batch stays lazy (counted in flushErrors); fail below.
			}
			seqBegin(hdr, HDR_SEQ_FREE);
			va = findVmapLowestMatch(t, size, align, vstart, vend, pageSize);
		}
		if (va === 0) {
			t.hdrF[HDRF_FAILED]!++;
			seqEnd(hdr, HDR_SEQ_FREE);
			throw new VmapError(
				"EBUSY",
				`alloc for size ${size} align ${align} failed: Address range restricted to ${hex(vstart)} - ${hex(vend)}${flushingNote(this.purger)}`,
			);
		}
		const f64 = t.f64;
		const s = f64[va * REC_F64 + VA_START]!;
		// Block starts are page aligned: the common case needs no rounding.
		const nva = s >= vstart && align === pageSize ? s : alignUp(s > vstart ? s : vstart, align);
		let busy = vaClip(t, va, nva, size);
		seqEnd(hdr, HDR_SEQ_FREE);

		if (busy === 0) busy = t.allocSlot();
		f64[busy * REC_F64 + VA_START] = nva;
		f64[busy * REC_F64 + VA_END] = nva + size;
		t.i32[busy * REC_I32 + VA_FLAGS] = VA_BUSY;
		t.i32[busy * REC_I32 + VA_TAG] = tag;
		seqBegin(hdr, HDR_SEQ_BUSY);
		insertVmapArea(t, HDR_BUSY_ROOT, busy);
		hdr[HDR_BUSY_NR]!++;
		t.hdrF[HDRF_BUSY_BYTES]! += size;
		t.hdrF[HDRF_ALLOCS]!++;
		seqEnd(hdr, HDR_SEQ_BUSY);
		return nva;
	}

	/**
	 * Free the area that starts at `addr`, lazily: it stays unusable until a purge has flushed
	 * it. Throws EINVAL for a bad address, ENOENT when no area starts there and EDOUBLEFREE
	 * when the area is freed already; nothing changes then.
	 */
	free(addr: number): void {
		this.purger.freeNoflush(this.busyAt(addr, "free"));
	}

	/**
	 * Purge the lazy areas: one flush over the range covering them, then back to free space.
	 * Try semantics unless `sync` (see PurgeOptions). Throws what a synchronous flush hook
	 * throws (the areas stay lazy).
	 */
	purge(options?: PurgeOptions): PurgeResult {
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
		return vmallocinfo(this.table, (id) => this.tags.name(id));
	}

	/** JSON: the space, its statistics, every area and every free block. */
	dump(): string {
		return dumpSpace(this.table, this.stats(), (id) => this.tags.name(id));
	}

	/**
	 * The area holding `addr`, busy or lazy, or undefined. O(log n) for busy and free
	 * addresses; an address in a lazily freed area is found by a scan of the lazy areas.
	 */
	find(addr: number): AreaInfo | undefined {
		if (!Number.isSafeInteger(addr)) throw new VmapError("EINVAL", `Cannot find: address must be a whole number, got ${shown(addr)}`);
		const t = this.table;
		let va = findVmapArea(t, HDR_BUSY_ROOT, addr);
		if (va === 0) {
			if (addr < this.start || addr >= this.end || findVmapArea(t, HDR_FREE_ROOT, addr) !== 0) return undefined;
			va = findLazyArea(t, addr);
			if (va === 0) return undefined;
		}
		const start = t.f64[va * REC_F64 + VA_START]!;
		const end = t.f64[va * REC_F64 + VA_END]!;
		const tag = t.i32[va * REC_I32 + VA_TAG]!;
		const state = t.i32[va * REC_I32 + VA_FLAGS] === VA_LAZY ? "lazy" : "busy";
		return { start, end, size: end - start, tag: tag === 0 ? undefined : this.tags.name(tag), state };
	}

	/** Validate every structure in O(n); throws VmapError ECORRUPT naming the broken invariant. */
	check(): void {
		checkSpace(this.table, this.start, this.end);
	}

	/** The busy record starting at `addr`, or a thrown EINVAL/ENOENT in the words of `op`. */
	private busyAt(addr: number, op: string): number {
		if (!Number.isSafeInteger(addr)) throw new VmapError("EINVAL", `Cannot ${op}: address must be a whole number, got ${shown(addr)}`);
		const t = this.table;
		const va = findVmapArea(t, HDR_BUSY_ROOT, addr);
		if (va !== 0 && t.f64[va * REC_F64 + VA_START] === addr) return va;
		// The error path: say precisely what lies at the address.
		if (addr < this.start || addr >= this.end) {
			throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: the address is outside the space [${hex(this.start)}, ${hex(this.end)})`);
		}
		const range = (x: number) => `[${hex(t.f64[x * REC_F64 + VA_START]!)}, ${hex(t.f64[x * REC_F64 + VA_END]!)})`;
		if (va !== 0) throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: no area starts there; it lies inside the area ${range(va)}`);
		if (findVmapArea(t, HDR_FREE_ROOT, addr) !== 0) {
			throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: no area starts there; the address is free (never allocated, or already freed and purged)`);
		}
		const lazy = findLazyArea(t, addr);
		if (lazy === 0) return corrupt(`${hex(addr)} is in no busy area, no free block and no lazy area`);
		if (t.f64[lazy * REC_F64 + VA_START] === addr) {
			throw new VmapError("EDOUBLEFREE", `Cannot ${op} ${hex(addr)}: the area ${range(lazy)} is freed already (lazy, waiting for a purge)`);
		}
		throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: no area starts there; it lies inside the area ${range(lazy)}, which is freed already`);
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

function isPowerOfTwo(x: unknown): x is number {
	return typeof x === "number" && Number.isSafeInteger(x) && x > 0 && 2 ** Math.round(Math.log2(x)) === x;
}
