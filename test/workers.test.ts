/**
 * One space, many real worker_threads (issue 4). Seeds are fixed, runs bounded by operation
 * counts; VMAP_WORKER_OPS scales them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VmapSpace } from "../src/index.ts";
import { HDR_CAPACITY, INITIAL_CAPACITY } from "../src/buffer/layout.ts";
import { freeBlocks } from "./support/inspect.ts";
import { reportOf, startWorker } from "../harness/workers.ts";
import { openGate } from "../harness/gate.ts";

const OPS = Number(process.env.VMAP_WORKER_OPS ?? 20_000);
const P = 4096;

interface Report {
	id: number;
	ops: number;
	allocs: number;
	busy: number;
	violations: string[];
	ms: number;
	lockWaitMs: number;
}

/** Start `modes.length` workers on `space`, release them together, collect their reports. */
async function run(space: VmapSpace, modes: string[], ops: number, maxLive: number, pages: number): Promise<Report[]> {
	const owners = new SharedArrayBuffer(4 * pages);
	const control = new SharedArrayBuffer(8);
	const workers = modes.map((mode, i) =>
		startWorker(new URL("../harness/space-worker.ts", import.meta.url), {
			handle: space.handle,
			owners,
			control,
			mode,
			seed: 1000 + i,
			ops,
			maxLive,
		}),
	);
	const reports = workers.map((w) => reportOf<Report>(w));
	await openGate(new Int32Array(control), workers.length, reports);
	const out = await Promise.all(reports);
	await Promise.all(workers.map((w) => w.terminate()));
	assert.deepEqual(new Int32Array(owners).filter((o) => o !== 0).length, 0, "every page given back");
	return out;
}

/** After every worker freed everything: a sync purge and a trim() leave free space whole. */
function wholeAgain(space: VmapSpace): void {
	space.purge({ sync: true });
	space.check();
	space.trim();
	space.check();
	assert.deepEqual(freeBlocks(space), [[space.start, space.end]]);
	const st = space.stats();
	assert.deepEqual([st.busyAreas, st.lazyAreas, st.vmapLazyNr, st.freeBytes], [0, 0, 0, space.size]);
}

for (const [workers, nodes] of [
	[2, 1],
	[4, 1],
	[2, 4],
	[4, 4],
] as const) {
	test(`${workers} workers x ${OPS} random operations, ${nodes} node${nodes > 1 ? "s" : ""}: no two live areas overlap, the table grows under load`, async () => {
		const pages = 1 << 14;
		const space = VmapSpace.create({ size: pages * P, lazyMaxPages: 256, nodes });
		const reports = await run(space, Array(workers).fill("mixed"), OPS, 300, pages);
		for (const r of reports) assert.deepEqual(r.violations, [], `worker ${r.id}`);
		const allocs = reports.reduce((n, r) => n + r.allocs, 0);
		const st = space.stats();
		console.log(
			`# ${workers} workers, ${nodes} nodes: ${allocs} allocations, ${reports.reduce((n, r) => n + r.busy, 0)} EBUSY, lock waits ${reports.map((r) => r.lockWaitMs.toFixed(0)).join("/")} ms, capacity ${space.table.hdr[HDR_CAPACITY]}, pool hits ${st.poolHits}, misses ${st.poolMisses}, helped ${st.helped}`,
		);
		if (nodes > 1) assert.ok(st.poolHits > 0, "workers reuse pooled areas");
		assert.ok(allocs > OPS / 4, `only ${allocs} allocations`);
		assert.ok(space.table.hdr[HDR_CAPACITY]! > 4 * INITIAL_CAPACITY, "the record table grew while workers allocated");
		assert.ok(space.stats().purges > 0);
		wholeAgain(space);
	});
}

for (const nodes of [1, 4]) {
	test(`free-path ordering ("mm/vmalloc: Keep a separate lazy-free list"): frees race purges from another worker, ${nodes} node${nodes > 1 ? "s" : ""}`, async () => {
		const pages = 1 << 12;
		const space = VmapSpace.create({ size: pages * P, lazyMaxPages: 64, nodes });
		const reports = await run(space, ["free-storm", "free-storm", "purge-storm"], OPS, 0, pages);
		for (const r of reports) assert.deepEqual(r.violations, [], `worker ${r.id}`);
		wholeAgain(space);
	});
}

test("a watched worker terminated in the middle of a critical section: its exit undoes what it changed and releases its locks; the space goes on", async () => {
	const space = VmapSpace.create({ size: 64 * P });
	const kept = space.alloc(3 * P);
	const before = space.dump();
	const control = new SharedArrayBuffer(8);
	const w = startWorker(new URL("../harness/space-worker.ts", import.meta.url), {
		handle: space.handle,
		owners: new SharedArrayBuffer(4 * 64),
		control,
		mode: "hold-lock",
		seed: 1,
		ops: 0,
		maxLive: 0,
	});
	space.watch(w);
	const holding = reportOf(w);
	await openGate(new Int32Array(control), 1, [holding]);
	await holding;
	assert.throws(() => space.alloc(P, { timeoutMs: 20 }), { code: "ETIMEDOUT" }, "it holds the free-space lock");
	await w.terminate();
	await new Promise((r) => setImmediate(r)); // the "exit" event, which watch() follows
	space.check(); // the free tree it had cut off and the busy root it had replaced are back
	const after = space.dump();
	assert.deepEqual([after.areas, after.free, after.stats.freeBytes], [before.areas, before.free, before.stats.freeBytes]);
	const a = space.alloc(P);
	assert.equal(space.find(kept)?.state, "busy");
	space.free(a);
	assert.doesNotThrow(() => VmapSpace.attach(space.handle).close());
});
