/**
 * Listings: /proc/vmallocinfo in the kernel's shape, and a JSON dump in the spirit of VMA's
 * stats string. They are O(n) and belong to diagnostics, not hot paths.
 *
 * They walk the address trees in chunks (kernel vmalloc_info_show walks node by node under each
 * node's lock): a chunk reads at most CHUNK_AREAS records of one tree, without a lock when no
 * writer came meanwhile, else holding that tree's locks (a busy lock; a pool and a lazy lock;
 * the free-space lock), and the next chunk goes on from the first record past the last start
 * it read. So other handles wait at most one chunk, whatever the size of the space, and no
 * chunk holds more than one node's locks.
 *
 * Hazard, and the promise kept instead: the listing is consistent within each chunk, not as a
 * whole. While other handles work, an area that changes state between two chunks may be
 * listed in both states (the second listing of a start is dropped) or in neither. On a still
 * space (one thread, or between phases) it is exact. check() needs the whole at one instant
 * and reads a copy instead (snapshot.ts).
 */
import type { DumpSmallBlock, VmapStats } from "../api/types.ts";
import { corrupt } from "../api/errors.ts";
import { nextTurn } from "../util/event-loop.ts";
import { BATCH_SLOTS, HDR_FREE_LOCK, HDR_FREE_NR, HDR_FREE_ROOT, HDRF_BLOCK_BYTES } from "../buffer/layout.ts";
import {
	N_BUSY_LOCK,
	N_BUSY_NR,
	N_BUSY_ROOT,
	N_LAZY_LOCK,
	N_LAZY_NR,
	N_LAZY_ROOT,
	N_POOL_LOCK,
	nodeBase,
	purgeTree,
} from "../buffer/node-layout.ts";
import { seqRead, seqSame } from "../buffer/lock.ts";
import { blockStartOf, D_DIRTY_NR, freeSlots, liveSlots, D_OWNER, D_REMOTE_NR, D_TAG, D_SLOTS, slotBytesOf } from "../small/descriptor.ts";
import { eachBlock } from "../small/block-index.ts";
import type { SpaceState } from "../core/state.ts";
import { TextWriter } from "../util/text-writer.ts";
import { NO_ROWS, Rows } from "./rows.ts";
import { vaEnd, vaOwner, vaLeft, vaParent, vaRight, vaStart, vaTag } from "../buffer/record.ts";
import type { VaTable } from "../buffer/va-table.ts";

/** Records one chunk reads: tens of microseconds at a million areas (cache-missing loads). */
export const CHUNK_AREAS = 256;
/** Deeper than any red-black tree of 2^30 records (2 log2 n), so a longer path is a half-done change. */
const MAX_DEPTH = 64;
/** The async listings give the event loop a turn after about this much work. */
const TURN_MS = 4;

/** Whether the tree at `root` is empty, read as a sequence lock reads (lock.ts): no writer held `lock` or `inner` across the read. */
function emptyTree(hdr: Int32Array, lock: number, inner: number, root: number): boolean {
	const outer = seqRead(hdr, lock);
	const under = inner === -1 ? 0 : seqRead(hdr, inner);
	if (outer < 0 || under < 0 || Atomics.load(hdr, root) !== 0) return false;
	return seqSame(hdr, lock, outer) && (inner === -1 || seqSame(hdr, inner, under));
}

/**
 * A row's third cell: an area's tag id and the id of the handle that allocated it, in one
 * number (tag ids are below TAG_MAX, which is below OWNER_UNIT).
 */
const OWNER_UNIT = 2 ** 16;

function label(tag: number, owner: number): number {
	return tag + owner * OWNER_UNIT;
}

function labelTag(label: number): number {
	return label % OWNER_UNIT;
}

export function labelOwner(label: number): number {
	return Math.floor(label / OWNER_UNIT);
}

/** What a listing read: busy and lazy areas (each with its label), free blocks (label 0), each in address order. */
export interface Listing {
	busy: Rows;
	lazy: Rows;
	free: Rows;
}

/**
 * Read the busy and lazy areas, and with `{ free: true }` the free blocks, one chunk per step
 * of the generator (yielding between chunks, holding no lock).
 */
export function* listAreas(s: SpaceState, { free }: { free: boolean }): Generator<void, Listing> {
	const busy: Rows[] = [];
	const lazy: Rows[] = [];
	for (let v = 0; v < s.nodes; v++) {
		const b = nodeBase(v);
		busy.push(yield* treeChunks(s, b + N_BUSY_LOCK, -1, b + N_BUSY_ROOT, s.table.hdr[b + N_BUSY_NR]!));
	}
	for (let v = 0; v < s.nodes; v++) {
		const b = nodeBase(v);
		// A purge moves a lazy tree to a purge tree: lazy first, so that a move is seen twice, not missed.
		lazy.push(yield* treeChunks(s, b + N_POOL_LOCK, b + N_LAZY_LOCK, b + N_LAZY_ROOT, s.table.hdr[b + N_LAZY_NR]!));
		for (let k = 0; k < BATCH_SLOTS; k++)
			lazy.push(yield* treeChunks(s, b + N_POOL_LOCK, b + N_LAZY_LOCK, purgeTree(v, k), s.table.hdr[purgeTree(v, k) + 1]!));
	}
	const blocks = free ? yield* treeChunks(s, HDR_FREE_LOCK, -1, HDR_FREE_ROOT, s.table.hdr[HDR_FREE_NR]!) : new Rows();
	return { busy: mergeRuns(busy), lazy: mergeRuns(lazy), free: blocks };
}

/**
 * The records of the tree rooted at `root`, in address order, CHUNK_AREAS at a time, each
 * chunk consistent under `lock` (and `inner`, if not -1, taken under it). `count`: how many it
 * holds, read without the lock (room is made for them at once: one allocation, not one per
 * doubling).
 *
 * A chunk is first read without the locks, and kept if neither lock word moved meanwhile (they
 * count acquisitions, lock.ts: no writer touched the tree). Otherwise it is read again under
 * the locks; the first read has brought its records into the cache, so that hold is short
 * (a hold that walks cold records at a million areas lasted long enough for the scheduler to
 * preempt the holder inside it, and other workers then waited for a whole time slice).
 */
function* treeChunks(s: SpaceState, lock: number, inner: number, root: number, count: number): Generator<void, Rows> {
	// An empty tree, its root word read between two equal, even reads of its lock words (no
	// writer inside: a tree being moved is never read as empty on both sides): no rows to make.
	if (count === 0 && emptyTree(s.table.hdr, lock, inner, root)) return NO_ROWS;
	const locks = s.locks;
	const t = s.table;
	const into = new Rows(count + CHUNK_AREAS);
	let from = -Infinity;
	for (;;) {
		into.reserve(3 * CHUNK_AREAS); // before the locks: see Rows
		t.sync();
		const hdr = t.hdr;
		const outerSeq = seqRead(hdr, lock);
		const innerSeq = inner === -1 ? 0 : seqRead(hdr, inner);
		let n = outerSeq >= 0 && innerSeq >= 0 ? walkChunk(t, root, from, into) : -1;
		// A writer came meanwhile: read it again under the locks.
		if (n >= 0 && !(seqSame(hdr, lock, outerSeq) && (inner === -1 || seqSame(hdr, inner, innerSeq)))) n = -1;
		if (n < 0) {
			locks.acquire(lock);
			if (inner !== -1) locks.acquireUnder(inner, lock); // a wait that fails releases `lock` too
			try {
				t.sync();
				n = walkChunk(t, root, from, into);
				if (n < 0) corrupt(`listing: the tree rooted at header word ${root} is not a search tree; check() says more`);
			} finally {
				// The next chunk takes them again at once.
				if (inner !== -1) locks.releaseToWaiter(inner);
				locks.releaseToWaiter(lock);
			}
		}
		into.n = n;
		from = chunkFrom;
		if (!chunkMore) return into;
		yield;
	}
}

// What walkChunk found besides its rows: whether records follow, and the start to go on from.
// Module scratch, so a chunk creates no objects.
let chunkMore = false;
let chunkFrom = 0;

/**
 * Write up to CHUNK_AREAS records of the tree rooted at `root`, from the lowest start >= `from`,
 * as rows after `into.n` (not counted yet); returns the new row end, or -1 when what it read
 * is not a search tree: a read without the lock may see a writer's half-done change, so every
 * slot, every descent and every climb is bounded, and starts must rise.
 */
function walkChunk(t: VaTable, root: number, from: number, into: Rows): number {
	const f64 = t.f64;
	const i32 = t.i32;
	const cap = t.capacity;
	let found = 0;
	let node = t.hdr[root]!;
	for (let depth = 0; node !== 0; depth++) {
		if (depth > MAX_DEPTH || !(node > 0 && node < cap)) return -1;
		if (vaStart(f64, node) >= from) {
			found = node;
			node = vaLeft(i32, node);
		} else node = vaRight(i32, node);
	}
	const a = into.a;
	const tagged = root !== HDR_FREE_ROOT; // a free block's word 2 is its subtreeMaxSize
	let n = into.n;
	let last = from - 1;
	let va = found;
	for (let k = 0; va !== 0 && k < CHUNK_AREAS; k++) {
		const start = vaStart(f64, va);
		if (!(start > last)) return -1;
		a[n] = start;
		a[n + 1] = vaEnd(f64, va);
		a[n + 2] = tagged ? label(vaTag(i32, va), vaOwner(i32, va)) : 0;
		n += 3;
		last = start;
		va = nextInOrder(i32, va, cap);
		if (va < 0) return -1;
	}
	chunkMore = va !== 0;
	chunkFrom = last + 1; // starts are whole numbers
	return n;
}

/** rbNext, bounded: the in-order successor of `x`, 0 after the last, -1 for a slot out of range or a path too long. */
function nextInOrder(i32: Int32Array, x: number, cap: number): number {
	let y = vaRight(i32, x);
	if (y !== 0) {
		for (let depth = 0; ; depth++) {
			if (depth > MAX_DEPTH || !(y > 0 && y < cap)) return -1;
			const l = vaLeft(i32, y);
			if (l === 0) return y;
			y = l;
		}
	}
	let p = vaParent(i32, x);
	for (let depth = 0; p !== 0; depth++) {
		if (depth > MAX_DEPTH || !(p > 0 && p < cap)) return -1;
		if (vaRight(i32, p) !== x) return p;
		x = p;
		p = vaParent(i32, p);
	}
	return 0;
}

/**
 * Merge runs each in address order into one, two at a time, dropping a second listing of a
 * start (an area seen in two chunks, or in two trees as a purge moved it).
 */
function mergeRuns(runs: Rows[]): Rows {
	while (runs.length > 1) {
		const next: Rows[] = [];
		for (let i = 0; i < runs.length; i += 2) next.push(i + 1 < runs.length ? merge(runs[i]!, runs[i + 1]!) : runs[i]!);
		runs = next;
	}
	return runs[0] ?? new Rows();
}

function merge(x: Rows, y: Rows): Rows {
	if (x.n === 0) return y; // one tree's rows hold each start once: nothing to merge or drop
	if (y.n === 0) return x;
	const out = new Rows();
	out.reserve(x.n + y.n);
	const a = x.a;
	const b = y.a;
	const o = out.a;
	let i = 0;
	let j = 0;
	let n = 0;
	let last = -Infinity;
	while (i < x.n || j < y.n) {
		const fromX = j >= y.n || (i < x.n && a[i]! <= b[j]!);
		const src = fromX ? a : b;
		const k = fromX ? i : j;
		if (src[k]! !== last) {
			last = src[k]!;
			o[n] = last;
			o[n + 1] = src[k + 1]!;
			o[n + 2] = src[k + 2]!;
			n += 3;
		}
		if (fromX) i += 3;
		else j += 3;
	}
	out.n = n;
	return out;
}

/** Run a listing to its end, chunk after chunk. */
export function runChunks<T>(g: Generator<void, T>): T {
	for (;;) {
		const r = g.next();
		if (r.done) return r.value;
	}
}

/** Run a listing, giving the event loop a turn whenever about TURN_MS of work has passed. */
export async function runChunksAsync<T>(g: Generator<void, T>): Promise<T> {
	let since = performance.now();
	for (;;) {
		const r = g.next();
		if (r.done) return r.value;
		if (performance.now() - since >= TURN_MS) {
			await nextTurn();
			since = performance.now();
		}
	}
}

type TagName = (id: number) => string;

/**
 * One line per busy area, `0x<start>-0x<end> <size> handle=<id> <tag>`, in address order
 * (the kernel shows the caller where this shows the handle that allocated it); then one
 * `0x<start>-0x<end> <size> unpurged vm_area` line per lazy area, as the kernel lists them
 * after its busy areas.
 */
export function vmallocinfoText(l: Listing, tagName: TagName): string {
	const w = new TextWriter(16 * (l.busy.n + l.lazy.n)); // 48 bytes a line without a tag
	const line = (a: Float64Array, i: number) =>
		w
			.hex16(a[i]!)
			.text("-")
			.hex16(a[i + 1]!)
			.text(" ")
			.int(a[i + 1]! - a[i]!, 7);
	const busy = l.busy.a;
	for (let i = 0; i < l.busy.n; i += 3) {
		const tag = labelTag(busy[i + 2]!);
		const owner = labelOwner(busy[i + 2]!);
		line(busy, i);
		if (owner !== 0) w.text(" handle=").int(owner);
		if (tag !== 0) w.text(" ").text(tagName(tag));
		w.text("\n");
	}
	for (let i = 0; i < l.lazy.n; i += 3) line(l.lazy.a, i).text(" unpurged vm_area\n");
	return w.toString();
}

/** JSON (VmapDump): the space's range, the statistics, every busy and lazy area, every free block, every small-area block. */
export function dumpText(s: SpaceState, l: Listing, stats: VmapStats, tagName: TagName): string {
	const w = new TextWriter(24 * (l.busy.n + l.lazy.n + l.free.n)); // about 70 bytes an area
	w.text(`{"start":`)
		.int(s.start)
		.text(`,"end":`)
		.int(s.end)
		.text(`,"stats":${JSON.stringify(stats)},"areas":[`);
	// Busy and lazy areas in address order: merge the two runs (a start in both: the busy one).
	const b = l.busy.a;
	const z = l.lazy.a;
	let i = 0;
	let j = 0;
	let first = true;
	const area = (a: Float64Array, k: number, state: string) => {
		if (!first) w.text(",");
		first = false;
		w.text(`{"start":`)
			.int(a[k]!)
			.text(`,"end":`)
			.int(a[k + 1]!)
			.text(`,"size":`)
			.int(a[k + 1]! - a[k]!)
			.text(state);
		const tag = labelTag(a[k + 2]!);
		const owner = labelOwner(a[k + 2]!);
		if (tag !== 0) w.text(`,"tag":`).text(JSON.stringify(tagName(tag)));
		if (owner !== 0) w.text(`,"owner":`).int(owner);
		w.text("}");
	};
	while (i < l.busy.n || j < l.lazy.n) {
		if (j >= l.lazy.n || (i < l.busy.n && b[i]! <= z[j]!)) {
			if (j < l.lazy.n && z[j] === b[i]) j += 3;
			area(b, i, `,"state":"busy"`);
			i += 3;
		} else {
			area(z, j, `,"state":"lazy"`);
			j += 3;
		}
	}
	w.text(`],"free":[`);
	const f = l.free.a;
	for (let k = 0; k < l.free.n; k += 3) {
		if (k > 0) w.text(",");
		w.text(`{"start":`)
			.int(f[k]!)
			.text(`,"end":`)
			.int(f[k + 1]!)
			.text(`,"size":`)
			.int(f[k + 1]! - f[k]!)
			.text("}");
	}
	w.text(`],"blocks":${JSON.stringify(smallBlocks(s, tagName))}}`);
	return w.toString();
}

/**
 * The small-area blocks, in address order: each is also one busy area (tag vmap_block). Read
 * without a lock (their counters change without one): each block as it was when read.
 */
function smallBlocks(s: SpaceState, tagName: TagName) {
	const t = s.table;
	t.sync();
	const i32 = t.i32;
	const blocks: DumpSmallBlock[] = [];
	eachBlock(t, (d) => {
		const start = blockStartOf(t.f64, d);
		const remote = i32[d + D_REMOTE_NR]!;
		const tag = i32[d + D_TAG]!;
		blocks.push({
			start,
			end: start + t.hdrF[HDRF_BLOCK_BYTES]!,
			owner: i32[d + D_OWNER]!,
			areaSize: slotBytesOf(t.f64, d),
			slots: i32[d + D_SLOTS]!,
			live: liveSlots(i32, d) - remote,
			lazy: i32[d + D_DIRTY_NR]! + remote,
			free: freeSlots(i32, d),
			...(tag !== 0 && { tag: tagName(tag) }),
		});
	});
	return blocks.sort((a, b) => a.start - b.start);
}
