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

/** A path inside the repository or node_modules, not the machine's. */
const short = (at: string): string => at.replace(/\(?(file:\/\/)?\/[^ ]*?\/(node_modules|bench|src)\//, "($2/");

export function brokenNote(r: Run): string {
	return r.status === "broken" ? `${r.error}${r.at ? ` ${short(r.at)}` : ""}` : "";
}

function find(runs: Run[], name: string): Run | undefined {
	return runs.find((r) => r.name === name);
}

export function markdown(runs: Run[], m: Meta): string {
	const out: string[] = [];
	const line = (s = "") => out.push(s);
	const scale = SCALE.filter((live) => runs.some((r) => r.spec.kind === "scale" && r.spec.live === live));
	const notes: string[] = [];
	const footnote = (r: Run): string => {
		const text = `${r.name}: ${brokenNote(r)}`;
		let i = notes.indexOf(text);
		if (i < 0) i = notes.push(text) - 1;
		return `broken [${i + 1}]`;
	};
	/** A throughput cell: rate, ratio to vmap, and whether the run was capped. */
	const cell = (r: Run | undefined, base: Run | undefined, key: string): string => {
		if (!r) return "";
		if (r.status === "skipped") return "not run";
		if (r.status === "broken") return footnote(r);
		const x = r.result;
		const b = base?.status === "ok" ? num(base.result, key) : Number.NaN;
		const cap = x.capped === "time" ? " ‡" : r.spec.kind === "scale" && peer(r.spec.peer).linear ? " †" : "";
		return `${rate(num(x, key))} (${ratio(num(x, key) / b)})${cap}`;
	};

	line(`# vmap bench`);
	line();
	line(
		`${m.date.slice(0, 10)}; Node ${m.node}, ${m.platform}, ${m.cpu}, ${m.cores} cores; seed ${m.seed}${m.quick ? "; --quick (a tenth of the operations: a check that the bench runs, not figures)" : ""}.`,
	);
	line(`Every case ran alone in a fresh process, one after another; the whole run took ${m.wallSec.toFixed(0)} s.`);
	line();

	const w0 = runs.some((r) => r.spec.kind === "W0");
	if (w0 || scale.length) {
		line(`## Throughput: operations per second (ratio to vmap VmapSpace)`);
		line();
		line(
			`W0: 64 B alloc+free pairs per second (number-allocator: single IDs). Scale: random sizes 1..4096 B, one alloc or free per operation, the live count held within 1% (at least 100) of the column's; 10k live is W1.`,
		);
		line();
		const head = [...(w0 ? ["W0 pairs/s"] : []), ...scale.map((l) => `${live(l)} live${l === 10_000 ? " (W1)" : ""}`)];
		line(`| allocator | ${head.join(" | ")} |`);
		line(`|---|${head.map(() => "---:").join("|")}|`);
		for (const p of PEERS) {
			const cells = [
				...(w0 ? [cell(find(runs, `W0 ${p.id}`), find(runs, "W0 vmap"), "pairsPerSec")] : []),
				...scale.map((l) => cell(find(runs, `scale ${l} ${p.id}`), find(runs, `scale ${l} vmap`), "opsPerSec")),
			];
			if (cells.some((c) => c !== "")) line(`| ${p.name} | ${cells.join(" | ")} |`);
		}
		line();
		line(
			`† linear (O(n)) peer: ${LINEAR_OPS.toLocaleString("en-US")} operations instead of ${OPS.toLocaleString("en-US")}${m.quick ? " (a tenth each with --quick)" : ""}, and a ${m.timeLimit} s limit on its timed loop. ‡ stopped by that limit; the table of every run says how many operations ran.`,
		);
		line();
	}

	if (scale.length) {
		line(`## Fragmentation: peak address span / peak live bytes`);
		line();
		line(
			`Span: from the allocator's lowest address to the highest end it handed out, over the fill and the run. 1.00 is perfect packing.`,
		);
		line();
		line(`| allocator | ${scale.map((l) => `${live(l)} live`).join(" | ")} |`);
		line(`|---|${scale.map(() => "---:").join("|")}|`);
		for (const p of PEERS) {
			const cells = scale.map((l) => {
				const r = find(runs, `scale ${l} ${p.id}`);
				if (!r) return "";
				if (r.status !== "ok") return r.status === "broken" ? footnote(r) : "not run";
				return `${num(r.result, "fragmentation").toFixed(2)}${p.unit === "ids" ? " (IDs)" : ""}`;
			});
			line(`| ${p.name} | ${cells.join(" | ")} |`);
		}
		line();
		line(
			`vmap frees lazily: a freed range stays out of use until a purge, which runs once lazyMaxPages (32 MiB by default) have piled up, so its span includes up to 32 MiB of freed ranges. That dominates at small live counts; the lazyMaxPages 1 MiB row shows the trade: less address space held, more purges. With the small-area cache on, sizes round up to their class (at most 25%), each size class keeps partly used blocks of 64 KiB, and freed small areas wait for the handle's flush (at most a quarter of its blocks' bytes) before reuse.`,
		);
		line();
	}

	const wk = runs.filter((r) => r.spec.kind === "workers");
	if (wk.length) {
		line(`## Workers sharing one allocator`);
		line();
		line(
			`Real worker_threads released together by an Atomics gate; aggregate = all operations over the slowest worker's time (W0 counts pairs). After the run every worker holds ${PROBE.toLocaleString("en-US")} areas (W0) or its 10k live set (W1), and all of them are checked for overlap across workers. vmap W0 allocates one page (pageSize 4096), W1 random sizes 1..4096 B (pageSize 1); "private" gives each worker a space of its own (the same options): what two threads can do on this machine with nothing shared, the ceiling for the shared rows. shared-memory-objects W0 allocates 64 B from one locked MemoryBuffer.`,
		);
		line();
		line(
			`| allocator | workload | workers | space | small-area cache | nodes | ops (all workers) | aggregate ops/s | vs 1 worker | vs 2 private spaces | lock wait, share of worker time | pool hit rate | fails | overlaps | peak RSS |`,
		);
		line(`|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`);
		for (const r of wk) {
			if (r.spec.kind !== "workers") continue;
			const s = r.spec;
			const vmap = s.peer === "vmap";
			const name = vmap ? "vmap VmapSpace" : `${peer("smo").name}${s.selfShim ? ", globalThis.self defined" : ""}`;
			const lead = `| ${name} | ${s.workload} | ${s.workers} | ${s.private ? "private" : "shared"} | ${vmap ? (s.cache ? "on" : "off") : "-"} | ${vmap ? s.nodes : "-"} |`;
			if (r.status !== "ok") {
				line(`${lead} ${r.status === "broken" ? footnote(r) : "not run"} ||||||||`);
				continue;
			}
			const x = r.result;
			const vs = (other: string) => {
				const o = find(runs, other);
				return o && o !== r && o.status === "ok" ? ratio(num(x, "opsPerSec") / num(o.result, "opsPerSec")) : "";
			};
			const one = !vmap
				? `workers smo ${s.workload} x1`
				: s.cache
					? `workers vmap ${s.workload} x1`
					: `workers vmap ${s.workload} x1 nodes 1 no cache`;
			const priv = vmap && s.workers === 2 ? vs(`workers vmap ${s.workload} x2 private`) : "";
			line(
				`${lead} ${rate(num(x, "ops"))} | ${rate(num(x, "opsPerSec"))} | ${vs(one)} | ${priv} | ${vmap ? `${(100 * num(x, "lockWaitShare")).toFixed(1)}%` : "-"} | ${vmap ? `${(100 * num(x, "poolHitRate")).toFixed(1)}%` : "-"} | ${x.fails} | ${x.overlaps} | ${mib(x)} |`,
			);
		}
		line();
	}

	const lk = find(runs, "lookups vmap");
	if (lk) {
		line(`## Lookups and diagnostics at scale (vmap only)`);
		line();
		if (lk.status !== "ok") line(lk.status === "broken" ? footnote(lk) : "not run");
		else {
			const x = lk.result as Record<string, Record<string, number>> & Row;
			const us = (k: string) => `${x[k]!.meanUs!.toFixed(2)} µs | ${x[k]!.maxUs!.toFixed(1)} µs`;
			line(
				`${rate(num(x, "lazyAreas"))} lazy areas (of 1..3 pages, 2 nodes, nothing purged); each lookup timed ${rate(2000)} times.`,
			);
			line();
			line(`| call | mean | worst |`);
			line(`|---|---:|---:|`);
			line(`| find() of an address inside a lazy area | ${us("findLazy")} |`);
			line(`| free() of a lazy area (EDOUBLEFREE) | ${us("doubleFree")} |`);
			line(`| free() of a never allocated address (ENOENT) | ${us("unknownFree")} |`);
			line(`| find() of a free address | ${us("findFree")} |`);
			line(`| resize() of a lazy area (EDOUBLEFREE) | ${us("resizeLazy")} |`);
			line();
			line(
				`Then a space of ${rate(num(x, "live"))} busy areas (lazyMaxPages ${STALL_LAZY_PAGES}, so the worker's own purges stay small); another worker runs alloc+free pairs of 1..4 pages on the locked path (options given), giving its event loop a turn every 64 pairs. Its worst gap between two pairs while this thread runs each call, and while nothing else runs (the worker's own noise: GC, the scheduler, its drain). The last row is the machine's floor: this thread spins as long as the longest call took while the worker only reads the clock (no allocator, no event loop), so whatever gap it sees is the scheduler's and the host's:`,
			);
			line();
			const d = x.durationMs!;
			const g = x.worstGapMs!;
			const lw = x.worstLockWaitMs!;
			line(`| this thread runs | for | the worker's worst gap | its worst wait for a lock |`);
			line(`|---|---:|---:|---:|`);
			for (const k of Object.keys(g))
				line(
					`| ${k === "idle" ? "nothing" : k === "floor" ? "a busy loop; the worker only reads the clock" : `${k}()`} | ${d[k]!.toFixed(0)} ms | ${g[k]!.toFixed(2)} ms | ${lw[k]!.toFixed(2)} ms |`,
				);
			line();
		}
	}
	const perOp = SCALE.length > 1 ? [find(runs, `scale ${SCALE[0]} vmap`), find(runs, `scale ${SCALE[SCALE.length - 1]} vmap`)] : [];
	if (perOp[0]?.status === "ok" && perOp[1]?.status === "ok") {
		const rows = PEERS.flatMap((p) => {
			const lo = find(runs, `scale ${SCALE[0]} ${p.id}`);
			const hi = find(runs, `scale ${SCALE[SCALE.length - 1]} ${p.id}`);
			return lo?.status === "ok" && hi?.status === "ok" && !p.linear
				? [`| ${p.name} | ${(num(lo.result, "opsPerSec") / num(hi.result, "opsPerSec")).toFixed(2)} |`]
				: [];
		});
		line(`## Per-operation cost at ${live(SCALE[SCALE.length - 1]!)} live ÷ at ${live(SCALE[0]!)} live (scale series)`);
		line();
		line(`| allocator | cost ratio |`);
		line(`|---|---:|`);
		for (const r of rows) line(r);
		line();
	}

	const ba = runs.filter((r) => r.spec.kind === "batching");
	if (ba.length) {
		line(`## Lazy free batches the expensive flush (vmap only)`);
		line();
		line(
			`One-page alloc+free pairs; the flush hook burns 20 us of CPU, as a TLB shootdown or a GPU fence wait would. Eager purges after every free, what an allocator that reuses freed space at once must do to be safe.`,
		);
		line();
		line(`| case | pairs | pairs/s | vs lazy | flushes | pairs per flush | fails | overlaps |`);
		line(`|---|---:|---:|---:|---:|---:|---:|---:|`);
		const lazy = find(runs, "batching vmap lazy");
		for (const r of ba) {
			if (r.status !== "ok") {
				line(`| ${r.name} | ${r.status === "broken" ? footnote(r) : "not run"} |||||||`);
				continue;
			}
			const x = r.result;
			line(
				`| ${r.name} | ${rate(num(x, "pairs"))} | ${rate(num(x, "pairsPerSec"))} | ${lazy?.status === "ok" ? ratio(num(x, "pairsPerSec") / num(lazy.result, "pairsPerSec")) : ""} | ${rate(num(x, "flushes"))} | ${num(x, "pairsPerFlush").toFixed(1)} | ${x.fails} | ${x.overlaps} |`,
			);
		}
		line();
	}

	const single = runs.filter((r) => r.spec.kind === "W0" || r.spec.kind === "scale");
	if (single.length) {
		line(`## Every run: what ran, failures, overlaps`);
		line();
		line(
			`fails: allocations that returned no address. overlaps: live ranges overlapping a neighbour or outside the allocator's range, checked after the fill and after the run (W0: ${PROBE.toLocaleString("en-US")} areas held at once after the pairs). Each allocator's own validator ran after the run where it has one (vmap check(), first-fit check()).`,
		);
		line();
		line(`| case | allocator | operations run | seconds | fails | overlaps | peak RSS by the end of the run | notes |`);
		line(`|---|---|---:|---:|---:|---:|---:|---|`);
		for (const r of single) {
			const p = peer(r.spec.peer);
			if (r.status !== "ok") {
				line(`| ${r.name} | ${p.name} | | | | | | ${r.status === "broken" ? `**broken**: ${brokenNote(r)}` : r.reason} |`);
				continue;
			}
			const x = r.result;
			const ran = r.spec.kind === "W0" ? `${rate(num(x, "pairs"))} pairs` : `${rate(num(x, "ops"))} of ${rate(num(x, "opsPlanned"))}`;
			line(
				`| ${r.name} | ${p.name} | ${ran} | ${num(x, "sec").toFixed(2)} | ${x.fails}${num(x, "fillFails") > 0 ? ` (+${x.fillFails} in the fill)` : ""} | ${x.overlaps} | ${mib(x)} | ${extra(p, x)} |`,
			);
		}
		line();
	}

	const compared = PEERS.filter((p) => single.some((r) => r.spec.peer === p.id));
	if (compared.length) {
		line(`## The allocators`);
		line();
		line(`| allocator | per operation | configuration |`);
		line(`|---|---|---|`);
	}
	for (const p of compared)
		line(
			`| ${p.name} | ${p.linear ? "O(n): capped †" : p.unit === "ids" ? "O(log n) (intervals)" : p.id === "lifo" ? "O(1)" : "O(log n)"} | ${p.note} |`,
		);
	if (compared.length) line();
	if (notes.length) {
		line(`## Broken`);
		line();
		for (const [i, n] of notes.entries()) line(`${i + 1}. ${n}`);
		line();
	}
	return out.join("\n");
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
