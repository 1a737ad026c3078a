/**
 * Model-based tests of the small-area cache (one handle): random command sequences against a
 * space with smallMax on, checked after every command against a plain model and check().
 *
 * What the model proves:
 * - Lazy free holds for small and large areas alike: no range is handed out while it overlaps
 *   a range freed earlier that no flush call has covered since (every flush call is logged).
 * - An allocation above smallMax (or with options) is exactly the lowest fit in free space;
 *   when none fits and something is lazy, the space purges and the answer is the lowest fit
 *   among the gaps between the busy areas.
 * - A small allocation lies inside a block (a busy area flagged in dump().blocks) whose size
 *   class is the smallest class >= the request; live areas never overlap one another.
 * - find() of a live area's address gives that area; of anything else, never "busy".
 * - Frees: a live small area frees; a second free is EDOUBLEFREE while it waits for its flush,
 *   ENOENT after; an address inside a small area, or in a block's slack, is ENOENT.
 * - stats() counts the live small areas and their class bytes exactly (one handle).
 * - A failed call changes nothing: dump() before and after are equal.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { VmapError, VmapSpace } from "../src/index.ts";
import { blockBytesFor, sizeClasses } from "../src/small/descriptor.ts";
import { freeBlocks } from "./support/inspect.ts";

const SEED = Number(process.env.VMAP_SEED ?? 20261126);
const RUNS = Number(process.env.VMAP_RUNS ?? 150);

type Range = [number, number];

interface Dump {
	areas: Array<{ start: number; end: number; state: "busy" | "lazy"; tag?: string }>;
	blocks: Array<{ start: number; end: number; areaSize: number; slots: number; live: number; lazy: number; free: number; tag?: string }>;
}

class World {
	readonly space: VmapSpace;
	readonly pageSize: number;
	readonly smallMax: number;
	readonly classes: number[];
	/** Live areas: start -> end (small: the class's end) and whether small. */
	readonly live = new Map<number, { end: number; small: boolean }>();
	/** Ranges freed and not covered by a flush call since. */
	freed: Array<{ start: number; end: number; small: boolean }> = [];
	flushes = 0;
	commands = 0;

	constructor(pageSize: number, smallMax: number, blocks: number, nodes: number) {
		this.pageSize = pageSize;
		this.smallMax = smallMax;
		const blockBytes = blockBytesFor(smallMax);
		this.classes = sizeClasses(smallMax, blockBytes, pageSize);
		this.space = VmapSpace.create({
			start: blockBytes,
			size: blocks * blockBytes,
			pageSize,
			smallMax,
			nodes,
			maxAreas: 1 << 14,
			lazyMaxPages: Math.max(1, (2 * blockBytes) / pageSize),
			flush: (lo, hi) => {
				this.flushes++;
				assert.ok(lo < hi, `flush(${lo}, ${hi}) is empty`);
				// A flush that covers a freed range completes its lazy free.
				this.freed = this.freed.filter((f) => !(lo <= f.start && f.end <= hi));
			},
		});
	}

	classOf(size: number): number {
		return this.classes.find((c) => c >= size)!;
	}

	dump(): Dump {
		return this.space.dump() as Dump;
	}

	/** [start, end) may be handed out: it overlaps no live area and no freed range a flush has not covered. */
	handedOut(start: number, end: number, small: boolean): void {
		for (const [s, a] of this.live) assert.ok(end <= s || a.end <= start, `[${start}, ${end}) overlaps the live area [${s}, ${a.end})`);
		for (const f of this.freed)
			assert.ok(end <= f.start || f.end <= start, `[${start}, ${end}) reuses [${f.start}, ${f.end}), freed and not flushed since`);
		this.live.set(start, { end, small });
	}

	verify(): void {
		const s = this.space;
		s.check();
		const d = this.dump();
		const blocks = d.blocks;
		const busy = d.areas.filter((a) => a.state === "busy");
		// Busy areas are the live large areas and the blocks.
		const large = [...this.live]
			.filter(([, a]) => !a.small)
			.map(([st, a]): Range => [st, a.end])
			.sort((x, y) => x[0] - y[0]);
		const blockRanges = blocks.map((b): Range => [b.start, b.end]);
		const expected = [...large, ...blockRanges].sort((x, y) => x[0] - y[0]);
		assert.deepEqual(
			busy.map((a): Range => [a.start, a.end]),
			expected,
			"busy areas are the live large areas and the blocks",
		);
		for (const b of blocks) assert.equal(busy.find((a) => a.start === b.start)!.tag, "vmap_block");
		let n = 0;
		let bytes = 0;
		for (const [st, a] of this.live) {
			if (!a.small) continue;
			n++;
			bytes += a.end - st;
			const b = blocks.find((x) => x.start <= st && a.end <= x.end);
			assert.ok(b, `small area [${st}, ${a.end}) is in no block`);
			assert.equal(b.areaSize, a.end - st, `small area [${st}, ${a.end}) is in a block of ${b.areaSize}-byte areas`);
		}
		const st = s.stats();
		assert.deepEqual([st.smallAreas, st.smallBytes, st.smallBlocks], [n, bytes, blocks.length], "stats(): small areas, bytes, blocks");
		assert.equal(
			blocks.reduce((k, b) => k + b.live, 0),
			n,
			"dump(): live small areas",
		);
	}

	/** `call` fails with `code` and changes nothing. */
	fails(code: string, call: () => unknown): void {
		const before = this.space.dump();
		assert.throws(call, (e: unknown) => e instanceof VmapError && e.code === code, `expected ${code}`);
		assert.deepEqual(this.space.dump(), before, "a failed call changed the space");
	}
}

abstract class Step implements fc.Command<object, World> {
	abstract step(w: World): void;
	check(): boolean {
		return true;
	}
	run(_m: object, w: World): void {
		w.commands++;
		this.step(w);
		w.verify();
	}
}

/** A small area, untagged or tagged (the cache serves both: blocks per tag and class). */
class AllocSmall extends Step {
	readonly frac: number;
	readonly tag: string | undefined;
	constructor(frac: number, tag?: string) {
		super();
		this.frac = frac;
		this.tag = tag;
	}
	step(w: World): void {
		const size = Math.max(w.pageSize, Math.ceil((w.smallMax * this.frac) / 1000 / w.pageSize) * w.pageSize);
		let addr: number;
		try {
			addr = this.tag === undefined ? w.space.alloc(size) : w.space.alloc(size, { tag: this.tag });
		} catch (e) {
			assert.ok(e instanceof VmapError && e.code === "EBUSY", String(e));
			return;
		}
		const info = w.space.find(addr)!;
		const blocks = w.dump().blocks;
		const inBlock = blocks.find((b) => b.start <= addr && addr < b.end);
		if (inBlock) {
			const c = w.classOf(size);
			assert.deepEqual([info.start, info.end, info.state, info.tag], [addr, addr + c, "busy", this.tag]);
			assert.equal(inBlock.tag, this.tag, "a block holds small areas of one tag");
			w.handedOut(addr, addr + c, true);
		} else {
			// No block could be had: the ordinary path served it (exact size).
			assert.deepEqual([info.start, info.end, info.state, info.tag], [addr, addr + size, "busy", this.tag]);
			w.handedOut(addr, addr + size, false);
		}
	}
	override toString = () => `allocSmall(${this.frac}, ${this.tag})`;
}

/** A large area, tagged or not (the ordinary path): exactly the lowest fit. */
class AllocLarge extends Step {
	readonly units: number;
	readonly tagged: boolean;
	constructor(units: number, tagged: boolean) {
		super();
		this.units = units;
		this.tagged = tagged;
	}
	step(w: World): void {
		const s = w.space;
		const size = w.smallMax + this.units * w.pageSize;
		const lowest = (blocks: Range[]) => blocks.find(([a, b]) => b - a >= size)?.[0];
		let expected = lowest(freeBlocks(s));
		const lazyBefore = w.dump().areas.some((a) => a.state === "lazy");
		if (expected === undefined && lazyBefore) {
			// Overflow: everything lazy is purged, so the gaps between busy areas are free.
			const busy = w.dump().areas.filter((a) => a.state === "busy");
			const gaps: Range[] = [];
			let at = s.start;
			for (const a of busy) {
				if (a.start > at) gaps.push([at, a.start]);
				at = a.end;
			}
			if (at < s.end) gaps.push([at, s.end]);
			expected = lowest(gaps);
		}
		const call = () => (this.tagged ? s.alloc(size, { tag: "large" }) : s.alloc(size));
		if (size > s.size) {
			w.fails("EINVAL", call);
			return;
		}
		if (expected === undefined) {
			assert.throws(call, (e: unknown) => e instanceof VmapError && e.code === "EBUSY");
			return;
		}
		const addr = call();
		// With several nodes a purged area may come back from this node's pool instead.
		if (s.nodes === 1) assert.equal(addr, expected, "the lowest fit");
		w.handedOut(addr, addr + size, false);
	}
	override toString = () => `allocLarge(${this.units}, ${this.tagged})`;
}

class Free extends Step {
	readonly pick: number;
	constructor(pick: number) {
		super();
		this.pick = pick;
	}
	override check(): boolean {
		return true;
	}
	step(w: World): void {
		if (w.live.size === 0) return;
		const [start, a] = [...w.live][this.pick % w.live.size]!;
		w.live.delete(start);
		w.freed.push({ start, end: a.end, small: a.small }); // first: the free may purge (and flush) at once
		w.space.free(start);
		// Again: freed already, so EDOUBLEFREE while it waits, ENOENT once flushed (and not reused).
		const waiting = w.freed.some((f) => f.start === start);
		const found = w.space.find(start);
		if (found?.state === "busy") return; // reused at once? never: checked below
		if (waiting || found?.state === "lazy") w.fails("EDOUBLEFREE", () => w.space.free(start));
		else w.fails("ENOENT", () => w.space.free(start));
	}
	override toString = () => `free(#${this.pick})`;
}

class FreeBad extends Step {
	readonly pick: number;
	readonly off: number;
	constructor(pick: number, off: number) {
		super();
		this.pick = pick;
		this.off = off;
	}
	step(w: World): void {
		const small = [...w.live].filter(([, a]) => a.small && a.end - 0 > 0);
		if (small.length > 0) {
			const [start, a] = small[this.pick % small.length]!;
			const inside = start + 1 + (this.off % (a.end - start - 1 || 1));
			if (inside < a.end && inside !== start) w.fails("ENOENT", () => w.space.free(inside));
		}
		const blocks = w.dump().blocks;
		if (blocks.length > 0) {
			// A block's slack past its last slot, when it has one.
			const b = blocks[this.pick % blocks.length]!;
			const slack = b.start + b.slots * b.areaSize;
			if (slack < b.end) w.fails("ENOENT", () => w.space.free(slack));
		}
		for (const bad of [Number.NaN, 1.5, "4096", undefined]) w.fails("EINVAL", () => w.space.free(bad as number));
	}
	override toString = () => `freeBad(${this.pick}, ${this.off})`;
}

class Find extends Step {
	readonly at: number;
	constructor(at: number) {
		super();
		this.at = at;
	}
	step(w: World): void {
		const s = w.space;
		const addr = s.start + (this.at % s.size);
		const got = s.find(addr);
		const hit = [...w.live].find(([st, a]) => st <= addr && addr < a.end);
		if (hit) assert.deepEqual(got && [got.start, got.end, got.state], [hit[0], hit[1].end, "busy"], `find(${addr})`);
		else assert.notEqual(got?.state, "busy", `find(${addr}) of no live area says busy: ${JSON.stringify(got)}`);
	}
	override toString = () => `find(${this.at})`;
}

class Purge extends Step {
	step(w: World): void {
		w.space.purge({ sync: true });
	}
	override toString = () => "purge";
}

class Resize extends Step {
	readonly pick: number;
	readonly frac: number;
	constructor(pick: number, frac: number) {
		super();
		this.pick = pick;
		this.frac = frac;
	}
	step(w: World): void {
		const small = [...w.live].filter(([, a]) => a.small);
		if (small.length === 0) return;
		const [start, a] = small[this.pick % small.length]!;
		const size = Math.max(w.pageSize, Math.ceil((2 * w.smallMax * this.frac) / 1000 / w.pageSize) * w.pageSize);
		const before = w.space.dump();
		assert.equal(w.space.resize(start, size), size <= a.end - start, `resize of a small area to ${size}: in place within its class`);
		assert.deepEqual(w.space.dump(), before, "a small area's resize changes nothing");
	}
	override toString = () => `resize(#${this.pick}, ${this.frac})`;
}

const commands = [
	fc.integer({ min: 0, max: 1000 }).map((f) => new AllocSmall(f)),
	fc.tuple(fc.integer({ min: 0, max: 1000 }), fc.constantFrom("a", "b")).map(([f, t]) => new AllocSmall(f, t)),
	fc.integer({ min: 0, max: 1000 }).map((f) => new AllocSmall(f)),
	fc.tuple(fc.integer({ min: 1, max: 64 }), fc.boolean()).map(([u, t]) => new AllocLarge(u, t)),
	fc.nat().map((i) => new Free(i)),
	fc.nat().map((i) => new Free(i)),
	fc.nat().map((i) => new Free(i)),
	fc.tuple(fc.nat(), fc.nat()).map(([i, o]) => new FreeBad(i, o)),
	fc.nat().map((a) => new Find(a)),
	fc.constant(new Purge()),
	fc.tuple(fc.nat(), fc.integer({ min: 0, max: 1000 })).map(([i, f]) => new Resize(i, f)),
];

const configs = fc.record({
	kind: fc.constantFrom("bytes64", "bytes256", "pages"),
	blocks: fc.integer({ min: 2, max: 12 }),
	nodes: fc.constant(1), // pools (several nodes) are the plain model test's; workers.test.ts runs the cache on 2 nodes
});

test(`small-area cache: alloc/free/find/purge against a model, one handle (seed ${SEED}, ${RUNS} runs)`, () => {
	let total = 0;
	fc.assert(
		fc.property(configs, fc.commands(commands, { maxCommands: 400, size: "max" }), (cfg, cmds) => {
			const [pageSize, smallMax] = cfg.kind === "bytes64" ? [1, 64] : cfg.kind === "bytes256" ? [1, 256] : [4096, 2 * 4096];
			const w = new World(pageSize, smallMax, cfg.blocks, cfg.nodes);
			fc.modelRun(() => ({ model: {}, real: w }), cmds);
			total += w.commands;
		}),
		{ seed: SEED, numRuns: RUNS, includeErrorInReport: true },
	);
	assert.ok(total >= 15_000 || RUNS < 150, `only ${total} commands ran`);
});
