/**
 * Model-based tests: random command sequences run against VmapSpace and against the plain model
 * (test/support/model.ts); after every command check() must pass, and the space's areas, free
 * blocks and statistics must equal the model's. Errors must leave both unchanged, which the
 * comparison after the command proves.
 *
 * Lazy free is modelled exactly: a freed range is not free in the model until a purge, so the
 * exact-address comparison proves a lazy range is never handed out before its purge. Every
 * purge (asked for, overflow, priority) must call the flush hook exactly once, with exactly the
 * range covering the lazy areas, and an empty purge must not call it.
 *
 * With several nodes, pools hold part of free space: a pool-path allocation must return the head
 * of its pool when that head is aligned, anything else the lowest fit in the free tree; free
 * blocks and pooled areas together must be exactly the model's gaps, so a lazy range is still
 * never handed out before its purge.
 *
 * The model tests (test/model.test.ts, test/model-2.test.ts), each its own file so that the
 * two halves run side by side. Fixed seeds; set VMAP_SEED to try another, VMAP_RUNS to run more. fast-check prints the seed
 * and the shrunk counterexample when a property fails.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { VmapError, VmapSpace } from "../../src/index.ts";
import { busyAreas, coalesce, freeBlocks, lazyAreas, poolHead, pooledAreas, sameRanges } from "./inspect.ts";
import { Model, type ModelArea } from "./model.ts";
import { ZONE_TRIES } from "../../src/core/zone-fit.ts";

export const SEED = Number(process.env.VMAP_SEED ?? 20261122);
/** Runs of each of the two model test files (600 in all). */
export const RUNS = Number(process.env.VMAP_RUNS ?? 300);
/** Commands each file promises at least (200,000 in all). */
export const MIN_COMMANDS = 100_000;
let commandsRun = 0;

/** The space under test and every call its flush hook received. */
interface Real {
	space: VmapSpace;
	flushes: Array<[number, number]>;
}

/** Every command runs its step, then check() and a full comparison with the model. */
abstract class Step implements fc.Command<Model, Real> {
	abstract step(m: Model, r: Real): void;
	check(_m: Readonly<Model>): boolean {
		return true;
	}
	run(m: Model, r: Real): void {
		commandsRun++;
		r.flushes.length = 0;
		this.step(m, r);
		sameState(m, r.space);
	}
}

const TAGS = [undefined, "textures", "vertex buffers", "ε-tag"] as const;

function expectError(code: string, fn: () => unknown): void {
	assert.throws(fn, (e: unknown) => {
		assert.ok(e instanceof VmapError, `expected a VmapError, got ${String(e)}`);
		assert.equal(e.code, code, e.message);
		return true;
	});
}

/** Purge the model as the space must have purged: one flush with the covering range, or none. */
function expectPurge(m: Model, r: Real): void {
	const range = m.flushRange();
	assert.deepEqual(r.flushes.splice(0), range ? [range] : [], "flush calls of a purge");
	m.purge();
}

/**
 * Where a pool miss of `size` bytes goes, given the plain lowest fit `first` among `blocks`: the
 * lowest fit starting in a zone of the handle's node (zones of 16 pages dealt to the nodes in
 * turn), found as the space finds it: try the node's next zone at or above the fit in the same
 * block, else search again from that zone, at most ZONE_TRIES times; then the first zone of the
 * node in the lowest block at or above the last zone tried with room for `size` and nodes - 1
 * zones more; else `first`.
 */
function ownZoneFit(m: Model, s: VmapSpace, blocks: Array<[number, number]>, size: number, first: number): number {
	const zone = 16 * m.pageSize;
	const ownAt = (at: number) => {
		const z = Math.floor(at / zone);
		return z % s.nodes === s.node ? at : (z + ((s.node - (z % s.nodes) + s.nodes) % s.nodes)) * zone;
	};
	let at = first;
	for (let i = 0; i < ZONE_TRIES; i++) {
		const own = ownAt(at);
		const block = blocks.find(([gs, ge]) => gs <= at && at < ge)!;
		if (own + size <= block[1]) return own;
		const next = m.lowestFit(size, m.pageSize, own, m.end, blocks);
		if (next === undefined) return first;
		at = next;
	}
	const from = ownAt(at);
	const wide = m.lowestFit(size + (s.nodes - 1) * zone, m.pageSize, from, m.end, blocks);
	return wide === undefined ? first : ownAt(wide);
}

/** A window inside the space chosen by two fractions in thousandths, maybe off page boundaries. */
function windowOf(m: Model, lo: number, hi: number, ragged: boolean): [number, number] {
	const span = m.end - m.start;
	let a = m.start + Math.floor((span * Math.min(lo, hi)) / 1000);
	let b = m.start + Math.floor((span * Math.max(lo, hi)) / 1000);
	if (!ragged) {
		a -= (a - m.start) % m.pageSize;
		b -= (b - m.start) % m.pageSize;
	}
	if (b <= a) b = Math.min(m.end, a + m.pageSize);
	return [a, b];
}

class Alloc extends Step {
	readonly pages: number;
	readonly alignShift: number;
	readonly win: [number, number, boolean] | null;
	readonly tag: (typeof TAGS)[number];
	constructor(pages: number, alignShift: number, win: [number, number, boolean] | null, tag: (typeof TAGS)[number]) {
		super();
		this.pages = pages;
		this.alignShift = alignShift;
		this.win = win;
		this.tag = tag;
	}
	override step(m: Model, r: Real): void {
		const s = r.space;
		const size = this.pages * m.pageSize;
		// Shifts below 0 ask for less than a page (treated as a page), above for large alignments.
		const align = 2 ** Math.max(0, Math.log2(m.pageSize) + this.alignShift);
		const [vstart, vend] = this.win ? windowOf(m, this.win[0], this.win[1], this.win[2]) : [m.start, m.end];
		if (size > vend - vstart) {
			expectError("EINVAL", () => s.alloc(size, { align, vstart, vend }));
			return;
		}
		const opts = this.tag === undefined ? { align, vstart, vend } : { align, vstart, vend, tag: this.tag };
		// The pool path: several nodes, the whole space, at most 256 pages; only the head is probed.
		const whole = vstart === m.start && vend === m.end;
		const head = s.nodes > 1 && whole ? poolHead(s, s.node, this.pages) : undefined;
		if (head !== undefined && head[0] % Math.max(align, m.pageSize) === 0) {
			const got = s.alloc(size, opts);
			assert.deepEqual(r.flushes, [], "no purge on a pool hit");
			assert.equal(got, head[0], "a pool hit returns the pool's head");
			this.verify(m, got, size, align, vstart, vend, head[0], []);
			return;
		}
		const blocks = freeBlocks(s);
		// A pool miss (several nodes, the whole space, a pool's size, page alignment) prefers this
		// handle's zones (src/core/zone-fit.ts).
		const zoned = s.nodes > 1 && whole && this.pages <= 256 && align <= m.pageSize;
		let expected = m.lowestFit(size, align, vstart, vend, blocks);
		if (zoned && expected !== undefined) expected = ownZoneFit(m, s, blocks, size, expected);
		// No multiple of the alignment in the window leaves room: no purge could help, so none runs.
		const step = Math.max(align, m.pageSize);
		if (expected === undefined && Math.ceil(vstart / step) * step + size > vend) {
			expectError("EBUSY", () => s.alloc(size, opts));
			assert.deepEqual(r.flushes, [], "a request that could never fit purges nothing");
			return;
		}
		if (expected === undefined && (m.lazyAreas().length > 0 || pooledAreas(s).length > 0)) {
			// Overflow: the space must purge everything, then retry once.
			const range = m.flushRange();
			m.purge();
			expected = m.lowestFit(size, align, vstart, vend);
			if (zoned && expected !== undefined) expected = ownZoneFit(m, s, m.gaps(), size, expected);
			if (expected === undefined) {
				expectError("EBUSY", () => s.alloc(size, opts));
				assert.deepEqual(r.flushes, range ? [range] : [], "the overflow purge flushes the covering range once");
				return;
			}
			const got = s.alloc(size, opts);
			assert.deepEqual(r.flushes, range ? [range] : [], "the overflow purge flushes the covering range once");
			this.verify(m, got, size, align, vstart, vend, expected, m.gaps());
			return;
		}
		if (expected === undefined) {
			expectError("EBUSY", () => s.alloc(size, opts));
			assert.deepEqual(r.flushes, [], "no purge without lazy areas");
			return;
		}
		const got = s.alloc(size, opts);
		assert.deepEqual(r.flushes, [], "no purge when a block fits");
		this.verify(m, got, size, align, vstart, vend, expected, blocks);
	}
	verify(
		m: Model,
		got: number,
		size: number,
		align: number,
		vstart: number,
		vend: number,
		expected: number,
		blocks?: Array<[number, number]>,
	): void {
		const a = Math.max(align, m.pageSize);
		assert.equal(got % a, 0, `address ${got} is not aligned to ${a}`);
		assert.ok(got >= vstart && got + size <= vend, `[${got}, ${got + size}) is outside the window [${vstart}, ${vend})`);
		if (a === m.pageSize) {
			assert.equal(got, expected, "align <= pageSize must give exactly the lowest fit (or the pool's head)");
		} else {
			const kernel = m.adjustedFit(size, align, vstart, vend, blocks);
			if (kernel !== undefined) assert.ok(got <= kernel, `got ${got}, the kernel's adjusted search finds ${kernel}`);
		}
		assert.ok(
			m.gaps().some(([gs, ge]) => gs <= got && got + size <= ge),
			`[${got}, ${got + size}) is not free (a lazy range reused?)`,
		);
		m.add(got, got + size, this.tag);
	}
	override toString = () => `alloc(${this.pages}p, align<<${this.alignShift}, ${JSON.stringify(this.win)}, ${this.tag})`;
}

/**
 * Several allocations in one command, each checked against the model as Alloc checks it, in
 * spaces of FILL_PAGES pages or more. Frees outnumber allocations among the commands: without
 * this no node ever held more busy areas than its first busy hash table's 32 buckets take, so
 * the model never met a table growing and moving its buckets (free(), resize() and the
 * lookups through it meanwhile).
 */
const FILL_PAGES = 256;
class Fill extends Step {
	readonly sizes: number[];
	readonly alignShift: number;
	constructor(sizes: number[], alignShift: number) {
		super();
		this.sizes = sizes;
		this.alignShift = alignShift;
	}
	override check(m: Readonly<Model>): boolean {
		return m.end - m.start >= FILL_PAGES * m.pageSize;
	}
	override step(m: Model, r: Real): void {
		for (const pages of this.sizes) {
			r.flushes.length = 0; // each allocation's purge is its own
			new Alloc(pages, this.alignShift, null, undefined).step(m, r);
		}
	}
	override toString = () => `fill(${JSON.stringify(this.sizes)}p, align<<${this.alignShift})`;
}

/** A step on one of the busy areas, picked by index. */
abstract class OnBusy extends Step {
	readonly pick: number;
	constructor(pick: number) {
		super();
		this.pick = pick;
	}
	override check(m: Readonly<Model>): boolean {
		return m.busy.some((a) => !a.lazy);
	}
	protected picked(m: Model): ModelArea {
		const live = m.busy.filter((a) => !a.lazy);
		return live[this.pick % live.length]!;
	}
}

class Free extends OnBusy {
	override step(m: Model, r: Real): void {
		const area = this.picked(m);
		r.space.free(area.start);
		m.free(area.start);
		// At twice lazyMaxPages the free path purges by itself (the priority threshold).
		if (m.lazyPages() >= 2 * r.space.stats().lazyMaxPages) expectPurge(m, r);
		else assert.deepEqual(r.flushes, [], "no purge below the priority threshold");
		// A second free of the same address: the area is lazy (double free), or purged (free space).
		expectError(m.areaAt(area.start) ? "EDOUBLEFREE" : "ENOENT", () => r.space.free(area.start));
	}
	override toString = () => `free(#${this.pick})`;
}

class Resize extends OnBusy {
	readonly pages: number;
	constructor(pick: number, pages: number) {
		super(pick);
		this.pages = pages;
	}
	override step(m: Model, r: Real): void {
		const area = this.picked(m);
		const size = this.pages * m.pageSize;
		const end = area.start + size;
		if (end > m.end) {
			expectError("EINVAL", () => r.space.resize(area.start, size));
			return;
		}
		// Growing needs the free block (free tree, not a pool) that begins right at the old end.
		const grows = end <= area.end || freeBlocks(r.space).some(([s, e]) => s === area.end && e >= end);
		assert.equal(r.space.resize(area.start, size), grows, `resize [${area.start}, ${area.end}) to ${size} bytes`);
		if (!grows) {
			assert.deepEqual(r.flushes, [], "a failed grow changes nothing");
			return;
		}
		const shrinks = end < area.end;
		m.resize(area.start, end);
		if (shrinks && m.lazyPages() >= 2 * r.space.stats().lazyMaxPages) expectPurge(m, r);
		else assert.deepEqual(r.flushes, [], "no purge below the priority threshold");
		const found = r.space.find(area.start);
		assert.deepEqual(found && [found.start, found.end, found.tag, found.state], [area.start, end, area.tag, "busy"]);
	}
	override toString = () => `resize(#${this.pick}, ${this.pages}p)`;
}

class Purge extends Step {
	readonly sync: boolean;
	constructor(sync: boolean) {
		super();
		this.sync = sync;
	}
	override step(m: Model, r: Real): void {
		const range = m.flushRange();
		const areas = m.lazyAreas().length;
		const bytes = m.lazyPages() * m.pageSize;
		const res = r.space.purge({ sync: this.sync });
		assert.equal(res.status, range ? "done" : "empty");
		assert.deepEqual([res.areas, res.bytes, res.start, res.end], range ? [areas, bytes, ...range] : [0, 0, 0, 0]);
		expectPurge(m, r);
	}
	override toString = () => `purge(${this.sync ? "sync" : "try"})`;
}

class FreeBad extends Step {
	readonly kind: number;
	readonly at: number;
	constructor(kind: number, at: number) {
		super();
		this.kind = kind;
		this.at = at;
	}
	override step(m: Model, r: Real): void {
		const s = r.space;
		const addr = m.start + (this.at % (m.end - m.start));
		const area = m.areaAt(addr);
		switch (this.kind) {
			case 0: // an address that is no area's start (inside an area, or free), or a lazy area's start; inside a merged lazy range, EDOUBLEFREE
				if (area?.start === addr) {
					if (area.lazy) expectError("EDOUBLEFREE", () => s.free(addr));
					return;
				}
				expectError(area?.merged ? "EDOUBLEFREE" : "ENOENT", () => s.free(addr));
				return;
			case 1:
				expectError("ENOENT", () => s.free(Math.min(m.end + this.at, Number.MAX_SAFE_INTEGER)));
				return;
			case 2:
				expectError("ENOENT", () => s.free(m.start - 1 - (this.at % m.start)));
				return;
			default:
				for (const bad of [Number.NaN, 1.5, -1.5, 2 ** 53, Infinity, String(addr), undefined]) {
					expectError("EINVAL", () => s.free(bad as number));
				}
		}
	}
	override toString = () => `freeBad(${this.kind}, ${this.at})`;
}

class Find extends Step {
	readonly at: number;
	constructor(at: number) {
		super();
		this.at = at;
	}
	override step(m: Model, r: Real): void {
		for (const addr of [m.start + (this.at % (m.end - m.start)), m.start - 1, m.end]) {
			const want = m.areaAt(addr);
			const got = r.space.find(addr);
			if (want === undefined) assert.equal(got, undefined, `find(${addr})`);
			else
				assert.deepEqual(got, {
					start: want.start,
					end: want.end,
					size: want.end - want.start,
					tag: want.tag,
					state: want.lazy ? "lazy" : "busy",
					owner: r.space.id,
				});
		}
	}
	override toString = () => `find(${this.at})`;
}

/**
 * Lookups aimed at each kind of address: a lazy area's start or inside it, a pooled area, a
 * free block, a busy area's inside. find() must answer as the model does; free() and
 * resize() of anything but a busy area's start must fail with the model's error and change
 * nothing (the comparison after every step).
 */
class Lookup extends Step {
	readonly kind: number;
	readonly pick: number;
	readonly offset: number;
	constructor(kind: number, pick: number, offset: number) {
		super();
		this.kind = kind;
		this.pick = pick;
		this.offset = offset;
	}
	override step(m: Model, r: Real): void {
		const s = r.space;
		const ranges: Array<[number, number]> = [
			m.lazyAreas().map((a): [number, number] => [a.start, a.end]),
			pooledAreas(s),
			freeBlocks(s),
			m.busy.filter((a) => !a.lazy).map((a): [number, number] => [a.start, a.end]),
		][this.kind % 4]!;
		if (ranges.length === 0) return;
		const [start, end] = ranges[this.pick % ranges.length]!;
		// The start, or an address inside (busy areas: inside only, so free() may not succeed).
		const inside = this.kind % 4 === 3 || this.offset % 2 === 1;
		const addr = inside ? start + 1 + (this.offset % Math.max(1, end - start - 1)) : start;
		if (addr >= end) return;
		const want = m.areaAt(addr);
		const info = want && {
			start: want.start,
			end: want.end,
			size: want.end - want.start,
			tag: want.tag,
			state: want.lazy ? "lazy" : "busy",
			owner: s.id,
		};
		assert.deepEqual(s.find(addr), info, `find(${addr})`);
		const code = want?.lazy && (want.start === addr || want.merged) ? "EDOUBLEFREE" : "ENOENT";
		expectError(code, () => s.free(addr));
		expectError(addr + m.pageSize <= m.end ? code : "EINVAL", () => s.resize(addr, m.pageSize)); // the size is checked first
		assert.deepEqual(r.flushes, [], "a failed lookup purges nothing");
	}
	override toString = () => `lookup(${["lazy", "pooled", "free", "busy inside"][this.kind % 4]}, #${this.pick}, +${this.offset})`;
}

class AllocBad extends Step {
	readonly kind: number;
	constructor(kind: number) {
		super();
		this.kind = kind;
	}
	override step(m: Model, r: Real): void {
		const p = m.pageSize;
		const span = m.end - m.start;
		const cases: Array<[number, object | undefined]> = [
			[0, undefined],
			[-p, undefined],
			[p + 0.5, undefined],
			[Number.NaN, undefined],
			[Infinity, undefined],
			["4096" as unknown as number, undefined],
			[2 ** 53, undefined],
			[span + p, undefined],
			[p, { align: 3 }],
			[p, { align: 0 }],
			[p, { align: -p }],
			[p, { align: Number.NaN }],
			[p, { align: 2 ** 60 }],
			[p, { vstart: m.start - p }],
			[p, { vend: m.end + p }],
			[p, { vstart: m.start + p, vend: m.start + p }],
			[p, { vstart: m.start + 2 * p, vend: m.start + p }],
			[p, { tag: 42 }],
			[p, { tag: "x".repeat(64) }],
			[p, "nope" as unknown as object],
			[p, null as unknown as object],
		];
		if (p > 1) cases.push([p + 1, undefined], [p / 2, undefined]);
		// Near 2^53 every double is an integer: a fractional vstart exists only lower down.
		if (!Number.isInteger(m.start + 0.5)) cases.push([p, { vstart: m.start + 0.5 }]);
		const [size, opts] = cases[this.kind % cases.length]!;
		expectError("EINVAL", () => r.space.alloc(size, opts as never));
	}
	override toString = () => `allocBad(${this.kind})`;
}

function sameState(m: Model, s: VmapSpace): void {
	s.check();
	sameRanges(
		busyAreas(s),
		m.busy.filter((a) => !a.lazy).map((a) => [a.start, a.end]),
	);
	sameRanges(
		lazyAreas(s),
		m.lazyAreas().map((a) => [a.start, a.end]),
	);
	// Free space is the free blocks and, with several nodes, the pooled areas.
	const free = freeBlocks(s);
	const pooled = pooledAreas(s);
	if (s.nodes === 1) assert.deepEqual(pooled, [], "one node: no pools");
	sameRanges(coalesce([...free, ...pooled]), m.gaps(), "free blocks and pooled areas are exactly the gaps");
	const st = s.stats();
	const lazy = m.lazyAreas();
	const sum = (xs: Array<{ start: number; end: number }>) => xs.reduce((n, a) => n + a.end - a.start, 0);
	const bytes = (xs: Array<[number, number]>) => sum(xs.map(([start, end]) => ({ start, end })));
	assert.deepEqual(
		[
			st.busyAreas,
			st.busyBytes,
			st.lazyAreas,
			st.lazyBytes,
			st.vmapLazyNr,
			st.freeBlocks,
			st.freeBytes,
			st.largestFreeBlock,
			st.poolAreas,
			st.poolBytes,
			st.consistent,
		],
		[
			m.busy.length - lazy.length,
			sum(m.busy) - sum(lazy),
			lazy.length,
			sum(lazy),
			m.lazyPages(),
			free.length,
			bytes(free),
			Math.max(0, ...free.map(([a, b]) => b - a)),
			pooled.length,
			bytes(pooled),
			true,
		],
		"stats() against the model: busy areas/bytes, lazy areas/bytes, vmapLazyNr, free blocks/bytes, largest free block, pooled areas/bytes",
	);
}

const commands = [
	fc
		.record({ pages: fc.integer({ min: 1, max: 12 }), shift: fc.integer({ min: -2, max: 6 }) })
		.chain(({ pages, shift }) =>
			fc
				.tuple(
					fc.option(fc.tuple(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 1000 }), fc.boolean()), { freq: 3 }),
					fc.constantFrom(...TAGS),
				)
				.map(([win, tag]) => new Alloc(pages, shift, win, tag)),
		),
	fc
		.tuple(fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 8, maxLength: 32 }), fc.integer({ min: 0, max: 3 }))
		.map(([sizes, shift]) => new Fill(sizes, shift)),
	fc.nat().map((i) => new Free(i)),
	fc.nat().map((i) => new Free(i)),
	fc.boolean().map((sync) => new Purge(sync)),
	fc.tuple(fc.nat(), fc.integer({ min: 1, max: 16 })).map(([i, pages]) => new Resize(i, pages)),
	fc.tuple(fc.nat(3), fc.nat()).map(([k, a]) => new FreeBad(k, a)),
	fc.nat().map((a) => new Find(a)),
	fc.tuple(fc.nat(3), fc.nat(), fc.nat()).map(([k, i, o]) => new Lookup(k, i, o)),
	fc.nat().map((k) => new AllocBad(k)),
];

const configs = fc.record({
	pageShift: fc.constantFrom(0, 12, 16),
	// Mostly small spaces, where every edge is near; one in eight large enough for Fill to give a
	// node more busy areas than its first busy hash table takes: a table's growth.
	pages: fc.oneof(
		{ arbitrary: fc.integer({ min: 8, max: 160 }), weight: 7 },
		{ arbitrary: fc.integer({ min: FILL_PAGES, max: 1024 }), weight: 1 },
	),
	// Low addresses, addresses above 4 GiB, and addresses near 2^53.
	base: fc.constantFrom("low", "high", "top"),
	shared: fc.boolean(),
	lazyMaxPages: fc.integer({ min: 1, max: 64 }),
	nodes: fc.constantFrom(1, 1, 2, 4),
});

/** `runs` model runs from seed `seed`; returns the commands run. */
export function modelRuns(seed: number, runs: number): number {
	commandsRun = 0;
	fc.assert(
		fc.property(configs, fc.commands(commands, { maxCommands: 1000, size: "max" }), (cfg, cmds) => {
			const pageSize = 2 ** cfg.pageShift;
			const size = cfg.pages * pageSize;
			const start = cfg.base === "low" ? pageSize : cfg.base === "high" ? 2 ** 36 : 2 ** 53 - size - 2 ** 20;
			const flushes: Array<[number, number]> = [];
			const space = VmapSpace.create({
				start,
				size,
				pageSize,
				shared: cfg.shared,
				maxAreas: 4096,
				lazyMaxPages: cfg.lazyMaxPages,
				nodes: cfg.nodes,
				flush: (s, e) => void flushes.push([s, e]),
			});
			const model = new Model(start, start + size, pageSize, cfg.nodes === 1);
			fc.modelRun(() => ({ model, real: { space, flushes } }), cmds);
		}),
		{ seed, numRuns: runs, includeErrorInReport: true },
	);
	console.log(`# model: ${commandsRun} commands in ${runs} runs from seed ${seed}`);
	return commandsRun;
}
