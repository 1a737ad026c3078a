/**
 * A still copy of a space's header and records, for check(), which needs every structure at
 * one instant (the listings read the trees in chunks instead, info.ts): taken under every
 * lock, walked holding none. Other handles stall only for one
 * memcpy of the records in use (about 3.5 ms per 45 MB, a million areas, on the machine this
 * was measured on), not for an O(n) walk that allocates strings (seconds at that size).
 *
 * The copy's memory is allocated and written once before the locks are taken: faulting in
 * fresh pages costs some 50 times the copy itself (177 ms against 3.5 ms for 45 MB). A copy of
 * up to KEEP_BYTES is kept for the handle's next check(), which then allocates nothing; the
 * tag table, which check() does not read, is not copied.
 */
import { bytesForCapacity, HANDLE_OFFSET, HDR_CAPACITY, HDR_FREE_LOCK, HDR_SLOT_HIGH, REC_BYTES, TAG_OFFSET } from "../buffer/layout.ts";
import { N_BUSY_LOCK, N_LAZY_LOCK, N_POOL_LOCK, nodeBase } from "../buffer/node-layout.ts";
import type { SpaceState } from "../core/state.ts";
import { VaTable } from "../buffer/va-table.ts";

/** A copy up to this size is kept for the handle's next check(): no allocation, no page faults. */
const KEEP_BYTES = 1 << 20;
/** Each handle's kept copy and how many of its bytes the last snapshot wrote. */
const kept = new WeakMap<SpaceState, { copy: ArrayBuffer; used: number }>();

/** Memory for a copy of `bytes`, its pages faulted in: the handle's kept copy when it is large enough. */
function copyMemory(s: SpaceState, bytes: number): ArrayBuffer {
	const k = kept.get(s);
	if (k !== undefined && k.copy.byteLength >= bytes) return k.copy;
	const copy = new ArrayBuffer(bytes);
	new Uint8Array(copy, HANDLE_OFFSET).fill(0); // fault the pages in now, holding nothing
	if (bytes <= KEEP_BYTES) kept.set(s, { copy, used: 0 });
	return copy;
}

export function snapshot(s: SpaceState): VaTable {
	s.locks.ensureAlive(); // before the copy's memory is taken (withEveryLock looks again)
	for (;;) {
		const t = s.table;
		t.sync();
		// Room for the table as it is and one growth step (an eighth), so a retry is rare.
		const room = t.capacity + (t.capacity >>> 3) + 64;
		const copy = copyMemory(s, bytesForCapacity(t.recordsAt, room));
		const used = withEveryLock(s, () => {
			// Records past SLOT_HIGH were never used (a corrupt SLOT_HIGH is check()'s to report).
			const high = Math.max(0, Math.min(t.hdr[HDR_SLOT_HIGH]!, t.hdr[HDR_CAPACITY]!));
			const used = bytesForCapacity(t.recordsAt, high);
			if (used > copy.byteLength) return -1; // grew past the room meanwhile: again
			// The tag table is left out (check() reads no tag): its 64 KiB were most of the copy of a small space.
			new Uint8Array(copy, 0, TAG_OFFSET).set(new Uint8Array(t.buffer, 0, TAG_OFFSET));
			new Uint8Array(copy, HANDLE_OFFSET, used - HANDLE_OFFSET).set(new Uint8Array(t.buffer, HANDLE_OFFSET, used - HANDLE_OFFSET));
			return used;
		});
		if (used < 0) continue;
		// A kept copy: what an earlier, larger snapshot wrote past this one's records is zeroed.
		const k = kept.get(s);
		if (k?.copy === copy) {
			if (k.used > used) new Uint8Array(copy, used, k.used - used).fill(0);
			k.used = used;
		}
		// The copy holds the records in use; its capacity is what it has room for.
		const hdr = new Int32Array(copy, 0, HDR_CAPACITY + 1);
		hdr[HDR_CAPACITY] = Math.min(hdr[HDR_CAPACITY]!, (copy.byteLength - t.recordsAt) / REC_BYTES);
		return new VaTable(copy);
	}
}

/**
 * Run `read` over a still space: holding every lock but the purge mutex, in the lock order
 * (free space, then each kind of node lock in node order).
 */
function withEveryLock<T>(s: SpaceState, read: () => T): T {
	const locks = s.locks;
	locks.ensureAlive();
	const words = [HDR_FREE_LOCK];
	for (const kind of [N_POOL_LOCK, N_BUSY_LOCK, N_LAZY_LOCK]) for (let v = 0; v < s.nodes; v++) words.push(nodeBase(v) + kind);
	let held = 0;
	try {
		for (; held < words.length; held++) locks.acquire(words[held]!);
		s.table.sync();
		return read();
	} finally {
		while (held > 0) locks.release(words[--held]!);
	}
}
