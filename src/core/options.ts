/** Checking VmapSpace.create()'s options: every wrong value is EINVAL, naming the option. */
import type { FlushHook, PurgeOptions, VmapSpaceOptions } from "../api/types.ts";
import { hex, shown, VmapError } from "../api/errors.ts";
import { DEFAULT_MAX_AREAS, MAX_AREAS_LIMIT } from "../buffer/layout.ts";
import { NODE_MAX } from "../buffer/node-layout.ts";
import { defaultNodes } from "../tree/nodes.ts";
import { blockBytesFor, smallMaxProblem } from "../small/descriptor.ts";

/** A space gets the small-area cache by default when it holds at least this many blocks. */
const DEFAULT_SMALL_BLOCKS = 64;

const OPTION_KEYS = [
	"start",
	"size",
	"pageSize",
	"shared",
	"maxAreas",
	"lazyMaxPages",
	"flush",
	"priorityPurge",
	"nodes",
	"timeoutMs",
	"smallMax",
] as const;

/** The kernel's lazy_max_pages() unit: fls(nr_cpus) * 32 MiB worth of pages. */
const LAZY_MAX_BYTES = 32 * 2 ** 20;

/**
 * lazyMaxPages when not given: the kernel's fls(nodes) * 32 MiB, made for a space of terabytes,
 * but at most an eighth of the space, so that a small space drains by itself long before its
 * lazy areas crowd out what allocations need (the priority purge comes at a quarter).
 */
export function defaultLazyMaxPages(nodes: number, size: number, pageSize: number): number {
	return Math.max(1, Math.floor(Math.min((32 - Math.clz32(nodes)) * LAZY_MAX_BYTES, size / 8) / pageSize));
}

export function isPowerOfTwo(x: unknown): x is number {
	return typeof x === "number" && Number.isSafeInteger(x) && x > 0 && 2 ** Math.round(Math.log2(x)) === x;
}

/** EINVAL, in the words of `cannot` ("Cannot alloc"), unless `align` is a power of two. */
export function validateAlign(align: unknown, cannot: string): asserts align is number {
	if (!isPowerOfTwo(align)) throw new VmapError("EINVAL", `${cannot}: align must be a power of two, got ${shown(align)}`);
}

/** EINVAL unless `tag` is a string. */
export function validateTag(tag: unknown, cannot: string): asserts tag is string {
	if (typeof tag !== "string") throw new VmapError("EINVAL", `${cannot}: tag must be a string, got ${shown(tag)}`);
}

/** EINVAL unless `nowait` is true or false. */
export function validateNowait(nowait: unknown, cannot: string): asserts nowait is boolean {
	if (typeof nowait !== "boolean") throw new VmapError("EINVAL", `${cannot}: nowait must be true or false, got ${shown(nowait)}`);
}

/** EINVAL, in the words of `cannot` ("Cannot attach"), unless `x` is a number of milliseconds, at least 0, or Infinity. */
export function validateTimeout(x: unknown, cannot: string): asserts x is number {
	// NaN fails, Infinity passes.
	if (!(typeof x === "number" && x >= 0))
		throw new VmapError("EINVAL", `${cannot}: timeoutMs must be a number of milliseconds, at least 0, or Infinity, got ${shown(x)}`);
}

const PURGE_KEYS = ["sync", "timeoutMs"];

/** purge()'s options, checked before anything changes: "sync" or "try" (space and heap alike). */
export function purgeKind(options: PurgeOptions | undefined): "sync" | "try" {
	validateOptions(options, PURGE_KEYS, "Cannot purge");
	const sync = options?.sync ?? false;
	if (typeof sync !== "boolean") throw new VmapError("EINVAL", `Cannot purge: sync must be true or false, got ${shown(sync)}`);
	if (options?.timeoutMs !== undefined) validateTimeout(options.timeoutMs, "Cannot purge");
	return sync ? "sync" : "try";
}

export interface SpaceParams {
	start: number;
	size: number;
	pageSize: number;
	shared: boolean;
	maxAreas: number;
	lazyMaxPages: number;
	flush: FlushHook | undefined;
	priorityPurge: boolean;
	timeoutMs: number;
	nodes: number;
	/** Largest request of the small-area cache, bytes; 0: off. */
	smallMax: number;
}

/** The options with defaults filled in; throws EINVAL on the first wrong one, saying "Cannot create `what`". */
export function parseSpaceOptions(options: VmapSpaceOptions, what: string): SpaceParams {
	const cannot = `Cannot create ${what}`;
	if (options === undefined) throw new VmapError("EINVAL", `${cannot}: options must be an object like { size }, got undefined`);
	validateOptions(options, OPTION_KEYS, cannot);
	const pageSize = options.pageSize ?? 4096;
	if (!isPowerOfTwo(pageSize)) {
		throw new VmapError("EINVAL", `${cannot}: pageSize must be a power of two, got ${shown(pageSize)}`);
	}
	const start = options.start ?? pageSize;
	if (!Number.isSafeInteger(start) || start < 0 || start % pageSize !== 0) {
		throw new VmapError("EINVAL", `${cannot}: start must be a non-negative multiple of pageSize ${pageSize}, got ${shown(start)}`);
	}
	const size = options.size;
	if (!Number.isSafeInteger(size) || size <= 0 || size % pageSize !== 0) {
		throw new VmapError("EINVAL", `${cannot}: size must be a positive multiple of pageSize ${pageSize}, got ${shown(size)}`);
	}
	if (!Number.isSafeInteger(start + size)) {
		throw new VmapError("EINVAL", `${cannot}: start + size must be at most 2^53 - 1, got ${hex(start)} + ${hex(size)}`);
	}
	const maxAreas = options.maxAreas ?? DEFAULT_MAX_AREAS;
	if (!Number.isSafeInteger(maxAreas) || maxAreas < 1 || maxAreas > MAX_AREAS_LIMIT) {
		throw new VmapError("EINVAL", `${cannot}: maxAreas must be a whole number from 1 to ${MAX_AREAS_LIMIT}, got ${shown(maxAreas)}`);
	}
	const shared = options.shared ?? true;
	if (typeof shared !== "boolean") {
		throw new VmapError("EINVAL", `${cannot}: shared must be true or false, got ${shown(shared)}`);
	}
	if (shared && typeof SharedArrayBuffer !== "function") {
		throw new VmapError(
			"EINVAL",
			`${cannot}: SharedArrayBuffer is not available here (a browser page needs cross-origin isolation: COOP same-origin and COEP require-corp); pass shared: false for a space of this thread only`,
		);
	}
	const nodes = options.nodes ?? defaultNodes();
	if (!Number.isSafeInteger(nodes) || nodes < 1 || nodes > NODE_MAX) {
		throw new VmapError("EINVAL", `${cannot}: nodes must be a whole number from 1 to ${NODE_MAX}, got ${shown(nodes)}`);
	}
	// fls(nodes): the bit length of the node count, as the kernel scales by fls(num_online_cpus()).
	const lazyMaxPages = options.lazyMaxPages ?? defaultLazyMaxPages(nodes, size, pageSize);
	if (!Number.isSafeInteger(lazyMaxPages) || lazyMaxPages < 1) {
		throw new VmapError("EINVAL", `${cannot}: lazyMaxPages must be a whole number of pages, at least 1, got ${shown(lazyMaxPages)}`);
	}
	if (options.flush !== undefined && typeof options.flush !== "function") {
		throw new VmapError(
			"EINVAL",
			`${cannot}: flush must be a function (start, end) => void | Promise<void>, got ${shown(options.flush)}`,
		);
	}

	const priorityPurge = options.priorityPurge ?? true;
	if (typeof priorityPurge !== "boolean") {
		throw new VmapError("EINVAL", `${cannot}: priorityPurge must be true or false, got ${shown(priorityPurge)}`);
	}
	const timeoutMs = options.timeoutMs ?? Infinity;
	validateTimeout(timeoutMs, cannot);
	let smallMax = options.smallMax;
	if (smallMax === undefined) {
		// On by default where the space holds at least DEFAULT_SMALL_BLOCKS blocks.
		smallMax = Math.max(4096, 16 * pageSize);
		if (blockBytesFor(smallMax) * DEFAULT_SMALL_BLOCKS > size) smallMax = 0;
	} else {
		const problem = smallMaxProblem(smallMax, pageSize, size);
		if (problem !== undefined) throw new VmapError("EINVAL", `${cannot}: ${problem}`);
	}
	return { start, size, pageSize, shared, maxAreas, lazyMaxPages, flush: options.flush, priorityPurge, nodes, timeoutMs, smallMax };
}

/**
 * EINVAL unless `options` is undefined or an object whose every key is one of `known`: a
 * misspelt option is an error that names the known ones, never a silent default. `cannot`
 * starts the message ("Cannot alloc").
 */
export function validateOptions(options: unknown, known: readonly string[], cannot: string): void {
	if (options === undefined) return;
	if (typeof options !== "object" || options === null) {
		throw new VmapError("EINVAL", `${cannot}: options must be an object like { ${known.join(", ")} }, got ${shown(options)}`);
	}
	for (const key in options) {
		if (!known.includes(key))
			throw new VmapError("EINVAL", `${cannot}: unknown option ${JSON.stringify(key)} (known: ${known.join(", ")})`);
	}
}
