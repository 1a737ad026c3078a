/**
 * The one buffer that holds a whole space. Every worker that is handed the buffer reads the
 * same header and the same records; nothing about the space lives in JS objects.
 *
 * ```
 *  byte 0            ╒═══ header: Int32 words (HDR_*) and Float64 words (HDRF_*) ═══╕
 *                    │ line 0  MAGIC VERSION CAPACITY ... START END PAGE_SIZE    │ read-mostly
 *  byte 64           │ line 1  FREE_LOCK owner FREE_ROOT ... SLOT_* FREE_BYTES   │ free-space lock
 *  byte 128          │ line 2  BUSY_LOCK owner BUSY_ROOT LAZY_* BUSY_BYTES ...   │ busy lock
 *  byte 192          │ line 3  LAZY_MAX PURGE_LOCK owner SEQ_PURGE PURGE_* ...   │ purge mutex
 *  byte 256          │ line 4  more purge counters, TAG_LOCK                     │
 *  byte 512          ├────────────────── tag table ────────────────────────────┤
 *                    │ TAG_MAX entries × TAG_BYTES: [len u8][UTF-8 bytes]      │ entry 0 = no tag
 *  HANDLE_OFFSET     ├────────────────── handle table ─────────────────────────┤
 *                    │ HANDLE_MAX entries × [state, heartbeat] (Int32)         │ id = index + 1
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
 *   Float64 subtreeMaxSize; a busy or lazy record uses it as two Int32 words, flags and tag.
 * - `next` links a free record into the address-ordered free list, a lazy record into the lazy
 *   list or the purge batch, and an unused record into the slot free list. A record is on at
 *   most one list.
 * - A lazily freed area leaves the busy tree for the lazy list (flagged VA_LAZY), then the
 *   purge batch, then free space: at every moment it is on exactly one of them. The busy tree
 *   holds only busy areas, so a backlog of lazy areas never deepens it (seed 002: "number of
 *   lazy pages directly influence on busy list length").
 * - The table grows by appending records (the buffer grows at its end), so a slot number never
 *   changes meaning and nothing is moved.
 *
 * Addresses and sizes are Float64 because spaces go up to 2^53; every value stored is an
 * integer, so Float64 arithmetic on them is exact.
 */

export const MAGIC = 0x766d6170; // "vmap"
export const VERSION = 3;

// ── header, Int32 words ────────────────────────────────────────────────────────────────
export const HDR_MAGIC = 0;
export const HDR_VERSION = 1;
/** Records the table can hold now (buffer bytes beyond the header / REC_BYTES). */
export const HDR_CAPACITY = 2;
/** Records the table may ever hold (maxAreas + 1 for record 0). */
export const HDR_MAX_CAPACITY = 3;
/** First record never handed out; records [1, SLOT_HIGH) are in use or on the slot free list. */
export const HDR_SLOT_HIGH = 21;
/** Head of the slot free list (linked through `next`), 0 when empty. */
export const HDR_SLOT_FREE = 22;
/** Length of the slot free list. */
export const HDR_SLOT_FREE_NR = 23;
/** Root of the free tree (augmented with subtreeMaxSize), keyed by vaStart. */
export const HDR_FREE_ROOT = 18;
/** Lowest free block: head of the address-ordered free list. */
export const HDR_FREE_HEAD = 19;
/** Number of blocks in the free tree. */
export const HDR_FREE_NR = 20;
/** Root of the busy tree, keyed by vaStart. */
export const HDR_BUSY_ROOT = 34;
/** Number of areas in the busy tree (busy only; lazy areas are on the lazy list or the purge batch). */
export const HDR_BUSY_NR = 35;
/** Number of tags in the tag table, entry 0 included. */
export const HDR_TAG_NR = 5;
/** Lazy list: areas freed lazily and not yet taken by a purge (linked through `next`). */
export const HDR_LAZY_HEAD = 36;
export const HDR_LAZY_NR = 37;
/** The batch a purge took: lazy areas, flushed or being flushed, not yet merged into free space. */
export const HDR_PURGE_HEAD = 53;
export const HDR_PURGE_NR = 54;
/**
 * Lock words (lock.ts). Each is also the sequence lock of the counters written under it (seed
 * 001): bits 0-29 count acquisitions and releases, odd while held; bit 30 (LOCK_WAITERS) is set
 * while a thread sleeps on it. Lock order: PURGE -> BUSY -> FREE -> TAG; no path takes them
 * otherwise.
 * - PURGE: the purge mutex, one purge at a time (seed 000), held for a whole purge, flush
 *   included; its counters have their own sequence word, HDR_SEQ_PURGE, since readers cannot
 *   wait out a flush;
 * - BUSY: the busy tree and the lazy list;
 * - FREE: the free tree and list, the slot free list and table growth, the purge batch's pops;
 * - TAG: appending to the tag table.
 */
export const HDR_PURGE_LOCK = 50;
export const HDR_BUSY_LOCK = 32;
export const HDR_FREE_LOCK = 16;
export const HDR_TAG_LOCK = 70;
/** Sequence word of the purge counters (see stats.ts). */
export const HDR_SEQ_PURGE = 52;
/** The handle id holding a lock sits this many words after the lock word (for waiters' liveness checks). */
export const LOCK_OWNER_OFFSET = 1;
/** Nonzero once a handle died holding a lock: the id of that handle. The space is then unusable. */
export const HDR_DEAD = 6;
/** The lock the dead handle held. */
export const HDR_DEAD_LOCK = 7;
/** 1 when the space was created with priorityPurge: false (the free path never purges). */
export const HDR_NO_PRIORITY = 4;
export const HDR_WORDS = 128;

// ── header, Float64 words (index into a Float64Array over the whole header) ─────────────
// Each counter names its statistics domain in brackets. A domain's lock word, holder, roots
// and counters share one 64-byte line (see the diagram): a statistics reader then disturbs
// one line per domain, and an allocation moves two lines between cores, not four.
export const HDRF_START = 4;
export const HDRF_END = 5;
export const HDRF_PAGE_SIZE = 6;
/** Lazy pages that make a drain due; twice this makes the free path purge itself. */
export const HDRF_LAZY_MAX_PAGES = 7;
/** [free] Bytes in free blocks. */
export const HDRF_FREE_BYTES = 13;
/** [free] Allocations that failed with EBUSY. */
export const HDRF_FAILED = 14;
/** [busy] Bytes in busy (not lazy) areas. */
export const HDRF_BUSY_BYTES = 19;
/** [busy] Successful allocations. */
export const HDRF_ALLOCS = 20;
/** [busy] Frees (each makes one area lazy). */
export const HDRF_FREES = 21;
/**
 * [busy] Pages ever freed lazily. vmap_lazy_nr, the pages freed lazily and not yet merged
 * back, is LAZY_ADDED - LAZY_PURGED: two counters, since frees and purges hold different locks.
 */
export const HDRF_LAZY_ADDED = 22;
/** [busy] Lowest vaStart and highest vaEnd on the lazy list (+-Infinity when empty). */
export const HDRF_LAZY_MIN = 23;
export const HDRF_LAZY_MAX = 24;
/** [purge] Purges that took a non-empty batch. */
export const HDRF_PURGES = 28;
/** [purge] Calls of the flush hook, and the bytes of the ranges they covered. */
export const HDRF_FLUSHES = 29;
export const HDRF_FLUSHED_BYTES = 30;
/** [purge] Areas merged back into free space by purges. */
export const HDRF_PURGED_AREAS = 31;
/** [purge] Purges run by an allocation that found no fit. */
export const HDRF_OVERFLOW_PURGES = 32;
/** [purge] Flushes that threw or rejected (their batch went back to the lazy list). */
export const HDRF_FLUSH_ERRORS = 33;
/** [purge] Pages ever merged back by purges (see HDRF_LAZY_ADDED). */
export const HDRF_LAZY_PURGED = 34;
export const HEADER_BYTES = 512;

// ── tag table ──────────────────────────────────────────────────────────────────────────
export const TAG_OFFSET = HEADER_BYTES;
export const TAG_BYTES = 64;
/** Longest tag, in UTF-8 bytes (one byte of each entry holds the length). */
export const TAG_MAX_LEN = TAG_BYTES - 1;
export const TAG_MAX = 1024;

// ── handle table ───────────────────────────────────────────────────────────────────────
/**
 * One entry per attached handle (the kernel's "CPU"): [state, heartbeat]. Handle ids are
 * entry index + 1, so 0 can mean "nobody" in lock words.
 */
export const HANDLE_OFFSET = TAG_OFFSET + TAG_MAX * TAG_BYTES;
export const HANDLE_MAX = 1024;
export const HANDLE_WORDS = 2;
export const HANDLE_STATE = 0;
export const HANDLE_HEARTBEAT = 1;
export const HANDLE_FREE = 0;
export const HANDLE_ALIVE = 1;

// ── records ────────────────────────────────────────────────────────────────────────────
export const RECORDS_OFFSET = HANDLE_OFFSET + HANDLE_MAX * HANDLE_WORDS * 4;
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

/** Flags of a busy-tree record (word VA_FLAGS). */
export const VA_BUSY = 1;
export const VA_LAZY = 2;

/** Records are slot numbers < 2^30 so that `parent << 1 | red` fits an Int32. */
export const MAX_AREAS_LIMIT = 2 ** 25;
export const DEFAULT_MAX_AREAS = 2 ** 22;
export const INITIAL_CAPACITY = 64;

export function bytesForCapacity(capacity: number): number {
	return RECORDS_OFFSET + capacity * REC_BYTES;
}
