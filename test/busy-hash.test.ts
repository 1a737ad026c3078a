/**
 * The busy hash: free() finds a busy area by its start through it. Every node has a table
 * from the space's creation; tables double under load and move their buckets a few at a time (the old table searched
 * meanwhile), then give their records back a few at a time. check() holds the hash to the busy
 * tree, and names each broken invariant.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VmapError, VmapSpace } from "../src/index.ts";
import { hashBucket, hashFind, hashRemove } from "../src/tree/busy-hash.ts";
import { HDR_HASH_RECORDS, REC_I32 } from "../src/buffer/layout.ts";
import {
	HASH_MIN_LOG,
	hashBudget,
	N_BUSY_LOCK,
	N_HASH_FIRST,
	N_HASH_LOG,
	N_HASH_OLD_LOG,
	N_HASH_RETIRED_LEFT,
	nodeBase,
} from "../src/buffer/node-layout.ts";
import { setVaNext, vaNext, vaStart } from "../src/buffer/record.ts";
import { xorshift32 } from "../harness/random.ts";
import { code } from "./support/code.ts";

const P = 4096;
/** Busy areas a node's first table (2^HASH_MIN_LOG buckets) holds at one per bucket. */
const HASH_START = 2 ** HASH_MIN_LOG;

test("busy hash: tables grow, move and retire while areas come and go; every free and double free is right; check() after every step", () => {
	const space = VmapSpace.create({ size: 2 ** 34, pageSize: P, nodes: 2, smallMax: 0, lazyMaxPages: 512 });
	const t = space.table;
	const rnd = xorshift32(7);
	const live: number[] = [];
	const seen = { tables: 0, moving: 0, retiring: 0 };
	for (let step = 0; step < 30_000; step++) {
		// Mostly grow to about 6000 live areas, then mostly shrink, then grow again.
		const phase = Math.floor(step / 10_000);
		const grow = phase === 1 ? rnd() % 4 === 0 : rnd() % 4 !== 0;
		if (grow || live.length === 0) live.push(space.alloc(P * (1 + (rnd() % 4)), {}));
		else {
			const i = rnd() % live.length;
			const a = live[i]!;
			live[i] = live[live.length - 1]!;
			live.pop();
			space.free(a);
			assert.equal(
				code(() => space.free(a)),
				space.find(a)?.state === "lazy" ? "EDOUBLEFREE" : "ENOENT",
			); // ENOENT once a priority purge ran
			assert.equal(
				code(() => space.free(a + 1)),
				"ENOENT",
			);
		}
		for (let v = 0; v < 2; v++) {
			const b = nodeBase(v);
			if (t.hdr[b + N_HASH_LOG] !== 0) seen.tables++;
			if (t.hdr[b + N_HASH_OLD_LOG] !== 0) seen.moving++;
			if (t.hdr[b + N_HASH_RETIRED_LEFT]! > 0) seen.retiring++;
		}
		if (step % 500 === 0) space.check();
	}
	assert.ok(
		seen.tables > 0 && seen.moving > 0 && seen.retiring > 0,
		`tables, moves and retirements all happened: ${JSON.stringify(seen)}`,
	);
	for (const a of live) assert.equal(space.find(a)?.start, a);
	for (const a of live) space.free(a);
	space.purge({ sync: true });
	space.check();
	assert.equal(space.stats().busyAreas, 0);
});

test("busy hash: check() names a busy area missing from its bucket, one in the wrong bucket, a chained record that is not busy, and a wrong count of the tables' records", () => {
	const make = () => {
		const s = VmapSpace.create({ size: 2 ** 30, pageSize: P, nodes: 1, smallMax: 0 });
		const areas = Array.from({ length: 4 * HASH_START }, () => s.alloc(P, {}));
		for (let i = 0; i < areas.length; i += 4) s.free(areas[i]!);
		s.check();
		const t = s.table;
		const b = nodeBase(0);
		assert.ok(t.hdr[b + N_HASH_LOG]! > 0, "the node has a table");
		const bucket = (a: number) => t.hdr[b + N_HASH_FIRST]! * REC_I32 + hashBucket(a, t.hdr[b + N_HASH_LOG]!);
		// A busy area at the head of its chain, and its record.
		const a = areas.find((x, i) => i % 4 !== 0 && t.i32[bucket(x)] !== 0 && vaStart(t.f64, t.i32[bucket(x)]!) === x)!;
		return { s, t, areas, a, va: t.i32[bucket(a)]!, bucket };
	};
	const broken = (s: VmapSpace, re: RegExp) =>
		assert.throws(
			() => s.check(),
			(e: unknown) => e instanceof VmapError && e.code === "ECORRUPT" && re.test(e.message),
			re.source,
		);
	{
		const { s, t, a, va, bucket } = make();
		t.i32[bucket(a)] = vaNext(t.i32, va); // unchained
		broken(s, /busy hash: busy area \d+ \[0x[0-9a-f]+, 0x[0-9a-f]+\) is in no bucket/);
	}
	{
		const { s, t, a, va, bucket } = make();
		t.i32[bucket(a)] = vaNext(t.i32, va);
		const other = (bucket(a) - t.hdr[nodeBase(0) + N_HASH_FIRST]! * REC_I32 + 1) % 2 ** t.hdr[nodeBase(0) + N_HASH_LOG]!;
		const w = t.hdr[nodeBase(0) + N_HASH_FIRST]! * REC_I32 + other;
		setVaNext(t.i32, va, t.i32[w]!);
		t.i32[w] = va; // chained in the next bucket
		broken(s, /busy hash: record \d+ \(start 0x[0-9a-f]+\) is chained in bucket \d+, its start hashes to \d+/);
	}
	{
		const { s, t, areas, bucket } = make();
		const lazyVa = (() => {
			// A lazy area's record (in a lazy tree): chain it into a bucket.
			const lazy = areas[0]!;
			assert.equal(s.find(lazy)?.state, "lazy");
			for (let va = 1; va < t.capacity; va++) if (vaStart(t.f64, va) === lazy) return va;
			throw new Error("no record");
		})();
		const w = bucket(areas[1]!);
		setVaNext(t.i32, lazyVa, 0);
		const tail = (() => {
			let x = t.i32[w]!;
			while (vaNext(t.i32, x) !== 0) x = vaNext(t.i32, x);
			return x;
		})();
		setVaNext(t.i32, tail, lazyVa);
		broken(s, /busy hash|lazy (list|tree)/);
	}
	{
		const { s, t } = make();
		t.hdr[HDR_HASH_RECORDS]!++; // the count of the tables' records
		broken(s, /busy hash: the tables hold \d+ records, the header says \d+ of a budget of \d+/);
	}
});

test("busy hash: a removal unlinks at the word the last find saw linking to the record, and walks the chain when that word no longer does", () => {
	const s = VmapSpace.create({ size: 2 ** 30, pageSize: P, nodes: 1, smallMax: 0 });
	const t = s.table;
	const b = nodeBase(0);
	const log = t.hdr[b + N_HASH_LOG]!;
	// Five areas whose starts share a bucket: a chain of five.
	const starts: number[] = [];
	for (let a = s.start; starts.length < 5; a += P) if (hashBucket(a, log) === hashBucket(s.start, log)) starts.push(a);
	const vas = starts.map((a) => {
		const got = s.alloc(P, { vstart: a, vend: a + P });
		assert.equal(got, a);
		return hashFind(t, b, a);
	});
	const chain = () => {
		const out: number[] = [];
		for (let va = t.i32[t.hdr[b + N_HASH_FIRST]! * REC_I32 + hashBucket(s.start, log)]!; va !== 0; va = vaNext(t.i32, va))
			out.push(vaStart(t.f64, va));
		return out.sort((x, y) => x - y);
	};
	assert.deepEqual(chain(), starts);
	// Found, then removed: unlinked where the find saw it.
	assert.equal(hashFind(t, b, starts[2]!), vas[2]);
	hashRemove(t, b, vas[2]!, starts[2]!);
	assert.deepEqual(chain(), [starts[0], starts[1], starts[3], starts[4]]);
	// The last find was of another record: the chain is walked.
	assert.equal(hashFind(t, b, starts[4]!), vas[4]);
	hashRemove(t, b, vas[1]!, starts[1]!);
	assert.deepEqual(chain(), [starts[0], starts[3], starts[4]]);
	// A found link that changed since (the record before it left): walked too.
	assert.equal(hashFind(t, b, starts[0]!), vas[0]);
	const before = hashFind(t, b, starts[3]!);
	hashRemove(t, b, vas[0]!, starts[0]!); // the hint is of starts[3]: a walk
	assert.equal(before, vas[3]);
	assert.deepEqual(chain(), [starts[3], starts[4]]);
	assert.equal(hashFind(t, b, starts[2]!), 0, "a removed area is not found");
});

test("busy hash: the tables live in a budget beyond maxAreas, so a space always holds maxAreas areas", () => {
	for (const maxAreas of [HASH_START * 4, 1000, 5000]) {
		const s = VmapSpace.create({ size: 2 ** 34, pageSize: P, nodes: 1, smallMax: 0, maxAreas });
		let n = 0;
		try {
			for (;;) {
				s.alloc(P, {});
				n++;
			}
		} catch (e) {
			assert.ok(e instanceof VmapError && e.code === "ENOMEM", String(e));
		}
		// maxAreas counts the free block after the areas.
		assert.ok(n >= maxAreas - 1, `${n} areas in a space of maxAreas ${maxAreas}`);
		assert.ok(
			s.table.hdr[HDR_HASH_RECORDS]! > 0 && s.table.hdr[HDR_HASH_RECORDS]! <= hashBudget(maxAreas, 1),
			"the hash took its records from its budget",
		);
		s.check();
		assert.equal(s.locks.owner(nodeBase(0) + N_BUSY_LOCK), 0);
	}
});
