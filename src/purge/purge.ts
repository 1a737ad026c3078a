/**
 * The purge layer (src/purge/): making lazily freed areas reusable. This file runs a purge of
 * a kind (kinds.ts: the policy of each); batches.ts claims, adopts and waits for batches;
 * purge-node.ts purges one node's tree into pools or free space and decays pools; work.ts
 * hands nodes to helpers; drain.ts decides when the free path purges. It may import tree/,
 * buffer/, util/ and api/. No lock is held across the flush hook or a turn of the event loop.
 *
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
 *    k * lazyMaxPages, k - 1 nodes are posted for helpers (purge/work.ts); the purging handle
 *    does the rest, takes back what nobody took and waits for the helpers;
 * 4. gives the batch back; its generation word changes, which is what purge({ sync: true })
 *    watches for the batches other handles had in flight.
 *
 * When purges run: see drain.ts (drain, priority purge), alloc.ts (overflow) and the public
 * space.purge() and space.trim(). Liveness: no lock is held across the flush hook or a turn of
 * the event loop, so a flush that never settles keeps its batch unusable and nothing else.
 */
import type { FlushHook, PurgeResult } from "../api/types.ts";
import { adoptOrphans, Batch, batchesDone, claimBatch, type InFlight, othersInFlight, ownsBatch, waitForBatches } from "./batches.ts";
import { Drain } from "./drain.ts";
import { VmapError } from "../api/errors.ts";
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
	HDRF_LAZY_MAX_PAGES,
	HDRF_PURGES,
} from "../buffer/layout.ts";
import { canWait, type Locks, seqBegin, seqEnd } from "../buffer/lock.ts";
import { detachLazyTrees, undoDetach } from "../tree/lazy-tree.ts";
import { decayVaPoolNode, trimPools } from "./purge-node.ts";
import { POLL_MS, PURGE_POLICY, type PurgeKind, type PurgePolicy } from "./kinds.ts";
import { helpPurges, postHelpers, stepBatch, waitForHelper } from "./work.ts";
import type { VaTable } from "../buffer/va-table.ts";

const settled = Promise.resolve();
const ignore = () => {};
const SKIPPED: PurgeResult = Object.freeze({ status: "skipped", areas: 0, bytes: 0, start: 0, end: 0, done: settled });

/**
 * One pass of a purge: its answer, the other handles' batches it must wait for before giving
 * that answer (sync and overflow), and whether to go round again once it has: "always" (every
 * batch was in flight), "if lazy" (adopted batches took the slot its lazy trees needed: again
 * if areas are still lazy after the wait), or "no".
 */
interface Pass {
	result: PurgeResult;
	waitFor: readonly InFlight[];
	again: "always" | "if lazy" | "no";
}

/** What a pass took under the mutex: its batches (its own first, when it got a slot), and the areas detached. */
interface Taken {
	batches: Batch[];
	claimed: boolean;
	areas: number;
	bytes: number;
}

export class Purger {
	readonly t: VaTable;
	readonly locks: Locks;
	readonly drain: Drain;
	readonly #flush: FlushHook | undefined;
	readonly #pageInverse: number;
	/** This handle's batches waiting for an asynchronous flush, and the promises that purge them. */
	readonly #inflight = new Map<Batch, Promise<void>>();

	constructor(t: VaTable, locks: Locks, flush: FlushHook | undefined, pageSize: number) {
		this.t = t;
		this.locks = locks;
		this.#flush = flush;
		this.#pageInverse = 1 / pageSize;
		this.drain = new Drain(this);
	}

	/** True while a batch of this handle waits for its asynchronous flush. */
	get flushing(): boolean {
		return this.#inflight.size > 0;
	}

	/**
	 * Purge every lazy area, as `kind` says (kinds.ts). Throws what a synchronous flush hook
	 * throws; the areas then stay lazy. A pass that must go on (every batch was in flight, or
	 * adopted batches took the slot its lazy trees needed) goes round this loop again.
	 */
	purge(kind: PurgeKind): PurgeResult {
		const p = PURGE_POLICY[kind];
		for (;;) {
			const pass = this.#pass(p);
			this.#waitForOthers(pass.waitFor);
			if (pass.again === "no" || (pass.again === "if lazy" && this.t.lazyPages() === 0)) return pass.result;
		}
	}

	/** One pass: take the mutex, detach, flush holding nothing, purge the nodes (now or in slices). */
	#pass(p: PurgePolicy): Pass {
		const t = this.t;
		if (this.locks.closed) return { result: SKIPPED, waitFor: [], again: "no" };
		// Whoever needs the space now finishes this handle's drain here, between its slices.
		if (p.finishDrain && this.drain.draining) this.drain.finish();
		if (!this.#takeMutex(p)) return { result: SKIPPED, waitFor: [], again: "no" };
		// A purge that waits answers for every batch in flight when it began: other handles'
		// (waited for, with waitOthers), and this handle's own (in `done`, with coverOwn).
		const others = othersInFlight(t, this.locks.self);
		const waitFor = p.waitOthers ? others : [];
		const own = p.coverOwn ? Promise.allSettled(this.#inflight.values()).then(ignore) : settled;
		const answered = (done: Promise<unknown>) => Promise.all([done, own]).then(() => batchesDone(t, others));
		const taken = this.#detach(p);
		if (taken.batches.length === 0) return this.#noBatch(p);
		const { batches, areas, bytes } = taken;
		let start = Infinity;
		let end = -Infinity;
		for (const b of batches) {
			start = Math.min(start, t.hdrF[HDRF_BATCH_START + b.k]!);
			end = Math.max(end, t.hdrF[HDRF_BATCH_END + b.k]!);
		}
		if (start >= end) {
			for (const b of batches) this.endBatch(b.k);
			return { result: { status: "empty", areas: 0, bytes: 0, start: 0, end: 0, done: answered(settled) }, waitFor, again: "no" };
		}
		this.#count(p, end - start);
		let pending: void | PromiseLike<void>;
		try {
			pending = this.#flush?.(start, end);
		} catch (e) {
			for (const b of batches) this.#flushFailed(b);
			throw e;
		}
		if (pending !== undefined && typeof pending.then === "function") {
			const done = this.#flushLater(batches, pending, p.bounded);
			return { result: { status: "flushing", areas, bytes, start, end, done: answered(done) }, waitFor: [], again: "no" };
		}
		const merged = this.#flushed(batches, p.bounded);
		// Adopted batches took every slot, so the lazy trees were left: a sync purge goes on with them.
		const again = !taken.claimed && p.waitOthers ? "if lazy" : "no";
		return { result: { status: p.bounded ? "flushing" : "done", areas, bytes, start, end, done: answered(merged) }, waitFor, again };
	}

	/** Take the purge mutex as `p` says: false to skip (busy and not waited for, or under the priority threshold). */
	#takeMutex(p: PurgePolicy): boolean {
		const locks = this.locks;
		if (!locks.tryAcquire(HDR_PURGE_LOCK)) {
			if (!p.waitMutex) return false;
			locks.acquire(HDR_PURGE_LOCK);
		}
		if (p.atThreshold && this.t.lazyPages() < 2 * this.t.hdrF[HDRF_LAZY_MAX_PAGES]!) {
			locks.release(HDR_PURGE_LOCK);
			return false;
		}
		return true;
	}

	/**
	 * Under the mutex (released here): decay every node's pools, adopt orphaned batches, claim a
	 * batch and detach the lazy trees into it. With every batch in flight the lazy trees wait
	 * for the next purge; the adopted go now.
	 */
	#detach(p: PurgePolicy): Taken {
		const t = this.t;
		const locks = this.locks;
		const taken: Taken = { batches: [], claimed: false, areas: 0, bytes: 0 };
		try {
			for (let v = 0; v < t.nodes; v++) decayVaPoolNode(t, locks, v, p.overflow);
			taken.batches = adoptOrphans(t, locks.self);
			const k = claimBatch(t, locks.self);
			if (k >= 0) {
				t.hdr[HDR_BATCH_FLAGS + k] = p.overflow ? BATCH_SKIP_POPULATE : 0;
				const b = new Batch(k, []);
				taken.batches.unshift(b);
				taken.claimed = true;
				const d = detachLazyTrees(t, locks, k, this.#pageInverse);
				b.own = d.nodes;
				taken.areas = d.areas;
				taken.bytes = d.bytes;
			}
		} catch (e) {
			// A lock wait timed out (or its holder died) between steps: what was detached or
			// adopted goes to the next purge, which flushes it again.
			for (const b of taken.batches) this.orphan(b);
			throw stopped(e);
		} finally {
			locks.release(HDR_PURGE_LOCK);
		}
		return taken;
	}

	/** Count a purge that flushes `bytes` (the seqlock lets stats() read the counters without a lock). */
	#count(p: PurgePolicy, bytes: number): void {
		const hdr = this.t.hdr;
		const f = this.t.hdrF;
		seqBegin(hdr);
		f[HDRF_PURGES]!++;
		f[HDRF_FLUSHES]!++;
		f[HDRF_FLUSHED_BYTES]! += bytes;
		if (p.counter >= 0) f[p.counter]!++;
		seqEnd(hdr);
	}

	/** The flush hook returned a promise: the batches are purged when it settles, undone if it rejects. */
	#flushLater(batches: Batch[], pending: PromiseLike<void>, bounded: boolean): Promise<void> {
		const done = Promise.resolve(pending).then(
			() => {
				for (const b of batches) this.#inflight.delete(b);
				return this.#flushed(
					batches.filter((b) => ownsBatch(this.t, b.k, this.locks.self)),
					bounded,
				);
			},
			(e: unknown) => {
				for (const b of batches) {
					this.#inflight.delete(b);
					if (ownsBatch(this.t, b.k, this.locks.self)) this.#flushFailed(b);
				}
				throw e;
			},
		);
		for (const b of batches) this.#inflight.set(b, done);
		done.catch(ignore); // the caller may ignore `done`; the error is counted in flushErrors
		return done;
	}

	/**
	 * Wait for the batches other handles had in flight (batches.ts's waitForBatches), adopting
	 * and purging here each one orphaned meanwhile. A handle with a batch of its own waiting for
	 * an asynchronous flush never blocks on others': they may be waiting for ours, which settles
	 * only on this thread's event loop. Its purge's `done` covers them instead.
	 */
	#waitForOthers(batches: readonly InFlight[]): void {
		if (batches.length === 0 || this.#inflight.size > 0) return;
		const since = performance.now();
		while (waitForBatches(this.t, this.locks, batches, since, this.blocking) === "orphaned") {
			this.#pass(PURGE_POLICY.adopt); // waits for no other batch: no pass nests in it
		}
	}

	/** Set by the layer above: told when this handle blocks waiting for other handles' batches, and when it stops. */
	blocking: ((blocked: boolean) => void) | undefined;

	/**
	 * Every batch is in flight. Try, or the free path: skipped. A batch of ours among them:
	 * our drain's is purged here at once; if only our flushes are in flight, this purge is
	 * queued behind them (waiting here would wait for ourselves). Otherwise wait, holding
	 * nothing, for another handle's batch to be done (ETIMEDOUT after timeoutMs), and go again.
	 */
	#noBatch(p: PurgePolicy): Pass {
		if (!p.waitBatch) return { result: SKIPPED, waitFor: [], again: "no" };
		if (this.drain.draining) {
			this.drain.finish();
			return { result: SKIPPED, waitFor: [], again: "always" };
		}
		if (this.#inflight.size > 0) {
			const kind: PurgeKind = p.overflow ? "overflow" : "sync";
			const done = Promise.allSettled(this.#inflight.values()).then(() => (this.locks.closed ? undefined : this.purge(kind).done));
			done.catch(ignore);
			return {
				result: { status: "queued", areas: 0, bytes: 0, start: 0, end: 0, done: done.then(ignore) },
				waitFor: [],
				again: "no",
			};
		}
		const hdr = this.t.hdr;
		const t0 = performance.now();
		const owner = Atomics.load(hdr, HDR_BATCH_OWNER);
		while (Atomics.load(hdr, HDR_BATCH_OWNER) === owner && owner !== 0) {
			this.locks.ensureAlive();
			if (performance.now() - t0 >= this.locks.timeoutMs) {
				throw new VmapError(
					"ETIMEDOUT",
					`Waited ${this.locks.timeoutMs} ms for a purge batch: all ${BATCH_SLOTS} are in flight (batch 0 is handle ${owner}'s); nothing was changed`,
				);
			}
			if (canWait) Atomics.wait(hdr, HDR_BATCH_OWNER, owner, POLL_MS);
		}
		return { result: SKIPPED, waitFor: [], again: "always" };
	}

	/** The batches are flushed: offer nodes to helpers, then purge the nodes, now or in slices. */
	#flushed(batches: Batch[], bounded: boolean): Promise<void> {
		for (const b of batches) postHelpers(this.t, b);
		if (bounded) return this.drain.purgeBounded(batches);
		for (const b of batches) this.purgeBatch(b);
		return settled;
	}

	/** The flush threw or rejected: batch `b` goes back to the lazy trees. */
	#flushFailed(b: Batch): void {
		seqBegin(this.t.hdr);
		this.t.hdrF[HDRF_FLUSH_ERRORS]!++;
		seqEnd(this.t.hdr);
		try {
			undoDetach(this.t, this.locks, b.k);
		} catch {
			this.orphan(b); // a lock wait timed out: the next purge takes the batch, unflushed as it is
			return;
		}
		this.#releaseBatch(b.k);
	}

	/**
	 * Close(): hand the batches still waiting for their flush over to the next purge (which
	 * flushes their range again); a drain of ours in progress is finished now.
	 */
	handOver(): void {
		try {
			this.drain.finish();
		} finally {
			for (const b of this.#inflight.keys()) this.orphan(b); // orphan() deletes the entry: safe while iterating a Map
		}
	}

	/** Shrinker (kernel vmap_node_shrink_scan): every pool decayed fully (purge-node.ts's trimPools). */
	trim(): { areas: number; bytes: number } {
		return trimPools(this.t, this.locks, this.#pageInverse);
	}

	/** Help other purges: purge the nodes they posted that this handle can take (work.ts). */
	help(): void {
		helpPurges(this.t, this.locks, this.#pageInverse);
	}

	/** One unit of batch `b`'s node work (work.ts's stepBatch). */
	step(b: Batch): "more" | "wait" | "done" {
		return stepBatch(this.t, this.locks, this.#pageInverse, b);
	}

	/** Purge every node of batch `b` now, waiting for its helpers; then give the batch back. */
	purgeBatch(b: Batch): void {
		try {
			for (;;) {
				const w = this.step(b);
				if (w === "done") break;
				if (w === "wait") waitForHelper(this.t, b);
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
		this.#inflight.delete(b);
		Atomics.compareExchange(this.t.hdr, HDR_BATCH_OWNER + b.k, this.locks.self, BATCH_ORPHAN);
		Atomics.notify(this.t.hdr, HDR_BATCH_OWNER + b.k);
	}

	/**
	 * Batch `k` is done (or given up): free it, change its generation, wake waiters; areas freed
	 * meanwhile may make a drain due.
	 */
	endBatch(k: number): void {
		this.#releaseBatch(k);
		if (this.t.lazyPages() > this.t.hdrF[HDRF_LAZY_MAX_PAGES]!) this.drain.schedule();
	}

	/** Batch `k` is done or given up: free it, change its generation, wake waiters. */
	#releaseBatch(k: number): void {
		const hdr = this.t.hdr;
		hdr[HDR_BATCH_FLAGS + k] = 0;
		Atomics.add(hdr, HDR_BATCH_GEN + k, 1);
		Atomics.store(hdr, HDR_BATCH_OWNER + k, 0);
		Atomics.notify(hdr, HDR_BATCH_OWNER + k);
	}
}

/** A purge's lock wait timed out between its steps: say what became of its areas. */
function stopped(e: unknown): unknown {
	if (!(e instanceof VmapError) || e.code !== "ETIMEDOUT") return e;
	return new VmapError(
		"ETIMEDOUT",
		`The purge stopped before its areas were purged; they stay lazy and the next purge takes them. ${e.detail}`,
		{ cause: e },
	);
}
