export type { AllocOptions, AreaInfo, AreaState, FlushHook, PurgeOptions, PurgeResult, VmapSpaceOptions, VmapStats } from "./api.ts";
export { VmapError, type VmapErrorCode } from "./errors.ts";
export { VmapSpace } from "./space.ts";
