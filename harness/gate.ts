/**
 * The start gate every worker test uses, so that workers are released together, as the
 * kernel's test threads are: word GATE_OPEN (0) is the gate, GATE_READY (1) counts workers
 * waiting at it. A control buffer may hold more words after these for the test's own use.
 */
import { waitUntil } from "./workers.ts";

export const GATE_OPEN = 0;
export const GATE_READY = 1;
/** Words a test may add after the gate's: 1 asks the workers to stop; a count of progress (e.g. snapshots taken). */
export const STOP = 2;
export const PROGRESS = 3;
export const CONTROL_BYTES = 16;

/** In a worker: say it is ready, then wait for the gate to open. */
export function waitAtGate(control: Int32Array): void {
	Atomics.add(control, GATE_READY, 1);
	Atomics.wait(control, GATE_OPEN, 0);
}

/**
 * In the test: wait (without blocking the event loop) until `count` workers are at the gate,
 * then open it. Rejects with a worker's error if one of `reports` fails first, so a worker
 * that dies on start-up never leaves the test waiting.
 */
export async function openGate(control: Int32Array, count: number, reports: readonly Promise<unknown>[]): Promise<void> {
	await waitUntil(`${count} workers at the start gate`, () => Atomics.load(control, GATE_READY) >= count, reports);
	Atomics.store(control, GATE_OPEN, 1);
	Atomics.notify(control, GATE_OPEN);
}
