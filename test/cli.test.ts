/**
 * One smoke run of each tool, run as a user runs it (a child process from the sources): the
 * main job (`vmap test --mode smoke`: all 13 kernel cases must pass and the heap come back
 * whole) and `vmap bench`. Their options, errors and the full peer set are in test/tools/
 * (`npm run test:tools`).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
const vmap = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", MAIN, ...args], { encoding: "utf8", timeout: 600_000 });

test("vmap test --mode smoke: all 13 cases pass on real workers, check() passes, the space comes back whole", () => {
	const r = vmap("test", "--mode", "smoke", "--json");
	assert.equal(r.status, 0, r.stderr + r.stdout.slice(-2000));
	const out = JSON.parse(r.stdout) as {
		params: { loops: number; repeat: number; threads: number };
		tests: Array<{ id: number; name: string; passed: number; failed: number; xfailed: number }>;
		problems: string[];
		whole: boolean;
		seconds: number;
	};
	assert.deepEqual([out.params.loops, out.params.repeat], [10_000, 10], "test_vmalloc.sh smoke: test_loop_count=10000 test_repeat_count=10");
	assert.equal(out.tests.length, 13);
	for (const t of out.tests) {
		assert.equal(t.failed, 0, t.name);
		assert.equal(t.passed + t.xfailed, out.params.threads * 10, t.name);
	}
	assert.equal(out.tests.find((t) => t.name === "align_shift_alloc_test")!.xfailed, out.params.threads * 10, "align_shift is supposed to fail (xfail)");
	assert.deepEqual([out.problems, out.whole], [[], true]);
	console.log(`# vmap test --mode smoke: ${out.params.threads} workers, ${out.seconds.toFixed(1)} s`);
});

test("vmap bench --quick, one vmap case beside the LIFO ceiling: ratios, the chart, no failure and no overlap", () => {
	const dir = mkdtempSync(join(tmpdir(), "vmap-bench-"));
	try {
		const svg = join(dir, "chart.svg");
		const r = vmap("bench", "--quick", "--only", "W0 vmap,W0 lifo", "--json", "--svg", svg);
		assert.equal(r.status, 0, r.stderr);
		const out = JSON.parse(r.stdout) as { runs: Array<{ name: string; status: string; result?: { fails: number; overlaps: number; pairsPerSec: number } }> };
		assert.deepEqual(out.runs.map((x) => x.name), ["W0 vmap", "W0 vmap-1m", "W0 vmap-heap", "W0 lifo"]);
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
