/**
 * The kinds of purge and the policy of each, in one table that Purger.purge() reads.
 *
 * - sync: space.purge({ sync: true }); waits for the mutex and for a batch, and answers for
 *   every batch in flight when it began (other handles' are waited for);
 * - try: space.purge(); skips if another purge holds the mutex or every batch is in flight;
 * - overflow: an allocation found no fit (kernel: alloc_vmap_area's overflow path): as sync,
 *   with the pools decayed fully and not refilled (skip_populate);
 * - drain: scheduled on the event loop by a free past lazyMaxPages; purges the nodes in slices;
 * - priority: a free at twice lazyMaxPages purges itself ("mm: add priority threshold to
 *   __purge_vmap_area_lazy()"), skipped if the backlog fell under the threshold meanwhile;
 * - adopt: takes the batches whose owners ended half way, and waits for nothing more.
 */
import { HDRF_DRAIN_PURGES, HDRF_OVERFLOW_PURGES, HDRF_PRIORITY_PURGES } from "../buffer/layout.ts";

export type PurgeKind = "sync" | "try" | "overflow" | "drain" | "priority" | "adopt";

export interface PurgePolicy {
	/** Wait for the purge mutex (held only while a purge detaches) rather than skip. */
	readonly waitMutex: boolean;
	/** With every batch in flight, wait for one to be given back rather than skip. */
	readonly waitBatch: boolean;
	/** Wait, after its own batch, for the batches other handles had in flight when it began. */
	readonly waitOthers: boolean;
	/** Its `done` also covers this handle's own batches in flight when it began. */
	readonly coverOwn: boolean;
	/** Finish this handle's drain (between two slices) first. */
	readonly finishDrain: boolean;
	/** Decay the pools fully and do not refill them (kernel skip_populate). */
	readonly overflow: boolean;
	/** Purge the nodes in slices, yielding to the event loop between them. */
	readonly bounded: boolean;
	/** Skip unless the backlog is still at the priority threshold once the mutex is held. */
	readonly atThreshold: boolean;
	/** The purge counter (HDRF_*) it adds to besides `purges`, or -1. */
	readonly counter: number;
}

const WAITS = { waitMutex: true, waitBatch: true, waitOthers: true, coverOwn: true, finishDrain: true } as const;
const SKIPS = { waitMutex: false, waitBatch: false, waitOthers: false, coverOwn: false, finishDrain: false } as const;
const PLAIN = { overflow: false, bounded: false, atThreshold: false, counter: -1 } as const;

export const PURGE_POLICY: Readonly<Record<PurgeKind, PurgePolicy>> = {
	sync: { ...WAITS, ...PLAIN },
	overflow: { ...WAITS, ...PLAIN, overflow: true, counter: HDRF_OVERFLOW_PURGES },
	try: { ...SKIPS, ...PLAIN },
	drain: { ...SKIPS, ...PLAIN, bounded: true, counter: HDRF_DRAIN_PURGES },
	priority: { ...WAITS, ...PLAIN, waitBatch: false, waitOthers: false, atThreshold: true, counter: HDRF_PRIORITY_PURGES },
	adopt: { ...WAITS, ...PLAIN, waitBatch: false, waitOthers: false },
};

/**
 * How long one sleep on a shared word lasts (a batch's generation or owner, a node's work word)
 * before the waiter looks at its deadline and at the liveness of the handle it waits for.
 */
export const POLL_MS = 20;
