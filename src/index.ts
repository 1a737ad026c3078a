/** The package's entry: re-exports only, the top of the layers (scripts/check-imports.mjs lists them in order). */
export type {
	AllocOptions,
	AreaInfo,
	AreaState,
	AttachOptions,
	ExitedOptions,
	FlushHook,
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
export { VmapHeap, type HeapStats, type VmallocOptions, type VmapHeapHandle, type VmapHeapOptions } from "./heap/heap.ts";
export type { DumpArea, DumpFreeBlock, DumpSmallBlock, VmapDump } from "./api/types.ts";
export { mapSvg, type MapOptions } from "./viz/map.ts";
export { Timeline, type TimelineData } from "./viz/timeline.ts";
export { timelineSvg, type TimelineOptions } from "./viz/timeline-svg.ts";
