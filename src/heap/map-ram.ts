/**
 * vm_map_ram blocks (kernel vmap_block): small mappings come from per-handle blocks, one space
 * area of blockPages pages each, aligned to its size so that an address finds its block by a
 * division. A block hands pages out from the front and never twice (vb_alloc); unmapped pages
 * turn dirty (vb_free). A block with nothing mapped is purged, its whole area freed lazily
 * (through the space's flush, as the dirty pages need it), once its dirty pages reach a
 * quarter of it (VMAP_PURGE_THRESHOLD: purge_fragmented_blocks), or at once when all its
 * pages are dirty.
 *
 * Every block's record lives in the shared block table (heap/layout.ts) under its own lock,
 * so any handle may unmap pages another mapped. Which blocks a handle allocates from is this
 * handle's own list (the kernel's per-CPU vmap_block_queue).
 */
import { add, put, putAtomic } from "../buffer/journal.ts";
import { VmapError, hex } from "../api/errors.ts";
import {
	B_BITMAP,
	B_STARTS,
	B_DIRTY,
	B_DIRTY_MAX,
	B_DIRTY_MIN,
	B_FREE,
	B_LOCK,
	B_MAPPED,
	B_OWNER,
	B_STATE,
	RAM_BLOCK_ACTIVE,
	RAM_BLOCK_NONE,
	RAM_BLOCK_WORDS,
	VMAP_MAX_ALLOC,
} from "./layout.ts";
import type { AreaInfo } from "../api/types.ts";
import type { SpaceExtension } from "../core/extension.ts";
import type { HeapMemory } from "./memory.ts";
import type { VmapSpace } from "../space/space.ts";

export const VM_MAP_RAM = "vm_map_ram";

/** What the heap lends the blocks: its space and the space's extension, and its data bytes. */
export interface BlockHost {
	readonly space: VmapSpace;
	/** The block table's words and lock words live in the extension's region. */
	readonly ext: SpaceExtension;
	readonly memory: HeapMemory;
}

export class Blocks {
	readonly pages: number;
	readonly bytes: number;
	readonly count: number;
	readonly #host: BlockHost;
	readonly #base: number;
	readonly #pageSize: number;
	/** Blocks this handle allocates from, newest last. */
	readonly #mine: number[] = [];

	constructor(host: BlockHost, base: number, pages: number, count: number) {
		this.#host = host;
		this.#base = base;
		this.pages = pages;
		this.#pageSize = host.space.pageSize;
		this.bytes = pages * this.#pageSize;
		this.count = count;
	}

	get #hdr(): Int32Array {
		return this.#host.ext.words;
	}

	/** First word of block `idx`'s record. */
	#word(idx: number): number {
		return this.#base + idx * RAM_BLOCK_WORDS;
	}

	/** Handle `id` ended: nobody maps from its blocks again (their mapped pages stay valid and unmappable). */
	orphan(id: number): void {
		const hdr = this.#hdr;
		for (let idx = 0; idx < this.count; idx++) Atomics.compareExchange(hdr, this.#word(idx) + B_OWNER, id, 0);
	}

	/**
	 * Handle `id` ended and its areas are to be freed (WatchOptions.freeAreas): each block it
	 * maps from is purged, its mappings with it, their pages taken back as vmUnmapRam takes
	 * them. A block left purged with its area busy (a free cut short) is the space's to free:
	 * its area carries the id too.
	 */
	reclaim(id: number): void {
		const hdr = this.#hdr;
		for (let idx = 0; idx < this.count; idx++) {
			const w = this.#word(idx);
			if (Atomics.load(hdr, w + B_STATE) !== RAM_BLOCK_ACTIVE || Atomics.load(hdr, w + B_OWNER) !== id) continue;
			this.#host.ext.lock(w + B_LOCK);
			const purge = hdr[w + B_STATE] === RAM_BLOCK_ACTIVE && hdr[w + B_OWNER] === id;
			if (purge) {
				this.#host.memory.takeBack(idx * this.bytes, this.bytes); // mapped pages; the others hold the poison already
				putAtomic(hdr, w + B_STATE, RAM_BLOCK_NONE);
			}
			this.#host.ext.unlock(w + B_LOCK);
			if (purge) this.#host.space.free(idx * this.bytes);
		}
	}

	/** Every block's lock word. */
	get lockWords(): number[] {
		const out: number[] = [];
		for (let idx = 0; idx < this.count; idx++) out.push(this.#word(idx) + B_LOCK);
		return out;
	}

	/** Whether [addr, ...) lies in an active block: its index, else -1. */
	blockAt(addr: number): number {
		const idx = Math.floor(addr / this.bytes);
		return idx >= 0 && idx < this.count && Atomics.load(this.#hdr, this.#word(idx) + B_STATE) === RAM_BLOCK_ACTIVE ? idx : -1;
	}

	/**
	 * vm_map_ram: up to VMAP_MAX_ALLOC pages (and at most a block) from this handle's blocks,
	 * more as an area of their own, tagged vm_map_ram, without a guard page.
	 */
	mapRam(pages: number): number {
		if (pages <= Math.min(VMAP_MAX_ALLOC, this.pages)) return this.#map(pages);
		const space = this.#host.space;
		const bytes = pages * this.#pageSize;
		const addr = space.alloc(bytes, { tag: VM_MAP_RAM });
		try {
			this.#host.memory.commit(addr + bytes);
		} catch (e) {
			space.free(addr);
			throw e;
		}
		const fault = this.#host.memory.handOutFault(addr, bytes, "vmMapRam");
		if (fault !== undefined) {
			space.free(addr);
			throw fault;
		}
		return addr;
	}

	/** vm_unmap_ram: what mapRam(pages) returned at `addr`; EINVAL unless it mapped exactly that. */
	unmapRam(addr: number, pages: number): void {
		const idx = this.blockAt(addr);
		if (idx >= 0) {
			this.unmap(idx, addr, pages);
			return;
		}
		const space = this.#host.space;
		const area = space.find(addr);
		if (!area || area.start !== addr || area.state !== "busy" || area.tag !== VM_MAP_RAM) {
			throw new VmapError(
				"EINVAL",
				`Cannot vmUnmapRam ${hex(addr)}: vmMapRam mapped nothing there (${area ? `it lies in the ${area.state} area [${hex(area.start)}, ${hex(area.end)}) tagged ${area.tag}` : "free space"})`,
			);
		}
		if (area.size !== pages * this.#pageSize) {
			throw new VmapError(
				"EINVAL",
				`Cannot vmUnmapRam ${hex(addr)}: it was mapped with ${area.size / this.#pageSize} pages, not ${pages}`,
			);
		}
		this.#host.memory.takeBack(addr, area.size);
		space.free(addr);
	}

	/** Map `pages` (1..this.pages) from one of this handle's blocks, or from a new block. */
	#map(pages: number): number {
		const hdr = this.#hdr;
		const self = this.#host.ext.id;
		for (let i = this.#mine.length - 1; i >= 0; i--) {
			const idx = this.#mine[i]!;
			const w = this.#word(idx);
			this.#host.ext.lock(w + B_LOCK);
			const free = hdr[w + B_FREE]!;
			if (hdr[w + B_STATE] !== RAM_BLOCK_ACTIVE || hdr[w + B_OWNER] !== self || free === 0) {
				this.#host.ext.unlock(w + B_LOCK);
				this.#mine.splice(i, 1);
				continue;
			}
			if (free >= pages) {
				const off = this.pages - free;
				setBits(hdr, w + B_BITMAP, off, pages, 1);
				setBits(hdr, w + B_STARTS, off, 1, 1);
				put(hdr, w + B_FREE, free - pages);
				add(hdr, w + B_MAPPED, pages);
				this.#host.ext.unlock(w + B_LOCK);
				const addr = idx * this.bytes + off * this.#pageSize;
				this.#handOut(idx, addr, pages);
				return addr;
			}
			this.#host.ext.unlock(w + B_LOCK);
		}
		// A new block (kernel new_vmap_block): its first pages are the mapping.
		const space = this.#host.space;
		const start = space.alloc(this.bytes, { align: this.bytes, tag: VM_MAP_RAM });
		const idx = start / this.bytes;
		const w = this.#word(idx);
		try {
			this.#host.memory.commit(start + this.bytes);
			this.#host.ext.lock(w + B_LOCK);
		} catch (e) {
			space.free(start);
			throw e;
		}
		hdr.fill(0, w + B_BITMAP, w + RAM_BLOCK_WORDS);
		setBits(hdr, w + B_BITMAP, 0, pages, 1);
		setBits(hdr, w + B_STARTS, 0, 1, 1);
		put(hdr, w + B_OWNER, self);
		put(hdr, w + B_FREE, this.pages - pages);
		put(hdr, w + B_DIRTY, 0);
		put(hdr, w + B_DIRTY_MIN, this.pages);
		put(hdr, w + B_DIRTY_MAX, 0);
		put(hdr, w + B_MAPPED, pages);
		putAtomic(hdr, w + B_STATE, RAM_BLOCK_ACTIVE);
		this.#host.ext.unlock(w + B_LOCK);
		if (this.pages > pages) this.#mine.push(idx);
		this.#handOut(idx, start, pages);
		return start;
	}

	/** With poisoning: EFAULT, the pages unmapped again, unless the pages still hold the poison. */
	#handOut(idx: number, addr: number, pages: number): void {
		const fault = this.#host.memory.handOutFault(addr, pages * this.#pageSize, "vmMapRam");
		if (fault === undefined) return;
		this.unmap(idx, addr, pages);
		throw fault;
	}

	/**
	 * Unmap `pages` at `addr` of block `idx`. Throws EINVAL unless exactly those pages are
	 * mapped. Purges the block when nothing in it is mapped and its dirty pages reach a quarter
	 * of it, or all of them are dirty.
	 */
	unmap(idx: number, addr: number, pages: number): void {
		const hdr = this.#hdr;
		const w = this.#word(idx);
		const start = idx * this.bytes;
		const off = (addr - start) / this.#pageSize;
		this.#host.ext.lock(w + B_LOCK);
		const problem =
			hdr[w + B_STATE] !== RAM_BLOCK_ACTIVE
				? "the block was purged"
				: !Number.isInteger(off)
					? `the address is not on a page boundary (page size ${this.#pageSize})`
					: off + pages > this.pages
						? `the range runs past the block's end ${hex(start + this.bytes)}`
						: !allSet(hdr, w + B_BITMAP, off, pages)
							? "not all of those pages are mapped (unmapped already, or mapped with another size)"
							: !allSet(hdr, w + B_STARTS, off, 1)
								? "no mapping starts there (it lies inside one)"
								: anySet(hdr, w + B_STARTS, off + 1, pages - 1)
									? "it covers more than one mapping"
									: off + pages < this.pages &&
											allSet(hdr, w + B_BITMAP, off + pages, 1) &&
											!allSet(hdr, w + B_STARTS, off + pages, 1)
										? "the mapping there is longer (mapped with more pages)"
										: undefined;
		if (problem !== undefined) {
			this.#host.ext.unlock(w + B_LOCK);
			throw new VmapError(
				"EINVAL",
				`Cannot vmUnmapRam ${hex(addr)} (${pages} pages) in the vm_map_ram block [${hex(start)}, ${hex(start + this.bytes)}): ${problem}`,
			);
		}
		setBits(hdr, w + B_BITMAP, off, pages, 0);
		setBits(hdr, w + B_STARTS, off, 1, 0);
		this.#host.memory.takeBack(addr, pages * this.#pageSize);
		add(hdr, w + B_DIRTY, pages);
		const dirty = hdr[w + B_DIRTY]!;
		add(hdr, w + B_MAPPED, -pages);
		if (off < hdr[w + B_DIRTY_MIN]!) put(hdr, w + B_DIRTY_MIN, off);
		if (off + pages > hdr[w + B_DIRTY_MAX]!) put(hdr, w + B_DIRTY_MAX, off + pages);
		const purge = dirty === this.pages || (hdr[w + B_MAPPED] === 0 && dirty >= this.pages / 4);
		if (purge) putAtomic(hdr, w + B_STATE, RAM_BLOCK_NONE);
		this.#host.ext.unlock(w + B_LOCK);
		if (purge) this.#host.space.free(start);
	}

	/**
	 * Purge every block with nothing mapped and some pages dirty, whatever the threshold
	 * (purge_fragmented_blocks_allcpus); with `mineToo`, this handle's clean blocks as well
	 * (close()). Returns the blocks freed.
	 */
	purgeFragmented(mineToo: boolean): number {
		const hdr = this.#hdr;
		let freed = 0;
		for (let idx = 0; idx < this.count; idx++) {
			const w = this.#word(idx);
			if (Atomics.load(hdr, w + B_STATE) !== RAM_BLOCK_ACTIVE) continue;
			this.#host.ext.lock(w + B_LOCK);
			const mine = hdr[w + B_OWNER] === this.#host.ext.id;
			const purge = hdr[w + B_STATE] === RAM_BLOCK_ACTIVE && hdr[w + B_MAPPED] === 0 && (hdr[w + B_DIRTY]! > 0 || (mineToo && mine));
			if (purge) putAtomic(hdr, w + B_STATE, RAM_BLOCK_NONE);
			else if (mineToo && mine) put(hdr, w + B_OWNER, 0); // orphaned: nobody maps from it again
			this.#host.ext.unlock(w + B_LOCK);
			if (purge) {
				this.#host.space.free(idx * this.bytes);
				freed++;
			}
		}
		if (mineToo) this.#mine.length = 0;
		return freed;
	}

	/** Whether pages [addr, addr + bytes) of block `idx` are all mapped (a snapshot). */
	mapped(idx: number, addr: number, bytes: number): boolean {
		const hdr = this.#hdr;
		const w = this.#word(idx);
		const off = Math.floor((addr - idx * this.bytes) / this.#pageSize);
		const last = Math.floor((addr + Math.max(bytes, 1) - 1 - idx * this.bytes) / this.#pageSize);
		if (last >= this.pages) return false;
		this.#host.ext.lock(w + B_LOCK);
		const ok = hdr[w + B_STATE] === RAM_BLOCK_ACTIVE && allSet(hdr, w + B_BITMAP, off, last - off + 1);
		this.#host.ext.unlock(w + B_LOCK);
		return ok;
	}

	/** Totals over active blocks (plain reads: a snapshot for stats). */
	totals(): { blocks: number; mapped: number; dirty: number; free: number } {
		const hdr = this.#hdr;
		const out = { blocks: 0, mapped: 0, dirty: 0, free: 0 };
		for (let idx = 0; idx < this.count; idx++) {
			const w = this.#word(idx);
			if (Atomics.load(hdr, w + B_STATE) !== RAM_BLOCK_ACTIVE) continue;
			out.blocks++;
			out.mapped += hdr[w + B_MAPPED]!;
			out.dirty += hdr[w + B_DIRTY]!;
			out.free += hdr[w + B_FREE]!;
		}
		return out;
	}

	/** check(): each active block's record against its bitmap and its area. Returns problems. */
	validate(): string[] {
		const hdr = this.#hdr;
		const problems: string[] = [];
		for (let idx = 0; idx < this.count; idx++) {
			const w = this.#word(idx);
			this.#host.ext.lock(w + B_LOCK);
			if (hdr[w + B_STATE] === RAM_BLOCK_ACTIVE) {
				const start = idx * this.bytes;
				const name = `vm_map_ram block [${hex(start)}, ${hex(start + this.bytes)})`;
				const free = hdr[w + B_FREE]!;
				const mapped = hdr[w + B_MAPPED]!;
				const dirty = hdr[w + B_DIRTY]!;
				let bits = 0;
				let beyond = 0;
				let strayStarts = 0;
				for (let p = 0; p < this.pages; p++) {
					const mappedHere = allSet(hdr, w + B_BITMAP, p, 1);
					if (mappedHere) {
						bits++;
						if (p >= this.pages - free) beyond++;
					}
					if (allSet(hdr, w + B_STARTS, p, 1) && !mappedHere) strayStarts++;
				}
				if (strayStarts !== 0) problems.push(`${name}: ${strayStarts} mapping starts on pages not mapped`);
				if (free + mapped + dirty !== this.pages)
					problems.push(`${name}: free ${free} + mapped ${mapped} + dirty ${dirty} != ${this.pages} pages`);
				if (bits !== mapped) problems.push(`${name}: ${bits} pages set in the bitmap, ${mapped} counted mapped`);
				if (beyond !== 0) problems.push(`${name}: ${beyond} mapped pages lie in its never-used tail`);
				let area: AreaInfo | undefined;
				try {
					area = this.#host.space.find(start);
				} catch (e) {
					this.#host.ext.unlock(w + B_LOCK);
					throw e;
				}
				if (!area || area.start !== start || area.end !== start + this.bytes || area.state !== "busy" || area.tag !== VM_MAP_RAM) {
					problems.push(
						`${name}: its area is ${area ? `[${hex(area.start)}, ${hex(area.end)}) ${area.state} tagged ${area.tag}` : "missing"}`,
					);
				}
			}
			this.#host.ext.unlock(w + B_LOCK);
		}
		return problems;
	}
}

/** Set (value 1) or clear (0) bits [from, from + n) of the bitmap at word `w`. */
function setBits(hdr: Int32Array, w: number, from: number, n: number, value: 0 | 1): void {
	for (let b = from; b < from + n; b++) {
		const word = w + (b >> 5);
		const mask = 1 << (b & 31);
		put(hdr, word, value ? hdr[word]! | mask : hdr[word]! & ~mask);
	}
}

/** Whether any of bits [from, from + n) of the bitmap at word `w` is set. */
function anySet(hdr: Int32Array, w: number, from: number, n: number): boolean {
	for (let b = from; b < from + n; b++) if ((hdr[w + (b >> 5)]! & (1 << (b & 31))) !== 0) return true;
	return false;
}

/** Whether bits [from, from + n) of the bitmap at word `w` are all set. */
function allSet(hdr: Int32Array, w: number, from: number, n: number): boolean {
	for (let b = from; b < from + n; b++) if ((hdr[w + (b >> 5)]! & (1 << (b & 31))) === 0) return false;
	return true;
}
