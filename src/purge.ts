/**
 * Purge (kernel __purge_vmap_area_lazy, drain work, shrinker).
 *
 * A purge, holding the purge mutex:
 * 1. decays every node's pools (about 25% each; fully for an overflow purge or trim());
 * 2. moves each node's lazy list to the node's purge list, widening the flush range with the
 *    bounds each node kept as its areas were added (no walk of the lists);
 * 3. calls the flush hook once over the union range;
 * 4. reclaims every node's purge list into its pools or free space. With several nodes and a
 *    backlog of k * lazyMaxPages, k - 1 nodes (at most the nodes with work, less one) are
 *    posted for helpers: other handles take them at their next call, or at once when idle
 *    (helpers.ts). The purging handle reclaims the rest, takes back posted nodes nobody took,
 *    and waits for the helpers.
 *
 * When purges run:
 * - drain: a free that takes vmapLazyNr past lazyMaxPages schedules one on the event loop
 *   (never inside free: seed "move draining areas out of caller context"); it reclaims in
 *   slices of about SLICE_MS, yielding to the event loop between them, unless the backlog is at
 *   or above the priority threshold;
 * - priority: at 2 * lazyMaxPages the free path purges itself, since a thread that never yields
 *   never runs its drain, and the backlog would run away (seed 002);
 * - overflow: an allocation that finds no fit purges (sync semantics, full decay, no pool
 *   refill) and retries once;
 * - on request: space.purge(); space.trim() only decays.
 *
 * The purge mutex admits one purge at a time across all handles; it stays held across an
 * asynchronous flush, so a batch is never reclaimed before its flush completed. The flush hook
 * runs holding only the purge mutex.
 */
import type { FlushHook, PurgeResult, TrimResult } from "./api.ts";
import { VmapError } from "./errors.ts";
import { finishWork, helperOf, postWork, takeWork } from "./helpers.ts";
import {
	HDR_DEAD,
	HDR_NO_PRIORITY,
	HDR_PURGE_LOCK,
	HDR_SKIP_POPULATE,
	HDRF_FLUSH_ERRORS,
	HDRF_FLUSHED_BYTES,
	HDRF_FLUSHES,
	HDRF_HELPED,
	HDRF_LAZY_MAX_PAGES,
	HDRF_OVERFLOW_PURGES,
	HDRF_PURGES,
	HDRF_TRIMS,
	N_LAZY_HEAD,
	N_LAZY_LOCK,
	N_LAZY_NR,
	N_POOL_LOCK,
	N_PURGE_HEAD,
	N_PURGE_NR,
	N_WORK,
	NF_HELPER_RUNS,
	NF_LAZY_ADDED,
	NF_LAZY_MAX,
	NF_LAZY_MIN,
	NF_LAZY_PURGED,
	nodeBase,
} from "./layout.ts";
import { canWait, type Locks, OwnerWatch } from "./lock.ts";
import { decayNode, reclaimStep } from "./reclaim.ts";
import { seqBegin, seqEnd } from "./stats.ts";
import { isShared, type VaTable } from "./va-table.ts";
import { setVaNext, vaEnd, vaNext, vaStart } from "./record.ts";

const schedule: (task: () => void) => void =
	typeof setImmediate === "function" ? (task) => void setImmediate(task) : (task) => void setTimeout(task, 0);

const settled = Promise.resolve();
/** A drain yields to the event loop after about this much work. */
const SLICE_MS = 0.1;
/** How long the free path helps another handle's purge before it waits for the mutex. */
const HELP_MS = 50;
const ignore = () => {};

export class Purger {
	private readonly t: VaTable;
	private readonly locks: Locks;
	private readonly flush: FlushHook | undefined;
	private readonly pageInverse: number;
	/** This handle's purge waiting for an asynchronous flush; it holds the purge mutex. */
	private inflight: Promise<void> | null = null;
	private drainScheduled = false;
	/** This handle's drain is reclaiming in slices (it holds the purge mutex). */
	private reclaiming = false;
	/** Nodes this handle's purge reclaims itself, and nodes it posted for helpers. */
	private own: number[] = [];
	private posted: number[] = [];
	/** Watches the helper of posted[0] while this purge waits for it. */
	private watch = new OwnerWatch();

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
	 * After a free (no lock held): drain when past lazyMaxPages; at twice that, purge here,
	 * waiting for a purge another worker runs (seed 002: above the priority threshold freeing
	 * comes first). Waiting throttles a thread that frees faster than purges return space; with
	 * try semantics it would keep adding while another purged, and could fill the space.
	 */
	afterFree(): void {
		const t = this.t;
		const lazyMax = t.hdrF[HDRF_LAZY_MAX_PAGES]!;
		const nrLazy = t.lazyPages();
		if (nrLazy > lazyMax) {
			if (nrLazy >= 2 * lazyMax && t.hdr[HDR_NO_PRIORITY] === 0) this.priorityPurge(2 * lazyMax);
			else this.scheduleDrain();
		}
	}

	/**
	 * The free path's purge above the threshold. While another handle's purge holds the mutex,
	 * help it (its posted nodes) instead of sleeping on the mutex, and stop as soon as the
	 * backlog is under the threshold; after HELP_MS of that, wait for the mutex as a sync purge
	 * does (which is also where a dead holder is detected). A purge that gets the mutex with
	 * the backlog already under the threshold (another handle's purge just took it) is skipped.
	 */
	private priorityPurge(threshold: number): void {
		const t = this.t;
		const locks = this.locks;
		const owner = locks.owner(HDR_PURGE_LOCK);
		if (owner !== 0 && owner !== locks.self) {
			const until = performance.now() + HELP_MS;
			while (locks.owner(HDR_PURGE_LOCK) !== 0 && performance.now() < until) {
				this.help();
				if (t.lazyPages() < threshold) return;
			}
		}
		this.purgeQuietly(true, false, threshold);
	}

	/**
	 * Purge every lazy area. `sync`: wait for a running purge instead of skipping.
	 * `overflow`: an allocation found no fit: decay pools fully and do not refill them.
	 * Throws what a synchronous flush hook throws; the areas then stay lazy.
	 */
	purge(sync: boolean, overflow: boolean, bounded = false, minPages = 0): PurgeResult {
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
		const t = this.t;
		if (minPages > 0 && t.lazyPages() < minPages) {
			locks.release(HDR_PURGE_LOCK);
			return result("skipped", 0, 0, 0, 0, settled);
		}
		t.hdr[HDR_SKIP_POPULATE] = overflow ? 1 : 0; // read by helpers, after they take work
		for (let v = 0; v < t.nodes; v++) decayNode(t, locks, v, overflow);

		// Each node's lazy list becomes its purge list; the flush range was kept as areas came.
		let areas = 0;
		let bytes = 0;
		let start = Infinity;
		let end = -Infinity;
		this.own = [];
		for (let v = 0; v < t.nodes; v++) {
			const b = nodeBase(v);
			const f = b >> 1;
			locks.acquire(b + N_POOL_LOCK);
			locks.acquire(b + N_LAZY_LOCK);
			const hdr = t.hdr;
			const hdrF = t.hdrF;
			const head = hdr[b + N_LAZY_HEAD]!;
			if (head !== 0) {
				hdr[b + N_PURGE_HEAD] = head;
				hdr[b + N_PURGE_NR] = hdr[b + N_LAZY_NR]!;
				areas += hdr[b + N_LAZY_NR]!;
				// No purge list existed: what is lazy on this node is what the lazy list holds.
				bytes += (hdrF[f + NF_LAZY_ADDED]! - hdrF[f + NF_LAZY_PURGED]!) / this.pageInverse;
				if (hdrF[f + NF_LAZY_MIN]! < start) start = hdrF[f + NF_LAZY_MIN]!;
				if (hdrF[f + NF_LAZY_MAX]! > end) end = hdrF[f + NF_LAZY_MAX]!;
				hdr[b + N_LAZY_HEAD] = 0;
				hdr[b + N_LAZY_NR] = 0;
				hdrF[f + NF_LAZY_MIN] = Infinity;
				hdrF[f + NF_LAZY_MAX] = -Infinity;
				this.own.push(v);
			}
			locks.release(b + N_LAZY_LOCK);
			locks.release(b + N_POOL_LOCK);
		}
		if (areas === 0) {
			locks.release(HDR_PURGE_LOCK);
			return result("empty", 0, 0, 0, 0, settled);
		}
		const hdr = t.hdr;
		const hdrF = t.hdrF;
		seqBegin(hdr);
		hdrF[HDRF_PURGES]!++;
		hdrF[HDRF_FLUSHES]!++;
		hdrF[HDRF_FLUSHED_BYTES]! += end - start;
		if (overflow) hdrF[HDRF_OVERFLOW_PURGES]!++;
		seqEnd(hdr);

		let pending: void | PromiseLike<void>;
		try {
			locks.heartbeat();
			pending = this.flush?.(start, end);
		} catch (e) {
			this.unpurge();
			throw e;
		}
		if (pending === undefined || typeof pending.then !== "function") {
			this.postHelpers();
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
				this.postHelpers();
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

	/**
	 * Shrinker (kernel vmap_node_shrink_scan): decay every pool fully, under the purge mutex
	 * (decays must not run concurrently: seed 003, fix ec05f51f1e65). Waits for a purge another
	 * handle runs; if this handle's own purge holds the mutex, decays under it.
	 */
	trim(): TrimResult {
		const t = this.t;
		const locks = this.locks;
		const mine = locks.owner(HDR_PURGE_LOCK) === locks.self;
		if (!mine) locks.acquire(HDR_PURGE_LOCK);
		let areas = 0;
		let bytes = 0;
		try {
			for (let v = 0; v < t.nodes; v++) {
				const decayed = decayNode(t, locks, v, true);
				areas += decayed.areas;
				bytes += decayed.pages / this.pageInverse;
			}
			seqBegin(t.hdr);
			t.hdrF[HDRF_TRIMS]!++;
			seqEnd(t.hdr);
		} finally {
			if (!mine) locks.release(HDR_PURGE_LOCK);
		}
		return { areas, bytes };
	}

	/**
	 * Help another handle's purge (no lock held): reclaim every node posted for helpers that
	 * this handle can take. Called at the start of this handle's calls and when it is idle.
	 */
	help(): void {
		const t = this.t;
		const locks = this.locks;
		// Our own purge takes back its posted nodes itself (work()).
		if (locks.owner(HDR_PURGE_LOCK) === locks.self) return;
		for (let v = 0; v < t.nodes; v++) {
			if (!takeWork(t, v, locks.self)) continue;
			try {
				while (reclaimStep(t, locks, v, this.pageInverse));
				const b = nodeBase(v);
				locks.acquire(b + N_POOL_LOCK);
				t.hdrF[(b >> 1) + NF_HELPER_RUNS]!++;
				locks.release(b + N_POOL_LOCK);
			} finally {
				finishWork(t, v);
			}
		}
	}

	/** A purge whose errors are counted, not thrown: for purges nobody called (drain, priority). */
	private purgeQuietly(sync: boolean, bounded: boolean, minPages = 0): void {
		try {
			this.purge(sync, false, bounded, minPages).done.catch(ignore);
		} catch (e) {
			// A failed flush was counted by unpurge(); the areas are lazy again and the next purge
			// retries them. A dead lock owner is not ours to swallow.
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
	 * The flush is done: offer nodes to helpers (kernel nr_purge_helpers = clamp(vmapLazyNr /
	 * lazyMaxPages, 1, nodes with work) - 1). Only a shared space has other handles.
	 */
	private postHelpers(): void {
		const t = this.t;
		this.posted = [];
		if (!isShared(t.buffer) || this.own.length < 2) return;
		const units = Math.floor(t.lazyPages() / t.hdrF[HDRF_LAZY_MAX_PAGES]!);
		let helpers = Math.min(Math.max(units, 1), this.own.length) - 1;
		while (helpers-- > 0) {
			const v = this.own.pop()!;
			postWork(t, v);
			this.posted.push(v);
		}
	}

	/**
	 * One unit of reclaim work: a step of the first own node, else the first posted node taken
	 * back (nobody took it) or checked on. Returns "more", "wait" (a helper is still at work)
	 * or "done" (everything reclaimed).
	 */
	private work(): "more" | "wait" | "done" {
		const t = this.t;
		const locks = this.locks;
		if (this.own.length > 0) {
			if (!reclaimStep(t, locks, this.own[0]!, this.pageInverse)) this.own.shift();
			return "more";
		}
		if (this.posted.length === 0) return "done";
		const v = this.posted[0]!;
		if (takeWork(t, v, locks.self)) {
			finishWork(t, v);
			this.posted.shift();
			this.own.push(v);
			return "more";
		}
		const helper = helperOf(t, v);
		if (helper === 0) {
			this.posted.shift();
			this.watch = new OwnerWatch();
			seqBegin(t.hdr);
			t.hdrF[HDRF_HELPED]!++;
			seqEnd(t.hdr);
			return "more";
		}
		this.watch.check(t, nodeBase(v) + N_WORK, helper, helper);
		return "wait";
	}

	/** Reclaim everything now, waiting for helpers; then release the purge mutex. */
	private reclaim(): void {
		const t = this.t;
		for (;;) {
			const w = this.work();
			if (w === "done") break;
			if (w === "wait") {
				const v = this.posted[0]!;
				const word = nodeBase(v) + N_WORK;
				const helper = helperOf(t, v);
				if (canWait && helper > 0) Atomics.wait(t.hdr, word, helper, 20);
			}
		}
		this.endPurge();
	}

	/**
	 * The scheduled drain's reclaim: slices of about SLICE_MS, yielding to the event loop
	 * between them (the kernel's cond_resched_lock), with the purge mutex held throughout, so
	 * the thread that drains still serves its other work (seeds 000 and 002: purges held locks
	 * for milliseconds). While the backlog is at or above the priority threshold, it does not
	 * yield: freeing comes first. Waiting for a helper always yields. Resolves when all is
	 * reclaimed.
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
						for (;;) {
							const w = this.work();
							if (w === "done") break;
							if (w === "wait" || (performance.now() > until && t.lazyPages() < 2 * t.hdrF[HDRF_LAZY_MAX_PAGES]!)) {
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

	/** All is reclaimed: release the purge mutex; areas freed meanwhile may make a drain due. */
	private endPurge(): void {
		this.reclaiming = false;
		this.locks.release(HDR_PURGE_LOCK);
		if (this.t.lazyPages() > this.t.hdrF[HDRF_LAZY_MAX_PAGES]!) this.scheduleDrain();
	}

	/** The flush failed: each purge list goes back on its lazy list, unflushed; the mutex is released. */
	private unpurge(): void {
		const t = this.t;
		const locks = this.locks;
		for (const v of this.own) {
			const b = nodeBase(v);
			const f = b >> 1;
			locks.acquire(b + N_POOL_LOCK);
			locks.acquire(b + N_LAZY_LOCK);
			t.sync();
			const hdr = t.hdr;
			const hdrF = t.hdrF;
			let tail = 0;
			for (let va = hdr[b + N_PURGE_HEAD]!; va !== 0; va = vaNext(t, va)) {
				tail = va;
				const s = vaStart(t, va);
				const e = vaEnd(t, va);
				if (s < hdrF[f + NF_LAZY_MIN]!) hdrF[f + NF_LAZY_MIN] = s;
				if (e > hdrF[f + NF_LAZY_MAX]!) hdrF[f + NF_LAZY_MAX] = e;
			}
			if (tail !== 0) {
				setVaNext(t, tail, hdr[b + N_LAZY_HEAD]!);
				hdr[b + N_LAZY_HEAD] = hdr[b + N_PURGE_HEAD]!;
				hdr[b + N_LAZY_NR]! += hdr[b + N_PURGE_NR]!;
			}
			hdr[b + N_PURGE_HEAD] = 0;
			hdr[b + N_PURGE_NR] = 0;
			locks.release(b + N_LAZY_LOCK);
			locks.release(b + N_POOL_LOCK);
		}
		this.own = [];
		seqBegin(t.hdr);
		t.hdrF[HDRF_FLUSH_ERRORS]!++;
		seqEnd(t.hdr);
		locks.release(HDR_PURGE_LOCK);
	}
}

function result(status: PurgeResult["status"], areas: number, bytes: number, start: number, end: number, done: Promise<void>): PurgeResult {
	return { status, areas, bytes, start, end, done };
}

/** What an EBUSY message adds when this handle's purge is still waiting for its flush. */
export function flushingNote(p: Purger): string {
	return p.flushing ? " (a purge is waiting for its asynchronous flush; allocAsync() waits for it)" : "";
}
