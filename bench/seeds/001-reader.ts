/**
 * Seed 001 (Joonsoo Kim, 2014): /proc/meminfo readers contended on vmap_area_lock; the fix read
 * statistics under RCU, without the lock. Here: W1 (random sizes, 10k live, 1e6 ops) on this
 * thread, alone and with a worker reading stats() in a loop from the shared buffer.
 * Target ratio >= 0.95. Run: node --import tsx bench/seeds/001-reader.ts
 */
import { VmapSpace } from "../../src/index.ts";
import { startWorker } from "../../test/support/workers.ts";
import { xorshift32 } from "../../test/support/xorshift.ts";

function w1(space: VmapSpace): number {
	const rnd = xorshift32(1);
	const hs = new Float64Array(10_200);
	let n = 0;
	while (n < 10_000) hs[n++] = space.alloc(1 + (rnd() % 4096));
	const t0 = performance.now();
	for (let i = 0; i < 1_000_000; i++) {
		if (n <= 9_900) hs[n++] = space.alloc(1 + (rnd() % 4096));
		else if (n >= 10_100 || rnd() & 1) {
			const k = rnd() % n;
			space.free(hs[k]!);
			hs[k] = hs[--n]!;
		} else hs[n++] = space.alloc(1 + (rnd() % 4096));
	}
	return 1e6 / ((performance.now() - t0) / 1000);
}

// "with spinner": a worker that only keeps the other core busy, touching nothing of the space:
// on a 2-core machine it shows what losing the second core (V8's GC and compiler threads run
// there) costs by itself, apart from the reader's traffic on the space's cache lines.
const kinds = { alone: undefined, "with spinner": "./support/spin-worker.ts", "with reader": "./support/stats-reader.ts" } as const;
const results: Record<string, number[]> = { alone: [], "with spinner": [], "with reader": [] };
let snapshots = 0;
for (let round = 0; round < 3; round++) {
	for (const [kind, entry] of Object.entries(kinds)) {
		const space = VmapSpace.create({ start: 1, size: 2 ** 40, pageSize: 1 });
		const control = new SharedArrayBuffer(8);
		const flag = new Int32Array(control);
		const other = entry ? startWorker(entry, { buffer: space.table.buffer, control }) : undefined;
		const report = other && new Promise<{ snapshots: number }>((res) => other.once("message", res));
		while (other && Atomics.load(flag, 1) === 0) await new Promise((r) => setTimeout(r, 5));
		results[kind]!.push(w1(space));
		Atomics.store(flag, 0, 1);
		if (report) snapshots += (await report).snapshots;
		await other?.terminate();
	}
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const [k, v] of Object.entries(results)) console.log(`W1 ${k.padEnd(12)}: ${v.map((x) => (x / 1e6).toFixed(2)).join(", ")} M ops/s (median ${(med(v) / 1e6).toFixed(2)})`);
console.log(`ratio with/without reader: ${(med(results["with reader"]!) / med(results.alone!)).toFixed(3)} (target >= 0.95); the reader took ${snapshots} lock-free snapshots`);
console.log(`ratio with/without a spinning worker (control): ${(med(results["with spinner"]!) / med(results.alone!)).toFixed(3)}`);
