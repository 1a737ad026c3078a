/**
 * The buffer layer (src/buffer/): the words of the one buffer and every access to them that is
 * not a tree or a protocol of its own: this drawing and its constants, a node's words
 * (node-layout.ts), the record accessors (record.ts), the record table and its growth
 * (va-table.ts), the locks and the purge counters' sequence word (lock.ts), the tag table
 * (tags.ts), the small-area gauges (gauges.ts). It may import only api/. Invariants: below, beside each region.
 *
 * The one buffer that holds a whole space. Every worker that is handed the buffer reads the
 * same header and the same records; nothing about the space lives in JS objects.
 *
 * ```
 *  byte 0            ╒═══ header: Int32 words (HDR_*) and Float64 words (HDRF_*) ═══╕
 *                    │ line 0  MAGIC VERSION CAPACITY ... START END PAGE_SIZE    │ read-mostly
 *  byte 64           │ line 1  FREE_LOCK seq FREE_ROOT ... SLOT_* FREE_BYTES     │ free-space lock
 *  byte 128          │ line 2  BATCH_START[4] BATCH_END[4]                       │ purge batches
 *  byte 192          │ line 3  DRAIN_PURGES PURGE_LOCK seq SEQ_PURGE counters    │ purge mutex
 *  byte 256          │ line 4  more purge counters | TAG_LOCK | BLOCK_* HASH_*   │ purge, tag, free
 *  byte 320          │ line 5  NODES RECORDS_OFFSET EXT_* ZONE_SIZE SMALL_MAX    │ read-mostly
 *  byte 384          │ line 6  WORK                                              │ purge helpers
 *  byte 448          │ line 7  BATCH_OWNER[4] BATCH_GEN[4] BATCH_FLAGS[4]        │ purge batches
 *  byte 512          ├────────────────── tag table ────────────────────────────┤
 *                    │ TAG_MAX entries × TAG_BYTES: [len u8][UTF-8 bytes]      │ entry 0 = no tag
 *  HANDLE_OFFSET     ├────────────────── handle table ─────────────────────────┤
 *                    │ HANDLE_MAX × [state thread remote gen hazard] (i32)     │ id = index + 1
 *  GAUGE_OFFSET      ├── small-area gauges: HANDLE_MAX lines, one writer each ──┤ gauges.ts
 *  JOURNAL_OFFSET    ├────────────────── undo journals ────────────────────────┤
 *                    │ JOURNALS × [owner, -, count (f64), entries...]          │ journal.ts
 *  NODE_OFFSET       ├────────────────── node table ───────────────────────────┤
 *                    │ NODES blocks × NODE_WORDS: locks, busy tree and hash,   │ see below
 *                    │ lazy tree, purge trees, 256 pools                       │
 *  EXT_OFFSET × 4    ├────────────────── extension (EXT_WORDS) ────────────────┤
 *                    │ the heap's shared state (heap/layout.ts); empty for a   │
 *                    │ bare space                                              │
 *  RECORDS_OFFSET    ├────────────────── vmap_area records ────────────────────┤
 *                    │ record 0 (all zero: "none") │ record 1 │ record 2 │ ... │ REC_BYTES each
 *                    ╘═════════════════════════════════════════ grows → ═══════╛
 * ```
 *
 * One record, REC_BYTES = 40 (5 Float64 words = 10 Int32 words):
 *
 * ```
 *  f64 word   0          1          2
 *           ┌──────────┬──────────┬─────────────────────┬──────┬───────┬──────────┬──────┐
 *           │ vaStart  │ vaEnd    │ subtreeMaxSize (free)│ left │ right │ parent|R │ next │
 *           │          │          │ flags │ tag  (busy)  │      │       │          │      │
 *           └──────────┴──────────┴───────┴──────────────┴──────┴───────┴──────────┴──────┘
 *  i32 word   0-1        2-3        4       5              6      7       8          9
 * ```
 *
 * Invariants:
 * - Slot 0 is never handed out and is never written: it is the nil of every tree and list,
 *   black, with subtreeMaxSize 0.
 * - Word 2 is a union, as in the kernel's vmap_area: a record in the free tree uses it as the
 *   Float64 subtreeMaxSize; a busy, lazy or pooled record uses it as two Int32 words, flags
 *   and tag.
 * - `next` links a free record into the address-ordered free list, a busy record into a
 *   chain of its node's busy hash, a lazy record into its lazy or purge tree's list, a pooled
 *   record into its pool, and an unused record into the slot free list. A record is on at
 *   most one list, and every record in a tree is on the list beside it (repair.ts).
 * - A lazily freed area leaves its busy tree for a lazy tree (flagged VA_LAZY), then a purge
 *   tree, then a pool (VA_POOL) or free space: at every moment it is in exactly one. The busy tree
 *   holds only busy areas, so a backlog of lazy areas never deepens it ("number of lazy pages
 *   directly influence on busy list length": "mm: add priority threshold to __purge_vmap_area_lazy()").
 * - The table grows by appending records (the buffer grows at its end), so a slot number never
 *   changes meaning and nothing is moved.
 *
 * Addresses and sizes are Float64 because spaces go up to 2^53; every value stored is an
 * integer, so Float64 arithmetic on them is exact.
 */
export const MAGIC = 0x766d6170; // "vmap"
export const VERSION = 23;

// ── header, Int32 words ────────────────────────────────────────────────────────────────
export const HDR_MAGIC = 0;
export const HDR_VERSION = 1;
/** Records the table can hold now (buffer bytes beyond the node table / REC_BYTES). */
export const HDR_CAPACITY = 2;
/** Records the table may ever hold: maxAreas, hashBudget(maxAreas) for the busy hash, and record 0. */
export const HDR_MAX_CAPACITY = 3;
/** 1 when the space was created with priorityPurge: false (the free path never purges). */
export const HDR_NO_PRIORITY = 4;
/** Number of tags in the tag table, entry 0 included. */
export const HDR_TAG_NR = 5;
/** Nonzero once a handle was observed to end holding a lock: the id of that handle. The space is then unusable. */
export const HDR_DEAD = 6;
/** The lock word (a header word index) the dead handle held: not a lock itself. */
export const HDR_DEAD_WORD = 7;
/** Root of the free tree (augmented with subtreeMaxSize), keyed by vaStart. */
export const HDR_FREE_ROOT = 18;
/** Lowest free block: head of the address-ordered free list. */
export const HDR_FREE_HEAD = 19;
/** Number of blocks in the free tree. */
export const HDR_FREE_NR = 20;
/** First record never handed out; records [1, SLOT_HIGH) are in use or on the slot free list. */
export const HDR_SLOT_HIGH = 21;
/** Head of the slot free list (linked through `next`), 0 when empty. */
export const HDR_SLOT_FREE = 22;
/** Length of the slot free list. */
export const HDR_SLOT_FREE_NR = 23;
/**
 * Lock words (lock.ts). Each is also the sequence lock of the counters written under it, so
 * that statistics are read without a lock ("vmalloc: use rcu list iterator to reduce
 * vmap_area_lock contention"): bits 0-29 count acquisitions and releases, odd while held; bit 30 (LOCK_WAITERS) is set
 * while a thread sleeps on it. The global ones:
 * - PURGE: the purge mutex, one purge at a time ("mm: vmalloc: Replace purge_lock spinlock with atomic refcount"), held for a whole purge, flush
 *   included; its counters have their own sequence word, HDR_SEQ_PURGE, since readers cannot
 *   wait out a flush;
 * - FREE: the free tree and list, the slot free list and table growth;
 * - TAG: appending to the tag table.
 * Each node has three more (N_POOL_LOCK, N_BUSY_LOCK, N_LAZY_LOCK, see the node table).
 * Lock order: PURGE -> FREE -> POOL[i] -> BUSY[i] -> LAZY[i] -> TAG. A path holds at most one
 * lock of each node kind, except check() and the listings, which take them all in node order.
 */
export const HDR_PURGE_LOCK = 50;
export const HDR_FREE_LOCK = 16;
export const HDR_TAG_LOCK = 70;
/**
 * The block index (small/descriptor.ts), written under the FREE lock and read without one: the
 * first record of its run (0 before the first block), blocks in it, entries in use (blocks and
 * tombstones). SMALL_FLUSHES counts the caches' flushes (Atomics.add). SMALL_LIMBO: the first
 * retired descriptor whose records wait for remote freers to leave (small/limbo.ts), 0 none.
 */
export const HDR_BLOCK_INDEX = 72;
export const HDR_BLOCK_NR = 73;
export const HDR_BLOCK_USED = 74;
export const HDR_SMALL_FLUSHES = 75;
/** The tag id a small area's MARK bit stands for (0: none), set by the layer above (the heap). */
export const HDR_SMALL_MARK_TAG = 76;
/**
 * The busy hashes' records (busy-hash.ts): how many they may hold (node-layout.ts hashBudget(), on
 * top of maxAreas: the tables never take records the areas were promised) and how many they
 * hold now, under the free-space lock.
 */
export const HDR_HASH_BUDGET = 77;
export const HDR_HASH_RECORDS = 78;
export const HDR_SMALL_LIMBO = 79;
export const HDR_SEQ_PURGE = 52; // sequence word of the purge counters (stats.ts)
/**
 * A lock's sequence word sits this many words after the lock word: the holder adds one before
 * it releases, so a lock-free reader that saw it unchanged and the lock free before and after
 * its copy read no write (lock.ts).
 */
export const LOCK_SEQ_OFFSET = 1;
/** Number of nodes (kernel nr_vmap_nodes), fixed at creation. */
export const HDR_NODES = 80;
/** Byte offset of record 0: the node table's size depends on the number of nodes. */
export const HDR_RECORDS_OFFSET = 81;
/**
 * Word offset and length of the extension region between the node table and the records:
 * shared state of a layer built on the space (the heap's, heap/layout.ts); 0 words for a bare
 * space. Its lock words are driven by the space's Locks, so dead holders are detected alike.
 */
export const HDR_EXT_OFFSET = 83;
export const HDR_EXT_WORDS = 86;
/**
 * Purge work posted for helpers and not yet taken (parallel purge, purge.ts); idle handles
 * wait on this word with Atomics.waitAsync. Alone on its line: it is read by every call.
 */
export const HDR_WORK = 96;
/**
 * Batches: a purge detaches the lazy trees into one of BATCH_SLOTS batches (each node keeps a
 * purge tree per batch), releases the purge mutex, flushes, and purges its batch's trees; so
 * up to BATCH_SLOTS flushes are in flight at once and none holds a lock. Per batch:
 * - OWNER: 0 free; the id of the handle that flushes and purges it; BATCH_ORPHAN when that
 *   handle closed or ended before it was done (the next purge adopts it: flushes its range
 *   again and purges it);
 * - GEN: counts the batch's uses; it changes when the batch is done (purge({ sync }) waits
 *   for the batches in flight by watching these words);
 * - FLAGS: BATCH_SKIP_POPULATE for an overflow purge's batch (kernel skip_populate: purged
 *   areas go to free space, not pools, so that the retry finds them);
 * - START, END (Float64): the range its flush covers.
 */
export const BATCH_SLOTS = 4;
export const HDR_BATCH_OWNER = 112;
export const HDR_BATCH_GEN = 116;
export const HDR_BATCH_FLAGS = 120;
/** Float64 words HDRF_BATCH_START + k and HDRF_BATCH_END + k: batch k's flush range (line 2, off the free-space line). */
export const HDRF_BATCH_START = 16;
export const HDRF_BATCH_END = 20;
export const BATCH_ORPHAN = -1;
export const BATCH_SKIP_POPULATE = 1;
export const HDR_WORDS = 128;

// ── header, Float64 words (index into a Float64Array over the whole header) ─────────────
// Each counter names its statistics domain in brackets. A domain's words sit on the lines
// HEADER_LINES gives (test/layout.test.ts checks each word against it), so that a statistics
// reader disturbs those lines only: the free-space domain's one line, the purge domain's three.
export const HDRF_START = 4;
export const HDRF_END = 5;
export const HDRF_PAGE_SIZE = 6;
/** Lazy pages that make a drain due; twice this makes the free path purge itself. */
export const HDRF_LAZY_MAX_PAGES = 7;
/** [free] Bytes in free blocks. */
export const HDRF_FREE_BYTES = 12;
/** [free] Allocations that failed with EBUSY. */
export const HDRF_FAILED = 13;
/** [purge] Purges the free path ran: drains (past lazyMaxPages) and priority purges (at twice it). */
export const HDRF_DRAIN_PURGES = 24;
export const HDRF_PRIORITY_PURGES = 27;
/** [purge] Purges that took a non-empty batch. */
export const HDRF_PURGES = 28;
/** [purge] Calls of the flush hook, and the bytes of the ranges they covered. */
export const HDRF_FLUSHES = 29;
export const HDRF_FLUSHED_BYTES = 30;
/** [purge] Nodes whose purge work a helper (another handle) did. */
export const HDRF_HELPED = 31;
/** [purge] Purges run by an allocation that found no fit. */
export const HDRF_OVERFLOW_PURGES = 32;
/** [purge] Flushes that threw or rejected (their batch went back to the lazy trees). */
export const HDRF_FLUSH_ERRORS = 33;
/** [purge] trim() calls (full decay of every pool). */
export const HDRF_TRIMS = 34;
/** Bytes of one node zone (kernel vmap_zone_size): 16 pages with several nodes. */
export const HDRF_ZONE_SIZE = 42;
/** The timeoutMs option: how long a wait made holding no lock lasts (Infinity: as long as the holder lives). */
export const HDRF_TIMEOUT_MS = 44;
/** The small-area cache (small/): smallMax, the largest request it serves (0: off), and the bytes of one block, a power of two; both fixed at creation. */
export const HDRF_SMALL_MAX = 45;
export const HDRF_BLOCK_BYTES = 46;
export const HEADER_BYTES = 512;

/**
 * The header's 64-byte lines (the drawing above, as data): the words on each, and whose they
 * are. Per-batch words name batch 0's; the other batches' follow it on the same line.
 */
export const HEADER_LINES: ReadonlyArray<{ domain: string; words: readonly string[] }> = [
	{
		domain: "read-mostly",
		words: [
			...[
				"HDR_MAGIC",
				"HDR_VERSION",
				"HDR_CAPACITY",
				"HDR_MAX_CAPACITY",
				"HDR_NO_PRIORITY",
				"HDR_TAG_NR",
				"HDR_DEAD",
				"HDR_DEAD_WORD",
			],
			...["HDRF_START", "HDRF_END", "HDRF_PAGE_SIZE", "HDRF_LAZY_MAX_PAGES"],
		],
	},
	{
		domain: "free-space lock",
		words: [
			"HDR_FREE_LOCK",
			"HDR_FREE_ROOT",
			"HDR_FREE_HEAD",
			"HDR_FREE_NR",
			"HDR_SLOT_HIGH",
			"HDR_SLOT_FREE",
			"HDR_SLOT_FREE_NR",
			"HDRF_FREE_BYTES",
			"HDRF_FAILED",
		],
	},
	{ domain: "purge batches: flush ranges", words: ["HDRF_BATCH_START", "HDRF_BATCH_END"] },
	{
		domain: "purge mutex",
		words: [
			"HDRF_DRAIN_PURGES",
			"HDR_PURGE_LOCK",
			"HDR_SEQ_PURGE",
			"HDRF_PRIORITY_PURGES",
			"HDRF_PURGES",
			"HDRF_FLUSHES",
			"HDRF_FLUSHED_BYTES",
			"HDRF_HELPED",
		],
	},
	{
		domain: "purge counters, the tag lock, the block index and busy hash records (free-space lock)",
		words: [
			...[
				"HDRF_OVERFLOW_PURGES",
				"HDRF_FLUSH_ERRORS",
				"HDRF_TRIMS",
				"HDR_TAG_LOCK",
				"HDR_BLOCK_INDEX",
				"HDR_BLOCK_NR",
				"HDR_BLOCK_USED",
			],
			...["HDR_SMALL_FLUSHES", "HDR_SMALL_MARK_TAG", "HDR_HASH_BUDGET", "HDR_HASH_RECORDS", "HDR_SMALL_LIMBO"],
		],
	},
	{
		domain: "read-mostly",
		words: [
			"HDR_NODES",
			"HDR_RECORDS_OFFSET",
			"HDR_EXT_OFFSET",
			"HDR_EXT_WORDS",
			"HDRF_ZONE_SIZE",
			"HDRF_TIMEOUT_MS",
			"HDRF_SMALL_MAX",
			"HDRF_BLOCK_BYTES",
		],
	},
	{ domain: "purge helpers", words: ["HDR_WORK"] },
	{ domain: "purge batches: owners and generations", words: ["HDR_BATCH_OWNER", "HDR_BATCH_GEN", "HDR_BATCH_FLAGS"] },
];

// ── tag table ──────────────────────────────────────────────────────────────────────────
export const TAG_OFFSET = HEADER_BYTES;
export const TAG_BYTES = 64;
/** Longest tag, in UTF-8 bytes (one byte of each entry holds the length). */
export const TAG_MAX_LEN = TAG_BYTES - 1;
export const TAG_MAX = 1024;

// ── handle table ───────────────────────────────────────────────────────────────────────
/**
 * One entry per attached handle (the kernel's "CPU"): [state, thread, remote, generation, hazard].
 * Ids are entry index + 1, so 0 can mean "nobody" in lock words. `thread`: the worker_threads
 * threadId of the thread that attached (0: Node's main thread; -1: none, a browser), by which
 * watch(worker) finds a worker's handles. `generation` counts the entry's claims: a token (id
 * and generation, VmapSpace.token) never names a later handle that reuses the id.
 * States: FREE (never used, or closed); ALIVE; ENDING (observed to end, locks recovered, end
 * hooks still running: its id, which its areas carry, is not reused yet); DEAD (ended in a
 * section that could not be undone: the space is unusable, the entry never reused).
 */
export const HANDLE_OFFSET = TAG_OFFSET + TAG_MAX * TAG_BYTES;
export const HANDLE_MAX = 1024;
export const HANDLE_WORDS = 5;
export const HANDLE_STATE = 0;
export const HANDLE_THREAD = 1;
/**
 * Frees other handles made into this handle's small-area blocks (Atomics.add, wrapping): the
 * owner's flush looks for them in its blocks only when the count moved (small/owner.ts).
 */
export const HANDLE_REMOTE = 2;
export const HANDLE_GEN = 3;
/** The small-area descriptor (d) this handle frees into as a remote freer, 0 for none: a hazard pointer (small/limbo.ts). */
export const HANDLE_HAZARD = 4;
export const HANDLE_FREE = 0;
export const HANDLE_ALIVE = 1;
export const HANDLE_DEAD = 2;
export const HANDLE_ENDING = 3;

/** Small-area gauges: a cache line per handle entry (gauges.ts). */
export const GAUGE_OFFSET = HANDLE_OFFSET + HANDLE_MAX * HANDLE_WORDS * 4;
export const GAUGE_BYTES = 64;

// ── undo journals (journal.ts) ───────────────────────────────────────────────────────────
/**
 * JOURNALS journals of JOURNAL_BYTES: a line of [owner (Int32: the id of the handle writing
 * it, 0 free), -, count (Float64: words its entries use, or JOURNAL_OVERFLOWED)], then
 * JOURNAL_ENTRIES entries of two Float64 words [key, old value]. Journal id - 1 is handle
 * id's own for ids up to JOURNALS_OWN (its critical sections claim nothing); a handle with a
 * higher id claims one of the others while it holds a lock (lock.ts), waiting when all are.
 */
export const JOURNAL_OFFSET = GAUGE_OFFSET + HANDLE_MAX * GAUGE_BYTES;
export const JOURNALS_OWN = 16;
export const JOURNALS = 24;
export const JOURNAL_ENTRIES = 1024;
export const JOURNAL_BYTES = 64 + 16 * JOURNAL_ENTRIES;
export const JOURNAL_OVERFLOWED = -1;

// ── records ────────────────────────────────────────────────────────────────────────────
export const REC_BYTES = 40;
export const REC_F64 = REC_BYTES / 8;
export const REC_I32 = REC_BYTES / 4;

/** Float64 word offsets within a record. */
export const VA_START = 0;
export const VA_END = 1;
export const VA_SUBTREE_MAX = 2;
/** Int32 word offsets within a record. */
export const VA_FLAGS = 4;
export const VA_TAG = 5;
export const VA_LEFT = 6;
export const VA_RIGHT = 7;
/** Parent slot shifted left by one; bit 0 is set when the node is red. */
export const VA_PARENT = 8;
export const VA_NEXT = 9;

/**
 * Flags of a busy, lazy or pooled record (word VA_FLAGS): the state in the low byte, the
 * node that asked for it (vn_id) encoded as (id + 1) << VN_SHIFT in the next, 0 meaning "no
 * node" (kernel encode_vn_id), and from bit VA_OWNER_SHIFT the id of the handle that
 * allocated it (the kernel's vmallocinfo shows a caller; 0 for a pooled record).
 */
export const VA_BUSY = 1;
export const VA_LAZY = 2;
export const VA_POOL = 4;
export const VA_STATE = 0xff;
/** Flag of a busy area that is a small-area block (small/descriptor.ts): only the cache frees it, when none of its small areas is live. */
export const VA_SMALL_BLOCK = 1 << 30;
/** Flag of a lazy record that holds several freed areas, merged as they were freed (tree/lazy-tree.ts): their starts are not known apart. */
export const VA_MERGED = 1 << 27;
export const VN_SHIFT = 8;
export const VN_MASK = 0xff;
export const VA_OWNER_SHIFT = 16;
export const VA_OWNER_MASK = 0x7ff; // ids 1..HANDLE_MAX (1024): 11 bits

/** Records are slot numbers < 2^30 so that `parent << 1 | red` fits an Int32. */
export const MAX_AREAS_LIMIT = 2 ** 25;
export const DEFAULT_MAX_AREAS = 2 ** 22;
export const INITIAL_CAPACITY = 64;

export const bytesForCapacity = (recordsAt: number, capacity: number): number => recordsAt + capacity * REC_BYTES;
