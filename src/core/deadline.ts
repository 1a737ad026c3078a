/**
 * Deadlines for a call: its lock waits bounded by a call's own timeoutMs instead of the
 * handle's, and a promise raced against a deadline.
 */
import { VmapError } from "../api/errors.ts";
import type { Locks } from "../buffer/lock.ts";
import { validateTimeout } from "./options.ts";

/** Run `call` with the lock waits of `locks` bounded by `timeoutMs` instead of the handle's own (EINVAL in the words of `op` for a bad one). */
export function withTimeout<T>(locks: Locks, timeoutMs: number, op: string, call: () => T): T {
	validateTimeout(timeoutMs, `Cannot ${op}`);
	const saved = locks.timeoutMs;
	locks.timeoutMs = timeoutMs;
	try {
		return call();
	} finally {
		locks.timeoutMs = saved;
	}
}

/**
 * `p`, or ETIMEDOUT saying `message` once performance.now() passes `deadline`. The timer keeps
 * the process alive until then, as the caller asked to be answered by then.
 */
export function beforeDeadline<T>(p: Promise<T>, deadline: number, message: string): Promise<T> {
	let timer: ReturnType<typeof setTimeout> | undefined;
	const late = new Promise<never>((_, reject) => {
		timer = setTimeout(() => reject(new VmapError("ETIMEDOUT", message)), Math.max(0, deadline - performance.now()));
	});
	return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
