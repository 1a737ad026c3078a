/**
 * Lookups and diagnostics at scale (one bench case): a space of `live` areas, all of them
 * then freed lazily (no purge runs), and
 * - the cost of each lookup that is not a busy area's start: find() of a lazy address, free()
 *   of a lazy area (EDOUBLEFREE), free() of a never allocated address (ENOENT), find() of a
 *   free address, resize() of a lazy area; mean and worst of LOOKUPS calls each;
 * - in a second space of `live` busy areas, how long another
 *   worker's alloc+free pair can stall while this thread runs vmallocinfo(),
 *   vmallocinfoAsync(), dump() and check(): the worker records the longest gap between two of
 *   its pairs in each phase, and in a phase where nothing else runs (its own noise: GC, the
 *   scheduler). Its pairs take the locked path (the space has smallMax 0: no small-area cache).
 *   A last phase gives the machine's floor: this thread spins as long as the longest call
 *   took, and the worker only reads the clock (no allocator, no event loop), so the gap is the
 *   scheduler's and the host's alone.
 */
import { Worker } from "node:worker_threads";
import { VmapError, VmapSpace } from "../src/index.ts";
import { PHASES, type StallJob } from "./stall-protocol.ts";

const P = 4096;
const LOOKUPS = 2000;
const IDLE_MS = 500;
/**
 * lazyMaxPages of the stall space (4 MiB): the worker's frees purge in small batches, so that
 * its own purges (its noise floor, the "nothing" row) stay short beside what is measured.
 */
export const STALL_LAZY_PAGES = 1024;

function timed(n: number, f: (i: number) => void): { meanUs: number; maxUs: number } {
	let sum = 0;
	let max = 0;
	for (let i = 0; i < n; i++) {
		const t0 = performance.now();
		f(i);
		const d = performance.now() - t0;
		sum += d;
		if (d > max) max = d;
	}
	return { meanUs: (sum / n) * 1000, maxUs: max * 1000 };
}

function expectCode(code: string, f: () => unknown): void {
	try {
		f();
	} catch (e) {
		if (e instanceof VmapError && e.code === code) return;
		throw e;
	}
	throw new Error(`expected ${code}`);
}

/** `live` areas of 1..3 pages; with `spaced`, a 1-page busy area after each (so that no two lazy areas merge). */
function fill(space: VmapSpace, live: number, spaced: boolean): Float64Array {
	const addrs = new Float64Array(live);
	for (let i = 0; i < live; i++) {
		addrs[i] = space.alloc(P * (1 + (i % 3)), {});
		if (spaced) space.alloc(P, {});
	}
	return addrs;
}

function lookups(live: number) {
	const space = VmapSpace.create({
		size: 2 ** 44,
		pageSize: P,
		maxAreas: 3 * live + 1024, // lazy areas, the busy ones between them, and the free blocks zone-fit leaves (2 nodes)
		nodes: 2,
		lazyMaxPages: 2 ** 40,
		priorityPurge: false,
		smallMax: 0, // areas in the trees: with the cache on, these sizes would be small areas
	});
	const addrs = fill(space, live, true);
	for (const a of addrs) space.free(a);
	const pick = (i: number) => addrs[(i * 7919) % live]!;
	const far = space.start + 2 ** 43; // never allocated
	const out = {
		findLazy: timed(LOOKUPS, (i) => {
			if (space.find(pick(i) + 1)?.state !== "lazy") throw new Error("find of a lazy address");
		}),
		doubleFree: timed(LOOKUPS, (i) => expectCode("EDOUBLEFREE", () => space.free(pick(i)))),
		unknownFree: timed(LOOKUPS, (i) => expectCode("ENOENT", () => space.free(far + i * P))),
		findFree: timed(LOOKUPS, (i) => {
			if (space.find(far + i * P) !== undefined) throw new Error("find of a free address");
		}),
		resizeLazy: timed(LOOKUPS, (i) => expectCode("EDOUBLEFREE", () => space.resize(pick(i), P))),
		lazyAreas: space.stats().lazyAreas,
	};
	space.check();
	return out;
}

async function stalls(live: number) {
	// smallMax 0: the worker's pairs take the locks (with the cache on they would take none).
	const space = VmapSpace.create({
		size: 2 ** 44,
		pageSize: P,
		maxAreas: live + 65536,
		nodes: 2,
		lazyMaxPages: STALL_LAZY_PAGES,
		smallMax: 0,
	});
	fill(space, live, false);
	const control = new SharedArrayBuffer(8 + 16 * PHASES.length);
	const words = new Int32Array(control);
	const gaps = new Float64Array(control, 8);
	const job: StallJob = { handle: space.handle, control, entry: new URL("./stall-worker.ts", import.meta.url).href };
	const w = new Worker(new URL("../scripts/ts-worker.mjs", import.meta.url), { workerData: job });
	space.watch(w);
	const exited = new Promise<void>((res, rej) => {
		w.once("exit", () => res());
		w.once("error", rej);
	});
	while (Atomics.load(words, 1) === 0) await new Promise((r) => setTimeout(r, 5)); // the worker runs
	const durationMs: Record<string, number> = {};
	for (let phase = 0; phase < PHASES.length; phase++) {
		Atomics.store(words, 0, phase);
		await new Promise((r) => setTimeout(r, 50)); // the worker sees the phase
		const t0 = performance.now();
		const name = PHASES[phase]!;
		if (name === "idle") await new Promise((r) => setTimeout(r, IDLE_MS));
		else if (name === "vmallocinfo") space.vmallocinfo();
		else if (name === "vmallocinfoAsync") await space.vmallocinfoAsync();
		else if (name === "dump") space.dump();
		else if (name === "check") space.check();
		else {
			const longest = Math.max(...Object.values(durationMs));
			while (performance.now() - t0 < longest); // busy, as during a call
		}
		durationMs[name] = performance.now() - t0;
	}
	Atomics.store(words, 0, -1); // stop
	await exited;
	const worstGapMs: Record<string, number> = {};
	const worstLockWaitMs: Record<string, number> = {};
	for (const [i, name] of PHASES.entries()) {
		worstGapMs[name] = gaps[2 * i]!;
		worstLockWaitMs[name] = gaps[2 * i + 1]!;
	}
	const pairs = words[1]!;
	space.check();
	return { durationMs, worstGapMs, worstLockWaitMs, workerPairs: pairs };
}

export async function lookupsCase(live: number) {
	const l = lookups(live);
	const s = await stalls(live);
	return { live, ...l, ...s };
}
