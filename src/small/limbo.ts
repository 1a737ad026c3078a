/**
 * Retired descriptors and the remote freers still inside them: hazard pointers (M. Michael,
 * "Hazard pointers: safe memory reclamation for lock-free objects", 2004), one per handle.
 *
 * A remote free publishes the descriptor it frees into in its handle entry (HANDLE_HAZARD)
 * before its OR on REMOTE, and clears it when it is done with the block. Until the OR lands
 * the small area it frees is live, so the block cannot retire; once it has landed, the owner
 * may take the free in and retire the block at once, while the freer still counts it and
 * looks at OWNER. So a retire (under the FREE lock) that finds a hazard on the descriptor does
 * not free its records: it leaves them in limbo (STATE LIMBO, OWNER_RETIRED, so that no
 * adoption's CAS succeeds), linked from HDR_SMALL_LIMBO through D_LIMBO_NEXT, and each later
 * retire and new block frees the limbo descriptors no hazard names any more. No write of a
 * freer lands on a record that serves something else.
 *
 * A handle that ends clears its hazard (core/handles.ts): its window is over.
 */
import { put } from "../buffer/journal.ts";
import { HANDLE_HAZARD, HANDLE_MAX, HANDLE_WORDS, HDR_SMALL_LIMBO, REC_I32 } from "../buffer/layout.ts";
import { setRecWord, setRecWordAtomic } from "../buffer/record.ts";
import type { VaTable } from "../buffer/va-table.ts";
import { clearAndFree } from "./block-index.ts";
import { D_LIMBO_NEXT, D_OWNER, D_RUN, D_STATE, OWNER_RETIRED, SMALL_BLOCK_LIMBO } from "./descriptor.ts";

const DRAIN_MAX = 2;

/** Whether a handle other than `self` has descriptor `d` as its hazard. */
function hazarded(t: VaTable, d: number, self: number): boolean {
	const handles = t.handles;
	for (let i = 0; i < HANDLE_MAX; i++) if (i !== self - 1 && Atomics.load(handles, i * HANDLE_WORDS + HANDLE_HAZARD) === d) return true;
	return false;
}

/** Descriptor `d`'s records, zeroed and freed. */
function freeRun(t: VaTable, d: number): void {
	const first = d / REC_I32;
	const run = t.i32[d + D_RUN]!;
	for (let r = 0; r < run; r++) clearAndFree(t, first + r);
}

/**
 * Descriptor `d`, out of the index, is retired by handle `self` (which touches it no more):
 * its records are freed, or left in limbo while another handle's hazard names it. Then the
 * limbo descriptors no hazard names are freed. Under the FREE lock.
 */
export function dropDescriptor(t: VaTable, d: number, self: number): void {
	if (hazarded(t, d, self)) {
		setRecWord(t.i32, d + D_STATE, SMALL_BLOCK_LIMBO);
		setRecWordAtomic(t.i32, d + D_OWNER, OWNER_RETIRED);
		setRecWord(t.i32, d + D_LIMBO_NEXT, t.hdr[HDR_SMALL_LIMBO]!);
		put(t.hdr, HDR_SMALL_LIMBO, d);
	} else freeRun(t, d);
	drainLimbo(t, self);
}

/**
 * Free the limbo descriptors no other handle's hazard names, DRAIN_MAX at most (each is tens
 * of journaled writes, and a critical section's journal holds 1,024). Under the FREE lock.
 */
export function drainLimbo(t: VaTable, self: number): void {
	let link = -1; // the word that points at d: the header's, then each kept descriptor's
	let freed = 0;
	for (let d = t.hdr[HDR_SMALL_LIMBO]!; d !== 0 && freed < DRAIN_MAX; ) {
		const next = t.i32[d + D_LIMBO_NEXT]!;
		if (hazarded(t, d, self)) link = d + D_LIMBO_NEXT;
		else {
			if (link < 0) put(t.hdr, HDR_SMALL_LIMBO, next);
			else setRecWord(t.i32, link, next);
			freeRun(t, d);
			freed++;
		}
		d = next;
	}
}

/** Every descriptor in limbo (under the FREE lock, or of a still copy). */
export function eachInLimbo(t: VaTable, visit: (d: number) => void): void {
	for (let d = t.hdr[HDR_SMALL_LIMBO]!; d !== 0; d = t.i32[d + D_LIMBO_NEXT]!) visit(d);
}
