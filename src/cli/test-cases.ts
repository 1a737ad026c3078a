/**
 * The kernel's test_vmalloc cases (lib/test_vmalloc.c), with their ids (run_test_mask bits)
 * and names, on a VmapHeap. Each returns true when it passed; a failed allocation (EBUSY) is a
 * failure, as the kernel's NULL is. Each touches the memory it gets, as the kernel's do.
 */
import { VmapError } from "../api/errors.ts";
import type { VmapHeap } from "../heap/heap.ts";

export interface CaseContext {
	heap: VmapHeap;
	/** test_loop_count */
	loops: number;
	/** nr_pages, at least 1 */
	nrPages: number;
	/** nr_pcpu_objects */
	nrPcpuObjects: number;
	/** A random u32 (each worker its own stream). */
	rnd: () => number;
}

export interface TestCase {
	/** The run_test_mask bit. */
	id: number;
	name: string;
	/** Expected to fail (the kernel's xfail): a failure counts as xfailed. */
	xfail: boolean;
	/** What the case does here, for `vmalloc test --help`. */
	help: string;
	/** The page size of the case's heap, when not the kernel's 4096. */
	pageSize?: number;
	run(c: CaseContext): boolean;
}

/** PAGE_SIZE / 4: the largest object of pcpu_alloc_test, and the page size of its heap. */
const PCPU_UNIT = 1024;

/** THREAD_ALIGN << 1 on x86_64 (THREAD_SIZE 16 KiB), the alignment of fix_align_alloc_test. */
const FIX_ALIGN = 32 * 1024;

/** Run an allocation; undefined where the kernel would get NULL (EBUSY, or an impossible request). */
function tryAlloc(fn: () => number): number | undefined {
	try {
		return fn();
	} catch (e) {
		if (e instanceof VmapError && (e.code === "EBUSY" || e.code === "EINVAL")) return undefined;
		throw e;
	}
}

/**
 * The shape of most kernel cases: `loops` times allocate, write one byte (`value`), let go.
 * False at the first allocation that fails, as the kernel's `if (!ptr) return -1`.
 */
function eachLoop(heap: VmapHeap, loops: number, alloc: () => number, release: (p: number) => void, value = 1): boolean {
	for (let i = 0; i < loops; i++) {
		const p = tryAlloc(alloc);
		if (p === undefined) return false;
		touch(heap, p, value);
		release(p);
	}
	return true;
}

/** Write one byte at `addr`, through the heap's checked view. */
function touch(heap: VmapHeap, addr: number, value = 1): void {
	heap.bytes(addr, 1)[0] = value;
}

export const CASES: TestCase[] = [
	{
		id: 1,
		name: "fix_size_alloc_test",
		xfail: false,
		help: "loop: vmalloc(nr_pages pages), write one byte, vfree",
		run: ({ heap, loops, nrPages }) =>
			eachLoop(
				heap,
				loops,
				() => heap.vmalloc(nrPages * heap.pageSize),
				(p) => heap.vfree(p),
			),
	},
	{
		id: 2,
		name: "full_fit_alloc_test",
		xfail: false,
		help: "lazyMaxPages interleaved pairs of 1-page areas, one of each freed (exact-size holes); loop: 1-page vmalloc, write, vfree",
		run: ({ heap, loops }) => {
			const P = heap.pageSize;
			const junk = heap.space.stats().lazyMaxPages;
			const keep: number[] = [];
			const holes: number[] = [];
			let ok = true;
			for (let i = 0; i < junk && ok; i++) {
				const a = tryAlloc(() => heap.vmalloc(P));
				const b = tryAlloc(() => heap.vmalloc(P));
				if (a !== undefined) keep.push(a);
				if (b !== undefined) holes.push(b);
				ok = a !== undefined && b !== undefined;
			}
			for (const b of holes) heap.vfree(b);
			for (let i = 0; i < loops && ok; i++) {
				const p = tryAlloc(() => heap.vmalloc(P));
				if (p === undefined) ok = false;
				else {
					touch(heap, p);
					heap.vfree(p);
				}
			}
			for (const a of keep) heap.vfree(a);
			return ok;
		},
	},
	{
		id: 4,
		name: "long_busy_list_alloc_test",
		xfail: false,
		help: "15000 1-page areas kept busy; loop: vmalloc(100 pages) and vmalloc(1 page), write both, vfree both",
		run: ({ heap, loops }) => {
			const P = heap.pageSize;
			const busy: number[] = [];
			let ok = true;
			for (let i = 0; i < 15000 && ok; i++) {
				const p = tryAlloc(() => heap.vmalloc(P));
				if (p === undefined) ok = false;
				else busy.push(p);
			}
			for (let i = 0; i < loops && ok; i++) {
				const a = tryAlloc(() => heap.vmalloc(100 * P));
				const b = tryAlloc(() => heap.vmalloc(P));
				if (a !== undefined) {
					touch(heap, a, 0);
					heap.vfree(a);
				}
				if (b !== undefined) {
					touch(heap, b);
					heap.vfree(b);
				}
				ok = a !== undefined && b !== undefined;
			}
			for (const p of busy) heap.vfree(p);
			return ok;
		},
	},
	{
		id: 8,
		name: "random_size_alloc_test",
		xfail: false,
		help: "loop: vmalloc(1..100 pages, uniform), write one byte, vfree",
		run: ({ heap, loops, rnd }) =>
			eachLoop(
				heap,
				loops,
				() => heap.vmalloc((1 + (rnd() % 100)) * heap.pageSize),
				(p) => heap.vfree(p),
			),
	},
	{
		id: 16,
		name: "fix_align_alloc_test",
		xfail: false,
		help: "loop: vzalloc(5 pages) aligned to THREAD_ALIGN << 1 (32 KiB), vfree",
		run: ({ heap, loops }) =>
			eachLoop(
				heap,
				loops,
				() => heap.vzalloc(5 * heap.pageSize, { align: FIX_ALIGN }),
				(p) => heap.vfree(p),
			),
	},
	{
		id: 32,
		name: "random_size_align_alloc_test",
		xfail: false,
		help: "loop: r = random u8; vzalloc((r % 10 + 1) pages) aligned to 1 << (r % 23), vfree",
		run: ({ heap, loops, rnd }) =>
			eachLoop(
				heap,
				loops,
				() => {
					const r = rnd() & 0xff;
					return heap.vzalloc(((r % 10) + 1) * heap.pageSize, { align: 2 ** (r % 23) });
				},
				(p) => heap.vfree(p),
			),
	},
	{
		id: 64,
		name: "align_shift_alloc_test",
		xfail: true,
		help: "for i in 0..63: vzalloc(1 page) aligned to 1 << i; supposed to fail once the alignment outgrows the space (xfail)",
		run: ({ heap }) => {
			for (let i = 0; i < 64; i++) {
				const p = tryAlloc(() => heap.vzalloc(heap.pageSize, { align: 2 ** i }));
				if (p === undefined) return false;
				heap.vfree(p);
			}
			return true;
		},
	},
	{
		id: 128,
		name: "pcpu_alloc_test",
		xfail: false,
		help: "nr_pcpu_objects objects of 1..1024 bytes (PAGE_SIZE / 4), each a one-page vm_map_ram mapping from the worker's blocks on a heap of 1 KiB pages (the kernel's percpu chunks pack small objects; a page each of 4 KiB would hold four times the memory), each written, then all unmapped; not scaled by loops",
		pageSize: PCPU_UNIT,
		run: ({ heap, nrPcpuObjects, rnd }) => {
			const got: number[] = [];
			let ok = true;
			for (let i = 0; i < nrPcpuObjects && ok; i++) {
				const p = tryAlloc(() => heap.vmMapRam(1));
				if (p === undefined) ok = false;
				else {
					// The kernel's object: 1..PAGE_SIZE/4 bytes; write its first and last byte.
					const size = 1 + (rnd() % PCPU_UNIT);
					const b = heap.bytes(p, size);
					b[0] = 1;
					b[size - 1] = 1;
					got.push(p);
				}
			}
			for (const p of got) heap.vmUnmapRam(p, 1);
			return ok;
		},
	},
	{
		id: 256,
		name: "kvfree_rcu_1_arg_vmalloc_test",
		xfail: false,
		help: "loop: vmalloc(1 page), write, freeDeferred (may wait for a grace period when its queue is full, as kvfree_rcu_mightsleep)",
		run: ({ heap, loops }) =>
			eachLoop(
				heap,
				loops,
				() => heap.vmalloc(heap.pageSize),
				(p) => heap.freeDeferred(p),
			),
	},
	{
		id: 512,
		name: "kvfree_rcu_2_arg_vmalloc_test",
		xfail: false,
		help: "loop: vmalloc(1 page), write, freeDeferred({ nowait }) (never waits, as kvfree_rcu with an rcu_head)",
		run: ({ heap, loops }) =>
			eachLoop(
				heap,
				loops,
				() => heap.vmalloc(heap.pageSize),
				(p) => heap.freeDeferred(p, { nowait: true }),
			),
	},
	{
		id: 1024,
		name: "vm_map_ram_test",
		xfail: false,
		help: "loop: vmMapRam(nr_pages), write one byte, vmUnmapRam",
		run: ({ heap, loops, nrPages }) =>
			eachLoop(
				heap,
				loops,
				() => heap.vmMapRam(nrPages),
				(p) => heap.vmUnmapRam(p, nrPages),
				0x61,
			),
	},
	{
		id: 2048,
		name: "no_block_alloc_test",
		xfail: true,
		help: "loop: vmalloc(1 page, { nowait }): no purge, no wait (GFP_NOWAIT / GFP_ATOMIC); a failure is expected under pressure (xfail)",
		run: ({ heap, loops }) => {
			let ok = true;
			for (let i = 0; i < loops; i++) {
				const p = tryAlloc(() => heap.vmalloc(heap.pageSize, { nowait: true }));
				if (p === undefined) ok = false;
				else {
					touch(heap, p);
					heap.vfree(p);
				}
			}
			return ok;
		},
	},
	{
		id: 4096,
		name: "vrealloc_test",
		xfail: false,
		help: "loop: vrealloc 1 page -> 4 pages -> 1 page -> half a page -> 1 page, the first byte checked at each step, vfree",
		run: ({ heap, loops }) => {
			const P = heap.pageSize;
			for (let i = 0; i < loops; i++) {
				let p = tryAlloc(() => heap.vrealloc(0, P));
				if (p === undefined) return false;
				touch(heap, p, 0x61);
				for (const size of [4 * P, P, P / 2, P]) {
					const q: number = p;
					const n = tryAlloc(() => heap.vrealloc(q, size));
					if (n === undefined) {
						heap.vfree(q);
						return false;
					}
					p = n;
					if (heap.bytes(p, 1)[0] !== 0x61) {
						heap.vfree(p);
						return false;
					}
				}
				heap.vfree(p);
			}
			return true;
		},
	},
];

/** Every case's bit: the mask that runs all 13. */
export const ALL_MASK = CASES.reduce((m, c) => m | c.id, 0);
