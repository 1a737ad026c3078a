/**
 * The undo journal: what makes a critical section recoverable when its holder dies (a worker
 * pool terminates a worker on a timeout, and a terminated worker stops between any two
 * statements). Databases do this; the kernel never has to.
 *
 * A handle that takes its first lock claims one of JOURNALS journals (header words, layout.ts)
 * and keeps it until it releases its last lock. Every write under a lock that a rollback must
 * restore goes through this file: it appends [key, old value] to the journal, counts it, and
 * only then writes the word. So at every instant the journal lists the old value of every
 * such word the critical section changed. What can be rebuilt from those words is written
 * plainly: the trees and their counts (tree/repair.ts), and the words of a record taken in the
 * open section (record.ts initVa). Releasing a lock commits: the journal empties, before the
 * lock word is released. When a handle's end is observed while it holds locks (handles.ts),
 * the observer rolls its journal back, newest entry first, has the trees rebuilt and releases
 * its locks: the structures are as they were when the holder last released a lock (or took
 * its first). Nobody else can have written those words meanwhile: their locks were held.
 *
 * Ordering hazards: the entry is written before the count, the count before the word; the
 * commit empties the journal before the lock word is released. A thread that dies stops
 * between two statements, and its plain writes are visible to the thread that observed its
 * end (the worker's exit event comes after them).
 *
 * Keys: word index * 4 + view: 0 the header's Int32 view, 1 its Float64 view, 2 the records'
 * Int32 view, 3 their Float64 view. A section longer than a journal (loops commit as they go,
 * so none is) marks it overflowed: its rollback is then impossible, and recovery says so
 * (EOWNERDEAD).
 *
 * Crash points (tests only): crashAfter(n) makes the n-th journaled write, lock acquisition
 * or release from now on throw CrashPoint instead of happening, and every later one too, as
 * if the thread had stopped there; a test then ends the handle from another one and checks
 * what recovery left.
 */
import { JOURNAL_BYTES, JOURNAL_ENTRIES, JOURNAL_OFFSET, JOURNAL_OVERFLOWED } from "./layout.ts";

/** Int32 word of journal `j`'s owner. */
export function journalOwner(j: number): number {
	return (JOURNAL_OFFSET + j * JOURNAL_BYTES) / 4;
}

/** Float64 word of journal `j`'s count (its entries follow it). */
export function journalHead(j: number): number {
	return (JOURNAL_OFFSET + j * JOURNAL_BYTES) / 8 + 1;
}

const NONE: Float64Array = new Float64Array(0);

/**
 * This thread's journaling state, one object of one shape (module `let`s cost a context load
 * and a hole check at every use, in the hottest function of the space).
 */
const j = {
	/** The Float64 header view of the space whose journal this thread writes (NONE: no lock held, or a one-thread space). */
	view: NONE as Float64Array,
	/** Float64 index of the journal's count word: f64 words used by entries. */
	head: 0,
	/** Float64 index of the next entry, and one past the last; end 0 when not journaling. */
	next: 0,
	end: 0,
	/** One past the journal's last entry (end is less while a crash point is set). */
	capacity: 0,
	/** Where `next` was when the countdown last counted the entries written (settle()). */
	mark: 0,
	/** Crash points left before the thread stops (tests; 0: none set, -1: stopped). */
	countdown: 0,
	/** Counts journal opens and commits: what was written since the last is the section in progress (journalSection()). */
	section: 0,
};

/**
 * A number that changes whenever a critical section begins or commits, so that records freed
 * under one number were freed in the section now open; -1 while nothing is journaled.
 */
export function journalSection(): number {
	return j.end === 0 ? -1 : j.section;
}

/** Start journaling into the journal whose count word is Float64 word `head` of `hdrF`, empty. */
export function journalOpen(hdrF: Float64Array, head: number): void {
	j.section++;
	j.view = hdrF;
	j.head = head;
	j.next = head + 1;
	j.capacity = head + 1 + 2 * JOURNAL_ENTRIES;
	j.end = j.capacity;
	if (j.countdown !== 0) {
		j.mark = j.next;
		j.end = limit();
	}
	hdrF[head] = 0;
}

/** Commit: what was written stays, the journal empties. Before a lock word is released, and between the steps of a long section. */
export function journalCommit(): void {
	if (j.end === 0) return;
	j.section++;
	const head = j.head;
	if (j.countdown !== 0) {
		settle();
		j.view[head] = 0;
		j.next = head + 1;
		j.mark = j.next;
		j.end = limit();
	} else if (j.next !== head + 1) {
		j.view[head] = 0; // a section that journaled nothing leaves the count word alone
		j.next = head + 1;
	}
}

/** Stop journaling (the last lock was released). */
export function journalClose(): void {
	if (j.countdown !== 0) settle();
	j.view = NONE;
	j.end = 0;
	j.next = 0;
}

/**
 * Record that the word of `key` held `old`; the caller writes it next. Small, to be inlined
 * into every setter: a crash point shortens `end` (limit()), so that the rare cases (a crash
 * point, a full journal) share one branch.
 */
function log(key: number, old: number): void {
	const n = j.next;
	if (n < j.end) {
		const v = j.view;
		v[n] = key;
		v[n + 1] = old;
		j.next = n + 2;
		v[j.head] = n + 1 - j.head;
	} else if (j.end !== 0) pastEnd(key, old);
}

/** log() reached `end`: a crash point, or the journal is full (it is then marked overflowed and journaling stops). */
function pastEnd(key: number, old: number): void {
	if (j.countdown !== 0) {
		crashPoint(); // throws when it is this write's turn
		j.end = limit();
		log(key, old);
		return;
	}
	j.view[j.head] = JOURNAL_OVERFLOWED;
	j.end = 0;
	overflows++;
}

/** Header Int32 word `i` := v, journaled. */
export function put(hdr: Int32Array, i: number, v: number): void {
	const old = hdr[i]!;
	if (old === v) return;
	log(i * 4, old);
	hdr[i] = v;
}

/**
 * Journal header Int32 word `i` as it is now, without writing it: the caller then writes it
 * plainly until the section commits (a rollback restores this value, the one the section
 * began with). For a word a loop rewrites many times in one section.
 */
export function touch(hdr: Int32Array, i: number): void {
	log(i * 4, hdr[i]!);
}

/** Header Int32 word `i` := v with Atomics.store (read by threads holding no lock), journaled. */
export function putAtomic(hdr: Int32Array, i: number, v: number): void {
	log(i * 4, hdr[i]!);
	Atomics.store(hdr, i, v);
}

/** Header Int32 word `i` += d, journaled. */
export function add(hdr: Int32Array, i: number, d: number): void {
	const old = hdr[i]!;
	log(i * 4, old);
	hdr[i] = old + d;
}

/** Header Float64 word `i` := v, journaled. */
export function putF(hdrF: Float64Array, i: number, v: number): void {
	const old = hdrF[i]!;
	if (old === v) return;
	log(i * 4 + 1, old);
	hdrF[i] = v;
}

/** Header Float64 word `i` += d, journaled. */
export function addF(hdrF: Float64Array, i: number, d: number): void {
	const old = hdrF[i]!;
	log(i * 4 + 1, old);
	hdrF[i] = old + d;
}

/** Record Int32 word `i` (of t.i32) held `old`: record.ts's setters call this before writing. */
export function logRec(i: number, old: number): void {
	log(i * 4 + 2, old);
}

/** Record Float64 word `i` (of t.f64) held `old`. */
export function logRecF(i: number, old: number): void {
	log(i * 4 + 3, old);
}

/** The views a rollback writes through, in key order (0-3): header Int32, header Float64, records Int32, records Float64. */
export type JournalViews = readonly [Int32Array, Float64Array, Int32Array, Float64Array];

/**
 * Undo the journal whose count word is Float64 word `head` (of views[1]), newest entry first,
 * and empty it. Only for a journal whose writer has stopped for good. False if it had
 * overflowed (nothing is undone then: the caller reports what was lost).
 */
export function journalRollback(views: JournalViews, head: number): boolean {
	const hdrF = views[1];
	const used = hdrF[head]!;
	if (used === JOURNAL_OVERFLOWED) return false;
	for (let n = head + 1 + used - 2; n > head; n -= 2) {
		const key = hdrF[n]!;
		views[key % 4]![Math.floor(key / 4)] = hdrF[n + 1]!;
	}
	hdrF[head] = 0;
	return true;
}

// ── crash points, for tests ────────────────────────────────────────────────────────────

/** Thrown at a crash point (crashAfter); never seen outside tests. */
export class CrashPoint extends Error {
	constructor() {
		super("crash point: this thread stopped here (a test)");
	}
}

let crashed = false;
/** Journals that overflowed in this thread (tests assert none). */
export let overflows = 0;

/**
 * @internal Make the n-th crash point from now stop the thread (n >= 1); 0 cancels, forgets a
 * journal the stopped thread left open, and thaws.
 */
export function crashAfter(n: number): void {
	if (n === 0) journalClose();
	j.countdown = n;
	crashed = false;
	if (j.end !== 0) {
		j.mark = j.next;
		j.end = limit();
	}
}

/** @internal Crash points left before the one crashAfter() set (to count a section's points: set many, run, subtract). */
export function crashPointsLeft(): number {
	settle();
	return j.countdown;
}

/** @internal Whether a crash point was reached since crashAfter(). */
export function hasCrashed(): boolean {
	return crashed;
}

/**
 * Whether crash points are set (tests): a hot path without a journal (the small-area cache)
 * reads it once into a local and calls crashPoint() only when it is, so that its points cost
 * a register test, not a load each.
 */
export function crashArmed(): boolean {
	return j.countdown !== 0;
}

/** A step of the lock protocol or a journaled write: throws once the countdown ran out. Small, to be inlined: one load and a test when no crash point is set. */
export function crashPoint(): void {
	if (j.countdown !== 0) countdownStep();
}

function countdownStep(): void {
	settle();
	if (crashed || --j.countdown === 0) {
		crashed = true;
		j.countdown = -1; // every later point throws too
		j.end = limit();
		throw new CrashPoint();
	}
	if (j.end !== 0) j.end = limit();
}

/** Count the writes log() made since the last settle() as crash points passed. */
function settle(): void {
	if (j.countdown <= 0 || j.end === 0) return;
	j.countdown -= (j.next - j.mark) >> 1;
	j.mark = j.next;
}

/** Where log() must leave its fast path: the journal's end, or the write whose turn it is to crash. */
function limit(): number {
	if (j.countdown === 0) return j.capacity;
	return Math.min(j.capacity, j.next + 2 * Math.max(0, j.countdown - 1));
}
