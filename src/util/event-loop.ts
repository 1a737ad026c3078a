/**
 * The util layer (src/util/): what the host gives a layer above, with no knowledge of spaces:
 * a turn of the event loop (this file) and a growable text buffer (text-writer.ts). It may
 * import only api/.
 *
 * Giving the event loop a turn, where the runtime has setImmediate (Node) or only setTimeout (browsers).
 */

/** Run `task` on a later turn of the event loop. */
export const schedule: (task: () => void) => void =
	typeof setImmediate === "function" ? (task) => void setImmediate(task) : (task) => void setTimeout(task, 0);

/** A promise that settles on a later turn of the event loop. */
export function nextTurn(): Promise<void> {
	return new Promise((resolve) => schedule(resolve));
}
