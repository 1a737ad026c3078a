/**
 * Lazy free and purge (kernel free_vmap_area_noflush, __purge_vmap_area_lazy, drain work).
 *
 * A freed area leaves the busy tree, is flagged VA_LAZY and joins the lazy list; vmapLazyNr
 * grows by its pages. A purge takes the whole lazy list as one batch, calls the flush hook once
 * over the range covering it, then merges each area into free space, subtracting its pages
 * from vmapLazyNr as it goes (seed 000: the backlog is never reported lower than it is).
 *
 * When purges run:
 * - drain: a free that takes vmapLazyNr past lazyMaxPages schedules one on the event loop
 *   (never inside free: seed "move draining areas out of caller context"); it merges the batch
 *   back in slices of about SLICE_MS, yielding to the event loop between them, unless the
 *   backlog is at or above the priority threshold;
 * - priority: at 2 * lazyMaxPages the free path purges itself, since a thread that never yields
 *   never runs its drain, and the backlog would run away (seed 002);
 * - overflow: an allocation that finds no fit purges (sync semantics) and retries once;
 * - on request: space.purge().
 *
 * The purge mutex (HDR_PURGE_LOCK) admits one purge at a time, across all handles; it stays
 * held across an asynchronous flush, so a batch is never merged before its flush completed.
 * Locks, in their order: purge mutex, then busy (detach the lazy list), then free space (merge
 * back, a step at a time). The flush hook runs holding only the purge mutex.
 */
import type { FlushHook, PurgeResult } from "./api.ts";
import { VmapError } from "./errors.ts";
import { mergeOrAddVmapArea } from "./free-space.ts";
import {
	HDR_BUSY_LOCK,
	HDR_BUSY_NR,
	HDR_BUSY_ROOT,
	HDR_DEAD,
	HDR_FREE_LOCK,
	HDR_LAZY_HEAD,
	HDR_LAZY_NR,
	HDR_NO_PRIORITY,
	HDR_PURGE_HEAD,
	HDR_PURGE_LOCK,
	HDR_PURGE_NR,
	HDRF_BUSY_BYTES,
	HDRF_FLUSH_ERRORS,
	HDRF_FLUSHED_BYTES,
	HDRF_FLUSHES,
	HDRF_FREES,
	HDRF_LAZY_MAX,
	HDRF_LAZY_MAX_PAGES,
	HDRF_LAZY_ADDED,
	HDRF_LAZY_MIN,
	HDRF_LAZY_PURGED,
	HDRF_OVERFLOW_PURGES,
	HDRF_PURGED_AREAS,
	HDRF_PURGES,
	REC_F64,
	REC_I32,
	VA_END,
	VA_FLAGS,
	VA_LAZY,
	VA_NEXT,
	VA_START,
} from "./layout.ts";
import type { Locks } from "./lock.ts";
import { rbErase } from "./rbtree.ts";
import { seqBegin, seqEnd } from "./stats.ts";
import type { VaTable } from "./va-table.ts";

const schedule: (task: () => void) => void =
	typeof setImmediate === "function" ? (task) => void setImmediate(task) : (task) => void setTimeout(task, 0);

const settled = Promise.resolve();
/** Areas merged per free-space lock hold (and statistics window) during a purge. */
const RECLAIM_STEP = 64;
/** A drain yields to the event loop after about this much work. */
const SLICE_MS = 0.1;
const ignore = () => {};

export class Purger {
	private readonly t: VaTable;
	private readonly locks: Locks;
	private readonly flush: FlushHook | undefined;
	private readonly pageInverse: number;
	/** This handle's purge waiting for an asynchronous flush; it holds the purge mutex. */
	private inflight: Promise<void> | null = null;
	private drainScheduled = false;
	/** This handle's drain is reclaiming a batch in slices (it holds the purge mutex). */
	private reclaiming = false;

	constructor(t: VaTable, locks: Locks, flush: FlushHook | undefined, pageSize: number) {
		this.t = t;
		this.locks = locks;
		this.flush = flush;
		this.pageInverse = 1 / pageSize;
	}

	/** Before the handle closes: a drain of ours in progress finishes now, releasing the purge mutex. */
	finishDrain(): void {
		if (this.reclaiming) this.reclaim();
	}

	/** True while this handle's purge waits for its flush. */
	get flushing(): boolean {
		return this.inflight !== null;
	}

	/**
	 * Make busy record `va` lazy: out of the busy tree, onto the lazy list. The caller holds
	 * the busy lock. Everything needed from the area is read before it is published on the
	 * lazy list (seed 004): once there, a purge in another worker may merge it away. Returns
	 * vmapLazyNr after this free, for afterFree().
	 */
	freeLocked(va: number): number {
		const t = this.t;
		const f64 = t.f64;
		const hdr = t.hdr;
		const hdrF = t.hdrF;
		const start = f64[va * REC_F64 + VA_START]!;
		const end = f64[va * REC_F64 + VA_END]!;
		const pages = (end - start) * this.pageInverse;

		rbErase(t, HDR_BUSY_ROOT, va, false);
		hdr[HDR_BUSY_NR]!--;
		hdrF[HDRF_BUSY_BYTES]! -= end - start;
		hdrF[HDRF_FREES]!++;
		const added = (hdrF[HDRF_LAZY_ADDED]! += pages);
		if (start < hdrF[HDRF_LAZY_MIN]!) hdrF[HDRF_LAZY_MIN] = start;
		if (end > hdrF[HDRF_LAZY_MAX]!) hdrF[HDRF_LAZY_MAX] = end;
		t.i32[va * REC_I32 + VA_FLAGS] = VA_LAZY;
		t.i32[va * REC_I32 + VA_NEXT] = hdr[HDR_LAZY_HEAD]!;
		hdr[HDR_LAZY_HEAD] = va; // published: `va` may not be read from here on
		hdr[HDR_LAZY_NR]!++;
		// LAZY_PURGED belongs to the purge mutex's holder; a stale read only moves a heuristic.
		return added - hdrF[HDRF_LAZY_PURGED]!;
	}

	/**
	 * After a free (no lock held): drain when past lazyMaxPages; at twice that, purge here,
	 * waiting for a purge another worker runs (seed 002: above the priority threshold freeing
	 * comes first). Waiting throttles a thread that frees faster than purges return space; with
	 * try semantics it would keep adding while another purged, and could fill the space.
	 */
	afterFree(nrLazy: number): void {
		const lazyMax = this.t.hdrF[HDRF_LAZY_MAX_PAGES]!;
		if (nrLazy > lazyMax) {
			if (nrLazy >= 2 * lazyMax && this.t.hdr[HDR_NO_PRIORITY] === 0) this.purgeQuietly(true, false);
			else this.scheduleDrain();
		}
	}

	/**
	 * Purge every lazy area. `sync`: wait for a running purge instead of skipping.
	 * `overflow`: an allocation found no fit (counted apart).
	 * Throws what a synchronous flush hook throws; the batch then stays lazy.
	 */
	purge(sync: boolean, overflow: boolean, bounded = false): PurgeResult {
		const t = this.t;
		const locks = this.locks;
		if (locks.owner(HDR_PURGE_LOCK) === locks.self) {
			if (!sync) return result("skipped", 0, 0, 0, 0, settled);
			if (this.reclaiming) {
				// Our own drain, between two slices: whoever needs the space now finishes it here,
				// then purges what was freed since.
				this.reclaim();
				return this.purge(true, overflow, bounded);
			}
			// This handle holds it: a purge awaiting its flush, or the purge whose flush hook is
			// running now. Waiting here would wait for ourselves: run after it instead.
			const after = this.inflight ?? settled;
			const done = after.then(ignore, ignore).then(() => this.purge(true, overflow).done);
			done.catch(ignore);
			return result("queued", 0, 0, 0, 0, done);
		}
		if (!locks.tryAcquire(HDR_PURGE_LOCK)) {
			if (!sync) return result("skipped", 0, 0, 0, 0, settled);
			locks.acquire(HDR_PURGE_LOCK);
		}

		// Take the whole lazy list as the batch; the flush range was kept as areas were added.
		locks.acquire(HDR_BUSY_LOCK);
		t.sync();
		const hdr = t.hdr;
		const hdrF = t.hdrF;
		seqBegin(hdr);
		const head = hdr[HDR_LAZY_HEAD]!;
		const areas = hdr[HDR_LAZY_NR]!;
		const start = hdrF[HDRF_LAZY_MIN]!;
		const end = hdrF[HDRF_LAZY_MAX]!;
		// No other batch exists while we hold the mutex: the lazy list is all that is lazy.
		const bytes = (hdrF[HDRF_LAZY_ADDED]! - hdrF[HDRF_LAZY_PURGED]!) / this.pageInverse;
		hdr[HDR_PURGE_HEAD] = head;
		hdr[HDR_PURGE_NR] = areas;
		hdr[HDR_LAZY_HEAD] = 0;
		hdr[HDR_LAZY_NR] = 0;
		hdrF[HDRF_LAZY_MIN] = Infinity;
		hdrF[HDRF_LAZY_MAX] = -Infinity;
		if (head !== 0) {
			hdrF[HDRF_PURGES]!++;
			hdrF[HDRF_FLUSHES]!++;
			hdrF[HDRF_FLUSHED_BYTES]! += end - start;
			if (overflow) hdrF[HDRF_OVERFLOW_PURGES]!++;
		}
		seqEnd(hdr);
		locks.release(HDR_BUSY_LOCK);
		if (head === 0) {
			locks.release(HDR_PURGE_LOCK);
			return result("empty", 0, 0, 0, 0, settled);
		}

		let pending: void | PromiseLike<void>;
		try {
			locks.heartbeat();
			pending = this.flush?.(start, end);
		} catch (e) {
			this.unpurge();
			throw e;
		}
		if (pending === undefined || typeof pending.then !== "function") {
			if (bounded) return result("flushing", areas, bytes, start, end, this.reclaimBounded());
			this.reclaim();
			return result("done", areas, bytes, start, end, settled);
		}
		// The mutex stays held across the flush: tell waiters we are alive meanwhile.
		const beat = setInterval(() => locks.heartbeat(), 100);
		(beat as { unref?: () => void }).unref?.();
		const done = Promise.resolve(pending).then(
			() => {
				clearInterval(beat);
				this.inflight = null;
				if (bounded) return this.reclaimBounded();
				this.reclaim();
				return undefined;
			},
			(e: unknown) => {
				clearInterval(beat);
				this.inflight = null;
				this.unpurge();
				throw e;
			},
		);
		this.inflight = done;
		done.catch(ignore); // the caller may ignore `done`; the error is counted in flushErrors
		return result("flushing", areas, bytes, start, end, done);
	}

	/** A purge whose errors are counted, not thrown: for purges nobody called (drain, priority). */
	private purgeQuietly(sync: boolean, bounded: boolean): void {
		try {
			this.purge(sync, false, bounded).done.catch(ignore);
		} catch (e) {
			// A failed flush was counted by unpurge(); the batch is lazy again and the next purge
			// retries it. A dead lock owner is not ours to swallow.
			if (e instanceof VmapError && e.code === "EOWNERDEAD") throw e;
		}
	}

	private scheduleDrain(): void {
		if (this.drainScheduled) return;
		this.drainScheduled = true;
		schedule(() => {
			this.drainScheduled = false;
			// A closed handle may belong to a worker about to be terminated: no purge may start
			// that a termination could cut short, holding the purge mutex.
			if (this.t.hdr[HDR_DEAD] === 0 && !this.locks.closed) this.purgeQuietly(false, true);
		});
	}

	/**
	 * The flush is done: merge the whole batch into free space now, and release the purge mutex.
	 * Areas leave the batch one at a time, each subtracting its pages from vmapLazyNr as it goes
	 * (seed 000). The free-space lock is taken per step of RECLAIM_STEP areas, so allocators
	 * interleave with a long purge, and a statistics reader waits at most one step.
	 */
	private reclaim(): void {
		while (this.t.hdr[HDR_PURGE_HEAD] !== 0) this.reclaimStep();
		this.endPurge();
	}

	/**
	 * The scheduled drain's reclaim: slices of about SLICE_MS, yielding to the event loop
	 * between them (the kernel's cond_resched_lock), with the purge mutex held throughout, so
	 * the thread that drains still serves its other work (seeds 000 and 002: purges held locks
	 * for milliseconds). While the backlog is at or above the priority threshold, it does not
	 * yield: freeing comes first. Resolves when the batch is free.
	 */
	private reclaimBounded(): Promise<void> {
		this.reclaiming = true;
		const locks = this.locks;
		const beat = setInterval(() => locks.heartbeat(), 100); // the mutex stays held across yields
		(beat as { unref?: () => void }).unref?.();
		return new Promise<void>((resolve, reject) => {
			const slice = () => {
				try {
					if (this.reclaiming) {
						const t = this.t;
						const until = performance.now() + SLICE_MS;
						while (t.hdr[HDR_PURGE_HEAD] !== 0) {
							this.reclaimStep();
							if (performance.now() > until && t.lazyPages() < 2 * t.hdrF[HDRF_LAZY_MAX_PAGES]!) {
								schedule(slice);
								return;
							}
						}
						this.endPurge();
					} // else an overflow or priority purge finished it synchronously
					clearInterval(beat);
					resolve();
				} catch (e) {
					clearInterval(beat);
					reject(e);
				}
			};
			slice();
		});
	}

	/** One step: up to RECLAIM_STEP areas of the batch into free space, under the free-space lock. */
	private reclaimStep(): void {
		const t = this.t;
		const locks = this.locks;
		locks.acquire(HDR_FREE_LOCK);
		t.sync();
		const hdr = t.hdr;
		const hdrF = t.hdrF;
		seqBegin(hdr);
		let n = 0;
		for (; n < RECLAIM_STEP; n++) {
			const va = hdr[HDR_PURGE_HEAD]!;
			if (va === 0) break;
			hdr[HDR_PURGE_HEAD] = t.i32[va * REC_I32 + VA_NEXT]!;
			hdr[HDR_PURGE_NR]!--;
			hdrF[HDRF_LAZY_PURGED]! += (t.f64[va * REC_F64 + VA_END]! - t.f64[va * REC_F64 + VA_START]!) * this.pageInverse;
			mergeOrAddVmapArea(t, va);
		}
		hdrF[HDRF_PURGED_AREAS]! += n;
		seqEnd(hdr);
		locks.release(HDR_FREE_LOCK);
		locks.heartbeat();
	}

	/** The batch is free: release the purge mutex; areas freed meanwhile may make a drain due. */
	private endPurge(): void {
		this.reclaiming = false;
		this.locks.release(HDR_PURGE_LOCK);
		const hdrF = this.t.hdrF;
		if (this.t.lazyPages() > hdrF[HDRF_LAZY_MAX_PAGES]!) this.scheduleDrain();
	}

	/** The flush failed: the batch goes back on the lazy list, unflushed, and the mutex is released. */
	private unpurge(): void {
		const t = this.t;
		const locks = this.locks;
		locks.acquire(HDR_BUSY_LOCK);
		locks.acquire(HDR_FREE_LOCK);
		t.sync();
		const hdr = t.hdr;
		const hdrF = t.hdrF;
		seqBegin(hdr);
		let tail = 0;
		for (let va = hdr[HDR_PURGE_HEAD]!; va !== 0; va = t.i32[va * REC_I32 + VA_NEXT]!) {
			tail = va;
			const s = t.f64[va * REC_F64 + VA_START]!;
			const e = t.f64[va * REC_F64 + VA_END]!;
			if (s < hdrF[HDRF_LAZY_MIN]!) hdrF[HDRF_LAZY_MIN] = s;
			if (e > hdrF[HDRF_LAZY_MAX]!) hdrF[HDRF_LAZY_MAX] = e;
		}
		if (tail !== 0) {
			t.i32[tail * REC_I32 + VA_NEXT] = hdr[HDR_LAZY_HEAD]!;
			hdr[HDR_LAZY_HEAD] = hdr[HDR_PURGE_HEAD]!;
			hdr[HDR_LAZY_NR]! += hdr[HDR_PURGE_NR]!;
		}
		hdr[HDR_PURGE_HEAD] = 0;
		hdr[HDR_PURGE_NR] = 0;
		hdrF[HDRF_FLUSH_ERRORS]!++;
		seqEnd(hdr);
		locks.release(HDR_FREE_LOCK);
		locks.release(HDR_BUSY_LOCK);
		locks.release(HDR_PURGE_LOCK);
	}
}

function result(status: PurgeResult["status"], areas: number, bytes: number, start: number, end: number, done: Promise<void>): PurgeResult {
	return { status, areas, bytes, start, end, done };
}

/**
 * The lazy area (on the lazy list or in the purge batch) holding `addr`, 0 when none does.
 * O(lazy areas): lazy areas are in no tree. Callers ask only after the busy and free trees
 * have said the address is in neither, so hot paths never come here. `which` picks the list:
 * the lazy list (the caller holds the busy lock) or the purge batch (the free-space lock).
 */
export function findLazyArea(t: VaTable, addr: number, which: "lazy" | "batch"): number {
	for (let va = t.hdr[which === "lazy" ? HDR_LAZY_HEAD : HDR_PURGE_HEAD]!; va !== 0; va = t.i32[va * REC_I32 + VA_NEXT]!) {
		if (t.f64[va * REC_F64 + VA_START]! <= addr && addr < t.f64[va * REC_F64 + VA_END]!) return va;
	}
	return 0;
}

/** What an EBUSY message adds when this handle's purge is still waiting for its flush. */
export function flushingNote(p: Purger): string {
	return p.flushing ? " (a purge is waiting for its asynchronous flush; allocAsync() waits for it)" : "";
}
