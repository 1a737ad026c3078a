/**
 * What `vmap bench` runs: the plan (every case, in order) and how one case runs inside its
 * own fresh process (bench/child.ts). A case is plain data, so the driver can pass it on a
 * command line and print it in --json.
 */
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { VmapSpace } from "../src/index.ts";
import { PEERS, peer, type PeerId } from "./peers.ts";
import { loadSmo } from "./peers/smo.ts";
import { lookupsCase } from "./lookups.ts";
import { traceCase } from "./traces.ts";
import type { WorkerJob, WorkerReport } from "./worker-job.ts";
import { reportOf } from "../harness/workers.ts";
import { fixed, Held, PROBE, probeOverlaps, random, rssMiB, workersSpace } from "./workloads.ts";

export type Spec =
	| { kind: "W0"; peer: PeerId; size: number; pairs: number; timeLimitMs: number }
	| { kind: "scale"; peer: PeerId; live: number; ops: number; maxSize: number; timeLimitMs: number; seed: number; viz?: string }
	| {
			kind: "workers";
			peer: "vmap" | "smo";
			workload: "W0" | "W1";
			workers: number;
			nodes: number;
			opsEach: number;
			seed: number;
			selfShim: boolean;
			private: boolean;
			cache: boolean;
	  }
	| { kind: "batching"; peer: "vmap"; eager: boolean; pairs: number }
	| { kind: "lookups"; peer: "vmap"; live: number }
	| { kind: "trace"; peer: "vmap"; file: string };

export interface Case {
	name: string;
	spec: Spec;
}

export interface PlanOptions {
	seed: number;
	/** A tenth of the operations and live counts up to 10k: proves the bench runs, gives no figures. */
	quick: boolean;
	/** Seconds a linear (O(n)) peer's timed loop may run. */
	timeLimit: number;
	/** A folder for the pictures of vmap's scale runs (--viz). */
	viz?: string | undefined;
}

/** The recorded traces (examples/traces/README.md), replayed beside the C library's malloc. */
const TRACES = ["gcc-cc1.trace.gz", "python-ast.trace.gz"].map((f) => fileURLToPath(new URL(`../examples/traces/${f}`, import.meta.url)));

/** Live counts of the scale series; 10k is W1. */
export const SCALE = [1_000, 10_000, 100_000, 1_000_000];
/** Timed operations of W0 (pairs) and of each scale point. */
export const OPS = 1_000_000;
/** Linear peers' op count in the scale series. */
export const LINEAR_OPS = 100_000;
/** Non-linear peers' time limit, which no healthy run reaches. */
const SAFETY_MS = 120_000;

export function plan(o: PlanOptions): Case[] {
	const div = o.quick ? 10 : 1;
	const out: Case[] = [];
	const limit = (linear: boolean) => (linear ? o.timeLimit * 1000 : SAFETY_MS);
	for (const p of PEERS)
		out.push({ name: `W0 ${p.id}`, spec: { kind: "W0", peer: p.id, size: 64, pairs: OPS / div, timeLimitMs: limit(p.linear) } });
	for (const live of o.quick ? SCALE.slice(0, 2) : SCALE) {
		for (const p of PEERS) {
			const ops = (p.linear ? LINEAR_OPS : OPS) / div;
			const viz = o.viz !== undefined && p.id.startsWith("vmap") ? { viz: o.viz } : {};
			out.push({
				name: `scale ${live} ${p.id}`,
				spec: { kind: "scale", peer: p.id, live, ops, maxSize: 4096, timeLimitMs: limit(p.linear), seed: o.seed, ...viz },
			});
		}
	}
	const workers = (
		name: string,
		peer: "vmap" | "smo",
		workload: "W0" | "W1",
		n: number,
		nodes: number,
		opsTotal: number,
		more: { selfShim?: boolean; private?: boolean; cache?: boolean } = {},
	) =>
		out.push({
			name,
			spec: {
				kind: "workers",
				peer,
				workload,
				workers: n,
				nodes,
				opsEach: opsTotal / n / div,
				seed: o.seed,
				selfShim: more.selfShim ?? false,
				private: more.private ?? false,
				cache: more.cache ?? true,
			},
		});
	// The small-area cache on (the default): 1 and 2 workers on one space, and 2 workers on a
	// space each (the machine's own ceiling for two threads); then the cache off, as before it.
	for (const [w, total] of [
		["W0", 20_000_000],
		["W1", 10_000_000],
	] as const) {
		workers(`workers vmap ${w} x1`, "vmap", w, 1, 1, total / 2);
		workers(`workers vmap ${w} x2`, "vmap", w, 2, 1, total);
		workers(`workers vmap ${w} x2 private`, "vmap", w, 2, 1, total, { private: true });
	}
	for (const [w, total] of [
		["W0", 2_000_000],
		["W1", 1_000_000],
	] as const) {
		for (const [n, nodes] of [
			[1, 1],
			[2, 1],
			[2, 2],
		] as const)
			workers(`workers vmap ${w} x${n} nodes ${nodes} no cache`, "vmap", w, n, nodes, total, { cache: false });
		// The ceiling for the rows above: two workers with nothing shared, each on a space of its own.
		workers(`workers vmap ${w} x2 private no cache`, "vmap", w, 2, 1, total, { private: true, cache: false });
	}
	workers("workers smo W0 x1", "smo", "W0", 1, 1, 400_000);
	workers("workers smo W0 x2", "smo", "W0", 2, 1, 400_000);
	// js-allocators.md section 3: its lock names the browser global `self`; defining it in the
	// workers makes the lock spin instead of wait, and the package run.
	workers("workers smo W0 x2 self shim", "smo", "W0", 2, 1, 400_000, { selfShim: true });
	out.push({ name: "lookups vmap", spec: { kind: "lookups", peer: "vmap", live: 1_000_000 / div } });
	out.push({ name: "batching vmap lazy", spec: { kind: "batching", peer: "vmap", eager: false, pairs: 2_000_000 / div } });
	out.push({ name: "batching vmap eager", spec: { kind: "batching", peer: "vmap", eager: true, pairs: 20_000 / div } });
	for (const file of o.quick ? TRACES.slice(0, 1) : TRACES)
		out.push({ name: `trace ${basename(file)}`, spec: { kind: "trace", peer: "vmap", file } });
	return out;
}

export async function runCase(spec: Spec): Promise<object> {
	switch (spec.kind) {
		case "W0": {
			const p = peer(spec.peer);
			return fixed(await p.make(2 * PROBE, spec.size, true), { size: spec.size, pairs: spec.pairs, ids: p.unit === "ids" });
		}
		case "scale": {
			const p = peer(spec.peer);
			const viz =
				spec.viz === undefined
					? undefined
					: {
							dir: spec.viz,
							name: `scale-${spec.live}-${spec.peer}`,
							title: `vmap bench, scale ${spec.live.toLocaleString("en-US")} live, ${p.name}`,
						};
			return random(await p.make(spec.live, spec.maxSize), { ...spec, ids: p.unit === "ids", viz });
		}
		case "workers":
			return shared(spec);
		case "batching":
			return batching(spec.eager, spec.pairs);
		case "lookups":
			return lookupsCase(spec.live);
		case "trace":
			return traceCase(spec.file);
	}
}

/** A flush hook that costs about `us` microseconds of CPU, as a TLB shootdown or a GPU fence wait would. */
function burn(us: number): () => void {
	return () => {
		const until = performance.now() + us / 1000;
		while (performance.now() < until);
	};
}

/**
 * Batching: fixed-size 1-page pairs with an expensive flush. `eager` purges after every free
 * (a flush per free, what an allocator without lazy free must do to be safe); lazy lets the
 * threshold batch them (one flush per lazyMaxPages pages). Pairs that fail throw (EBUSY) and
 * break the run; PROBE areas held after it are checked for overlap.
 */
function batching(eager: boolean, pairs: number) {
	const s = VmapSpace.create({ size: 2 ** 40, flush: burn(20) });
	const t0 = performance.now();
	for (let i = 0; i < pairs; i++) {
		s.free(s.alloc(4096));
		if (eager) s.purge();
	}
	const sec = (performance.now() - t0) / 1000;
	const maxRssMiB = rssMiB();
	const st = s.stats();
	const probe = probeOverlaps(
		{ alloc: (n) => s.alloc(n), free: (a) => s.free(a), check: () => {}, base: s.start, limit: s.start + s.size },
		4096,
		4096,
	);
	s.check();
	return { pairs, sec, pairsPerSec: pairs / sec, ...probe, flushes: st.flushes, pairsPerFlush: pairs / st.flushes, maxRssMiB };
}

/** The allocator the workers share (a vmap space, or a shared-memory-objects MemoryBuffer), its handle for them and its range. */
async function sharedAllocator(spec: Extract<Spec, { kind: "workers" }>) {
	if (spec.peer === "vmap") {
		const space = workersSpace(spec.workload, spec.nodes, spec.cache);
		// Private: each worker creates a space like this one for itself.
		return { handle: spec.private ? null : space.handle, space, base: space.start, limit: space.start + space.size };
	}
	const { MemoryBuffer } = await loadSmo();
	const buffer = new SharedArrayBuffer(64 * 2 ** 20);
	new MemoryBuffer({ buf: buffer, align: 8 });
	return { handle: { buffer }, space: undefined, base: 1, limit: buffer.byteLength };
}

/**
 * `workers` real worker_threads share one allocator, released together; aggregate ops/s is
 * all operations over the slowest worker's time (W0 counts alloc+free pairs). Afterwards the
 * ranges every worker still holds are checked for overlap across workers.
 */
async function shared(spec: Extract<Spec, { kind: "workers" }>) {
	const { handle, space, base, limit } = await sharedAllocator(spec);
	const control = new SharedArrayBuffer(8);
	const gate = new Int32Array(control);
	const entry = new URL("./worker-job.ts", import.meta.url).href;
	const boot = new URL("../scripts/ts-worker.mjs", import.meta.url);
	const ws = Array.from({ length: spec.workers }, (_, i) => {
		const job: WorkerJob = {
			peer: spec.peer,
			handle,
			control,
			workload: spec.workload,
			ops: spec.opsEach,
			live: 10_000,
			seed: spec.seed + i,
			selfShim: spec.selfShim,
			nodes: spec.nodes,
			cache: spec.cache,
		};
		return new Worker(boot, { workerData: { entry, ...job } });
	});
	for (const w of ws) space?.watch(w); // a worker that dies holding a lock fails the case instead of hanging it
	const reports = ws.map((w) => reportOf<WorkerReport>(w));
	// A worker that dies before the gate must not leave the others waiting.
	await Promise.race([
		(async () => {
			while (Atomics.load(gate, 1) < spec.workers) await new Promise((r) => setTimeout(r, 5));
		})(),
		Promise.all(reports),
	]);
	Atomics.store(gate, 0, 1);
	Atomics.notify(gate, 0);
	const out = await Promise.all(reports).finally(() => Promise.all(ws.map((w) => w.terminate())));
	const maxRssMiB = rssMiB();
	const held = new Held(out.reduce((n, r) => n + r.addr.length, 0));
	for (const r of out) {
		held.addr.set(r.addr, held.n);
		held.size.set(r.size, held.n);
		held.n += r.addr.length;
	}
	// Private spaces hand out the same addresses: each worker checked its own ranges.
	const overlaps = spec.private ? out.reduce((n, r) => n + r.overlaps, 0) : held.overlaps(base, limit);
	space?.check();
	const st = space?.stats();
	const ms = Math.max(...out.map((r) => r.ms));
	const ops = out.reduce((n, r) => n + r.ops, 0);
	const common = {
		workers: spec.workers,
		ops,
		sec: ms / 1000,
		opsPerSec: (ops / ms) * 1000,
		fails: out.reduce((n, r) => n + r.fails, 0),
		overlaps,
		maxRssMiB,
	};
	if (!st) return common;
	const lockWaitMs = out.reduce((n, r) => n + r.lockWaitMs!, 0);
	const waitsByLock: Record<string, number> = {};
	for (const r of out) for (const [lock, ms] of Object.entries(r.lockWaits ?? {})) waitsByLock[lock] = (waitsByLock[lock] ?? 0) + ms;
	return {
		...common,
		waitsByLock,
		nodes: spec.nodes,
		poolHitRate: st.poolHits + st.poolMisses > 0 ? st.poolHits / (st.poolHits + st.poolMisses) : 0,
		helped: st.helped,
		lockWaitMs,
		lockWaitShare: lockWaitMs / (ms * spec.workers),
	};
}
