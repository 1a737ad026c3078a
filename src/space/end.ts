/**
 * A handle's observed end (watch(), exited()): its locks recovered (core/handles.ts), then the
 * end hooks of the layers, and with WatchOptions.freeAreas its areas freed: a worker pool that
 * terminates a worker mid-task gets back what the worker had allocated and not freed. Each
 * busy area carries the id of the handle that allocated it (VA_OWNER_SHIFT), and an ended
 * handle's id is not reused before its end hooks, this one among them, are done
 * (HANDLE_ENDING).
 */
import type { ExitedOptions, WatchedWorker, WatchOptions } from "../api/types.ts";
import { reportError } from "../util/report.ts";
import { shown, VmapError } from "../api/errors.ts";
import { HDR_SMALL_MARK_TAG } from "../buffer/layout.ts";
import { labelOwner, listAreas, runChunks } from "../diag/info.ts";
import { handleEnded, handlesOfThread, runEndHooks, tokenHandle } from "../core/handles.ts";
import { freeOwnedArea } from "../core/lazy-free.ts";
import { validateOptions } from "../core/options.ts";
import type { SpaceState } from "../core/state.ts";

const END_KEYS = ["onError", "freeAreas"];

/** watch(): when `worker` exits, end each of its handles. */
export function watchWorker(s: SpaceState, worker: WatchedWorker, options: WatchOptions | undefined): void {
	const { onError, freeAreas } = validateEndOptions(options, "Cannot watch");
	const threadId = (worker as { threadId?: unknown } | null)?.threadId;
	if (typeof threadId !== "number" || threadId < 0 || typeof (worker as { once?: unknown }).once !== "function") {
		throw new VmapError(
			"EINVAL",
			`Cannot watch: worker must be a running worker_threads Worker (with threadId and once()), got ${shown(worker)}`,
		);
	}
	worker.once("exit", () => {
		try {
			for (const id of handlesOfThread(s.table, threadId)) endHandle(s, id, freeAreas, onError);
		} catch (e) {
			reportError(e, onError, `ending the handles of worker thread ${threadId}`);
		}
	});
}

/** exited(): end the handle `token` names, if it is still alive. */
export function endByToken(s: SpaceState, token: string, options: ExitedOptions | undefined): void {
	const { onError, freeAreas } = validateEndOptions(options, "Cannot mark a handle exited");
	const id = tokenHandle(s.table, token);
	if (id < 0 || id === s.id) {
		throw new VmapError(
			"EINVAL",
			`Cannot mark a handle exited: the token must be another handle's token ("id.generation", space.token), got ${shown(token)}`,
		);
	}
	if (id !== 0) endHandle(s, id, freeAreas, onError);
}

/** watch()'s and exited()'s options, checked. */
function validateEndOptions(options: WatchOptions | ExitedOptions | undefined, cannot: string) {
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
	const quietly = (hook: () => void) => () => {
		s.purger.drain.quiet = true;
		try {
			hook();
		} finally {
			s.purger.drain.quiet = false;
		}
	};
	const hooks = s.endHooks.map((hook) => quietly(() => hook(id, freeAreas)));
	if (freeAreas) hooks.push(quietly(() => freeAreasOf(s, id)));
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
