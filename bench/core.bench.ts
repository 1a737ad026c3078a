/**
 * `npm run bench`: runs every case of bench/cases.ts in its own fresh process, in turn, and
 * prints a markdown table. `npm run bench -- W1` runs the cases whose name contains "W1".
 * `--json` prints the raw results instead.
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { cases } from "./cases.ts";

const self = fileURLToPath(import.meta.url);
const [, , first, ...rest] = process.argv;

if (first === "--case") {
	const name = rest.join(" ");
	const run = cases[name];
	if (!run) throw new Error(`no bench case ${JSON.stringify(name)}`);
	console.log(JSON.stringify(await run()));
} else {
	const json = process.argv.includes("--json");
	const filter = process.argv.slice(2).filter((a) => !a.startsWith("--"));
	const names = Object.keys(cases).filter((n) => filter.length === 0 || filter.some((f) => n.includes(f)));
	const results: Record<string, Record<string, number | boolean>> = {};
	for (const name of names) {
		const out = execFileSync(process.execPath, ["--import", "tsx", self, "--case", name], { encoding: "utf8", maxBuffer: 1 << 24 });
		results[name] = JSON.parse(out.trim().split("\n").pop()!);
		if (!json) process.stderr.write(`done: ${name}\n`);
	}
	if (json) console.log(JSON.stringify(results, null, 2));
	else print(results);
}

function fmt(n: number | boolean | undefined, digits = 0): string {
	if (typeof n !== "number") return n === undefined ? "" : String(n);
	if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
	if (n >= 1e4) return `${(n / 1e3).toFixed(1)} k`;
	return n.toFixed(digits);
}

function print(r: Record<string, Record<string, number | boolean>>): void {
	const w0 = Object.entries(r).filter(([n]) => n.startsWith("W0"));
	if (w0.length) {
		const base = r["W0 vmap 64 B (pageSize 1)"]?.pairsPerSec as number;
		console.log("\n| W0: fixed-size alloc+free pairs | pairs/s | vs vmap 64 B | fails | pool hit rate |\n|---|---:|---:|---:|---:|");
		for (const [n, x] of w0) console.log(`| ${n} | ${fmt(x.pairsPerSec)} | ${((x.pairsPerSec as number) / base).toFixed(2)}x | ${x.fails} | ${(100 * (x.poolHitRate as number)).toFixed(1)}% |`);
	}
	const b = Object.entries(r).filter(([n]) => n.startsWith("batching"));
	if (b.length) {
		const base = r["batching lazy (flush burns 20 us)"]?.pairsPerSec as number;
		console.log("\n| batching: 1-page pairs, flush burns 20 us | pairs | pairs/s | vs lazy | flushes | pairs per flush |\n|---|---:|---:|---:|---:|---:|");
		for (const [n, x] of b) {
			console.log(`| ${n} | ${fmt(x.pairs)} | ${fmt(x.pairsPerSec)} | ${((x.pairsPerSec as number) / base).toFixed(4)}x | ${fmt(x.flushes)} | ${fmt(x.pairsPerFlush, 1)} |`);
		}
	}
	const wk = Object.entries(r).filter(([n]) => n.startsWith("workers"));
	if (wk.length) {
		console.log(
			"\n| workers sharing one space | ops (all workers) | aggregate ops/s | vs 1 worker, nodes 1 | vs nodes 1, same workers | lock wait, summed | share of worker time waiting | pool hit rate | nodes helped |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|",
		);
		const ratio = (x: Record<string, number | boolean>, other: string) => {
			const y = r[other]?.opsPerSec;
			return typeof y === "number" ? `${((x.opsPerSec as number) / y).toFixed(2)}x` : "";
		};
		for (const [n, x] of wk) {
			const one = n.replace(/x\d+ nodes \d+$/, "x1 nodes 1");
			const sameWorkers = n.replace(/nodes \d+$/, "nodes 1");
			console.log(
				`| ${n} | ${fmt(x.ops)} | ${fmt(x.opsPerSec)} | ${ratio(x, one)} | ${ratio(x, sameWorkers)} | ${fmt(x.lockWaitMs, 0)} ms | ${(100 * (x.lockWaitShare as number)).toFixed(1)}% | ${(100 * (x.poolHitRate as number)).toFixed(1)}% | ${x.helped} |`,
			);
		}
	}
	const w1 = Object.entries(r).filter(([n]) => n.startsWith("W1"));
	if (w1.length) {
		const base = r["W1 vmap"]?.opsPerSec as number;
		console.log("\n| W1: random sizes 1..4096 B, 10k live | ops run | ops/s | vs vmap | fails | overlaps | bytes/live |\n|---|---:|---:|---:|---:|---:|---:|");
		for (const [n, x] of w1) {
			console.log(`| ${n} | ${fmt(x.ops)} | ${fmt(x.opsPerSec)} | ${((x.opsPerSec as number) / base).toFixed(4)}x | ${x.fails} | ${x.overlaps} | ${fmt(x.bytesPerLiveAtEnd, 1)} |`);
		}
	}
	const sc = Object.entries(r).filter(([n]) => n.startsWith("scale"));
	if (sc.length) {
		const base = sc[0]![1].nsPerOp as number;
		console.log("\n| scale: W1 at live count | ns/op | vs 1k live | ops/s | buffer bytes/live after fill | after 1e6 ops | overlaps |\n|---|---:|---:|---:|---:|---:|---:|");
		for (const [n, x] of sc) {
			console.log(`| ${n} | ${fmt(x.nsPerOp, 1)} | ${((x.nsPerOp as number) / base).toFixed(2)}x | ${fmt(x.opsPerSec)} | ${fmt(x.bytesPerLiveAtFill, 1)} | ${fmt(x.bytesPerLiveAtEnd, 1)} | ${x.overlaps} |`);
		}
	}
}
