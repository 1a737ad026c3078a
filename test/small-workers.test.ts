/**
 * The small-area cache across real workers: each worker frees the areas the others
 * allocated (remote frees into blocks it does not own), every page claimed by CAS in a
 * shared ownership map (0 overlaps), every second free refused, check() in every worker after
 * every phase, handles that close with live small areas whose blocks other workers then
 * empty, and at the end, everything freed and purged, the space one free block again.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Worker } from "node:worker_threads";
import { VmapSpace } from "../src/index.ts";
import { freeBlocks } from "./support/inspect.ts";
import { reportOf, startWorker } from "../harness/workers.ts";

type Area = [addr: number, size: number, owner: number];

/** Send `msg`; resolve with the reply, or reject with the worker's error. */
async function ask<T>(w: Worker, msg: object): Promise<T> {
	const r = await new Promise<T & { error?: string }>((resolve, reject) => {
		const exited = (code: number) => reject(new Error(`worker exited with ${code}`));
		w.once("exit", exited);
		w.once("message", (m) => {
			w.off("exit", exited);
			resolve(m);
		});
		w.postMessage(msg);
	});
	if (r.error !== undefined) throw new Error(r.error);
	return r;
}

test("small areas: three workers free each other's small areas (remote frees); no overlap, double frees refused, closed handles' blocks emptied by others, the space whole at the end", async () => {
	const P = 16;
	const size = 2 ** 24;
	const space = VmapSpace.create({ size, pageSize: P, smallMax: 1024, nodes: 2, lazyMaxPages: 2 ** 20 }); // no drain runs between a free and its second free
	const owners = new SharedArrayBuffer((size / P) * 4);
	const workers = [0, 1, 2].map((i) =>
		startWorker(new URL("./support/small-worker.ts", import.meta.url), { handle: space.handle, owners, seed: 7 + i }),
	);
	try {
		for (const w of workers) space.watch(w);
		await Promise.all(workers.map((w) => reportOf(w)));
		const checkAll = async (ws: Worker[]) => {
			for (const w of ws) await ask(w, { cmd: "check" });
			space.check();
			// The workers are still: stats(), from each live worker's gauges, equals a count block by block.
			const st = space.stats();
			const blocks = (space.dump() as { blocks: Array<{ areaSize: number; live: number; lazy: number }> }).blocks;
			const sum = (f: (b: (typeof blocks)[0]) => number) => blocks.reduce((a, b) => a + f(b), 0);
			assert.deepEqual(
				[st.smallBlocks, st.smallAreas, st.smallBytes, st.smallLazyAreas, st.smallLazyBytes],
				[blocks.length, sum((b) => b.live), sum((b) => b.live * b.areaSize), sum((b) => b.lazy), sum((b) => b.lazy * b.areaSize)],
				"stats() against the blocks",
			);
		};

		for (let round = 0; round < 3; round++) {
			const lists = await Promise.all(workers.map((w) => ask<{ areas: Area[] }>(w, { cmd: "alloc", n: 3000 })));
			await checkAll(workers);
			const smallLive = space.stats().smallAreas;
			assert.ok(smallLive > 6000, `most areas are small: ${smallLive} small areas live`);
			// Worker i frees what worker i + 1 allocated, all at once.
			const freed = await Promise.all(
				workers.map((w, i) => ask<{ violations: string[] }>(w, { cmd: "free", areas: lists[(i + 1) % 3]!.areas })),
			);
			for (const [i, r] of freed.entries()) assert.deepEqual(r.violations, [], `worker ${i}`);
			await checkAll(workers);
			const refreed = await Promise.all(
				workers.map((w, i) =>
					ask<{ refused: number; lazy: number; violations: string[] }>(w, { cmd: "refree", areas: lists[(i + 1) % 3]!.areas }),
				),
			);
			for (const [i, r] of refreed.entries()) {
				assert.deepEqual(r.violations, [], `worker ${i}`);
				assert.equal(r.refused, lists[(i + 1) % 3]!.areas.length, `worker ${i}: every second free is refused`);
				assert.ok(r.lazy > 0, `worker ${i}: some second frees find their area lazy (EDOUBLEFREE)`);
			}
			await checkAll(workers);
			assert.equal(space.stats().smallAreas, 0, "every small area is freed");
		}

		// Worker 0 closes holding live small areas; the others free them into its orphaned blocks.
		const held = await ask<{ areas: Area[] }>(workers[0]!, { cmd: "alloc", n: 2000 });
		await ask(workers[0]!, { cmd: "close" });
		await checkAll(workers.slice(1));
		const blocksBefore = space.stats().smallBlocks;
		const half = Math.floor(held.areas.length / 2);
		const r1 = await ask<{ violations: string[] }>(workers[1]!, { cmd: "free", areas: held.areas.slice(0, half) });
		const r2 = await ask<{ violations: string[] }>(workers[2]!, { cmd: "free", areas: held.areas.slice(half) });
		assert.deepEqual([...r1.violations, ...r2.violations], []);
		await checkAll(workers.slice(1));
		const st = space.stats();
		assert.equal(st.smallAreas, 0);
		assert.ok(st.smallBlocks < blocksBefore, `emptied orphaned blocks retire: ${blocksBefore} blocks, then ${st.smallBlocks}`);
		const dump = space.dump() as { blocks: Array<{ owner: number }> };
		assert.ok(
			dump.blocks.every((b) => b.owner !== 0),
			"no block owned by nobody is left: each retired when its last area was freed",
		);

		// Everything freed: the last handles close, a purge flushes, the space is one free block.
		for (const w of workers.slice(1)) await ask(w, { cmd: "close" });
		assert.equal(space.stats().smallBlocks, 0, "closed handles retire their empty blocks");
		space.purge({ sync: true });
		space.check();
		const left = (space.dump() as { areas: unknown[] }).areas;
		assert.deepEqual(left, [], "no area is left");
		space.trim(); // two nodes: purged areas wait in pools
		assert.deepEqual(freeBlocks(space), [[space.start, space.end]]);
		const owned = new Int32Array(owners).findIndex((o) => o !== 0);
		assert.equal(owned, -1, "every page released");
	} finally {
		await Promise.all(workers.map((w) => w.terminate()));
	}
});
