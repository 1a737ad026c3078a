/**
 * When the free path purges (kernel free_vmap_area_noflush's tail, drain_vmap_area_work, and
 * the priority threshold of "mm/vmalloc: add priority threshold to __purge_vmap_area_lazy").
 *
 * - drain: a free that takes vmapLazyNr past lazyMaxPages schedules a purge on the event loop
 *   (never inside free: "mm/vmalloc: move draining areas out of caller context"); its nodes are
 *   purged in slices of about SLICE_MS, yielding to the event loop between them, unless the
 *   backlog is at or above the priority threshold;
 * - priority: at 2 * lazyMaxPages the free path purges itself, since a thread that never yields
 *   never runs its drain, and the backlog would run away.
 */
import { HDR_DEAD, HDR_NO_PRIORITY, HDR_PURGE_LOCK, HDRF_LAZY_MAX_PAGES } from "./layout.ts";
import { VmapError } from "./errors.ts";
import type { Purger, PurgeRequest } from "./purge.ts";

const schedule: (task: () => void) => void =
	typeof setImmediate === "function" ? (task) => void setImmediate(task) : (task) => void setTimeout(task, 0);

/** A drain yields to the event loop after about this much work. */
const SLICE_MS = 0.1;
/** How long the free path helps another handle's purge before it waits for the mutex. */
const HELP_MS = 50;
const ignore = () => {};
const DRAIN: PurgeRequest = { wait: false, overflow: false, bounded: true };

export class Drain {
	private readonly purger: Purger;
	private scheduled = false;
	/** This handle's drain is purging nodes in slices (it holds the purge mutex). */
	draining = false;

	constructor(purger: Purger) {
		this.purger = purger;
	}

	/**
	 * After a free (no lock held): drain when past lazyMaxPages; at twice that, purge here,
	 * waiting for a purge another worker runs (above the priority threshold freeing comes
	 * first). Waiting throttles a thread that frees faster than purges return space; with try
	 * semantics it would keep adding while another purged, and could fill the space.
	 */
	afterFree(): void {
		const t = this.purger.t;
		const lazyMax = t.hdrF[HDRF_LAZY_MAX_PAGES]!;
		const nrLazy = t.lazyPages();
		if (nrLazy > lazyMax) {
			if (nrLazy >= 2 * lazyMax && t.hdr[HDR_NO_PRIORITY] === 0) this.priorityPurge(2 * lazyMax);
			else this.schedule();
		}
	}

	/** Before the handle closes: a drain of ours in progress finishes now, releasing the purge mutex. */
	finish(): void {
		if (this.draining) this.purger.purgeNodes();
	}

	/**
	 * The free path's purge above the threshold. While another handle's purge holds the mutex,
	 * help it (its posted nodes) instead of sleeping on the mutex, and stop as soon as the
	 * backlog is under the threshold; after HELP_MS of that, wait for the mutex as a sync purge
	 * does (which is also where a dead holder is detected). A purge that gets the mutex with
	 * the backlog already under the threshold (another handle's purge just took it) is skipped.
	 */
	private priorityPurge(threshold: number): void {
		const purger = this.purger;
		const t = purger.t;
		const locks = purger.locks;
		const owner = locks.owner(HDR_PURGE_LOCK);
		if (owner !== 0 && owner !== locks.self) {
			const until = performance.now() + HELP_MS;
			while (locks.owner(HDR_PURGE_LOCK) !== 0 && performance.now() < until) {
				purger.help();
				if (t.lazyPages() < threshold) return;
			}
		}
		this.purgeUncalled({ wait: true, overflow: false, minPages: threshold });
	}

	/** Schedule a drain on the event loop, once. */
	schedule(): void {
		if (this.scheduled) return;
		this.scheduled = true;
		schedule(() => {
			this.scheduled = false;
			// A closed handle may belong to a worker about to be terminated: no purge may start
			// that a termination could cut short, holding the purge mutex.
			if (this.purger.t.hdr[HDR_DEAD] === 0 && !this.purger.locks.closed) this.purgeUncalled(DRAIN);
		});
	}

	/** A purge nobody called (drain, priority): its flush errors are counted, not thrown. */
	private purgeUncalled(req: PurgeRequest): void {
		try {
			this.purger.purge(req).done.catch(ignore);
		} catch (e) {
			// A failed flush was counted; the areas are lazy again and the next purge retries
			// them. A dead lock owner is not ours to swallow.
			if (e instanceof VmapError && e.code === "EOWNERDEAD") throw e;
		}
	}

	/**
	 * The drain's node purge: slices of about SLICE_MS, yielding to the event loop between them
	 * (the kernel's cond_resched_lock), with the purge mutex held throughout, so the thread that
	 * drains still serves its other work (purges that held locks for milliseconds are what
	 * "mm: vmalloc: Replace purge_lock spinlock with atomic refcount" set out to fix). While the
	 * backlog is at or above the priority threshold, it does not yield: freeing comes first.
	 * Waiting for a helper always yields. Resolves when every node is purged.
	 */
	purgeNodesBounded(): Promise<void> {
		this.draining = true;
		const purger = this.purger;
		const t = purger.t;
		return new Promise<void>((resolve, reject) => {
			const slice = () => {
				try {
					if (this.draining) {
						const until = performance.now() + SLICE_MS;
						for (;;) {
							const w = purger.step();
							if (w === "done") break;
							if (w === "wait" || (performance.now() > until && t.lazyPages() < 2 * t.hdrF[HDRF_LAZY_MAX_PAGES]!)) {
								schedule(slice);
								return;
							}
						}
						purger.endPurge();
					} // else an overflow or priority purge finished it synchronously
					resolve();
				} catch (e) {
					reject(e);
				}
			};
			slice();
		});
	}
}
