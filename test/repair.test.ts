/**
 * Tree repair (src/tree/repair.ts): no tree word is journaled (links, colours, subtreeMaxSize,
 * roots, counts, bounds); a recovery rebuilds each tree from the list beside it, whose links
 * are journaled (the free list, the busy hash, the lazy and purge lists). Whatever those words
 * hold when a holder dies (any subset of its unjournaled writes, made or not), the repair must
 * end with valid trees: here every one of them is overwritten with garbage, the repair runs,
 * and check() must pass, with the same areas as before. The crash-point tests
 * (crash-points.test.ts) fail when a rebuild is skipped.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VmapSpace } from "../src/index.ts";
import { spaceLockWords } from "../src/buffer/lock.ts";
import { HDR_FREE_LOCK, HDR_FREE_ROOT, HDR_SLOT_FREE_NR, VA_LEFT, VA_RIGHT } from "../src/buffer/layout.ts";
import { journalHead, journalRollback } from "../src/buffer/journal.ts";
import { initVa, setSubtreeMaxSize, setVaChild, setVaNext, setVaParentColour, vaLeft, vaNext, vaRight } from "../src/buffer/record.ts";
import { N_BUSY_ROOT, N_LAZY_HEAD, N_LAZY_ROOT, nodeBase } from "../src/buffer/node-layout.ts";
import { repairTrees, treesGuardedBy } from "../src/tree/repair.ts";
import type { VaTable } from "../src/buffer/va-table.ts";
import { xorshift32 } from "../harness/random.ts";

const P = 4096;

/** Every record of the tree rooted at header word `rootWord`. */
function records(t: VaTable, rootWord: number): number[] {
	const out: number[] = [];
	const stack = [t.hdr[rootWord]!];
	while (stack.length > 0) {
		const x = stack.pop()!;
		if (x === 0) continue;
		out.push(x);
		stack.push(vaLeft(t.i32, x), vaRight(t.i32, x));
	}
	return out;
}

test("repair: trees whose every link, colour, subtreeMaxSize, count and bound is garbage come back valid from their lists", () => {
	for (const nodes of [1, 2]) {
		const space = VmapSpace.create({ size: 2 ** 32, pageSize: P, nodes, smallMax: 0, lazyMaxPages: 1 << 20 });
		const rnd = xorshift32(11 + nodes);
		const live: number[] = [];
		for (let i = 0; i < 3000; i++) {
			if (live.length > 0 && rnd() % 3 === 0) space.free(live.splice(rnd() % live.length, 1)[0]!);
			else live.push(space.alloc(P * (1 + (rnd() % 6))));
		}
		space.purge({ sync: true }); // some lazy areas purged into free space, the later ones lazy
		for (let i = 0; i < 500; i++) space.free(live.splice(rnd() % live.length, 1)[0]!);
		const before = JSON.stringify(space.dump().areas);
		const t = space.table;
		let scrambled = 0;
		for (const word of spaceLockWords(t)) {
			for (const tree of treesGuardedBy(t, word)) {
				t.hdr[tree.countWord] = rnd() % 1000; // the derived counts too
				if (tree.bytesWord >= 0) t.hdrF[tree.bytesWord] = rnd();
				if (tree.bounds !== undefined) {
					// A lazy tree's last record and flush range.
					t.hdr[tree.bounds.last] = rnd() % 5000;
					t.hdrF[tree.bounds.min] = rnd();
					t.hdrF[tree.bounds.max] = rnd();
				}
				for (const x of records(t, tree.rootWord)) {
					setVaParentColour(t.i32, x, rnd() % 5000, (rnd() & 1) === 1);
					// Every tree is rebuilt from the list beside it: its child links may be garbage too.
					setVaChild(t.i32, x, VA_LEFT, rnd() % 5000);
					setVaChild(t.i32, x, VA_RIGHT, rnd() % 5000);
					if (tree.aug) setSubtreeMaxSize(t.f64, x, rnd());
					scrambled++;
				}
			}
		}
		assert.ok(scrambled > 800, `scrambled ${scrambled} records`);
		t.hdr[HDR_SLOT_FREE_NR] = 12345;
		assert.throws(() => space.check(), /ECORRUPT|corrupt/i, "the garbage is seen before the repair");
		for (const word of spaceLockWords(t)) assert.equal(repairTrees(t, word), true);
		space.check();
		assert.equal(JSON.stringify(space.dump().areas), before);
		// And the space goes on.
		for (let i = 0; i < 2000; i++) {
			if (live.length > 0 && rnd() % 2 === 0) space.free(live.splice(rnd() % live.length, 1)[0]!);
			else live.push(space.alloc(P * (1 + (rnd() % 6))));
		}
		space.check();
	}
});

test("repair: lists that loop are refused, not followed for ever: a lazy tree's list, a busy hash chain", () => {
	const space = VmapSpace.create({ size: 2 ** 24, pageSize: P, nodes: 1, smallMax: 0, lazyMaxPages: 1 << 20 });
	const areas = Array.from({ length: 20 }, () => space.alloc(P));
	for (const a of areas.filter((_, i) => i % 2 === 0)) space.free(a); // apart: lazy areas that touch merge into one
	const t = space.table;
	const guarding = (what: (tree: ReturnType<typeof treesGuardedBy>[number]) => boolean) =>
		spaceLockWords(t).find((w) => treesGuardedBy(t, w).some(what))!;
	const lazyLock = guarding((tr) => tr.rootWord === nodeBase(0) + N_LAZY_ROOT);
	const head = t.hdr[nodeBase(0) + N_LAZY_HEAD]!;
	setVaNext(t.i32, vaNext(t.i32, head), head); // the lazy list loops
	assert.equal(repairTrees(t, lazyLock), false);
	const busyLock = guarding((tr) => tr.rootWord === nodeBase(0) + N_BUSY_ROOT);
	const va = t.hdr[nodeBase(0) + N_BUSY_ROOT]!;
	setVaNext(t.i32, va, va); // its hash chain loops
	assert.equal(repairTrees(t, busyLock), false);
});

test("journal: a record freed and taken again in one critical section comes back whole from a rollback; one taken from the free list journals only its link", () => {
	const space = VmapSpace.create({ size: 2 ** 24, pageSize: P, nodes: 1, smallMax: 0 });
	for (let i = 0; i < 8; i++) space.alloc(P);
	space.free(space.alloc(P)); // a lazy area, so that the free list has a hole after a purge
	space.purge({ sync: true });
	const t = space.table;
	const r = t.hdr[HDR_FREE_ROOT]!;
	const before = Array.from(t.i32.subarray(r * 10, r * 10 + 10));
	const views = [t.hdr, t.hdrF, t.i32, t.f64] as const;
	space.locks.acquire(HDR_FREE_LOCK);
	t.reserve(2);
	t.freeSlot(r); // as a merge gives back a record (its words stay until the slot is taken)
	const again = t.allocSlot();
	assert.equal(again, r, "the slot freed last is taken first");
	initVa(t.f64, t.i32, again, 1, 2, 3, 4);
	const listed = t.allocSlot(); // from the list, or never used: either way its old words mean nothing
	initVa(t.f64, t.i32, listed, 5, 6, 7, 8);
	assert.equal(journalRollback(views, journalHead(0)), true);
	assert.deepEqual(Array.from(t.i32.subarray(r * 10, r * 10 + 10)), before, "the record freed and taken again is whole");
	assert.equal(repairTrees(t, HDR_FREE_LOCK), true); // as a recovery does: the slot count is derived
	space.locks.release(HDR_FREE_LOCK);
	space.check();
});
