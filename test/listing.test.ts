/**
 * The listings (vmallocinfo(), dump(), their async variants) read the trees in slices of
 * CHUNK_AREAS areas, each under one node's locks, and print through TextWriter. On a still
 * space they are exact; under load they never stop other workers for long, and check() runs
 * beside allocating workers without an error.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VmapSpace } from "../src/index.ts";
import { CHUNK_AREAS, listAreas } from "../src/diag/info.ts";
import { spaceLockWords } from "../src/buffer/lock.ts";
import { TextWriter } from "../src/util/text-writer.ts";
import { busyAreas, freeBlocks, lazyAreas } from "./support/inspect.ts";
import { HANG_MS, reportOf, startWorker, waitUntil } from "../harness/workers.ts";

const P = 4096;

test("TextWriter prints hex and decimal exactly as toString does, up to 2^53", () => {
	const values = [0, 1, 9, 10, 4095, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 123456789012345, 2 ** 52, 2 ** 53 - 1];
	const w = new TextWriter(0); // grows from its smallest size
	let expected = "";
	for (const v of values) {
		w.hex16(v).text(" ").int(v, 7).text(" ε\n");
		expected += `0x${v.toString(16).padStart(16, "0")} ${String(v).padStart(7)} ε\n`;
	}
	assert.equal(w.toString(), expected);
});

test("on a still space the listings are exact across many slices, with batches in flight, and the async variants agree", async () => {
	let release = () => {};
	const gate = new Promise<void>((r) => (release = r));
	const space = VmapSpace.create({ size: 2 ** 32, pageSize: P, nodes: 3, smallMax: 0, lazyMaxPages: 2 ** 20, flush: () => gate });
	const n = 4 * CHUNK_AREAS;
	const areas = Array.from({ length: n }, (_, i) => space.alloc(P * (1 + (i % 3)), i % 5 === 0 ? { tag: "ε-tag" } : {}));
	for (let i = 0; i < n; i += 3) space.free(areas[i]!);
	const r = space.purge(); // a batch in flight: its areas are in purge trees
	assert.equal(r.status, "flushing");
	for (let i = 1; i < n; i += 3) space.free(areas[i]!); // and lazy trees
	const info = space.vmallocinfo();
	const lines = info.trimEnd().split("\n");
	const hex = (x: number) => `0x${x.toString(16).padStart(16, "0")}`;
	const busy = busyAreas(space);
	const lazy = lazyAreas(space);
	assert.equal(lines.length, busy.length + lazy.length);
	assert.deepEqual(
		lines.map((l) => l.split(" ")[0]),
		[...busy, ...lazy].map(([s, e]) => `${hex(s)}-${hex(e)}`),
		"busy areas in address order, then lazy ones (lazy trees and purge trees merged)",
	);
	assert.equal(lines.filter((l) => l.endsWith(" unpurged vm_area")).length, lazy.length);
	assert.equal(lines.filter((l) => l.endsWith(" ε-tag")).length, areas.filter((_, i) => i % 5 === 0 && i % 3 === 2).length);
	const dump = space.dump() as {
		areas: Array<{ start: number; end: number; state: string }>;
		free: Array<{ start: number; end: number }>;
	};
	assert.deepEqual(
		dump.areas.map((a) => [a.start, a.end, a.state]),
		[...busy.map(([s, e]) => [s, e, "busy"]), ...lazy.map(([s, e]) => [s, e, "lazy"])].sort(
			(a, b) => (a[0] as number) - (b[0] as number),
		),
	);
	assert.deepEqual(
		dump.free.map((f) => [f.start, f.end]),
		freeBlocks(space),
	);
	assert.equal(await space.vmallocinfoAsync(), info);
	assert.deepEqual(await space.dumpAsync(), space.dump());
	release();
	await r.done;
	space.check();
});

test("listings hold no lock between their chunks: another handle takes every lock word between two steps", () => {
	const space = VmapSpace.create({ size: 2 ** 32, pageSize: P, nodes: 2, smallMax: 0, lazyMaxPages: 1 << 20 });
	const held = Array.from({ length: 8 * CHUNK_AREAS }, (_, i) => space.alloc(P * (1 + (i % 3))));
	for (let i = 0; i < held.length; i += 3) space.free(held[i]!);
	const other = VmapSpace.attach(space.handle);
	const words = spaceLockWords(other.table);
	const listing = listAreas(space.state, { free: true });
	let steps = 0;
	for (let r = listing.next(); !r.done; r = listing.next()) {
		steps++;
		for (const w of words) {
			assert.ok(other.locks.tryAcquire(w), `lock word ${w} is held between chunks ${steps} and ${steps + 1}`);
			other.locks.release(w);
		}
	}
	assert.ok(steps >= 4, `the listing took ${steps} chunks, not several`);
	other.close();
	space.check();
});

test("workers: dump(), check() and vmallocinfo() in a loop on one worker while two others allocate and free: no error, no overlap, everyone progresses", async () => {
	const space = VmapSpace.create({ size: 2 ** 32, pageSize: P, nodes: 2, smallMax: 0, lazyMaxPages: 256 });
	// Enough areas that a listing takes many slices.
	const held = Array.from({ length: 20 * CHUNK_AREAS }, (_, i) => space.alloc(P * (1 + (i % 2))));
	for (let i = 0; i < held.length; i += 2) space.free(held[i]!);
	const roles = ["diag", "alloc", "alloc"] as const;
	const control = new SharedArrayBuffer(4 * (1 + 4 * roles.length));
	const words = new Int32Array(control);
	const owners = new SharedArrayBuffer(4 * (space.size / P));
	const workers = roles.map((role, index) =>
		startWorker(new URL("./support/diag-worker.ts", import.meta.url), { handle: space.handle, control, owners, role, index }),
	);
	for (const w of workers) space.watch(w);
	const reports = workers.map((w) => reportOf<{ violations: string[]; counts: Record<string, number> }>(w));
	// Progress, not time: the diagnostics go round twice while each allocating worker makes 1000 pairs.
	const count = (index: number, k: number) => Atomics.load(words, 1 + 4 * index + k);
	await waitUntil(
		"two dumps, checks and listings, and 1000 pairs of each allocating worker",
		() => [0, 1, 2].every((k) => count(0, k) >= 2) && count(1, 3) >= 1000 && count(2, 3) >= 1000,
		reports,
	);
	Atomics.store(words, 0, 1);
	const out = await Promise.all(reports);
	for (const [i, r] of out.entries()) assert.deepEqual(r.violations, [], `worker ${i} (${roles[i]})`);
	const diag = out[0]!.counts;
	assert.ok(diag.dumps! >= 1 && diag.checks! >= 1 && diag.infos! >= 1, `the diagnostics ran: ${JSON.stringify(diag)}`);
	for (const r of out.slice(1)) assert.ok(r.counts.pairs! >= 1000, `an allocating worker progressed: ${JSON.stringify(r.counts)}`);
	// The gaps are reported, not asserted: bench/ measures stalls.
	const gaps = out.slice(1).map((r) => r.counts.maxGapMs!);
	console.log(
		`# listings under load: ${JSON.stringify(diag)}; allocating workers' longest gaps ${gaps.map((g) => g.toFixed(1)).join(", ")} ms`,
	);
	space.check();
	assert.equal(space.stats().busyAreas, held.length / 2);
});

test("workers: while another worker rebalances the busy tree under them, every area that stays busy is in every listing", async () => {
	const space = VmapSpace.create({ size: 2 ** 30, pageSize: P, nodes: 1, smallMax: 0, lazyMaxPages: 64 });
	// Areas that stay busy, in one busy tree small enough to be read in one slice, beside the
	// worker's area that comes and goes (each alloc and free rebalances the tree under them).
	const fixed = Array.from({ length: 100 }, () => space.alloc(P, {}));
	const control = new SharedArrayBuffer(4 * 5);
	const words = new Int32Array(control);
	const owners = new SharedArrayBuffer(4 * (space.size / P));
	const w = startWorker(new URL("./support/diag-worker.ts", import.meta.url), {
		handle: space.handle,
		control,
		owners,
		role: "alloc",
		index: 0,
	});
	space.watch(w);
	const report = reportOf<{ violations: string[]; counts: Record<string, number> }>(w);
	const hex = (x: number) => `0x${x.toString(16).padStart(16, "0")}-`;
	let listings = 0;
	let missing = 0;
	// Progress, not time: list until the worker has made 1000 pairs since the first listing
	// began (each alloc and free rebalancing the tree), and at least 50 listings ran.
	const pairsAtStart = Atomics.load(words, 4);
	const hang = performance.now() + HANG_MS;
	while (listings < 50 || Atomics.load(words, 4) - pairsAtStart < 1000) {
		if (performance.now() > hang)
			assert.fail(`no progress in ${HANG_MS} ms: ${listings} listings, ${Atomics.load(words, 4) - pairsAtStart} pairs`);
		const info = space.vmallocinfo();
		for (const a of fixed) if (!info.includes(hex(a))) missing++;
		listings++;
		if (listings % 64 === 0) await new Promise((r) => setImmediate(r));
	}
	Atomics.store(words, 0, 1);
	const r = await report;
	assert.deepEqual(r.violations, []);
	assert.ok(r.counts.pairs! >= 1000, `the worker churned: ${JSON.stringify(r.counts)}`);
	assert.equal(missing, 0, `${missing} areas missing from ${listings} listings`);
	space.check();
});
