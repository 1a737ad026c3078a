/**
 * A handle's observed end (watch(), exited()): its locks recovered (core/handles.ts), then the
 * end hooks of the layers, and with WatchOptions.freeAreas its areas freed: a worker pool that
 * terminates a worker mid-task gets back what the worker had allocated and not freed. Each
 * busy area carries the id of the handle that allocated it (VA_OWNER_SHIFT), and an ended
 * handle's id is not reused before its end hooks, this one among them, are done
 * (HANDLE_ENDING).
 */
import type { ExitedOptions, WatchOptions } from "../api/types.ts";
import { shown, VmapError } from "../api/errors.ts";
import { HDR_SMALL_MARK_TAG } from "../buffer/layout.ts";
import { labelOwner, listAreas, runChunks } from "../diag/info.ts";
import { handleEnded, runEndHooks } from "../core/handles.ts";
import { freeOwnedArea } from "../core/lazy-free.ts";
import { validateOptions } from "../core/options.ts";
import type { SpaceState } from "../core/state.ts";

const END_KEYS = ["onError", "freeAreas"];

/** watch()'s and exited()'s options, checked. */
export function validateEndOptions(options: WatchOptions | ExitedOptions | undefined, cannot: string) {
	validateOptions(options, END_KEYS, cannot);
	const onError = options?.onError;
	if (onError !== undefined && typeof onError !== "function")
		throw new VmapError("EINVAL", `${cannot}: onError must be a function (error) => void, got ${shown(onError)}`);
	const freeAreas = options?.freeAreas ?? false;
	if (typeof freeAreas !== "boolean")
		throw new VmapError("EINVAL", `${cannot}: freeAreas must be true or false, got ${shown(freeAreas)}`);
	return { onError, freeAreas };
}

/** End handle `id`, whose thread runs no more: recover its locks, run the end hooks, free its areas if asked. */
export function endHandle(s: SpaceState, id: number, freeAreas: boolean, onError: ((error: unknown) => void) | undefined): void {
	if (handleEnded(s.table, id, s.moreLockWords()) !== "ending") return;
	const hooks = s.endHooks.map((hook) => () => hook(id, freeAreas));
	if (freeAreas) hooks.push(() => freeAreasOf(s, id));
	runEndHooks(s.table, s.locks, id, hooks, onError);
}

/**
 * Free every busy area handle `id` allocated, but small-area blocks (the cache frees their
 * small areas, small/owner.ts) and areas queued for a deferred free. Each is freed in a
 * critical section of its own, after checking under its lock that it is still `id`'s: a run
 * cut short by a busy lock (ETIMEDOUT) is run again whole, finding the rest.
 */
function freeAreasOf(s: SpaceState, id: number): void {
	const { busy } = runChunks(listAreas(s, { free: false }));
	const mark = s.table.hdr[HDR_SMALL_MARK_TAG]!;
	const a = busy.a;
	for (let i = 0; i < busy.n; i += 3) if (labelOwner(a[i + 2]!) === id) freeOwnedArea(s, a[i]!, id, mark, s.releaseArea);
}
