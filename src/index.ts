export type {
	AllocOptions,
	AreaInfo,
	AreaState,
	AttachOptions,
	FlushHook,
	PurgeOptions,
	PurgeResult,
	VmapHandle,
	VmapSpaceOptions,
	VmapStats,
} from "./api.ts";
export { VmapError, type VmapErrorCode } from "./errors.ts";
export { VmapSpace } from "./space.ts";
