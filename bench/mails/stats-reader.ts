/**
 * The mail "vmalloc: use rcu list iterator to reduce vmap_area_lock contention" (Joonsoo Kim, 2014): /proc/meminfo readers contended on vmap_area_lock; the fix read
 * statistics under RCU, without the lock. Here: W1 (random sizes, 10k live) on this thread,
 * beside a worker that is by turns asleep, spinning (keeping the other core busy, touching
 * nothing of the space: on a 2-core machine it shows what losing the second core, where V8's
 * GC and compiler threads run, costs by itself), or reading stats() from the shared buffer,
 * refilling one object (`stats({ into })`), back to back or paced.
 *
 * The neighbour changes every CHUNK operations (a few milliseconds), in turns that run the
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

/** Operations per turn of one neighbour, and turns of every kind per round. */
const CHUNK = 50_000;
const TURNS = 16;

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

const rounds = Number(process.argv[2] ?? 5);
const ms = kinds.map(() => [] as number[]); // per kind, per turn (all rounds)
const roundRates = kinds.map(() => [] as number[]);
const timeIn = kinds.map(() => 0);
const snapshots = kinds.map(() => 0);
let inconsistent = 0;
const violations: string[] = [];
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (let round = 0; round < rounds; round++) {
	const space = VmapSpace.create({ start: 1, size: 2 ** 40, pageSize: 1 });
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
	const live = { hs: new Float64Array(10_200), n: 0, rnd: xorshift32(1 + round) };
	w1(space, live, 0);
	while (live.n < 10_000) live.hs[live.n++] = space.alloc(1 + (live.rnd() % 4096));
	w1(space, live, 4 * CHUNK); // warm-up
	const mine = kinds.map(() => [] as number[]);
	for (let turn = 0; turn < TURNS; turn++) {
		for (let j = 0; j < kinds.length; j++) {
			const k = turn & 1 ? kinds.length - 1 - j : j;
			Atomics.store(flag, MODE, kinds[k]![1]);
			Atomics.notify(flag, MODE);
			mine[k]!.push(w1(space, live, CHUNK));
		}
	}
	Atomics.store(flag, STOP, 1);
	Atomics.notify(flag, MODE);
	const r = await report;
	await worker.terminate();
	space.check();
	inconsistent += r.inconsistent;
	violations.push(...r.violations);
	kinds.forEach(([, mode], k) => {
		ms[k]!.push(...mine[k]!);
		roundRates[k]!.push(CHUNK / med(mine[k]!) / 1000);
		timeIn[k]! += mine[k]!.reduce((a, b) => a + b, 0);
		snapshots[k]! += r.byMode[mode] ?? 0;
	});
}
/** Median over turns of kind k's speed as a fraction of kind `of`'s in the same turn. */
const paired = (k: number, of: number) => med(ms[k]!.map((t, i) => ms[of]![i]! / t));
console.log(
	"vmalloc: use rcu list iterator to reduce vmap_area_lock contention: /proc/meminfo readers took vmap_area_lock; fixed by reading under RCU, without the lock (no figures in the mail)",
);
console.log(
	`vmap: W1 (random sizes 1..4096, 10k live) on the main thread, ${rounds} rounds of ${TURNS} turns of ${CHUNK / 1000}k operations per neighbour, interleaved; speeds are medians over turns, ratios medians of the turn-by-turn ratios:\n`,
);
console.log("| neighbour | W1 ops/s (median) | per round, M ops/s | vs alone | vs spinner | snapshots/s |");
console.log("|---|---:|---|---:|---:|---:|");
kinds.forEach(([label, mode], k) => {
	const rate = CHUNK / med(ms[k]!) / 1000;
	const reads = mode >= 0 ? Math.round(snapshots[k]! / (timeIn[k]! / 1000)) : "-";
	console.log(
		`| ${label} | ${rate.toFixed(3)} M | ${roundRates[k]!.map((x) => x.toFixed(2)).join(", ")} | ${paired(k, 0).toFixed(3)} | ${paired(k, SPIN).toFixed(3)} | ${reads} |`,
	);
});
console.log(`\nsnapshots flagged inconsistent: ${inconsistent}; invariant violations: ${violations.length}`);
console.log(`back-to-back reader vs spinner: ${paired(2, SPIN).toFixed(3)} (target >= 0.95)`);
if (violations.length > 0) {
	console.log(`invariant violations: ${violations.slice(0, 5).join("; ")}`);
	process.exitCode = 1;
}
