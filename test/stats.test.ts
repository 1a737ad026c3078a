import assert from "node:assert/strict";
import { test } from "node:test";
import { VmapSpace } from "../src/index.ts";
import { N_BUSY_LOCK, nodeBase } from "../src/buffer/node-layout.ts";
import { CONTROL_BYTES, openGate, PROGRESS, STOP } from "../harness/gate.ts";
import { reportOf, startWorker } from "../harness/workers.ts";
import { randomBelow } from "../harness/random.ts";

const P = 4096;
/** The writer runs at least MIN_OPS operations, until the reader took MIN_SNAPSHOTS, and at most MAX_OPS. */
const MIN_OPS = 200_000;
const MIN_SNAPSHOTS = 2_000;
const MAX_OPS = 20_000_000;

test("stats() from another worker, lock-free, while this thread allocates, frees and purges (vmalloc: use rcu list iterator to reduce vmap_area_lock contention)", async () => {
	const space = VmapSpace.create({ size: 4096 * P, lazyMaxPages: 64 });
	const control = new SharedArrayBuffer(CONTROL_BYTES);
	const flag = new Int32Array(control);
	const reader = startWorker(new URL("../harness/stats-reader.ts", import.meta.url), { buffer: space.table.buffer, control });
	const report = reportOf<{ snapshots: number; inconsistent: number; violations: string[] }>(reader);
	await openGate(flag, 1, [report]);

	// Random work, with the reader racing every step, until both sides did enough (counted in
	// operations and snapshots, not in time): a slow machine only takes longer.
	const rnd = randomBelow(12345);
	const live: number[] = [];
	let ops = 0;
	while (ops < MAX_OPS && (ops < MIN_OPS || Atomics.load(flag, PROGRESS) < MIN_SNAPSHOTS)) {
		for (let i = 0; i < 1000; i++, ops++) {
			if (live.length > 0 && (live.length > 2000 || rnd(2) === 0)) {
				const k = rnd(live.length);
				space.free(live[k]!);
				live[k] = live[live.length - 1]!;
				live.pop();
			} else {
				live.push(space.alloc(P * (1 + rnd(8))));
			}
		}
	}
	Atomics.store(flag, STOP, 1);
	const r = await report;
	await reader.terminate();
	space.check();
	console.log(
		`# stats reader: ${r.snapshots} snapshots during ${ops} operations, ${r.inconsistent} flagged inconsistent (gave up waiting for a writer)`,
	);
	assert.deepEqual(r.violations, []);
	assert.ok(r.snapshots >= MIN_SNAPSHOTS, `only ${r.snapshots} snapshots in ${ops} operations: the race was not exercised`);
	assert.ok(space.stats().purges > 10, "the run should have purged many times");
});

test("stats({ into }) refills an earlier result in place, the same figures a fresh read gives", () => {
	const space = VmapSpace.create({ size: 4096 * P, lazyMaxPages: 64, nodes: 2 });
	const into = space.stats({ pools: true });
	const a = space.alloc(3 * P);
	space.free(space.alloc(P));
	space.purge({ sync: true });
	const nodes = into.nodes;
	assert.equal(space.stats({ into, pools: true }), into);
	assert.equal(into.nodes, nodes, "the nodes array is reused too");
	assert.deepEqual(into, space.stats({ pools: true }));
	space.free(a);
	space.stats({ into });
	assert.deepEqual(into, space.stats(), "without pools the lengths are dropped");
	const other = VmapSpace.create({ size: 64 * P, nodes: 3 });
	for (const bad of [other.stats(), {}, null, 7]) {
		assert.throws(
			() => space.stats({ into: bad as never }),
			(e: Error & { code?: string }) =>
				e.code === "EINVAL" && /into must be a previous stats\(\) result of this space \(2 nodes\)/.test(e.message),
		);
	}
});

test("stats(): a domain whose writer never finishes is flagged, and every other domain is still read", () => {
	const space = VmapSpace.create({ size: 4096 * P, lazyMaxPages: 1 << 20, nodes: 2, smallMax: 0 });
	// Areas on both nodes (zones of 16 pages alternate), some of them lazy.
	const areas = Array.from({ length: 40 }, () => space.alloc(4 * P));
	for (const a of areas.slice(0, 10)) space.free(a);
	const want = space.stats();
	assert.equal(want.consistent, true);
	// Node 0's busy lock word odd and unchanging: a writer inside it, forever (a reader gives up after 20 ms).
	const hdr = space.table.hdr;
	const word = nodeBase(0) + N_BUSY_LOCK;
	Atomics.add(hdr, word, 1);
	const got = space.stats();
	Atomics.sub(hdr, word, 1);
	assert.equal(got.consistent, false);
	assert.deepEqual({ ...got, consistent: true }, want, "the domains after the stuck one were read all the same");
});
