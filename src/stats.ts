/**
 * Statistics read without taking any allocator lock (seed 001: readers of /proc/meminfo must
 * not contend with allocators).
 *
 * Counters are grouped in domains, one per lock that guards their writers: free space (the
 * free-space lock), busy and lazy areas (the busy lock), purges (the purge mutex). The free and
 * busy lock words count, odd while held (lock.ts), so they are their domains' sequence locks;
 * the purge counters have their own word, HDR_SEQ_PURGE, made odd by seqBegin and even by
 * seqEnd around each short update, since the purge mutex stays held across a whole flush. A
 * reader copies a domain's counters between two equal, even readings of its word and retries
 * otherwise, so each domain is read as one consistent snapshot. A long holder of a lock
 * (check(), dump()) makes readers of that domain retry until it ends, up to GIVE_UP_MS.
 *
 * Across domains a snapshot may be momentarily inconsistent: an allocation leaves free space
 * before it joins the busy areas, so free + busy + lazy bytes can read below or above the space
 * size by the bytes of operations in flight; vmapLazyNr and lazyAreas combine a count of the
 * busy group with one of the purge group, so they may be off by the areas a purge is moving.
 * Within a domain every figure agrees with every other.
 */
import type { VmapStats } from "./api.ts";
import {
	HDR_BUSY_LOCK,
	HDR_BUSY_NR,
	HDR_FREE_LOCK,
	HDR_FREE_NR,
	HDR_FREE_ROOT,
	HDR_LAZY_NR,
	HDR_PURGE_NR,
	HDR_SEQ_PURGE,
	HDRF_ALLOCS,
	HDRF_BUSY_BYTES,
	HDRF_END,
	HDRF_FAILED,
	HDRF_FLUSH_ERRORS,
	HDRF_FLUSHED_BYTES,
	HDRF_FLUSHES,
	HDRF_FREE_BYTES,
	HDRF_FREES,
	HDRF_LAZY_MAX_PAGES,
	HDRF_LAZY_ADDED,
	HDRF_LAZY_PURGED,
	HDRF_OVERFLOW_PURGES,
	HDRF_PAGE_SIZE,
	HDRF_PURGED_AREAS,
	HDRF_PURGES,
	HDRF_START,
	REC_F64,
	VA_SUBTREE_MAX,
} from "./layout.ts";
import { LOCK_SEQ } from "./lock.ts";
import type { VaTable } from "./va-table.ts";

/** Open a write to the purge counters (HDR_SEQ_PURGE); the caller holds the purge mutex. */
export function seqBegin(hdr: Int32Array): void {
	Atomics.add(hdr, HDR_SEQ_PURGE, 1);
}

/** Close a write opened by seqBegin. */
export function seqEnd(hdr: Int32Array): void {
	Atomics.add(hdr, HDR_SEQ_PURGE, 1);
}

/**
 * How long a reader retries one domain before it gives up and reports `consistent: false`. A
 * writer's window is a few hundred nanoseconds, but the OS may deschedule a writer inside it
 * (seen: about 1 ms on a loaded 2-core machine), and a writer that died inside it never
 * leaves it.
 */
const GIVE_UP_MS = 20;

/**
 * Copy one domain consistently: run `read` until it ran entirely between two equal, even
 * readings of the sequence word. Returns false if a writer kept the word moving (or odd) for
 * GIVE_UP_MS; `read` has then still filled in its last copy.
 */
function readDomain(hdr: Int32Array, seqWord: number, read: () => void): boolean {
	let deadline = 0;
	for (let i = 0; ; i++) {
		const before = Atomics.load(hdr, seqWord) & LOCK_SEQ;
		if ((before & 1) === 0) {
			read();
			if ((Atomics.load(hdr, seqWord) & LOCK_SEQ) === before) return true;
		}
		if ((i & 1023) === 1023) {
			const now = performance.now();
			if (deadline === 0) deadline = now + GIVE_UP_MS;
			else if (now > deadline) break;
		}
	}
	read();
	return false;
}

export function readStats(t: VaTable): VmapStats {
	const hdr = t.hdr;
	const f = t.hdrF;
	const pageSize = f[HDRF_PAGE_SIZE]!;
	const s: VmapStats = {
		size: f[HDRF_END]! - f[HDRF_START]!,
		pageSize,
		busyBytes: 0,
		busyAreas: 0,
		lazyBytes: 0,
		lazyAreas: 0,
		freeBytes: 0,
		freeBlocks: 0,
		largestFreeBlock: 0,
		vmapLazyNr: 0,
		lazyMaxPages: f[HDRF_LAZY_MAX_PAGES]!,
		allocs: 0,
		frees: 0,
		failedAllocs: 0,
		purges: 0,
		flushes: 0,
		flushedBytes: 0,
		purgedAreas: 0,
		overflowPurges: 0,
		flushErrors: 0,
		consistent: true,
	};
	let lazyAdded = 0;
	let lazyPurged = 0;
	let lazyListed = 0;
	let lazyBatched = 0;
	const free = readDomain(hdr, HDR_FREE_LOCK, () => {
		s.freeBytes = f[HDRF_FREE_BYTES]!;
		s.freeBlocks = hdr[HDR_FREE_NR]!;
		s.failedAllocs = f[HDRF_FAILED]!;
		// The root's subtreeMaxSize is the largest block. The record view may predate growth by
		// another handle; the root is then out of its reach and the snapshot is simply retried.
		const root = hdr[HDR_FREE_ROOT]!;
		if (root >= t.capacity) t.remap();
		s.largestFreeBlock = root === 0 ? 0 : t.f64[root * REC_F64 + VA_SUBTREE_MAX]!;
	});
	const busy = readDomain(hdr, HDR_BUSY_LOCK, () => {
		s.busyBytes = f[HDRF_BUSY_BYTES]!;
		s.busyAreas = hdr[HDR_BUSY_NR]!;
		lazyListed = hdr[HDR_LAZY_NR]!;
		lazyAdded = f[HDRF_LAZY_ADDED]!;
		s.allocs = f[HDRF_ALLOCS]!;
		s.frees = f[HDRF_FREES]!;
	});
	const purge = readDomain(hdr, HDR_SEQ_PURGE, () => {
		s.purges = f[HDRF_PURGES]!;
		s.flushes = f[HDRF_FLUSHES]!;
		s.flushedBytes = f[HDRF_FLUSHED_BYTES]!;
		s.purgedAreas = f[HDRF_PURGED_AREAS]!;
		s.overflowPurges = f[HDRF_OVERFLOW_PURGES]!;
		s.flushErrors = f[HDRF_FLUSH_ERRORS]!;
		lazyPurged = f[HDRF_LAZY_PURGED]!;
		lazyBatched = hdr[HDR_PURGE_NR]!;
	});
	// Across groups: pages and areas freed (busy group) less those purged or in the batch.
	s.vmapLazyNr = lazyAdded - lazyPurged;
	s.lazyBytes = s.vmapLazyNr * pageSize;
	s.lazyAreas = lazyListed + lazyBatched;
	s.consistent = free && busy && purge;
	return s;
}
