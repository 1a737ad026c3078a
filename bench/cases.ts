/**
 * Benchmark cases. Each runs alone in a fresh process (bench/core.bench.ts spawns them) and
 * prints one JSON line. Workloads follow ../shared/anchors/js-allocators.md section 5, so the
 * anchor's figures for other allocators compare directly: the same xorshift32, the same
 * 10,000 +- 100 live band, the same 1e6 timed operations.
 */
import { Worker } from "node:worker_threads";
import { MemPool } from "@thi.ng/malloc";
import { VmapSpace } from "../src/index.ts";
import { xorshift32 } from "../test/support/xorshift.ts";

/** One allocator as the workloads see it: alloc returns 0 on failure. */
interface Subject {
	alloc(size: number): number;
	free(addr: number): void;
	/** Buffer bytes in use by the allocator's own bookkeeping plus data, where it has a figure. */
	bytes(): number;
	check(): void;
	poolHitRate?(): number;
}

function vmapSubject(pageSize: number, size: number, nodes = 1): Subject {
	const s = VmapSpace.create({ start: pageSize, size, pageSize, shared: true, nodes });
	return {
		alloc: (n) => s.alloc(n),
		free: (a) => s.free(a),
		bytes: () => s.table.buffer.byteLength,
		check: () => s.check(),
		poolHitRate: () => hitRate(s),
	};
}

function thingSubject(): Subject {
	const pool = new MemPool({ buf: new ArrayBuffer(64 << 20), align: 8 });
	return {
		alloc: (n) => pool.malloc(n),
		free: (a) => void pool.free(a),
		bytes: () => 64 << 20,
		check: () => {},
	};
}

const rnd = xorshift32(1);

function hitRate(s: VmapSpace): number {
	const st = s.stats();
	return st.poolHits + st.poolMisses === 0 ? 0 : st.poolHits / (st.poolHits + st.poolMisses);
}

/** Round a byte count up to the allocator's unit. */
type Sizer = (n: number) => number;

/**
 * W1 (and the scale runs): keep about `live` areas of random sizes 1..maxSize, and time `ops`
 * operations, each an alloc or a free of a random live area, the live count held in
 * [live - 100, live + 100] (1% for larger live counts).
 */
function random(a: Subject, live: number, ops: number, maxSize: number, unit: Sizer, timeLimitMs: number) {
	const band = Math.max(100, Math.floor(live / 100));
	const hs = new Float64Array(live + band + 1);
	const sizes = new Float64Array(live + band + 1);
	let n = 0;
	let fails = 0;
	const doAlloc = () => {
		const size = unit(1 + (rnd() % maxSize));
		const h = a.alloc(size);
		if (!h) {
			fails++;
			return;
		}
		hs[n] = h;
		sizes[n] = size;
		n++;
	};
	const doFree = () => {
		const i = rnd() % n;
		a.free(hs[i]!);
		n--;
		hs[i] = hs[n]!;
		sizes[i] = sizes[n]!;
	};
	while (n < live) doAlloc();
	const bytesAtFill = a.bytes();
	fails = 0;
	let done = 0;
	const t0 = performance.now();
	for (; done < ops; done++) {
		if (n <= live - band) doAlloc();
		else if (n >= live + band || n === 0) doFree();
		else if (rnd() & 1) doAlloc();
		else doFree();
		if ((done & 1023) === 0 && performance.now() - t0 > timeLimitMs) break;
	}
	const sec = (performance.now() - t0) / 1000;
	// Integrity: live ranges never overlap.
	const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => hs[x]! - hs[y]!);
	let overlaps = 0;
	for (let k = 1; k < order.length; k++) if (hs[order[k - 1]!]! + sizes[order[k - 1]!]! > hs[order[k]!]!) overlaps++;
	a.check();
	return { ops: done, sec, opsPerSec: done / sec, nsPerOp: (sec * 1e9) / done, fails, overlaps, live: n, bytesAtFill, bytesPerLiveAtFill: bytesAtFill / live, bytesAtEnd: a.bytes(), bytesPerLiveAtEnd: a.bytes() / n, capped: done < ops };
}

/** W0: fixed-size alloc+free pairs. */
function fixed(a: Subject, size: number, pairs: number) {
	for (let i = 0; i < 10_000; i++) a.free(a.alloc(size));
	let fails = 0;
	const t0 = performance.now();
	for (let i = 0; i < pairs; i++) {
		const h = a.alloc(size);
		if (!h) {
			fails++;
			continue;
		}
		a.free(h);
	}
	const sec = (performance.now() - t0) / 1000;
	a.check();
	return { pairs, sec, pairsPerSec: pairs / sec, fails, poolHitRate: a.poolHitRate?.() ?? 0 };
}

/** A flush hook that costs about `us` microseconds of CPU, as a TLB shootdown or a GPU fence wait would. */
function burn(us: number): () => void {
	return () => {
		const until = performance.now() + us / 1000;
		while (performance.now() < until);
	};
}

/**
 * Batching (issue 3): fixed-size 1-page pairs with an expensive flush. `eager` purges after
 * every free (a flush per free, what allocators without lazy free must do to be safe); lazy
 * lets the threshold batch them (one flush per lazyMaxPages pages).
 */
function batching(eager: boolean, pairs: number) {
	const s = VmapSpace.create({ size: 2 ** 40, flush: burn(20) });
	const t0 = performance.now();
	for (let i = 0; i < pairs; i++) {
		s.free(s.alloc(4096));
		if (eager) s.purge();
	}
	const sec = (performance.now() - t0) / 1000;
	s.check();
	const st = s.stats();
	return { pairs, sec, pairsPerSec: pairs / sec, fails: 0, flushes: st.flushes, pairsPerFlush: pairs / st.flushes };
}

/**
 * `workers` real worker_threads share one space, released together; aggregate ops/s is all
 * operations over the slowest worker's time. W0 counts alloc+free pairs.
 */
async function shared(workload: "W0" | "W1", workers: number, opsEach: number, nodes: number) {
	const space = workload === "W0" ? VmapSpace.create({ size: 2 ** 40, nodes }) : VmapSpace.create({ start: 1, size: 2 ** 40, pageSize: 1, nodes });
	const control = new SharedArrayBuffer(8);
	const gate = new Int32Array(control);
	const entry = new URL("./worker-job.ts", import.meta.url).href;
	const boot = new URL("../scripts/ts-worker.mjs", import.meta.url);
	const ws = Array.from({ length: workers }, (_, i) => new Worker(boot, { workerData: { entry, handle: space.handle, control, workload, ops: opsEach, live: 10_000, seed: 1 + i } }));
	const reports = ws.map((w) => new Promise<{ ops: number; ms: number; lockWaitMs: number }>((res, rej) => (w.once("message", res), w.once("error", rej))));
	while (Atomics.load(gate, 1) < workers) await new Promise((r) => setTimeout(r, 5));
	Atomics.store(gate, 0, 1);
	Atomics.notify(gate, 0);
	const out = await Promise.all(reports);
	await Promise.all(ws.map((w) => w.terminate()));
	space.check();
	const ms = Math.max(...out.map((r) => r.ms));
	const ops = out.reduce((n, r) => n + r.ops, 0);
	return { workers, nodes, ops, sec: ms / 1000, opsPerSec: (ops / ms) * 1000, poolHitRate: hitRate(space), helped: space.stats().helped, lockWaitMs: out.reduce((n, r) => n + r.lockWaitMs, 0), lockWaitShare: out.reduce((n, r) => n + r.lockWaitMs, 0) / (ms * workers) };
}

const byte: Sizer = (n) => n;

export const cases: Record<string, () => object | Promise<object>> = {
	"workers W0 x1 nodes 1": () => shared("W0", 1, 2_000_000, 1),
	"workers W0 x2 nodes 1": () => shared("W0", 2, 1_000_000, 1),
	"workers W0 x1 nodes 2": () => shared("W0", 1, 2_000_000, 2),
	"workers W0 x2 nodes 2": () => shared("W0", 2, 1_000_000, 2),
	"workers W0 x2 nodes 4": () => shared("W0", 2, 1_000_000, 4),
	"workers W1 x1 nodes 1": () => shared("W1", 1, 1_000_000, 1),
	"workers W1 x2 nodes 1": () => shared("W1", 2, 500_000, 1),
	"workers W1 x1 nodes 2": () => shared("W1", 1, 1_000_000, 2),
	"workers W1 x2 nodes 2": () => shared("W1", 2, 500_000, 2),
	"W0 vmap 64 B (pageSize 1)": () => fixed(vmapSubject(1, 2 ** 32), 64, 5_000_000),
	"W0 vmap 1 page (pageSize 4096)": () => fixed(vmapSubject(4096, 2 ** 40), 4096, 5_000_000),
	"W0 vmap 1 page, pool path (nodes 2)": () => fixed(vmapSubject(4096, 2 ** 40, 2), 4096, 5_000_000),
	"W0 thi.ng 64 B": () => fixed(thingSubject(), 64, 5_000_000),
	"batching lazy (flush burns 20 us)": () => batching(false, 2_000_000),
	"batching eager (flush burns 20 us, purge after every free)": () => batching(true, 20_000),
	"W1 vmap": () => random(vmapSubject(1, 2 ** 36), 10_000, 1_000_000, 4096, byte, 60_000),
	"W1 thi.ng (capped: 20k ops or 10 s)": () => random(thingSubject(), 10_000, 20_000, 4096, byte, 10_000),
	"scale vmap 1k live": () => random(vmapSubject(1, 2 ** 44), 1_000, 1_000_000, 4096, byte, 60_000),
	"scale vmap 10k live": () => random(vmapSubject(1, 2 ** 44), 10_000, 1_000_000, 4096, byte, 60_000),
	"scale vmap 100k live": () => random(vmapSubject(1, 2 ** 44), 100_000, 1_000_000, 4096, byte, 60_000),
	"scale vmap 1M live": () => random(vmapSubject(1, 2 ** 44), 1_000_000, 1_000_000, 4096, byte, 60_000),
};
