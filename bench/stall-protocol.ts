/**
 * What the lookups case (lookups.ts) and its other worker (stall-worker.ts) agree on: the
 * phases of the stall measurement, in order (the worker keeps a worst gap per phase), and the
 * job the worker is started with. Control words: [0] the phase (-1: stop), [1] pairs done;
 * then two Float64s per phase: the worst gap and the worst lock wait (ms).
 */
export const PHASES = ["idle", "vmallocinfo", "vmallocinfoAsync", "dump", "check", "floor"] as const;

export interface StallJob {
	handle: { buffer: SharedArrayBuffer };
	control: SharedArrayBuffer;
	entry: string;
}
