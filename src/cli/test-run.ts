/**
 * `vmalloc test`: the kernel's test_vmalloc driver (lib/test_vmalloc.c, run by
 * tools/testing/selftests/mm/test_vmalloc.sh). Each test case runs on a fresh shared VmapHeap,
 * by fresh worker_threads released together, and the heap is checked and must be whole again
 * once everything is freed; then every worker's Summary lines, as the kernel prints them, and a
 * table across workers. A fresh heap per case bounds the resident memory by the largest case,
 * not the sum of them all: a SharedArrayBuffer never gives a page back while it lives.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Worker } from "node:worker_threads";
import { VmapHeap } from "../heap/heap.ts";
import { mapSvg } from "../viz/map.ts";
import { Timeline } from "../viz/timeline.ts";
import { timelineSvg } from "../viz/timeline-svg.ts";
import { ALL_MASK, CASES, type TestCase } from "./test-cases.ts";
import { C_DONE, C_GATE, C_READY, type RunParams, type TestResult, type WorkerJob, type WorkerReport } from "./test-protocol.ts";

export interface TestParams extends RunParams {
	mode: "smoke" | "performance" | "stress" | "manual";
	/** nr_threads */
	threads: number;
	json: boolean;
	/** Folder for the pictures of the run (--viz). */
	viz?: string | undefined;
}

/** The script's parameter sets (test_vmalloc.sh), over the module's defaults. */
export function modeParams(mode: TestParams["mode"]): Omit<TestParams, "json"> {
	const cores = availableParallelism();
	const base = {
		mode,
		threads: cores,
		mask: ALL_MASK,
		loops: 1_000_000,
		repeat: 1,
		sequential: false,
		nrPages: 1,
		nrPcpuObjects: 35_000,
	};
	switch (mode) {
		case "smoke":
			return { ...base, loops: 10_000, repeat: 10 };
		case "performance":
			return { ...base, threads: 1, sequential: true, repeat: 3 };
		case "stress":
			return { ...base, threads: cores, repeat: 20 };
		default:
			return base;
	}
}

/** Heap for the run: addresses up to 4 GiB (V8's largest growable buffer), 64 MiB to begin with. */
const HEAP_SIZE = 64 * 2 ** 20;
const HEAP_MAX = 2 ** 32;

function startWorker(job: WorkerJob): Worker {
	const here = import.meta.url;
	if (here.endsWith(".ts")) {
		// From the sources (npm run vmalloc): the worker registers tsx through the bootstrap.
		const entry = new URL("./test-worker.ts", here).href;
		return new Worker(new URL("../../scripts/ts-worker.mjs", here), { workerData: { ...job, entry } });
	}
	return new Worker(new URL("./test-worker.js", here), { workerData: job });
}

function report(w: Worker): Promise<WorkerReport> {
	return new Promise((resolve, reject) => {
		w.once("message", resolve);
		w.once("error", reject);
		w.once("exit", (code) => reject(new Error(`a test worker exited with ${code} before reporting`)));
	});
}

const summary = (r: TestResult) =>
	`Summary: ${r.name} passed: ${r.passed} failed: ${r.failed} xfailed: ${r.xfailed} repeat: ${r.repeat} loops: ${r.loops} avg: ${r.avgUs} usec`;

/** --viz: the timeline's sampling period. */
const VIZ_MS = 50;

/** The map of the last case's heap as it ends, and the run's timeline (each case's heap in turn), with their JSON. */
function writePictures(dir: string, heap: VmapHeap, timeline: Timeline, what: string, last: string): string[] {
	mkdirSync(dir, { recursive: true });
	const dump = heap.space.dump();
	const stats = heap.space.stats();
	// The tests reach up to 4 GiB for alignment; draw what they used, in whole rows.
	const to = Math.min(heap.space.end, heap.space.start + 2 ** Math.ceil(Math.log2(Math.max(stats.spanBytes, 64 * heap.pageSize))));
	const files: Array<[string, string]> = [
		[
			"map.svg",
			mapSvg(dump, { to, title: `${what}: the heap's space as the tests ended (the last, ${last}), before the final purge` }),
		],
		["timeline.svg", timelineSvg(timeline, { title: `${what}: stats() every ${VIZ_MS} ms` })],
		["dump.json", JSON.stringify(dump)],
		["timeline.json", JSON.stringify(timeline)],
	];
	for (const [name, text] of files) writeFileSync(join(dir, name), text);
	return files.map(([name]) => join(dir, name));
}

/** One row of the table across workers: a test's counts summed, its averages' mean, min and max. */
interface Row {
	id: number;
	name: string;
	passed: number;
	failed: number;
	xfailed: number;
	avgUs: number;
	minUs: number;
	maxUs: number;
}

/** What the cases' heaps came to, summed over the cases. */
interface Totals {
	problems: string[];
	whole: boolean;
	dataMax: number;
	purges: number;
	deferred: number;
}

/** Run the tests; returns the exit status (0: nothing failed and every heap came back whole). */
export async function runTests(p: TestParams): Promise<number> {
	const out = (s: string) => {
		if (!p.json) console.log(s);
	};
	const selected = CASES.filter((c) => (p.mask & c.id) !== 0);
	const order = p.sequential ? selected : shuffled(selected);
	printHeader(out, p, selected.length);
	const timeline = new Timeline();
	const results: WorkerReport[] = Array.from({ length: p.threads }, (_, index) => ({ index, results: [], totalUs: 0 }));
	const totals: Totals = { problems: [], whole: true, dataMax: 0, purges: 0, deferred: 0 };
	let seconds = 0;
	for (const [k, c] of order.entries()) {
		const last = k === order.length - 1;
		seconds += await runCase(p, c, `${k + 1}/${order.length} ${c.name}`, {
			timeline,
			results,
			totals,
			picture: last ? { before: seconds, tests: order.length } : undefined,
		});
		await collect(); // here, where nothing reaches the case's heap any more
	}
	const rows = acrossWorkers(selected, results);
	printResults(out, p, results, rows);
	return printTotal(out, p, rows, totals, seconds, results);
}

/** What the cases add to as they run. */
interface RunState {
	timeline: Timeline;
	results: WorkerReport[];
	totals: Totals;
	/** --viz, on the last case: the seconds of the cases before it, and how many there were. */
	picture: { before: number; tests: number } | undefined;
}

/** One case on a fresh heap: its workers' reports into `r.results`, its heap's figures into `r.totals`; returns its seconds. */
async function runCase(p: TestParams, c: TestCase, what: string, r: RunState): Promise<number> {
	const heap = createHeap(p, c.pageSize ?? 4096);
	const round = await runWorkers({ ...p, mask: c.id }, heap, r.timeline, what);
	for (const w of round.results) {
		r.results[w.index]!.results.push(...w.results);
		r.results[w.index]!.totalUs += w.totalUs;
	}
	if (p.viz !== undefined && r.picture !== undefined) {
		r.timeline.sample(heap.space.stats());
		const what = `vmalloc test --mode ${p.mode}: ${p.threads} thread(s), ${r.picture.tests} test(s), ${(r.picture.before + round.seconds).toFixed(1)} s`;
		const files = writePictures(p.viz, heap, r.timeline, what, c.name);
		process.stderr.write(`vmalloc test: pictures written: ${files.join(", ")}\n`);
	}
	const end = finalCheck(heap);
	const t = r.totals;
	t.problems.push(...end.problems.map((line) => `${c.name}: ${line}`));
	t.whole &&= end.whole;
	t.dataMax = Math.max(t.dataMax, end.stats.dataBytes);
	t.purges += end.stats.purges;
	t.deferred += end.stats.deferred;
	return round.seconds;
}

/** The total line (and with --json the whole document); returns the exit status. */
function printTotal(out: (s: string) => void, p: TestParams, rows: Row[], t: Totals, seconds: number, workers: WorkerReport[]): number {
	const sum = (k: "passed" | "failed" | "xfailed") => rows.reduce((n, r) => n + r[k], 0);
	const failed = sum("failed");
	const peakRssBytes = process.resourceUsage().maxRSS * 1024; // the process's peak, its workers' included
	out("");
	out(
		`Total: passed ${sum("passed")} failed ${failed} xfailed ${sum("xfailed")} in ${seconds.toFixed(1)} s; check() ${t.problems.length === 0 ? "passed" : "FAILED"}; free space whole again: ${t.whole ? "yes" : "NO"}; data grew to at most ${t.dataMax / 2 ** 20} MiB; purges ${t.purges}, deferred frees ${t.deferred}; peak resident ${Math.round(peakRssBytes / 2 ** 20)} MiB`,
	);
	for (const line of t.problems) out(`  ${line}`);
	const status = failed === 0 && t.problems.length === 0 ? 0 : 1;
	if (p.json) {
		const doc = { params: p, seconds, peakRssBytes, workers, tests: rows, problems: t.problems, whole: t.whole, heaps: t, status };
		console.log(JSON.stringify(doc, null, 2));
	}
	return status;
}

/**
 * Collect garbage until the finished case's buffers have given their pages back (they are
 * unreachable once its heap closed, but each worker's view lives until that worker's isolate
 * is torn down, a little after its exit), so that the next case starts from the process alone.
 * Node exposes no gc() without --expose-gc; the flag can be set at run time and gc() read from
 * a new context. 5 to 20 rounds of 10 ms, while the resident memory falls: the run goes on regardless.
 */
async function collect(): Promise<void> {
	setFlagsFromString("--expose-gc");
	const gc = runInNewContext("gc") as () => void;
	let rss = Infinity;
	for (let round = 0; round < 20 && (round < 5 || process.memoryUsage.rss() < rss); round++) {
		rss = process.memoryUsage.rss();
		gc();
		await new Promise((r) => setTimeout(r, 10));
	}
}

/** A fresh heap for one case. deferredMax: 16384 per worker (the heap's default for one). The ring is
 * shared, and with more workers than cores one that is descheduled holds every grace period back while the
 * others queue: kvfree_rcu_2_arg (nowait) must not find it full for that alone. */
function createHeap(p: TestParams, pageSize: number): VmapHeap {
	const deferredMax = Math.min(2 ** 20, 16_384 * p.threads);
	return VmapHeap.create({ size: HEAP_SIZE, maxSize: HEAP_MAX, pageSize, nodes: Math.min(128, availableParallelism()), deferredMax });
}

/** The cases in a random order (the kernel shuffles each thread's; here all threads run one case at a time). */
function shuffled<T>(cases: T[]): T[] {
	const a = [...cases];
	let x = (Date.now() >>> 0) | 1;
	for (let i = a.length - 1; i > 0; i--) {
		x ^= x << 13;
		x ^= x >>> 17;
		x ^= x << 5;
		const k = (x >>> 0) % (i + 1);
		[a[i], a[k]] = [a[k]!, a[i]!];
	}
	return a;
}

function printHeader(out: (s: string) => void, p: TestParams, tests: number): void {
	out(
		`vmalloc test: mode ${p.mode}, ${p.threads} thread(s), run_test_mask ${p.mask} (0x${p.mask.toString(16)}: ${tests} test(s)), test_loop_count ${p.loops}, test_repeat_count ${p.repeat}, nr_pages ${p.nrPages}, nr_pcpu_objects ${p.nrPcpuObjects}, ${p.sequential ? "sequential" : "shuffled"} order`,
	);
	out(
		`heap: a fresh one per test, shared by the threads: ${Math.min(128, availableParallelism())} node(s), page size 4096 (pcpu_alloc_test: 1024), guard pages 1, data ${HEAP_SIZE / 2 ** 20} MiB growing to at most ${HEAP_MAX / 2 ** 20} MiB (as far as the highest address the test uses; see --help on memory)`,
	);
	out("avg: the mean time of one repetition of a test (test_loop_count iterations), in microseconds, as the kernel prints it");
}

/**
 * Start the workers for one case (`p.mask`), release them together (the kernel's
 * vmalloc_test/N threads), and wait for their reports while sampling `timeline` (--viz) and
 * showing progress (`what`: the case); returns the reports and the seconds from release to the
 * last report. The workers end with the case, and with them their views of its heap.
 */
async function runWorkers(
	p: TestParams,
	heap: VmapHeap,
	timeline: Timeline,
	what: string,
): Promise<{ results: WorkerReport[]; seconds: number }> {
	const control = new SharedArrayBuffer(12);
	const gate = new Int32Array(control);
	const workers = Array.from({ length: p.threads }, (_, index) =>
		startWorker({
			handle: heap.handle,
			control,
			index,
			seed: 0x9e3779b9 ^ (index * 0x85ebca6b),
			mask: p.mask,
			loops: p.loops,
			repeat: p.repeat,
			sequential: p.sequential,
			nrPages: p.nrPages,
			nrPcpuObjects: p.nrPcpuObjects,
		}),
	);
	const reports = workers.map(report);
	// This thread only waits: grace periods must not wait for it.
	heap.offline();
	while (Atomics.load(gate, C_READY) < p.threads) await new Promise((r) => setTimeout(r, 5));
	const t0 = performance.now();
	Atomics.store(gate, C_GATE, 1);
	Atomics.notify(gate, C_GATE);
	// --viz: the timeline, from stats() (no lock) every VIZ_MS while this thread waits.
	const st = heap.space.stats();
	const sampler = p.viz === undefined ? undefined : setInterval(() => timeline.sample(heap.space.stats({ into: st })), VIZ_MS);
	const stopProgress = showProgress(p, gate, p.threads * p.repeat, t0, what);
	try {
		const results = await Promise.all(reports);
		return { results, seconds: (performance.now() - t0) / 1000 };
	} finally {
		if (sampler) clearInterval(sampler);
		stopProgress();
		await Promise.all(workers.map((w) => w.terminate()));
	}
}

/** Progress on stderr: in place on a terminal; elsewhere (CI logs, pipes) a plain line every 10 s. Returns what stops it. */
function showProgress(p: TestParams, gate: Int32Array, total: number, t0: number, what: string): () => void {
	const tty = process.stderr.isTTY === true;
	if (tty && p.json) return () => {};
	const line = () =>
		`vmalloc test ${what}: ${Atomics.load(gate, C_DONE)}/${total} repetitions done, ${((performance.now() - t0) / 1000).toFixed(1)} s`;
	const timer = setInterval(
		() => {
			if (!tty) process.stderr.write(`${line()}\n`);
			else if (performance.now() - t0 > 1000) process.stderr.write(`\r\x1b[K${line()}`);
		},
		tty ? 250 : 10_000,
	);
	return () => {
		clearInterval(timer);
		if (tty) process.stderr.write("\r\x1b[K");
	};
}

/** The table across workers, in mask order. */
function acrossWorkers(selected: ReadonlyArray<{ id: number; name: string }>, results: WorkerReport[]): Row[] {
	return selected.map((c) => {
		const rs = results.map((w) => w.results.find((r) => r.id === c.id)!);
		const avgs = rs.map((r) => r.avgUs);
		return {
			id: c.id,
			name: c.name,
			passed: rs.reduce((n, r) => n + r.passed, 0),
			failed: rs.reduce((n, r) => n + r.failed, 0),
			xfailed: rs.reduce((n, r) => n + r.xfailed, 0),
			avgUs: Math.round(avgs.reduce((a, b) => a + b, 0) / avgs.length),
			minUs: Math.min(...avgs),
			maxUs: Math.max(...avgs),
		};
	});
}

/** Every worker's Summary lines (in mask order, as the kernel prints them, whatever order they ran in), then the table. */
function printResults(out: (s: string) => void, p: TestParams, results: WorkerReport[], rows: Row[]): void {
	for (const w of results.sort((a, b) => a.index - b.index)) {
		for (const r of [...w.results].sort((a, b) => a.id - b.id)) {
			out(summary(r));
			for (const e of r.errors) out(`  worker ${w.index} ${r.name}: ${e}`);
		}
		out(`All test took worker${w.index}=${w.totalUs} usec`);
	}
	const sum = (k: "passed" | "failed" | "xfailed") => rows.reduce((n, r) => n + r[k], 0);
	out("");
	out("| id | test | workers | passed | failed | xfailed | repeat | loops | avg usec per repetition (mean over workers) | min | max |");
	out("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
	for (const r of rows) {
		out(
			`| ${r.id} | ${r.name} | ${p.threads} | ${r.passed} | ${r.failed} | ${r.xfailed} | ${p.repeat} | ${p.loops} | ${r.avgUs} | ${r.minUs} | ${r.maxUs} |`,
		);
	}
	out(`| | total | ${p.threads} | ${sum("passed")} | ${sum("failed")} | ${sum("xfailed")} | | | | | |`);
}

/** After the run: validate, then free and purge everything and demand the whole space back. */
function finalCheck(heap: VmapHeap): { problems: string[]; whole: boolean; stats: ReturnType<VmapHeap["stats"]> } {
	const problems: string[] = [];
	try {
		heap.synchronize(10_000);
		heap.purge({ sync: true });
		heap.check();
	} catch (e) {
		problems.push(String((e as Error).message));
	}
	const s = heap.stats();
	const whole =
		s.busyAreas === 0 && s.lazyAreas === 0 && s.blocks === 0 && s.deferredPending === 0 && s.freeBytes + s.poolBytes === s.size;
	if (!whole) {
		problems.push(
			`leaked: ${s.busyAreas} busy areas (${s.busyBytes} bytes), ${s.lazyAreas} lazy, ${s.blocks} vm_map_ram blocks, ${s.deferredPending} deferred frees; free ${s.freeBytes + s.poolBytes} of ${s.size} bytes`,
		);
		problems.push(...heap.vmallocinfo().split("\n").slice(0, 10));
	}
	heap.close();
	return { problems, whole, stats: s };
}
