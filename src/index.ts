export type { AllocOptions, AreaInfo, AreaState, VmapSpaceOptions } from "./api.ts";
export { VmapError, type VmapErrorCode } from "./errors.ts";
export { VmapSpace } from "./space.ts";
