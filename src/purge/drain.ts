/**
 * When the free path purges (kernel free_vmap_area_noflush's tail, drain_vmap_area_work, and
 * the priority threshold of "mm: add priority threshold to __purge_vmap_area_lazy()").
 *
 * - drain: a free that takes vmapLazyNr past lazyMaxPages schedules a purge on the event loop
 *   (never inside free: "mm/vmalloc: move draining areas out of caller context"); its nodes are
 *   purged in slices of about SLICE_MS, yielding to the event loop between them, holding no
 *   lock between slices, unless the backlog is at or above the priority threshold;
 * - priority: at 2 * lazyMaxPages the free path purges itself, since a thread that never yields
 *   never runs its drain, and the backlog would run away.
 */
import type { PurgeResult } from "../api/types.ts";
import { VmapError } from "../api/errors.ts";
import { HDR_DEAD, HDR_MAX_CAPACITY, HDR_NO_PRIORITY, HDR_SLOT_FREE_NR, HDR_SLOT_HIGH, HDRF_LAZY_MAX_PAGES } from "../buffer/layout.ts";
import type { Locks } from "../buffer/lock.ts";
import type { VaTable } from "../buffer/va-table.ts";
import type { Batch } from "./batches.ts";
import type { PurgeKind } from "./kinds.ts";
import { workPosted } from "./work.ts";
import { schedule } from "../util/event-loop.ts";

/** What the drain asks of its handle's purger (purge.ts's Purger, which owns the drain). */
export interface DrainHost {
	readonly t: VaTable;
	readonly locks: Locks;
	purge(kind: PurgeKind): PurgeResult;
	purgeBatch(b: Batch): void;
	orphan(b: Batch): void;
	help(): void;
	step(b: Batch): "more" | "wait" | "done";
	endBatch(k: number): void;
}

/**
 * Whether the records in use pass three quarters of the most the table may hold (maxAreas): a
 * drain is then due whatever the lazy pages, since each lazy area holds a record until a purge
 * merges it into free space.
 */
function recordsNearlyFull(hdr: Int32Array): boolean {
	return 4 * (hdr[HDR_SLOT_HIGH]! - hdr[HDR_SLOT_FREE_NR]!) > 3 * hdr[HDR_MAX_CAPACITY]!;
}

/**
 * Frees between two reads of the other nodes' lazy pages. Their words share cache lines with
 * those nodes' lock words, which their own workers write on every operation: read on every
 * free, they are a cache miss for this worker and one for the other at its next write there
 * (two workers on two nodes, W0 with the cache off: lazyPages() took 31 ns of each pair in a
 * profile of one of them, none with one worker).
 */
const OTHERS_EVERY = 16;

/** A drain yields to the event loop after about this much work. */
const SLICE_MS = 0.1;
const ignore = () => {};

export class Drain {
	readonly #purger: DrainHost;
	#scheduled = false;
	/** The batches this handle's drain is purging in slices. */
	#batches: Batch[] = [];
	/**
	 * True while this handle runs another's end hooks (core/handles.ts runEndHooks): the frees
	 * they make (WatchOptions.freeAreas) start no drain here. This thread is the one that
	 * observes workers' ends: a purge it ran could wait for a lock a dead worker holds, whose
	 * exit event waits behind it. Other handles' frees drain the backlog.
	 */
	quiet = false;

	/** Each node's lazy pages as this handle last read them (lazyEstimate), and the frees since it read them all. */
	readonly #seen: Float64Array;
	#age = OTHERS_EVERY;

	constructor(purger: DrainHost) {
		this.#purger = purger;
		this.#seen = new Float64Array(purger.t.nodes);
	}

	/**
	 * vmapLazyNr as a free checks it: the node whose lazy tree the free just wrote (`v`) read
	 * again, the others as read OTHERS_EVERY frees ago at most (exact with one
	 * node). Another handle's frees are seen a few frees late; this handle's own frees at once,
	 * and a purge's pages a few frees late (the figure is then too high, never too low, for
	 * what this handle did).
	 */
	#lazyEstimate(t: VaTable, v: number): number {
		if (t.nodes === 1) return t.lazyPages();
		if (++this.#age >= OTHERS_EVERY) return this.#readAll(t);
		this.#seen[v] = t.nodeLazyPages(v);
		let n = 0;
		for (let u = 0; u < this.#seen.length; u++) n += this.#seen[u]!;
		return n;
	}

	/** Read every node's lazy pages (lazyEstimate's figures); their sum. */
	#readAll(t: VaTable): number {
		this.#age = 0;
		let n = 0;
		for (let u = 0; u < this.#seen.length; u++) n += this.#seen[u] = t.nodeLazyPages(u);
		return n;
	}

	/** Whether this handle's drain is between two slices. */
	get draining(): boolean {
		return this.#batches.length > 0;
	}

	/**
	 * After a free (no lock held) into node `v`'s lazy tree: drain when past
	 * lazyMaxPages; at twice that, purge here (above the priority threshold freeing comes
	 * first): a thread that frees faster than purges return space is throttled by doing the
	 * purge itself.
	 */
	afterFree(v: number): void {
		if (this.quiet) return;
		const t = this.#purger.t;
		const lazyMax = t.hdrF[HDRF_LAZY_MAX_PAGES]!;
		let nrLazy = this.#lazyEstimate(t, v);
		if (nrLazy >= 2 * lazyMax && t.nodes > 1) nrLazy = this.#readAll(t); // the priority threshold: on every node's figure
		if (nrLazy > lazyMax) {
			if (nrLazy >= 2 * lazyMax && t.hdr[HDR_NO_PRIORITY] === 0) this.#priorityPurge(2 * lazyMax);
			else this.schedule();
		} else if (nrLazy > 0 && recordsNearlyFull(t.hdr)) this.schedule(); // lazy areas hold records too
	}

	/** The handle closes: a drain of ours in progress finishes now. */
	finish(): void {
		const batches = this.#batches;
		this.#batches = [];
		try {
			while (batches.length > 0) this.#purger.purgeBatch(batches.shift()!);
		} finally {
			for (const b of batches) this.#purger.orphan(b); // after a step timed out: the next purge's
		}
	}

	/**
	 * The free path's purge above the threshold: help the purges that posted work first (their
	 * batches may bring the backlog under it), then purge, waiting for the purge mutex (held
	 * only while a purge detaches) but not for a batch when all are in flight. A purge that gets
	 * the mutex with the backlog already under the threshold is skipped.
	 */
	#priorityPurge(threshold: number): void {
		const purger = this.#purger;
		if (workPosted(purger.t)) {
			purger.help();
			if (purger.t.lazyPages() < threshold) return;
		}
		this.#purgeUncalled("priority");
	}

	/** Schedule a drain on the event loop, once. */
	schedule(): void {
		if (this.#scheduled) return;
		this.#scheduled = true;
		schedule(() => {
			this.#scheduled = false;
			// A closed handle may belong to a worker about to be terminated: it starts nothing.
			if (this.#purger.t.hdr[HDR_DEAD] === 0 && !this.#purger.locks.closed) this.#purgeUncalled("drain");
		});
	}

	/** A purge nobody called (drain, priority): its flush errors and timeouts are counted or dropped, not thrown. */
	#purgeUncalled(kind: PurgeKind): void {
		try {
			this.#purger.purge(kind).done.catch(ignore);
		} catch (e) {
			// A failed flush was counted; the areas are lazy again and the next purge retries
			// them. A dead lock owner is not ours to swallow.
			if (e instanceof VmapError && e.code === "EOWNERDEAD") throw e;
		}
	}

	/**
	 * The drain's node purge: slices of about SLICE_MS, yielding to the event loop between them
	 * (the kernel's cond_resched), holding no lock between them, so the thread that drains still
	 * serves its other work (purges that held locks for milliseconds are what "mm: vmalloc:
	 * Replace purge_lock spinlock with atomic refcount" set out to fix). While the backlog is at
	 * or above the priority threshold, it does not yield: freeing comes first. Waiting for a
	 * helper always yields. Resolves when every batch is purged.
	 */
	purgeBounded(batches: Batch[]): Promise<void> {
		this.#batches.push(...batches);
		const purger = this.#purger;
		const t = purger.t;
		return new Promise<void>((resolve, reject) => {
			const slice = () => {
				try {
					const until = performance.now() + SLICE_MS;
					for (;;) {
						const b = this.#batches[0];
						if (b === undefined) break; // done, or finish() did the rest
						const w = purger.step(b);
						if (w === "done") {
							this.#batches.shift();
							purger.endBatch(b.k);
							continue;
						}
						if (w === "wait" || (performance.now() > until && t.lazyPages() < 2 * t.hdrF[HDRF_LAZY_MAX_PAGES]!)) {
							schedule(slice);
							return;
						}
					}
					resolve();
				} catch (e) {
					// A step's lock wait timed out: the batches go to the next purge.
					for (const b of this.#batches.splice(0)) purger.orphan(b);
					reject(e);
				}
			};
			slice();
		});
	}
}
