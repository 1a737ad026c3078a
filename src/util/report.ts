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
	const message = `vmap: ${what}: ${error instanceof Error ? error.message : String(error)}`;
	const p = (globalThis as { process?: { emitWarning?: (m: string, type: string) => void } }).process;
	if (typeof p?.emitWarning === "function") p.emitWarning(message, "VmapWarning");
	else console.warn(message);
}
