/**
 * Statistics read without taking any allocator lock ("vmalloc: use rcu list iterator to reduce vmap_area_lock contention": readers of /proc/meminfo must
 * not contend with allocators).
 *
 * Counters are grouped in domains, one per lock that guards their writers: free space (the
 * free-space lock; each node's pool misses are counted there too), and per node its busy tree
 * (busy lock), its lazy tree (lazy lock) and its pools and purge trees (pool lock); purges (the
 * purge mutex). Each lock word and the sequence word beside it (lock.ts) make their domain's
 * sequence lock; the purge counters have their own word, HDR_SEQ_PURGE, made odd by seqBegin
 * and even by seqEnd around each short update, since helpers write them holding no purge
 * mutex. A reader copies a domain's counters between two readings (seqRead, seqSame) that
 * saw no writer, and retries otherwise, so each domain is read as one consistent snapshot. A long holder of a
 * lock (check(), dump()) makes readers of that domain retry until it ends, up to GIVE_UP_MS.
 *
 * Across domains a snapshot may be momentarily inconsistent: an area moving from one structure
 * to another is counted in both or neither, so free + busy + lazy + pooled bytes can read off
 * the space size by the bytes of operations in flight, and vmapLazyNr combines a node's lazy
 * and pool domains (read pool first, so that it may lag but never goes below zero). Within a
 * domain every figure agrees with every other.
 */
import type { VmapStats } from "../api/types.ts";
import { shown, VmapError } from "../api/errors.ts";
import type { NodeStats } from "../api/types.ts";
import { readSmall } from "./small-stats.ts";
import {
	HDR_FREE_LOCK,
	HDR_FREE_NR,
	HDR_FREE_ROOT,
	HDR_SEQ_PURGE,
	HDRF_END,
	HDRF_FAILED,
	HDRF_FLUSH_ERRORS,
	HDRF_FLUSHED_BYTES,
	HDRF_FLUSHES,
	HDRF_FREE_BYTES,
	HDRF_HELPED,
	HDRF_LAZY_MAX_PAGES,
	HDRF_OVERFLOW_PURGES,
	HDRF_PRIORITY_PURGES,
	HDRF_DRAIN_PURGES,
	HDRF_PAGE_SIZE,
	HDRF_PURGES,
	HDRF_START,
	HDRF_TRIMS,
	BATCH_SLOTS,
} from "../buffer/layout.ts";
import {
	MAX_VA_SIZE_PAGES,
	N_BUSY_LOCK,
	N_BUSY_NR,
	N_LAZY_LOCK,
	N_LAZY_NR,
	N_POOL_LOCK,
	N_POOL_NR,
	NF_ALLOCS,
	NF_BUSY_BYTES,
	NF_DECAYED,
	NF_FREES,
	NF_HELPER_RUNS,
	NF_LAZY_ADDED,
	NF_LAZY_PURGED,
	NF_POOL_BYTES,
	NF_POOL_HITS,
	NF_POOL_MISSES,
	NF_PURGED_AREAS,
	nodeBase,
	purgeTree,
	POOL_LEN,
} from "../buffer/node-layout.ts";
import { seqRead, seqSame } from "../buffer/lock.ts";
import { poolWord } from "../tree/nodes.ts";
import type { VaTable } from "../buffer/va-table.ts";
import { subtreeMaxSize, vaEnd, vaRight, vaStart } from "../buffer/record.ts";

/**
 * How long a reader retries one domain before it gives up and reports `consistent: false`. A
 * writer's window is a few hundred nanoseconds, but the OS may deschedule a writer inside it
 * (seen: about 1 ms on a loaded 2-core machine), and a writer that died inside it never
 * leaves it.
 */
const GIVE_UP_MS = 20;

// The domains readDomain copies. Node domains take the node in `v`.
const FREE = 0;
const PURGE = 1;
const BUSY = 2;
const LAZY = 3;
const POOL = 4;

// Figures a node's domains yield that are not NodeStats fields: [allocs, frees, lazyAdded,
// lazyPurged, lazyListed, purgeListed]. Module scratch, so a snapshot creates no objects.
const scratch = new Float64Array(6);
const S_ALLOCS = 0;
const S_FREES = 1;
const S_ADDED = 2;
const S_PURGED = 3;
const S_LISTED = 4;
const S_BATCHED = 5;

/** Copy one domain's counters into `s` (no consistency: readDomain brackets it). */
function copyDomain(t: VaTable, s: VmapStats, domain: number, v: number, pools: boolean): void {
	const hdr = t.hdr;
	const f = t.hdrF;
	const nodes = s.nodes;
	const b = nodeBase(v);
	const nf = b >> 1;
	switch (domain) {
		case FREE: {
			s.freeBytes = f[HDRF_FREE_BYTES]!;
			s.freeBlocks = hdr[HDR_FREE_NR]!;
			s.failedAllocs = f[HDRF_FAILED]!;
			for (let u = 0; u < nodes.length; u++) nodes[u]!.poolMisses = f[(nodeBase(u) >> 1) + NF_POOL_MISSES]!;
			// The root's subtreeMaxSize is the largest block. The record view may predate growth by
			// another handle; the root is then out of its reach and the snapshot is simply retried.
			const root = hdr[HDR_FREE_ROOT]!;
			if (root >= t.capacity) t.remap();
			s.largestFreeBlock = root === 0 ? 0 : subtreeMaxSize(t.f64, root);
			s.spanBytes = spanBytes(t, root);
			return;
		}
		case PURGE:
			s.purges = f[HDRF_PURGES]!;
			s.flushes = f[HDRF_FLUSHES]!;
			s.flushedBytes = f[HDRF_FLUSHED_BYTES]!;
			s.overflowPurges = f[HDRF_OVERFLOW_PURGES]!;
			s.priorityPurges = f[HDRF_PRIORITY_PURGES]!;
			s.drainPurges = f[HDRF_DRAIN_PURGES]!;
			s.flushErrors = f[HDRF_FLUSH_ERRORS]!;
			s.helped = f[HDRF_HELPED]!;
			s.trims = f[HDRF_TRIMS]!;
			return;
		case BUSY: {
			const n = nodes[v]!;
			n.busyAreas = hdr[b + N_BUSY_NR]!;
			n.busyBytes = f[nf + NF_BUSY_BYTES]!;
			scratch[S_ALLOCS] = f[nf + NF_ALLOCS]!;
			scratch[S_FREES] = f[nf + NF_FREES]!;
			return;
		}
		case LAZY:
			scratch[S_LISTED] = hdr[b + N_LAZY_NR]!;
			scratch[S_ADDED] = f[nf + NF_LAZY_ADDED]!;
			return;
		case POOL: {
			const n = nodes[v]!;
			let batched = 0;
			for (let k = 0; k < BATCH_SLOTS; k++) batched += hdr[purgeTree(v, k) + 1]!;
			scratch[S_BATCHED] = batched;
			scratch[S_PURGED] = f[nf + NF_LAZY_PURGED]!;
			n.purgedAreas = f[nf + NF_PURGED_AREAS]!;
			n.poolAreas = hdr[b + N_POOL_NR]!;
			n.poolBytes = f[nf + NF_POOL_BYTES]!;
			n.poolHits = f[nf + NF_POOL_HITS]!;
			n.decayedAreas = f[nf + NF_DECAYED]!;
			n.helperRuns = f[nf + NF_HELPER_RUNS]!;
			if (pools) {
				const lengths = n.poolLengths!;
				for (let k = 0; k < MAX_VA_SIZE_PAGES; k++) lengths[k] = hdr[poolWord(v, k + 1) + POOL_LEN]!;
			}
			return;
		}
	}
}

/**
 * Bytes from the space's start to the end of its highest area that is not free: the free
 * tree's rightmost block ends the span when it reaches the space's end. Read without the free
 * lock inside readDomain's retry loop, so a half-done rotation may be seen: the descent is
 * bounded by depth and slot, and what it returns then is discarded with the rest of the copy.
 */
function spanBytes(t: VaTable, root: number): number {
	const f = t.hdrF;
	const i32 = t.i32;
	const cap = t.capacity;
	let va = root;
	for (let depth = 0; va !== 0 && depth < 64; depth++) {
		const r = vaRight(i32, va);
		if (!(r > 0 && r < cap)) break;
		va = r;
	}
	if (va === 0 || va >= cap || vaEnd(t.f64, va) !== f[HDRF_END]) return f[HDRF_END]! - f[HDRF_START]!;
	return vaStart(t.f64, va) - f[HDRF_START]!;
}

/**
 * Copy one domain consistently: copy it until the copy ran entirely between two readings of
 * its sequence lock that saw no writer. Returns false if writers kept coming for
 * GIVE_UP_MS; the last copy is then still in `s`.
 */
function readDomain(t: VaTable, seqWord: number, s: VmapStats, domain: number, v: number, pools: boolean): boolean {
	const hdr = t.hdr;
	let deadline = 0;
	for (let i = 0; ; i++) {
		const before = seqRead(hdr, seqWord);
		if (before >= 0) {
			copyDomain(t, s, domain, v, pools);
			if (seqSame(hdr, seqWord, before)) return true;
		}
		if ((i & 1023) === 1023) {
			const now = performance.now();
			if (deadline === 0) deadline = now + GIVE_UP_MS;
			else if (now > deadline) break;
		}
	}
	copyDomain(t, s, domain, v, pools);
	return false;
}

function emptyNode(): NodeStats {
	return {
		busyAreas: 0,
		busyBytes: 0,
		lazyAreas: 0,
		poolAreas: 0,
		poolBytes: 0,
		poolHits: 0,
		poolMisses: 0,
		purgedAreas: 0,
		decayedAreas: 0,
		helperRuns: 0,
	};
}

/** EINVAL unless `into` is a stats() result of a space of `nodes` nodes (one readStats can fill in place). */
export function validateStatsInto(into: unknown, nodes: number): asserts into is VmapStats {
	const x = into as { nodes?: unknown } | null;
	const list = typeof x === "object" && x !== null && Array.isArray(x.nodes) ? (x.nodes as unknown[]) : undefined;
	const bad = list?.find((n) => typeof n !== "object" || n === null);
	if (list !== undefined && list.length === nodes && bad === undefined) return;
	const got =
		typeof into !== "object" || into === null
			? shown(into)
			: list === undefined
				? "an object without nodes"
				: list.length !== nodes
					? `a result with ${list.length} nodes`
					: `nodes that are not node figures (${shown(bad)})`;
	throw new VmapError("EINVAL", `Cannot read stats: into must be a previous stats() result of this space (${nodes} nodes), got ${got}`);
}

/** A VmapStats of `nodes` zeroed nodes, for readStats to fill. */
export function emptyStats(nodes: number): VmapStats {
	const s: VmapStats = {
		size: 0,
		pageSize: 0,
		busyBytes: 0,
		busyAreas: 0,
		lazyBytes: 0,
		lazyAreas: 0,
		freeBytes: 0,
		freeBlocks: 0,
		largestFreeBlock: 0,
		spanBytes: 0,
		vmapLazyNr: 0,
		lazyMaxPages: 0,
		allocs: 0,
		frees: 0,
		failedAllocs: 0,
		purges: 0,
		flushes: 0,
		flushedBytes: 0,
		purgedAreas: 0,
		overflowPurges: 0,
		priorityPurges: 0,
		drainPurges: 0,
		flushErrors: 0,
		poolBytes: 0,
		poolAreas: 0,
		poolHits: 0,
		poolMisses: 0,
		helped: 0,
		trims: 0,
		smallMax: 0,
		smallBlocks: 0,
		smallAreas: 0,
		smallBytes: 0,
		smallLazyAreas: 0,
		smallLazyBytes: 0,
		smallFlushes: 0,
		nodes: [],
		consistent: true,
	};
	for (let v = 0; v < nodes; v++) s.nodes.push(emptyNode());
	return s;
}

/**
 * Read every domain into `into` (a previous result of this space's stats(), refilled in place,
 * so a monitoring loop creates no objects) or into a new VmapStats.
 */
export function readStats(t: VaTable, pools: boolean, into?: VmapStats): VmapStats {
	const f = t.hdrF;
	const s = into ?? emptyStats(t.nodes);
	const nodes = s.nodes;
	s.size = f[HDRF_END]! - f[HDRF_START]!;
	s.pageSize = f[HDRF_PAGE_SIZE]!;
	s.lazyMaxPages = f[HDRF_LAZY_MAX_PAGES]!;
	s.busyAreas = s.busyBytes = s.lazyAreas = s.allocs = s.frees = 0;
	s.purgedAreas = s.poolAreas = s.poolBytes = s.poolHits = s.poolMisses = 0;
	for (let v = 0; v < nodes.length; v++) {
		const n = nodes[v]!;
		if (pools) n.poolLengths ??= new Array<number>(MAX_VA_SIZE_PAGES).fill(0);
		else delete n.poolLengths;
	}
	// Every domain is read even after one gave up (`&&=` would skip the rest, leaving figures
	// of an earlier snapshot, and module scratch of another node, in this one).
	let consistent = readDomain(t, HDR_FREE_LOCK, s, FREE, 0, pools);
	consistent = readDomain(t, HDR_SEQ_PURGE, s, PURGE, 0, pools) && consistent;
	let lazyPages = 0;
	for (let v = 0; v < nodes.length; v++) {
		const b = nodeBase(v);
		const n = nodes[v]!;
		consistent = readDomain(t, b + N_BUSY_LOCK, s, BUSY, v, pools) && consistent;
		// The pool domain first: it holds the count of lazy pages purged, which only grows, and
		// is read before the count added (the lazy domain), which is never below it; so
		// vmapLazyNr is never negative (in the other order a purge between the two reads made
		// it so: -46,965 pages, seen in a timeline of vmap test).
		consistent = readDomain(t, b + N_POOL_LOCK, s, POOL, v, pools) && consistent;
		consistent = readDomain(t, b + N_LAZY_LOCK, s, LAZY, v, pools) && consistent;
		n.lazyAreas = scratch[S_LISTED]! + scratch[S_BATCHED]!;
		lazyPages += scratch[S_ADDED]! - scratch[S_PURGED]!;
		s.busyAreas += n.busyAreas;
		s.busyBytes += n.busyBytes;
		s.lazyAreas += n.lazyAreas;
		s.allocs += scratch[S_ALLOCS]!;
		s.frees += scratch[S_FREES]!;
		s.purgedAreas += n.purgedAreas;
		s.poolAreas += n.poolAreas;
		s.poolBytes += n.poolBytes;
		s.poolHits += n.poolHits;
		s.poolMisses += n.poolMisses;
	}
	s.vmapLazyNr = lazyPages;
	s.lazyBytes = lazyPages * s.pageSize;
	s.consistent = consistent;
	readSmall(t, s);
	return s;
}
