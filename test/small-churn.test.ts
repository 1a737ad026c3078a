/**
 * Remote frees racing retires, for real: three workers fill their outboxes with small areas and
 * free each other's, purging as they go, so that an owner takes a free in and retires the
 * emptied block while the freer is still between its OR on REMOTE and its look at OWNER. A
 * valid free never throws (it used to throw ECORRUPT "small-area block at 0x0 has no busy
 * area", having taken a retired, zeroed descriptor for an ownerless block), and the space is
 * whole at the end.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VmapSpace } from "../src/index.ts";
import { reportOf, startWorker } from "../harness/workers.ts";

test("small areas: three workers fill and drain each other's small areas while owners retire the emptied blocks: no free throws, no block is adopted after its retire", async () => {
	const P = 16;
	const workers = 3;
	const n = 400;
	const space = VmapSpace.create({ size: 2 ** 22, pageSize: P, smallMax: 64, nodes: 1 });
	const areas = new SharedArrayBuffer(8 * workers * n);
	const state = new SharedArrayBuffer(4 * workers);
	const ws = Array.from({ length: workers }, (_, k) =>
		startWorker(new URL("./support/churn-worker.ts", import.meta.url), {
			handle: space.handle,
			areas,
			state,
			k,
			workers,
			n,
			rounds: 60,
			seed: 11 + k,
		}),
	);
	for (const w of ws) space.watch(w);
	const reports = await Promise.all(ws.map((w) => reportOf<{ errors: string[]; frees: number }>(w)));
	await Promise.all(ws.map((w) => w.terminate()));
	for (const [k, r] of reports.entries()) assert.deepEqual(r.errors, [], `worker ${k}`);
	console.log(`# ${reports.reduce((a, r) => a + r.frees, 0)} remote frees racing retires, none thrown`);
	space.purge({ sync: true });
	space.check();
	const s = space.stats();
	assert.deepEqual([s.busyAreas, s.lazyAreas, s.smallBlocks], [0, 0, 0], "every block retired");
});
