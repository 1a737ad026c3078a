/**
 * Reporting what went wrong where nothing may throw (an event listener): to the caller's
 * callback, else as a process warning (Node) or console.warn (elsewhere).
 */

export function reportError(error: unknown, onError: ((error: unknown) => void) | undefined, what: string): void {
	if (onError !== undefined) {
		try {
			onError(error);
		} catch {
			// The callback's own failure has nowhere to go: a listener must not throw.
		}
		return;
	}
	warn(`${what}: ${error instanceof Error ? error.message : String(error)}`);
}

/** A wait on other handles without a deadline warns once it has lasted `longMs` (10 s; tests shorten it). */
export const longWait = { longMs: 10_000 };

/** A warning: a process warning (Node), else console.warn. */
export function warn(message: string): void {
	const p = (globalThis as { process?: { emitWarning?: (m: string, type: string) => void } }).process;
	if (typeof p?.emitWarning === "function") p.emitWarning(`vmalloc: ${message}`, "VmapWarning");
	else console.warn(`vmalloc: ${message}`);
}
