/**
 * The heap against a plain model: random sequences of vmalloc, vzalloc, vfree, vrealloc,
 * vmMapRam, vmUnmapRam, freeDeferred with a second (reader) handle, quiescent points, purges
 * and bad calls. After every step: heap.check(), no two live ranges overlap, every live area
 * still holds the bytes written to it, deferred areas stay readable until the reader has
 * passed a quiescent point, and bad calls change nothing. Half the runs have the small-area
 * cache on (smallMax 4 pages): vmalloc without options then takes small areas.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { VmapHeap } from "../src/index.ts";

const P = 256;
const SEED = Number(process.env.VMAP_SEED ?? 20261122);
const RUNS = Number(process.env.VMAP_RUNS ?? 300);

interface Area {
	addr: number;
	bytes: number;
	value: number;
	mapped: boolean;
}

class Model {
	live: Area[] = [];
	/** Deferred areas the reader may still be reading. */
	deferred: Area[] = [];
}

interface Real {
	heap: VmapHeap;
	reader: VmapHeap;
}

const span = (h: VmapHeap, a: Area) => (a.mapped ? a.bytes : Math.ceil(a.bytes / P) * P + h.guardPages * P);

function intact(h: VmapHeap, a: Area, what: string): void {
	const b = h.bytes(a.addr, a.bytes);
	assert.ok(
		b[0] === a.value && b[a.bytes - 1] === a.value && b[a.bytes >> 1] === a.value,
		`${what} ${a.addr}+${a.bytes} lost its bytes (${b[0]}, want ${a.value})`,
	);
}

function place(m: Model, h: VmapHeap, a: Area): void {
	const end = a.addr + span(h, a);
	assert.ok(a.addr > 0 && a.addr % P === 0 && end <= h.maxSize, `${a.addr}+${span(h, a)} is outside the heap`);
	for (const o of [...m.live, ...m.deferred]) {
		assert.ok(end <= o.addr || o.addr + span(h, o) <= a.addr, `[${a.addr}, ${end}) overlaps the live area at ${o.addr}`);
	}
	h.bytes(a.addr, a.bytes).fill(a.value);
	m.live.push(a);
}

type Cmd = fc.Command<Model, Real>;
let steps = 0;
/** A command whose run is followed by the checks of every step. */
const cmd = (name: string, check: (m: Readonly<Model>) => boolean, run: (m: Model, r: Real) => void): Cmd => ({
	check,
	run: (m, r) => {
		run(m, r);
		steps++;
		r.heap.check();
		for (const a of m.live) intact(r.heap, a, "live");
		for (const a of m.deferred) intact(r.reader, a, "deferred, before the reader's quiescent point");
	},
	toString: () => name,
});
const busy = (fn: () => number): number | undefined => {
	try {
		return fn();
	} catch (e) {
		if ((e as { code?: string }).code === "EBUSY") return undefined;
		throw e;
	}
};

const commands = [
	fc.tuple(fc.integer({ min: 1, max: 6 * P }), fc.boolean(), fc.integer({ min: 1, max: 255 })).map(([bytes, zero, value]) =>
		cmd(
			`${zero ? "vzalloc" : "vmalloc"}(${bytes})`,
			() => true,
			(m, { heap }) => {
				const addr = busy(() => (zero ? heap.vzalloc(bytes) : heap.vmalloc(bytes)));
				if (addr === undefined) return;
				if (zero)
					assert.ok(
						heap.bytes(addr, bytes).every((x) => x === 0),
						"vzalloc zeroes",
					);
				place(m, heap, { addr, bytes, value, mapped: false });
			},
		),
	),
	fc.nat().map((k) =>
		cmd(
			`vfree(#${k})`,
			(m) => m.live.some((a) => !a.mapped),
			(m, { heap }) => {
				const vs = m.live.filter((a) => !a.mapped);
				const a = vs[k % vs.length]!;
				intact(heap, a, "before vfree");
				heap.vfree(a.addr);
				m.live.splice(m.live.indexOf(a), 1);
				assert.throws(() => heap.vfree(a.addr), /EDOUBLEFREE|ENOENT/);
			},
		),
	),
	fc.tuple(fc.nat(), fc.integer({ min: 1, max: 8 * P })).map(([k, bytes]) =>
		cmd(
			`vrealloc(#${k}, ${bytes})`,
			(m) => m.live.some((a) => !a.mapped),
			(m, { heap }) => {
				const vs = m.live.filter((a) => !a.mapped);
				const a = vs[k % vs.length]!;
				intact(heap, a, "before vrealloc");
				m.live.splice(m.live.indexOf(a), 1);
				const to = busy(() => heap.vrealloc(a.addr, bytes));
				if (to === undefined) {
					m.live.push(a); // EBUSY: nothing changed
					intact(heap, a, "after a failed vrealloc");
					return;
				}
				const kept = { addr: to, bytes: Math.min(a.bytes, bytes), value: a.value, mapped: false };
				intact(heap, kept, "after vrealloc");
				place(m, heap, { addr: to, bytes, value: a.value, mapped: false });
			},
		),
	),
	fc.tuple(fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 255 })).map(([pages, value]) =>
		cmd(
			`vmMapRam(${pages})`,
			() => true,
			(m, { heap }) => {
				const addr = busy(() => heap.vmMapRam(pages));
				if (addr !== undefined) place(m, heap, { addr, bytes: pages * P, value, mapped: true });
			},
		),
	),
	fc.nat().map((k) =>
		cmd(
			`vmUnmapRam(#${k})`,
			(m) => m.live.some((a) => a.mapped),
			(m, { heap }) => {
				const ms = m.live.filter((a) => a.mapped);
				const a = ms[k % ms.length]!;
				intact(heap, a, "before vmUnmapRam");
				heap.vmUnmapRam(a.addr, a.bytes / P);
				m.live.splice(m.live.indexOf(a), 1);
				assert.throws(() => heap.vmUnmapRam(a.addr, a.bytes / P), /EINVAL/);
			},
		),
	),
	fc.nat().map((k) =>
		cmd(
			`freeDeferred(#${k})`,
			(m) => m.live.some((a) => !a.mapped),
			(m, { heap }) => {
				const vs = m.live.filter((a) => !a.mapped);
				const a = vs[k % vs.length]!;
				heap.freeDeferred(a.addr);
				m.live.splice(m.live.indexOf(a), 1);
				m.deferred.push(a);
			},
		),
	),
	fc.constant(
		cmd(
			"reader.quiescent()",
			() => true,
			(m, { heap, reader }) => {
				reader.quiescent();
				heap.quiescent(); // the grace period has ended for everything queued: this frees it
				for (const a of m.deferred.splice(0))
					assert.notEqual(heap.space.find(a.addr)?.state, "busy", `deferred ${a.addr} was not freed after the grace period`);
			},
		),
	),
	fc.constant(
		cmd(
			"purge()",
			() => true,
			(_m, { heap }) => heap.purge({ sync: true }),
		),
	),
	fc.tuple(fc.nat(), fc.constantFrom("vfree", "vrealloc", "freeDeferred", "vmUnmapRam", "bytes")).map(([at, op]) =>
		cmd(
			`bad ${op}(${at % 512})`,
			() => true,
			(m, { heap }) => {
				const addr = (at % 512) * P + (at % 3 === 0 ? 8 : 0);
				if (m.live.some((a) => a.addr === addr) || m.deferred.some((a) => a.addr === addr)) return;
				const inside = [...m.live, ...m.deferred].some(
					(a) => a.addr < addr && addr < a.addr + (a.mapped ? a.bytes : Math.ceil(a.bytes / P) * P),
				);
				// Reading inside a live area is fine, and so is unmapping part of a mapping: pages are
				// unmapped one by one.
				if (inside && (op === "bytes" || op === "vmUnmapRam")) return;
				if (addr === 0 && op === "vrealloc") return; // vrealloc(0, n) is vmalloc(n)
				const before = JSON.stringify([heap.stats().busyBytes, heap.stats().allocs, heap.stats().frees, heap.stats().mappedPages]);
				const call = {
					vfree: () => heap.vfree(addr),
					vrealloc: () => heap.vrealloc(addr, P),
					freeDeferred: () => heap.freeDeferred(addr),
					vmUnmapRam: () => heap.vmUnmapRam(addr, 1),
					bytes: () => heap.bytes(addr, 1),
				}[op];
				assert.throws(call, /^VmapError: (EINVAL|ENOENT|EDOUBLEFREE|EFAULT): /);
				assert.equal(
					JSON.stringify([heap.stats().busyBytes, heap.stats().allocs, heap.stats().frees, heap.stats().mappedPages]),
					before,
					"a bad call changes nothing",
				);
			},
		),
	),
];

test(`heap model: random heap calls against a plain model (seed ${SEED}, ${RUNS} runs)`, () => {
	fc.assert(
		fc.property(
			fc.record({
				guardPages: fc.constantFrom(0, 1, 2),
				poison: fc.boolean(),
				nodes: fc.constantFrom(1, 2),
				smallMax: fc.constantFrom(0, 4 * P),
			}),
			fc.commands(commands, { maxCommands: 300, size: "max" }),
			(cfg, cmds) => {
				const heap = VmapHeap.create({ size: 256 * P, maxSize: 1024 * P, pageSize: P, lazyMaxPages: 16, ...cfg });
				const reader = VmapHeap.attach(heap.handle);
				const model = new Model();
				fc.modelRun(() => ({ model, real: { heap, reader } }), cmds);
				reader.close();
				heap.close();
			},
		),
		{ seed: SEED, numRuns: RUNS },
	);
	console.log(`# heap model: ${steps} commands in ${RUNS} runs`);
});
