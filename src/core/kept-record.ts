/**
 * A handle's kept record (buffer/gauges.ts GAUGE_KEPT): a lazy free that merged keeps the
 * record it no longer needs for the handle's next allocation. When the handle closes, or ends
 * and another handle runs its end hooks, the record goes back to the record free list, under
 * the free-space lock (its list's). A record left by an id's earlier holder (a give-back cut
 * short) is the next holder's to use: it is in no structure, and check() counts every
 * handle's.
 */
import { put } from "../buffer/journal.ts";
import { keptWord } from "../buffer/gauges.ts";
import { HDR_FREE_LOCK } from "../buffer/layout.ts";
import type { Locks } from "../buffer/lock.ts";
import type { VaTable } from "../buffer/va-table.ts";

/** Give handle `id`'s kept record, if any, back to the record free list. Handle `id` allocates no more. */
export function giveBackKept(t: VaTable, locks: Locks, id: number): void {
	const word = keptWord(id);
	if (Atomics.load(t.hdr, word) === 0) return;
	locks.acquire(HDR_FREE_LOCK);
	const kept = t.hdr[word]!;
	if (kept !== 0) {
		put(t.hdr, word, 0);
		t.freeSlot(kept);
	}
	locks.release(HDR_FREE_LOCK);
}
