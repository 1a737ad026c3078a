/** The markdown report of `vmap bench`: ratios to vmap, then every run's honesty counters. */
import { LINEAR_OPS, OPS, SCALE } from "./cases.ts";
import { PEERS, peer, type Peer } from "./peers.ts";
import type { Meta, Run } from "./results.ts";
import { STALL_LAZY_PAGES } from "./lookups.ts";
import { PROBE } from "./workloads.ts";

type Row = Record<string, number | string | boolean>;

/** 1.23 M, 456.7 k, 3,964. */
export function rate(n: number): string {
	if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
	if (n >= 1e4) return `${(n / 1e3).toFixed(1)} k`;
	return Math.round(n).toLocaleString("en-US");
}

/** 4.4x, 0.19x, 0.0061x: two significant digits below 1. */
export function ratio(x: number): string {
	if (!Number.isFinite(x)) return "";
	if (x >= 10) return `${x.toFixed(0)}x`;
	if (x >= 0.1) return `${x.toFixed(2)}x`;
	return `${x.toPrecision(2)}x`;
}

const num = (r: Row, k: string): number => Number(r[k]);

/** The two locks most of a workers run's wait went to, with their shares of it: " (node 1's busy lock 45%, ...)"; "" under 1 ms. */
function waitedOn(x: Row): string {
	const w = (x.waitsByLock ?? {}) as Record<string, number>;
	const total = Object.values(w).reduce((a, b) => a + b, 0);
	if (total < 1) return "";
	const top = Object.entries(w)
		.sort((a, b) => b[1] - a[1])
		.slice(0, 2);
	return ` (${top.map(([lock, ms]) => `${lock.replace(/^the /, "")} ${Math.round((100 * ms) / total)}%`).join(", ")})`;
}

/** A path inside the repository or node_modules, not the machine's. */
const short = (at: string): string => at.replace(/\(?(file:\/\/)?\/[^ ]*?\/(node_modules|bench|src)\//, "($2/");

export function brokenNote(r: Run): string {
	return r.status === "broken" ? `${r.error}${r.at ? ` ${short(r.at)}` : ""}` : "";
}

/** A report being written: its lines, the runs it reports, and the footnotes of broken runs. */
class Report {
	readonly out: string[] = [];
	readonly notes: string[] = [];
	readonly runs: Run[];
	readonly meta: Meta;
	/** The live counts of the scale series that ran. */
	readonly scale: number[];

	constructor(runs: Run[], meta: Meta) {
		this.runs = runs;
		this.meta = meta;
		this.scale = SCALE.filter((live) => runs.some((r) => r.spec.kind === "scale" && r.spec.live === live));
	}

	line(s = ""): void {
		this.out.push(s);
	}

	find(name: string): Run | undefined {
		return this.runs.find((r) => r.name === name);
	}

	/** "broken [n]", its note added to the footnotes once. */
	footnote(r: Run): string {
		const text = `${r.name}: ${brokenNote(r)}`;
		let i = this.notes.indexOf(text);
		if (i < 0) i = this.notes.push(text) - 1;
		return `broken [${i + 1}]`;
	}

	/** A throughput cell: rate, ratio to vmap, and whether the run was capped. */
	cell(r: Run | undefined, base: Run | undefined, key: string): string {
		if (!r) return "";
		if (r.status === "skipped") return "not run";
		if (r.status === "broken") return this.footnote(r);
		const x = r.result;
		const b = base?.status === "ok" ? num(base.result, key) : Number.NaN;
		const cap = x.capped === "time" ? " ‡" : r.spec.kind === "scale" && peer(r.spec.peer).linear ? " †" : "";
		return `${rate(num(x, key))} (${ratio(num(x, key) / b)})${cap}`;
	}
}

export function markdown(runs: Run[], m: Meta): string {
	const rep = new Report(runs, m);
	for (const section of [
		header,
		throughput,
		fragmentation,
		workers,
		lookups,
		perOperation,
		batching,
		traces,
		everyRun,
		allocatorsAndBroken,
	])
		section(rep);
	return rep.out.join("\n");
}

/** The title and the run's circumstances. */
function header(rep: Report): void {
	const m = rep.meta;
	rep.line(`# vmalloc bench`);
	rep.line();
	rep.line(
		`${m.date.slice(0, 10)}; Node ${m.node}, ${m.platform}, ${m.cpu}, ${m.cores} cores; seed ${m.seed}${m.quick ? "; --quick (a tenth of the operations: a check that the bench runs, not figures)" : ""}.`,
	);
	rep.line(`Every case ran alone in a fresh process, one after another; the whole run took ${m.wallSec.toFixed(0)} s.`);
	rep.line();
}

/** Throughput: W0 and the scale series, as rates and ratios to vmap. */
function throughput(rep: Report): void {
	const m = rep.meta;
	const runs = rep.runs;
	const scale = rep.scale;
	const w0 = runs.some((r) => r.spec.kind === "W0");
	if (w0 || scale.length) {
		rep.line(`## Throughput: operations per second (ratio to vmap VmapSpace)`);
		rep.line();
		rep.line(
			`W0: 64 B alloc+free pairs per second (number-allocator: single IDs). Scale: random sizes 1..4096 B, one alloc or free per operation, the live count held within 1% (at least 100) of the column's; 10k live is W1.`,
		);
		rep.line();
		const head = [...(w0 ? ["W0 pairs/s"] : []), ...scale.map((l) => `${live(l)} live${l === 10_000 ? " (W1)" : ""}`)];
		rep.line(`| allocator | ${head.join(" | ")} |`);
		rep.line(`|---|${head.map(() => "---:").join("|")}|`);
		for (const p of PEERS) {
			const cells = [
				...(w0 ? [rep.cell(rep.find(`W0 ${p.id}`), rep.find("W0 vmap"), "pairsPerSec")] : []),
				...scale.map((l) => rep.cell(rep.find(`scale ${l} ${p.id}`), rep.find(`scale ${l} vmap`), "opsPerSec")),
			];
			if (cells.some((c) => c !== "")) rep.line(`| ${p.name} | ${cells.join(" | ")} |`);
		}
		rep.line();
		rep.line(
			`† linear (O(n)) peer: ${LINEAR_OPS.toLocaleString("en-US")} operations instead of ${OPS.toLocaleString("en-US")}${m.quick ? " (a tenth each with --quick)" : ""}, and a ${m.timeLimit} s limit on its timed loop. ‡ stopped by that limit; the table of every run says how many operations ran.`,
		);
		rep.line();
	}
}

/** Fragmentation: peak address span / peak live bytes, per scale point. */
function fragmentation(rep: Report): void {
	const scale = rep.scale;
	if (scale.length) {
		rep.line(`## Fragmentation: peak address span / peak live bytes`);
		rep.line();
		rep.line(
			`Span: from the allocator's lowest address to the highest end it handed out, over the fill and the run. 1.00 is perfect packing.`,
		);
		rep.line();
		rep.line(`| allocator | ${scale.map((l) => `${live(l)} live`).join(" | ")} |`);
		rep.line(`|---|${scale.map(() => "---:").join("|")}|`);
		for (const p of PEERS) {
			const cells = scale.map((l) => {
				const r = rep.find(`scale ${l} ${p.id}`);
				if (!r) return "";
				if (r.status !== "ok") return r.status === "broken" ? rep.footnote(r) : "not run";
				return `${num(r.result, "fragmentation").toFixed(2)}${p.unit === "ids" ? " (IDs)" : ""}`;
			});
			rep.line(`| ${p.name} | ${cells.join(" | ")} |`);
		}
		rep.line();
		rep.line(
			`vmap frees lazily: a freed range stays out of use until a purge, which runs once lazyMaxPages (32 MiB by default) have piled up, so its span includes up to 32 MiB of freed ranges. That dominates at small live counts; the lazyMaxPages 1 MiB row shows the trade: less address space held, more purges. With the small-area cache on, sizes round up to their class (at most 25%), each size class keeps partly used blocks of 64 KiB, and freed small areas wait for the handle's flush (at most a quarter of its blocks' bytes) before reuse.`,
		);
		rep.line();
	}
}

/** Workers sharing one allocator. */
function workers(rep: Report): void {
	const runs = rep.runs;
	const wk = runs.filter((r) => r.spec.kind === "workers");
	if (wk.length) {
		rep.line(`## Workers sharing one allocator`);
		rep.line();
		rep.line(
			`Real worker_threads released together by an Atomics gate; aggregate = all operations over the slowest worker's time (W0 counts pairs). After the run every worker holds ${PROBE.toLocaleString("en-US")} areas (W0) or its 10k live set (W1), and all of them are checked for overlap across workers. vmap W0 allocates one page (pageSize 4096), W1 random sizes 1..4096 B (pageSize 1); "private" gives each worker a space of its own (the same options): what two threads can do on this machine with nothing shared, the ceiling for the shared rows. The lock wait names the two locks most of it went to (VmapSpace.lockWaits()). shared-memory-objects W0 allocates 64 B from one locked MemoryBuffer.`,
		);
		rep.line();
		rep.line(
			`| allocator | workload | workers | space | small-area cache | nodes | ops (all workers) | aggregate ops/s | vs 1 worker | vs 2 private spaces | lock wait, share of worker time | pool hit rate | fails | overlaps | peak RSS |`,
		);
		rep.line(`|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`);
		for (const r of wk) {
			if (r.spec.kind !== "workers") continue;
			const s = r.spec;
			const vmap = s.peer === "vmap";
			const name = vmap ? "vmap VmapSpace" : `${peer("smo").name}${s.selfShim ? ", globalThis.self defined" : ""}`;
			const lead = `| ${name} | ${s.workload} | ${s.workers} | ${s.private ? "private" : "shared"} | ${vmap ? (s.cache ? "on" : "off") : "-"} | ${vmap ? s.nodes : "-"} |`;
			if (r.status !== "ok") {
				rep.line(`${lead} ${r.status === "broken" ? rep.footnote(r) : "not run"} ||||||||`);
				continue;
			}
			const x = r.result;
			const vs = (other: string) => {
				const o = rep.find(other);
				return o && o !== r && o.status === "ok" ? ratio(num(x, "opsPerSec") / num(o.result, "opsPerSec")) : "";
			};
			const one = !vmap
				? `workers smo ${s.workload} x1`
				: s.cache
					? `workers vmap ${s.workload} x1`
					: `workers vmap ${s.workload} x1 nodes 1 no cache`;
			const priv = vmap && s.workers === 2 ? vs(`workers vmap ${s.workload} x2 private${s.cache ? "" : " no cache"}`) : "";
			rep.line(
				`${lead} ${rate(num(x, "ops"))} | ${rate(num(x, "opsPerSec"))} | ${vs(one)} | ${priv} | ${vmap ? `${(100 * num(x, "lockWaitShare")).toFixed(1)}%${waitedOn(x)}` : "-"} | ${vmap ? `${(100 * num(x, "poolHitRate")).toFixed(1)}%` : "-"} | ${x.fails} | ${x.overlaps} | ${mib(x)} |`,
			);
		}
		rep.line();
	}
}

/** Lookups and diagnostics at a million lazy areas, and the stall table. */
function lookups(rep: Report): void {
	const lk = rep.find("lookups vmap");
	if (lk) {
		rep.line(`## Lookups and diagnostics at scale (vmap only)`);
		rep.line();
		if (lk.status !== "ok") rep.line(lk.status === "broken" ? rep.footnote(lk) : "not run");
		else {
			const x = lk.result as Record<string, Record<string, number>> & Row;
			const us = (k: string) => `${x[k]!.meanUs!.toFixed(2)} µs | ${x[k]!.maxUs!.toFixed(1)} µs`;
			rep.line(
				`${rate(num(x, "lazyAreas"))} lazy areas (of 1..3 pages, 2 nodes, nothing purged); each lookup timed ${rate(2000)} times.`,
			);
			rep.line();
			rep.line(`| call | mean | worst |`);
			rep.line(`|---|---:|---:|`);
			rep.line(`| find() of an address inside a lazy area | ${us("findLazy")} |`);
			rep.line(`| free() of a lazy area (EDOUBLEFREE) | ${us("doubleFree")} |`);
			rep.line(`| free() of a never allocated address (ENOENT) | ${us("unknownFree")} |`);
			rep.line(`| find() of a free address | ${us("findFree")} |`);
			rep.line(`| resize() of a lazy area (EDOUBLEFREE) | ${us("resizeLazy")} |`);
			rep.line();
			rep.line(
				`Then a space of ${rate(num(x, "live"))} busy areas (lazyMaxPages ${STALL_LAZY_PAGES}, so the worker's own purges stay small); another worker runs alloc+free pairs of 1..4 pages on the locked path (the space has smallMax 0), giving its event loop a turn every 64 pairs. Its worst gap between two pairs while this thread runs each call, and while nothing else runs (the worker's own noise: GC, the scheduler, its drain). The last row is the machine's floor: this thread spins as long as the longest call took while the worker only reads the clock (no allocator, no event loop), so whatever gap it sees is the scheduler's and the host's:`,
			);
			rep.line();
			const d = x.durationMs!;
			const g = x.worstGapMs!;
			const lw = x.worstLockWaitMs!;
			rep.line(`| this thread runs | for | the worker's worst gap | its worst wait for a lock |`);
			rep.line(`|---|---:|---:|---:|`);
			for (const k of Object.keys(g))
				rep.line(
					`| ${k === "idle" ? "nothing" : k === "floor" ? "a busy loop; the worker only reads the clock" : `${k}()`} | ${d[k]!.toFixed(0)} ms | ${g[k]!.toFixed(2)} ms | ${lw[k]!.toFixed(2)} ms |`,
				);
			rep.line();
		}
	}
}

/** Per-operation cost at the largest live count over the smallest. */
function perOperation(rep: Report): void {
	const perOp = SCALE.length > 1 ? [rep.find(`scale ${SCALE[0]} vmap`), rep.find(`scale ${SCALE[SCALE.length - 1]} vmap`)] : [];
	if (perOp[0]?.status === "ok" && perOp[1]?.status === "ok") {
		const rows = PEERS.flatMap((p) => {
			const lo = rep.find(`scale ${SCALE[0]} ${p.id}`);
			const hi = rep.find(`scale ${SCALE[SCALE.length - 1]} ${p.id}`);
			return lo?.status === "ok" && hi?.status === "ok" && !p.linear
				? [`| ${p.name} | ${(num(lo.result, "opsPerSec") / num(hi.result, "opsPerSec")).toFixed(2)} |`]
				: [];
		});
		rep.line(`## Per-operation cost at ${live(SCALE[SCALE.length - 1]!)} live ÷ at ${live(SCALE[0]!)} live (scale series)`);
		rep.line();
		rep.line(`| allocator | cost ratio |`);
		rep.line(`|---|---:|`);
		for (const r of rows) rep.line(r);
		rep.line();
	}
}

/** Lazy free against eager purges, the flush costing 20 us. */
function batching(rep: Report): void {
	const runs = rep.runs;
	const ba = runs.filter((r) => r.spec.kind === "batching");
	if (ba.length) {
		rep.line(`## Lazy free batches the expensive flush (vmap only)`);
		rep.line();
		rep.line(
			`One-page alloc+free pairs; the flush hook burns 20 us of CPU, as a TLB shootdown or a GPU fence wait would. Eager purges after every free, what an allocator that reuses freed space at once must do to be safe.`,
		);
		rep.line();
		rep.line(`| case | pairs | pairs/s | vs lazy | flushes | pairs per flush | fails | overlaps |`);
		rep.line(`|---|---:|---:|---:|---:|---:|---:|---:|`);
		const lazy = rep.find("batching vmap lazy");
		for (const r of ba) {
			if (r.status !== "ok") {
				rep.line(`| ${r.name} | ${r.status === "broken" ? rep.footnote(r) : "not run"} |||||||`);
				continue;
			}
			const x = r.result;
			rep.line(
				`| ${r.name} | ${rate(num(x, "pairs"))} | ${rate(num(x, "pairsPerSec"))} | ${lazy?.status === "ok" ? ratio(num(x, "pairsPerSec") / num(lazy.result, "pairsPerSec")) : ""} | ${rate(num(x, "flushes"))} | ${num(x, "pairsPerFlush").toFixed(1)} | ${x.fails} | ${x.overlaps} |`,
			);
		}
		rep.line();
	}
}

/** Recorded traces: vmalloc beside the C library's malloc and the loop's own ceiling. */
function traces(rep: Report): void {
	const tr = rep.runs.filter((r) => r.spec.kind === "trace");
	if (!tr.length) return;
	rep.line(`## Real traces beside the C library's malloc`);
	rep.line();
	rep.line(
		`Each trace of examples/traces/ (real programs' malloc and free, examples/traces/README.md) replayed in a tight loop, the median of 5 rounds each, each round on a fresh space: through vmalloc (pageSize 16, a space of 4x the trace's peak of live bytes, lazyMaxPages an eighth of that peak, as vmalloc replay makes it), with the small-area cache and without; through the C library's malloc (examples/traces/replay.c, compiled at run time); and through the loop alone with a bump allocator, the ceiling of any allocator in it. "Warm": vmalloc with the cache, the median of 5 more rounds after those, once V8 has compiled its hot paths (the C replayer needs no warm-up). Fragmentation: peak address span / peak live bytes.`,
	);
	rep.line();
	rep.line(
		`| trace | operations | vmalloc ops/s | vs C malloc | warm | vs C malloc | fragmentation | smallMax 0 ops/s | vs C malloc | fragmentation | C malloc ops/s | the loop alone ops/s |`,
	);
	rep.line(`|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`);
	for (const r of tr) {
		if (r.status !== "ok") {
			rep.line(`| ${r.name} | ${r.status === "broken" ? rep.footnote(r) : "not run"} |||||||||||`);
			continue;
		}
		const x = r.result;
		const c = typeof x.nativeOpsPerSec === "number" ? x.nativeOpsPerSec : undefined;
		const vs = (k: string) => (c === undefined ? "" : ratio(num(x, k) / c));
		const cCell = c === undefined ? `not run: ${x.nativeMissing}` : `${rate(c)} (${x.compiler})`;
		rep.line(
			`| ${r.name.slice(6)} | ${rate(num(x, "ops"))} | ${rate(num(x, "cacheOpsPerSec"))} | ${vs("cacheOpsPerSec")} | ${rate(num(x, "cacheWarmOpsPerSec"))} | ${vs("cacheWarmOpsPerSec")} | ${num(x, "cacheFragmentation").toFixed(2)} | ${rate(num(x, "nocacheOpsPerSec"))} | ${vs("nocacheOpsPerSec")} | ${num(x, "nocacheFragmentation").toFixed(2)} | ${cCell} | ${rate(num(x, "harnessOpsPerSec"))} |`,
		);
	}
	rep.line();
}

/** Every single-thread run: what ran, failures, overlaps. */
function everyRun(rep: Report): void {
	const runs = rep.runs;
	const single = runs.filter((r) => r.spec.kind === "W0" || r.spec.kind === "scale");
	if (single.length) {
		rep.line(`## Every run: what ran, failures, overlaps`);
		rep.line();
		rep.line(
			`fails: allocations that returned no address. overlaps: live ranges overlapping a neighbour or outside the allocator's range, checked after the fill and after the run (W0: ${PROBE.toLocaleString("en-US")} areas held at once after the pairs). Each allocator's own validator ran after the run where it has one (vmap check(), first-fit check()).`,
		);
		rep.line();
		rep.line(`| case | allocator | operations run | seconds | fails | overlaps | peak RSS by the end of the run | notes |`);
		rep.line(`|---|---|---:|---:|---:|---:|---:|---|`);
		for (const r of single) {
			const p = peer(r.spec.peer);
			if (r.status !== "ok") {
				rep.line(`| ${r.name} | ${p.name} | | | | | | ${r.status === "broken" ? `**broken**: ${brokenNote(r)}` : r.reason} |`);
				continue;
			}
			const x = r.result;
			const ran = r.spec.kind === "W0" ? `${rate(num(x, "pairs"))} pairs` : `${rate(num(x, "ops"))} of ${rate(num(x, "opsPlanned"))}`;
			rep.line(
				`| ${r.name} | ${p.name} | ${ran} | ${num(x, "sec").toFixed(2)} | ${x.fails}${num(x, "fillFails") > 0 ? ` (+${x.fillFails} in the fill)` : ""} | ${x.overlaps} | ${mib(x)} | ${extra(p, x)} |`,
			);
		}
		rep.line();
	}
}

/** The allocators compared, then the footnotes of the broken runs. */
function allocatorsAndBroken(rep: Report): void {
	const single = rep.runs.filter((r) => r.spec.kind === "W0" || r.spec.kind === "scale");
	const notes = rep.notes;
	const compared = PEERS.filter((p) => single.some((r) => r.spec.peer === p.id));
	if (compared.length) {
		rep.line(`## The allocators`);
		rep.line();
		rep.line(`| allocator | per operation | configuration |`);
		rep.line(`|---|---|---|`);
	}
	for (const p of compared)
		rep.line(
			`| ${p.name} | ${p.linear ? "O(n): capped †" : p.unit === "ids" ? "O(log n) (intervals)" : p.id === "lifo" ? "O(1)" : "O(log n)"} | ${p.note} |`,
		);
	if (compared.length) rep.line();
	if (notes.length) {
		rep.line(`## Broken`);
		rep.line();
		for (const [i, n] of notes.entries()) rep.line(`${i + 1}. ${n}`);
		rep.line();
	}
}

function live(n: number): string {
	return n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`;
}

function mib(x: Row): string {
	return `${num(x, "maxRssMiB").toFixed(0)} MiB`;
}

function extra(p: Peer, x: Row): string {
	const parts: string[] = [];
	if (x.capped === "time") parts.push("stopped by the time limit");
	if ("leakedIds" in x) parts.push(`IDs leaked by free(): ${x.leakedIds}`);
	if ("flushes" in x)
		parts.push(`${x.purges} purges, ${x.flushes} flushes (the cache's included), ${x.smallBlocks} small-area blocks at the end`);
	if (p.unit === "ids") parts.push("single IDs");
	return parts.join("; ");
}
