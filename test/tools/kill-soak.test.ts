/**
 * The kill soak: 4 lanes, each starting a worker on one shared heap (random vmalloc/vfree,
 * small and large, a third tagged, bytes written and checked, pages claimed in a shared map:
 * test/support/stress-worker.ts), letting it run a random 0-80 ms, and terminating it, until
 * VMAP_SOAK_KILLS (default 1,000) terminate()s, or for VMAP_SOAK_SECONDS. Every worker is watched, so its end is seen and
 * whatever critical section it was in is undone. It must end with 0 poisoned spaces, 0 hangs
 * (a worker not ready within HANG_MS), 0 overlaps and 0 bytes changed in live areas, and,
 * since each is watched with freeAreas, nothing left busy by the dead: the space is whole
 * when the last has ended. (What it found: a freeDeferred that
 * marked its area before queueing it, and an exit listener that blocked on a lock held by a
 * live handle waiting for a dead one: both fixed.)
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { build } from "esbuild";
import { VmapHeap } from "../../src/index.ts";
import { lockHolder, spaceLockWords } from "../../src/buffer/lock.ts";
import { lockName } from "../../src/buffer/lock-names.ts";
import { HANDLE_ENDING, HANDLE_MAX, HANDLE_STATE, HANDLE_WORDS, HDR_DEAD } from "../../src/buffer/layout.ts";
import { HANG_MS } from "../../harness/workers.ts";
import { randomBelow } from "../../harness/random.ts";

const KILLS = Number(process.env.VMAP_SOAK_KILLS ?? 1000);
/** With VMAP_SOAK_SECONDS, the soak runs that long instead (a worker pool's day: the issue asks for 10 minutes). */
const SECONDS = Number(process.env.VMAP_SOAK_SECONDS ?? 0);
const FLUSHES = ["slow", "async", "throwing", "none"] as const;

/**
 * The worker, bundled into one JavaScript file (esbuild, which tsx brings): a worker that loads
 * TypeScript through tsx takes seconds to start here, and a thousand of them would take the
 * soak's time in start-ups rather than in kills.
 */
async function bundledWorker(dir: string): Promise<string> {
	const outfile = join(dir, "stress-worker.mjs");
	await build({
		entryPoints: [new URL("../support/stress-worker.ts", import.meta.url).pathname],
		bundle: true,
		platform: "node",
		format: "esm",
		outfile,
		logLevel: "error",
	});
	return outfile;
}

/** Who holds which lock now, and how many handles are ending: what a hang report needs. */
function holders(heap: VmapHeap): string {
	const t = heap.space.table;
	const held = spaceLockWords(t)
		.map((w) => [w, lockHolder(t.hdr, w)] as const)
		.filter(([, h]) => h !== 0)
		.map(([w, h]) => `${lockName(t.hdr, w)} by ${h}`);
	return `locks held: ${held.join(", ") || "none"}; ending handles: ${endingHandles(heap)}`;
}

/** Handles whose end hooks have not finished. */
function endingHandles(heap: VmapHeap): number {
	let n = 0;
	for (let i = 0; i < HANDLE_MAX; i++) if (heap.space.table.handles[i * HANDLE_WORDS + HANDLE_STATE] === HANDLE_ENDING) n++;
	return n;
}

const WHAT = SECONDS > 0 ? `${SECONDS} s of` : `${KILLS}`;

test(`kill soak: ${WHAT} terminate()s at random instants of 4 workers sharing a heap`, { timeout: 900_000 + SECONDS * 1000 }, async () => {
	const until = performance.now() + SECONDS * 1000;
	const more = () => (SECONDS > 0 ? performance.now() < until : totals.kills < KILLS);
	const dir = mkdtempSync(join(tmpdir(), "vmap-soak-"));
	const worker = await bundledWorker(dir);
	const heap = VmapHeap.create({ size: 16 << 20, maxSize: 64 << 20, nodes: 2, lazyMaxPages: 2048, timeoutMs: 30_000 });
	heap.offline(); // this thread reads nothing during the run
	const owners = new SharedArrayBuffer(4 * (heap.maxSize / heap.pageSize));
	const rnd = randomBelow(7);
	const claims = new Int32Array(owners);
	const disown = (id: number) => {
		for (let p = 0; id !== 0 && p < claims.length; p++) Atomics.compareExchange(claims, p, id, 0);
	};
	const totals = { kills: 0, poisoned: 0, hangs: 0, violations: [] as string[], errors: [] as string[], watchErrors: [] as string[] };
	let seed = 1;
	const lane = async (k: number) => {
		while (more() && totals.poisoned === 0) {
			const w = new Worker(worker, { workerData: { handle: heap.handle, owners, flush: FLUSHES[k], seed: seed++ } });
			let id = 0;
			// Before watch()'s listener frees its areas: the pages it claimed are nobody's again.
			w.once("exit", () => disown(id));
			heap.watch(w, { freeAreas: true, onError: (e) => totals.watchErrors.push(String(e)) });
			const exited = new Promise((r) => w.once("exit", r));
			w.on("message", (m: { violation?: string; ready?: number }) => {
				if (m.violation !== undefined) totals.violations.push(m.violation);
				if (m.ready !== undefined) id = m.ready;
			});
			w.on("error", (e) => totals.errors.push(String(e)));
			const ready = await Promise.race([
				new Promise<boolean>((r) => w.once("message", () => r(true))),
				exited.then(() => false),
				new Promise<boolean>((r) => setTimeout(() => r(false), HANG_MS)),
			]);
			if (!ready && totals.errors.length === 0) {
				totals.hangs++;
				console.log(`# hang: lane ${k}, worker not ready in ${HANG_MS} ms; ${holders(heap)}`);
			}
			await new Promise((r) => setTimeout(r, rnd(80)));
			await w.terminate();
			await exited; // watch() has ended its handle, undoing what it was in the middle of
			totals.kills++;
			if (heap.space.table.hdr[HDR_DEAD] !== 0) totals.poisoned++;
		}
	};
	await Promise.all([0, 1, 2, 3].map(lane));
	// End hooks a busy lock put off run from a timer: let them finish (the heap's forgets the
	// dead for grace periods), then the deferred frees go through.
	while (endingHandles(heap) > 0) await new Promise((r) => setTimeout(r, 5));
	heap.synchronize(10_000);
	heap.check();
	const areas = (heap.space.dump() as { areas: Array<{ start: number; state: string; owner?: number }> }).areas;
	const leftovers = areas.filter((a) => a.state === "busy");
	heap.space.purge({ sync: true });
	heap.space.trim();
	heap.check();
	const s = heap.stats();
	console.log(
		`# kill soak: ${totals.kills} terminate()s, ${totals.poisoned} poisoned spaces, ${totals.hangs} hangs, ${totals.violations.length} overlaps or changed bytes, ${totals.errors.length} worker errors, ${totals.watchErrors.length} exit-handler errors, ${leftovers.length} areas left busy by the dead (${s.frees} frees in all)`,
	);
	assert.deepEqual(leftovers, [], "freeAreas freed every area the dead held");
	assert.deepEqual(totals.errors, []);
	assert.deepEqual(totals.violations, []);
	assert.deepEqual(totals.watchErrors, []);
	assert.deepEqual([totals.poisoned, totals.hangs], [0, 0]);
	assert.deepEqual([s.busyAreas, s.lazyAreas, s.freeBytes], [0, 0, s.size], "the space is whole again");
	heap.close();
	rmSync(dir, { recursive: true });
});
