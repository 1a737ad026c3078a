/**
 * Read-side sections and the event loop. A thread back in its event loop holds no reference
 * into the heap (as a CPU that schedules passes a quiescent state), so at the end of every
 * turn in which it used the heap its handle goes offline by itself: an idle thread never holds
 * a grace period up, and nobody has to call offline(). A reader that keeps a view across turns
 * says so: readLock() ... readUnlock() (rcu_read_lock), during which the handle stays online.
 */
import { VmapError } from "../api/errors.ts";
import { schedule } from "../util/event-loop.ts";
import type { GracePeriods } from "./rcu.ts";

export class ReadSide {
	readonly #rcu: GracePeriods;
	readonly #closed: () => boolean;
	/** readLock() sections open on this handle. */
	#locks = 0;
	/** The end-of-turn callback is scheduled (once per turn). */
	#scheduled = false;

	constructor(rcu: GracePeriods, closed: () => boolean) {
		this.#rcu = rcu;
		this.#closed = closed;
	}

	/** A quiescent point (every allocating or freeing call), and offline at the turn's end. */
	quiescent(): void {
		this.#rcu.quiescent();
		this.#touched();
	}

	/** A reader's first read (bytes(), view()): online if it was not, and offline at the turn's end. */
	online(): void {
		this.#rcu.online();
		this.#touched();
	}

	/** The handle used the heap in this turn: at its end, offline unless a section is open. One flag test on the hot path. */
	#touched(): void {
		if (this.#scheduled) return;
		this.#scheduled = true;
		schedule(this.#turnEnded);
	}

	readLock(): void {
		this.#locks++;
		this.#rcu.online();
	}

	readUnlock(): void {
		if (this.#locks === 0) throw new VmapError("EINVAL", "Cannot readUnlock: no readLock() section is open on this handle");
		this.#locks--;
		this.#touched();
	}

	readonly #turnEnded = (): void => {
		this.#scheduled = false;
		if (this.#locks === 0 && !this.#closed()) this.#rcu.offline();
	};
}
