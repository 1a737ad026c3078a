/**
 * The small-area cache's port to the space (small/cache-state.ts's BlockSource): a block's
 * area is an ordinary busy area, allocated without purging or waiting, and freed through the
 * ordinary lazy free, so that the space's purge flushes its dirty slots before reuse, or,
 * when none of its slots waits for a flush, straight back to free space.
 */
import type { FlushHook } from "../api/types.ts";
import { VmapError } from "../api/errors.ts";
import { HDRF_SMALL_MAX } from "../buffer/layout.ts";
import { type BlockSource, SmallCache } from "../small/cache.ts";
import { SMALL_BLOCK_TAG } from "../small/descriptor.ts";
import { allocVmapArea } from "./alloc.ts";
import { freeBlockArea } from "./lazy-free.ts";
import type { SpaceState } from "./state.ts";

/** Give handle `s` its small-area cache, when the space has one (smallMax > 0); call right after creating `s`. */
export function openSmallCache(s: SpaceState, flush: FlushHook | undefined): void {
	if (s.table.hdrF[HDRF_SMALL_MAX]! === 0) return;
	const small = new SmallCache(s.table, s.locks, s.pageSize, flush, blockSource(s));
	s.small = small;
	s.endHooks.push((id, reclaim) => small.ended(id, reclaim ? (s.releaseArea ?? noRelease) : undefined));
}

function noRelease(): void {}

function blockSource(s: SpaceState): BlockSource {
	return {
		allocBlockArea(bytes, setup): number {
			try {
				return allocVmapArea(s, bytes, { align: bytes, tag: SMALL_BLOCK_TAG, nowait: true }, "fail", setup);
			} catch (e) {
				if (e instanceof VmapError && (e.code === "EBUSY" || e.code === "ENOMEM")) return -1;
				throw e;
			}
		},
		freeBlockArea: (addr, unindex, flushed) => freeBlockArea(s, addr, unindex, flushed),
		busyNodeBase: (addr) => s.busyNodeBase(addr),
		tagName: (tag) => s.tags.name(tag),
	};
}
