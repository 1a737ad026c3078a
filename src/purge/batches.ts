/**
 * Purge batches (layout.ts, HDR_BATCH_*): which of the BATCH_SLOTS batches a purge claims,
 * which it adopts from handles that closed or ended before their batch was done, and how a
 * purge learns that the batches other handles had in flight are done (their generation words
 * change). The words are shared by every handle; a batch's per-node purge trees are
 * lazy-tree.ts's.
 */
import { BATCH_ORPHAN, BATCH_SLOTS, HDR_BATCH_GEN, HDR_BATCH_OWNER } from "../buffer/layout.ts";
import type { VaTable } from "../buffer/va-table.ts";
import { canWait, type Locks } from "../buffer/lock.ts";
import { VmapError } from "../api/errors.ts";
import { POLL_MS } from "./kinds.ts";

/** One batch a handle flushes and purges: its slot, and the nodes it purges itself or posted for helpers. */
export class Batch {
	readonly k: number;
	own: number[];
	posted: number[] = [];

	constructor(k: number, own: number[]) {
		this.k = k;
		this.own = own;
	}
}

/** A batch another handle has in flight: its slot and its generation when seen. */
export type InFlight = [k: number, gen: number];

/** Claim a free batch for handle `self` (under the purge mutex): its index, or -1 when all are in flight. */
export function claimBatch(t: VaTable, self: number): number {
	for (let k = 0; k < BATCH_SLOTS; k++) {
		if (Atomics.compareExchange(t.hdr, HDR_BATCH_OWNER + k, 0, self) === 0) return k;
	}
	return -1;
}

/** Batches whose owner closed or ended before they were done: handle `self`'s now, to flush again and purge. */
export function adoptOrphans(t: VaTable, self: number): Batch[] {
	const out: Batch[] = [];
	for (let k = 0; k < BATCH_SLOTS; k++) {
		if (Atomics.compareExchange(t.hdr, HDR_BATCH_OWNER + k, BATCH_ORPHAN, self) !== BATCH_ORPHAN) continue;
		// Every node: its own list, and any helper the old owner had posted or that took a node.
		const nodes: number[] = [];
		for (let v = 0; v < t.nodes; v++) nodes.push(v);
		const b = new Batch(k, nodes);
		b.posted = [...nodes];
		out.push(b);
	}
	return out;
}

/** Whether handle `self` still owns batch `k` (close() hands batches in flight over). */
export function ownsBatch(t: VaTable, k: number, self: number): boolean {
	return Atomics.load(t.hdr, HDR_BATCH_OWNER + k) === self;
}

/** The batches other handles than `self` have in flight now, by generation. */
export function othersInFlight(t: VaTable, self: number): InFlight[] {
	const out: InFlight[] = [];
	for (let k = 0; k < BATCH_SLOTS; k++) {
		const owner = Atomics.load(t.hdr, HDR_BATCH_OWNER + k);
		if (owner !== 0 && owner !== self) out.push([k, Atomics.load(t.hdr, HDR_BATCH_GEN + k)]);
	}
	return out;
}

/**
 * The first of `batches` not done yet, or undefined. A batch is done once its generation moved,
 * or once its slot is free: othersInFlight() reads owner and generation with two loads, so it
 * may record the generation its owner had already bumped in endBatch() just before freeing the
 * slot, and that generation moves again only when someone next claims and ends the slot.
 */
export function pendingBatch(t: VaTable, batches: readonly InFlight[]): InFlight | undefined {
	return batches.find(([k, gen]) => Atomics.load(t.hdr, HDR_BATCH_GEN + k) === gen && Atomics.load(t.hdr, HDR_BATCH_OWNER + k) !== 0);
}

/**
 * Wait, holding nothing, until each of `batches` (slot, generation) that other handles had in
 * flight is done: what a sync or overflow purge promises is then true of their areas too.
 * Returns "done", or "orphaned" when one was orphaned meanwhile (its owner closed or ended: the
 * caller adopts it, then waits again), or "cannot" where this thread may not block. After
 * timeoutMs since `since`, ETIMEDOUT names the batch and its owner (the caller's own batch is
 * done; the other batch's areas stay out of use until it is). While it waits, `blocking` is
 * told (a heap handle is then quiescent for grace periods: its thread holds no reference).
 */
export function waitForBatches(
	t: VaTable,
	locks: Locks,
	batches: readonly InFlight[],
	since: number,
	blocking: ((blocked: boolean) => void) | undefined,
): "done" | "orphaned" | "cannot" {
	const hdr = t.hdr;
	let blocked = false;
	try {
		for (;;) {
			const pending = pendingBatch(t, batches);
			if (pending === undefined) return "done";
			const [k, gen] = pending;
			locks.ensureAlive();
			if (Atomics.load(hdr, HDR_BATCH_OWNER + k) === BATCH_ORPHAN) return "orphaned";
			if (!canWait) return "cannot";
			if (performance.now() - since >= locks.timeoutMs) {
				const owner = Atomics.load(hdr, HDR_BATCH_OWNER + k);
				throw new VmapError(
					"ETIMEDOUT",
					`Waited ${locks.timeoutMs} ms for purge batch ${k}, which handle ${owner} is still flushing or purging (its flush hook has not returned or settled); this purge's own batch is done`,
				);
			}
			if (!blocked) {
				blocked = true;
				blocking?.(true);
			}
			Atomics.wait(hdr, HDR_BATCH_GEN + k, gen, POLL_MS);
		}
	} finally {
		if (blocked) blocking?.(false);
	}
}

/**
 * Resolves once each of `batches` is done: the areas other handles were flushing when a purge
 * began are then reusable too. Watches their generation words without blocking the thread, and
 * without keeping a Node process alive for them.
 */
export function batchesDone(t: VaTable, batches: readonly InFlight[]): Promise<void> {
	if (batches.length === 0) return Promise.resolve();
	return new Promise<void>((resolve) => {
		const look = () => {
			if (pendingBatch(t, batches) === undefined) resolve();
			else (setTimeout(look, 1) as { unref?: () => void }).unref?.();
		};
		look();
	});
}

/** What an EBUSY message adds when batches are still waiting for their flush. */
export function flushingNote(t: VaTable): string {
	const n = batchesInFlight(t);
	return n > 0 ? ` (${n} purge batch${n > 1 ? "es are" : " is"} still being flushed or purged; allocAsync() waits for them)` : "";
}

/** Batches in flight (any handle's), for messages. */
export function batchesInFlight(t: VaTable): number {
	let n = 0;
	for (let k = 0; k < BATCH_SLOTS; k++) if (Atomics.load(t.hdr, HDR_BATCH_OWNER + k) !== 0) n++;
	return n;
}
