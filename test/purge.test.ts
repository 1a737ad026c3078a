import assert from "node:assert/strict";
import { test } from "node:test";
import { setImmediate as tick } from "node:timers/promises";
import { VmapError, VmapSpace } from "../src/index.ts";
import { othersInFlight, pendingBatch } from "../src/purge/batches.ts";
import { HDR_BATCH_GEN, HDR_BATCH_OWNER, HDR_FREE_LOCK, HDR_SLOT_HIGH } from "../src/buffer/layout.ts";
import { keptWord } from "../src/buffer/gauges.ts";
import { freeBlocks, lazyAreas } from "./support/inspect.ts";
import { randomBelow } from "../harness/random.ts";

const P = 4096;

/** A promise with its resolve and reject in hand. */
function deferred() {
	let resolve!: () => void;
	let reject!: (e: Error) => void;
	const promise = new Promise<void>((res, rej) => {
		resolve = res;
		reject = rej;
	});
	return { promise, resolve, reject };
}

test("a freed range is not reused before the purge that flushes it", () => {
	const flushes: Array<[number, number]> = [];
	const s = VmapSpace.create({ start: 0x10000, size: 8 * P, lazyMaxPages: 1 << 20, flush: (a, b) => void flushes.push([a, b]) });
	const a = s.alloc(2 * P);
	s.alloc(P); // apart: lazy areas that touch merge into one
	const b = s.alloc(2 * P);
	s.free(a);
	assert.equal(s.find(a)?.state, "lazy");
	assert.equal(s.alloc(2 * P), 0x10000 + 5 * P, "the lazy range is skipped");
	s.free(b);
	const r = s.purge();
	assert.deepEqual([r.status, r.areas, r.bytes, r.start, r.end], ["done", 2, 4 * P, a, b + 2 * P]);
	assert.deepEqual(flushes, [[a, b + 2 * P]], "one flush over the covering range");
	assert.equal(s.find(a), undefined);
	assert.equal(s.alloc(2 * P), a, "reused after the purge");
	assert.equal(s.purge().status, "empty");
	assert.equal(flushes.length, 1, "an empty purge does not flush");
	s.check();
});

test("one node: an area freed right after the lazy tree's highest area, or right before its lowest, merges into it; any address of the range is EDOUBLEFREE; with two nodes none merge", () => {
	const s = VmapSpace.create({ size: 64 * P, nodes: 1, smallMax: 0, lazyMaxPages: 1 << 20 });
	const a = [0, 1, 2, 3].map(() => s.alloc(P));
	s.alloc(P); // busy: b touches nothing lazy
	const b = s.alloc(2 * P);
	for (const i of [1, 2, 3, 0]) s.free(a[i]!); // 2 and 3 after the highest, 0 before the lowest
	assert.deepEqual(lazyAreas(s), [[a[0], a[3]! + P]]);
	assert.equal(s.stats().lazyAreas, 1);
	assert.deepEqual(s.find(a[2]! + 7), { start: a[0], end: a[3]! + P, size: 4 * P, tag: undefined, state: "lazy", owner: s.id });
	s.free(b);
	assert.deepEqual(lazyAreas(s), [
		[a[0], a[3]! + P],
		[b, b + 2 * P],
	]);
	const before = JSON.stringify(s.dump());
	const code = (addr: number) => {
		try {
			s.free(addr);
		} catch (e) {
			return e instanceof VmapError ? `${e.code}: ${e.message}` : String(e);
		}
		return "freed";
	};
	assert.match(code(a[0]!), /^EDOUBLEFREE: .*freed already \(lazy, waiting for a purge\)/);
	for (const addr of [a[2]!, a[3]! + 5])
		assert.match(code(addr), /^EDOUBLEFREE: .*areas freed already and merged while they wait for a purge/);
	assert.match(code(b), /^EDOUBLEFREE/);
	assert.match(code(b + P), /^ENOENT: .*inside the area .*freed already/, "a range of one area knows where it began");
	assert.equal(JSON.stringify(s.dump()), before, "the failed frees changed nothing");
	const r = s.purge();
	assert.deepEqual([r.areas, r.bytes], [2, 6 * P]);
	s.check();

	// The record a merge frees is kept by the handle for its next allocation; with one kept
	// already, it goes back to the record free list under the free-space lock, taken only if
	// free: when another handle holds it, the area is linked as it is.
	const other = VmapSpace.attach(s.handle);
	const kept = () => s.table.hdr[keptWord(s.id)]!;
	const c = [0, 1, 2].map(() => s.alloc(P));
	assert.equal(kept(), 0, "the allocations took the kept record");
	s.free(c[0]!);
	s.free(c[1]!);
	assert.notEqual(kept(), 0, "the merge kept c[1]'s record");
	other.locks.acquire(HDR_FREE_LOCK);
	s.free(c[2]!);
	other.locks.release(HDR_FREE_LOCK);
	assert.deepEqual(lazyAreas(s), [
		[c[0], c[1]! + P],
		[c[2], c[2]! + P],
	]);
	s.check(); // the kept record counted: no record lost, none twice
	const high = s.table.hdr[HDR_SLOT_HIGH];
	s.free(s.alloc(P)); // the kept record, taken and kept again
	assert.equal(s.table.hdr[HDR_SLOT_HIGH], high, "no new record");
	const id = s.id;
	s.close();
	assert.equal(other.table.hdr[keptWord(id)], 0, "close() gives the kept record back");
	other.check();

	const two = VmapSpace.create({ size: 256 * P, nodes: 2, smallMax: 0, lazyMaxPages: 1 << 20 });
	const d = [0, 1, 2].map(() => two.alloc(P));
	for (const x of d) two.free(x);
	assert.equal(two.stats().lazyAreas, 3, "two nodes: each lazy area returns to its node's pool as it is");
	two.check();
});

test("overflow: an allocation that finds no fit purges once and retries", () => {
	const flushes: Array<[number, number]> = [];
	const s = VmapSpace.create({ start: 0x10000, size: 4 * P, lazyMaxPages: 1 << 20, flush: (a, b) => void flushes.push([a, b]) });
	const all = [0, 1, 2, 3].map(() => s.alloc(P));
	s.free(all[1]!);
	s.free(all[2]!);
	assert.equal(s.alloc(2 * P), all[1], "the purge merged the two lazy pages into one fitting block");
	assert.deepEqual(flushes, [[all[1], all[2]! + P]]);
	const st = s.stats();
	assert.deepEqual([st.overflowPurges, st.purges, st.flushes, st.failedAllocs], [1, 1, 1, 0]);
	assert.throws(() => s.alloc(P), { code: "EBUSY" });
	assert.equal(s.stats().failedAllocs, 1);
	assert.equal(flushes.length, 1, "no lazy areas: no purge before EBUSY");
	s.check();
});

test("an asynchronous flush keeps the batch unusable until it resolves; allocAsync waits", async () => {
	let gate = deferred();
	const flushes: Array<[number, number]> = [];
	const s = VmapSpace.create({
		start: 0x10000,
		size: 4 * P,
		lazyMaxPages: 1 << 20, // no drain: these purges are the test's
		flush: (a, b) => {
			flushes.push([a, b]);
			return gate.promise;
		},
	});
	const all = [0, 1, 2, 3].map(() => s.alloc(P));
	s.free(all[0]!);
	const r = s.purge();
	assert.equal(r.status, "flushing");
	assert.equal(s.find(all[0]!)?.state, "lazy", "still lazy while the flush runs");
	assert.equal(s.purge().status, "empty", "another purge holds no lock while its flush runs: this one finds nothing new");
	assert.throws(
		() => s.alloc(P),
		(e: unknown) => e instanceof VmapError && e.code === "EBUSY" && /allocAsync\(\) waits/.test(e.message),
	);
	assert.throws(() => s.free(all[0]!), { code: "EDOUBLEFREE" });
	s.check();
	s.free(all[1]!); // freed during the flush: the next batch, flushed while the first one is
	const queued = s.purge({ sync: true });
	assert.equal(queued.status, "flushing");

	const waiting = s.allocAsync(2 * P);
	let settled = false;
	void waiting.then(() => (settled = true));
	await tick();
	assert.equal(settled, false, "allocAsync waits for the flush");
	const first = gate;
	gate = deferred();
	first.resolve();
	await r.done;
	assert.equal(s.find(all[0]!), undefined, "merged once the flush resolved");
	gate.resolve();
	assert.equal(await waiting, all[0], "pages 0 and 1, both purged");
	await queued.done;
	assert.deepEqual(flushes, [
		[all[0], all[0]! + P],
		[all[1], all[1]! + P],
	]);
	s.check();
});

test("a flush that fails leaves the batch lazy, counts the error, and frees the purge mutex", async () => {
	let fail: "sync" | "async" | "no" = "sync";
	const s = VmapSpace.create({
		start: 0x10000,
		size: 4 * P,
		lazyMaxPages: 1 << 20, // no drain: these purges are the test's
		flush: () => {
			if (fail === "sync") throw new Error("fence lost");
			if (fail === "async") return Promise.reject(new Error("fence timed out"));
			return undefined;
		},
	});
	const all = [0, 1, 2, 3].map(() => s.alloc(P));
	s.free(all[0]!);
	s.free(all[2]!);
	assert.throws(() => s.purge(), /fence lost/);
	assert.equal(s.find(all[0]!)?.state, "lazy");
	s.check();
	assert.throws(() => s.alloc(P), { code: "EBUSY" }, "the overflow purge failed too: nothing fits");
	assert.equal(s.stats().flushErrors, 2);
	fail = "async";
	const r = s.purge();
	await assert.rejects(r.done, /fence timed out/);
	assert.equal(s.find(all[2]!)?.state, "lazy");
	s.check();
	fail = "no";
	assert.equal(s.purge().status, "done", "the mutex was released");
	assert.equal(s.stats().flushErrors, 3);
	assert.deepEqual(freeBlocks(s), [
		[all[0], all[0]! + P],
		[all[2], all[2]! + P],
	]);
	s.check();
});

test("drain: passing lazyMaxPages schedules a purge on the event loop, never inside free", async () => {
	let flushes = 0;
	const s = VmapSpace.create({ size: 1024 * P, lazyMaxPages: 4, flush: () => void flushes++ });
	const areas = Array.from({ length: 6 }, () => s.alloc(P));
	for (const a of areas.slice(0, 5)) s.free(a); // 5 lazy pages > 4
	assert.equal(flushes, 0, "free does not purge below the priority threshold");
	assert.equal(s.stats().vmapLazyNr, 5);
	await tick();
	await tick();
	assert.equal(flushes, 1, "the drain ran");
	const st = s.stats();
	assert.equal(st.vmapLazyNr, 0);
	assert.deepEqual([st.purges, st.drainPurges, st.priorityPurges, st.overflowPurges], [1, 1, 0, 0], "counted as a drain");
	s.check();
});

test("priority: at 2 * lazyMaxPages the free path purges by itself", () => {
	let flushes = 0;
	const s = VmapSpace.create({ size: 1024 * P, lazyMaxPages: 4, flush: () => void flushes++ });
	// A loop that never yields: the scheduled drain cannot run; the backlog stays bounded.
	let peak = 0;
	for (let i = 0; i < 1000; i++) {
		s.free(s.alloc(P * (1 + (i % 3))));
		peak = Math.max(peak, s.stats().vmapLazyNr);
	}
	assert.ok(peak < 2 * 4 + 3, `backlog peaked at ${peak} pages; it must stay below 2 * lazyMaxPages + the largest area`);
	assert.ok(flushes > 100, `only ${flushes} purges`);
	const st = s.stats();
	assert.deepEqual(
		[st.priorityPurges, st.drainPurges, st.overflowPurges],
		[st.purges, 0, 0],
		"every purge was the free path's priority purge",
	);
	s.check();
});

test("priority with 2 nodes: a free reads the other nodes' backlog every 16 frees, and purges only on every node's figure", () => {
	// Node 1's backlog, then node 0's frees: seen at node 0's next read of node 1, 16 frees on.
	const s = VmapSpace.create({ size: 4096 * P, nodes: 2, lazyMaxPages: 64 }); // handle 1: node 0
	const b = VmapSpace.attach(s.handle); // handle 2: node 1
	const mine = Array.from({ length: 40 }, () => s.alloc(P));
	const theirs = Array.from({ length: 30 }, () => b.alloc(4 * P));
	s.free(mine[0]!); // node 0 reads node 1: nothing yet
	for (const x of theirs) b.free(x); // node 1: 120 pages, below 2 x 64 with node 0's 1
	for (const x of mine.slice(1, 17)) s.free(x); // at the 17th, node 0 reads node 1 again: 137 pages
	assert.equal(s.stats().priorityPurges, 1, "seen within 16 frees");
	s.check();
	// A figure read before another node purged never makes a purge by itself.
	const c = VmapSpace.create({ size: 4096 * P, nodes: 2, lazyMaxPages: 8 });
	const d = VmapSpace.attach(c.handle);
	const cs = Array.from({ length: 40 }, () => c.alloc(P));
	const ds = Array.from({ length: 40 }, () => d.alloc(P));
	for (const x of ds.slice(0, 15)) d.free(x); // node 1: 15 pages
	c.free(cs[0]!); // node 0 reads node 1: 16 pages in all, 2 x 8: purged here
	assert.equal(c.stats().priorityPurges, 1);
	for (const x of ds.slice(15, 29)) d.free(x); // node 1: 14 pages again
	c.free(cs[1]!); // node 0's read of node 1 is still 15 from before the purge: 16, but every node holds 15
	d.purge({ sync: true }); // node 1 gives its pages back
	for (const x of cs.slice(2, 6)) c.free(x); // node 0: 5 pages, and the stale 15
	assert.equal(c.stats().priorityPurges, 1, "a stale figure made no purge");
	c.check();
});

test("vmallocinfo lists busy areas, then unpurged lazy ones; dump() is JSON of everything", () => {
	const s = VmapSpace.create({ start: 0x10000000, size: 1024 * P });
	const a = s.alloc(3 * P, { tag: "textures" });
	const b = s.alloc(P);
	const c = s.alloc(2 * P, { tag: "ioremap" });
	s.free(b);
	assert.equal(
		s.vmallocinfo(),
		"0x0000000010000000-0x0000000010003000   12288 handle=1 textures\n" +
			"0x0000000010004000-0x0000000010006000    8192 handle=1 ioremap\n" +
			"0x0000000010003000-0x0000000010004000    4096 unpurged vm_area\n",
	);
	const d = s.dump();
	assert.deepEqual(d.areas, [
		{ start: a, end: a + 3 * P, size: 3 * P, state: "busy", tag: "textures", owner: 1 },
		{ start: b, end: b + P, size: P, state: "lazy", owner: 1 },
		{ start: c, end: c + 2 * P, size: 2 * P, state: "busy", tag: "ioremap", owner: 1 },
	]);
	assert.deepEqual(d.free, [{ start: c + 2 * P, end: s.end, size: s.end - c - 2 * P }]);
	assert.equal(d.stats.lazyBytes, P);
});

test("close(): no drain runs afterwards, calls throw EINVAL, the id is given back", async () => {
	let flushes = 0;
	const s = VmapSpace.create({ size: 1024 * P, lazyMaxPages: 2, flush: () => void flushes++ });
	const other = VmapSpace.attach(s.handle);
	assert.equal(other.id, 2);
	for (let i = 0; i < 3; i++) other.free(other.alloc(P)); // past lazyMaxPages: a drain is scheduled
	other.close();
	await tick();
	await tick();
	assert.equal(flushes, 0, "the closed handle's drain did not run");
	assert.equal(s.stats().vmapLazyNr, 3);
	assert.throws(() => other.alloc(P), /EINVAL: This handle \(id 2\) was closed/);
	assert.equal(VmapSpace.attach(s.handle).id, 2, "id 2 is free again");
	assert.equal(s.purge().bytes, 3 * P, "what the closed handle freed is still there to purge");
	s.check();
});

test("bounded drain: a long purge yields to the event loop between slices, holding no lock", async () => {
	const lazyMaxPages = 50_000;
	const s = VmapSpace.create({ size: 2 ** 34, lazyMaxPages, smallMax: 0 }); // areas in the lazy trees
	// Each area with a busy one after it: lazy areas that touch merge into one, and the drain is to take many.
	const apart = (n: number) => Array.from({ length: n }, () => [s.alloc(P), s.alloc(P)][0]!);
	const batch = apart(60_000);
	const later = apart(2 * lazyMaxPages);
	for (const a of batch) s.free(a); // past lazyMaxPages, below twice it: a drain is scheduled
	let midway = 0;
	let skipped = false;
	for (let i = 0; i < 10_000 && midway < 3; i++) {
		await tick();
		const lazy = s.stats().lazyAreas;
		if (lazy > 0 && lazy < batch.length) {
			midway++;
			skipped ||= s.purge().status === "empty"; // the drain holds no lock: a try purge runs, and finds nothing new
		}
	}
	assert.ok(midway >= 3, `the event loop ran ${midway} times while the drain was part-way`);
	assert.ok(skipped, "a try purge during the drain ran beside it");
	s.check(); // mid-drain, every structure is consistent

	// Above the priority threshold the drain stops yielding: frees finish it themselves.
	const before = s.stats().lazyAreas;
	for (const a of later) s.free(a);
	const st = s.stats();
	assert.ok(
		before > 0 && st.lazyAreas < 2 * lazyMaxPages,
		`lazy areas ${before} before, ${st.lazyAreas} after twice lazyMaxPages of frees`,
	);
	s.check();
	await s.purge({ sync: true }).done;
	assert.equal(s.stats().lazyAreas, 0);
	s.check();
});

test("the incremental flush range equals the range of the lazy areas walked", () => {
	const ranges: Array<[number, number]> = [];
	const s = VmapSpace.create({ start: 0x100000, size: 4096 * P, flush: (a, b) => void ranges.push([a, b]) });
	const rnd = randomBelow(7);
	const live: number[] = [];
	for (let round = 0; round < 50; round++) {
		for (let i = 0; i < 40; i++) live.push(s.alloc(P * (1 + rnd(4))));
		const freed: Array<[number, number]> = [];
		for (let i = 0; i < 25; i++) {
			const a = live.splice(rnd(live.length), 1)[0]!;
			const f = s.find(a)!;
			s.free(a);
			freed.push([f.start, f.end]);
		}
		s.check(); // compares the kept range with the walked one
		s.purge();
		assert.deepEqual(ranges.pop(), [Math.min(...freed.map((r) => r[0])), Math.max(...freed.map((r) => r[1]))]);
	}
});

test("close() hands its batches in flight over: their flush settling does nothing, and another handle's next purge adopts them, flushes their range again and merges them", async () => {
	const flushed: Array<[string, number, number]> = [];
	let settle: () => void = () => {};
	const s = VmapSpace.create({
		size: 64 * P,
		flush: (a, b) => {
			flushed.push(["first", a, b]);
			return new Promise<void>((r) => {
				settle = r;
			});
		},
	});
	const a = s.alloc(P);
	s.free(a);
	const first = s.purge();
	assert.equal(first.status, "flushing");
	s.close();
	settle();
	await first.done;
	const other = VmapSpace.attach(s.handle, { flush: (x, y) => void flushed.push(["other", x, y]) });
	assert.equal(other.find(a)?.state, "lazy", "the handed-over batch is still out of use");
	other.check();
	const r = other.purge({ sync: true });
	assert.equal(r.status, "done");
	assert.deepEqual(
		flushed,
		[
			["first", a, a + P],
			["other", a, a + P],
		],
		"flushed again by the handle that adopted it",
	);
	assert.equal(other.find(a), undefined, "merged back");
	assert.equal(other.stats().lazyAreas, 0);
	other.check();
	other.close();
});

test("a sync purge's wait for other handles' batches ends when the slot is freed, even if it read the generation its owner had just bumped", () => {
	// othersInFlight() reads a slot's owner and generation with two loads; endBatch() bumps the
	// generation, then frees the slot. Between those two stores the reader records the new
	// generation with the old owner: a wait for that generation to move again would last until
	// someone next claims and ends the slot (it hung a 3-worker test when nobody did).
	const space = VmapSpace.create({ size: 64 * 4096 });
	const hdr = space.table.hdr;
	const k = 1;
	Atomics.store(hdr, HDR_BATCH_OWNER + k, 7); // handle 7 flushes batch 1...
	Atomics.add(hdr, HDR_BATCH_GEN + k, 1); // ...ends it: generation first,
	const others = othersInFlight(space.table, space.id); // (read here, between the two stores)
	assert.deepEqual(others, [[k, Atomics.load(hdr, HDR_BATCH_GEN + k)]]);
	Atomics.store(hdr, HDR_BATCH_OWNER + k, 0); // then the slot
	assert.equal(pendingBatch(space.table, others), undefined, "the batch is done: its slot is free");
	Atomics.store(hdr, HDR_BATCH_OWNER + k, 9); // claimed again with that generation: waited for, conservatively
	assert.deepEqual(pendingBatch(space.table, others), others[0]);
	Atomics.store(hdr, HDR_BATCH_OWNER + k, 0);
	assert.equal(space.purge({ sync: true }).status, "empty");
});
