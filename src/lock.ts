/**
 * Locks shared by every handle of a space: Int32 words in the header, driven by Atomics.
 *
 * A lock word counts: even when free, odd while held, one more at every acquire and release
 * (bits 0-29), with LOCK_WAITERS (bit 30) set while a thread sleeps on it. So the word is also
 * the sequence lock of everything written under it: a statistics reader copies counters
 * between two equal, even readings of the word and needs no lock (as "vmalloc: use rcu list iterator to reduce vmap_area_lock contention" asks). Acquire is a plain
 * read and one compareExchange; release one exchange, and a notify only if LOCK_WAITERS was set
 * (notify costs even with nobody waiting). On V8 every Atomics call is about 10 ns (not
 * inlined), so two per critical section is the budget. A contended acquirer spins briefly,
 * then sets LOCK_WAITERS and sleeps in Atomics.wait (or keeps spinning where waiting is
 * forbidden: a browser's main thread). The holder's handle id sits LOCK_OWNER_OFFSET words
 * after the lock word.
 *
 * Dead owners (a worker terminated inside a critical section): every handle has a heartbeat
 * word, bumped by holders of long operations (check, each purge step, a timer while a purge
 * waits for an asynchronous flush). A waiter that sees one holding (the same odd count) last
 * OWNER_DEAD_MS with the holder's heartbeat unchanged gives up: it records the death in
 * HDR_DEAD and throws EOWNERDEAD, and every later call on the space throws it too, since the
 * dead owner may have left the structures half-changed. Short critical sections (microseconds)
 * never bump: a healthy owner is out of them long before a second passes.
 */
import { VmapError } from "./errors.ts";
import {
	HANDLE_ALIVE,
	HANDLE_FREE,
	HANDLE_HEARTBEAT,
	HANDLE_MAX,
	HANDLE_STATE,
	HANDLE_WORDS,
	HDR_DEAD,
	HDR_DEAD_WORD,
	HDR_EXT_OFFSET,
	HDR_EXT_WORDS,
	HDR_FREE_LOCK,
	HDR_PURGE_LOCK,
	HDR_TAG_LOCK,
	LOCK_OWNER_OFFSET,
	N_BUSY_LOCK,
	N_LAZY_LOCK,
	N_POOL_LOCK,
	N_WORK,
	NODE_OFFSET,
	NODE_WORDS,
} from "./layout.ts";
import type { VaTable } from "./va-table.ts";

export const LOCK_WAITERS = 1 << 30;
/** The counting bits of a lock word. */
export const LOCK_SEQ = LOCK_WAITERS - 1;
/** Spins (about 20 us) before a contended acquirer sleeps: a critical section lasts well under 1 us, a futex sleep and wake far longer (2 workers on W0: 0.40x of one worker with 200 spins, 0.59x with 2000). */
const SPINS = 2000;
/** One sleep; the holder's liveness is looked at between sleeps. */
const SLEEP_MS = 20;
/** A holding unchanged, with the holder's heartbeat unchanged, for this long is taken for dead. */
export const OWNER_DEAD_MS = 900;

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
function lockName(hdr: Int32Array, word: number): string {
	if (hdr[HDR_EXT_WORDS]! > 0 && word >= hdr[HDR_EXT_OFFSET]!) return `the heap's lock at word ${word - hdr[HDR_EXT_OFFSET]!} of its region (heap-layout.ts)`;
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
	private readonly t: VaTable;

	constructor(t: VaTable, self: number) {
		this.t = t;
		this.self = self;
	}

	/** Take lock `word`, waiting as long as its holder lives. Throws EOWNERDEAD otherwise. */
	acquire(word: number): void {
		if (!this.tryAcquire(word)) this.contended(word);
	}

	/** Take lock `word` if it is free now. */
	tryAcquire(word: number): boolean {
		const hdr = this.t.hdr;
		const cur = hdr[word]!; // plain read: the compareExchange validates it
		if ((cur & 1) !== 0 || Atomics.compareExchange(hdr, word, cur, cur + 1) !== cur) return false;
		hdr[word + LOCK_OWNER_OFFSET] = this.self;
		return true;
	}

	release(word: number): void {
		const hdr = this.t.hdr;
		hdr[word + LOCK_OWNER_OFFSET] = 0;
		// Even again, LOCK_WAITERS cleared: sleepers set it anew before they sleep again. While we
		// hold the word only LOCK_WAITERS can change under us, so a plain read gives our count.
		if (Atomics.exchange(hdr, word, ((hdr[word]! & LOCK_SEQ) + 1) & LOCK_SEQ) & LOCK_WAITERS) Atomics.notify(hdr, word, 1);
	}

	/** The handle id holding `word`, 0 when free. */
	owner(word: number): number {
		const hdr = this.t.hdr;
		return Atomics.load(hdr, word) & 1 ? hdr[word + LOCK_OWNER_OFFSET]! : 0;
	}

	/** Tell waiters this handle is alive and working (for long critical sections). */
	heartbeat(): void {
		Atomics.add(this.t.handles, (this.self - 1) * HANDLE_WORDS + HANDLE_HEARTBEAT, 1);
	}

	/** Set by close(): this handle takes no more locks. */
	closed = false;

	/** Throw EOWNERDEAD if a handle died holding a lock, EINVAL if this handle was closed. */
	checkAlive(): void {
		if (this.t.hdr[HDR_DEAD] !== 0) throw deadError(this.t.hdr);
		if (this.closed) throw new VmapError("EINVAL", `This handle (id ${this.self}) was closed; attach a new one`);
	}

	private contended(word: number): void {
		const hdr = this.t.hdr;
		const t0 = performance.now();
		const watch = new OwnerWatch();
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
			watch.check(this.t, word, cur & LOCK_SEQ, hdr[word + LOCK_OWNER_OFFSET]!);
			if (!canWait) continue;
			if ((cur & LOCK_WAITERS) === 0 && Atomics.compareExchange(hdr, word, cur, cur | LOCK_WAITERS) !== cur) continue;
			Atomics.wait(hdr, word, cur | LOCK_WAITERS, SLEEP_MS);
		}
		this.waitMs += performance.now() - t0;
	}
}

/**
 * Watches the holder of a lock word (or of a node's purge work) for death: a holding that
 * stays the same while the holder's heartbeat stays the same for OWNER_DEAD_MS is taken for
 * dead, recorded in HDR_DEAD, and thrown as EOWNERDEAD.
 */
export class OwnerWatch {
	private holding = -1;
	private beat = 0;
	private since = 0;

	/** `holding` identifies the holding (a lock's count); `owner` is the holder's handle id. */
	check(t: VaTable, word: number, holding: number, owner: number): void {
		const now = performance.now();
		const b = owner > 0 ? Atomics.load(t.handles, (owner - 1) * HANDLE_WORDS + HANDLE_HEARTBEAT) : 0;
		if (holding !== this.holding || b !== this.beat) {
			this.holding = holding;
			this.beat = b;
			this.since = now;
		} else if (now - this.since >= OWNER_DEAD_MS) {
			const hdr = t.hdr;
			if (Atomics.compareExchange(hdr, HDR_DEAD, 0, owner > 0 ? owner : -1) === 0) hdr[HDR_DEAD_WORD] = word;
			throw deadError(hdr);
		}
	}
}

export function deadError(hdr: Int32Array): VmapError {
	const who = hdr[HDR_DEAD];
	return new VmapError(
		"EOWNERDEAD",
		`The space is unusable: handle ${who} stopped (its worker died?) while holding ${lockName(hdr, hdr[HDR_DEAD_WORD]!)}, so the structures it guards may be half-changed`,
	);
}

/**
 * Claim a free entry of the handle table: the new handle's id (entry index + 1). Throws
 * EINVAL when all HANDLE_MAX entries are in use (handles give theirs back with close()).
 */
export function claimHandle(t: VaTable): number {
	const handles = t.handles;
	for (let i = 0; i < HANDLE_MAX; i++) {
		if (Atomics.compareExchange(handles, i * HANDLE_WORDS + HANDLE_STATE, HANDLE_FREE, HANDLE_ALIVE) === HANDLE_FREE) return i + 1;
	}
	throw new VmapError("EINVAL", `Cannot attach: all ${HANDLE_MAX} handle ids are in use (close() handles you no longer need)`);
}
