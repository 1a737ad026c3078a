/**
 * The busy hash: each node's busy areas by start address, so that free() (and resize(), and a
 * block's retirement) finds the area starting at an address in O(1): a bucket word and a short
 * chain, instead of a descent of the busy tree whose every level, at a million areas, is a
 * cache and TLB miss. The busy tree stays: find() of an address inside an area, and the
 * ordered listings, need it.
 *
 * Layout: a table of 2^log Int32 buckets (record slots, 0: empty), packed REC_I32 to a record
 * in a run of whole records taken from the table's never-used end (VaTable.takeRun); an area
 * is chained through its `next` word, which nothing else uses while it is busy.
 *
 * Growth never stalls: no step is O(n) under a lock. When a
 * node holds more than MAX_LOAD areas per bucket, the next allocation that holds the
 * free-space lock (the lock of table growth) takes a table twice the size; the old one stays,
 * and every later hashed operation of the node moves MIGRATE_STEP of its buckets into the new
 * one. Lookups meanwhile search the new table, then the old bucket if it has not moved yet.
 * Once all have moved, the old table's records are retired, and given back RETIRE_STEP at a
 * time by later allocations. Every node has a table from the space's creation (2^HASH_MIN_LOG
 * buckets), so the hash always holds every busy area of its node: a recovery rebuilds a busy
 * tree from it (repair.ts). The tables' records come from a budget of their own beyond
 * maxAreas (hashBudget: the first tables and an eighth), so they never take a record an area
 * was promised; a table that cannot grow (its budget spent, or the buffer at its limit) stays
 * as it is: chains grow longer, nothing fails.
 *
 * Everything here runs under the node's busy lock; hashMaintain also under the free-space lock.
 */
import { add, put } from "../buffer/journal.ts";
import { HDR_HASH_BUDGET, HDR_HASH_RECORDS, REC_I32 } from "../buffer/layout.ts";
import {
	HASH_FIRST_RECORDS,
	HASH_MIN_LOG,
	N_BUSY_NR,
	N_HASH_FIRST,
	N_HASH_LOG,
	N_HASH_MOVED,
	N_HASH_OLD_FIRST,
	N_HASH_OLD_LOG,
	N_HASH_RETIRED_FIRST,
	N_HASH_RETIRED_LEFT,
} from "../buffer/node-layout.ts";
import { clearRecord, initVaNext, setVaNext, vaNext, vaStart, setRecWord } from "../buffer/record.ts";
import type { VaTable } from "../buffer/va-table.ts";

/** Areas per bucket above which the table doubles (at most 4 bytes of table per 2 areas after). */
const MAX_LOAD = 2;
/** Old buckets moved into the new table per hashed operation. */
const MIGRATE_STEP = 4;
/** Retired table records given back per maintenance call. */
const RETIRE_STEP = 64;
/** The Int32 word of `next` within a record (record.ts: va * 10 + 9), for unlinking in place. */
const NEXT_WORD = 9;

/** 2^-32: multiplying by it divides by 2^32 exactly (a multiplication, where `/` is a division). */
const TWO_POW_MINUS_32 = 2 ** -32;

/** The bucket of start address `addr` in a table of 2^log buckets (Fibonacci hashing of both 32-bit halves). */
export function hashBucket(addr: number, log: number): number {
	const lo = addr >>> 0;
	const hi = (addr * TWO_POW_MINUS_32) >>> 0;
	return Math.imul(lo ^ Math.imul(hi, 0x27d4eb2d), 0x9e3779b1) >>> (32 - log);
}

/**
 * Where the last hashFind() found its record: the Int32 word of view `i32` that links to it (a
 * bucket, or its predecessor's `next`; 0 none). A free finds its area, then unlinks it under
 * the same hold of the lock: hashRemove() takes the link from here, in the same view, when it
 * still links to that record, instead of hashing and walking the chain again. One object, not
 * module `let`s (see journal.ts).
 */
const NO_VIEW: Int32Array = new Int32Array(0);
const found = { word: 0, i32: NO_VIEW }; // NO_VIEW once used: no old buffer is kept alive

/** Records a table of 2^log buckets takes. */
export function hashRecords(log: number): number {
	return Math.ceil(2 ** log / REC_I32);
}

/** The record on the chain whose head is in Int32 word `w` that starts at `addr`, or 0; found.word links to it. */
function chainFind(f64: Float64Array, i32: Int32Array, w: number, addr: number): number {
	for (let va = i32[w]!; va !== 0; va = i32[w]!) {
		if (vaStart(f64, va) === addr) {
			found.word = w;
			found.i32 = i32;
			return va;
		}
		w = va * REC_I32 + NEXT_WORD;
	}
	return 0;
}

/** The busy area of node base `b` starting exactly at `addr`, or 0. */
export function hashFind(t: VaTable, b: number, addr: number): number {
	const hdr = t.hdr;
	const log = hdr[b + N_HASH_LOG]!;
	const f64 = t.f64;
	const i32 = t.i32;
	found.word = 0;
	found.i32 = NO_VIEW;
	const va = chainFind(f64, i32, hdr[b + N_HASH_FIRST]! * REC_I32 + hashBucket(addr, log), addr);
	if (va !== 0) return va;
	const oldLog = hdr[b + N_HASH_OLD_LOG]!;
	if (oldLog === 0) return 0;
	const ob = hashBucket(addr, oldLog);
	return ob < hdr[b + N_HASH_MOVED]! ? 0 : chainFind(f64, i32, hdr[b + N_HASH_OLD_FIRST]! * REC_I32 + ob, addr);
}

/**
 * Chain busy record `va`, starting at `start`, into node base `b`'s table; `fresh`: allocSlot()
 * took it in this critical section (its link is then written without a journal entry, initVaNext).
 */
export function hashInsert(t: VaTable, b: number, va: number, start: number, fresh: boolean): void {
	const hdr = t.hdr;
	const log = hdr[b + N_HASH_LOG]!;
	const i32 = t.i32;
	const w = hdr[b + N_HASH_FIRST]! * REC_I32 + hashBucket(start, log);
	if (fresh) initVaNext(i32, va, i32[w]!);
	else setVaNext(i32, va, i32[w]!);
	setRecWord(i32, w, va);
	if (hdr[b + N_HASH_OLD_LOG] !== 0) migrateStep(t, b);
}

/** Unlink `va` from the chain whose head is in Int32 word `w`; whether it was there. Its `next` is left as it was. */
function unlink(i32: Int32Array, w: number, va: number): boolean {
	for (let x = i32[w]!; x !== 0; x = i32[w]!) {
		if (x === va) {
			setRecWord(i32, w, vaNext(i32, va));
			return true;
		}
		w = x * REC_I32 + NEXT_WORD;
	}
	return false;
}

/**
 * Take busy record `va`, starting at `start`, out of node base `b`'s table. Its `next` is left
 * as it was: the caller links it into a lazy tree's list in the same critical section.
 */
export function hashRemove(t: VaTable, b: number, va: number, start: number): void {
	const hdr = t.hdr;
	const i32 = t.i32;
	const w = found.word;
	const view = found.i32;
	found.word = 0;
	found.i32 = NO_VIEW;
	if (w !== 0 && view === i32 && i32[w] === va) {
		// The word hashFind() found linking to va, unchanged since: unlink va there.
		setRecWord(i32, w, vaNext(i32, va));
		if (hdr[b + N_HASH_OLD_LOG] !== 0) migrateStep(t, b);
		return;
	}
	const log = hdr[b + N_HASH_LOG]!;
	if (!unlink(i32, hdr[b + N_HASH_FIRST]! * REC_I32 + hashBucket(start, log), va)) {
		const oldLog = hdr[b + N_HASH_OLD_LOG]!;
		if (oldLog !== 0) unlink(i32, hdr[b + N_HASH_OLD_FIRST]! * REC_I32 + hashBucket(start, oldLog), va);
	}
	if (hdr[b + N_HASH_OLD_LOG] !== 0) migrateStep(t, b);
}

/** Move the next MIGRATE_STEP buckets of the old table into the new one; retire the old table after its last. */
function migrateStep(t: VaTable, b: number): void {
	const hdr = t.hdr;
	const f64 = t.f64;
	const i32 = t.i32;
	const oldLog = hdr[b + N_HASH_OLD_LOG]!;
	const oldFirst = hdr[b + N_HASH_OLD_FIRST]! * REC_I32;
	const first = hdr[b + N_HASH_FIRST]! * REC_I32;
	const log = hdr[b + N_HASH_LOG]!;
	const n = 1 << oldLog;
	let moved = hdr[b + N_HASH_MOVED]!;
	for (const stop = Math.min(n, moved + MIGRATE_STEP); moved < stop; moved++) {
		let va = i32[oldFirst + moved]!;
		setRecWord(i32, oldFirst + moved, 0);
		while (va !== 0) {
			const after = vaNext(i32, va);
			const w = first + hashBucket(vaStart(f64, va), log);
			setVaNext(i32, va, i32[w]!);
			setRecWord(i32, w, va);
			va = after;
		}
	}
	put(hdr, b + N_HASH_MOVED, moved);
	if (moved < n) return;
	// Every bucket moved: the old table's records wait for hashMaintain to give them back.
	put(hdr, b + N_HASH_RETIRED_FIRST, hdr[b + N_HASH_OLD_FIRST]!);
	put(hdr, b + N_HASH_RETIRED_LEFT, hashRecords(oldLog));
	put(hdr, b + N_HASH_OLD_FIRST, 0);
	put(hdr, b + N_HASH_OLD_LOG, 0);
	put(hdr, b + N_HASH_MOVED, 0);
}

/**
 * Under the free-space lock and node base `b`'s busy lock, after an allocation: give back a
 * step of a retired table's records, and start a larger table when the node is due one (only
 * when no old table is still moving or retiring). May grow the record table: the caller reads
 * the views again after it.
 */
export function hashMaintain(t: VaTable, b: number): void {
	const hdr = t.hdr;
	const left = hdr[b + N_HASH_RETIRED_LEFT]!;
	if (left > 0) {
		const n = Math.min(left, RETIRE_STEP);
		const at = hdr[b + N_HASH_RETIRED_FIRST]! + left - n;
		for (let r = at + n - 1; r >= at; r--) {
			clearRecord(t.f64, r); // buckets of a retired table: slots hold zeros until reused
			t.freeSlot(r);
		}
		put(hdr, b + N_HASH_RETIRED_LEFT, left - n);
		add(hdr, HDR_HASH_RECORDS, -n);
		if (left === n) put(hdr, b + N_HASH_RETIRED_FIRST, 0);
		return;
	}
	const log = hdr[b + N_HASH_LOG]!;
	if (hdr[b + N_HASH_OLD_LOG] !== 0 || hdr[b + N_BUSY_NR]! <= MAX_LOAD * (1 << log)) return; // log <= 30: no Math.pow
	const next = log + 1;
	const run = hashRecords(next);
	// Within the hashes' budget (HDR_HASH_BUDGET, beyond maxAreas): the areas keep every record
	// they were promised.
	if (hdr[HDR_HASH_RECORDS]! + run > hdr[HDR_HASH_BUDGET]!) return;
	try {
		t.reserveRun(run);
	} catch {
		return; // the buffer cannot grow: longer chains, nothing fails
	}
	const first = t.takeRun(run);
	const h = t.hdr; // after reserveRun, which may have replaced the views
	add(h, HDR_HASH_RECORDS, run);
	put(h, b + N_HASH_OLD_FIRST, h[b + N_HASH_FIRST]!);
	put(h, b + N_HASH_OLD_LOG, log);
	put(h, b + N_HASH_MOVED, 0);
	put(h, b + N_HASH_FIRST, first);
	put(h, b + N_HASH_LOG, next);
}

/** Node base `b`'s first table, empty, when the space is made (within the hashes' budget: hashBudget counts it). */
export function hashFirstTable(t: VaTable, b: number): void {
	t.reserveRun(HASH_FIRST_RECORDS);
	const first = t.takeRun(HASH_FIRST_RECORDS);
	const hdr = t.hdr;
	hdr[HDR_HASH_RECORDS]! += HASH_FIRST_RECORDS;
	hdr[b + N_HASH_FIRST] = first;
	hdr[b + N_HASH_LOG] = HASH_MIN_LOG;
}

/**
 * Every record node base `b`'s hash chains (its table's, and the old table's buckets not yet
 * moved), for a recovery that rebuilds the busy tree from them; undefined when the chains are
 * not lists of records (a cycle, a record outside the table).
 */
export function hashMembers(t: VaTable, b: number): number[] | undefined {
	const hdr = t.hdr;
	const i32 = t.i32;
	const out: number[] = [];
	const chains = (first: number, log: number, from: number): boolean => {
		for (let i = from; i < 2 ** log; i++) {
			for (let va = i32[first * REC_I32 + i]!; va !== 0; va = vaNext(i32, va)) {
				if (va < 0 || va >= t.capacity || out.length >= t.capacity) return false;
				out.push(va);
			}
		}
		return true;
	};
	if (!chains(hdr[b + N_HASH_FIRST]!, hdr[b + N_HASH_LOG]!, 0)) return undefined;
	const oldLog = hdr[b + N_HASH_OLD_LOG]!;
	if (oldLog !== 0 && !chains(hdr[b + N_HASH_OLD_FIRST]!, oldLog, hdr[b + N_HASH_MOVED]!)) return undefined;
	return out;
}
