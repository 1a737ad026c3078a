/**
 * Locks shared by every handle of a space: Int32 words in the header, driven by Atomics.
 *
 * A lock word counts: even when free, odd while held, one more at every acquire and release
 * (bits 0-29), with LOCK_WAITERS (bit 30) set while a thread sleeps on it. So the word is also
 * the sequence lock of everything written under it: a statistics reader copies counters
 * between two equal, even readings of the word and needs no lock (as "vmalloc: use rcu list
 * iterator to reduce vmap_area_lock contention" asks). Acquire is a plain read and one
 * compareExchange; release one exchange, and a notify only if LOCK_WAITERS was set (notify
 * costs even with nobody waiting). On V8 every Atomics call is about 10 ns (not inlined), so
 * two per critical section is the budget. A contended acquirer spins briefly, then sets
 * LOCK_WAITERS and sleeps in Atomics.wait (or keeps spinning where waiting is forbidden: a
 * browser's main thread). The holder's handle id sits LOCK_OWNER_OFFSET words after the lock
 * word.
 *
 * Liveness. No lock is held across user code (a flush hook) or a turn of the event loop, so
 * every holding is short unless its holder's thread is slow, busy or paused, and then waiters
 * simply wait: a holder is never taken for dead because it is slow. Death is observed, not
 * guessed (handles.ts): a handle that closes, or whose worker's exit is seen by watch(),
 * ends; if it held a lock then, HDR_DEAD records it and every call throws EOWNERDEAD, since it
 * may have left the structures half-changed. Every wait ends after `timeoutMs` with ETIMEDOUT
 * naming the holder, the inner locks of the lock order included (a live holder keeps them for
 * microseconds; an unobserved dead one forever). That is safe because every critical section
 * takes all of its locks before it changes anything (two-phase), and releases what it holds
 * when a later acquire throws; a purge, which changes the space in several steps, hands its
 * batch to the next purge (BATCH_ORPHAN) when a step times out.
 */
import { VmapError } from "../api/errors.ts";
import {
	HDR_DEAD,
	HDR_DEAD_WORD,
	HDR_EXT_OFFSET,
	HDR_EXT_WORDS,
	HDR_FREE_LOCK,
	HDR_PURGE_LOCK,
	HDR_SEQ_PURGE,
	HDR_TAG_LOCK,
	LOCK_OWNER_OFFSET,
} from "./layout.ts";
import { N_BUSY_LOCK, N_LAZY_LOCK, N_POOL_LOCK, N_WORK, NODE_OFFSET, NODE_WORDS, nodeBase } from "./node-layout.ts";
import type { VaTable } from "./va-table.ts";

export const LOCK_WAITERS = 1 << 30;
/** The counting bits of a lock word. */
export const LOCK_SEQ = LOCK_WAITERS - 1;
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

const LOCK_NAMES: Record<number, string> = {
	[HDR_FREE_LOCK]: "the free-space lock",
	[HDR_PURGE_LOCK]: "the purge mutex",
	[HDR_TAG_LOCK]: "the tag lock",
};
const NODE_LOCK_NAMES: Record<number, string> = {
	[N_BUSY_LOCK]: "busy lock",
	[N_LAZY_LOCK]: "lazy lock",
	[N_POOL_LOCK]: "pool lock",
	[N_WORK]: "purge work (as a helper)",
};

/** What header word `word` is, for messages: "the purge mutex", "node 3's busy lock". */
export function lockName(hdr: Int32Array, word: number): string {
	if (hdr[HDR_EXT_WORDS]! > 0 && word >= hdr[HDR_EXT_OFFSET]!)
		return `the heap's lock at word ${word - hdr[HDR_EXT_OFFSET]!} of its region (heap-layout.ts)`;
	const w = word - NODE_OFFSET / 4;
	if (w >= 0) return `node ${Math.floor(w / NODE_WORDS)}'s ${NODE_LOCK_NAMES[w % NODE_WORDS] ?? "lock"}`;
	return LOCK_NAMES[word] ?? "a lock";
}

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
	/** This handle's id, written beside the lock words it holds. */
	readonly self: number;
	/** Milliseconds this handle spent waiting for locks held by others. */
	waitMs = 0;
	/** Views come from the table each time: a one-thread space's buffer is replaced as it grows. */
	readonly #t: VaTable;

	constructor(t: VaTable, self: number) {
		this.#t = t;
		this.self = self;
	}

	/**
	 * How long one wait for a lock may last, in ms (the space's timeoutMs option, or a call's
	 * own); Infinity: as long as the holder lives.
	 */
	timeoutMs = Infinity;

	/**
	 * Take lock `word`, waiting while its holder lives. Throws EOWNERDEAD once a holder's end
	 * was observed, and ETIMEDOUT after timeoutMs; either way the caller still holds what it
	 * held, and releases it.
	 */
	acquire(word: number): void {
		if (!this.tryAcquire(word)) this.#contended(word);
	}

	/** Take lock `word` if it is free now. */
	tryAcquire(word: number): boolean {
		const hdr = this.#t.hdr;
		const cur = hdr[word]!; // plain read: the compareExchange validates it
		if ((cur & 1) !== 0 || Atomics.compareExchange(hdr, word, cur, cur + 1) !== cur) return false;
		hdr[word + LOCK_OWNER_OFFSET] = this.self;
		return true;
	}

	/**
	 * Take lock `word` while holding `outer` (and `outer2`, if not -1), before changing
	 * anything: when the wait throws (ETIMEDOUT, EOWNERDEAD), the outer locks are released and
	 * the call fails having changed nothing.
	 */
	acquireUnder(word: number, outer: number, outer2 = -1): void {
		if (this.tryAcquire(word)) return;
		try {
			this.#contended(word);
		} catch (e) {
			this.release(outer);
			if (outer2 !== -1) this.release(outer2);
			throw e;
		}
	}

	release(word: number): void {
		const hdr = this.#t.hdr;
		hdr[word + LOCK_OWNER_OFFSET] = 0;
		// Even again, LOCK_WAITERS cleared: sleepers set it anew before they sleep again. While we
		// hold the word only LOCK_WAITERS can change under us, so a plain read gives our count.
		if (Atomics.exchange(hdr, word, ((hdr[word]! & LOCK_SEQ) + 1) & LOCK_SEQ) & LOCK_WAITERS) Atomics.notify(hdr, word, 1);
	}

	/**
	 * release(), for a loop that takes `word` again at once (the sliced listings): if another
	 * handle sleeps waiting for it, give that handle up to HANDOFF_MS to take it first. Without
	 * this the loop wins every race against a waiter that must first wake up, and the waiter
	 * starves (measured: 60 ms waits behind a listing of a million areas, in slices of 0.1 ms).
	 */
	releaseToWaiter(word: number): void {
		const hdr = this.#t.hdr;
		hdr[word + LOCK_OWNER_OFFSET] = 0;
		const released = ((hdr[word]! & LOCK_SEQ) + 1) & LOCK_SEQ;
		if ((Atomics.exchange(hdr, word, released) & LOCK_WAITERS) === 0) return;
		Atomics.notify(hdr, word, 1);
		const until = performance.now() + HANDOFF_MS;
		while (Atomics.load(hdr, word) === released && performance.now() < until); // until the waiter takes it
	}

	/** The handle id holding `word`, 0 when free. */
	owner(word: number): number {
		const hdr = this.#t.hdr;
		return Atomics.load(hdr, word) & 1 ? hdr[word + LOCK_OWNER_OFFSET]! : 0;
	}

	/** Set by close(): this handle takes no more locks. */
	closed = false;

	/** Throw EOWNERDEAD if a handle died holding a lock, EINVAL if this handle was closed. */
	ensureAlive(): void {
		if (this.#t.hdr[HDR_DEAD] !== 0) throw deadError(this.#t.hdr);
		this.ensureOpen();
	}

	/** EINVAL once this handle is closed (a space left unusable may still be read: stats(), dump()). */
	ensureOpen(): void {
		if (this.closed) throw new VmapError("EINVAL", `This handle (id ${this.self}) was closed; attach a new one`);
	}

	#contended(word: number): void {
		const hdr = this.#t.hdr;
		const t0 = performance.now();
		const deadline = t0 + this.timeoutMs;
		for (let spin = 0; ; spin++) {
			const cur = Atomics.load(hdr, word);
			if ((cur & 1) === 0) {
				// Keep LOCK_WAITERS if set: others may sleep, and our release must wake one.
				if (Atomics.compareExchange(hdr, word, cur, cur + 1) === cur) {
					hdr[word + LOCK_OWNER_OFFSET] = this.self;
					break;
				}
				continue;
			}
			if (hdr[HDR_DEAD] !== 0) throw deadError(hdr);
			if (spin < SPINS) continue;
			if (performance.now() >= deadline) {
				this.waitMs += performance.now() - t0;
				throw timedOut(hdr, word, hdr[word + LOCK_OWNER_OFFSET]!, this.timeoutMs);
			}
			if (!canWait) continue;
			if ((cur & LOCK_WAITERS) === 0 && Atomics.compareExchange(hdr, word, cur, cur | LOCK_WAITERS) !== cur) continue;
			Atomics.wait(hdr, word, cur | LOCK_WAITERS, SLEEP_MS);
		}
		this.waitMs += performance.now() - t0;
	}
}

/** The error of every call once a handle was observed to end holding a lock. */
export function deadError(hdr: Int32Array): VmapError {
	const who = hdr[HDR_DEAD];
	return new VmapError(
		"EOWNERDEAD",
		`The space is unusable: handle ${who} ended (its worker exited) while holding ${lockName(hdr, hdr[HDR_DEAD_WORD]!)}, so the structures it guards may be half-changed`,
	);
}

/** A wait for `word` that passed its deadline: who holds what, and what to do about it. */
export function timedOut(hdr: Int32Array, word: number, owner: number, ms: number): VmapError {
	return new VmapError(
		"ETIMEDOUT",
		`Waited ${ms} ms for ${lockName(hdr, word)}, held by handle ${owner}; nothing was changed. The holder is slow, busy or paused, or its worker exited unobserved (watch(worker) makes such an exit known)`,
	);
}

/** The space's lock words: global, then every node's. */
export function spaceLockWords(t: VaTable): number[] {
	const words = [HDR_PURGE_LOCK, HDR_FREE_LOCK, HDR_TAG_LOCK];
	for (let v = 0; v < t.nodes; v++) words.push(nodeBase(v) + N_POOL_LOCK, nodeBase(v) + N_BUSY_LOCK, nodeBase(v) + N_LAZY_LOCK);
	return words;
}
