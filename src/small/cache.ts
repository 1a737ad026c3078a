/**
 * The small-area cache of one handle (the kernel's per-CPU vmap_block_queue, vb_alloc and
 * vb_free): requests up to smallMax bytes are carved out of blocks this handle owns, with no
 * lock and no atomic on its own path. The shared layout and its invariants: small-blocks.ts.
 *
 * Lazy free, kept: a freed small area turns DIRTY and is handed out again only after a flush
 * covering its block has completed. The cache batches those flushes: it calls the handle's
 * flush hook over the range of its dirty blocks once they hold flushAt() bytes (at least a
 * block, at most lazyMaxPages, about a quarter of its blocks in between), then the dirty
 * slots turn FREE. A block with no live slot beyond one spare per size class leaves as one
 * area through the ordinary lazy free, so the space's purge flushes it before reuse.
 *
 * Frees from other handles are one Atomics.or on the block's REMOTE bitmap, counted in the
 * owner's handle entry (HANDLE_REMOTE); the owner takes them in before it flushes, looking
 * through its blocks only when that count moved. A block whose owner closed or ended is owned
 * by nobody: each free into it takes it for a moment (CAS on OWNER) to take remote frees in,
 * and the free that empties it retires it.
 *
 * Scale: a flush and its completion visit the blocks on this handle's dirty list, not every
 * block it owns. At a million live small areas of random sizes a handle owns some 35 k
 * blocks and flushes every lazyMaxPages of frees, with about 11 k blocks dirty; walking all
 * of them three times per flush (remote frees, FLUSHING, reclaim) took about a quarter of an
 * operation's time (98 of 400 ns in a CPU profile of that loop).
 */
import type { FlushHook } from "../api/types.ts";
import { hex, VmapError } from "../api/errors.ts";
import {
	HANDLE_REMOTE,
	HANDLE_WORDS,
	HDR_BLOCK_INDEX,
	HDR_DEAD,
	HDR_SMALL_MARK_TAG,
	HDR_FREE_LOCK,
	HDR_SMALL_FLUSHES,
	HDRF_BLOCK_BYTES,
	HDRF_LAZY_MAX_PAGES,
	HDRF_SMALL_MAX,
	N_BUSY_LOCK,
	N_BUSY_ROOT,
	REC_I32,
	VA_SMALL_BLOCK,
} from "../buffer/layout.ts";
import { findVmapArea } from "../tree/busy-tree.ts";
import { setVaFlags, vaFlags } from "../buffer/record.ts";
import {
	BLOCK_ACTIVE,
	BLOCK_TAG,
	bitmap,
	clearAndFree,
	D_AREA,
	D_BITS,
	D_CLASS,
	D_DIRTY_NR,
	D_FREE_NR,
	D_LISTED,
	D_LIVE_NR,
	D_OWNER,
	D_REMOTE_NR,
	D_RUN,
	D_SLOTS,
	D_STATE,
	D_WORDS,
	descriptorRun,
	DF_SLOT_BYTES,
	DF_START,
	DIRTY,
	eachBlock,
	FLUSHING,
	FREE,
	indexInsert,
	indexRemove,
	indexRun,
	LIVE,
	lookupBlock,
	MARK,
	MAX_SLOTS,
	nextIndexCapacity,
	popcount,
	REMOTE,
	sizeClasses,
} from "./blocks.ts";
import type { AreaInfo } from "../api/types.ts";
import type { SpaceState } from "../core/state.ts";
import type { VaTable } from "../buffer/va-table.ts";
import { allocVmapArea } from "../core/alloc.ts";
import { freeBlockArea } from "../core/lazy-free.ts";

/** What find() answers for an address in no block: ask the trees. */
export const NOT_SMALL = null;
/** What free() did. */
export const NOT_IN_BLOCK = 0;
export const FREED = 1;
export const MARKED = 2;
/** Allocations a cache that could not get a block leaves to the ordinary path before it tries again. */
const BACKOFF = 64;

export class SmallCache {
	/** Largest request served, bytes, and in pages; 0 once the handle closed. */
	max: number;
	private maxUnits: number;
	readonly blockBytes: number;
	readonly classBytes: Float64Array;
	private readonly s: SpaceState;
	private readonly t: VaTable;
	private readonly self: number;
	private readonly hook: FlushHook | undefined;
	private readonly blockInverse: number;
	private readonly unitInverse: number;
	/** Size class of a request of u pages, u = 1 .. smallMax / pageSize. */
	private readonly classOf: Uint16Array;
	/** Per class: the block allocations come from (a descriptor's d, 0 none), and the word to look at first. */
	private readonly cur: Int32Array;
	private readonly hint: Int32Array;
	/** Per class: this handle's other blocks that got FREE slots (each once, D_LISTED; one may have none left by now). */
	private readonly avail: number[][];
	/** Every block this handle owns. */
	private readonly mine: number[] = [];
	/**
	 * Blocks with DIRTY slots that the next flush takes: a block joins when its dirty count
	 * leaves 0 (a free, remote frees taken in), or when a completed or failed flush leaves it
	 * some. Invariant: every block of `mine` with DIRTY slots not FLUSHING is on it, once.
	 */
	private dirtyList: number[] = [];
	/** The blocks whose DIRTY slots the flush in flight covers (FLUSHING); empty when none is. */
	private flushing: number[] = [];
	/** Per class: the one empty block kept for reuse (0 none); reclaim retires other empty ones. */
	private readonly spareD: Int32Array;
	/** This handle's HANDLE_REMOTE word, and its value when the blocks were last looked through. */
	private readonly remoteWord: number;
	private remoteSeen: number;
	/** Bytes of this handle's DIRTY slots. */
	dirtyBytes = 0;
	/** The block of this handle's last own free (its start and d): frees come in runs. */
	private lastStart = -1;
	private lastD = 0;
	private inFlight = false;
	private backoff = 0;

	constructor(s: SpaceState, hook: FlushHook | undefined) {
		this.s = s;
		this.t = s.table;
		this.self = s.id;
		this.hook = hook;
		const hdrF = s.table.hdrF;
		this.max = hdrF[HDRF_SMALL_MAX]!;
		this.maxUnits = this.max / s.pageSize;
		this.blockBytes = hdrF[HDRF_BLOCK_BYTES]!;
		this.blockInverse = 1 / this.blockBytes;
		this.unitInverse = s.pageInverse;
		const classes = sizeClasses(this.max, this.blockBytes, s.pageSize);
		this.classBytes = Float64Array.from(classes);
		const units = this.max / s.pageSize;
		this.classOf = new Uint16Array(units + 1);
		for (let u = 1, c = 0; u <= units; u++) {
			while (classes[c]! < u * s.pageSize) c++;
			this.classOf[u] = c;
		}
		this.cur = new Int32Array(classes.length);
		this.hint = new Int32Array(classes.length);
		this.avail = classes.map(() => []);
		this.spareD = new Int32Array(classes.length);
		// No block is this handle's yet, so no remote free into one was counted before this.
		this.remoteWord = (s.id - 1) * HANDLE_WORDS + HANDLE_REMOTE;
		this.remoteSeen = Atomics.load(s.table.handles, this.remoteWord);
	}

	/**
	 * A small area of at least `size` bytes from this handle's blocks, or -1 when the request
	 * is not small (or not a valid size: the ordinary path says why) or no block can be had.
	 */
	alloc(size: number): number {
		const units = typeof size === "number" ? size * this.unitInverse : NaN;
		// A space left unusable (EOWNERDEAD) or a closed handle: the ordinary path says so.
		if (!(units >= 1 && units <= this.maxUnits && Math.floor(units) === units) || this.t.hdr[HDR_DEAD] !== 0) return -1;
		const c = this.classOf[units]!;
		for (;;) {
			const d = this.cur[c]!;
			if (d !== 0) {
				const i32 = this.t.i32;
				const words = i32[d + D_WORDS]!;
				const free = d + 16 + FREE * words; // bitmap(d, words, FREE)
				for (let w = this.hint[c]!; w < words; w++) {
					const m = i32[free + w]!;
					if (m === 0) continue;
					const bit = m & -m;
					i32[free + w] = m ^ bit;
					i32[d + 16 + w]! |= bit; // LIVE
					i32[d + D_LIVE_NR]!++;
					i32[d + D_FREE_NR]!--;
					this.hint[c] = w;
					return this.t.f64[(d >> 1) + DF_START]! + ((w << 5) + 31 - Math.clz32(bit)) * this.classBytes[c]!;
				}
			}
			if (!this.refill(c)) return -1;
		}
	}

	/**
	 * Free the small area starting at `addr`, in the words of `op`: NOT_IN_BLOCK when `addr` is
	 * in no block (the ordinary path's), FREED, or MARKED (nothing done) when the area carries
	 * the small-area mark and `keepMarked`. Throws ENOENT or EDOUBLEFREE, changing nothing, for
	 * an address in a block that starts no live small area.
	 */
	free(addr: number, op = "free", keepMarked = false): number {
		const d = this.block(addr);
		if (d === 0) return NOT_IN_BLOCK;
		const t = this.t;
		const i32 = t.i32;
		const blockStart = t.f64[(d >> 1) + DF_START]!;
		const slot = (addr - blockStart) / t.f64[(d >> 1) + DF_SLOT_BYTES]!;
		if (!(Math.floor(slot) === slot && slot < i32[d + D_SLOTS]!)) return this.badFree(d, addr, op);
		const w = slot >> 5;
		const bit = 1 << (slot & 31);
		const words = i32[d + D_WORDS]!;
		const live = d + 16 + w;
		if ((i32[live]! & bit) === 0 || (i32[d + 16 + REMOTE * words + w]! & bit) !== 0) return this.badFree(d, addr, op);
		if ((i32[d + 16 + MARK * words + w]! & bit) !== 0) {
			if (keepMarked) return MARKED;
			Atomics.and(i32, d + 16 + MARK * words + w, ~bit); // others set marks in this word too
		}
		if (i32[d + D_OWNER] === this.self) {
			this.lastStart = blockStart;
			this.lastD = d;
			i32[live] = i32[live]! ^ bit;
			i32[d + 16 + words + w]! |= bit; // DIRTY
			i32[d + D_LIVE_NR]!--;
			const dirty = i32[d + D_DIRTY_NR]!;
			i32[d + D_DIRTY_NR] = dirty + 1;
			if (dirty === 0) this.dirtyList.push(d);
			this.dirtyBytes += t.f64[(d >> 1) + DF_SLOT_BYTES]!;
			return FREED;
		}
		return this.remoteFree(d, addr, d + 16 + REMOTE * words + w, bit, op);
	}

	/**
	 * A free into another handle's block (or nobody's): an atomic OR, counted in the block and
	 * in its owner's handle entry; the owner takes it in at its next flush. The count goes up
	 * after the bit is set, so an owner that reads the count before it looks through its blocks
	 * sees the bit then or the count moved at its next flush.
	 */
	private remoteFree(d: number, addr: number, remote: number, bit: number, op: string): number {
		const t = this.t;
		const i32 = t.i32;
		if ((Atomics.or(i32, remote, bit) & bit) !== 0) return this.badFree(d, addr, op);
		Atomics.add(i32, d + D_REMOTE_NR, 1);
		const owner = Atomics.load(i32, d + D_OWNER);
		if (owner === 0) this.adopt(d);
		else Atomics.add(t.handles, (owner - 1) * HANDLE_WORDS + HANDLE_REMOTE, 1);
		return FREED;
	}

	/**
	 * Set (`on`) or clear the mark of the live small area starting at `addr`: true when that
	 * changed it, false when it was so already or no live small area starts there, undefined
	 * when `addr` is in no block.
	 */
	mark(addr: number, on: boolean): boolean | undefined {
		const d = this.block(addr);
		if (d === 0) return undefined;
		const at = this.slotAt(d, addr);
		if (at.start !== addr || at.state !== "busy") return false;
		const i32 = this.t.i32;
		const slot = (addr - at.blockStart) / this.t.f64[(d >> 1) + DF_SLOT_BYTES]!;
		const word = bitmap(d, i32[d + D_WORDS]!, MARK) + (slot >> 5);
		const bit = 1 << (slot & 31);
		const old = on ? Atomics.or(i32, word, bit) : Atomics.and(i32, word, ~bit);
		return ((old & bit) !== 0) !== on;
	}

	/** The bytes a small request of `size` takes (its class), or `size` when it is not small. */
	sizeFor(size: number): number {
		const units = size * this.unitInverse;
		return units >= 1 && units <= this.maxUnits && Math.floor(units) === units ? this.classBytes[this.classOf[units]!]! : size;
	}

	/** The descriptor of the block holding `addr`, or 0; without a lock. */
	private block(addr: number): number {
		if (typeof addr !== "number" || this.t.hdr[HDR_DEAD] !== 0) return 0;
		const blockStart = Math.floor(addr * this.blockInverse) * this.blockBytes;
		if (blockStart === this.lastStart) return this.lastD;
		const t = this.t;
		let first = t.hdr[HDR_BLOCK_INDEX]!;
		if (first === 0 || this.max === 0) return 0;
		t.sync(); // another handle's block may lie in records this handle's views do not cover yet
		let d = lookupBlock(t, first, blockStart, this.blockInverse);
		if (d === 0) {
			// A plain read may see an index another handle replaced: look again after a fence.
			first = Atomics.load(t.hdr, HDR_BLOCK_INDEX);
			t.sync();
			d = lookupBlock(t, first, blockStart, this.blockInverse);
		}
		return d;
	}

	/**
	 * find() of an address in a block: the small area holding it (busy, or lazy: freed and not
	 * yet flushed), undefined for a free slot, NOT_SMALL outside every block.
	 */
	find(addr: number): AreaInfo | undefined | typeof NOT_SMALL {
		const d = this.block(addr);
		if (d === 0) return NOT_SMALL;
		const at = this.slotAt(d, addr);
		if (at.state === "free" || at.state === "tail") return undefined;
		const markTag = this.t.hdr[HDR_SMALL_MARK_TAG]!;
		const tag = at.marked && markTag !== 0 ? this.s.tags.name(markTag) : undefined;
		return { start: at.start, end: at.end, size: at.end - at.start, tag, state: at.state };
	}

	/**
	 * resize() of a small area: in place within its size class (true), never beyond (false).
	 * Undefined when `addr` is in no block.
	 */
	resize(addr: number, size: number): boolean | undefined {
		const d = this.block(addr);
		if (d === 0) return undefined;
		const at = this.slotAt(d, addr);
		if (at.start !== addr || at.state !== "busy") return this.badFree(d, addr, "resize");
		return size <= at.end - at.start;
	}

	/** What lies at `addr` in block `d` (plain reads: another handle may be changing it). */
	private slotAt(d: number, addr: number): { start: number; end: number; state: "busy" | "lazy" | "free" | "tail"; blockStart: number; marked: boolean } {
		const t = this.t;
		const i32 = t.i32;
		const blockStart = t.f64[(d >> 1) + DF_START]!;
		const bytes = t.f64[(d >> 1) + DF_SLOT_BYTES]!;
		const slot = Math.floor((addr - blockStart) / bytes);
		const start = blockStart + slot * bytes;
		if (slot >= i32[d + D_SLOTS]!) return { start: blockStart + slot * bytes, end: blockStart + this.blockBytes, state: "tail", blockStart, marked: false };
		const words = i32[d + D_WORDS]!;
		const w = d + D_BITS + (slot >> 5);
		const bit = 1 << (slot & 31);
		const state = ((i32[w + REMOTE * words]! | i32[w + DIRTY * words]!) & bit) !== 0 ? "lazy" : (i32[w + LIVE * words]! & bit) !== 0 ? "busy" : "free";
		return { start, end: start + bytes, state, blockStart, marked: (i32[w + MARK * words]! & bit) !== 0 };
	}

	/** The error for an address in block `d` that starts no live small area. */
	private badFree(d: number, addr: number, op: string): never {
		const at = this.slotAt(d, addr);
		const block = `[${hex(at.blockStart)}, ${hex(at.blockStart + this.blockBytes)})`;
		const range = `[${hex(at.start)}, ${hex(at.end)})`;
		if (at.state === "tail") throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: no area starts there; it lies in the unused end of the small-area block ${block}`);
		if (at.start !== addr) {
			throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: no area starts there; it lies inside the small area ${range}${at.state === "lazy" ? ", which is freed already" : at.state === "free" ? ", which is free" : ""}`);
		}
		if (at.state === "lazy") throw new VmapError("EDOUBLEFREE", `Cannot ${op} ${hex(addr)}: the small area ${range} is freed already (lazy, waiting for a flush)`);
		if (at.state === "free") throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: no area starts there; the small area ${range} of block ${block} is free`);
		throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: no area started there when the call looked (another worker allocated ${range} since)`);
	}

	/**
	 * Class `c` has no FREE slot in its current block: take another block of the class that
	 * has some, flushing first when the dirty bytes are due, or a new block. False when none
	 * can be had (the request then goes to the ordinary path).
	 */
	private refill(c: number): boolean {
		if (this.max === 0 || this.t.hdr[HDR_DEAD] !== 0) return false;
		this.cur[c] = 0;
		for (let round = 0; round < 2; round++) {
			const list = this.avail[c]!;
			const i32 = this.t.i32;
			while (list.length > 0) {
				const d = list.pop()!;
				i32[d + D_LISTED] = 0;
				if (i32[d + D_FREE_NR]! > 0) {
					this.cur[c] = d;
					this.hint[c] = 0;
					return true;
				}
			}
			if (round === 0 && this.dirtyBytes >= this.flushAt() && !this.inFlight) {
				this.flush();
				continue;
			}
			if (this.backoff > 0) {
				this.backoff--;
				return false;
			}
			const d = this.newBlock(c);
			if (d !== 0) {
				this.cur[c] = d;
				this.hint[c] = 0;
				return true;
			}
			// No room for a block: what this handle's flush frees may be.
			if (round === 0 && this.dirtyBytes > 0 && !this.inFlight) {
				this.flush();
				continue;
			}
			this.backoff = BACKOFF;
			return false;
		}
		return false;
	}

	/** Dirty bytes that make a flush due: a quarter of this handle's blocks, at least one block, at most lazyMaxPages. */
	private flushAt(): number {
		const lazyMax = this.t.hdrF[HDRF_LAZY_MAX_PAGES]! * this.s.pageSize;
		return Math.max(this.blockBytes, Math.min(lazyMax, (this.mine.length * this.blockBytes) / 4));
	}

	/** A new block of class `c`, owned by this handle, or 0 when the space has no room for one. */
	private newBlock(c: number): number {
		const s = this.s;
		const t = this.t;
		const bytes = this.classBytes[c]!;
		const slots = Math.min(MAX_SLOTS, Math.floor(this.blockBytes / bytes));
		const words = Math.ceil(slots / 32);
		let addr: number;
		try {
			addr = allocVmapArea(s, this.blockBytes, { align: this.blockBytes, tag: BLOCK_TAG, nowait: true }, false);
		} catch (e) {
			if (e instanceof VmapError && (e.code === "EBUSY" || e.code === "ENOMEM")) return 0;
			throw e;
		}
		const locks = s.locks;
		const run = descriptorRun(slots);
		// The block index's lock, then the area's busy lock, both before anything changes; a
		// failure gives the area back.
		locks.acquire(HDR_FREE_LOCK);
		try {
			t.reserveRun(run + indexRun(nextIndexCapacity(t)));
		} catch (e) {
			locks.release(HDR_FREE_LOCK);
			freeBlockArea(s, addr, () => {});
			if (e instanceof VmapError && e.code === "ENOMEM") return 0;
			throw e;
		}
		const b = s.busyNode(addr);
		try {
			locks.acquireUnder(b + N_BUSY_LOCK, HDR_FREE_LOCK); // a wait that fails releases both
		} catch (e) {
			freeBlockArea(s, addr, () => {});
			throw e;
		}
		t.sync();
		const va = findVmapArea(t, b + N_BUSY_ROOT, addr);
		const d = t.takeRun(run) * REC_I32;
		const i32 = t.i32;
		const f64 = t.f64;
		i32[d + D_OWNER] = this.self;
		i32[d + D_CLASS] = c;
		i32[d + D_SLOTS] = slots;
		i32[d + D_WORDS] = words;
		i32[d + D_AREA] = va;
		i32[d + D_RUN] = run;
		i32[d + D_LISTED] = 0;
		i32[d + D_FREE_NR] = slots;
		f64[(d >> 1) + DF_START] = addr;
		f64[(d >> 1) + DF_SLOT_BYTES] = bytes;
		const free = bitmap(d, words, FREE);
		for (let w = 0; w < words; w++) i32[free + w] = slots - 32 * w >= 32 ? -1 : (1 << (slots - 32 * w)) - 1;
		i32[d + D_STATE] = BLOCK_ACTIVE;
		setVaFlags(i32, va, vaFlags(i32, va) | VA_SMALL_BLOCK);
		indexInsert(t, d, this.blockInverse);
		locks.release(b + N_BUSY_LOCK);
		locks.release(HDR_FREE_LOCK);
		this.mine.push(d);
		return d;
	}

	/**
	 * Flush this handle's dirty slots: take remote frees in, mark every DIRTY slot FLUSHING,
	 * call the flush hook once over the range of the blocks holding them, and when it has
	 * completed turn them FREE. An asynchronous hook leaves them FLUSHING until it settles; one
	 * that throws or rejects leaves them DIRTY for the next flush. At most one flush is in
	 * flight per handle.
	 */
	flush(): void {
		if (this.inFlight || this.max === 0) return;
		this.takeRemoteFrees();
		if (this.dirtyBytes === 0) return;
		const t = this.t;
		const i32 = t.i32;
		let lo = Infinity;
		let hi = -Infinity;
		// The dirty list becomes the flushing list (empty: no flush is in flight).
		const flushing = this.dirtyList;
		this.dirtyList = this.flushing;
		this.flushing = flushing;
		for (const d of flushing) {
			const words = i32[d + D_WORDS]!;
			i32.copyWithin(bitmap(d, words, FLUSHING), bitmap(d, words, DIRTY), bitmap(d, words, DIRTY) + words);
			const start = t.f64[(d >> 1) + DF_START]!;
			if (start < lo) lo = start;
			if (start + this.blockBytes > hi) hi = start + this.blockBytes;
		}
		Atomics.add(t.hdr, HDR_SMALL_FLUSHES, 1);
		let pending: void | PromiseLike<void>;
		this.inFlight = true; // a hook that allocates does not flush again from inside
		try {
			pending = this.hook?.(lo, hi);
		} catch {
			this.inFlight = false;
			this.unflush(); // the slots stay dirty: the next flush covers them
			return;
		}
		this.inFlight = false;
		if (pending !== null && typeof pending === "object" && typeof pending.then === "function") {
			this.inFlight = true;
			pending.then(
				() => {
					this.inFlight = false;
					if (this.max !== 0) this.reclaim();
				},
				() => {
					this.inFlight = false;
					if (this.max !== 0) this.unflush();
				},
			);
			return;
		}
		this.reclaim();
	}

	/** The flush failed: FLUSHING slots are plain DIRTY again, their blocks on the dirty list. */
	private unflush(): void {
		const i32 = this.t.i32;
		for (const d of this.flushing) {
			const words = i32[d + D_WORDS]!;
			i32.fill(0, bitmap(d, words, FLUSHING), bitmap(d, words, FLUSHING) + words);
			this.dirtyList.push(d);
		}
		this.flushing.length = 0;
	}

	/**
	 * The flush completed: FLUSHING slots turn FREE; a block that it left empty is kept as its
	 * class's spare or, when the class has one, retires. A block dirtied again meanwhile goes
	 * back on the dirty list. Only a completed flush empties a block (a free leaves its slot
	 * DIRTY), so the blocks it covered are the only new candidates.
	 */
	private reclaim(): void {
		const t = this.t;
		const i32 = t.i32;
		const retire: number[] = [];
		for (const d of this.flushing) {
			const words = i32[d + D_WORDS]!;
			const fl = bitmap(d, words, FLUSHING);
			const dirty = bitmap(d, words, DIRTY);
			const free = bitmap(d, words, FREE);
			let n = 0;
			for (let w = 0; w < words; w++) {
				const f = i32[fl + w]!;
				if (f === 0) continue;
				i32[free + w]! |= f;
				i32[dirty + w]! &= ~f;
				i32[fl + w] = 0;
				n += popcount(f);
			}
			const c = i32[d + D_CLASS]!;
			if (n !== 0) {
				i32[d + D_DIRTY_NR]! -= n;
				i32[d + D_FREE_NR]! += n;
				this.dirtyBytes -= n * t.f64[(d >> 1) + DF_SLOT_BYTES]!;
				if (d === this.cur[c]) this.hint[c] = 0; // the freed slots may lie below the word it looked at last
				else if (i32[d + D_LISTED] === 0) {
					// Listed once: a block that gets FREE slots at every flush would otherwise pile up in
					// the list (measured: 123 k entries for 35 k blocks after 8 M operations, growing).
					i32[d + D_LISTED] = 1;
					this.avail[c]!.push(d);
				}
			}
			if (i32[d + D_DIRTY_NR] !== 0) this.dirtyList.push(d);
			else if (i32[d + D_LIVE_NR] === 0 && d !== this.cur[c]) {
				if (this.isSpare(this.spareD[c]!, c) && this.spareD[c] !== d) retire.push(d);
				else this.spareD[c] = d;
			}
		}
		this.flushing.length = 0;
		for (const d of retire) this.retire(d);
	}

	/** Whether block `d` (0: none) is an empty block of class `c` kept aside: not current, nothing live or dirty. */
	private isSpare(d: number, c: number): boolean {
		const i32 = this.t.i32;
		return d !== 0 && d !== this.cur[c] && i32[d + D_LIVE_NR] === 0 && i32[d + D_DIRTY_NR] === 0;
	}

	/** Take the frees other handles made into this handle's blocks into DIRTY (none counted since the last look: nothing to do). */
	private takeRemoteFrees(): void {
		const t = this.t;
		const seen = Atomics.load(t.handles, this.remoteWord);
		if (seen === this.remoteSeen) return;
		this.remoteSeen = seen;
		for (const d of this.mine) {
			if (Atomics.load(t.i32, d + D_REMOTE_NR) === 0) continue;
			const clean = t.i32[d + D_DIRTY_NR] === 0;
			this.dirtyBytes += this.takeRemote(d);
			if (clean && t.i32[d + D_DIRTY_NR] !== 0) this.dirtyList.push(d);
		}
	}

	/** Block `d`'s remote frees, into DIRTY, by its owner of the moment; returns their bytes. */
	private takeRemote(d: number): number {
		const i32 = this.t.i32;
		const words = i32[d + D_WORDS]!;
		const remote = bitmap(d, words, REMOTE);
		const live = bitmap(d, words, LIVE);
		const dirty = bitmap(d, words, DIRTY);
		let n = 0;
		for (let w = 0; w < words; w++) {
			if (Atomics.load(i32, remote + w) === 0) continue;
			const r = Atomics.exchange(i32, remote + w, 0);
			i32[live + w]! &= ~r;
			i32[dirty + w]! |= r;
			n += popcount(r);
		}
		if (n === 0) return 0;
		Atomics.sub(i32, d + D_REMOTE_NR, n);
		i32[d + D_LIVE_NR]! -= n;
		i32[d + D_DIRTY_NR]! += n;
		return n * this.t.f64[(d >> 1) + DF_SLOT_BYTES]!;
	}

	/**
	 * Block `d` is owned by nobody and a free went into it: own it for the moment, take the
	 * remote frees in, retire it if nothing in it is live, else give it back. A free that lands
	 * while another handle holds it is seen by that handle's second look, or takes it after.
	 */
	private adopt(d: number): void {
		for (;;) {
			const i32 = this.t.i32;
			if (Atomics.compareExchange(i32, d + D_OWNER, 0, this.self) !== 0) return;
			this.takeRemote(d);
			if (i32[d + D_LIVE_NR] === 0) {
				this.retire(d);
				return;
			}
			Atomics.store(this.t.i32, d + D_OWNER, 0);
			if (Atomics.load(this.t.i32, d + D_REMOTE_NR) === 0) return;
		}
	}

	/**
	 * Block `d`, owned by this handle and with nothing live, leaves: out of the index, and its
	 * area freed lazily as one, so that the ordinary purge flushes its dirty slots.
	 */
	private retire(d: number): void {
		const t = this.t;
		const start = t.f64[(d >> 1) + DF_START]!;
		const c = t.i32[d + D_CLASS]!;
		freeBlockArea(this.s, start, () => {
			indexRemove(t, d, this.blockInverse);
			const first = d / REC_I32;
			const run = t.i32[d + D_RUN]!;
			for (let r = 0; r < run; r++) clearAndFree(t, first + r);
		});
		// Out of every list of this handle's: its records now serve others.
		const list = this.avail[c];
		if (list !== undefined) for (let i = list.indexOf(d); i >= 0; i = list.indexOf(d)) list.splice(i, 1);
		const k = this.mine.indexOf(d);
		if (k >= 0) {
			this.mine[k] = this.mine[this.mine.length - 1]!;
			this.mine.pop();
		}
		if (this.cur[c] === d) this.cur[c] = 0;
		if (this.spareD[c] === d) this.spareD[c] = 0;
		if (this.lastD === d) this.lastStart = -1;
	}

	/**
	 * close(): the cache stops; its empty blocks retire and the others are owned by nobody
	 * (their live small areas stay valid, and the free that empties one retires it).
	 */
	handOver(): void {
		if (this.max === 0) return;
		this.max = this.maxUnits = 0;
		this.lastStart = -1;
		this.cur.fill(0);
		this.spareD.fill(0);
		this.dirtyList.length = 0;
		this.flushing.length = 0;
		for (const list of this.avail) list.length = 0;
		const blocks = this.mine.splice(0);
		let failed: unknown;
		for (const d of blocks) {
			this.takeRemote(d);
			const i32 = this.t.i32;
			i32[d + D_LISTED] = 0; // on no list now
			if (i32[d + D_LIVE_NR] === 0) {
				try {
					this.mine.push(d);
					this.retire(d);
					continue;
				} catch (e) {
					failed ??= e;
				}
			}
			Atomics.store(this.t.i32, d + D_OWNER, 0);
			if (Atomics.load(this.t.i32, d + D_REMOTE_NR) !== 0) this.adopt(d);
		}
		this.mine.length = 0;
		if (failed !== undefined) throw failed;
	}

	/** Handle `id` ended without close(): its blocks are owned by nobody from now on. */
	ended(id: number): void {
		const t = this.t;
		const orphans: number[] = [];
		this.s.locks.acquire(HDR_FREE_LOCK);
		try {
			t.sync();
			eachBlock(t, (d) => {
				if (Atomics.compareExchange(t.i32, d + D_OWNER, id, 0) === id) orphans.push(d);
			});
		} finally {
			this.s.locks.release(HDR_FREE_LOCK);
		}
		for (const d of orphans) if (this.max !== 0) this.adopt(d);
	}
}
