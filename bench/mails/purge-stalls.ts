/**
 * The mail "mm: vmalloc: Replace purge_lock spinlock with atomic refcount" (Joel Fernandes, 2016): a purge that walks a long list while holding a lock stalls
 * everything else; cyclictest showed Max 1177-2886 us, 284-321 us once the purge could be
 * preempted. Here: a vfree storm leaves 1,000,000 lazy areas, then they are purged while
 * perf_hooks.monitorEventLoopDelay measures how late the event loop runs: once by one
 * whole-list purge(), once by the scheduled drain, which yields between ~100 us slices.
 * Run: node --import tsx bench/mails/purge-stalls.ts
 */
import { setImmediate as tick } from "node:timers/promises";
import { VmapSpace } from "../../src/index.ts";

const N = 1_000_000;
const P = 4096;

async function run(mode: "whole-list purge" | "bounded drain") {
	// Whole-list: no drain ever falls due; the purge is one call. Bounded: the last free makes
	// the drain due (N lazy pages > N - 1) without reaching the priority threshold.
	const s = VmapSpace.create({ size: 2 ** 44, lazyMaxPages: mode === "bounded drain" ? N - 1 : 4 * N });
	const areas = new Float64Array(N);
	for (let i = 0; i < N; i++) areas[i] = s.alloc(P);
	for (let i = 0; i < N - 1; i++) s.free(areas[i]!);
	// The probe: every turn of the event loop records how long it waited for its turn.
	let last = performance.now();
	const gaps: number[] = [];
	let probing = true;
	const probe = () => {
		const now = performance.now();
		gaps.push(now - last);
		last = now;
		if (probing) setImmediate(probe);
	};
	setImmediate(probe);
	await tick();
	await tick();
	const t0 = performance.now();
	s.free(areas[N - 1]!); // bounded: schedules the drain
	if (mode === "whole-list purge") setImmediate(() => s.purge());
	while (s.stats().lazyAreas > 0) await tick();
	const ms = performance.now() - t0;
	await tick(); // the probe's turn after the last of the purge
	await tick();
	probing = false;
	s.check();
	const sorted = gaps.sort((a, b) => a - b);
	const us = (q: number) => 1000 * sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
	const avgUs = (1000 * sorted.reduce((a, b) => a + b, 0)) / sorted.length;
	return { mode, ms, avgUs, maxUs: 1000 * sorted[sorted.length - 1]!, medianUs: us(0.5), p99Us: us(0.99), samples: sorted.length };
}

const whole = await run("whole-list purge");
const bounded = await run("bounded drain");
console.log(
	"mm: vmalloc: Replace purge_lock spinlock with atomic refcount (cyclictest -p 99 -n beside a vmalloc/vfree 8K loop, 4.8, quad core):",
);
console.log("  Without patch: Avg: 128 Max: 1177 | Avg: 122 Max: 1897 | Avg: 93 Max: 2886 (us)");
console.log("  With patch:    Avg: 92 Max: 284   | Avg: 94 Max: 296   | Avg: 107 Max: 321 (us)");
console.log(`vmap, purging ${N.toLocaleString("en")} lazy areas; gaps between turns of the event loop:`);
for (const r of [whole, bounded]) {
	console.log(
		`  ${r.mode.padEnd(17)} Avg: ${r.avgUs.toFixed(0)} Max: ${r.maxUs.toFixed(0)} (us)   median ${r.medianUs.toFixed(0)}, p99 ${r.p99Us.toFixed(0)} us; purge took ${r.ms.toFixed(0)} ms, ${r.samples} turns`,
	);
}
console.log(`  Max, whole-list / bounded: ${(whole.maxUs / bounded.maxUs).toFixed(1)}x (target >= 10x, bounded Max <= 2000 us)`);
