/**
 * Grace periods for deferred frees (kernel kvfree_rcu), in the quiescent-state-based flavour
 * of RCU: each handle of a heap reports quiescent points, moments when it holds no reference
 * into the heap (every allocating or freeing call into the heap is one, and quiescent()), or
 * goes offline while idle. A grace period that starts at GP value T ends when every online
 * handle has reported a point at or after T.
 *
 * freeDeferred queues an area with target T = ++GP in a ring shared by all handles; whoever
 * next calls into the heap after the grace period ends frees it. The queuing handle reports a
 * quiescent point at T at once: it has just let go of the area itself.
 *
 * Ordering: a reader's quiescent point is a seq-cst store of the GP it read; the handle freeing
 * expired areas reads every QS word seq-cst after the area was queued. A reader that reported before it
 * obtained an address of the area (from wherever the writer published it) reported a GP below
 * T, so the area waits for its next report.
 */
import { add, put, putF } from "../buffer/journal.ts";
import type { AreaInfo } from "../api/types.ts";
import { hex, VmapError } from "../api/errors.ts";
import { longWait, warn } from "../util/report.ts";
import { HANDLE_MAX } from "../buffer/layout.ts";
import {
	H_DEFERRED,
	H_FREED_DEFERRED,
	H_GP,
	H_QS,
	H_QS_HIGH,
	H_RCU_LOCK,
	H_RECLAIMING,
	H_RING,
	H_RING_CAP,
	H_RING_HEAD,
	H_RING_NR,
	R_DONE,
	R_TAKER,
	R_TARGET,
	RING_WORDS,
} from "./layout.ts";
import { canWait } from "../buffer/lock.ts";
import type { SpaceExtension } from "../core/extension.ts";

/** What a handle holding up grace periods is told to do. */
const FIXES =
	"A handle that keeps a view across turns of its event loop should readUnlock() when done; one that loops without returning to its event loop, call quiescent() or offline(); one that is done, close(); a worker that may exit without closing, watch(worker) where it was created";

export class GracePeriods {
	readonly #ext: SpaceExtension;
	/** First word of the heap's region. */
	readonly #e: number;
	/** This handle's QS word. */
	readonly #qs: number;

	constructor(ext: SpaceExtension) {
		const e = ext.base;
		this.#ext = ext;
		this.#e = e;
		this.#qs = e + H_QS + ext.id - 1;
		const hdr = this.#hdr;
		for (let high = Atomics.load(hdr, e + H_QS_HIGH); high < ext.id; high = Atomics.load(hdr, e + H_QS_HIGH)) {
			Atomics.compareExchange(hdr, e + H_QS_HIGH, high, ext.id);
		}
	}

	get #hdr(): Int32Array {
		return this.#ext.words;
	}

	/** Report a quiescent point: this handle holds no reference into the heap now. */
	quiescent(): void {
		const hdr = this.#hdr;
		Atomics.store(hdr, this.#qs, Atomics.load(hdr, this.#e + H_GP));
	}

	/** Leave the set of handles grace periods wait for, until the next quiescent point. */
	offline(): void {
		Atomics.store(this.#hdr, this.#qs, 0);
	}

	/** Back online if offline() took this handle out (bytes() and view(): a reader's first read). */
	online(): void {
		if (Atomics.load(this.#hdr, this.#qs) === 0) this.quiescent();
	}

	/** Handle `id` ended (its worker exited): grace periods stop waiting for it. */
	forget(id: number): void {
		Atomics.store(this.#hdr, this.#e + H_QS + id - 1, 0);
	}

	/** The lock words of the grace-period state. */
	get lockWords(): number[] {
		return [this.#e + H_RCU_LOCK];
	}

	/** The latest GP every online handle has passed (Infinity with none online). */
	completed(): number {
		const hdr = this.#hdr;
		let min = Infinity;
		for (let w = this.#e + H_QS, end = w + Atomics.load(hdr, this.#e + H_QS_HIGH); w < end; w++) {
			const q = Atomics.load(hdr, w);
			if (q !== 0 && q < min) min = q;
		}
		return min;
	}

	/** Online handles that have not passed `target`, for messages. */
	#laggards(target: number): number[] {
		const hdr = this.#hdr;
		const out: number[] = [];
		for (let i = 0, high = Atomics.load(hdr, this.#e + H_QS_HIGH); i < high; i++) {
			const q = Atomics.load(hdr, this.#e + H_QS + i);
			if (q !== 0 && q < target) out.push(i + 1);
		}
		return out;
	}

	/** Entries waiting in the ring (a plain read: a hint). */
	pending(): number {
		return this.#hdr[this.#e + H_RING_NR]!;
	}

	/**
	 * Queue `addr` to be freed after a grace period, marking its area with `mark` in the same
	 * hold of the RCU lock, after the entry is written: an area's busy lock, released inside,
	 * commits both together, so no death leaves a marked area off the ring (a small area's mark,
	 * an atomic bit, is swept up by recover()). "full": the ring is; "marked": `mark` refused
	 * (another call queued it first). Either way nothing changed.
	 */
	enqueue(addr: number, mark: () => boolean): "queued" | "full" | "marked" {
		const e = this.#e;
		this.#ext.lock(e + H_RCU_LOCK);
		const hdr = this.#hdr;
		const nr = hdr[e + H_RING_NR]!;
		if (nr === hdr[e + H_RING_CAP]!) {
			this.#ext.unlock(e + H_RCU_LOCK);
			return "full";
		}
		const target = this.#append(addr);
		if (!mark()) {
			put(hdr, e + H_RING_NR, nr);
			add(hdr, e + H_DEFERRED, -1);
			this.#ext.unlock(e + H_RCU_LOCK);
			return "marked";
		}
		this.#ext.unlock(e + H_RCU_LOCK);
		Atomics.store(hdr, this.#qs, target);
		return "queued";
	}

	/** Under the RCU lock, with room: a new entry for `addr`, waiting for the next grace period; returns its target. */
	#append(addr: number): number {
		const e = this.#e;
		const hdr = this.#hdr;
		const nr = hdr[e + H_RING_NR]!;
		const target = Atomics.add(hdr, e + H_GP, 1) + 1;
		const w = e + H_RING + ((hdr[e + H_RING_HEAD]! + nr) % hdr[e + H_RING_CAP]!) * RING_WORDS;
		putF(this.#ext.wordsF64, w >> 1, addr);
		put(hdr, w + R_TARGET, target);
		put(hdr, w + R_TAKER, 0);
		put(hdr, e + H_RING_NR, nr + 1);
		add(hdr, e + H_DEFERRED, 1);
		return target;
	}

	/**
	 * Free the queued areas whose grace period has ended, oldest first, with `free`. Entries
	 * are marked as this handle's under the RCU lock, freed after it is dropped (a free may
	 * purge, and a purge may wait for a handle that waits for this lock), and marked done under
	 * it again; the head moves past done entries. So at every instant an entry is waiting,
	 * taken by a live or dead handle (recover()), or done: no area leaves the ring unfreed.
	 * H_RECLAIMING counts the taken entries, for barrier().
	 */
	freeExpired(free: (addr: number) => void): void {
		const e = this.#e;
		if (this.#hdr[e + H_RING_NR] === 0) return;
		const done = this.completed();
		const taken = this.#taken;
		this.#ext.lock(e + H_RCU_LOCK);
		const hdr = this.#hdr;
		for (let i = 0, nr = hdr[e + H_RING_NR]!; i < nr; i++) {
			const w = this.#entry(i);
			if (hdr[w + R_TARGET]! > done) break;
			if (hdr[w + R_TAKER] !== 0) continue;
			put(hdr, w + R_TAKER, this.#ext.id);
			add(hdr, e + H_RECLAIMING, 1);
			taken.push(this.#ext.wordsF64[w >> 1]!);
		}
		this.#ext.unlock(e + H_RCU_LOCK);
		let failure: unknown;
		for (const addr of taken) {
			try {
				free(addr);
			} catch (err) {
				failure ??= err;
			} finally {
				this.#finish(addr, this.#ext.id);
			}
		}
		taken.length = 0;
		if (failure !== undefined) throw failure;
	}

	/** Word of the ring's `i`-th entry from its head. */
	#entry(i: number): number {
		const hdr = this.#hdr;
		const e = this.#e;
		return e + H_RING + ((hdr[e + H_RING_HEAD]! + i) % hdr[e + H_RING_CAP]!) * RING_WORDS;
	}

	/** The entry of `addr` taken by handle `taker` is done: mark it, and move the head past done entries. */
	#finish(addr: number, taker: number): void {
		const e = this.#e;
		this.#ext.lock(e + H_RCU_LOCK);
		const hdr = this.#hdr;
		for (let i = 0, nr = hdr[e + H_RING_NR]!; i < nr; i++) {
			const w = this.#entry(i);
			if (hdr[w + R_TAKER] !== taker || this.#ext.wordsF64[w >> 1] !== addr) continue;
			put(hdr, w + R_TAKER, R_DONE);
			add(hdr, e + H_RECLAIMING, -1);
			break;
		}
		this.#dropDone();
		this.#ext.unlock(e + H_RCU_LOCK);
	}

	/** Under the RCU lock: move the head past the done entries at the front. */
	#dropDone(): void {
		const hdr = this.#hdr;
		const e = this.#e;
		let n = 0;
		for (let nr = hdr[e + H_RING_NR]!; n < nr && hdr[this.#entry(n) + R_TAKER] === R_DONE; n++);
		if (n === 0) return;
		put(hdr, e + H_RING_HEAD, (hdr[e + H_RING_HEAD]! + n) % hdr[e + H_RING_CAP]!);
		add(hdr, e + H_RING_NR, -n);
		add(hdr, e + H_FREED_DEFERRED, n);
	}

	/**
	 * Handle `id` ended: the entries it had taken and not marked done. One whose area is still
	 * queued (a busy area marked `tag` at its address, and no other entry for that address,
	 * which would mean it was freed, reused and queued again) waits again; the others were
	 * freed before the end came, and are done.
	 */
	recover(id: number, find: (addr: number) => AreaInfo | undefined, tag: string): void {
		const e = this.#e;
		this.#ext.lock(e + H_RCU_LOCK);
		try {
			const hdr = this.#hdr;
			const f = this.#ext.wordsF64;
			const nr = hdr[e + H_RING_NR]!;
			for (let i = 0; i < nr; i++) {
				const w = this.#entry(i);
				if (hdr[w + R_TAKER] !== id) continue;
				const addr = f[w >> 1]!;
				let again = false;
				for (let j = 0; j < nr; j++)
					if (j !== i && hdr[this.#entry(j) + R_TAKER] !== R_DONE && f[this.#entry(j) >> 1] === addr) again = true;
				const area = find(addr);
				const queued = !again && area !== undefined && area.start === addr && area.state === "busy" && area.tag === tag;
				put(hdr, w + R_TAKER, queued ? 0 : R_DONE);
				add(hdr, e + H_RECLAIMING, -1);
			}
			this.#dropDone();
			// A small area marked for queueing by a handle that died before its entry was
			// committed: queue it, as that handle meant to.
			for (const addr of this.#ext.markedSmallAreas()) {
				let queued = false;
				for (let i = 0; i < hdr[e + H_RING_NR]! && !queued; i++)
					queued = f[this.#entry(i) >> 1] === addr && hdr[this.#entry(i) + R_TAKER] !== R_DONE;
				if (!queued && hdr[e + H_RING_NR]! < hdr[e + H_RING_CAP]!) this.#append(addr);
			}
		} finally {
			this.#ext.unlock(e + H_RCU_LOCK);
		}
	}

	/** Areas freeExpired() took off the ring, this handle's scratch. */
	readonly #taken: number[] = [];

	/**
	 * Wait, up to `ms`, until no area taken off the ring is still on its way back to the space.
	 * Bounded: a handle freeing them may itself wait for a purge this thread holds.
	 */
	barrier(ms: number): void {
		const hdr = this.#hdr;
		const until = performance.now() + ms;
		while (Atomics.load(hdr, this.#e + H_RECLAIMING) !== 0 && performance.now() < until) {
			if (canWait) Atomics.wait(hdr, this.#e + H_RECLAIMING, Atomics.load(hdr, this.#e + H_RECLAIMING), 1);
		}
	}

	/**
	 * check(): the ring's entries in target order, none beyond the counter, each a busy area
	 * tagged `tag` (looked up with `find`); no handle past the counter. Returns problems.
	 */
	validate(find: (addr: number) => AreaInfo | undefined, tag: string): string[] {
		const e = this.#e;
		const problems: string[] = [];
		this.#ext.lock(e + H_RCU_LOCK);
		try {
			const hdr = this.#hdr;
			const f = this.#ext.wordsF64;
			const gp = hdr[e + H_GP]!;
			const cap = hdr[e + H_RING_CAP]!;
			let last = 0;
			for (let i = 0, nr = hdr[e + H_RING_NR]!; i < nr; i++) {
				const w = e + H_RING + ((hdr[e + H_RING_HEAD]! + i) % cap) * RING_WORDS;
				const addr = f[w >> 1]!;
				const target = hdr[w + R_TARGET]!;
				const area = hdr[w + R_TAKER] === 0 ? find(addr) : undefined; // a taken one is being freed
				if (hdr[w + R_TAKER] === 0 && (!area || area.start !== addr || area.state !== "busy" || area.tag !== tag))
					problems.push(`deferred free ${hex(addr)} is not a busy area marked ${tag}`);
				if (target < last || target > gp)
					problems.push(`deferred free ${hex(addr)} waits for grace period ${target} (previous ${last}, counter ${gp})`);
				last = target;
			}
			for (let i = 0; i < HANDLE_MAX; i++)
				if (hdr[e + H_QS + i]! > gp)
					problems.push(`handle ${i + 1} passed grace period ${hdr[e + H_QS + i]}, beyond the counter ${gp}`);
		} finally {
			this.#ext.unlock(e + H_RCU_LOCK);
		}
		return problems;
	}

	/** Start a grace period and report this handle past it; returns its target. */
	start(): number {
		const hdr = this.#hdr;
		const target = Atomics.add(hdr, this.#e + H_GP, 1) + 1;
		Atomics.store(hdr, this.#qs, target);
		return target;
	}

	/** Whether the grace period of `target` has ended. */
	ended(target: number): boolean {
		return this.completed() >= target;
	}

	/** Block until the grace period of `target` ends; ETIMEDOUT after `timeoutMs`. */
	wait(target: number, timeoutMs: number): void {
		if (this.ended(target)) return;
		if (!canWait) {
			throw new VmapError(
				"EINVAL",
				"Cannot synchronize: this thread may not block (a browser's main thread); use synchronizeAsync()",
			);
		}
		const until = performance.now() + timeoutMs;
		const nap = new Int32Array(new SharedArrayBuffer(4));
		let warnAt = this.#warnAt(timeoutMs);
		for (let spin = 0; !this.ended(target); spin++) {
			this.#ext.ensureAlive(); // EOWNERDEAD as soon as a recovery is known to have failed
			if (performance.now() > until) this.#timedOut(target, timeoutMs);
			if (performance.now() > warnAt) warnAt = this.#warnLong(target);
			if (spin > 100) Atomics.wait(nap, 0, 0, 0.5);
		}
	}

	/** Resolve when the grace period of `target` ends; reject with ETIMEDOUT after `timeoutMs`. */
	async waitAsync(target: number, timeoutMs: number): Promise<void> {
		const until = performance.now() + timeoutMs;
		let warnAt = this.#warnAt(timeoutMs);
		while (!this.ended(target)) {
			this.#ext.ensureAlive();
			if (performance.now() > until) this.#timedOut(target, timeoutMs);
			if (performance.now() > warnAt) warnAt = this.#warnLong(target);
			await new Promise((r) => setTimeout(r, 1));
		}
	}

	/** When a wait without a deadline warns (longWait.longMs from now), Infinity with one. */
	#warnAt(timeoutMs: number): number {
		return timeoutMs === Infinity ? performance.now() + longWait.longMs : Infinity;
	}

	/** Warn, once, of a grace period that has held a wait without a deadline for longWait.longMs; returns Infinity (no second warning). */
	#warnLong(target: number): number {
		warn(
			`synchronize() has waited ${longWait.longMs / 1000} s for a grace period, and waits on (no timeoutMs): handle(s) ${this.#laggards(target).join(", ")} passed no quiescent point. ${FIXES}`,
		);
		return Infinity;
	}

	#timedOut(target: number, timeoutMs: number): never {
		throw new VmapError(
			"ETIMEDOUT",
			`A grace period did not end within ${timeoutMs} ms: handle(s) ${this.#laggards(target).join(", ")} passed no quiescent point. ${FIXES}`,
		);
	}
}
