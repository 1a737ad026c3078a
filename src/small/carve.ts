/**
 * Carving: the owner's path, with no lock and no atomic (kernel vb_alloc, vb_free). A request
 * takes the lowest FREE slot of its class's current block; the owner's free turns a LIVE slot
 * DIRTY, another handle's is a remote free (owner.ts). Lookups of an address in a block
 * (find, mark, resize) read the block's words without a lock: another handle may be changing
 * them, so they answer for the moment they looked.
 */
import { crashArmed, crashPoint } from "../buffer/journal.ts";
import type { AreaInfo } from "../api/types.ts";
import { hex, VmapError } from "../api/errors.ts";
import { HDR_BLOCK_INDEX, HDR_DEAD, HDR_SMALL_MARK_TAG } from "../buffer/layout.ts";
import { vaOwner } from "../buffer/record.ts";
import { lookupBlock } from "./block-index.ts";
import { type CacheState, NOT_SMALL } from "./cache-state.ts";
import {
	bitWord,
	blockStartOf,
	D_DIRTY_NR,
	D_AREA,
	D_OWNER,
	D_SLOTS,
	D_TAG,
	D_WORDS,
	DIRTY,
	dirtyWord,
	freeWord,
	LIVE,
	liveWord,
	MARK,
	markWord,
	REMOTE,
	remoteWord,
	slotBytesOf,
} from "./descriptor.ts";
import { remoteFree } from "./owner.ts";
import { refill } from "./refill.ts";

/** What lies at an address of a block. */
interface SlotAt {
	start: number;
	end: number;
	state: "busy" | "lazy" | "free" | "tail";
	blockStart: number;
	marked: boolean;
}

/** The pages of a small request of `size` bytes, or NaN when it is not small (or not a valid size). */
function unitsOf(c: CacheState, size: number): number {
	const units = typeof size === "number" ? size * c.unitInverse : NaN;
	return units >= 1 && units <= c.maxUnits && Math.floor(units) === units ? units : NaN;
}

/**
 * A small area of at least `size` bytes, tagged `tag` (a tag table index, 0 none), from this
 * handle's blocks of that tag, or NOT_SMALL when the request is not small (or not a valid
 * size: the ordinary path says why), the space is left unusable or the handle closed (the
 * ordinary path says so), or no block can be had.
 */
export function carve(c: CacheState, size: number, tag: number): number | typeof NOT_SMALL {
	const units = unitsOf(c, size);
	if (Number.isNaN(units) || c.t.hdr[HDR_DEAD] !== 0) return NOT_SMALL;
	const q = tag === 0 ? c.classOf[units]! : c.queue(tag, c.classOf[units]!);
	for (;;) {
		const d = c.cur[q]!;
		if (d !== 0) {
			const i32 = c.t.i32;
			const words = i32[d + D_WORDS]!;
			for (let w = c.hint[q]!; w < words; w++) {
				const m = i32[freeWord(d, w)]!;
				if (m === 0) continue;
				c.hint[q] = w;
				return takeSlot(c, d, w, m & -m);
			}
		}
		if (!refill(c, q)) return NOT_SMALL;
	}
}

/**
 * Hand out the slot of `bit` in word `w` of block `d` (FREE there): FREE to LIVE, counted in
 * this handle's gauges (the block counts no LIVE slots); returns its address. (A function of its own: carve
 * stays small enough for V8 to inline it into the allocation path.)
 */
function takeSlot(c: CacheState, d: number, w: number, bit: number): number {
	const t = c.t;
	const i32 = t.i32;
	// A crash point before each write (tests: an owner may stop between any two; repair.ts).
	const armed = crashArmed();
	if (armed) crashPoint();
	i32[freeWord(d, w)]! ^= bit;
	if (armed) crashPoint();
	i32[liveWord(d, w)]! |= bit;
	const bytes = slotBytesOf(t.f64, d);
	t.hdr[c.inUse]!++; // the gauges: only a reader of stats() looks at them, and not after a death
	t.hdrF[c.inUseBytes]! += bytes;
	return blockStartOf(t.f64, d) + ((w << 5) + 31 - Math.clz32(bit)) * bytes;
}

/** Whether a request of `size` bytes is small (at most smallMax, a whole number of pages). */
export function isSmall(c: CacheState, size: number): boolean {
	return !Number.isNaN(unitsOf(c, size));
}

/** The bytes a small request of `size` takes (its class), or `size` when it is not small. */
export function classSize(c: CacheState, size: number): number {
	const units = unitsOf(c, size);
	return !Number.isNaN(units) ? c.classBytes[c.classOf[units]!]! : size;
}

/**
 * Free the small area starting at `addr`, in the words of `op`: "freed", "marked" (nothing
 * done) when the area carries the small-area mark and `keepMarked`, or NOT_SMALL when `addr`
 * is in no block. Throws ENOENT or EDOUBLEFREE, changing nothing, for an address in a block
 * that starts no live small area.
 */
export function freeSmall(c: CacheState, addr: number, op: string, keepMarked: boolean): "freed" | "marked" | typeof NOT_SMALL {
	const d = blockOf(c, addr);
	if (d === 0) return NOT_SMALL;
	const t = c.t;
	const i32 = t.i32;
	const blockStart = blockStartOf(t.f64, d);
	const slot = (addr - blockStart) / slotBytesOf(t.f64, d);
	if (!(Math.floor(slot) === slot && slot < i32[d + D_SLOTS]!)) return badFree(c, d, addr, op);
	const w = slot >> 5;
	const bit = 1 << (slot & 31);
	const live = liveWord(d, w);
	const remote = remoteWord(d, w);
	if ((i32[live]! & bit) === 0 || (i32[remote]! & bit) !== 0) return badFree(c, d, addr, op);
	const mark = markWord(d, w);
	if ((i32[mark]! & bit) !== 0) {
		if (keepMarked) return "marked";
		crashPoint();
		Atomics.and(i32, mark, ~bit); // others set marks in this word too
	}
	if (i32[d + D_OWNER] !== c.self) return remoteFree(c, d, remote, bit) ? "freed" : badFree(c, d, addr, op);
	c.lastStart = blockStart;
	c.lastD = d;
	const armed = crashArmed();
	if (armed) crashPoint();
	i32[live] = i32[live]! ^ bit;
	if (armed) crashPoint();
	i32[dirtyWord(d, w)]! |= bit;
	const dirty = i32[d + D_DIRTY_NR]!;
	if (armed) crashPoint();
	i32[d + D_DIRTY_NR] = dirty + 1;
	if (dirty === 0) c.dirtyList.push(d);
	t.hdr[c.dirty]!++;
	t.hdrF[c.dirtyBytes]! += slotBytesOf(t.f64, d);
	return "freed";
}

/**
 * Set (`on`) or clear the mark of the live small area starting at `addr`: true when that
 * changed it, false when it was so already or no live small area starts there, NOT_SMALL when
 * `addr` is in no block.
 */
export function markSmall(c: CacheState, addr: number, on: boolean): boolean | typeof NOT_SMALL {
	const d = blockOf(c, addr);
	if (d === 0) return NOT_SMALL;
	const at = slotAt(c, d, addr);
	if (at.start !== addr || at.state !== "busy") return false;
	const i32 = c.t.i32;
	const slot = (addr - at.blockStart) / slotBytesOf(c.t.f64, d);
	const word = markWord(d, slot >> 5);
	const bit = 1 << (slot & 31);
	crashPoint();
	const old = on ? Atomics.or(i32, word, bit) : Atomics.and(i32, word, ~bit);
	return ((old & bit) !== 0) !== on;
}

/**
 * find() of an address in a block: the small area holding it (busy, or lazy: freed and not
 * yet flushed), undefined for a free slot, NOT_SMALL outside every block.
 */
export function findSmall(c: CacheState, addr: number): AreaInfo | undefined | typeof NOT_SMALL {
	const d = blockOf(c, addr);
	if (d === 0) return NOT_SMALL;
	const at = slotAt(c, d, addr);
	if (at.state === "free" || at.state === "tail") return undefined;
	const markTag = c.t.hdr[HDR_SMALL_MARK_TAG]!;
	const id = at.marked && markTag !== 0 ? markTag : c.t.i32[d + D_TAG]!; // the mark stands in for the block's tag
	const tag = id !== 0 ? c.source.tagName(id) : undefined;
	const owner = vaOwner(c.t.i32, c.t.i32[d + D_AREA]!); // the block's maker allocated every slot of it
	return { start: at.start, end: at.end, size: at.end - at.start, tag, state: at.state, owner };
}

/**
 * resize() of a small area: in place within its size class (true), never beyond (false).
 * NOT_SMALL when `addr` is in no block.
 */
export function resizeSmall(c: CacheState, addr: number, size: number): boolean | typeof NOT_SMALL {
	const d = blockOf(c, addr);
	if (d === 0) return NOT_SMALL;
	const at = slotAt(c, d, addr);
	if (at.start !== addr || at.state !== "busy") return badFree(c, d, addr, "resize");
	return size <= at.end - at.start;
}

/** The descriptor of the block holding `addr`, or 0; without a lock. */
function blockOf(c: CacheState, addr: number): number {
	if (typeof addr !== "number" || c.t.hdr[HDR_DEAD] !== 0) return 0;
	const blockStart = Math.floor(addr * c.blockInverse) * c.blockBytes;
	if (blockStart === c.lastStart) return c.lastD;
	const t = c.t;
	let first = t.hdr[HDR_BLOCK_INDEX]!;
	if (first === 0 || c.max === 0) return 0;
	t.sync(); // another handle's block may lie in records this handle's views do not cover yet
	let d = lookupBlock(t, first, blockStart, c.blockInverse);
	if (d === 0) {
		// A plain read may see an index another handle replaced: look again after a fence.
		first = Atomics.load(t.hdr, HDR_BLOCK_INDEX);
		t.sync();
		d = lookupBlock(t, first, blockStart, c.blockInverse);
	}
	return d;
}

/** What lies at `addr` in block `d` (plain reads: another handle may be changing it). */
function slotAt(c: CacheState, d: number, addr: number): SlotAt {
	const i32 = c.t.i32;
	const blockStart = blockStartOf(c.t.f64, d);
	const bytes = slotBytesOf(c.t.f64, d);
	const slot = Math.floor((addr - blockStart) / bytes);
	const start = blockStart + slot * bytes;
	if (slot >= i32[d + D_SLOTS]!) return { start, end: blockStart + c.blockBytes, state: "tail", blockStart, marked: false };
	const w = slot >> 5;
	const bit = 1 << (slot & 31);
	const is = (k: number) => (i32[bitWord(d, k, w)]! & bit) !== 0;
	const state = is(REMOTE) || is(DIRTY) ? "lazy" : is(LIVE) ? "busy" : "free";
	return { start, end: start + bytes, state, blockStart, marked: is(MARK) };
}

/** The error for an address in block `d` that starts no live small area. */
function badFree(c: CacheState, d: number, addr: number, op: string): never {
	const at = slotAt(c, d, addr);
	const block = `[${hex(at.blockStart)}, ${hex(at.blockStart + c.blockBytes)})`;
	const range = `[${hex(at.start)}, ${hex(at.end)})`;
	const cannot = `Cannot ${op} ${hex(addr)}`;
	if (at.state === "tail")
		throw new VmapError("ENOENT", `${cannot}: no area starts there; it lies in the unused end of the small-area block ${block}`);
	if (at.start !== addr) {
		const what = at.state === "lazy" ? ", which is freed already" : at.state === "free" ? ", which is free" : "";
		throw new VmapError("ENOENT", `${cannot}: no area starts there; it lies inside the small area ${range}${what}`);
	}
	if (at.state === "lazy")
		throw new VmapError("EDOUBLEFREE", `${cannot}: the small area ${range} is freed already (lazy, waiting for a flush)`);
	if (at.state === "free")
		throw new VmapError("ENOENT", `${cannot}: no area starts there; the small area ${range} of block ${block} is free`);
	throw new VmapError("ENOENT", `${cannot}: no area started there when the call looked (another worker allocated ${range} since)`);
}
