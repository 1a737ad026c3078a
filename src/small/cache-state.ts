/**
 * What one handle's small-area cache holds (cache.ts is its public side): the port through
 * which it gets and gives back block areas, its size classes, and its own lists of the blocks
 * it owns. The lists are this handle's alone (plain JS arrays); the blocks' words are shared
 * (descriptor.ts).
 */
import type { FlushHook } from "../api/types.ts";
import { HANDLE_GEN, HANDLE_HAZARD, HANDLE_REMOTE, HANDLE_WORDS, HDRF_BLOCK_BYTES, HDRF_SMALL_MAX, TAG_MAX } from "../buffer/layout.ts";
import {
	GAUGE_DIRTY,
	GAUGE_DIRTY_BYTES,
	GAUGE_IN_USE,
	GAUGE_IN_USE_BYTES,
	GAUGE_REMOTE_SEEN,
	gaugeWord,
	gaugeWordF,
	makerToken,
} from "../buffer/gauges.ts";
import type { Locks } from "../buffer/lock.ts";
import type { VaTable } from "../buffer/va-table.ts";
import { D_CLASS, D_TAG, sizeClasses } from "./descriptor.ts";

/**
 * The space, as the cache sees it (core/block-source.ts implements it): block areas come from
 * the ordinary allocator and go back through the ordinary lazy free, so that the space's purge
 * flushes a retired block's dirty slots before its range is reused; a block with none (every
 * slot FREE) goes straight back to free space.
 */
/**
 * A small-area block's setup, run inside the critical section that allocates its area (the
 * free-space lock and the area's busy lock held), so that a block exists whole or not at all:
 * `reserve` makes room for its records before anything changes, `setUp` writes its descriptor.
 */
export interface BlockSetup {
	reserve(): void;
	setUp(va: number, addr: number): void;
}

export interface BlockSource {
	/**
	 * A busy area of `bytes` aligned to `bytes`, without purging or waiting, or -1 when the
	 * space has no room; `setup` runs in its critical section (core/alloc.ts BlockSetup).
	 */
	allocBlockArea(bytes: number, setup: BlockSetup): number;
	/**
	 * Free the block area at `addr`: lazily, or straight to free space when `flushed` (no slot
	 * waits for a flush); `unindex` runs under the locks that make the block unreachable.
	 */
	freeBlockArea(addr: number, unindex: () => void, flushed: boolean): void;
	/** Base word of the node whose busy tree holds an area starting at `addr`. */
	busyNodeBase(addr: number): number;
	/** The name of tag `tag`. */
	tagName(tag: number): string | undefined;
}

/** What the cache answers when an address is in no block, or a request is not small: ask the trees. */
export const NOT_SMALL = null;

export class CacheState {
	/** Largest request served, bytes, and in pages; 0 once the handle closed. */
	max: number;
	maxUnits: number;
	readonly blockBytes: number;
	readonly classBytes: Float64Array;
	readonly t: VaTable;
	readonly locks: Locks;
	readonly source: BlockSource;
	readonly self: number;
	readonly hook: FlushHook | undefined;
	readonly pageSize: number;
	readonly blockInverse: number;
	/** 1 / pageSize, exact: multiplying by it divides without rounding. */
	readonly unitInverse: number;
	/** Size class of a request of u pages, u = 1 .. smallMax / pageSize. */
	readonly classOf: Uint16Array;
	/**
	 * Blocks come in queues, one per (tag, size class): a block's small areas all carry its tag
	 * (D_TAG). Queue q = group * classes + class, where group 0 is "no tag" and each tag this
	 * handle has met gets the next group (groupOf). The per-queue arrays grow with the groups.
	 */
	readonly classes: number;
	/** Per tag index: its group (0 for tag 0, and for a tag this handle has not met). */
	readonly groupOf = new Int32Array(TAG_MAX);
	/** Per group: its tag index. */
	readonly groupTag: number[] = [0];
	/** Per queue: the block allocations come from (a descriptor's d, 0 none), and the word to look at first. */
	cur: Int32Array;
	hint: Int32Array;
	/** Per queue: this handle's other blocks that got FREE slots (each once, D_LISTED; one may have none left by now). */
	readonly avail: number[][];
	/** Every block this handle owns. */
	readonly mine: number[] = [];
	/**
	 * Blocks with DIRTY slots that the next flush takes: a block joins when its dirty count
	 * leaves 0 (a free, remote frees taken in), or when a completed or failed flush leaves it
	 * some. Invariant: every block of `mine` with DIRTY slots not FLUSHING is on it, once.
	 */
	dirtyList: number[] = [];
	/** The blocks whose DIRTY slots the flush in flight covers (FLUSHING); empty when none is. */
	flushing: number[] = [];
	/** Per size class: the one empty block kept for reuse, of whichever tag (0 none); reclaim retires other empty ones. */
	readonly spareD: Int32Array;
	/** This handle's HANDLE_REMOTE word, and the header word (its gauge's GAUGE_REMOTE_SEEN) of its value when the blocks were last looked through. */
	readonly remoteWord: number;
	readonly remoteSeen: number;
	/** This handle's HANDLE_HAZARD word: the descriptor it frees into remotely (limbo.ts). */
	readonly hazardWord: number;
	/**
	 * This handle's gauges (buffer/gauges.ts), the sums over the blocks it owns, as header
	 * word indices: `inUse` and `dirty` of t.hdr (areas LIVE or DIRTY, and DIRTY), `inUseBytes`
	 * and `dirtyBytes` of t.hdrF (their bytes: dirtyBytes also decides when a flush is due).
	 * Only this handle writes them, with plain stores.
	 */
	readonly inUse: number;
	readonly dirty: number;
	readonly inUseBytes: number;
	readonly dirtyBytes: number;
	/** This handle's token as the index keeps it for the blocks it makes (makerToken). */
	readonly token: number;
	/** The block of this handle's last own free (its start and d): frees come in runs. */
	lastStart = -1;
	lastD = 0;
	/** A flush of this handle's is in flight (at most one is). */
	inFlight = false;
	/** Allocations left to the ordinary path before the cache tries for a new block again. */
	backoff = 0;

	constructor(t: VaTable, locks: Locks, pageSize: number, hook: FlushHook | undefined, source: BlockSource) {
		this.t = t;
		this.locks = locks;
		this.source = source;
		this.self = locks.self;
		this.hook = hook;
		this.max = t.hdrF[HDRF_SMALL_MAX]!;
		this.maxUnits = this.max / pageSize;
		this.blockBytes = t.hdrF[HDRF_BLOCK_BYTES]!;
		this.blockInverse = 1 / this.blockBytes;
		this.pageSize = pageSize;
		this.unitInverse = 1 / pageSize;
		const classes = sizeClasses(this.max, this.blockBytes, pageSize);
		this.classBytes = Float64Array.from(classes);
		this.classOf = new Uint16Array(this.maxUnits + 1);
		for (let u = 1, c = 0; u <= this.maxUnits; u++) {
			while (classes[c]! < u * pageSize) c++;
			this.classOf[u] = c;
		}
		this.classes = classes.length;
		this.cur = new Int32Array(classes.length);
		this.hint = new Int32Array(classes.length);
		this.avail = classes.map(() => []);
		this.spareD = new Int32Array(classes.length);
		// No block is this handle's yet, so no remote free into one was counted before this.
		this.remoteWord = (this.self - 1) * HANDLE_WORDS + HANDLE_REMOTE;
		this.hazardWord = (this.self - 1) * HANDLE_WORDS + HANDLE_HAZARD;
		this.token = makerToken(this.self, Atomics.load(t.handles, (this.self - 1) * HANDLE_WORDS + HANDLE_GEN));
		// The gauges start at zero: no block carries this token yet, so no reader looks at them.
		const g = gaugeWord(this.self);
		const gf = gaugeWordF(this.self);
		this.inUse = g + GAUGE_IN_USE;
		this.dirty = g + GAUGE_DIRTY;
		this.inUseBytes = gf + GAUGE_IN_USE_BYTES;
		this.dirtyBytes = gf + GAUGE_DIRTY_BYTES;
		this.remoteSeen = g + GAUGE_REMOTE_SEEN;
		t.hdr[this.inUse] = t.hdr[this.dirty] = 0;
		t.hdrF[this.inUseBytes] = t.hdrF[this.dirtyBytes] = 0;
		t.hdr[this.remoteSeen] = Atomics.load(t.handles, this.remoteWord);
	}

	/**
	 * Add `inUse` slots in use and `dirty` dirty ones, of `slotBytes` each, to this handle's
	 * gauges (negative: take them away). The carving path and the owner's free write the one
	 * count and the bytes they change themselves.
	 */
	addGauges(inUse: number, dirty: number, slotBytes: number): void {
		const t = this.t;
		t.hdr[this.inUse]! += inUse;
		t.hdr[this.dirty]! += dirty;
		t.hdrF[this.inUseBytes]! += inUse * slotBytes;
		t.hdrF[this.dirtyBytes]! += dirty * slotBytes;
	}

	/** The queue of class `k` for tag index `tag`. */
	queue(tag: number, k: number): number {
		if (tag === 0) return k;
		const g = this.groupOf[tag]!;
		return (g !== 0 ? g : this.#addGroup(tag)) * this.classes + k;
	}

	/** The queue block `d` belongs to. */
	queueOf(d: number): number {
		const i32 = this.t.i32;
		return this.queue(i32[d + D_TAG]!, i32[d + D_CLASS]!);
	}

	/** A group for tag index `tag`: the per-queue arrays grow by one class's worth. */
	#addGroup(tag: number): number {
		const g = this.groupTag.length;
		this.groupTag.push(tag);
		this.groupOf[tag] = g;
		const n = (g + 1) * this.classes;
		const grown = (a: Int32Array) => {
			const b = new Int32Array(n);
			b.set(a);
			return b;
		};
		this.cur = grown(this.cur);
		this.hint = grown(this.hint);
		for (let k = 0; k < this.classes; k++) this.avail.push([]);
		return g;
	}
}
