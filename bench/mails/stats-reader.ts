/**
 * The mail "vmalloc: use rcu list iterator to reduce vmap_area_lock contention" (Joonsoo Kim, 2014): /proc/meminfo readers contended on vmap_area_lock; the fix read
 * statistics under RCU, without the lock. Here: W1 (random sizes, 10k live) on this thread,
 * beside a worker that is by turns asleep, spinning (keeping the other core busy, touching
 * nothing of the space: on a 2-core machine it shows what losing the second core, where V8's
 * GC and compiler threads run, costs by itself), or reading stats() from the shared buffer,
 * refilling one object (`stats({ into })`), back to back or paced.
 *
 * The neighbour changes every few milliseconds (`loads`), in turns that run the
 * kinds forward and backward, and each kind is compared with the spinner of the same turn:
 * this machine's speed swings by a third from one second to the next, more than the 5 % to
 * be seen, and a turn is short enough for both to see the same machine. Target: the
 * back-to-back reader at least 0.95 of the spinner.
 * Run: node --import tsx bench/mails/stats-reader.ts [rounds]
 */
import { VmapSpace } from "../../src/index.ts";
import { openGate, STOP } from "../../harness/gate.ts";
import { MODE, READER_CONTROL_BYTES, READER_IDLE, READER_SPIN } from "../../harness/stats-reader.ts";
import { reportOf, startWorker } from "../../harness/workers.ts";
import { xorshift32 } from "../../harness/random.ts";

/**
 * The two loads: W1 through the small-area cache (the default), and W1 with `smallMax: 0`, every
 * request through the trees and their locks, whose words a reader reads for its sequence locks.
 * Operations per turn of one neighbour (a few milliseconds), and turns of every kind per round.
 */
const loads = [
	{ name: "W1 through the small-area cache (default options)", smallMax: undefined, chunk: 50_000, turns: 16 },
	{ name: "W1 with smallMax 0 (every request takes the locks)", smallMax: 0, chunk: 10_000, turns: 8 },
];

const kinds: [label: string, mode: number][] = [
	["alone (the other thread asleep)", READER_IDLE],
	["spinner", READER_SPIN],
	["reader, back to back", 0],
	["reader, every 10 us", 10],
	["reader, every 100 us", 100],
	["reader, every 1 ms", 1000],
];
const SPIN = 1;

/** W1 on `space`: 10k live areas of 1..4096 bytes, `ops` operations from where `live` left them; returns ms. */
function w1(space: VmapSpace, live: { hs: Float64Array; n: number; rnd: () => number }, ops: number): number {
	const { hs, rnd } = live;
	let n = live.n;
	const t0 = performance.now();
	for (let i = 0; i < ops; i++) {
		if (n <= 9_900) hs[n++] = space.alloc(1 + (rnd() % 4096));
		else if (n >= 10_100 || rnd() & 1) {
			const k = rnd() % n;
			space.free(hs[k]!);
			hs[k] = hs[--n]!;
		} else hs[n++] = space.alloc(1 + (rnd() % 4096));
	}
	live.n = n;
	return performance.now() - t0;
}

interface Load {
	name: string;
	smallMax: number | undefined;
	chunk: number;
	turns: number;
}

/** One round of `load`: a fresh space and reader; per kind, the ms of each turn. */
async function round(load: Load, seed: number) {
	const space = VmapSpace.create({
		start: 1,
		size: 2 ** 40,
		pageSize: 1,
		...(load.smallMax !== undefined && { smallMax: load.smallMax }),
	});
	const control = new SharedArrayBuffer(READER_CONTROL_BYTES);
	const flag = new Int32Array(control);
	Atomics.store(flag, MODE, READER_IDLE);
	const worker = startWorker(new URL("../../harness/stats-reader.ts", import.meta.url), {
		buffer: space.table.buffer,
		control,
		modes: true,
	});
	const report = reportOf<{ inconsistent: number; violations: string[]; byMode: Record<number, number> }>(worker);
	await openGate(flag, 1, [report]);
	const live = { hs: new Float64Array(10_200), n: 0, rnd: xorshift32(seed) };
	while (live.n < 10_000) live.hs[live.n++] = space.alloc(1 + (live.rnd() % 4096));
	w1(space, live, 4 * load.chunk); // warm-up
	const ms = kinds.map(() => [] as number[]);
	for (let turn = 0; turn < load.turns; turn++) {
		for (let j = 0; j < kinds.length; j++) {
			const k = turn & 1 ? kinds.length - 1 - j : j;
			Atomics.store(flag, MODE, kinds[k]![1]);
			Atomics.notify(flag, MODE);
			ms[k]!.push(w1(space, live, load.chunk));
		}
	}
	Atomics.store(flag, STOP, 1);
	Atomics.notify(flag, MODE);
	const r = await report;
	await worker.terminate();
	space.check();
	return { ms, ...r };
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Run `rounds` rounds of `load` and print its table; returns the back-to-back reader's ratio to the spinner and the violations. */
async function report(load: Load, rounds: number): Promise<[number, string[]]> {
	const ms = kinds.map(() => [] as number[]); // per kind, per turn (all rounds)
	const roundRates = kinds.map(() => [] as number[]);
	const snapshots = kinds.map(() => 0);
	let inconsistent = 0;
	const violations: string[] = [];
	for (let i = 0; i < rounds; i++) {
		const r = await round(load, 1 + i);
		inconsistent += r.inconsistent;
		violations.push(...r.violations);
		kinds.forEach(([, mode], k) => {
			ms[k]!.push(...r.ms[k]!);
			roundRates[k]!.push(load.chunk / med(r.ms[k]!) / 1000);
			snapshots[k]! += r.byMode[mode] ?? 0;
		});
	}
	/** Median over turns of kind k's speed as a fraction of kind `of`'s in the same turn. */
	const paired = (k: number, of: number) => med(ms[k]!.map((t, i) => ms[of]![i]! / t));
	console.log(`\n${load.name}: ${rounds} rounds of ${load.turns} turns of ${load.chunk / 1000}k operations per neighbour:\n`);
	console.log("| neighbour | W1 ops/s (median) | per round, M ops/s | vs alone | vs spinner | snapshots/s |");
	console.log("|---|---:|---|---:|---:|---:|");
	kinds.forEach(([label, mode], k) => {
		const total = ms[k]!.reduce((a, b) => a + b, 0) / 1000;
		const reads = mode >= 0 ? Math.round(snapshots[k]! / total) : "-";
		console.log(
			`| ${label} | ${(load.chunk / med(ms[k]!) / 1000).toFixed(3)} M | ${roundRates[k]!.map((x) => x.toFixed(2)).join(", ")} | ${paired(k, 0).toFixed(3)} | ${paired(k, SPIN).toFixed(3)} | ${reads} |`,
		);
	});
	console.log(`\nsnapshots flagged inconsistent: ${inconsistent}; invariant violations: ${violations.length}`);
	return [paired(2, SPIN), violations];
}

const rounds = Number(process.argv[2] ?? 5);
console.log(
	"vmalloc: use rcu list iterator to reduce vmap_area_lock contention: /proc/meminfo readers took vmap_area_lock; fixed by reading under RCU, without the lock (no figures in the mail)",
);
console.log(
	"vmap: W1 (random sizes 1..4096, 10k live) on the main thread, the neighbour changed every turn, kinds interleaved; speeds are medians over turns, ratios medians of the turn-by-turn ratios",
);
const results: [string, number][] = [];
const violations: string[] = [];
for (const load of loads) {
	const [ratio, bad] = await report(load, rounds);
	results.push([load.name, ratio]);
	violations.push(...bad);
}
console.log("");
for (const [name, ratio] of results) console.log(`back-to-back reader vs spinner, ${name}: ${ratio.toFixed(3)} (target >= 0.95)`);
if (violations.length > 0) {
	console.log(`invariant violations: ${violations.slice(0, 5).join("; ")}`);
	process.exitCode = 1;
}
