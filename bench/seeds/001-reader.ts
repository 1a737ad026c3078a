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

const results: Record<string, number[]> = { alone: [], "with reader": [] };
let snapshots = 0;
for (let round = 0; round < 3; round++) {
	for (const withReader of [false, true]) {
		const space = VmapSpace.create({ start: 1, size: 2 ** 40, pageSize: 1 });
		const control = new SharedArrayBuffer(8);
		const flag = new Int32Array(control);
		const reader = withReader ? startWorker("./support/stats-reader.ts", { buffer: space.table.buffer, control }) : undefined;
		const report = reader && new Promise<{ snapshots: number }>((res) => reader.once("message", res));
		while (reader && Atomics.load(flag, 1) === 0) await new Promise((r) => setTimeout(r, 5));
		results[withReader ? "with reader" : "alone"]!.push(w1(space));
		Atomics.store(flag, 0, 1);
		if (report) snapshots += (await report).snapshots;
		await reader?.terminate();
	}
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const [k, v] of Object.entries(results)) console.log(`W1 ${k.padEnd(11)}: ${v.map((x) => (x / 1e6).toFixed(2)).join(", ")} M ops/s (median ${(med(v) / 1e6).toFixed(2)})`);
console.log(`ratio with/without reader: ${(med(results["with reader"]!) / med(results.alone!)).toFixed(3)} (target >= 0.95); the reader took ${snapshots} lock-free snapshots`);
