/**
 * The `vmap` command line, run as a user runs it (a child process from the sources). The smoke
 * run is the project's main job: all 13 kernel cases must pass and the heap come back whole.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
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

test("vmap test: the kernel's Summary lines, one per worker and test, in mask order", () => {
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

test("vmap: help for every option, and bad arguments exit 2 naming them", () => {
	const help = vmap("test", "--help");
	assert.equal(help.status, 0);
	for (const opt of ["--mode", "--threads", "--mask", "--loops", "--repeat", "--sequential", "--nr-pages", "--nr-pcpu-objects", "--json"]) assert.ok(help.stdout.includes(opt), opt);
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
