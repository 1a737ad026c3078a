/**
 * The mail "vmalloc: use rcu list iterator to reduce vmap_area_lock contention" (Joonsoo Kim, 2014): /proc/meminfo readers contended on vmap_area_lock; the fix read
 * statistics under RCU, without the lock. Here: W1 (random sizes, 10k live, 1e6 ops) on this
 * thread, alone and with a worker reading stats() in a loop from the shared buffer, refilling
 * one object (`stats({ into })`), back to back or paced. Target ratio >= 0.95.
 * Run: node --import tsx bench/mails/stats-reader.ts [rounds]
 */
import { VmapSpace } from "../../src/index.ts";
import { CONTROL_BYTES, openGate, STOP } from "../../harness/gate.ts";
import { reportOf, startWorker } from "../../harness/workers.ts";
import { xorshift32 } from "../../harness/random.ts";

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

// "spinner": a worker that only keeps the other core busy, touching nothing of the space: on a
// 2-core machine it shows what losing the second core (V8's GC and compiler threads run there)
// costs by itself, apart from the reader's traffic on the space's cache lines. Paced readers
// sleep between snapshots, as a monitoring loop would.
const kinds: [string, URL | undefined, number][] = [
	["alone", undefined, 0],
	["spinner", new URL("../../harness/spin-worker.ts", import.meta.url), 0],
	["reader, back to back", new URL("../../harness/stats-reader.ts", import.meta.url), 0],
	["reader, every 10 us", new URL("../../harness/stats-reader.ts", import.meta.url), 10],
	["reader, every 100 us", new URL("../../harness/stats-reader.ts", import.meta.url), 100],
	["reader, every 1 ms", new URL("../../harness/stats-reader.ts", import.meta.url), 1000],
];
const rounds = Number(process.argv[2] ?? 5);
const runs = new Map<string, { rates: number[]; snapshots: number; inconsistent: number; violations: string[] }>();
for (const [kind] of kinds) runs.set(kind, { rates: [], snapshots: 0, inconsistent: 0, violations: [] });
for (let round = 0; round < rounds; round++) {
	for (const [kind, entry, pace] of kinds) {
		const space = VmapSpace.create({ start: 1, size: 2 ** 40, pageSize: 1 });
		const control = new SharedArrayBuffer(CONTROL_BYTES);
		const flag = new Int32Array(control);
		const other = entry ? startWorker(entry, { buffer: space.table.buffer, control, pace }) : undefined;
		const report = other && reportOf<{ snapshots: number; inconsistent?: number; violations?: string[] }>(other);
		if (report) await openGate(flag, 1, [report]);
		const run = runs.get(kind)!;
		const t0 = performance.now();
		run.rates.push(w1(space));
		Atomics.store(flag, STOP, 1);
		if (report) {
			const r = await report;
			run.snapshots += r.snapshots / ((performance.now() - t0) / 1000) / rounds;
			run.inconsistent += r.inconsistent ?? 0;
			run.violations.push(...(r.violations ?? []));
		}
		await other?.terminate();
		space.check();
	}
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const alone = med(runs.get("alone")!.rates);
const spinner = med(runs.get("spinner")!.rates);
console.log(
	"vmalloc: use rcu list iterator to reduce vmap_area_lock contention: /proc/meminfo readers took vmap_area_lock; fixed by reading under RCU, without the lock (no figures in the mail)",
);
console.log(`vmap: W1 (1e6 ops, random sizes 1..4096, 10k live) on the main thread, ${rounds} rounds interleaved, medians:\n`);
console.log("| case | W1 ops/s (median) | runs, M ops/s | vs alone | vs spinner | snapshots/s | inconsistent | invariant violations |");
console.log("|---|---:|---|---:|---:|---:|---:|---:|");
for (const [kind, entry] of kinds) {
	const r = runs.get(kind)!;
	const m = med(r.rates);
	const reader = entry?.pathname.includes("reader");
	console.log(
		`| ${kind} | ${(m / 1e6).toFixed(3)} M | ${r.rates.map((x) => (x / 1e6).toFixed(2)).join(", ")} | ${(m / alone).toFixed(3)} | ${(m / spinner).toFixed(3)} | ${reader ? Math.round(r.snapshots) : "-"} | ${reader ? r.inconsistent : "-"} | ${reader ? r.violations.length : "-"} |`,
	);
}
const tight = med(runs.get("reader, back to back")!.rates);
console.log(`\nratio with/without reader (back to back): ${(tight / alone).toFixed(3)} (target >= 0.95)`);
const bad = [...runs.values()].flatMap((r) => r.violations);
if (bad.length > 0) {
	console.log(`invariant violations: ${bad.slice(0, 5).join("; ")}`);
	process.exitCode = 1;
}
