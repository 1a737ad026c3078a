/**
 * The `vmap` command line in full, run as a user runs it (child processes from the sources):
 * the kernel's output format, help for every option, bad arguments, and `vmalloc bench` over
 * every peer. Slower than the unit tests: `npm run test:tools` (CI runs it after `npm test`).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { PEERS } from "../../bench/peers.ts";
import type { Meta, Run } from "../../bench/results.ts";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
/** `npm run bench`: the bench runs from the repository, not from the package's CLI. */
const BENCH = fileURLToPath(new URL("../../bench/main.ts", import.meta.url));
const vmap = (...args: string[]) =>
	spawnSync(process.execPath, ["--import", "tsx", ...(args[0] === "bench" ? [BENCH, ...args.slice(1)] : [MAIN, ...args])], {
		encoding: "utf8",
		timeout: 600_000,
	});

test("vmalloc test: the kernel's Summary lines, one per worker and test, in mask order", () => {
	const r = vmap("test", "--threads", "2", "--mask", "0x1005", "--loops", "50", "--repeat", "2", "--sequential");
	assert.equal(r.status, 0, r.stderr);
	const lines = r.stdout.split("\n").filter((l) => l.startsWith("Summary: "));
	assert.equal(lines.length, 6);
	assert.match(lines[0]!, /^Summary: fix_size_alloc_test passed: 2 failed: 0 xfailed: 0 repeat: 2 loops: 50 avg: \d+ usec$/);
	assert.match(lines[1]!, /^Summary: long_busy_list_alloc_test passed: 2 /);
	assert.match(lines[2]!, /^Summary: vrealloc_test passed: 2 /);
	assert.match(r.stdout, /^All test took worker1=\d+ usec$/m);
	assert.match(r.stdout, /^\| 4096 \| vrealloc_test \| 2 \| 4 \| 0 \| 0 \| 2 \| 50 \|/m);
	assert.match(r.stdout, /Total: passed 12 failed 0 xfailed 0 .*check\(\) passed; free space whole again: yes/);
});

test("vmalloc: help for every option, and bad arguments exit 2 naming them", () => {
	const help = vmap("test", "--help");
	assert.equal(help.status, 0);
	for (const opt of [
		"--mode",
		"--threads",
		"--mask",
		"--loops",
		"--repeat",
		"--sequential",
		"--nr-pages",
		"--nr-pcpu-objects",
		"--json",
		"--viz",
	])
		assert.ok(help.stdout.includes(opt), opt);
	assert.match(help.stdout, /pcpu_alloc_test\n.*vm_map_ram/);
	assert.equal(vmap("--help").status, 0);
	for (const [args, message] of [
		[["test", "--loops", "0"], /--loops must be a whole number from 1 to/],
		[["test", "--mask", "0x4000"], /--mask must be a whole number from 1 to 8191/],
		[["test", "--mode", "sanity"], /--mode must be smoke, performance or stress, got "sanity"/],
		[["test", "--frob"], /Unknown option '--frob'/],
		[["frob"], /unknown command "frob"/],
	] as const) {
		const r = vmap(...args);
		assert.equal(r.status, 2, args.join(" "));
		assert.match(r.stderr, message);
	}
});

test("vmalloc bench --quick: fresh processes, one row per peer, the broken peer named with its error", () => {
	const dir = mkdtempSync(join(tmpdir(), "vmap-bench-"));
	try {
		const svg = join(dir, "chart.svg");
		const r = vmap("bench", "--quick", "--only", "W0,scale 1000 ", "--json", "--svg", svg);
		assert.equal(r.status, 0, r.stderr);
		const out = JSON.parse(r.stdout) as { meta: Meta; runs: Run[] };
		assert.equal(out.runs.length, 2 * PEERS.length);
		for (const run of out.runs) {
			if (run.spec.peer === "smo-heap") continue;
			assert.equal(run.status, "ok", `${run.name}: ${run.status === "broken" ? run.error : ""}`);
			if (run.status === "ok") assert.deepEqual([run.result.fails, run.result.overlaps], [0, 0], run.name);
		}
		const heap = out.runs.filter((x) => x.spec.peer === "smo-heap");
		assert.equal(heap[0]!.status, "broken");
		assert.match(
			heap[0]!.status === "broken" ? heap[0]!.error : "",
			/TypeError: Cannot read properties of undefined \(reading 'MODE'\)/,
		);
		assert.equal(heap[1]!.status, "skipped");
		const text = readFileSync(svg, "utf8");
		for (const p of PEERS)
			if (p.id !== "smo-heap") assert.ok(text.includes(`>${p.label.replace(/&/g, "&amp;")}: `), `chart labels ${p.label}`);
		assert.match(text, /Not drawn: shared-memory-objects MemoryHeap broke in W0 smo-heap: TypeError/);
		assert.doesNotMatch(text, /="[^"]*(NaN|undefined|Infinity)[^"]*"|NaN\/s/, "every coordinate and rate is a number");
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
});

test("vmalloc bench: bad arguments exit 2 naming them", () => {
	for (const [args, message] of [
		[["bench", "--seed", "0"], /--seed must be a whole number from 1 to/],
		[["bench", "--time-limit", "x"], /--time-limit must be a whole number from 1 to 3600, got "x"/],
		[["bench", "--only", "nothing-matches"], /--only nothing-matches matches no case/],
		[["bench", "--svg"], /--svg/],
		[["bench", "--frob"], /Unknown option '--frob'/],
	] as const) {
		const r = vmap(...args);
		assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
		assert.match(r.stderr, message);
	}
	const help = vmap("bench", "--help");
	assert.equal(help.status, 0);
	for (const opt of ["--svg", "--viz", "--json", "--only", "--list", "--seed", "--time-limit", "--quick"])
		assert.ok(help.stdout.includes(opt), opt);
	for (const p of PEERS) assert.ok(help.stdout.includes(p.name), p.name);
});

test("vmalloc viz, vmalloc replay: help for every option, bad arguments exit 2 naming them; --viz of test and bench writes the pictures", () => {
	const viz = vmap("viz", "--help");
	assert.equal(viz.status, 0);
	for (const opt of ["--out", "--rows", "--width", "--from", "--to", "--title"]) assert.ok(viz.stdout.includes(opt), opt);
	const replay = vmap("replay", "--help");
	assert.equal(replay.status, 0);
	for (const opt of ["--out", "--page-size", "--size", "--nodes", "--lazy-max-pages", "--small-max", "--json", "a SIZE ID", "f ID"])
		assert.ok(replay.stdout.includes(opt), opt);
	for (const [args, message] of [
		[["viz"], /needs FILE: a dump\(\) JSON file or a timeline.json/],
		[["viz", "a.json", "b.json"], /takes one FILE, got 2/],
		[["viz", "a.json", "--rows", "0"], /--rows must be a whole number from 1 to 4096, got "0"/],
		[["replay", "no-such.trace"], /no such file: no-such.trace/],
		[["replay", "examples/traces/gcc-cc1.trace.gz", "--page-size", "24"], /--page-size must be a power of two, got 24/],
		[["replay", "examples/traces/gcc-cc1.trace.gz", "--nodes", "0"], /--nodes must be a whole number from 1 to 128/],
		[["test", "--viz", ""], /--viz needs a folder/],
		[["bench", "--viz", ""], /--viz needs a folder/],
	] as const) {
		const r = vmap(...args);
		assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
		assert.match(r.stderr, message);
	}
	const dir = mkdtempSync(join(tmpdir(), "vmap-viz-"));
	try {
		const t = vmap("test", "--threads", "2", "--mask", "1", "--loops", "50", "--repeat", "2", "--viz", join(dir, "test"));
		assert.equal(t.status, 0, t.stderr);
		for (const f of ["map.svg", "timeline.svg", "dump.json", "timeline.json"]) assert.ok(existsSync(join(dir, "test", f)), f);
		assert.match(readFileSync(join(dir, "test", "map.svg"), "utf8"), /the heap's space as the tests ended/);
		const b = vmap("bench", "--quick", "--only", "scale 1000 vmap", "--viz", join(dir, "bench"));
		assert.equal(b.status, 0, b.stderr);
		for (const p of PEERS.filter((x) => x.id.startsWith("vmap"))) {
			for (const f of ["map", "timeline"])
				assert.match(readFileSync(join(dir, "bench", `scale-1000-${p.id}.${f}.svg`), "utf8"), /^<svg /, `${p.id} ${f}`);
		}
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
});
