/**
 * The package's entry: the allocator (VmapSpace), the heap of bytes over it (VmapHeap), their
 * errors and types. Pictures are the `vmalloc/viz` entry (viz.ts). Re-exports only, the top of
 * the layers (scripts/check-imports.mjs lists them in order).
 * @module vmalloc
 */
export type {
	AllocOptions,
	AreaInfo,
	AreaState,
	AttachOptions,
	ExitedOptions,
	FlushHook,
	LockWait,
	NodeStats,
	PurgeOptions,
	PurgeResult,
	StatsOptions,
	TrimResult,
	VmapHandle,
	VmapSpaceOptions,
	VmapStats,
	WatchedWorker,
	WatchOptions,
} from "./api/types.ts";
export { VmapError, type VmapErrorCode } from "./api/errors.ts";
export { VmapSpace } from "./space/space.ts";
export type { TypedArrayConstructor } from "./api/heap-types.ts";
export { VmapHeap, type HeapStats, type VmallocOptions, type VmapHeapHandle, type VmapHeapOptions } from "./heap/heap.ts";
export type { DumpArea, DumpFreeBlock, DumpSmallBlock, VmapDump } from "./api/types.ts";
