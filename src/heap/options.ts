/** Checking VmapHeap.create()'s options: every wrong value is EINVAL, naming the option. */
import type { FlushHook } from "../api/types.ts";
import { shown, VmapError } from "../api/errors.ts";
import { validateOptions, isPowerOfTwo, parseSpaceOptions, type SpaceParams } from "../core/options.ts";

export interface VmapHeapOptions {
	/** Bytes of data to start with; a multiple of pageSize. */
	size: number;
	/** Bytes the data may grow to (the address space's end), at most 2^32. @defaultValue size */
	maxSize?: number;
	/** Power of two, at least 8 (every area can hold Float64 views). @defaultValue 4096 */
	pageSize?: number;
	/** Unused pages after every vmalloc area; 0 is the kernel's VM_NO_GUARD. @defaultValue 1 */
	guardPages?: number;
	/** Fill freed bytes with 0x6b and check them when handed out again (to catch writes after free). @defaultValue false */
	poison?: boolean;
	/** Areas freeDeferred may hold waiting for grace periods (16 bytes each). @defaultValue 16384 */
	deferredMax?: number;
	/** As for VmapSpace.create. */
	nodes?: number;
	lazyMaxPages?: number;
	maxAreas?: number;
	flush?: FlushHook;
	priorityPurge?: boolean;
	timeoutMs?: number;
	/**
	 * vmalloc() on a heap without poisoning takes areas of at most this many bytes (guard pages
	 * included), with `align` at most pageSize, from the handle's small-area blocks of its tag
	 * (VmapSpaceOptions.smallMax).
	 */
	smallMax?: number;
}

export interface HeapParams {
	/** The space: [pageSize, maxSize), shared. */
	space: SpaceParams;
	size: number;
	maxSize: number;
	guardPages: number;
	poison: boolean;
	/** deferredMax: entries of the deferred-free ring. */
	ringCap: number;
}

const HEAP_KEYS = [
	"size",
	"maxSize",
	"pageSize",
	"guardPages",
	"poison",
	"deferredMax",
	"nodes",
	"lazyMaxPages",
	"maxAreas",
	"flush",
	"priorityPurge",
	"timeoutMs",
	"smallMax",
] as const;
/** The most data a SharedArrayBuffer may grow to in Node 20 (V8). */
export const MAX_DATA = 2 ** 32;

/** The options with defaults filled in; throws EINVAL on the first wrong one. */
export function parseHeapOptions(options: VmapHeapOptions): HeapParams {
	if (options === undefined)
		throw new VmapError("EINVAL", "Cannot create a heap: options must be an object like { size, maxSize }, got undefined");
	validateOptions(options, HEAP_KEYS, "Cannot create a heap");
	const pageSize = options.pageSize ?? 4096;
	if (!isPowerOfTwo(pageSize) || pageSize < 8)
		throw new VmapError("EINVAL", `Cannot create a heap: pageSize must be a power of two, at least 8, got ${shown(pageSize)}`);
	const size = options.size;
	const maxSize = options.maxSize ?? size;
	if (!Number.isSafeInteger(size) || size < 2 * pageSize || size % pageSize !== 0) {
		throw new VmapError(
			"EINVAL",
			`Cannot create a heap: size must be a multiple of pageSize ${pageSize}, at least two pages, got ${shown(size)}`,
		);
	}
	if (!Number.isSafeInteger(maxSize) || maxSize < size || maxSize > MAX_DATA || maxSize % pageSize !== 0) {
		throw new VmapError(
			"EINVAL",
			`Cannot create a heap: maxSize must be a multiple of pageSize ${pageSize} from size ${size} to 2^32, got ${shown(maxSize)}`,
		);
	}
	const guardPages = options.guardPages ?? 1;
	if (!Number.isSafeInteger(guardPages) || guardPages < 0 || guardPages > 16) {
		throw new VmapError("EINVAL", `Cannot create a heap: guardPages must be a whole number from 0 to 16, got ${shown(guardPages)}`);
	}
	const poison = options.poison ?? false;
	if (typeof poison !== "boolean")
		throw new VmapError("EINVAL", `Cannot create a heap: poison must be true or false, got ${shown(poison)}`);
	const ringCap = options.deferredMax ?? 16384;
	if (!Number.isSafeInteger(ringCap) || ringCap < 1 || ringCap > 2 ** 20) {
		throw new VmapError("EINVAL", `Cannot create a heap: deferredMax must be a whole number from 1 to 2^20, got ${shown(ringCap)}`);
	}
	// Page 0 is never handed out: 0 stays free to mean "no address" in shared structures.
	const space = parseSpaceOptions(
		{
			start: pageSize,
			size: maxSize - pageSize,
			pageSize,
			shared: true,
			...(options.nodes !== undefined && { nodes: options.nodes }),
			...(options.lazyMaxPages !== undefined && { lazyMaxPages: options.lazyMaxPages }),
			...(options.maxAreas !== undefined && { maxAreas: options.maxAreas }),
			...(options.flush !== undefined && { flush: options.flush }),
			...(options.priorityPurge !== undefined && { priorityPurge: options.priorityPurge }),
			...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
			...(options.smallMax !== undefined && { smallMax: options.smallMax }),
		},
		"a heap",
	);
	return { space, size, maxSize, guardPages, poison, ringCap };
}
