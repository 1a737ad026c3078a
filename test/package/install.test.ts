/**
 * The package as users get it, three ways, each into a fresh consumer project outside this
 * repository: the tarball `npm pack` writes, a folder path, and a `git+file://` URL of a fresh
 * repository (npm clones it, installs its devDependencies and runs `prepare`, which builds
 * dist/). The repository is the working tree as it is, committed or not, copied and committed
 * anew. In each consumer: every public name imported from an .mjs file and with require() from
 * a .cjs file; a .ts file using every public name typechecked with strict settings and
 * skipLibCheck: false (so the published .d.ts files are checked too), compiled and run;
 * `npx vmalloc --version`; `npx vmalloc bench --help` (which says what it needs); and `npx vmalloc test
 * --mode smoke --threads 2`. The tarball gets the whole matrix: tsc under the node16, bundler
 * and node (node10) module resolutions, and every smoke case (the main job, as a user of the
 * package runs it). The folder and the git URL must install the very same dist/ (compared
 * byte for byte), and get node16 and one smoke case, to keep npm test's time in bounds.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const TSC = join(ROOT, "node_modules", "typescript", "bin", "tsc");
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const run = promisify(execFile);

const CONSUMER = `
declare const console: { log(...values: unknown[]): void };
import { VmapError, VmapHeap, VmapSpace } from "vmalloc";
import { mapSvg, Timeline, timelineSvg } from "vmalloc/viz";
import type {
	AllocOptions, AreaInfo, AreaState, AttachOptions, DumpArea, FlushHook, HeapStats, NodeStats, PurgeOptions, PurgeResult,
	StatsOptions, TrimResult, VmallocOptions, VmapDump, VmapErrorCode, VmapHandle, VmapHeapHandle, VmapHeapOptions,
	VmapSpaceOptions, VmapStats,
} from "vmalloc";
import type { MapOptions, TimelineData, TimelineOptions } from "vmalloc/viz";

const flush: FlushHook = (start: number, end: number) => void (end - start);
const options: VmapSpaceOptions = { size: 2 ** 30, flush };
const space: VmapSpace = VmapSpace.create(options);
const alloc: AllocOptions = { align: 65536, tag: "consumer" };
const a: number = space.alloc(4096, alloc);
const info: AreaInfo | undefined = space.find(a);
const state: AreaState | undefined = info?.state;
space.free(a);
const purged: PurgeResult = space.purge({ sync: true } satisfies PurgeOptions);
const stats: VmapStats = space.stats({ pools: true } satisfies StatsOptions);
const node: NodeStats | undefined = stats.nodes[0];
const trimmed: TrimResult = space.trim();
const handle: VmapHandle = space.handle;
const attach: AttachOptions = { flush };
const heapOptions: VmapHeapOptions = { size: 1 << 20 };
const heap: VmapHeap = VmapHeap.create(heapOptions);
const p: number = heap.vmalloc(100, { tag: "x" } satisfies VmallocOptions);
const f: Float64Array = heap.view(p, Float64Array, 4);
const hs: HeapStats = heap.stats();
const hh: VmapHeapHandle = heap.handle;
heap.vfree(p);
try {
	space.free(12345);
} catch (e) {
	if (e instanceof VmapError) {
		const code: VmapErrorCode = e.code;
		console.log(code, e.detail);
	}
}
console.log(state, purged.status, node?.busyAreas, trimmed.bytes, handle.buffer.byteLength, attach.flush !== undefined, f.length, hs.dataBytes, hh.data.byteLength);
const dump: VmapDump = (space.dump()) as VmapDump;
const first: DumpArea | undefined = dump.areas[0];
const mapOptions: MapOptions = { rows: 8, width: 400 };
const timeline = new Timeline();
timeline.sample(space.stats());
const data: TimelineData = timeline.toJSON();
const svgs: string[] = [mapSvg(dump, mapOptions), timelineSvg(Timeline.fromJSON(data), { width: 400 } satisfies TimelineOptions)];
console.log(first?.state, svgs.length);
heap[Symbol.dispose]();
space[Symbol.dispose]();
`;

const CJS_CONSUMER = `
declare const console: { log(...values: unknown[]): void };
import { VmapSpace } from "vmalloc";
import { mapSvg } from "vmalloc/viz";
const space = VmapSpace.create({ size: 1 << 20 });
space.alloc(4096, { tag: "cjs" });
console.log(mapSvg(space.dump()).startsWith("<svg"), space.stats().busyAreas);
`;

/** What every consumer runs with node: the names, a working space and heap. */
const USE = (load: string) => `${load}
const names = Object.keys(vmap).sort().join(",") + " " + Object.keys(viz).sort().join(",");
if (names !== "VmapError,VmapHeap,VmapSpace TIMELINE_FIELDS,Timeline,mapSvg,timelineSvg") throw new Error("exports: " + names);
const space = vmap.VmapSpace.create({ size: 1 << 20 });
space.free(space.alloc(4096));
space.check();
const heap = vmap.VmapHeap.create({ size: 1 << 20 });
heap.vfree(heap.vmalloc(100));
heap.check();
if (!viz.mapSvg(heap.space.dump()).startsWith("<svg")) throw new Error("mapSvg");
console.log(names);
`;

const RESOLUTIONS: Record<string, { module: string; moduleResolution: string }> = {
	node16: { module: "node16", moduleResolution: "node16" },
	bundler: { module: "esnext", moduleResolution: "bundler" },
	node: { module: "esnext", moduleResolution: "node" },
};

let work = "";
let repo = "";
let tarball = "";
let tarballDist = new Map<string, Buffer>();

before(() => {
	work = mkdtempSync(join(tmpdir(), "vmap-install-"));
	repo = join(work, "vmap");
	// The working tree's files (tracked, and new ones not ignored), committed in a new repository.
	const files = execFileSync("git", ["ls-files", "-co", "--exclude-standard", "-z"], { cwd: ROOT, encoding: "utf8" })
		.split("\0")
		.filter((f) => f !== "");
	for (const f of files) {
		mkdirSync(dirname(join(repo, f)), { recursive: true });
		cpSync(join(ROOT, f), join(repo, f));
	}
	const git = (...args: string[]) =>
		execFileSync("git", ["-c", "user.name=vmalloc test", "-c", "user.email=test@vmap.invalid", ...args], {
			cwd: repo,
			stdio: "ignore",
		});
	git("init", "-q");
	git("add", "-A");
	git("commit", "-qm", "the working tree");
	// The folder a developer installs from has its devDependencies installed (`npm ci` there):
	// ours, linked, so that this test fetches nothing. Ignored by git, so the git+file clone
	// installs its own.
	symlinkSync(join(ROOT, "node_modules"), join(repo, "node_modules"), "dir");
	execFileSync("npm", ["pack", "--pack-destination", work, "--silent"], { cwd: repo, stdio: ["ignore", "pipe", "inherit"] });
	tarball = join(work, readdirSync(work).find((f) => f.endsWith(".tgz"))!);
});

after(() => rmSync(work, { recursive: true, force: true }));

/** Every file under `dir`, relative, with its bytes. */
function tree(dir: string): Map<string, Buffer> {
	const out = new Map<string, Buffer>();
	for (const f of readdirSync(dir, { recursive: true, withFileTypes: true })) {
		if (f.isFile()) out.set(join(f.parentPath, f.name).slice(dir.length + 1), readFileSync(join(f.parentPath, f.name)));
	}
	return out;
}

const FULL = ["--mode", "smoke", "--threads", "2"];
const ONE = [...FULL, "--mask", "1"];

for (const [kind, spec, smoke, resolutions] of [
	["tarball", () => tarball, FULL, ["node16", "bundler", "node"]],
	["folder", () => repo, ONE, ["node16"]],
	["git", () => `git+file://${repo}`, ONE, ["node16"]],
] as const) {
	test(`package, installed from ${kind === "git" ? "a git+file:// URL" : `the ${kind}`}: .mjs and require() import every name; the .d.ts typecheck (${resolutions.join(", ")} resolution); npx vmalloc --version, bench --help, test ${smoke.join(" ")}${kind === "tarball" ? ", replay, viz" : ""}`, {
		timeout: 300_000,
	}, async () => {
		const app = join(work, `app-${kind}`);
		mkdirSync(app);
		writeFileSync(join(app, "package.json"), JSON.stringify({ name: `consumer-${kind}`, private: true, type: "module" }));
		await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", spec()], { cwd: app });
		const files = readdirSync(join(app, "node_modules", "vmalloc"));
		for (const f of ["dist", "docs", "examples", "CHANGELOG.md", "LICENSE", "README.md", "package.json"])
			assert.ok(files.includes(f), `${kind}: the installed package has ${f} (${files.join(", ")})`);
		const installed = join(app, "node_modules", "vmalloc");
		for (const doc of [
			"README.md",
			...readdirSync(join(installed, "docs"))
				.filter((f) => f.endsWith(".md"))
				.map((f) => `docs/${f}`),
		]) {
			const text = readFileSync(join(installed, doc), "utf8");
			for (const [, link] of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
				if (/^[a-z]+:/.test(link!)) continue;
				assert.ok(
					existsSync(join(installed, dirname(doc), link!)),
					`${kind}: ${doc} links to ${link}, which the package does not carry`,
				);
			}
		}
		const dist = tree(join(app, "node_modules", "vmalloc", "dist"));
		assert.deepEqual(
			[...dist.keys()].filter((f) => f.endsWith(".map")),
			[],
			"no source maps pointing at sources the package does not ship",
		);
		if (kind === "tarball") tarballDist = dist;
		else assert.deepEqual(dist, tarballDist, `${kind}: the same dist/ as the tarball's`);

		writeFileSync(join(app, "check.mjs"), USE('import * as vmap from "vmalloc";\nimport * as viz from "vmalloc/viz";'));
		writeFileSync(join(app, "check.cjs"), USE('const vmap = require("vmalloc");\nconst viz = require("vmalloc/viz");'));
		for (const f of ["check.mjs", "check.cjs"]) {
			const { stdout } = await run(process.execPath, [f], { cwd: app });
			assert.equal(stdout, "VmapError,VmapHeap,VmapSpace TIMELINE_FIELDS,Timeline,mapSvg,timelineSvg\n", `${kind}: ${f}`);
		}

		writeFileSync(join(app, "main.ts"), CONSUMER);
		for (const name of resolutions) {
			const r = RESOLUTIONS[name]!;
			const config = `tsconfig.${name}.json`;
			writeFileSync(
				join(app, config),
				JSON.stringify({
					compilerOptions: {
						target: "es2022",
						lib: ["es2024"],
						...r,
						strict: true,
						exactOptionalPropertyTypes: true,
						noUncheckedIndexedAccess: true,
						skipLibCheck: false,
						types: [],
						outDir: `out-${name}`,
						...(name === "node16" ? {} : { noEmit: true }),
					},
					files: ["main.ts"],
				}),
			);
			// Our own TypeScript, so that the test installs nothing; the consumer has no @types/node.
			const out = await run(process.execPath, [TSC, "-p", config], { cwd: app }).then(
				() => "",
				(e: { stdout?: string }) => String(e.stdout ?? e),
			);
			assert.equal(
				out,
				"",
				`${kind}, moduleResolution ${r.moduleResolution}: the consumer does not typecheck against the published .d.ts:\n${out}`,
			);
		}
		const compiled = await run(process.execPath, [join(app, "out-node16", "main.js")], { cwd: app });
		assert.match(compiled.stdout, /^ENOENT /, "the compiled consumer ran against the installed package");

		const npx = (...args: string[]) => run("npx", ["--no-install", "vmalloc", ...args], { cwd: app, maxBuffer: 1 << 24 });
		assert.equal((await npx("--version")).stdout, `${VERSION}\n`);
		const help = await npx("--help");
		assert.match(help.stdout, /devDependencies[\s\S]*npm run bench/, "installed, --help says where the benchmarks run");
		if (kind === "tarball") {
			// A CommonJS TypeScript project: module nodenext (TypeScript 5.8 and later) compiles its
			// imports to require(), which loads this ES module on Node 20.19 and later (README, "TypeScript").
			const cjs = join(app, "cjs");
			mkdirSync(cjs);
			writeFileSync(join(cjs, "package.json"), JSON.stringify({ private: true, type: "commonjs" }));
			writeFileSync(join(cjs, "main.ts"), CJS_CONSUMER);
			const flags = ["--module", "nodenext", "--moduleResolution", "nodenext", "--strict", "--target", "es2022", "--lib", "es2024"];
			await run(process.execPath, [TSC, ...flags, "--outDir", "out", "main.ts"], { cwd: cjs }).catch((e: { stdout?: string }) =>
				assert.fail(`a CommonJS consumer under module nodenext does not typecheck:\n${e.stdout ?? e}`),
			);
			assert.equal((await run(process.execPath, [join("out", "main.js")], { cwd: cjs })).stdout, "true 1\n");
			// The examples it carries run from node_modules, as README's reader would run them.
			const basic = await run(process.execPath, [join(installed, "examples", "basic.js")], { cwd: app, maxBuffer: 1 << 24 });
			assert.match(
				basic.stdout,
				/1,000,000 areas allocated and freed with \d+ flushes; check\(\) passed/,
				"installed, examples/basic.js runs",
			);
			const heapRun = await run(process.execPath, [join(installed, "examples", "heap.js")], { cwd: app });
			assert.match(heapRun.stdout, /busy now 0, free the whole space; check\(\) passed/, "installed, examples/heap.js runs");
			writeFileSync(join(app, "t.trace"), "a 100 x\na 5000 y\nf x\n");
			const replayed = await npx("replay", "t.trace", "--out", "viz-out");
			assert.match(replayed.stdout, /3 operations \(2 allocations, 1 frees\)/, "installed, vmalloc replay runs");
			const drawn = await npx("viz", join("viz-out", "timeline.json"));
			assert.match(drawn.stderr, /wrote viz-out\/timeline.svg/, "installed, vmalloc viz runs");
		}
		const { stdout } = await npx("test", ...smoke, "--json");
		const out = JSON.parse(stdout) as {
			status: number;
			params: { loops: number; repeat: number; threads: number };
			tests: Array<{ name: string; passed: number; failed: number; xfailed: number }>;
			problems: string[];
			whole: boolean;
			seconds: number;
			peakRssBytes: number;
		};
		assert.deepEqual(
			[out.params.loops, out.params.repeat, out.params.threads],
			[10_000, 10, 2],
			"test_vmalloc.sh smoke: test_loop_count=10000 test_repeat_count=10",
		);
		assert.equal(out.tests.length, smoke === FULL ? 13 : 1);
		for (const t of out.tests) {
			assert.equal(t.failed, 0, t.name);
			assert.equal(t.passed + t.xfailed, 2 * 10, t.name);
			assert.equal(
				t.xfailed,
				t.name === "align_shift_alloc_test" ? 20 : 0,
				`${t.name}: only align_shift_alloc_test is supposed to fail`,
			);
		}
		assert.deepEqual([out.status, out.problems, out.whole], [0, [], true], `${kind}: npx vmalloc test ${smoke.join(" ")}`);
		// The main job stays well under 600 MB: each case on a fresh heap, given back before the next.
		assert.ok(
			out.peakRssBytes < 600 * 2 ** 20,
			`${kind}: vmalloc test ${smoke.join(" ")} peaked at ${out.peakRssBytes / 2 ** 20} MiB resident`,
		);
		console.log(
			`# ${kind}: installed; .mjs, require(), tsc (${resolutions.join(", ")}), --version, bench --help; vmalloc test ${smoke.join(" ")}: ${out.tests.length} case(s) passed in ${out.seconds.toFixed(1)} s, peak resident ${Math.round(out.peakRssBytes / 2 ** 20)} MiB`,
		);
	});
}
