/**
 * The heap layer (src/heap/): VmapHeap, bytes at the addresses of a space, built on the space
 * through its extension port (core/extension.ts): its areas (areas.ts), memory (memory.ts),
 * grace periods (rcu.ts), vm_map_ram blocks (map-ram.ts), shared words (layout.ts). It may
 * import space/, core/ and the layers below.
 *
 * VmapHeap: a space that hands out bytes. The space manages addresses; a data
 * SharedArrayBuffer holds the bytes at those addresses (address = byte offset), so an address
 * posted to another worker names the same bytes there. Page 0 is never handed out: 0 stays
 * free to mean "no address" in shared structures.
 *
 * - vmalloc areas carry `guardPages` unused pages after their end (kernel: one guard page
 *   unless VM_NO_GUARD); bytes() and view() never reach into them.
 * - vm_map_ram mappings of up to VMAP_MAX_ALLOC pages come from per-handle blocks (heap/map-ram.ts);
 *   larger ones are areas of their own.
 * - Deferred frees wait for a grace period (rcu.ts).
 * - The data buffer grows (up to maxSize) when an area lands beyond it; growth and poisoning of
 *   new bytes happen under the heap's grow lock, and H_COMMITTED is published after them.
 *
 * Quiescent points: every call that allocates or frees (vmalloc, vzalloc, vrealloc, vfree,
 * freeDeferred, vmMapRam, vmUnmapRam, synchronize, purge), quiescent(), and the end of a turn
 * of the event loop (read-side.ts). bytes() and view() are not: they reach inside a section.
 */
import type { AttachOptions, ExitedOptions, PurgeOptions, PurgeResult, WatchedWorker, WatchOptions } from "../api/types.ts";
import { Blocks, VM_MAP_RAM } from "./map-ram.ts";
import { hex, shown, VmapError } from "../api/errors.ts";
import {
	blocksOffset,
	H_DEFERRED,
	H_FREED_DEFERRED,
	H_GP,
	H_GROW_LOCK,
	H_GUARD,
	H_BLOCK_PAGES,
	H_NR_BLOCKS,
	H_RING_CAP,
} from "./layout.ts";
import type { SpaceExtension } from "../core/extension.ts";
import type { VmapHeapOptions } from "./options.ts";
import { HeapAreas } from "./areas.ts";
import { createHeapBuffers } from "./create.ts";
import { purgeKind, validateOptions, validateTimeout } from "../core/options.ts";
import { wrongHandle } from "../core/state.ts";
import { DEFERRED_TAG, liveArea, type Reach, validateReach, elementSize } from "./access.ts";
import type { HeapStats, TypedArrayConstructor, VmallocOptions, VmapHeapHandle } from "../api/heap-types.ts";
import { HeapMemory } from "./memory.ts";
import { GracePeriods } from "./rcu.ts";
import { ReadSide } from "./read-side.ts";
import { VmapSpace } from "../space/space.ts";

export type { VmapHeapOptions };

export type { HeapStats, VmallocOptions, VmapHeapHandle } from "../api/heap-types.ts";

const FREE_DEFERRED_KEYS = ["nowait"];

export class VmapHeap {
	readonly space: VmapSpace;
	readonly data: SharedArrayBuffer;
	readonly pageSize: number;
	readonly guardPages: number;
	readonly maxSize: number;
	readonly poison: boolean;
	/** The heap's region of the space's header (heap/layout.ts), its locks, and the tag-aware frees. */
	readonly #ext: SpaceExtension;
	/** First word of the region: heap/layout.ts offsets are relative to it. */
	readonly #e: number;
	readonly #memory: HeapMemory;
	readonly #rcu: GracePeriods;
	readonly #turns: ReadSide;
	readonly #blocks: Blocks;
	/** What bytes() and view() check an address against (access.ts). */
	readonly #reach: Reach;
	/** Tag ids of the heap's own areas, which vfree() refuses. */
	readonly #deferredTag: number;
	readonly #mapRamTag: number;
	readonly #ownTags: readonly number[];
	/** vmalloc and vrealloc (areas.ts). */
	readonly #areas: HeapAreas;

	private constructor(space: VmapSpace, data: SharedArrayBuffer) {
		this.space = space;
		this.data = data;
		this.#ext = space.extension();
		const hdr = this.#ext.words;
		this.#e = this.#ext.base;
		const e = this.#e;
		this.pageSize = space.pageSize;
		this.guardPages = hdr[e + H_GUARD]!;
		this.maxSize = space.end;
		this.#memory = new HeapMemory(space, this.#ext, data, this.guardPages);
		this.poison = this.#memory.poison;
		this.#rcu = new GracePeriods(this.#ext);
		this.#turns = new ReadSide(this.#rcu, () => this.#ext.closed);
		const synchronize = (ms: number) => this.synchronize(ms);
		this.#areas = new HeapAreas({
			space,
			ext: this.#ext,
			memory: this.#memory,
			rcu: this.#rcu,
			guardPages: this.guardPages,
			synchronize,
		});
		this.#blocks = new Blocks(
			{ space, ext: this.#ext, memory: this.#memory },
			e + blocksOffset(hdr[e + H_RING_CAP]!),
			hdr[e + H_BLOCK_PAGES]!,
			hdr[e + H_NR_BLOCKS]!,
		);
		this.#reach = { ext: this.#ext, space, blocks: this.#blocks, guardPages: this.guardPages };
		this.#deferredTag = this.#ext.tagId(DEFERRED_TAG);
		this.#mapRamTag = this.#ext.tagId(VM_MAP_RAM);
		this.#ownTags = [this.#deferredTag, this.#mapRamTag];
		this.#ext.setSmallMarkTag(this.#deferredTag); // a small area queued by freeDeferred is marked
		this.#ext.onHandleEnded(
			() => [e + H_GROW_LOCK, ...this.#rcu.lockWords, ...this.#blocks.lockWords],
			(id, reclaim) => {
				this.#rcu.forget(id);
				this.#rcu.recover(id, (addr) => this.space.find(addr), DEFERRED_TAG);
				if (reclaim) this.#blocks.reclaim(id);
				this.#blocks.orphan(id);
			},
			(addr, size) => this.#memory.takeBack(addr, size),
		);
		this.#ext.onBlocking((blocked) => (blocked ? this.#rcu.offline() : this.#rcu.quiescent()));
		this.#rcu.quiescent(); // online
	}

	/** Create a heap: a space over [pageSize, maxSize) and `size` bytes of shared data. */
	static create(options: VmapHeapOptions): VmapHeap {
		const { space, data } = createHeapBuffers(options);
		return new VmapHeap(space, data);
	}

	/** Attach to a heap created elsewhere (its `handle` was posted here). */
	static attach(handle: VmapHeapHandle, options?: AttachOptions): VmapHeap {
		const wrong = wrongHandle(handle, "heap");
		if (wrong !== undefined) throw new VmapError("EINVAL", `Cannot attach a heap: the handle is ${wrong}`);
		const data = (handle as { data?: unknown } | null)?.data;
		if (!(data instanceof SharedArrayBuffer)) {
			throw new VmapError(
				"EINVAL",
				`Cannot attach a heap: the handle must be a heap's \`handle\` ({ buffer, data }), got ${shown(handle)}`,
			);
		}
		const space = VmapSpace.attach({ buffer: handle.buffer }, options);
		if (space.extension().length === 0) {
			space.close();
			throw new VmapError("EINVAL", "Cannot attach a heap: the buffer holds a bare space, not a heap (use VmapSpace.attach)");
		}
		return new VmapHeap(space, data);
	}

	get handle(): VmapHeapHandle {
		return { buffer: this.space.handle.buffer, data: this.data };
	}

	/** Allocate `bytes` (rounded up to whole pages, plus the guard pages). Returns the address. */
	vmalloc(bytes: number, options?: VmallocOptions): number {
		this.#enter();
		return this.#areas.alloc(bytes, options, false, "vmalloc");
	}

	/** vmalloc, with the bytes zeroed. */
	vzalloc(bytes: number, options?: VmallocOptions): number {
		this.#enter();
		return this.#areas.alloc(bytes, options, true, "vzalloc");
	}

	/** Free the area at `addr` (lazily, as VmapSpace.free). */
	vfree(addr: number): void {
		this.#enter();
		if (this.poison) {
			this.#memory.release(liveArea(this.space, addr, "vfree").start);
			return;
		}
		// One lookup: the space refuses, under the busy lock, areas that are the heap's own.
		const refused = this.#ext.freeUnlessTagged(addr, "vfree", this.#ownTags);
		if (refused === this.#deferredTag)
			throw new VmapError("EDOUBLEFREE", `Cannot vfree ${hex(addr)}: the area is queued for freeing after a grace period`);
		if (refused === this.#mapRamTag)
			throw new VmapError("EINVAL", `Cannot vfree ${hex(addr)}: the area is a vm_map_ram mapping; use vmUnmapRam`);
	}

	/**
	 * Resize the area at `addr` to `bytes`, keeping its contents up to the smaller size: in
	 * place when it shrinks or the range after it is free, otherwise by moving (allocate, copy,
	 * free). Returns the area's address. The added bytes are not zeroed. vrealloc(0, n) is
	 * vmalloc(n); vrealloc(addr, 0) frees and returns 0 (as the kernel's).
	 */
	vrealloc(addr: number, bytes: number): number {
		if (addr === 0) return this.vmalloc(bytes);
		this.#enter();
		return this.#areas.realloc(addr, bytes);
	}

	/**
	 * Free the area at `addr` after a grace period: once every online handle has passed a
	 * quiescent point, so that readers that reached it before may finish. With the queue full
	 * it waits for a grace period where this thread may block (kvfree_rcu_mightsleep); with
	 * `nowait`, or where the thread may not block, it throws EBUSY instead and changes nothing.
	 */
	freeDeferred(addr: number, options?: { nowait?: boolean }): void {
		this.#enter();
		validateOptions(options, FREE_DEFERRED_KEYS, "Cannot freeDeferred");
		const nowait = options?.nowait ?? false;
		if (typeof nowait !== "boolean")
			throw new VmapError("EINVAL", `Cannot freeDeferred: nowait must be true or false, got ${shown(nowait)}`);
		this.#areas.freeDeferred(addr, nowait, this.#deferredTag);
	}

	/** Report a quiescent point: this handle holds no reference into the heap now. */
	quiescent(): void {
		this.#enter();
	}

	/** VmapSpace.watch(): when `worker` exits, its handles end and grace periods stop waiting for them. */
	watch(worker: WatchedWorker, options?: WatchOptions): void {
		this.space.watch(worker, options);
	}

	/** VmapSpace.exited(). */
	exited(token: string, options?: ExitedOptions): void {
		this.space.exited(token, options);
	}

	/** Idle now (the end of the turn does it too): grace periods stop waiting for this handle until its next call into the heap. */
	offline(): void {
		this.#ext.ensureAlive();
		this.#rcu.offline();
	}

	/**
	 * A read-side section across turns of the event loop (rcu_read_lock): until readUnlock(),
	 * grace periods wait for this handle. Without one, the handle goes offline by itself at the
	 * end of each turn (read-side.ts). Nests.
	 */
	readLock(): void {
		this.#ext.ensureAlive();
		this.#turns.readLock();
	}

	/** End a readLock() section; EINVAL when none is open. */
	readUnlock(): void {
		this.#turns.readUnlock();
	}

	/**
	 * Wait for a grace period (kernel synchronize_rcu), then free what it released. Blocks; on
	 * a browser's main thread use synchronizeAsync(). ETIMEDOUT after `timeoutMs`, naming the
	 * handles that passed no quiescent point.
	 */
	synchronize(timeoutMs = Infinity): void {
		validateTimeout(timeoutMs, "Cannot synchronize");
		this.#enter();
		this.#rcu.wait(this.#rcu.start(), timeoutMs);
		this.#freeExpired();
	}

	/** synchronize() that waits without blocking the thread. */
	async synchronizeAsync(timeoutMs = Infinity): Promise<void> {
		validateTimeout(timeoutMs, "Cannot synchronizeAsync");
		this.#enter();
		await this.#rcu.waitAsync(this.#rcu.start(), timeoutMs);
		this.#rcu.quiescent();
		this.#freeExpired();
	}

	/**
	 * Map `pages` pages (kernel vm_map_ram): up to VMAP_MAX_ALLOC (64) from this handle's
	 * vm_map_ram blocks, more as an area of their own. No guard page. Returns the address.
	 */
	vmMapRam(pages: number): number {
		this.#enter();
		if (!Number.isSafeInteger(pages) || pages < 1 || pages * this.pageSize > this.maxSize) {
			throw new VmapError(
				"EINVAL",
				`Cannot vmMapRam: pages must be a whole number from 1 to ${this.maxSize / this.pageSize}, got ${shown(pages)}`,
			);
		}
		return this.#blocks.mapRam(pages);
	}

	/** Unmap what vmMapRam(pages) returned at `addr` (kernel vm_unmap_ram). */
	vmUnmapRam(addr: number, pages: number): void {
		this.#enter();
		if (!Number.isSafeInteger(addr))
			throw new VmapError("EINVAL", `Cannot vmUnmapRam: address must be a whole number, got ${shown(addr)}`);
		if (!Number.isSafeInteger(pages) || pages < 1)
			throw new VmapError("EINVAL", `Cannot vmUnmapRam: pages must be a whole number, at least 1, got ${shown(pages)}`);
		this.#blocks.unmapRam(addr, pages);
	}

	/**
	 * Bytes [addr, addr + length) as a Uint8Array over the shared data. EFAULT unless they lie
	 * inside one live area (before its guard pages) or mapped vm_map_ram pages.
	 */
	bytes(addr: number, length: number): Uint8Array {
		this.#turns.online();
		validateReach(this.#reach, addr, length, 1, "bytes");
		return new Uint8Array(this.data, addr, length);
	}

	/** `length` elements of `type` at `addr` (a multiple of the element size), as bytes() checks. */
	view<T>(addr: number, type: TypedArrayConstructor<T>, length: number): T {
		const size = elementSize(type, length);
		this.#turns.online();
		validateReach(this.#reach, addr, length * size, size, "view");
		return new type(this.data, addr, length);
	}

	/** vm_map_ram blocks with nothing mapped, then the lazy areas: the space's purge(options), its checks and result. */
	purge(options?: PurgeOptions): PurgeResult {
		purgeKind(options); // checked first: a bad call purges no block
		this.#enter();
		this.#blocks.purgeFragmented(false);
		return this.space.purge(options);
	}

	/** The space's statistics (VmapStats), and the heap's own beside them. */
	stats(): HeapStats {
		const hdr = this.#ext.words;
		const e = this.#e;
		const b = this.#blocks.totals();
		return {
			...this.space.stats(),
			dataBytes: this.#memory.committed,
			maxBytes: this.maxSize,
			blocks: b.blocks,
			mappedPages: b.mapped,
			dirtyPages: b.dirty,
			blockFreePages: b.free,
			deferred: hdr[e + H_DEFERRED]!,
			deferredFreed: hdr[e + H_FREED_DEFERRED]!,
			deferredPending: this.#rcu.pending(),
			gracePeriod: Atomics.load(hdr, e + H_GP),
		};
	}

	/** The space's areas in the style of /proc/vmallocinfo (blocks show as vm_map_ram). */
	vmallocinfo(): string {
		return this.space.vmallocinfo();
	}

	/** vmallocinfo(), giving the event loop a turn every few milliseconds of work. */
	vmallocinfoAsync(): Promise<string> {
		return this.space.vmallocinfoAsync();
	}

	/**
	 * O(n) validation: the space, then the heap: blocks against their bitmaps and areas, queued
	 * deferred frees against their areas and the grace-period counter, the data's growth.
	 */
	check(): void {
		this.space.check();
		const problems = this.#blocks.validate();
		const committed = this.#memory.committed;
		if (committed > this.data.byteLength) problems.push(`${committed} bytes committed, the data holds ${this.data.byteLength}`);
		problems.push(...this.#rcu.validate((addr) => this.space.find(addr), DEFERRED_TAG));
		if (problems.length > 0) throw new VmapError("ECORRUPT", problems.join("; "));
	}

	/**
	 * Done with this handle: its clean vm_map_ram blocks are freed and the rest orphaned, it
	 * leaves the grace periods, its space handle closes. Deferred frees stay queued for others.
	 */
	close(): void {
		if (this.#ext.closed) return;
		try {
			this.#freeExpired();
			this.#blocks.purgeFragmented(true);
		} finally {
			this.#rcu.offline();
			this.space.close();
		}
	}

	/** close(), for `using` (explicit resource management). */
	[Symbol.dispose](): void {
		this.close();
	}

	// ── inside ─────────────────────────────────────────────────────────────────────────────

	/** Every allocating or freeing call starts here: a quiescent point, then expired deferred frees. */
	#enter(): void {
		this.#ext.ensureAlive();
		this.#turns.quiescent();
		if (this.#rcu.pending() > 0) this.#freeExpired();
	}

	/** Free the deferred areas whose grace period has ended. */
	#freeExpired(): void {
		this.#rcu.freeExpired(this.#releaseArea);
	}

	readonly #releaseArea = (addr: number): void => this.#memory.release(addr);
}
