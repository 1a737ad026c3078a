/**
 * The liveness stress run: 4 real workers share a heap for VMAP_STRESS_SECONDS (default 20),
 * with slow, asynchronous and throwing flush hooks, random dump()/check()/purge() calls, and
 * every 2 s one watched worker terminated and replaced. It must end with no EOWNERDEAD (what
 * a terminated worker was changing under a lock is undone: buffer/journal.ts), no hang
 * (every wait is bounded by timeoutMs), no overlap, every area's bytes intact, and the space
 * whole after cleanup.
 */
import assert from "node:assert/strict";
import type { Worker } from "node:worker_threads";
import { test } from "node:test";
import { type VmapError, VmapHeap } from "../../src/index.ts";
import { HDR_DEAD } from "../../src/buffer/layout.ts";
import { startWorker } from "../../harness/workers.ts";

const SECONDS = Number(process.env.VMAP_STRESS_SECONDS ?? 20);
const FLUSHES = ["slow", "async", "throwing", "none"] as const;

const isOwnerDead = (e: unknown) => /^EOWNERDEAD: /.test(String((e as Error | null)?.message));

interface Report {
	id: number;
	flush: string;
	flushes: number;
	violations: string[];
	ops: number;
	allocs: number;
	frees: number;
	deferred: number;
	dumps: number;
	checks: number;
	purges: number;
	busy: number;
	flushErrors: number;
}

test(`stress: 4 workers, slow/async/throwing flushes, dump/check, watched workers terminated every 2 s, for ${SECONDS} s`, {
	timeout: (SECONDS + 120) * 1000,
}, async () => {
	const until = performance.now() + SECONDS * 1000;
	const totals = {
		rounds: 0,
		poisoned: 0,
		terminated: 0,
		ops: 0,
		allocs: 0,
		frees: 0,
		deferred: 0,
		dumps: 0,
		checks: 0,
		purges: 0,
		busy: 0,
		flushErrors: 0,
		flushes: 0,
		leftovers: 0,
	};
	let seed = 1;
	while (performance.now() < until) {
		totals.rounds++;
		const heap = VmapHeap.create({ size: 16 << 20, maxSize: 64 << 20, nodes: 2, lazyMaxPages: 2048, timeoutMs: 30_000 });
		heap.offline(); // this thread reads nothing during the run
		const owners = new SharedArrayBuffer(4 * (heap.maxSize / heap.pageSize));
		const terminated = new Set<number>();
		const reports: Report[] = [];
		let poisoned: VmapError | undefined;
		const running = new Map<Worker, { id: number; report: Promise<Report | undefined> }>();
		const start = async (flush: (typeof FLUSHES)[number]) => {
			const w = startWorker(new URL("../support/stress-worker.ts", import.meta.url), {
				handle: heap.handle,
				owners,
				flush,
				seed: seed++,
			});
			heap.watch(w);
			const id = await new Promise<number>((resolve, reject) => {
				w.once("message", (m: { ready: number }) => resolve(m.ready));
				w.once("error", reject);
			});
			const report = new Promise<Report | undefined>((resolve, reject) => {
				w.once("message", resolve);
				w.once("error", (e) => {
					// A worker's error arrives as a copy: no VmapError prototype, the message kept.
					if (isOwnerDead(e)) {
						poisoned = e as VmapError;
						resolve(undefined);
					} else reject(e);
				});
				w.once("exit", () => resolve(undefined));
			});
			running.set(w, { id, report });
			return w;
		};
		const kinds = new Map<Worker, (typeof FLUSHES)[number]>();
		for (const f of FLUSHES) kinds.set(await start(f), f);
		const roundEnd = Math.min(until, performance.now() + 10_000);
		while (performance.now() < roundEnd && poisoned === undefined) {
			await new Promise((r) => setTimeout(r, 2000));
			if (poisoned !== undefined) break;
			const victims = [...running.keys()];
			const victim = victims[Math.floor(Math.random() * victims.length)]!;
			const { id } = running.get(victim)!;
			running.delete(victim);
			terminated.add(id);
			totals.terminated++;
			const exited = new Promise((r) => victim.once("exit", r));
			await victim.terminate();
			await exited; // watch() has ended its handle
			if (heap.space.table.hdr[HDR_DEAD] !== 0) break;
			try {
				kinds.set(await start(kinds.get(victim)!), kinds.get(victim)!);
			} catch (e) {
				if (!isOwnerDead(e)) throw e;
				poisoned = e as VmapError;
			}
		}
		for (const w of running.keys()) w.postMessage("stop");
		for (const [w, { report }] of running) {
			const r = await report;
			if (r !== undefined) reports.push(r);
			await w.terminate();
		}
		for (const r of reports) {
			assert.deepEqual(r.violations, [], `worker ${r.id} (${r.flush} flush)`);
			for (const k of ["ops", "allocs", "frees", "deferred", "dumps", "checks", "purges", "busy", "flushErrors", "flushes"] as const)
				totals[k] += r[k];
		}
		const dead = heap.space.table.hdr[HDR_DEAD]!;
		assert.deepEqual([dead, String(poisoned ?? "")], [0, ""], "no recovery failed: the space is not poisoned");
		// Cleanup: deferred frees go through (every other handle is gone), then what the
		// terminated workers held is freed by hand; the space must then be whole.
		heap.synchronize(10_000);
		const areas = (heap.space.dump() as { areas: Array<{ start: number; state: string }> }).areas.filter((a) => a.state === "busy");
		totals.leftovers += areas.length;
		for (const a of areas) heap.vfree(a.start);
		heap.purge({ sync: true });
		heap.check();
		const s = heap.stats();
		assert.deepEqual([s.busyAreas, s.lazyAreas, s.freeBytes + s.poolBytes], [0, 0, s.size], "the space is whole again");
		heap.close();
	}
	console.log(`# stress: ${JSON.stringify(totals)}`);
	assert.ok(totals.ops > 0 && totals.terminated > 0);
});
