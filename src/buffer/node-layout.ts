/**
 * The node table's words (kernel struct vmap_node): where each of a node's lock domains sits,
 * and what the records that follow it begin at. The buffer as a whole: layout.ts.
 */
import { JOURNAL_BYTES, JOURNAL_OFFSET, JOURNALS, REC_I32 } from "./layout.ts";

/**
 * One block of NODE_WORDS Int32 words per node (kernel struct vmap_node), from NODE_OFFSET.
 * Word indexes below are relative to the node's base word (nodeBase); Float64 indexes (NF_*)
 * relative to its base / 2. Each of the first four lines is one lock domain:
 *
 * ```
 *  line 0  BUSY_LOCK seq BUSY_ROOT BUSY_NR | busyBytes allocs frees
 *          HASH_FIRST HASH_LOG HASH_OLD_FIRST HASH_OLD_LOG HASH_MOVED
 *          HASH_RETIRED_FIRST                                      busy tree and hash
 *  line 1  LAZY_LOCK seq LAZY_ROOT LAZY_NR | lazyAdded lazyMin lazyMax
 *          LAZY_LAST LAZY_HEAD                                                lazy tree
 *  line 2  POOL_LOCK seq - - POOL_NR | lazyPurged purgedAreas
 *          poolHits poolBytes helperRuns                                         pools
 *  line 3  WORK | poolMisses (free domain) decayedAreas (pool domain)
 *          PURGE[k] root, nr for each of BATCH_SLOTS batches                   purge trees
 *          HASH_RETIRED_LEFT (busy domain)
 *  line 4  PURGE_HEAD[k] for each batch                                   purge trees' lists
 *  then    MAX_VA_SIZE_PAGES pools × [head, tail, len]
 * ```
 *
 * Lazy areas are indexed by address, as the kernel keeps them since 6.9 (vn->lazy.root, a
 * red-black tree, from "[PATCH v3 00/11] Mitigate a vmap lock contention v3", Rezki, 2024):
 * each node's lazy areas are a red-black tree keyed by vaStart, in the records' left, right
 * and parent words (a lazy record is in no other tree), and a list of the same records in
 * address order through their `next` words, from which a recovery rebuilds the tree (its links
 * are not journaled: tree/repair.ts). So find(), free() and resize() of a lazy address take
 * O(log n) under one node's locks, never a scan. A purge moves the whole tree to a purge tree
 * of its batch (one root word, one list head), and then takes it apart lowest area first
 * (purge-node.ts): splicing out the lowest node, the list's head, keeps a search tree valid,
 * with no rebalancing, and its height can only fall, so lookups stay O(log n) while the purge
 * runs and each area leaves in O(1) amortized.
 *
 * Where an area lives (kernel, and the thread of "mm: vmalloc: Offload free_vmap_area_lock lock": three indices kept apart):
 * - busy: in the busy tree of addrToNode(vaStart), and its busy hash;
 * - lazy: in the lazy tree of its vn_id's node if it has one, else of addrToNode(vaStart);
 * - purge tree k: batch k's purge moved the node's lazy tree there; only that purge and its
 *   helpers take it apart, under the pool lock;
 * - pool: in pool (pages - 1) of its vn_id's node, an area of exactly that many pages.
 */
export const NODE_OFFSET = JOURNAL_OFFSET + JOURNALS * JOURNAL_BYTES;
export const NODE_MAX = 128;
/**
 * Pools per node: areas of exactly 1..MAX_VA_SIZE_PAGES pages, of at most POOL_MAX_BYTES
 * (tree/nodes.ts poolable): the kernel's 256 pools of 4 KiB pages, and in a space of smaller
 * pages as many as cover its requests up to 4 KiB (pageSize 1) or 64 KiB (pageSize 16).
 */
export const MAX_VA_SIZE_PAGES = 4096;
export const N_BUSY_LOCK = 0;
export const N_BUSY_ROOT = 2;
export const N_BUSY_NR = 3;
export const NF_BUSY_BYTES = 2;
export const NF_ALLOCS = 3;
export const NF_FREES = 4;
/**
 * The busy hash (busy-hash.ts), under the busy lock: the first record and log2 of the bucket
 * count of the table (log 0: none yet), of the old table being moved into it (log 0: none) and
 * how many of its buckets have moved, and the first record of a retired table and how many of
 * its records are still to give back (N_HASH_RETIRED_LEFT sits in line 3, read only by
 * allocations holding the free-space lock).
 */
export const N_HASH_FIRST = 10;
export const N_HASH_LOG = 11;
export const N_HASH_OLD_FIRST = 12;
export const N_HASH_OLD_LOG = 13;
export const N_HASH_MOVED = 14;
export const N_HASH_RETIRED_FIRST = 15;
export const N_HASH_RETIRED_LEFT = 62;
export const N_LAZY_LOCK = 16;
/** Root of the lazy tree (red-black, keyed by vaStart): areas freed lazily, not yet taken by a purge. */
export const N_LAZY_ROOT = 18;
export const N_LAZY_NR = 19;
/**
 * The lazy tree's last record (highest vaStart), 0 when empty: frees in rising address order
 * (the common case: lowest-fit allocations freed in turn) link there without a descent.
 */
export const N_LAZY_LAST = 26;
/**
 * The first record of the lazy tree's list: its records in address order through their `next`
 * words (a lazy record is on no other list), so that a recovery rebuilds the tree from it
 * (tree/repair.ts) and its links need no journal.
 */
export const N_LAZY_HEAD = 27;
/**
 * Pages ever freed lazily on this node. vmap_lazy_nr is the sum over nodes of LAZY_ADDED -
 * LAZY_PURGED: two counters, since frees and purges hold different locks.
 */
export const NF_LAZY_ADDED = 10;
/** Lowest vaStart and highest vaEnd in the lazy tree (+-Infinity when empty): the incremental flush range. */
export const NF_LAZY_MIN = 11;
export const NF_LAZY_MAX = 12;
export const N_POOL_LOCK = 32;
/**
 * The purge trees, one per batch: the lazy tree a purge took, flushed or being flushed, not
 * yet purged. Batch k's root is at N_PURGE + 2k, its number of areas right after (purgeTree()).
 */
export const N_PURGE = 54;
/** The first record of batch k's purge tree's list (the lazy tree's list it took), at N_PURGE_HEAD + k. */
export const N_PURGE_HEAD = 64;
/** Areas in all of this node's pools. */
export const N_POOL_NR = 36;
/** Pages ever purged from this node's purge trees (into a pool or free space). */
export const NF_LAZY_PURGED = 19;
export const NF_PURGED_AREAS = 20;
export const NF_POOL_HITS = 21;
export const NF_POOL_BYTES = 22;
/** Purges of this node's list that a helper did. */
export const NF_HELPER_RUNS = 23;
/** Purge work handoff: 0 none, -1 posted for a helper, else the id of the handle doing it. */
export const N_WORK = 48;
/** [free domain] Pool-path allocations that found no area in this node's pool. */
export const NF_POOL_MISSES = 25;
/** [pool domain] Areas decay moved from this node's pools back to free space. */
export const NF_DECAYED = 26;
/** Word offset, within the node block, of its MAX_VA_SIZE_PAGES pools (POOL_WORDS each). */
export const N_POOL_TABLE = 80;
export const POOL_WORDS = 3;
export const POOL_HEAD = 0;
export const POOL_TAIL = 1;
export const POOL_LEN = 2;
export const NODE_WORDS = N_POOL_TABLE + MAX_VA_SIZE_PAGES * POOL_WORDS;

/** First Int32 word of node `v`'s block (within a view from byte 0). */
export function nodeBase(v: number): number {
	return NODE_OFFSET / 4 + v * NODE_WORDS;
}

/** Word of the root of node `v`'s purge tree of batch `k` (its number of areas is the next word). */
export function purgeTree(v: number, k: number): number {
	return nodeBase(v) + N_PURGE + 2 * k;
}

/** Word of the first record of node `v`'s purge tree of batch `k`'s list. */
export function purgeHead(v: number, k: number): number {
	return nodeBase(v) + N_PURGE_HEAD + k;
}

/** Byte offset of the extension region for a space of `nodes` nodes. */
export function extOffset(nodes: number): number {
	return NODE_OFFSET + nodes * NODE_WORDS * 4;
}

/** Byte offset of record 0 for a space of `nodes` nodes and `extWords` extension words (whole cache lines). */
export function recordsOffset(nodes: number, extWords: number): number {
	return extOffset(nodes) + Math.ceil(extWords / 16) * 64;
}

/** log2 of the buckets of a node's first busy hash table, made with the space (busy-hash.ts). */
export const HASH_MIN_LOG = 5;
/** Records one first table takes (its buckets packed REC_I32 to a record). */
export const HASH_FIRST_RECORDS = Math.ceil(2 ** HASH_MIN_LOG / REC_I32);
/**
 * Records the busy hashes may hold beyond maxAreas: every node's first table, and an eighth (a
 * hash takes a tenth of its areas' records at most, and an old table while it moves).
 */
export const hashBudget = (maxAreas: number, nodes: number): number => nodes * HASH_FIRST_RECORDS + Math.ceil(maxAreas / 8);
