/**
 * The purge (kernel __purge_vmap_area_lazy) and the shrinker (vmap_node_shrink_scan).
 *
 * A purge, holding the purge mutex:
 * 1. decays every node's pools (about 25% each; fully for an overflow purge or trim());
 * 2. moves each node's lazy list to the node's purge list (purge-list.ts), taking the flush
 *    range from the bounds each node kept as its areas were added (no walk of the lists);
 * 3. calls the flush hook once over the union range;
 * 4. purges every node's purge list into its pools or free space (purge-node.ts). With several
 *    nodes and a backlog of k * lazyMaxPages, k - 1 nodes (at most the nodes with work, less
 *    one) are posted for helpers: other handles take them at their next call, or at once when
 *    idle (purge-work.ts). The purging handle purges the rest, takes back posted nodes nobody
 *    took, and waits for the helpers.
 *
 * When purges run: see drain.ts (drain, priority purge), alloc.ts (overflow) and the public
 * space.purge() and space.trim().
 *
 * The purge mutex admits one purge at a time across all handles; it stays held across an
 * asynchronous flush, so a batch is never merged back before its flush completed. The flush
 * hook runs holding only the purge mutex.
 */
import type { FlushHook, PurgeResult, TrimResult } from "./api.ts";
import { Drain } from "./drain.ts";
import {
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
	N_POOL_LOCK,
	N_WORK,
	NF_HELPER_RUNS,
	nodeBase,
} from "./layout.ts";
import { canWait, type Locks } from "./lock.ts";
import { detachLazyLists, undoDetach } from "./purge-list.ts";
import { decayVaPoolNode, purgeVmapNodeStep } from "./purge-node.ts";
import { finishWork, helperOf, postWork, takeWork } from "./purge-work.ts";
import { seqBegin, seqEnd } from "./stats.ts";
import { isShared, type VaTable } from "./va-table.ts";

/** What a caller asks of a purge. */
export interface PurgeRequest {
	/** Wait for a purge another handle runs (sync), instead of skipping (try). */
	wait: boolean;
	/** An allocation found no fit: decay pools fully and do not refill them (kernel skip_populate). */
	overflow: boolean;
	/** Purge the nodes in bounded slices, yielding to the event loop between them (the drain). */
	bounded?: boolean;
	/** Skip the purge unless at least this many lazy pages wait, once the mutex is taken. */
	minPages?: number;
}

export const SYNC_PURGE: PurgeRequest = { wait: true, overflow: false };
export const OVERFLOW_PURGE: PurgeRequest = { wait: true, overflow: true };
export const TRY_PURGE: PurgeRequest = { wait: false, overflow: false };

const settled = Promise.resolve();
const ignore = () => {};

export class Purger {
	readonly t: VaTable;
	readonly locks: Locks;
	readonly drain: Drain;
	private readonly flush: FlushHook | undefined;
	private readonly pageInverse: number;
	/** This handle's purge waiting for an asynchronous flush; it holds the purge mutex. */
	private inflight: Promise<void> | null = null;
	/** Nodes this handle's purge purges itself, and nodes it posted for helpers. */
	private own: number[] = [];
	private posted: number[] = [];

	constructor(t: VaTable, locks: Locks, flush: FlushHook | undefined, pageSize: number) {
		this.t = t;
		this.locks = locks;
		this.flush = flush;
		this.pageInverse = 1 / pageSize;
		this.drain = new Drain(this);
	}

	/** True while this handle's purge waits for its flush. */
	get flushing(): boolean {
		return this.inflight !== null;
	}

	/** Whether this handle holds the purge mutex (its purge is flushing or draining). */
	get holding(): boolean {
		return this.locks.owner(HDR_PURGE_LOCK) === this.locks.self;
	}

	/** Purge every lazy area. Throws what a synchronous flush hook throws; the areas then stay lazy. */
	purge(req: PurgeRequest): PurgeResult {
		if (this.holding) return this.purgeAgain(req);
		if (!this.locks.tryAcquire(HDR_PURGE_LOCK)) {
			if (!req.wait) return result("skipped", 0, 0, 0, 0, settled);
			this.locks.acquire(HDR_PURGE_LOCK);
		}
		return this.purgeLocked(req);
	}

	/**
	 * A purge asked for by the handle that holds the mutex already. Try: skipped. Our drain,
	 * between two slices: whoever needs the space now finishes it here, then purges what was
	 * freed since. Our flush in flight (or the flush hook running now, calling us): waiting
	 * would wait for ourselves, so the purge runs after it.
	 */
	private purgeAgain(req: PurgeRequest): PurgeResult {
		if (!req.wait) return result("skipped", 0, 0, 0, 0, settled);
		if (this.drain.draining) {
			this.purgeNodes();
			return this.purge(req);
		}
		const after = this.inflight ?? settled;
		// A handle closed meanwhile runs nothing more: its worker may be terminated at any time.
		const done = after.then(ignore, ignore).then(() => (this.locks.closed ? undefined : this.purge(req).done));
		done.catch(ignore);
		return result("queued", 0, 0, 0, 0, done);
	}

	/** The purge proper, the mutex held; every exit releases it or hands it to the flush's settling. */
	private purgeLocked(req: PurgeRequest): PurgeResult {
		const t = this.t;
		const locks = this.locks;
		if (req.minPages !== undefined && t.lazyPages() < req.minPages) {
			locks.release(HDR_PURGE_LOCK);
			return result("skipped", 0, 0, 0, 0, settled);
		}
		t.hdr[HDR_SKIP_POPULATE] = req.overflow ? 1 : 0; // read by helpers, after they take work
		for (let v = 0; v < t.nodes; v++) decayVaPoolNode(t, locks, v, req.overflow);
		const batch = detachLazyLists(t, locks, this.pageInverse);
		this.own = batch.nodes;
		if (batch.areas === 0) {
			locks.release(HDR_PURGE_LOCK);
			return result("empty", 0, 0, 0, 0, settled);
		}
		const { areas, bytes, start, end } = batch;
		seqBegin(t.hdr);
		t.hdrF[HDRF_PURGES]!++;
		t.hdrF[HDRF_FLUSHES]!++;
		t.hdrF[HDRF_FLUSHED_BYTES]! += end - start;
		if (req.overflow) t.hdrF[HDRF_OVERFLOW_PURGES]!++;
		seqEnd(t.hdr);

		let pending: void | PromiseLike<void>;
		try {
			pending = this.flush?.(start, end);
		} catch (e) {
			this.flushFailed();
			throw e;
		}
		if (pending === undefined || typeof pending.then !== "function") {
			return result(req.bounded ? "flushing" : "done", areas, bytes, start, end, this.flushed(req.bounded ?? false));
		}
		const done = Promise.resolve(pending).then(
			() => {
				this.inflight = null;
				return this.flushed(req.bounded ?? false);
			},
			(e: unknown) => {
				this.inflight = null;
				this.flushFailed();
				throw e;
			},
		);
		this.inflight = done;
		done.catch(ignore); // the caller may ignore `done`; the error is counted in flushErrors
		return result("flushing", areas, bytes, start, end, done);
	}

	/** The batch is flushed: offer nodes to helpers, then purge the nodes, now or in slices. */
	private flushed(bounded: boolean): Promise<void> {
		this.postHelpers();
		if (bounded) return this.drain.purgeNodesBounded();
		this.purgeNodes();
		return settled;
	}

	/** The flush threw or rejected: the batch goes back to the lazy lists; the mutex is released. */
	private flushFailed(): void {
		undoDetach(this.t, this.locks, this.own);
		this.own = [];
		seqBegin(this.t.hdr);
		this.t.hdrF[HDRF_FLUSH_ERRORS]!++;
		seqEnd(this.t.hdr);
		this.locks.release(HDR_PURGE_LOCK);
	}

	/**
	 * Shrinker (kernel vmap_node_shrink_scan): decay every pool fully, under the purge mutex
	 * (decays must not run concurrently: kernel fix ec05f51f1e65). Waits for a purge another
	 * handle runs; if this handle's own purge holds the mutex, decays under it.
	 */
	trim(): TrimResult {
		const t = this.t;
		const locks = this.locks;
		const mine = this.holding;
		if (!mine) locks.acquire(HDR_PURGE_LOCK);
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
			if (!mine) locks.release(HDR_PURGE_LOCK);
		}
		return { areas, bytes };
	}

	/**
	 * Help another handle's purge (no lock held): purge every node posted for helpers that
	 * this handle can take. Called at the start of this handle's calls and when it is idle.
	 */
	help(): void {
		const t = this.t;
		const locks = this.locks;
		// Our own purge takes back its posted nodes itself (step()).
		if (this.holding) return;
		for (let v = 0; v < t.nodes; v++) {
			if (!takeWork(t, v, locks.self)) continue;
			try {
				while (purgeVmapNodeStep(t, locks, v, this.pageInverse));
				const b = nodeBase(v);
				locks.acquire(b + N_POOL_LOCK);
				t.hdrF[(b >> 1) + NF_HELPER_RUNS]!++;
				locks.release(b + N_POOL_LOCK);
			} finally {
				finishWork(t, v);
			}
		}
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
	 * One unit of the purge's node work: a step of the first own node, else the first posted
	 * node taken back (nobody took it) or checked on. Returns "more", "wait" (a helper is still
	 * at work) or "done" (every node purged).
	 */
	step(): "more" | "wait" | "done" {
		const t = this.t;
		const locks = this.locks;
		if (this.own.length > 0) {
			if (!purgeVmapNodeStep(t, locks, this.own[0]!, this.pageInverse)) this.own.shift();
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
			seqBegin(t.hdr);
			t.hdrF[HDRF_HELPED]!++;
			seqEnd(t.hdr);
			return "more";
		}
		return "wait";
	}

	/** Wait briefly for the helper of the first posted node (after step() said "wait"). */
	waitForHelper(): void {
		const v = this.posted[0]!;
		const helper = helperOf(this.t, v);
		if (canWait && helper > 0) Atomics.wait(this.t.hdr, nodeBase(v) + N_WORK, helper, 20);
	}

	/** Purge every node now, waiting for helpers; then release the purge mutex. */
	purgeNodes(): void {
		for (;;) {
			const w = this.step();
			if (w === "done") break;
			if (w === "wait") this.waitForHelper();
		}
		this.endPurge();
	}

	/** All is purged: release the purge mutex; areas freed meanwhile may make a drain due. */
	endPurge(): void {
		this.drain.draining = false;
		this.locks.release(HDR_PURGE_LOCK);
		if (this.t.lazyPages() > this.t.hdrF[HDRF_LAZY_MAX_PAGES]!) this.drain.schedule();
	}
}

function result(status: PurgeResult["status"], areas: number, bytes: number, start: number, end: number, done: Promise<void>): PurgeResult {
	return { status, areas, bytes, start, end, done };
}

/** What an EBUSY message adds when this handle's purge is still waiting for its flush. */
export function flushingNote(p: Purger): string {
	return p.flushing ? " (a purge is waiting for its asynchronous flush; allocAsync() waits for it)" : "";
}
