/**
 * The heap's areas: vmalloc (a small request from this handle's small-area blocks, else an
 * ordinary area, with the heap's overflow handling), vrealloc (in place, else by moving) and
 * the queueing of deferred frees.
 * Every area gets `guardPages` unused pages after its end, and its bytes committed (and, with
 * poisoning, checked) before its address is returned.
 */
import type { AllocOptions } from "../api/types.ts";
import type { VmallocOptions } from "../api/heap-types.ts";
import { hex, shown, VmapError } from "../api/errors.ts";
import { canWait } from "../buffer/lock.ts";
import type { SpaceExtension } from "../core/extension.ts";
import { validateAlign, validateNowait, validateOptions, validateTag } from "../core/options.ts";
import type { VmapSpace } from "../space/space.ts";
import { DEFERRED_TAG, liveArea, VMALLOC_TAG } from "./access.ts";
import { H_RING_CAP, POISON_BYTE } from "./layout.ts";
import { VM_MAP_RAM } from "./map-ram.ts";
import type { HeapMemory } from "./memory.ts";
import { MAX_DATA } from "./options.ts";
import type { GracePeriods } from "./rcu.ts";

/** How long an allocation that found no room waits for deferred frees' grace period. */
const OVERFLOW_GP_MS = 1000;
/** How long it then waits for other handles' frees of such areas to finish. */
const BARRIER_MS = 50;

const VMALLOC_KEYS = ["tag", "align", "nowait"];

/** What the areas need of their heap. */
export interface HeapParts {
	space: VmapSpace;
	ext: SpaceExtension;
	memory: HeapMemory;
	rcu: GracePeriods;
	guardPages: number;
	/** Wait for a grace period, at most `ms`, and free what it released (VmapHeap.synchronize). */
	synchronize: (ms: number) => void;
}

export class HeapAreas {
	readonly space: VmapSpace;
	readonly pageSize: number;
	readonly guardPages: number;
	readonly maxSize: number;
	readonly poison: boolean;
	readonly #ext: SpaceExtension;
	readonly #memory: HeapMemory;
	readonly #rcu: GracePeriods;
	readonly #synchronize: (ms: number) => void;
	/** vmalloc()'s options to the space in the common case: no object made per call. */
	readonly #plainOptions: AllocOptions = { tag: VMALLOC_TAG };
	#vmallocTag = 0;

	constructor(p: HeapParts) {
		this.space = p.space;
		this.pageSize = p.space.pageSize;
		this.guardPages = p.guardPages;
		this.maxSize = p.space.end;
		this.poison = p.memory.poison;
		this.#ext = p.ext;
		this.#memory = p.memory;
		this.#rcu = p.rcu;
		this.#synchronize = p.synchronize;
	}

	/** vmalloc() and vzalloc() (`zero`), in the words of `op`; the caller has entered the heap. */
	alloc(bytes: number, options: VmallocOptions | undefined, zero: boolean, op: string): number {
		const pages = this.pagesFor(bytes, op);
		const opts = options === undefined ? this.#plainOptions : this.#allocOptions(options, op);
		let size = (pages + this.guardPages) * this.pageSize;
		// Without poisoning, a request the space's cache serves (at most smallMax bytes, align at
		// most pageSize: space.alloc's rule) comes from this handle's small-area blocks of its
		// tag, with no lock: the area is its size class, guard pages included at its end.
		let addr = -1;
		if (!this.poison)
			addr = options === undefined ? this.#ext.allocSmall(size, this.#plainTag()) : this.#ext.allocSmallWith(size, opts);
		if (addr >= 0) size = this.#ext.smallSize(size);
		else addr = this.#allocOrdinary(size, opts, op, bytes);
		try {
			this.#memory.commit(addr + size);
		} catch (e) {
			this.space.free(addr);
			throw e;
		}
		this.#memory.handOutArea(addr, size, op);
		if (zero) this.#memory.u8.fill(0, addr, addr + size - this.guardPages * this.pageSize);
		return addr;
	}

	/** The tag index of VMALLOC_TAG, interned at the first small vmalloc() without options (every vmalloc area carries a tag). */
	#plainTag(): number {
		if (this.#vmallocTag === 0) this.#vmallocTag = this.#ext.tagIndex(VMALLOC_TAG);
		return this.#vmallocTag;
	}

	/** The space's options for vmalloc's `options` (checked: EINVAL in the words of `op`). */
	#allocOptions(options: VmallocOptions, op: string): AllocOptions {
		const cannot = `Cannot ${op}`;
		validateOptions(options, VMALLOC_KEYS, cannot);
		const opts: AllocOptions = { tag: VMALLOC_TAG };
		if (options.align !== undefined) {
			validateAlign(options.align, cannot);
			opts.align = options.align;
		}
		if (options.tag !== undefined) {
			validateTag(options.tag, cannot);
			if (options.tag === VM_MAP_RAM || options.tag === DEFERRED_TAG)
				throw new VmapError("EINVAL", `${cannot}: the tag ${JSON.stringify(options.tag)} is the heap's own`);
			opts.tag = options.tag;
		}
		if (options.nowait !== undefined) {
			validateNowait(options.nowait, cannot);
			if (options.nowait) opts.nowait = true;
		}
		return opts;
	}

	/** space.alloc() with the heap's overflow handling: EBUSY after the space's purge waits for grace periods and retries once. */
	#allocOrdinary(size: number, opts: AllocOptions, op: string, bytes: number): number {
		try {
			return this.space.alloc(size, opts);
		} catch (e) {
			// Nothing fits even after the space's purge: areas waiting for a grace period, or
			// being freed after one by another handle right now, may be what is missing. Where
			// this thread may block, wait for both (the grace period bounded), then retry once.
			if (!(e instanceof VmapError) || e.code !== "EBUSY") throw e;
			if (!canWait || opts.nowait === true) throw this.#full(e, op, bytes, "");
			if (this.#rcu.pending() > 0) {
				try {
					this.#synchronize(OVERFLOW_GP_MS);
				} catch (w) {
					if (w instanceof VmapError && w.code === "ETIMEDOUT")
						throw this.#full(e, op, bytes, `; ${this.#rcu.pending()} areas wait for a grace period: ${w.detail}`);
					throw w;
				}
			}
			this.#rcu.barrier(BARRIER_MS); // areas other handles took off the ring are back in the space
			try {
				return this.space.alloc(size, opts);
			} catch (again) {
				if (again instanceof VmapError && again.code === "EBUSY") throw this.#full(again, op, bytes, "");
				throw again;
			}
		}
	}

	/** The heap is full for a request of `bytes`: say so in the heap's words, with the space's EBUSY as the cause. */
	#full(e: VmapError, op: string, bytes: number, more: string): VmapError {
		const s = this.space.stats();
		return new VmapError(
			"EBUSY",
			`Cannot ${op} ${bytes} bytes: nothing fits in the heap's maxSize of ${this.maxSize} bytes (busy ${s.busyBytes}, freed and not yet purged ${s.lazyBytes}, largest free block ${s.largestFreeBlock}, each area with ${this.guardPages} guard page(s))${more}. Free more, or create the heap with a larger maxSize (at most ${MAX_DATA}). The space said: ${e.detail}`,
			{ cause: e },
		);
	}

	/**
	 * Resize the area at `addr` to `bytes`, keeping its contents up to the smaller size: in
	 * place when it shrinks or the range after it is free, otherwise by moving (allocate, copy,
	 * free). Returns the area's address. The added bytes are not zeroed. vrealloc(addr, 0)
	 * frees and returns 0 (as the kernel's); the caller has entered the heap, and handles addr 0.
	 */
	realloc(addr: number, bytes: number): number {
		const area = liveArea(this.space, addr, "vrealloc");
		if (bytes === 0) {
			this.#memory.release(addr);
			return 0;
		}
		const pages = this.pagesFor(bytes, "vrealloc");
		const P = this.pageSize;
		const guard = this.guardPages * P;
		const oldUsable = area.end - area.start - guard;
		const size = pages * P + guard;
		if (size === area.end - area.start) return addr;
		const grows = size > area.end - area.start;
		// With poisoning, a shrink's tail is poisoned before the resize frees it (once freed,
		// another worker's purge may hand it out); its bytes are kept to restore if the resize
		// fails, so that a failed call loses nothing.
		let tail: Uint8Array | undefined;
		if (this.poison) {
			const bad = grows ? this.#memory.firstUnpoisoned(area.end - guard, area.end) : -1;
			if (bad >= 0)
				throw new VmapError(
					"EFAULT",
					`vrealloc ${hex(addr)}: its guard page was written at ${hex(bad)} (a write past the end of [${hex(addr)}, ${hex(area.end - guard)}))`,
				);
			if (!grows) {
				tail = this.#memory.u8.slice(addr + pages * P, area.end);
				this.#memory.u8.fill(POISON_BYTE, addr + pages * P, area.end);
			}
		}
		let resized: boolean;
		try {
			resized = this.space.resize(addr, size);
		} catch (e) {
			if (tail !== undefined) this.#memory.u8.set(tail, addr + pages * P);
			throw e;
		}
		if (resized) {
			if (grows) {
				this.#memory.commit(addr + size);
				this.#memory.handOutTail(area.end, addr + size - area.end, "vrealloc");
			}
			return addr;
		}
		const to = this.alloc(bytes, area.tag === undefined ? undefined : { tag: area.tag }, false, "vrealloc");
		const kept = Math.min(oldUsable, pages * P);
		this.#memory.u8.copyWithin(to, addr, addr + kept);
		try {
			this.#memory.release(addr);
		} catch (e) {
			if (!(e instanceof VmapError) || e.code === "EFAULT") throw e; // the old area was freed (its guard was written)
			// The old area stays (its free timed out after poisoning it): its bytes come back, the new area goes.
			this.#memory.u8.copyWithin(addr, to, to + kept);
			this.#memory.release(to);
			throw e;
		}
		return to;
	}

	/**
	 * Queue the live area at `addr` for a free after a grace period (VmapHeap.freeDeferred): it
	 * is marked `deferredTag` first, so that vfree() refuses it; with the queue full, wait for a
	 * grace period, or EBUSY with `nowait` or where this thread may not block. A failure leaves
	 * the area live, as it was.
	 */
	freeDeferred(addr: number, nowait: boolean, deferredTag: number): void {
		liveArea(this.space, addr, "freeDeferred"); // EINVAL, ENOENT, EDOUBLEFREE before anything
		const cap = this.#ext.words[this.#ext.base + H_RING_CAP]!;
		const full = () =>
			new VmapError("EBUSY", `Cannot freeDeferred ${hex(addr)}: ${cap} areas already wait for a grace period (deferredMax)`);
		for (;;) {
			const queued = this.#rcu.enqueue(addr, () => this.#ext.markArea(addr, deferredTag));
			if (queued === "queued") return;
			if (queued === "marked") throw new VmapError("EDOUBLEFREE", `Cannot freeDeferred ${hex(addr)}: another call queued it first`);
			if (nowait || !canWait) throw full(); // nothing changed: the area is live, as it was
			this.#synchronize(Infinity);
		}
	}

	/** Whole pages for `bytes`, or EINVAL in the words of `op`. */
	pagesFor(bytes: number, op: string): number {
		if (!Number.isSafeInteger(bytes) || bytes < 1 || bytes > this.maxSize) {
			const what = typeof bytes === "number" ? shown(bytes) : `${typeof bytes} ${shown(bytes)}`;
			throw new VmapError("EINVAL", `Cannot ${op}: bytes must be a whole number from 1 to maxSize ${this.maxSize}, got ${what}`);
		}
		return Math.ceil(bytes / this.pageSize);
	}
}
