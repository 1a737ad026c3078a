/**
 * One worker of `vmalloc test` (the kernel's vmalloc_test/%d kthread): attaches the heap, waits at
 * the gate with the others, runs its tests (shuffled unless sequential), each `repeat` times,
 * and reports per test how many repetitions passed, failed and failed as expected, and the
 * average time of one repetition.
 */
import { parentPort, workerData } from "node:worker_threads";
import { VmapHeap } from "../heap/heap.ts";
import { CASES } from "./test-cases.ts";
import { C_DONE, C_GATE, C_READY, type TestResult, type WorkerJob, type WorkerReport } from "./test-protocol.ts";

const job = workerData as WorkerJob;
const heap = VmapHeap.attach(job.handle);
const control = new Int32Array(job.control);
let state = job.seed >>> 0 || 1;
const rnd = (): number => {
	state ^= state << 13;
	state ^= state >>> 17;
	state ^= state << 5;
	return state >>> 0;
};

const tests = CASES.filter((c) => (job.mask & c.id) !== 0);
if (!job.sequential) {
	for (let i = tests.length - 1; i > 0; i--) {
		const k = rnd() % (i + 1);
		[tests[i], tests[k]] = [tests[k]!, tests[i]!];
	}
}

Atomics.add(control, C_READY, 1);
Atomics.notify(control, C_READY);
Atomics.wait(control, C_GATE, 0);
const start = performance.now();
const results: TestResult[] = [];
for (const t of tests) {
	const r: TestResult = {
		id: t.id,
		name: t.name,
		passed: 0,
		failed: 0,
		xfailed: 0,
		repeat: job.repeat,
		loops: job.loops,
		avgUs: 0,
		errors: [],
	};
	let total = 0;
	for (let k = 0; k < job.repeat; k++) {
		const t0 = performance.now();
		let ok: boolean;
		try {
			ok = t.run({ heap, loops: job.loops, nrPages: job.nrPages, nrPcpuObjects: job.nrPcpuObjects, rnd });
		} catch (e) {
			ok = false;
			if (r.errors.length < 3) r.errors.push(String((e as Error).message ?? e));
		}
		total += performance.now() - t0;
		if (ok) r.passed++;
		else if (t.xfail) r.xfailed++;
		else r.failed++;
		Atomics.add(control, C_DONE, 1);
	}
	r.avgUs = Math.round((total * 1000) / job.repeat);
	results.push(r);
}
const report: WorkerReport = { index: job.index, results, totalUs: Math.round((performance.now() - start) * 1000) };
heap.close();
parentPort!.postMessage(report);
