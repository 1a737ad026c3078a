/**
 * Parallel purge: the work handoff (kernel: purge_vmap_node queued with schedule_work_on, then
 * flush_work). JavaScript has no kernel workqueues, so the helpers are the space's other
 * handles: a purge posts a node in the node's N_WORK word and counts it in HDR_WORK; a handle
 * takes posted nodes at the start of its next call, or at once if it is idle (it waits on
 * HDR_WORK with Atomics.waitAsync); the purge takes back what nobody took and waits for the
 * rest.
 *
 * N_WORK: 0 none, WORK_POSTED, or the id of the handle purging the node. Posting and taking
 * are Atomics operations; the purge of the node itself is ordinary locked work (purge-node.ts).
 */
import { HDR_WORK, N_WORK, nodeBase } from "./layout.ts";
import type { VaTable } from "./va-table.ts";

export const WORK_POSTED = -1;

/** Offer node `v`'s purge list to helpers and wake idle ones. The caller holds the purge mutex. */
export function postWork(t: VaTable, v: number): void {
	Atomics.store(t.hdr, nodeBase(v) + N_WORK, WORK_POSTED);
	Atomics.add(t.hdr, HDR_WORK, 1);
	Atomics.notify(t.hdr, HDR_WORK);
}

/** Take node `v`'s posted work for handle `self`: true if it is now ours to purge. */
export function takeWork(t: VaTable, v: number, self: number): boolean {
	if (t.hdr[nodeBase(v) + N_WORK] !== WORK_POSTED) return false; // a plain peek first
	if (Atomics.compareExchange(t.hdr, nodeBase(v) + N_WORK, WORK_POSTED, self) !== WORK_POSTED) return false;
	Atomics.sub(t.hdr, HDR_WORK, 1);
	return true;
}

/** The taker is done with node `v`: its purge list is empty. Wakes the purge waiting for it. */
export function finishWork(t: VaTable, v: number): void {
	Atomics.store(t.hdr, nodeBase(v) + N_WORK, 0);
	Atomics.notify(t.hdr, nodeBase(v) + N_WORK);
}

/** The handle purging node `v`, WORK_POSTED if nobody took it yet, 0 when done. */
export function helperOf(t: VaTable, v: number): number {
	return Atomics.load(t.hdr, nodeBase(v) + N_WORK);
}

/** Helper `id` ended between two steps of node `v`: post the node again for anyone to finish. */
export function repostWork(t: VaTable, v: number, id: number): void {
	if (Atomics.compareExchange(t.hdr, nodeBase(v) + N_WORK, id, WORK_POSTED) !== id) return;
	Atomics.add(t.hdr, HDR_WORK, 1);
	Atomics.notify(t.hdr, nodeBase(v) + N_WORK);
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
