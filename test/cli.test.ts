/**
 * `vmap bench` run as a user runs it (a child process from the sources). The main job's smoke
 * run (`vmap test --mode smoke`, every kernel case) runs from the installed package in
 * install.test.ts; options, errors and the full peer set are in test/tools/ (`npm run test:tools`).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
/** `npm run bench`: the bench runs from the repository, not from the package's CLI. */
const BENCH = fileURLToPath(new URL("../bench/main.ts", import.meta.url));
const vmap = (...args: string[]) =>
	spawnSync(process.execPath, ["--import", "tsx", ...(args[0] === "bench" ? [BENCH, ...args.slice(1)] : [MAIN, ...args])], {
		encoding: "utf8",
		timeout: 600_000,
	});

test("vmap bench --quick, one vmap case beside the LIFO ceiling: ratios, the chart, no failure and no overlap", () => {
	const dir = mkdtempSync(join(tmpdir(), "vmap-bench-"));
	try {
		const svg = join(dir, "chart.svg");
		const r = vmap("bench", "--quick", "--only", "W0 vmap,W0 lifo", "--json", "--svg", svg);
		assert.equal(r.status, 0, r.stderr);
		const out = JSON.parse(r.stdout) as {
			runs: Array<{ name: string; status: string; result?: { fails: number; overlaps: number; pairsPerSec: number } }>;
		};
		assert.deepEqual(
			out.runs.map((x) => x.name),
			["W0 vmap", "W0 vmap-nocache", "W0 vmap-1m", "W0 vmap-heap", "W0 lifo"],
		);
		for (const run of out.runs) {
			assert.equal(run.status, "ok", run.name);
			assert.deepEqual([run.result!.fails, run.result!.overlaps], [0, 0], run.name);
			assert.ok(run.result!.pairsPerSec > 0, run.name);
		}
		assert.match(readFileSync(svg, "utf8"), /^<svg /);
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
});
