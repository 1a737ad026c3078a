/**
 * The purge (kernel __purge_vmap_area_lazy) and the shrinker (vmap_node_shrink_scan).
 *
 * A purge:
 * 1. takes the purge mutex (one detach at a time), decays every node's pools (about 25% each;
 *    fully for an overflow purge or trim()), claims one of BATCH_SLOTS batches, moves each
 *    node's lazy tree to the node's purge tree of that batch (lazy-tree.ts), adopts the
 *    batches whose owners closed or ended before they were done, and releases the mutex;
 * 2. calls the flush hook once over the union range, holding no lock: other purges detach
 *    and flush their own batches meanwhile, and an asynchronous flush may take as long as it
 *    takes;
 * 3. purges every node's purge tree of its batches into pools or free space (purge-node.ts),
 *    holding only the short locks of each step. With several nodes and a backlog of
 *    k * lazyMaxPages, k - 1 nodes are posted for helpers (purge-work.ts); the purging handle
 *    does the rest, takes back what nobody took and waits for the helpers;
 * 4. gives the batch back; its generation word changes, which is what purge({ sync: true })
 *    watches for the batches other handles had in flight.
 *
 * When purges run: see drain.ts (drain, priority purge), alloc.ts (overflow) and the public
 * space.purge() and space.trim(). Liveness: no lock is held across the flush hook or a turn of
 * the event loop, so a flush that never settles keeps its batch unusable and nothing else.
 */
import type { FlushHook, PurgeResult, TrimResult } from "./api.ts";
import { adoptOrphans, Batch, batchesDone, batchesInFlight, claimBatch, type InFlight, othersInFlight, ownsBatch, pendingBatch } from "./batches.ts";
import { Drain } from "./drain.ts";
import { VmapError } from "./errors.ts";
import {
	BATCH_ORPHAN,
	BATCH_SKIP_POPULATE,
	BATCH_SLOTS,
	HDR_BATCH_FLAGS,
	HDR_BATCH_GEN,
	HDR_BATCH_OWNER,
	HDR_PURGE_LOCK,
	HDRF_BATCH_END,
	HDRF_BATCH_START,
	HDRF_FLUSH_ERRORS,
	HDRF_FLUSHED_BYTES,
	HDRF_FLUSHES,
	HDRF_HELPED,
	HDRF_LAZY_MAX_PAGES,
	HDRF_OVERFLOW_PURGES,
	HDRF_PRIORITY_PURGES,
	HDRF_DRAIN_PURGES,
	HDRF_PURGES,
	HDRF_TRIMS,
	N_POOL_LOCK,
	N_WORK,
	NF_HELPER_RUNS,
	nodeBase,
	purgeTree,
} from "./layout.ts";
import { canWait, type Locks } from "./lock.ts";
import { detachLazyTrees, undoDetach } from "./lazy-tree.ts";
import { decayVaPoolNode, purgeVmapNodeStep } from "./purge-node.ts";
import { finishWork, helperOf, postWork, repostWork, takeWork, workWord } from "./purge-work.ts";
import { seqBegin, seqEnd } from "./stats.ts";
import { isShared, type VaTable } from "./va-table.ts";

/** What a caller asks of a purge. */
export interface PurgeRequest {
	/**
	 * Wait for the purge mutex (held only while a purge detaches), and for a batch when all are
	 * in flight, instead of skipping (try).
	 */
	wait: boolean;
	/** An allocation found no fit: decay pools fully and do not refill them (kernel skip_populate). */
	overflow: boolean;
	/** Purge the nodes in bounded slices, yielding to the event loop between them (the drain). */
	bounded?: boolean;
	/** Skip the purge unless at least this many lazy pages wait, once the mutex is taken. */
	minPages?: number;
	/** Skip rather than wait when every batch is in flight (the free path's priority purge). */
	noBatchWait?: boolean;
}

export const SYNC_PURGE: PurgeRequest = { wait: true, overflow: false };
export const OVERFLOW_PURGE: PurgeRequest = { wait: true, overflow: true };
export const TRY_PURGE: PurgeRequest = { wait: false, overflow: false };
/** A purge that adopts orphaned batches, and waits for nothing more. */
const ADOPT_PURGE: PurgeRequest = { wait: true, overflow: false, noBatchWait: true };

const settled = Promise.resolve();
const NOTHING_DETACHED = { areas: 0, bytes: 0 };
const ignore = () => {};

export class Purger {
	readonly t: VaTable;
	readonly locks: Locks;
	readonly drain: Drain;
	private readonly flush: FlushHook | undefined;
	private readonly pageInverse: number;
	/** This handle's batches waiting for an asynchronous flush, and the promises that purge them. */
	private readonly inflight = new Map<Batch, Promise<void>>();

	constructor(t: VaTable, locks: Locks, flush: FlushHook | undefined, pageSize: number) {
		this.t = t;
		this.locks = locks;
		this.flush = flush;
		this.pageInverse = 1 / pageSize;
		this.drain = new Drain(this);
	}

	/** True while a batch of this handle waits for its asynchronous flush. */
	get flushing(): boolean {
		return this.inflight.size > 0;
	}

	/** Purge every lazy area. Throws what a synchronous flush hook throws; the areas then stay lazy. */
	purge(req: PurgeRequest): PurgeResult {
		const t = this.t;
		const locks = this.locks;
		if (locks.closed) return result("skipped", 0, 0, 0, 0, settled);
		// Whoever needs the space now finishes this handle's drain here, between its slices.
		if (req.wait && !req.bounded && this.drain.draining) this.drain.finish();
		if (!locks.tryAcquire(HDR_PURGE_LOCK)) {
			if (!req.wait) return result("skipped", 0, 0, 0, 0, settled);
			locks.acquire(HDR_PURGE_LOCK);
		}
		if (req.minPages !== undefined && t.lazyPages() < req.minPages) {
			locks.release(HDR_PURGE_LOCK);
			return result("skipped", 0, 0, 0, 0, settled);
		}
		// A purge that waits answers for every batch in flight when it began: other handles'
		// (waited for here, unless this is the drain or the free path), and this handle's (in `done`).
		const others = othersInFlight(t, locks.self);
		const waitsForOthers = req.wait && !req.bounded && !req.noBatchWait;
		const mine = req.wait ? Promise.allSettled(this.inflight.values()).then(ignore) : settled;
		const answered = (own: Promise<unknown>) => Promise.all([own, mine]).then(() => batchesDone(t, others));
		let batches: Batch[] = [];
		let k = -1;
		let detached: { areas: number; bytes: number } = NOTHING_DETACHED;
		try {
			for (let v = 0; v < t.nodes; v++) decayVaPoolNode(t, locks, v, req.overflow);
			batches = adoptOrphans(t, locks.self);
			k = claimBatch(t, locks.self);
			if (k >= 0) {
				// With every batch in flight the lazy trees wait for the next purge; the adopted go now.
				t.hdr[HDR_BATCH_FLAGS + k] = req.overflow ? BATCH_SKIP_POPULATE : 0;
				batches.unshift(new Batch(k, []));
				const d = detachLazyTrees(t, locks, k, this.pageInverse);
				detached = d;
				batches[0]!.own = d.nodes;
			}
		} catch (e) {
			// A lock wait timed out (or its holder died) between steps: what was detached or
			// adopted goes to the next purge, which flushes it again.
			for (const b of batches) this.orphan(b);
			throw stopped(e);
		} finally {
			locks.release(HDR_PURGE_LOCK);
		}
		if (batches.length === 0) return this.noBatch(req);

		let start = Infinity;
		let end = -Infinity;
		for (const b of batches) {
			start = Math.min(start, t.hdrF[HDRF_BATCH_START + b.k]!);
			end = Math.max(end, t.hdrF[HDRF_BATCH_END + b.k]!);
		}
		if (start >= end) {
			for (const b of batches) this.endBatch(b.k);
			if (waitsForOthers) this.waitForBatches(others);
			return result("empty", 0, 0, 0, 0, answered(settled));
		}
		seqBegin(t.hdr);
		t.hdrF[HDRF_PURGES]!++;
		t.hdrF[HDRF_FLUSHES]!++;
		t.hdrF[HDRF_FLUSHED_BYTES]! += end - start;
		if (req.overflow) t.hdrF[HDRF_OVERFLOW_PURGES]!++;
		else if (req.minPages !== undefined) t.hdrF[HDRF_PRIORITY_PURGES]!++;
		else if (req.bounded) t.hdrF[HDRF_DRAIN_PURGES]!++;
		seqEnd(t.hdr);

		const { areas, bytes } = detached;
		let pending: void | PromiseLike<void>;
		try {
			pending = this.flush?.(start, end);
		} catch (e) {
			for (const b of batches) this.flushFailed(b);
			throw e;
		}
		const bounded = req.bounded ?? false;
		if (pending === undefined || typeof pending.then !== "function") {
			const merged = this.flushed(batches, bounded);
			if (waitsForOthers) this.waitForBatches(others);
			// Adopted batches took every slot, so the lazy trees were left: a sync purge goes on with them.
			if (k < 0 && waitsForOthers && t.lazyPages() > 0) return this.purge(req);
			return result(bounded ? "flushing" : "done", areas, bytes, start, end, answered(merged));
		}
		const done = Promise.resolve(pending).then(
			() => {
				for (const b of batches) this.inflight.delete(b);
				return this.flushed(batches.filter((b) => ownsBatch(this.t, b.k, this.locks.self)), bounded);
			},
			(e: unknown) => {
				for (const b of batches) {
					this.inflight.delete(b);
					if (ownsBatch(this.t, b.k, this.locks.self)) this.flushFailed(b);
				}
				throw e;
			},
		);
		for (const b of batches) this.inflight.set(b, done);
		done.catch(ignore); // the caller may ignore `done`; the error is counted in flushErrors
		return result("flushing", areas, bytes, start, end, answered(done));
	}

	/**
	 * Wait, holding nothing, until each of `batches` (slot, generation) that other handles had
	 * in flight is done: what a sync or overflow purge promises is then true of their areas too.
	 * A batch orphaned meanwhile (its owner closed or ended) is adopted and purged here. After
	 * timeoutMs, ETIMEDOUT names the batch and its owner (this purge's own batch is done; the
	 * other batch's areas stay out of use until it is); while
	 * it waits, the layer above is told this handle is blocked (a heap handle is then quiescent
	 * for grace periods: its thread holds no reference while it waits here).
	 */
	private waitForBatches(batches: readonly InFlight[]): void {
		// A handle with a batch of its own waiting for an asynchronous flush never blocks on
		// others': they may be waiting for ours, which settles only on this thread's event loop.
		// Its purge's `done` covers them instead.
		if (batches.length === 0 || this.inflight.size > 0) return;
		const hdr = this.t.hdr;
		const t0 = performance.now();
		let blocked = false;
		try {
			for (;;) {
				const pending = pendingBatch(this.t, batches);
				if (pending === undefined) return;
				const [k, gen] = pending;
				this.locks.checkAlive();
				if (Atomics.load(hdr, HDR_BATCH_OWNER + k) === BATCH_ORPHAN) {
					this.purge(ADOPT_PURGE);
					continue;
				}
				if (!canWait) return;
				if (performance.now() - t0 >= this.locks.timeoutMs) {
					const owner = Atomics.load(hdr, HDR_BATCH_OWNER + k);
					throw new VmapError(
						"ETIMEDOUT",
						`Waited ${this.locks.timeoutMs} ms for purge batch ${k}, which handle ${owner} is still flushing or purging (its flush hook has not returned or settled); this purge's own batch is done`,
					);
				}
				if (!blocked) {
					blocked = true;
					this.blocking?.(true);
				}
				Atomics.wait(hdr, HDR_BATCH_GEN + k, gen, 20);
			}
		} finally {
			if (blocked) this.blocking?.(false);
		}
	}

	/** Set by the layer above: told when this handle blocks waiting for other handles' batches, and when it stops. */
	blocking: ((blocked: boolean) => void) | undefined;

	/**
	 * Every batch is in flight. Try, or the free path: skipped. A batch of ours among them:
	 * our drain's is purged here at once; if only our flushes are in flight, this purge is
	 * queued behind them (waiting here would wait for ourselves). Otherwise wait, holding
	 * nothing, for another handle's batch to be done (ETIMEDOUT after timeoutMs), and retry.
	 */
	private noBatch(req: PurgeRequest): PurgeResult {
		if (!req.wait || req.noBatchWait) return result("skipped", 0, 0, 0, 0, settled);
		if (this.drain.draining) {
			this.drain.finish();
			return this.purge(req);
		}
		if (this.inflight.size > 0) {
			const done = Promise.allSettled(this.inflight.values()).then(() => (this.locks.closed ? undefined : this.purge(req).done));
			done.catch(ignore);
			return result("queued", 0, 0, 0, 0, done);
		}
		const hdr = this.t.hdr;
		const t0 = performance.now();
		const k = 0;
		const owner = Atomics.load(hdr, HDR_BATCH_OWNER + k);
		while (Atomics.load(hdr, HDR_BATCH_OWNER + k) === owner && owner !== 0) {
			this.locks.checkAlive();
			const ms = performance.now() - t0;
			if (ms >= this.locks.timeoutMs) {
				throw new VmapError("ETIMEDOUT", `Waited ${this.locks.timeoutMs} ms for a purge batch: all ${BATCH_SLOTS} are in flight (batch 0 is handle ${owner}'s); nothing was changed`);
			}
			if (canWait) Atomics.wait(hdr, HDR_BATCH_OWNER + k, owner, 20);
		}
		return this.purge(req);
	}

	/** The batches are flushed: offer nodes to helpers, then purge the nodes, now or in slices. */
	private flushed(batches: Batch[], bounded: boolean): Promise<void> {
		for (const b of batches) this.postHelpers(b);
		if (bounded) return this.drain.purgeBounded(batches);
		for (const b of batches) this.purgeBatch(b);
		return settled;
	}

	/** The flush threw or rejected: batch `b` goes back to the lazy trees. */
	private flushFailed(b: Batch): void {
		seqBegin(this.t.hdr);
		this.t.hdrF[HDRF_FLUSH_ERRORS]!++;
		seqEnd(this.t.hdr);
		try {
			undoDetach(this.t, this.locks, b.k);
		} catch {
			this.orphan(b); // a lock wait timed out: the next purge takes the batch, unflushed as it is
			return;
		}
		this.endBatch(b.k, false);
	}

	/**
	 * Close(): hand the batches still waiting for their flush over to the next purge (which
	 * flushes their range again); a drain of ours in progress is finished now.
	 */
	handOver(): void {
		try {
			this.drain.finish();
		} finally {
			for (const b of this.inflight.keys()) this.orphan(b); // orphan() deletes the entry: safe while iterating a Map
		}
	}

	/**
	 * Shrinker (kernel vmap_node_shrink_scan): decay every pool fully, under the purge mutex
	 * (decays must not run concurrently: kernel fix ec05f51f1e65).
	 */
	trim(): TrimResult {
		const t = this.t;
		const locks = this.locks;
		locks.acquire(HDR_PURGE_LOCK);
		let areas = 0;
		let bytes = 0;
		try {
			for (let v = 0; v < t.nodes; v++) {
				const decayed = decayVaPoolNode(t, locks, v, true);
				areas += decayed.areas;
				bytes += decayed.pages / this.pageInverse;
			}
			seqBegin(t.hdr);
			t.hdrF[HDRF_TRIMS]!++;
			seqEnd(t.hdr);
		} finally {
			locks.release(HDR_PURGE_LOCK);
		}
		return { areas, bytes };
	}

	/**
	 * Help other purges (no lock held): purge every node posted for helpers that this handle
	 * can take. Called at the start of this handle's calls and when it is idle.
	 */
	help(): void {
		const t = this.t;
		const locks = this.locks;
		for (let v = 0; v < t.nodes; v++) {
			const k = takeWork(t, v, locks.self);
			if (k < 0) continue;
			try {
				while (purgeVmapNodeStep(t, locks, v, k, this.pageInverse));
				const b = nodeBase(v);
				locks.acquire(b + N_POOL_LOCK);
				t.hdrF[(b >> 1) + NF_HELPER_RUNS]!++;
				locks.release(b + N_POOL_LOCK);
			} catch (e) {
				// Helping is optional: a lock wait that timed out posts the node again for anyone.
				repostWork(t, v, locks.self);
				if (e instanceof VmapError && e.code === "ETIMEDOUT") continue;
				throw e;
			}
			finishWork(t, v);
		}
	}

	/**
	 * Batch `b` is flushed: offer nodes to helpers (kernel nr_purge_helpers = clamp(vmapLazyNr
	 * / lazyMaxPages, 1, nodes with work) - 1). Only a shared space has other handles.
	 */
	private postHelpers(b: Batch): void {
		const t = this.t;
		if (!isShared(t.buffer) || b.own.length < 2) return;
		const units = Math.floor(t.lazyPages() / t.hdrF[HDRF_LAZY_MAX_PAGES]!);
		let helpers = Math.min(Math.max(units, 1), b.own.length) - 1;
		for (let i = b.own.length - 1; i > 0 && helpers > 0; i--) {
			const v = b.own[i]!;
			if (t.hdr[purgeTree(v, b.k)] === 0 || !postWork(t, v, b.k)) continue;
			b.own.splice(i, 1);
			b.posted.push(v);
			helpers--;
		}
	}

	/**
	 * One unit of batch `b`'s node work: a step of its first own node, else its first posted
	 * node taken back (nobody took it) or checked on. Returns "more", "wait" (a helper is still
	 * at work) or "done" (every node purged).
	 */
	step(b: Batch): "more" | "wait" | "done" {
		const t = this.t;
		const locks = this.locks;
		if (b.own.length > 0) {
			if (!purgeVmapNodeStep(t, locks, b.own[0]!, b.k, this.pageInverse)) b.own.shift();
			return "more";
		}
		if (b.posted.length === 0) return "done";
		const v = b.posted[0]!;
		const helper = helperOf(t, v, b.k);
		if (helper === -1) {
			if (takeWork(t, v, locks.self) === b.k) {
				finishWork(t, v);
				b.posted.shift();
				b.own.push(v);
			}
			return "more";
		}
		if (helper === 0) {
			b.posted.shift();
			seqBegin(t.hdr);
			t.hdrF[HDRF_HELPED]!++;
			seqEnd(t.hdr);
			return "more";
		}
		return "wait";
	}

	/** Wait briefly for the helper of batch `b`'s first posted node (after step() said "wait"). */
	waitForHelper(b: Batch): void {
		const v = b.posted[0]!;
		if (canWait) Atomics.wait(this.t.hdr, nodeBase(v) + N_WORK, workWord(this.t, v), 20);
	}

	/** Purge every node of batch `b` now, waiting for its helpers; then give the batch back. */
	purgeBatch(b: Batch): void {
		try {
			for (;;) {
				const w = this.step(b);
				if (w === "done") break;
				if (w === "wait") this.waitForHelper(b);
			}
		} catch (e) {
			this.orphan(b);
			throw stopped(e);
		}
		this.endBatch(b.k);
	}

	/**
	 * Give batch `b` up, half purged (a step's lock wait timed out, or the flush failed and
	 * could not be undone): the next purge adopts it, flushes its range again and purges it.
	 */
	orphan(b: Batch): void {
		this.inflight.delete(b);
		Atomics.compareExchange(this.t.hdr, HDR_BATCH_OWNER + b.k, this.locks.self, BATCH_ORPHAN);
		Atomics.notify(this.t.hdr, HDR_BATCH_OWNER + b.k);
	}

	/**
	 * Batch `k` is done (or given up): free it, change its generation, wake waiters; areas freed
	 * meanwhile may make a drain due.
	 */
	endBatch(k: number, drainAfter = true): void {
		const hdr = this.t.hdr;
		hdr[HDR_BATCH_FLAGS + k] = 0;
		Atomics.add(hdr, HDR_BATCH_GEN + k, 1);
		Atomics.store(hdr, HDR_BATCH_OWNER + k, 0);
		Atomics.notify(hdr, HDR_BATCH_OWNER + k);
		if (drainAfter && this.t.lazyPages() > this.t.hdrF[HDRF_LAZY_MAX_PAGES]!) this.drain.schedule();
	}
}

/** A purge's lock wait timed out between its steps: say what became of its areas. */
function stopped(e: unknown): unknown {
	if (!(e instanceof VmapError) || e.code !== "ETIMEDOUT") return e;
	return new VmapError("ETIMEDOUT", `The purge stopped before its areas were purged; they stay lazy and the next purge takes them. ${e.detail}`, { cause: e });
}

function result(status: PurgeResult["status"], areas: number, bytes: number, start: number, end: number, done: Promise<void>): PurgeResult {
	return { status, areas, bytes, start, end, done };
}

/** What an EBUSY message adds when batches are still waiting for their flush. */
export function flushingNote(p: Purger): string {
	const n = batchesInFlight(p.t);
	return n > 0 ? ` (${n} purge batch${n > 1 ? "es are" : " is"} still being flushed or purged; allocAsync() waits for them)` : "";
}
