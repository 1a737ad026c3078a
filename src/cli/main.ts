#!/usr/bin/env node
/**
 * The cli layer (src/cli/): the `vmalloc` command: `vmalloc test` (the kernel's test_vmalloc driver:
 * test-run.ts, test-cases.ts, test-worker.ts), `vmalloc viz` and `vmalloc replay`. It may import every
 * layer, and only files the package ships (the benchmarks live in the repository's bench/).
 */
import { readFileSync } from "node:fs";
import { parseOptions, usageError, wholeNumber } from "./args.ts";
import { replayCommand } from "./replay.ts";
import { ALL_MASK, CASES } from "./test-cases.ts";
import { modeParams, runTests, type TestParams } from "./test-run.ts";
import { vizCommand } from "./viz.ts";

const HELP = `vmalloc: the Linux kernel's vmalloc allocator design, in TypeScript

Usage:
  vmalloc test [options]   run the kernel's test_vmalloc cases on a shared VmapHeap
  vmalloc viz FILE         draw a dump() JSON file as a map of the space, or a timeline JSON
                           file as the timeline (SVG)
  vmalloc replay FILE      replay an allocation trace (a SIZE ID / f ID lines, gzip accepted):
                           throughput, fragmentation, and the pictures
  vmalloc --version        the package's version
  vmalloc --help           this text; vmalloc <command> --help explains every option

With --json, stdout is one JSON document; through npm, run it as npm run -s vmalloc -- ... so that
npm prints no banner before it.

The benchmarks against the other JavaScript allocators (their devDependencies) run from a clone
of the repository: npm ci && npm run bench -- --help
`;

/** The version in package.json, two folders up from src/cli/main.ts and from dist/cli/main.js. */
function version(): string {
	return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
}

const TEST_HELP = `vmalloc test: the kernel's test_vmalloc driver (lib/test_vmalloc.c, test_vmalloc.sh), ported

Workers are real worker_threads sharing a VmapHeap, released together like the kernel's
vmalloc_test/N threads. Each test runs on a fresh heap, by fresh workers, all at once; the tests
follow each other in a shuffled order (the kernel shuffles each thread's order, so its threads
may run different tests at once; here they run one test at a time, so that each heap's memory
is given back before the next). For every worker and test it prints, as the kernel does,
  Summary: <test> passed: N failed: N xfailed: N repeat: N loops: N avg: N usec
passed/failed/xfailed count repetitions (each test runs --repeat times per worker; an xfail
test is one expected to fail); avg is the mean time of one repetition, that is of --loops
iterations (for the tests scaled by it), not of one allocation. Then a table across workers
(the mean of the workers' averages, their minimum and maximum) and a total. After each test its
heap is validated with check(), everything is freed and purged, and the space must be whole
again. Exit status 1 when a test failed (xfailed ones do not count) or the heap did not come back.

Progress goes to stderr: a line updated in place on a terminal, else a plain line every 10 s.
Memory: a heap's data grows with the highest address its test uses (align_shift_alloc_test asks
for alignments up to 2^31, so up to 4 GiB of address space), and the resident memory with every
page the test wrote: a SharedArrayBuffer cannot give pages back while it lives, and lazy freeing
makes a test write fresh addresses until a purge lets old ones be reused. Between tests the heap
is dropped and garbage collected, so the run's peak is its largest test's. Measured on 2 threads,
smoke mode, npm run vmalloc, one test at a time (peak resident MB): random_size_align_alloc_test
458, long_busy_list_alloc_test 438, pcpu_alloc_test 393 (its heap has 1 KiB pages, for objects
of at most 1 KiB), fix_align_alloc_test 322, full_fit_alloc_test 312, the others 171-245; all 13
together 462-475. --mask picks fewer tests.

Options (the module parameter each stands for in brackets):
  --mode MODE          test_vmalloc.sh's parameter sets, under any option given:
                         smoke        test_loop_count=10000 test_repeat_count=10
                         performance  sequential_test_order=1 test_repeat_count=3, one thread
                         stress       nr_threads=<cores> test_repeat_count=20
                       without --mode, the module's defaults (test_loop_count=1000000)
  --threads N          worker threads [nr_threads]; default the number of cores
  --mask N             which tests run, a bit each [run_test_mask]; decimal or 0x hex;
                       default ${ALL_MASK} (0x${ALL_MASK.toString(16)}): all 13 (the kernel's default is 7 since 2025)
  --loops N            iterations inside each test [test_loop_count]
  --repeat N           repetitions of each test [test_repeat_count]
  --sequential         run the tests in mask order; otherwise in a shuffled order [sequential_test_order]
  --nr-pages N         pages for fix_size_alloc_test and vm_map_ram_test [nr_pages]; default 1
  --nr-pcpu-objects N  objects for pcpu_alloc_test [nr_pcpu_objects]; default 35000
  --json               print one JSON document instead of text
  --viz DIR            also write DIR/timeline.svg (stats() every 50 ms, read without a
                       lock), and DIR/map.svg of the heap as the tests end, before the final
                       purge; with their JSON (timeline.json, dump.json) for vmalloc viz
  -h, --help           this text

Tests (id = mask bit):
${CASES.map((c) => `  ${String(c.id).padStart(4)}  ${c.name}${c.xfail ? " (xfail)" : ""}\n        ${c.help}`).join("\n")}
`;

function fail(message: string): never {
	return usageError("test", message);
}

function testNumber(name: string, value: string | undefined, min: number, max: number): number | undefined {
	return wholeNumber("test", name, value, min, max);
}

async function test(argv: string[]): Promise<number> {
	const v = parseOptions("test", argv, {
		mode: { type: "string" },
		threads: { type: "string" },
		mask: { type: "string" },
		loops: { type: "string" },
		repeat: { type: "string" },
		sequential: { type: "boolean" },
		"nr-pages": { type: "string" },
		"nr-pcpu-objects": { type: "string" },
		json: { type: "boolean" },
		viz: { type: "string" },
		help: { type: "boolean", short: "h" },
	});
	if (v.help) {
		process.stdout.write(TEST_HELP);
		return 0;
	}
	const mode = v.mode ?? "manual";
	if (mode !== "smoke" && mode !== "performance" && mode !== "stress" && mode !== "manual")
		fail(`--mode must be smoke, performance or stress, got ${JSON.stringify(mode)}`);
	const p: TestParams = { ...modeParams(mode), json: v.json ?? false };
	p.threads = testNumber("threads", v.threads, 1, 1024) ?? p.threads;
	p.mask = testNumber("mask", v.mask, 1, ALL_MASK) ?? p.mask;
	if ((p.mask & ALL_MASK) === 0) fail(`--mask ${p.mask} selects no test`);
	p.loops = testNumber("loops", v.loops, 1, 1e9) ?? p.loops;
	p.repeat = testNumber("repeat", v.repeat, 1, 1e6) ?? p.repeat;
	p.nrPages = testNumber("nr-pages", v["nr-pages"], 1, 1024) ?? p.nrPages;
	p.nrPcpuObjects = testNumber("nr-pcpu-objects", v["nr-pcpu-objects"], 1, 1e6) ?? p.nrPcpuObjects;
	if (v.sequential) p.sequential = true;
	if (v.viz === "") fail("--viz needs a folder");
	p.viz = v.viz;
	return runTests(p);
}

/** A command's failure that is not a usage error: its message, exit 1. */
async function reported(command: string, run: () => number | Promise<number>): Promise<number> {
	try {
		return await run();
	} catch (e) {
		process.stderr.write(`vmalloc ${command}: ${(e as Error).message}\n`);
		return 1;
	}
}

const [command, ...rest] = process.argv.slice(2);
if (command === undefined || command === "--help" || command === "-h" || command === "help") {
	process.stdout.write(HELP);
} else if (command === "--version" || command === "-v" || command === "version") {
	process.stdout.write(`${version()}\n`);
} else if (command === "test") {
	process.exitCode = await test(rest);
} else if (command === "viz") {
	process.exitCode = await reported("viz", () => vizCommand(rest));
} else if (command === "replay") {
	process.exitCode = await reported("replay", () => replayCommand(rest));
} else {
	process.stderr.write(`vmalloc: unknown command ${JSON.stringify(command)}\n\n${HELP}`);
	process.exitCode = 2;
}
