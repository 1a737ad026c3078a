/**
 * `vmalloc bench` can be believed: its honesty counters catch a broken allocator, every peer
 * runs the workloads cleanly, a broken peer is reported with its own error, and the chart
 * labels every line. Speed is not asserted here; the bench measures it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { numberSubject, PEERS, type Subject } from "../bench/peers.ts";
import { FirstFit } from "../bench/peers/first-fit.ts";
import type { Meta, Run } from "../bench/results.ts";
import { chart } from "../bench/svg.ts";
import { fixed, random } from "../bench/workloads.ts";
import { xorshift32 } from "../harness/random.ts";

const small = { live: 300, ops: 20_000, maxSize: 4096, ids: false, timeLimitMs: 60_000, seed: 7 };

test("bench workloads: overlaps, out-of-range ranges and failures of a broken allocator are counted", () => {
	// Hands every address out twice: each range overlaps its twin.
	let next = 1;
	let twice = false;
	const doubling: Subject = {
		alloc: (n) => {
			twice = !twice;
			if (twice) return next;
			const a = next;
			next += n;
			return a;
		},
		free: () => {},
		check: () => {},
		base: 1,
		limit: 2 ** 40,
	};
	assert.ok(random(doubling, small).overlaps > 0, "ranges handed out twice overlap");
	assert.ok(fixed(doubling, { size: 64, pairs: 100, ids: false }).overlaps > 0, "W0's held probe finds them");

	// A bump allocator that runs past its limit.
	let top = 1;
	const bumpBy = (n: number) => {
		top += n;
		return top - n;
	};
	const runaway: Subject = { alloc: bumpBy, free: () => {}, check: () => {}, base: 1, limit: 100_000 };
	assert.ok(random(runaway, small).overlaps > 0, "ranges beyond the allocator's limit are counted");

	// Out of room after 100 allocations.
	let count = 0;
	const full: Subject = {
		alloc: (n) => (++count > 100 ? 0 : count * 4096 + n * 0),
		free: () => {},
		check: () => {},
		base: 4096,
		limit: 2 ** 30,
	};
	const r = random(full, small);
	assert.ok(r.fillFails > 0 && r.live === 100, "failed allocations are counted, not held");
});

test("bench workloads: fragmentation is peak span over peak live", () => {
	// A bump allocator never reuses: its span is everything ever allocated.
	let top = 1;
	const bumpBy = (n: number) => {
		top += n;
		return top - n;
	};
	const bump: Subject = { alloc: bumpBy, free: () => {}, check: () => {}, base: 1, limit: 2 ** 40 };
	const r = random(bump, small);
	assert.equal(r.peakSpan, top - 1);
	assert.ok(r.fragmentation > 10, `a bump allocator over 20k ops of 300 live: ${r.fragmentation}`);
	assert.equal(r.overlaps, 0);
});

test("bench peers: every working peer runs W0 and a random workload with no failure and no overlap", async () => {
	for (const p of PEERS) {
		if (p.id === "smo-heap") continue; // broken in Node; the next test shows how it is reported
		const ids = p.unit === "ids";
		const w0 = fixed(await p.make(2_000, 64), { size: 64, pairs: 20_000, ids });
		assert.deepEqual([w0.fails, w0.overlaps], [0, 0], `${p.id} W0`);
		const r = random(await p.make(small.live, small.maxSize), { ...small, ids });
		assert.deepEqual([r.ops, r.fails, r.overlaps], [small.ops, 0, 0], `${p.id} random`);
		assert.ok(r.fragmentation >= 1, `${p.id}: span at least the live bytes`);
	}
});

test("bench peers: the linear first-fit keeps its invariants and takes the lowest fit", () => {
	const f = new FirstFit(1, 1 << 20);
	const rnd = xorshift32(3);
	const live: number[] = [];
	for (let i = 0; i < 5_000; i++) {
		if (live.length && rnd() % 3 === 0) f.free(live.splice(rnd() % live.length, 1)[0]!);
		else {
			const a = f.alloc(1 + (rnd() % 300));
			if (a) live.push(a);
		}
		if (i % 97 === 0) f.check();
	}
	f.check();
	const g = new FirstFit(1, 100);
	const [a, b, c] = [g.alloc(10), g.alloc(10), g.alloc(10)];
	g.free(b);
	assert.deepEqual([a, g.alloc(5), g.alloc(6), c], [1, 11, 31, 21], "5 fits the hole at 11; 6 no longer does");
	assert.throws(() => g.free(11 + 2), /not allocated/);
});

test("bench peers: number-allocator's audit sees the IDs its free() loses", () => {
	// js-allocators.md section 4: with the range full, freeing 5, 6, 7 leaves only [6, 7] vacant.
	const a = numberSubject(10);
	for (let i = 0; i < 10; i++) a.alloc(1);
	for (const id of [5, 6, 7]) a.free(id);
	assert.deepEqual(a.audit!(7), { leakedIds: 1 });
});

test("vmalloc bench: the chart's labels never overlap, however close the lines end", () => {
	const meta: Meta = {
		date: "2026-11-22T00:00:00Z",
		node: "v20",
		platform: "linux x64",
		cpu: "test",
		cores: 2,
		seed: 1,
		quick: false,
		timeLimit: 5,
		wallSec: 1,
	};
	// Every peer ends within a few percent of the others.
	const runs: Run[] = PEERS.flatMap((p, i) =>
		[1_000, 1_000_000].map((live) => ({
			name: `scale ${live} ${p.id}`,
			spec: { kind: "scale" as const, peer: p.id, live, ops: 1, maxSize: 1, timeLimitMs: 1, seed: 1 },
			status: "ok" as const,
			result: { opsPerSec: 1e6 * (1 + i / 100) },
		})),
	);
	const text = chart(runs, meta);
	const ys = [...text.matchAll(/<text x="\d+" y="([\d.]+)" fill="#[0-9A-Fa-f]{6}" font-weight/g)]
		.map((m) => Number(m[1]))
		.sort((a, b) => a - b);
	assert.equal(ys.length, PEERS.length);
	for (let i = 1; i < ys.length; i++) assert.ok(ys[i]! - ys[i - 1]! >= 16.9, `labels ${i - 1} and ${i} at ${ys[i - 1]} and ${ys[i]}`);
});
