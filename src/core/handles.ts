/**
 * The handle table: who is attached, on which thread, and what happens when a handle's end is
 * observed (kernel: a CPU going offline). A handle ends by close(), or when the thread holding
 * its worker sees the worker exit (watch(): Node's "exit" event, which fires after terminate()
 * and after a crash), or when a page that terminated a Web Worker says so (exited(id)).
 *
 * An ended handle is forgotten: what it was changing under locks is undone from its journal
 * (buffer/journal.ts) and its locks released, its id is free again, the purge work it had
 * taken is posted anew, its batches are orphaned for the next purge, and the layer above is
 * told (the heap takes it offline for grace periods). Only when its journal had overflowed
 * does HDR_DEAD record it, and every call on the space throws EOWNERDEAD from then on.
 */
import { VmapError } from "../api/errors.ts";
import { reportError } from "../util/report.ts";
import {
	BATCH_ORPHAN,
	BATCH_SLOTS,
	HDR_BATCH_OWNER,
	HANDLE_ALIVE,
	HANDLE_DEAD,
	HANDLE_ENDING,
	HANDLE_FREE,
	HANDLE_GEN,
	HANDLE_HAZARD,
	HANDLE_MAX,
	HANDLE_STATE,
	HANDLE_THREAD,
	HANDLE_WORDS,
	HDR_DEAD,
	HDR_DEAD_WORD,
} from "../buffer/layout.ts";
import { crashPoint } from "../buffer/journal.ts";
import { type Locks, lockHolder, spaceLockWords } from "../buffer/lock.ts";
import { recoverHolder } from "../buffer/recover.ts";
import { repostWork } from "../purge/work.ts";
import { repairTrees } from "../tree/repair.ts";
import type { VaTable } from "../buffer/va-table.ts";

/** This thread's worker_threads threadId (0: Node's main thread), or -1 where there is none. */
export const THREAD_ID: number = (() => {
	const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
	const wt = proc?.getBuiltinModule?.("node:worker_threads") as { threadId?: unknown } | undefined;
	return typeof wt?.threadId === "number" ? wt.threadId : -1;
})();

/**
 * Claim a free entry of the handle table for this thread: the new handle's id (entry index +
 * 1). Throws EINVAL when all HANDLE_MAX entries are in use (handles give theirs back with
 * close(), or when their end is observed).
 */
export function claimHandle(t: VaTable): number {
	const handles = t.handles;
	for (let i = 0; i < HANDLE_MAX; i++) {
		if (Atomics.compareExchange(handles, i * HANDLE_WORDS + HANDLE_STATE, HANDLE_FREE, HANDLE_ALIVE) === HANDLE_FREE) {
			Atomics.add(handles, i * HANDLE_WORDS + HANDLE_GEN, 1);
			Atomics.store(handles, i * HANDLE_WORDS + HANDLE_THREAD, THREAD_ID);
			return i + 1;
		}
	}
	throw new VmapError("EINVAL", `Cannot attach: all ${HANDLE_MAX} handle ids are in use (close() handles you no longer need)`);
}

/**
 * Handle `id`'s token: its id and the generation of its entry, "id.generation". A token
 * names one handle for ever: the entry's next claim has another generation.
 */
export function handleToken(t: VaTable, id: number): string {
	return `${id}.${Atomics.load(t.handles, (id - 1) * HANDLE_WORDS + HANDLE_GEN)}`;
}

/** The handle id a token names while that handle is alive, 0 when it is not (ended, closed, or the id reused); -1 for what is not a token. */
export function tokenHandle(t: VaTable, token: unknown): number {
	const m = typeof token === "string" ? /^([1-9][0-9]{0,3})\.([0-9]{1,10})$/.exec(token) : null;
	const id = m === null ? 0 : Number(m[1]);
	if (m === null || id > HANDLE_MAX) return -1;
	const w = (id - 1) * HANDLE_WORDS;
	const alive = Atomics.load(t.handles, w + HANDLE_STATE) === HANDLE_ALIVE;
	return alive && String(Atomics.load(t.handles, w + HANDLE_GEN) >>> 0) === m[2] ? id : 0;
}

/** Give handle `id`'s entry back (close(), or the end of its end hooks). */
export function releaseHandle(t: VaTable, id: number): void {
	crashPoint();
	Atomics.store(t.handles, (id - 1) * HANDLE_WORDS + HANDLE_STATE, HANDLE_FREE);
}

export function handleState(t: VaTable, id: number): number {
	return Atomics.load(t.handles, (id - 1) * HANDLE_WORDS + HANDLE_STATE);
}

/** The live handles attached from worker_threads thread `threadId`. */
export function handlesOfThread(t: VaTable, threadId: number): number[] {
	const out: number[] = [];
	if (threadId < 0) return out;
	for (let i = 0; i < HANDLE_MAX; i++) {
		const w = i * HANDLE_WORDS;
		if (Atomics.load(t.handles, w + HANDLE_STATE) === HANDLE_ALIVE && Atomics.load(t.handles, w + HANDLE_THREAD) === threadId)
			out.push(i + 1);
	}
	return out;
}

/**
 * Handle `id` was observed to end (its worker exited). Call only once its thread runs no more
 * (after the worker's "exit" event): its lock holdings are then final. What it was changing
 * under locks (the space's or `moreLocks`) is undone and its locks released (lock.ts
 * recoverHolder; its trees rebuilt, tree/repair.ts). Returns "ending": the entry stays ENDING, its id not reused, while the end
 * hooks run (runEndHooks), since its areas carry that id; "dead" only when it could not be
 * undone (a journal overflowed: the space is poisoned, EOWNERDEAD); "closed" when the handle
 * had closed already, or another observer is ending it.
 */
export function handleEnded(t: VaTable, id: number, moreLocks: readonly number[]): "dead" | "ending" | "closed" {
	const hdr = t.hdr;
	const entry = (id - 1) * HANDLE_WORDS + HANDLE_STATE;
	// One observer ends it: a second (watch() and exited() both) finds it ending.
	if (Atomics.compareExchange(t.handles, entry, HANDLE_ALIVE, HANDLE_ENDING) !== HANDLE_ALIVE) return "closed";
	if (recoverHolder(t, id, moreLocks, (word) => repairTrees(t, word)) === undefined) {
		Atomics.store(t.handles, entry, HANDLE_DEAD);
		const word = [...spaceLockWords(t), ...moreLocks].find((w) => lockHolder(hdr, w) === id) ?? 0;
		if (Atomics.compareExchange(hdr, HDR_DEAD, 0, id) === 0) Atomics.store(hdr, HDR_DEAD_WORD, word);
		return "dead";
	}
	Atomics.store(t.handles, (id - 1) * HANDLE_WORDS + HANDLE_HAZARD, 0); // whatever it was freeing into, it is done with
	// Purge work it had taken and not finished: its purge tree is whole between steps, and
	// every step runs under locks, so another handle can take the node over.
	for (let v = 0; v < t.nodes; v++) repostWork(t, v, id);
	// Its batches, flushed or not: the next purge adopts them and flushes their range again.
	for (let k = 0; k < BATCH_SLOTS; k++) {
		if (Atomics.compareExchange(hdr, HDR_BATCH_OWNER + k, id, BATCH_ORPHAN) === id) Atomics.notify(hdr, HDR_BATCH_OWNER + k);
	}
	return "ending"; // the end hooks run next; the last gives the id back (releaseHandle)
}

/**
 * The layer's end hooks for handle `id` (the heap's grace periods, the small-area blocks),
 * which take locks. From an exit listener they must never block: a lock they wait for may be
 * held by a live handle that itself waits for a dead one whose exit event comes after this
 * one. So each lock is tried without waiting (timeoutMs 0), and when one is busy the hooks not
 * yet done run again from a timer; a hook may run again after a timeout (each takes its locks
 * before it changes anything, or is idempotent). Other failures go to `onError`. When the hooks
 * are done, failed, or can run no more (this handle closed), the ended handle's id is given
 * back.
 */
export function runEndHooks(
	t: VaTable,
	locks: Locks,
	id: number,
	hooks: Array<() => void>,
	onError: ((error: unknown) => void) | undefined,
): void {
	const timeoutMs = locks.timeoutMs;
	locks.timeoutMs = 0;
	try {
		while (hooks.length > 0 && !locks.closed) {
			hooks[0]!();
			hooks.shift();
		}
	} catch (e) {
		if (e instanceof VmapError && e.code === "ETIMEDOUT" && !locks.closed) {
			setTimeout(() => runEndHooks(t, locks, id, hooks, onError), 1);
			return;
		}
		reportError(e, onError, `ending handle ${id}`);
	} finally {
		locks.timeoutMs = timeoutMs;
	}
	releaseHandle(t, id);
}
