/**
 * Locks shared by every handle of a space: Int32 words in the header, driven by Atomics.
 *
 * A lock word is 0 when free; its holder sets bit 0 and its handle id in bits 1-11 with one
 * compareExchange, so who holds a lock is never unknown, not even for the instant after the
 * exchange. LOCK_WAITERS (bit 30) is set while a thread sleeps on it. The next word
 * (LOCK_SEQ_OFFSET) counts the lock's releases: the holder adds one before it releases, so a
 * statistics reader copies counters between two readings of it, with the lock seen free
 * before and after, and needs no lock (as "vmalloc: use rcu list iterator to reduce
 * vmap_area_lock contention" asks: seqRead()/seqSame()). Acquire is a plain read and one
 * compareExchange; release one exchange, and a notify only if LOCK_WAITERS was set (notify
 * costs even with nobody waiting). On V8 every Atomics call is about 10 ns (not inlined), so
 * two per critical section is the budget. A contended acquirer spins briefly, then sets
 * LOCK_WAITERS and sleeps in Atomics.wait (or keeps spinning where waiting is forbidden: a
 * browser's main thread).
 *
 * Liveness. No lock is held across user code (a flush hook) or a turn of the event loop, so
 * every holding is short unless its holder's thread is slow, busy or paused, and then waiters
 * simply wait: a holder is never taken for dead because it is slow. Death is observed, not
 * guessed (handles.ts): a handle that closes, or whose worker's exit is seen by watch(),
 * ends. Every write made under a lock is journaled (journal.ts), so when a handle ends holding
 * locks, the observer undoes its unfinished critical section and releases them, and the space
 * goes on. Every wait ends after `timeoutMs` with ETIMEDOUT naming the holder, the inner
 * locks of the lock order included (a live holder keeps them for microseconds; an unobserved
 * dead one forever). That is safe because every critical section takes all of its locks
 * before it changes anything (two-phase), and releases what it holds when a later acquire
 * throws; a purge, which changes the space in several steps, hands its batch to the next
 * purge (BATCH_ORPHAN) when a step times out.
 */
import { VmapError } from "../api/errors.ts";
import { longWait, warn } from "../util/report.ts";
import { crashPoint, journalClose, journalCommit, journalHead, journalOpen, journalOwner } from "./journal.ts";
import { HDR_DEAD, HDR_FREE_LOCK, HDR_PURGE_LOCK, HDR_SEQ_PURGE, HDR_TAG_LOCK, JOURNALS, JOURNALS_OWN, LOCK_SEQ_OFFSET } from "./layout.ts";
import { deadError, lockName, longWaitMessage, timedOut } from "./lock-names.ts";
import type { LockWait } from "../api/types.ts";
import { N_BUSY_LOCK, N_LAZY_LOCK, N_POOL_LOCK, nodeBase } from "./node-layout.ts";
import { isShared, type VaTable } from "./va-table.ts";

export const LOCK_WAITERS = 1 << 30;
/** A sequence word counts in these bits, so that it is never negative (seqRead's -1). */
export const LOCK_SEQ_MASK = 0x3fffffff;
/** The holder's handle id in a held lock word: (word >> 1) & LOCK_HOLDER. */
export const LOCK_HOLDER = 0x7ff;

/** The handle holding lock `word`, 0 when free. */
export function lockHolder(hdr: Int32Array, word: number): number {
	const w = Atomics.load(hdr, word);
	return (w & 1) === 0 ? 0 : (w >> 1) & LOCK_HOLDER;
}

/**
 * Open a lock-free read of what lock `word` guards (or of the purge counters, HDR_SEQ_PURGE):
 * a token for seqSame(), or -1 while a writer is in (retry).
 */
export function seqRead(hdr: Int32Array, word: number): number {
	if (word === HDR_SEQ_PURGE) {
		const seq = Atomics.load(hdr, word);
		return (seq & 1) === 0 ? seq : -1;
	}
	const seq = Atomics.load(hdr, word + LOCK_SEQ_OFFSET); // before the lock word: see seqSame
	return (Atomics.load(hdr, word) & 1) === 0 ? seq : -1;
}

/**
 * Whether no writer came since seqRead() gave `token`: the lock is free now and its sequence
 * unchanged. A writer that came after the first reading of the lock word added one to the
 * sequence before it released, or holds the lock still.
 */
export function seqSame(hdr: Int32Array, word: number, token: number): boolean {
	if (token < 0) return false;
	if (word === HDR_SEQ_PURGE) return Atomics.load(hdr, word) === token;
	return (Atomics.load(hdr, word) & 1) === 0 && Atomics.load(hdr, word + LOCK_SEQ_OFFSET) === token;
}
/**
 * Open a write to the purge counters (HDR_SEQ_PURGE, a sequence word: odd while a write is
 * open, so a lock-free reader retries); the caller holds the purge mutex.
 */
export function seqBegin(hdr: Int32Array): void {
	Atomics.add(hdr, HDR_SEQ_PURGE, 1);
}

/** Close a write opened by seqBegin. */
export function seqEnd(hdr: Int32Array): void {
	Atomics.add(hdr, HDR_SEQ_PURGE, 1);
}

/** Spins (about 20 us) before a contended acquirer sleeps: a critical section lasts well under 1 us, a futex sleep and wake far longer (2 workers on W0: 0.40x of one worker with 200 spins, 0.59x with 2000). */
const SPINS = 2000;
/** One sleep; the holder's liveness is looked at between sleeps. */
const SLEEP_MS = 20;
/** How long releaseToWaiter() leaves a released lock to a woken waiter: a futex wake takes tens of microseconds. */
const HANDOFF_MS = 0.2;

/** Whether this thread may block in Atomics.wait (not on a browser's main thread). */
export const canWait: boolean = (() => {
	if (typeof SharedArrayBuffer !== "function") return false; // no sharing, nobody to wait for
	try {
		Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
		return true;
	} catch {
		return false;
	}
})();

export class Locks {
	/** This handle's id, written into the lock words it holds. */
	readonly self: number;
	/** Milliseconds this handle spent waiting for locks held by others. */
	waitMs = 0;
	/** The same by lock word. */
	readonly #waits = new Map<number, number>();
	/** Views come from the table each time: a one-thread space's buffer is replaced as it grows. */
	readonly #t: VaTable;
	/** A held lock word's value (LOCK_WAITERS aside). */
	readonly #held: number;
	/** Locks held now; the journal is claimed while it is not 0. */
	#depth = 0;
	/**
	 * This handle's own journal (ids up to JOURNALS_OWN), else the shared one it used last
	 * (tried first next time); -1 in a one-thread space: no other handle can observe it die.
	 */
	#journal: number;
	/** Whether #journal is this handle's own (held for its whole life, no claim per section), and then its count word. */
	readonly #own: boolean;
	readonly #head: number;

	constructor(t: VaTable, self: number) {
		this.#t = t;
		this.self = self;
		this.#held = (self << 1) | 1;
		const shared = isShared(t.buffer);
		this.#own = shared && self <= JOURNALS_OWN;
		this.#journal = !shared ? -1 : this.#own ? self - 1 : JOURNALS_OWN + (self % (JOURNALS - JOURNALS_OWN));
		this.#head = this.#own ? journalHead(this.#journal) : 0;
		if (this.#own) Atomics.store(t.hdr, journalOwner(this.#journal), self);
	}

	/** close(): this handle's own journal, empty, is nobody's (kept while a lock is held: a close cut short by death is rolled back from it). */
	closeJournal(): void {
		if (this.#own && this.#depth === 0) Atomics.store(this.#t.hdr, journalOwner(this.#journal), 0);
	}

	/**
	 * How long one wait for a lock may last, in ms (the space's timeoutMs option, or a call's
	 * own); Infinity: as long as the holder lives.
	 */
	timeoutMs = Infinity;

	/**
	 * Take lock `word`, waiting while its holder lives. Throws EOWNERDEAD once a recovery
	 * failed, and ETIMEDOUT after timeoutMs; either way the caller still holds what it held, and
	 * releases it.
	 */
	acquire(word: number): void {
		if (this.#depth === 0) this.#claimJournal();
		if (!this.#take(word)) this.#acquireContended(word);
		this.#depth++;
	}

	/** acquire() of a lock in use: wait; when the wait throws, give back the journal claimed for it. */
	#acquireContended(word: number): void {
		try {
			this.#contended(word);
		} catch (e) {
			if (this.#depth === 0) this.#freeJournal();
			throw e;
		}
	}

	/** Take lock `word` if it is free now. */
	tryAcquire(word: number): boolean {
		if (this.#depth === 0) {
			if ((this.#t.hdr[word]! & 1) !== 0) return false; // no journal for a lock in use
			this.#claimJournal();
		}
		if (this.#take(word)) {
			this.#depth++;
			return true;
		}
		if (this.#depth === 0) this.#freeJournal();
		return false;
	}

	#take(word: number): boolean {
		const hdr = this.#t.hdr;
		const cur = hdr[word]!; // plain read: the compareExchange validates it
		crashPoint();
		return (cur & 1) === 0 && Atomics.compareExchange(hdr, word, cur, cur | this.#held) === cur;
	}

	/**
	 * Take lock `word` while holding `outer` (and `outer2`, if not -1), before changing
	 * anything: when the wait throws (ETIMEDOUT, EOWNERDEAD), the outer locks are released and
	 * the call fails having changed nothing.
	 */
	acquireUnder(word: number, outer: number, outer2 = -1): void {
		try {
			this.acquire(word);
		} catch (e) {
			this.release(outer);
			if (outer2 !== -1) this.release(outer2);
			throw e;
		}
	}

	/**
	 * Commit what was written under the locks held (journal.ts) and release `word`. A lock
	 * released while others are still held ends a step: what the holder wrote so far stays,
	 * even if it dies holding the others.
	 */
	release(word: number): void {
		const hdr = this.#t.hdr;
		crashPoint();
		journalCommit();
		crashPoint();
		hdr[word + LOCK_SEQ_OFFSET] = (hdr[word + LOCK_SEQ_OFFSET]! + 1) & LOCK_SEQ_MASK;
		// Free, LOCK_WAITERS cleared: sleepers set it anew before they sleep again.
		if (Atomics.exchange(hdr, word, 0) & LOCK_WAITERS) Atomics.notify(hdr, word, 1);
		if (--this.#depth === 0) this.#freeJournal();
	}

	/**
	 * release(), for a loop that takes `word` again at once (the sliced listings): if another
	 * handle sleeps waiting for it, give that handle up to HANDOFF_MS to take it first. Without
	 * this the loop wins every race against a waiter that must first wake up, and the waiter
	 * starves (measured: 60 ms waits behind a listing of a million areas, in slices of 0.1 ms).
	 */
	releaseToWaiter(word: number): void {
		const hdr = this.#t.hdr;
		const waiters = (Atomics.load(hdr, word) & LOCK_WAITERS) !== 0;
		this.release(word);
		if (!waiters) return;
		const until = performance.now() + HANDOFF_MS;
		while (Atomics.load(hdr, word) === 0 && performance.now() < until); // until the waiter takes it
	}

	/** The handle id holding `word`, 0 when free. */
	owner(word: number): number {
		return lockHolder(this.#t.hdr, word);
	}

	/** Set by close(): this handle takes no more locks. */
	closed = false;

	/** Throw EOWNERDEAD if a recovery failed, EINVAL if this handle was closed. */
	ensureAlive(): void {
		if (this.#t.hdr[HDR_DEAD] !== 0) throw deadError(this.#t.hdr);
		this.ensureOpen();
	}

	/** EINVAL once this handle is closed (a space left unusable may still be read: stats(), dump()). */
	ensureOpen(): void {
		if (this.closed) throw new VmapError("EINVAL", `This handle (id ${this.self}) was closed; attach a new one`);
	}

	/**
	 * Claim a journal for the critical section about to begin: the one used last if free, else
	 * any; when all JOURNALS are in use (that many handles inside critical sections), wait as
	 * for a lock.
	 */
	#claimJournal(): void {
		if (this.#journal < 0) return;
		if (this.#own) {
			journalOpen(this.#t.hdrF, this.#head);
			return;
		}
		const hdr = this.#t.hdr;
		const sticky = journalOwner(this.#journal);
		if (hdr[sticky] === 0) {
			crashPoint();
			if (Atomics.compareExchange(hdr, sticky, 0, this.self) === 0) {
				journalOpen(this.#t.hdrF, journalHead(this.#journal));
				return;
			}
		}
		this.#claimAnyJournal();
	}

	#claimAnyJournal(): void {
		const hdr = this.#t.hdr;
		const t0 = performance.now();
		for (let spin = 0; ; spin++) {
			for (let i = 1; i <= JOURNALS - JOURNALS_OWN; i++) {
				const j = JOURNALS_OWN + ((this.#journal - JOURNALS_OWN + i) % (JOURNALS - JOURNALS_OWN));
				if (hdr[journalOwner(j)] !== 0) continue;
				crashPoint();
				if (Atomics.compareExchange(hdr, journalOwner(j), 0, this.self) !== 0) continue;
				this.#journal = j;
				journalOpen(this.#t.hdrF, journalHead(j));
				return;
			}
			if (hdr[HDR_DEAD] !== 0) throw deadError(hdr);
			if (spin >= SPINS && performance.now() - t0 >= this.timeoutMs)
				throw new VmapError(
					"ETIMEDOUT",
					`Waited ${this.timeoutMs} ms for an undo journal: all ${JOURNALS - JOURNALS_OWN} shared ones are held by handles (ids above ${JOURNALS_OWN}) inside critical sections; nothing was changed`,
				);
			if (spin >= SPINS && canWait) Atomics.wait(hdr, journalOwner(this.#journal), hdr[journalOwner(this.#journal)]!, 1);
		}
	}

	/** Give the journal back: empty (committed by the last release). */
	#freeJournal(): void {
		if (this.#journal < 0) return;
		journalClose();
		if (this.#own) return;
		crashPoint();
		Atomics.store(this.#t.hdr, journalOwner(this.#journal), 0);
	}

	#contended(word: number): void {
		const hdr = this.#t.hdr;
		const t0 = performance.now();
		const deadline = t0 + this.timeoutMs;
		let warnAt = this.timeoutMs === Infinity ? t0 + longWait.longMs : Infinity;
		for (let spin = 0; ; spin++) {
			crashPoint(); // a stopped thread waits for nothing, its own locks included (tests)
			const cur = Atomics.load(hdr, word);
			if ((cur & 1) === 0) {
				// Keep LOCK_WAITERS if set: others may sleep, and our release must wake one.
				crashPoint();
				if (Atomics.compareExchange(hdr, word, cur, cur | this.#held) === cur) break;
				continue;
			}
			if (hdr[HDR_DEAD] !== 0) throw deadError(hdr);
			if (spin < SPINS) continue;
			const now = performance.now();
			if (now >= deadline) {
				this.#waited(word, now - t0);
				throw timedOut(hdr, word, (cur >> 1) & LOCK_HOLDER, this.timeoutMs);
			}
			if (now >= warnAt) {
				warnAt = Infinity;
				warn(longWaitMessage(hdr, word, this.self, (cur >> 1) & LOCK_HOLDER));
			}
			if (!canWait) continue;
			if ((cur & LOCK_WAITERS) === 0 && Atomics.compareExchange(hdr, word, cur, cur | LOCK_WAITERS) !== cur) continue;
			Atomics.wait(hdr, word, cur | LOCK_WAITERS, SLEEP_MS);
		}
		this.#waited(word, performance.now() - t0);
	}

	/** Time waited for lock `word`, counted in waitMs and by lock (waits only: an acquire that found the lock free adds nothing). */
	#waited(word: number, ms: number): void {
		this.waitMs += ms;
		this.#waits.set(word, (this.#waits.get(word) ?? 0) + ms);
	}

	/** What waitMs was spent on: milliseconds per lock, named as in messages, the longest first. */
	waitsByLock(): LockWait[] {
		const hdr = this.#t.hdr;
		return [...this.#waits].map(([word, ms]) => ({ lock: lockName(hdr, word), ms })).sort((a, b) => b.ms - a.ms);
	}
}

/** The space's lock words: global, then every node's. */
export function spaceLockWords(t: VaTable): number[] {
	const words = [HDR_PURGE_LOCK, HDR_FREE_LOCK, HDR_TAG_LOCK];
	for (let v = 0; v < t.nodes; v++) words.push(nodeBase(v) + N_POOL_LOCK, nodeBase(v) + N_BUSY_LOCK, nodeBase(v) + N_LAZY_LOCK);
	return words;
}
