/**
 * What the space's locks are called, and the errors and warnings that name them (lock.ts takes
 * and releases them).
 */
import { VmapError } from "../api/errors.ts";
import { longWait } from "../util/report.ts";
import {
	JOURNAL_ENTRIES,
	HDR_DEAD,
	HDR_DEAD_WORD,
	HDR_EXT_OFFSET,
	HDR_EXT_WORDS,
	HDR_FREE_LOCK,
	HDR_PURGE_LOCK,
	HDR_TAG_LOCK,
} from "./layout.ts";
import { N_BUSY_LOCK, N_LAZY_LOCK, N_POOL_LOCK, N_WORK, NODE_OFFSET, NODE_WORDS } from "./node-layout.ts";

const LOCK_NAMES: Record<number, string> = {
	[HDR_FREE_LOCK]: "the free-space lock",
	[HDR_PURGE_LOCK]: "the purge mutex",
	[HDR_TAG_LOCK]: "the tag lock",
};
const NODE_LOCK_NAMES: Record<number, string> = {
	[N_BUSY_LOCK]: "busy lock",
	[N_LAZY_LOCK]: "lazy lock",
	[N_POOL_LOCK]: "pool lock",
	[N_WORK]: "purge work (as a helper)",
};

/** What header word `word` is, for messages: "the purge mutex", "node 3's busy lock". */
export function lockName(hdr: Int32Array, word: number): string {
	if (hdr[HDR_EXT_WORDS]! > 0 && word >= hdr[HDR_EXT_OFFSET]!)
		return `the heap's lock at word ${word - hdr[HDR_EXT_OFFSET]!} of its region (heap-layout.ts)`;
	const w = word - NODE_OFFSET / 4;
	if (w >= 0) return `node ${Math.floor(w / NODE_WORDS)}'s ${NODE_LOCK_NAMES[w % NODE_WORDS] ?? "lock"}`;
	return LOCK_NAMES[word] ?? "a lock";
}

/** The error of every call once a handle was observed to end holding a lock. */
export function deadError(hdr: Int32Array): VmapError {
	const who = hdr[HDR_DEAD];
	return new VmapError(
		"EOWNERDEAD",
		`The space is unusable: handle ${who} ended (its worker exited) while holding ${lockName(hdr, hdr[HDR_DEAD_WORD]!)}, and what it had changed could not be undone: its critical section outgrew its undo journal (${JOURNAL_ENTRIES} writes), or the trees rolled back did not form valid trees`,
	);
}

/** A wait for `word` that passed its deadline: who holds what, and what to do about it. */
export function timedOut(hdr: Int32Array, word: number, owner: number, ms: number): VmapError {
	return new VmapError(
		"ETIMEDOUT",
		`Waited ${ms} ms for ${lockName(hdr, word)}, held by handle ${owner}; nothing was changed. The holder is slow, busy or paused, or its worker exited unobserved (watch(worker) makes such an exit known)`,
	);
}

/** The warning for a wait without a deadline that lasted longWait.longMs: who waits for what, and the fixes. */
export function longWaitMessage(hdr: Int32Array, word: number, self: number, owner: number): string {
	return `handle ${self} has waited ${longWait.longMs / 1000} s for ${lockName(hdr, word)}, held by handle ${owner}, and waits on (no timeoutMs). If that handle's worker exited, watch(worker) where it was created (or exited(token) in a browser) makes the exit known; timeoutMs bounds the wait`;
}
