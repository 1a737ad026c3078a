/**
 * Lookups of addresses that start no busy area (find(), free(), resize() of lazy, purged,
 * pooled, free and unknown addresses) descend address trees: each node's lazy tree and the
 * purge trees of the batches in flight. They hold one node's locks at a time, never the
 * free-space lock, and check() holds every list to its tree.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VmapError, VmapSpace } from "../src/index.ts";
import { HDR_FREE_LOCK } from "../src/buffer/layout.ts";
import { purgeTree } from "../src/buffer/node-layout.ts";
import { pooledAreas } from "./support/inspect.ts";
import { code } from "./support/code.ts";

const P = 4096;

function deferred(): { promise: Promise<void>; resolve: () => void } {
	let resolve!: () => void;
	const promise = new Promise<void>((r) => (resolve = r));
	return { promise, resolve };
}

/** The VmapError `fn` throws. */
function thrown(fn: () => unknown): VmapError {
	try {
		fn();
	} catch (e) {
		assert.ok(e instanceof VmapError, String(e));
		return e;
	}
	assert.fail("no error thrown");
}

function corruptWith(re: RegExp) {
	return (e: unknown) => e instanceof VmapError && e.code === "ECORRUPT" && re.test(e.message);
}

test("lookups of lazy, pooled, free and unknown addresses never take the free-space lock", () => {
	const space = VmapSpace.create({ size: 1 << 24, pageSize: P, nodes: 2, smallMax: 0, lazyMaxPages: 1000, timeoutMs: 50 });
	const other = VmapSpace.attach(space.handle, { timeoutMs: 50 });
	const areas = Array.from({ length: 64 }, (_, i) => space.alloc(P * (1 + (i % 4))));
	for (let i = 0; i < 64; i += 4) space.free(areas[i]!); // 1-page areas: they go to the pool when purged
	space.purge({ sync: true });
	for (let i = 1; i < 64; i += 4) space.free(areas[i]!); // lazy, on both nodes' lists
	const pooled = pooledAreas(space);
	assert.ok(pooled.length > 0, "the purge refilled a pool");
	const before = space.dump();
	// The old lookup took every lock: with the free-space lock held elsewhere it timed out.
	other.locks.acquire(HDR_FREE_LOCK);
	try {
		for (let i = 1; i < 64; i += 4) {
			const a = areas[i]!;
			assert.deepEqual(space.find(a + 5), { start: a, end: a + 2 * P, size: 2 * P, tag: undefined, state: "lazy", owner: 1 });
			assert.match(thrown(() => space.free(a)).message, /^EDOUBLEFREE: .* is freed already \(lazy, waiting for a purge\)/);
			assert.match(thrown(() => space.free(a + P)).message, /^ENOENT: .* lies inside the area .*, which is freed already/);
		}
		for (const [start] of pooled) {
			assert.equal(space.find(start), undefined, "a pooled area is free space");
			assert.match(thrown(() => space.free(start)).message, /^ENOENT: .* no area starts there; the address is free/);
		}
		const unknown = space.start + (1 << 23);
		assert.equal(space.find(unknown), undefined);
		assert.equal(
			code(() => space.free(unknown)),
			"ENOENT",
		);
		assert.equal(space.find(areas[2]! + 1)?.state, "busy");
	} finally {
		other.locks.release(HDR_FREE_LOCK);
	}
	assert.deepEqual(space.dump(), before, "the failed calls changed nothing");
	space.check();
	other.close();
});

test("areas of a batch in flight are found in its purge trees until the purge moves them", async () => {
	const gate = deferred();
	const space = VmapSpace.create({ size: 1 << 22, pageSize: P, nodes: 2, smallMax: 0, lazyMaxPages: 1000, flush: () => gate.promise });
	const areas = Array.from({ length: 40 }, (_, i) => space.alloc(P * (1 + (i % 3))));
	for (let i = 0; i < 40; i += 2) space.free(areas[i]!);
	const r = space.purge();
	assert.equal(r.status, "flushing");
	assert.equal(space.stats().lazyAreas, 20, "the batch is still lazy");
	space.free(areas[1]!); // in a lazy tree again while the batch is out
	for (const i of [0, 1, 2, 38]) {
		const a = areas[i]!;
		assert.equal(space.find(a)?.state, "lazy", `area ${i}`);
		assert.equal(space.find(a + P - 1)?.start, a);
		assert.equal(
			code(() => space.free(a)),
			"EDOUBLEFREE",
		);
		assert.equal(
			code(() => space.resize(a, P)),
			"EDOUBLEFREE",
		);
	}
	space.check();
	// A purge tree that lost its records: check() names it.
	const t = space.table;
	const roots = [0, 1].flatMap((v) => [0, 1, 2, 3].map((k) => purgeTree(v, k))).filter((w) => t.hdr[w] !== 0);
	assert.ok(roots.length > 0, "a purge tree holds the batch");
	const saved = t.hdr[roots[0]!]!;
	t.hdr[roots[0]!] = 0;
	assert.throws(() => space.check(), corruptWith(/purge tree of batch \d: its list continues past the tree.s last record/));
	t.hdr[roots[0]!] = saved;
	space.check();
	gate.resolve();
	await r.done;
	for (const i of [0, 2, 38]) {
		assert.equal(space.find(areas[i]!), undefined, "purged: free space");
		assert.equal(
			code(() => space.free(areas[i]!)),
			"ENOENT",
		);
	}
	assert.equal(space.find(areas[1]!)?.state, "lazy");
	space.check();
});

test("a flush that fails puts its purge trees back into the lazy trees", async () => {
	let fail = true;
	const space = VmapSpace.create({
		size: 1 << 22,
		pageSize: P,
		nodes: 2,
		smallMax: 0,
		lazyMaxPages: 1000,
		flush: () => {
			if (fail) throw new Error("device lost");
		},
	});
	const areas = Array.from({ length: 30 }, (_, i) => space.alloc(P * (1 + (i % 2))));
	for (let i = 0; i < 30; i += 3) space.free(areas[i]!);
	space.free(areas[1]!);
	assert.throws(() => space.purge({ sync: true }), /device lost/);
	space.check(); // every area is back in its lazy tree, which is red-black again
	for (const i of [0, 1, 3, 27]) {
		assert.equal(space.find(areas[i]!)?.state, "lazy");
		assert.equal(
			code(() => space.free(areas[i]!)),
			"EDOUBLEFREE",
		);
	}
	space.free(areas[4]!); // the lazy tree takes new areas beside the ones that came back
	space.check();
	fail = false;
	space.purge({ sync: true });
	for (const i of [0, 1, 3, 4, 27]) assert.equal(space.find(areas[i]!), undefined);
	assert.equal(space.stats().lazyAreas, 0);
	space.check();
});
