/**
 * One heap, real worker_threads: addresses travel through postMessage and a shared queue, bytes
 * written by one worker are read intact by another, no two live areas overlap, and deferred
 * frees wait for readers. VMAP_WORKER_OPS scales the operation counts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { MessageChannel } from "node:worker_threads";
import { type HeapStats, VmapHeap } from "../src/index.ts";
import { SharedQueue } from "./support/queue.ts";
import { reportOf, startWorker } from "../harness/workers.ts";
import { openGate } from "../harness/gate.ts";

const OPS = Number(process.env.VMAP_WORKER_OPS ?? 20_000);
const P = 4096;

interface Report {
	id: number;
	mode: string;
	ops: number;
	moved: number;
	busy: number;
	violations: string[];
	ms: number;
	stats: HeapStats;
}

/** Start the workers on `heap`, release them together, collect their reports. */
async function run(
	heap: VmapHeap,
	jobs: Array<{ mode: string; ops: number; extra?: Record<string, unknown>; transfer?: unknown[] }>,
): Promise<Report[]> {
	const owners = new SharedArrayBuffer(4 * (heap.maxSize / P));
	const control = new SharedArrayBuffer(16);
	const workers = jobs.map((j, i) =>
		startWorker(
			new URL("./support/heap-worker.ts", import.meta.url),
			{ handle: heap.handle, owners, control, mode: j.mode, seed: 7000 + i, ops: j.ops, ...j.extra },
			(j.transfer ?? []) as never[],
		),
	);
	const reports = workers.map((w) => reportOf<Report>(w));
	// This thread reads nothing while the workers run: it must not hold up their grace periods.
	heap.offline();
	try {
		await openGate(new Int32Array(control), workers.length, reports);
		return await Promise.all(reports);
	} finally {
		await Promise.all(workers.map((w) => w.terminate()));
	}
}

/** After the run: everything freed, purged, and the heap whole again. */
function wholeAgain(heap: VmapHeap): void {
	heap.synchronize(10_000);
	heap.purge({ sync: true });
	heap.check();
	const s = heap.stats();
	assert.deepEqual([s.deferredPending, s.blocks, s.busyAreas, s.lazyAreas], [0, 0, 0, 0], "nothing left behind");
	assert.equal(s.freeBytes + s.poolBytes, s.size);
}

test("heap workers: a producer hands areas to a consumer through a shared queue and a MessagePort, beside mixed workers", async () => {
	const heap = VmapHeap.create({ size: 256 * P, maxSize: 4096 * P, poison: true, lazyMaxPages: 64 });
	const channel = new MessageChannel();
	const queue = new SharedArrayBuffer(SharedQueue.bytes());
	const reports = await run(heap, [
		{ mode: "producer", ops: OPS / 4, extra: { queue, port: channel.port1 }, transfer: [channel.port1] },
		{ mode: "consumer", ops: 0, extra: { queue, port: channel.port2 }, transfer: [channel.port2] },
		{ mode: "mixed", ops: OPS / 2 },
		{ mode: "mixed", ops: OPS / 2 },
	]);
	for (const r of reports)
		console.log(
			`# heap worker ${r.id} ${r.mode}: ${r.ops} ops in ${r.ms.toFixed(0)} ms, ${r.moved} moved by vrealloc, ${r.busy} EBUSY, ${r.violations.length} violations`,
		);
	assert.deepEqual(
		reports.flatMap((r) => r.violations),
		[],
	);
	assert.equal(reports[1]!.ops, OPS / 4, "the consumer got every item");
	const s = heap.stats();
	console.log(`# heap: data ${s.dataBytes} bytes (grew from ${256 * P}), ${s.deferred} deferred frees, grace period ${s.gracePeriod}`);
	assert.ok(s.dataBytes > 256 * P, "the data grew");
	assert.ok(s.deferred > 0 && reports.some((r) => r.moved > 0), "the run exercised deferred frees and moving vreallocs");
	wholeAgain(heap);
});

test("heap workers: a deferred free is not reused while a reader is still inside its read-side section", async () => {
	// A small heap, purged often: without the grace period a freed area comes back at once.
	const heap = VmapHeap.create({ size: 64 * P, lazyMaxPages: 2, nodes: 1 });
	const slots = new SharedArrayBuffer(4 * (1 + 2 * 2)); // two readers: see heap-worker.ts
	const reports = await run(heap, [
		{ mode: "rcu-writer", ops: OPS / 2, extra: { slots } },
		{ mode: "rcu-reader", ops: 0, extra: { slots } },
		{ mode: "rcu-reader", ops: 0, extra: { slots } },
	]);
	for (const r of reports)
		console.log(`# rcu ${r.mode} ${r.id}: ${r.ops} ${r.mode === "rcu-writer" ? "areas published" : "reads"} in ${r.ms.toFixed(0)} ms`);
	assert.deepEqual(
		reports.flatMap((r) => r.violations),
		[],
	);
	assert.ok(
		reports[1]!.ops >= 100 && reports[2]!.ops >= 100,
		"the readers read while the writer freed (the writer waited half way for 100 reads each)",
	);
	const s = heap.stats();
	assert.equal(s.deferred, OPS / 2);
	wholeAgain(heap);
});
