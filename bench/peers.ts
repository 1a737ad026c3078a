/**
 * The allocators `vmap bench` compares, each behind the same small interface. Peers are
 * devDependencies pinned in package-lock.json; nothing is fetched at run time. Each case runs
 * in a fresh process (bench/child.ts), so one peer's heap or JIT state never colours another's.
 */
import { readFileSync } from "node:fs";
import { MemPool } from "@thi.ng/malloc";
import { NumberAllocator } from "number-allocator";
import { VmapError, VmapHeap, VmapSpace } from "../src/index.ts";
import { FirstFit } from "./peers/first-fit.ts";
import { Lifo } from "./peers/lifo.ts";
import { loadSmo } from "./peers/smo.ts";

/** One allocator as the workloads see it. */
export interface Subject {
	/** An address, or 0 when the allocator has no room. */
	alloc(size: number): number;
	free(addr: number): void;
	/** The allocator's own validator, where it has one (throws on damage). */
	check(): void;
	/** The lowest address it can return; spans are measured from here. */
	readonly base: number;
	/** Addresses it may return lie in [base, limit). */
	readonly limit: number;
	/** Figures only this peer has (number-allocator's leaked IDs), read after the run. */
	audit?(live: number): Record<string, number>;
	/** vmap's space, for the pictures of `vmap bench --viz`. */
	space?: VmapSpace;
}

export type PeerId =
	| "vmap"
	| "vmap-nocache"
	| "vmap-tagged"
	| "vmap-1m"
	| "vmap-heap"
	| "thi.ng"
	| "smo"
	| "smo-heap"
	| "number-allocator"
	| "first-fit"
	| "lifo";

export interface Peer {
	id: PeerId;
	/** Row label: package and version, or what it is. */
	name: string;
	/** Short label for the chart. */
	label: string;
	/** "ids": sizes are ignored and every allocation is one unit (number-allocator). */
	unit: "bytes" | "ids";
	/** O(n) per operation: runs get a capped op count and a time limit. */
	linear: boolean;
	/** What the reader must know to read its row. */
	note: string;
	/** Builds the allocator for a run holding about `live` allocations of up to `maxSize` bytes. */
	make(live: number, maxSize: number, w0?: boolean): Subject | Promise<Subject>;
}

/** The installed version (package.json "exports" of some peers hide their package.json from require). */
const version = (pkg: string): string =>
	(JSON.parse(readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url), "utf8")) as { version: string }).version;

/**
 * Bytes for a byte allocator's pool: room for `live` areas of up to maxSize, below 4 GiB
 * (thi.ng keeps its end in a Uint32 word, so 2^32 itself would wrap to 0).
 */
function poolBytes(live: number, maxSize: number): number {
	return Math.min(2 ** 32 - 2 ** 16, Math.max(64 * 2 ** 20, 2 ** Math.ceil(Math.log2(live * maxSize * 1.25 + 32 * 2 ** 20))));
}

/** VmapError EBUSY (nothing fits) is the failure the workloads count; anything else breaks the run. */
function busy(e: unknown): number {
	if (e instanceof VmapError && e.code === "EBUSY") return 0;
	throw e;
}

/** The part of @thi.ng/malloc's MemPool, and of its fork's MemoryBuffer, that the bench uses. */
interface Pool {
	malloc(n: number): number;
	free(addr: number): boolean;
}

function poolSubject(pool: Pool, bytes: number): Subject {
	return {
		alloc: (n) => pool.malloc(n),
		free(a) {
			if (!pool.free(a)) throw new Error(`free(${a}) returned false for an address malloc returned`);
		},
		check: () => {},
		base: 1,
		limit: bytes,
	};
}

/** A vmap call as a Subject's alloc: EBUSY (nothing fits) becomes 0. */
function orZero(alloc: (n: number) => number): (n: number) => number {
	return (n) => {
		try {
			return alloc(n);
		} catch (e) {
			return busy(e);
		}
	};
}

/**
 * A VmapSpace with pageSize 1 (sizes in bytes). `smallMax` undefined keeps the default (the
 * small-area cache on, for requests up to 4096 B). W0 passes `lazyMaxBytes` 1 MiB so that its
 * 64 MB of frees purge (at the default 32 MiB they stay under the priority threshold).
 */
function spaceSubject(lazyMaxBytes: number | undefined, smallMax: number | undefined, tag?: string): Subject {
	const options = { tag: tag ?? "" }; // one object for every call, as a program passes a constant
	const s = VmapSpace.create({
		start: 1,
		size: 2 ** 40,
		pageSize: 1,
		shared: true,
		nodes: 1,
		...(lazyMaxBytes !== undefined && { lazyMaxPages: lazyMaxBytes }),
		...(smallMax !== undefined && { smallMax }),
	});
	return {
		space: s,
		alloc: orZero(tag === undefined ? (n) => s.alloc(n) : (n) => s.alloc(n, options)),
		free: (a) => s.free(a),
		check: () => s.check(),
		base: 1,
		limit: 1 + 2 ** 40,
		audit() {
			s.purge(); // this handle's small-area cache flushes only when it must
			const st = s.stats();
			return { purges: st.purges, flushes: st.flushes + st.smallFlushes, smallBlocks: st.smallBlocks };
		},
	};
}

/** The lazyMaxPages (bytes, pageSize 1) of vmap's W0 spaces: 64 MB of frees purge about 32 times. */
export const W0_LAZY_BYTES = 2 ** 20;

/** number-allocator over the IDs 1..max. */
export function numberSubject(max: number): Subject {
	const a = new NumberAllocator(1, max);
	return {
		alloc: () => a.alloc() ?? 0,
		free: (n) => a.free(n),
		check: () => {},
		base: 1,
		limit: max + 1,
		audit(live) {
			// IDs neither live nor vacant were lost by free() (js-allocators.md section 4).
			let vacant = 0;
			for (const iv of (a as unknown as { ss: Iterable<{ low: number; high: number }> }).ss) vacant += iv.high - iv.low + 1;
			return { leakedIds: max - live - vacant };
		},
	};
}

export const PEERS: Peer[] = [
	{
		id: "vmap",
		name: "vmap VmapSpace",
		label: "vmap VmapSpace",
		unit: "bytes",
		linear: false,
		note: "pageSize 1, nodes 1, lazy free (32 MiB lazily freed before a purge; W0 1 MiB), small-area cache on (smallMax 4096: requests up to 4096 B from per-handle blocks); addresses only, no bytes behind them",
		make: (_live, _max, w0) => spaceSubject(w0 ? W0_LAZY_BYTES : undefined, undefined),
	},
	{
		id: "vmap-nocache",
		name: "vmap VmapSpace, smallMax 0",
		label: "vmap VmapSpace, no cache",
		unit: "bytes",
		linear: false,
		note: "as above with the small-area cache off: every request takes the lowest fit in the free tree",
		make: (_live, _max, w0) => spaceSubject(w0 ? W0_LAZY_BYTES : undefined, 0),
	},
	{
		id: "vmap-tagged",
		name: "vmap VmapSpace, tagged",
		label: "vmap VmapSpace, tagged",
		unit: "bytes",
		linear: false,
		note: "as the first row, every allocation with { tag } (a tag stays on the small-area cache: blocks per tag and size class)",
		make: (_live, _max, w0) => spaceSubject(w0 ? W0_LAZY_BYTES : undefined, undefined, "bench"),
	},
	{
		id: "vmap-1m",
		name: "vmap VmapSpace, lazyMaxPages 1 MiB",
		label: "vmap VmapSpace, lazy 1 MiB",
		unit: "bytes",
		linear: false,
		note: "as above, but a purge once 1 MiB is lazily freed: more flushes, less address space held by freed ranges",
		make: () => spaceSubject(2 ** 20, undefined),
	},
	{
		id: "vmap-heap",
		name: "vmap VmapHeap",
		label: "vmap VmapHeap",
		unit: "bytes",
		linear: false,
		note: "pageSize 8, guardPages 0, nodes 1: a space plus a growable SharedArrayBuffer of data, lazy free; vmalloc without options takes small areas (the cache on, smallMax 4096)",
		make(live, maxSize) {
			const maxBytes = poolBytes(live, maxSize);
			const h = VmapHeap.create({ size: 64 * 2 ** 20, maxSize: maxBytes, pageSize: 8, guardPages: 0, nodes: 1 });
			return {
				space: h.space,
				alloc: orZero((n) => h.vmalloc(n)),
				free: (a) => h.vfree(a),
				check: () => h.check(),
				base: 8,
				limit: maxBytes,
			};
		},
	},
	{
		id: "thi.ng",
		name: `@thi.ng/malloc ${version("@thi.ng/malloc")}`,
		label: "@thi.ng/malloc",
		unit: "bytes",
		linear: true,
		note: "MemPool over an ArrayBuffer, align 8, split and compact on (defaults); free searches the used list",
		make(live, maxSize) {
			const bytes = poolBytes(live, maxSize);
			return poolSubject(new MemPool({ buf: new ArrayBuffer(bytes), align: 8 }), bytes);
		},
	},
	{
		id: "smo",
		name: `shared-memory-objects ${version("@daneren2005/shared-memory-objects")} MemoryBuffer`,
		label: "shared-memory-objects MemoryBuffer",
		unit: "bytes",
		linear: true,
		note: "@daneren2005's locked fork of thi.ng over a SharedArrayBuffer, align 8, defaults (split and compact on)",
		async make(live, maxSize) {
			const { MemoryBuffer } = await loadSmo();
			const bytes = poolBytes(live, maxSize);
			return poolSubject(new MemoryBuffer({ buf: new SharedArrayBuffer(bytes), align: 8 }), bytes);
		},
	},
	{
		id: "smo-heap",
		name: `shared-memory-objects ${version("@daneren2005/shared-memory-objects")} MemoryHeap`,
		label: "shared-memory-objects MemoryHeap",
		unit: "bytes",
		linear: true,
		note: "the package's multi-buffer heap, the API its README shows (allocUI32); addresses are its 32-bit pointers",
		async make() {
			const { MemoryHeap } = await loadSmo();
			const heap = new MemoryHeap();
			const held = new Map<number, { free(): void }>();
			return {
				alloc(n) {
					const m = heap.allocUI32(Math.ceil(n / 4));
					held.set(m.pointer, m);
					return m.pointer;
				},
				free(a) {
					held.get(a)!.free();
					held.delete(a);
				},
				check: () => {},
				base: 0,
				limit: 2 ** 32,
			};
		},
	},
	{
		id: "number-allocator",
		name: `number-allocator ${version("number-allocator")}`,
		label: "number-allocator (single IDs)",
		unit: "ids",
		linear: false,
		note: "single IDs from 1..2^30 (sizes ignored: spans and live counts are in IDs); lowest free ID first",
		make: () => numberSubject(2 ** 30),
	},
	{
		id: "first-fit",
		name: "linear first-fit (bench/peers/first-fit.ts)",
		label: "linear first-fit",
		unit: "bytes",
		linear: true,
		note: "sorted free-range arrays scanned from the bottom, merged on free; a Map of busy sizes",
		make(live, maxSize) {
			const bytes = poolBytes(live, maxSize);
			const f = new FirstFit(1, bytes);
			return { alloc: (n) => f.alloc(n), free: (a) => f.free(a), check: () => f.check(), base: 1, limit: 1 + bytes };
		},
	},
	{
		id: "lifo",
		name: "typed-array LIFO (bench/peers/lifo.ts)",
		label: "typed-array LIFO (ceiling)",
		unit: "bytes",
		linear: false,
		note: "the ceiling: a stack of fixed slots of maxSize bytes, no search, no merge, no checks; every size takes a whole slot",
		make(live, maxSize) {
			const slots = Math.ceil(live * 1.02) + 1_200;
			const l = new Lifo(maxSize, slots);
			return { alloc: (n) => l.alloc(n), free: (a) => l.free(a), check: () => {}, base: maxSize, limit: (slots + 1) * maxSize };
		},
	},
];

export function peer(id: string): Peer {
	const p = PEERS.find((x) => x.id === id);
	if (!p) throw new Error(`no bench peer ${JSON.stringify(id)}; peers: ${PEERS.map((x) => x.id).join(", ")}`);
	return p;
}
