import { VmapError } from "../api/errors.ts";
import { journalSection, put, putAtomic, touch } from "./journal.ts";
import {
	bytesForCapacity,
	HANDLE_MAX,
	HANDLE_OFFSET,
	HANDLE_WORDS,
	HDR_CAPACITY,
	HDR_HASH_BUDGET,
	HDR_MAX_CAPACITY,
	HDR_SLOT_FREE,
	HDR_SLOT_FREE_NR,
	HDR_SLOT_HIGH,
	HDR_NODES,
	HDR_RECORDS_OFFSET,
	REC_F64,
	REC_I32,
} from "./layout.ts";
import { NF_LAZY_ADDED, NF_LAZY_PURGED, nodeBase } from "./node-layout.ts";
import { clearListedRecord, clearRecord, setVaNext, vaNext, zeroRecord } from "./record.ts";

export type SpaceBuffer = SharedArrayBuffer | ArrayBuffer;

/**
 * Whether `buffer` is shared. A browser page that is not cross-origin isolated has no
 * SharedArrayBuffer at all: a one-thread space must still work there.
 */
export function isShared(buffer: unknown): buffer is SharedArrayBuffer {
	return typeof SharedArrayBuffer === "function" && buffer instanceof SharedArrayBuffer;
}

/**
 * The record table: a buffer, its views, and slot allocation.
 *
 * Views are fixed-length and rebuilt when the table grows. A length-tracking view over a
 * growable SharedArrayBuffer would follow growth by itself, but on Node 20 every element
 * access through one is about 9x slower (measured: 237 ms vs 26 ms for the same loop), so
 * `remap()` runs after every growth and whenever the header's capacity differs from ours.
 */
export class VaTable {
	/**
	 * A growable SharedArrayBuffer, or for one thread a plain ArrayBuffer that growth replaces
	 * with a larger copy: on Node 20 views over a resizable ArrayBuffer are about 2.6x slower
	 * (measured on alloc+free pairs), and a plain buffer has no other holder to surprise.
	 */
	buffer: SpaceBuffer;
	/** Header, Int32 words (HDR_*). */
	hdr!: Int32Array;
	/** Header, Float64 words (HDRF_*). */
	hdrF!: Float64Array;
	/** The handle table (HANDLE_*), Int32 words. */
	handles!: Int32Array;
	/** Records as Float64 words; read and written only through record.ts. */
	f64!: Float64Array;
	/** Records as Int32 words; read and written only through record.ts. */
	i32!: Int32Array;
	/** Capacity the views cover. */
	capacity = 0;
	/** Number of nodes; byte offset of record 0. Fixed at creation. */
	readonly nodes: number;
	readonly recordsAt: number;

	constructor(buffer: SpaceBuffer) {
		this.buffer = buffer;
		const hdr = new Int32Array(buffer, 0, HDR_RECORDS_OFFSET + 1);
		this.nodes = hdr[HDR_NODES]!;
		this.recordsAt = hdr[HDR_RECORDS_OFFSET]!;
		this.remap();
	}

	/** Rebuild the views to cover the buffer and the capacity the header states. */
	remap(): void {
		this.#mapHeader();
		const capacity = Atomics.load(this.hdr, HDR_CAPACITY);
		this.f64 = new Float64Array(this.buffer, this.recordsAt, capacity * REC_F64);
		this.i32 = new Int32Array(this.buffer, this.recordsAt, capacity * REC_I32);
		this.capacity = capacity;
	}

	#mapHeader(): void {
		if (this.hdr?.buffer === this.buffer) return;
		this.hdr = new Int32Array(this.buffer, 0, this.recordsAt / 4);
		this.hdrF = new Float64Array(this.buffer, 0, this.recordsAt / 8);
		this.handles = new Int32Array(this.buffer, HANDLE_OFFSET, HANDLE_MAX * HANDLE_WORDS);
	}

	/**
	 * Follow growth by another handle: call after taking a lock, before touching records. A
	 * plain read suffices there: taking the lock synchronized with its last release, and any
	 * growth that made a record reachable under this lock happened before that release.
	 */
	sync(): void {
		if (this.capacity !== this.hdr[HDR_CAPACITY]) this.remap();
	}

	/**
	 * vmap_lazy_nr: pages freed lazily and not yet purged, summed over the nodes with plain
	 * reads. Exact under every node's LAZY and POOL lock; otherwise a heuristic's estimate.
	 */
	lazyPages(): number {
		let n = 0;
		for (let v = 0; v < this.nodes; v++) n += this.nodeLazyPages(v);
		return n;
	}

	/** Node `v`'s share of lazyPages(): the pages its lazy tree took and its purges have not given back. */
	nodeLazyPages(v: number): number {
		const f = nodeBase(v) >> 1;
		return this.hdrF[f + NF_LAZY_ADDED]! - this.hdrF[f + NF_LAZY_PURGED]!;
	}

	/** Free slots available without growing. */
	available(): number {
		const hdr = this.hdr;
		return hdr[HDR_SLOT_FREE_NR]! + (hdr[HDR_CAPACITY]! - hdr[HDR_SLOT_HIGH]!);
	}

	/**
	 * Make sure `n` slots can be taken without failing, growing the table if needed. Called
	 * before an operation changes anything, so that running out of records fails cleanly.
	 * Hazard: growth may replace the buffer (one-thread spaces) and always replaces the views;
	 * a caller must not use a view it read from this table before the call.
	 */
	reserve(n: number): void {
		this.sync();
		if (this.available() >= n) return;
		const hdr = this.hdr;
		const capacity = hdr[HDR_CAPACITY]!;
		const max = hdr[HDR_MAX_CAPACITY]!;
		const want = capacity + n - this.available();
		if (want > max) {
			const maxAreas = max - 1 - hdr[HDR_HASH_BUDGET]!;
			throw new VmapError(
				"ENOMEM",
				`Cannot take a vmap_area record: the table holds its maximum of ${max - 1} records (maxAreas ${maxAreas}, and ${hdr[HDR_HASH_BUDGET]} more for the busy hash)`,
			);
		}
		// Grow by an eighth: bounded slack (the memory target is bytes per live area), and
		// growing a buffer in place costs no copy, so small steps are cheap.
		const next = Math.min(max, Math.max(want, capacity + Math.max(64, capacity >>> 3)));
		try {
			this.buffer = grown(this.buffer, bytesForCapacity(this.recordsAt, next));
		} catch (e) {
			throw new VmapError("ENOMEM", `Cannot grow the record table to ${next} records: ${(e as Error).message}`);
		}
		this.#mapHeader();
		putAtomic(this.hdr, HDR_CAPACITY, next); // after the buffer grew: a reader of it may map that far
		this.remap();
	}

	/**
	 * Make sure `n` consecutive never-used slots can be taken at SLOT_HIGH (takeRun()), growing
	 * the table if needed; the same hazard as reserve().
	 */
	reserveRun(n: number): void {
		this.sync();
		const spare = this.hdr[HDR_CAPACITY]! - this.hdr[HDR_SLOT_HIGH]!;
		if (spare >= n) return;
		this.reserve(this.available() + n - spare);
	}

	/**
	 * Take `n` consecutive slots (a small-area block's descriptor, the block index) from the
	 * never-used end; `reserveRun()` must have made room. Their words are all zero. They return
	 * one by one with freeSlot(). Records at and above SLOT_HIGH may hold words of a critical
	 * section that was undone (journal.ts): taking one zeroes it, unjournaled (their old words
	 * mean nothing).
	 */
	takeRun(n: number): number {
		const hdr = this.hdr;
		const first = hdr[HDR_SLOT_HIGH]!;
		if (first + n > this.capacity) throw new VmapError("ENOMEM", "record table full (reserveRun() was not called)");
		put(hdr, HDR_SLOT_HIGH, first + n);
		this.f64.fill(0, first * REC_F64, (first + n) * REC_F64);
		return first;
	}

	/**
	 * Take a slot; `reserve()` must have made room. The record's words are all zero. A slot that
	 * was on the free list when the critical section began journals only its link (its other
	 * words mean nothing to a rollback); one freed in this section journals every word, which
	 * a rollback must give back to the record it was.
	 */
	allocSlot(): number {
		const hdr = this.hdr;
		const kept = this.keptWord === 0 ? 0 : hdr[this.keptWord]!;
		if (kept !== 0) return this.#takeKept(kept);
		let slot = hdr[HDR_SLOT_FREE]!;
		if (slot !== 0) {
			this.#touchFreeHead();
			hdr[HDR_SLOT_FREE] = vaNext(this.i32, slot);
			hdr[HDR_SLOT_FREE_NR]!--; // derived: not journaled (tree/repair.ts recounts)
			if (this.#freedNow(slot)) clearRecord(this.f64, slot);
			else clearListedRecord(this.f64, slot);
		} else {
			slot = hdr[HDR_SLOT_HIGH]!;
			if (slot >= this.capacity) throw new VmapError("ENOMEM", "record table full (reserve() was not called)");
			put(hdr, HDR_SLOT_HIGH, slot + 1);
			this.f64.fill(0, slot * REC_F64, (slot + 1) * REC_F64); // see takeRun()
		}
		return slot;
	}

	/**
	 * Slots freed in the critical section numbered #freedIn (journalSection()), for allocSlot:
	 * the first #freedNr of #freed (a count, not the array's length: setting a length is a
	 * runtime call, 2.5 % of a W0 profile).
	 */
	readonly #freed: number[] = [];
	#freedNr = 0;
	#freedIn = -1;

	/** The critical section (journalSection()) that journaled HDR_SLOT_FREE already. */
	#headIn = -1;

	/**
	 * Journal the slot free list's head once per critical section (journal.ts touch()): a
	 * section that takes and gives back many slots (a purge step frees a record per merged area)
	 * then writes it plainly; a rollback restores the head the section began with.
	 */
	#touchFreeHead(): void {
		const section = journalSection();
		if (section === this.#headIn) return;
		this.#headIn = section;
		touch(this.hdr, HDR_SLOT_FREE);
	}

	/** Whether `slot` was freed in the critical section now open. */
	#freedNow(slot: number): boolean {
		if (this.#freedIn !== journalSection()) return false;
		for (let i = 0; i < this.#freedNr; i++) if (this.#freed[i] === slot) return true;
		return false;
	}

	/**
	 * Header word of this handle's kept record (gauges.ts GAUGE_KEPT), 0 for a table no
	 * handle allocates through (a snapshot). Set once, by the handle that owns this view.
	 */
	keptWord = 0;
	/** The critical section (journalSection()) that kept the record. */
	#keptIn = -2;

	/** Whether this handle has no kept record: keep() may keep one. */
	canKeep(): boolean {
		return this.keptWord !== 0 && this.hdr[this.keptWord] === 0;
	}

	/** Keep record `va`, in no tree and on no list, as this handle's kept record (journaled); canKeep() must be true. */
	keep(va: number): void {
		put(this.hdr, this.keptWord, va);
		this.#keptIn = journalSection();
	}

	/**
	 * allocSlot() of this handle's kept record `slot`. Its words mean nothing to a rollback,
	 * unless it was kept in the journaled section now open (the area it held was busy when the
	 * section began): then each is journaled, as for a record freed in the section.
	 */
	#takeKept(slot: number): number {
		put(this.hdr, this.keptWord, 0);
		if (this.#keptIn >= 0 && this.#keptIn === journalSection()) clearRecord(this.f64, slot);
		else zeroRecord(this.f64, slot);
		return slot;
	}

	/** Return a slot to the slot free list. The slot must be in no tree and on no list. */
	freeSlot(slot: number): void {
		const section = journalSection();
		if (this.#freedIn !== section) {
			this.#freedNr = 0;
			this.#freedIn = section;
		}
		if (section >= 0) this.#freed[this.#freedNr++] = slot;
		const hdr = this.hdr;
		setVaNext(this.i32, slot, hdr[HDR_SLOT_FREE]!);
		this.#touchFreeHead();
		hdr[HDR_SLOT_FREE] = slot;
		hdr[HDR_SLOT_FREE_NR]!++; // derived
	}
}

/** The buffer with at least `bytes` bytes: grown in place if shared, else a larger copy. */
function grown(buffer: SpaceBuffer, bytes: number): SpaceBuffer {
	if (buffer.byteLength >= bytes) return buffer;
	if (isShared(buffer)) {
		buffer.grow(bytes);
		return buffer;
	}
	const copy = new ArrayBuffer(bytes);
	new Uint8Array(copy).set(new Uint8Array(buffer));
	return copy;
}
