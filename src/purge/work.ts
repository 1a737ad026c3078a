/**
 * Parallel purge: the work handoff (kernel: purge_vmap_node queued with schedule_work_on, then
 * flush_work). JavaScript has no kernel workqueues, so the helpers are the space's other
 * handles: a purge posts a node in the node's N_WORK word and counts it in HDR_WORK; a handle
 * takes posted nodes at the start of its next call, or at once if it is idle (it waits on
 * HDR_WORK with Atomics.waitAsync); the purge takes back what nobody took and waits for the
 * rest.
 *
 * N_WORK encodes batch k with the state: 0 none; -(k + 1) posted for a helper; k << 16 | id
 * while handle `id` purges it. A node is posted for one batch at a time (a purge whose node
 * is busy with another batch's work purges that node itself). Posting and taking are Atomics
 * operations; the purge of the node itself is ordinary locked work (purge-node.ts).
 */
import { addF } from "../buffer/journal.ts";
import { VmapError } from "../api/errors.ts";
import { HDR_WORK, HDRF_HELPED, HDRF_LAZY_MAX_PAGES } from "../buffer/layout.ts";
import { N_POOL_LOCK, N_WORK, NF_HELPER_RUNS, nodeBase, purgeTree } from "../buffer/node-layout.ts";
import { canWait, type Locks, seqBegin, seqEnd } from "../buffer/lock.ts";
import { isShared, type VaTable } from "../buffer/va-table.ts";
import type { Batch } from "./batches.ts";
import { POLL_MS } from "./kinds.ts";
import { purgeVmapNodeStep } from "./purge-node.ts";

const ID_MASK = 0xffff;

/**
 * Offer node `v`'s purge tree of batch `k` to helpers and wake idle ones. Returns false when
 * the node's work word is busy with another batch (the caller purges the node itself).
 */
export function postWork(t: VaTable, v: number, k: number): boolean {
	if (Atomics.compareExchange(t.hdr, nodeBase(v) + N_WORK, 0, -(k + 1)) !== 0) return false;
	Atomics.add(t.hdr, HDR_WORK, 1);
	Atomics.notify(t.hdr, HDR_WORK);
	return true;
}

/** Take node `v`'s posted work for handle `self`: the batch it is for, now ours to purge, or -1. */
export function takeWork(t: VaTable, v: number, self: number): number {
	const w = nodeBase(v) + N_WORK;
	const posted = t.hdr[w]!; // a plain peek first
	if (posted >= 0) return -1;
	const k = -posted - 1;
	if (Atomics.compareExchange(t.hdr, w, posted, (k << 16) | self) !== posted) return -1;
	Atomics.sub(t.hdr, HDR_WORK, 1);
	return k;
}

/** The taker is done with node `v`: its purge tree is empty. Wakes the purge waiting for it. */
export function finishWork(t: VaTable, v: number): void {
	Atomics.store(t.hdr, nodeBase(v) + N_WORK, 0);
	Atomics.notify(t.hdr, nodeBase(v) + N_WORK);
}

/** The work word of node `v` (see above), to wait on. */
export function workWord(t: VaTable, v: number): number {
	return Atomics.load(t.hdr, nodeBase(v) + N_WORK);
}

/** The handle purging node `v` for batch `k`, -1 if it is posted and not taken yet, 0 if neither. */
export function helperOf(t: VaTable, v: number, k: number): number {
	const w = workWord(t, v);
	if (w === -(k + 1)) return -1;
	return w > 0 && w >>> 16 === k ? w & ID_MASK : 0;
}

/** Helper `id` ended between two steps of node `v`: post the node again for anyone to finish. */
export function repostWork(t: VaTable, v: number, id: number): void {
	const word = nodeBase(v) + N_WORK;
	const w = Atomics.load(t.hdr, word);
	if (w <= 0 || (w & ID_MASK) !== id) return;
	if (Atomics.compareExchange(t.hdr, word, w, -((w >>> 16) + 1)) !== w) return;
	Atomics.add(t.hdr, HDR_WORK, 1);
	Atomics.notify(t.hdr, word);
	Atomics.notify(t.hdr, HDR_WORK);
}

/** Whether any posted node waits for a helper (a plain read: every call looks). */
export function workPosted(t: VaTable): boolean {
	return t.hdr[HDR_WORK] !== 0;
}

/**
 * Run `help` whenever work is posted while this thread is idle, until `stop()` says so.
 * Atomics.waitAsync does not keep a Node process or worker alive, so an idle listener never
 * holds a program open. Where waitAsync is missing, handles help at their next call only.
 */
export function listenForWork(t: VaTable, help: () => void, stop: () => boolean): void {
	const waitAsync = (Atomics as { waitAsync?: (a: Int32Array, i: number, v: number) => { async: boolean; value: unknown } }).waitAsync;
	if (typeof waitAsync !== "function") return;
	const listen = (): void => {
		if (stop()) return;
		const seen = Atomics.load(t.hdr, HDR_WORK);
		if (seen > 0) help();
		const r = waitAsync(t.hdr, HDR_WORK, Atomics.load(t.hdr, HDR_WORK));
		if (r.async) (r.value as Promise<unknown>).then(listen, () => {});
		else setTimeout(listen, 1); // the word moved meanwhile: look again soon, without spinning
	};
	listen();
}

/**
 * Help other purges (no lock held): purge every node posted for helpers that this handle can
 * take. Called at the start of a handle's calls and when it is idle (listenForWork).
 */
export function helpPurges(t: VaTable, locks: Locks, pageInverse: number): void {
	for (let v = 0; v < t.nodes; v++) {
		const k = takeWork(t, v, locks.self);
		if (k < 0) continue;
		try {
			while (purgeVmapNodeStep(t, locks, v, k, pageInverse));
			const b = nodeBase(v);
			locks.acquire(b + N_POOL_LOCK);
			addF(t.hdrF, (b >> 1) + NF_HELPER_RUNS, 1);
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
 * Batch `b` is flushed: offer nodes to helpers (kernel nr_purge_helpers = clamp(vmapLazyNr /
 * lazyMaxPages, 1, nodes with work) - 1). Only a shared space has other handles.
 */
export function postHelpers(t: VaTable, b: Batch): void {
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
 * One unit of batch `b`'s node work: a step of its first own node, else its first posted node
 * taken back (nobody took it) or checked on. Returns "more", "wait" (a helper is still at
 * work: waitForHelper()) or "done" (every node purged).
 */
export function stepBatch(t: VaTable, locks: Locks, pageInverse: number, b: Batch): "more" | "wait" | "done" {
	if (b.own.length > 0) {
		if (!purgeVmapNodeStep(t, locks, b.own[0]!, b.k, pageInverse)) b.own.shift();
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
		addF(t.hdrF, HDRF_HELPED, 1);
		seqEnd(t.hdr);
		return "more";
	}
	return "wait";
}

/** Wait briefly for the helper of batch `b`'s first posted node (after stepBatch() said "wait"). */
export function waitForHelper(t: VaTable, b: Batch): void {
	const v = b.posted[0]!;
	if (canWait) Atomics.wait(t.hdr, nodeBase(v) + N_WORK, workWord(t, v), POLL_MS);
}
