/**
 * Recovery: what the handle that observes another's end does for the locks that one held
 * (journal.ts undoes, the tree layer repairs, this file releases). Runs holding no lock and waiting for none.
 */
import { journalHead, journalOwner, journalRollback } from "./journal.ts";
import { HDR_SEQ_PURGE, JOURNALS, LOCK_SEQ_OFFSET } from "./layout.ts";
import { LOCK_SEQ_MASK, LOCK_WAITERS, lockHolder, spaceLockWords } from "./lock.ts";
import type { VaTable } from "./va-table.ts";

/**
 * Handle `id` ended and its thread runs no more: undo its unfinished critical section (its
 * journal), have `repair` rebuild the trees each lock it held guards (their words are not
 * journaled: tree/repair.ts), and release those locks, among the space's and `moreLocks`. Runs holding no lock and waits for
 * none: the locks it touches are the dead handle's. Returns the lock words it held, or
 * undefined when its journal had overflowed or a repair failed, so that the section could not
 * be undone (the locks then stay held).
 */
export function recoverHolder(
	t: VaTable,
	id: number,
	moreLocks: readonly number[],
	repair: (lockWord: number) => boolean,
): number[] | undefined {
	t.remap(); // the records as far as the dead handle had grown the table
	const hdr = t.hdr;
	const views = [hdr, t.hdrF, t.i32, t.f64] as const;
	for (let j = 0; j < JOURNALS; j++) {
		if (Atomics.load(hdr, journalOwner(j)) === id && !journalRollback(views, journalHead(j))) return undefined;
	}
	const held = [...spaceLockWords(t), ...moreLocks].filter((word) => lockHolder(hdr, word) === id);
	// Repairs are idempotent: if this thread dies here, the next observer rolls back an empty
	// journal and repairs again.
	for (const word of held) if (!repair(word)) return undefined;
	// Purge counters it was writing: the rollback restored those written under a lock; readers
	// who copied meanwhile must see the sequence move.
	Atomics.add(hdr, HDR_SEQ_PURGE, (Atomics.load(hdr, HDR_SEQ_PURGE) & 1) === 0 ? 2 : 1);
	for (const word of held) {
		hdr[word + LOCK_SEQ_OFFSET] = (hdr[word + LOCK_SEQ_OFFSET]! + 1) & LOCK_SEQ_MASK;
		if (Atomics.exchange(hdr, word, 0) & LOCK_WAITERS) Atomics.notify(hdr, word);
	}
	for (let j = 0; j < JOURNALS; j++) Atomics.compareExchange(hdr, journalOwner(j), id, 0);
	return held;
}
