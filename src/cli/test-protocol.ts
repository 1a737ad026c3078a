/** What the `vmalloc test` driver and its workers exchange. */
import type { VmapHeapHandle } from "../heap/heap.ts";

/** The module parameters every worker runs with. */
export interface RunParams {
	/** run_test_mask */
	mask: number;
	/** test_loop_count */
	loops: number;
	/** test_repeat_count */
	repeat: number;
	/** sequential_test_order */
	sequential: boolean;
	/** nr_pages */
	nrPages: number;
	/** nr_pcpu_objects */
	nrPcpuObjects: number;
}

export interface WorkerJob extends RunParams {
	handle: VmapHeapHandle;
	control: SharedArrayBuffer;
	index: number;
	seed: number;
}

export interface TestResult {
	id: number;
	name: string;
	passed: number;
	failed: number;
	xfailed: number;
	repeat: number;
	loops: number;
	avgUs: number;
	/** The first few errors other than a failed allocation. */
	errors: string[];
}

export interface WorkerReport {
	index: number;
	results: TestResult[];
	totalUs: number;
}

/** control words: [0] the gate, [1] workers ready, [2] repetitions done (all workers). */
export const C_GATE = 0;
export const C_READY = 1;
export const C_DONE = 2;
