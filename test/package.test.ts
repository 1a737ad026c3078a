/**
 * The package as a consumer gets it: `npm pack`, the tarball installed into a fresh project
 * outside this repository, and a file that imports every public name typechecked with strict
 * settings and skipLibCheck: false, so that the published .d.ts files are checked too (a
 * stripped @internal member that a public class still needs breaks them: TS2420).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const TSC = join(ROOT, "node_modules", "typescript", "bin", "tsc");

const CONSUMER = `
declare const console: { log(...values: unknown[]): void };
import { VmapError, VmapHeap, VmapSpace } from "vmap";
import type {
	AllocOptions, AreaInfo, AreaState, AttachOptions, FlushHook, HeapStats, NodeStats, PurgeOptions, PurgeResult,
	StatsOptions, TrimResult, VmallocOptions, VmapErrorCode, VmapHandle, VmapHeapHandle, VmapHeapOptions,
	VmapSpaceOptions, VmapStats,
} from "vmap";

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
heap[Symbol.dispose]();
space[Symbol.dispose]();
`;

test("package: the packed tarball installs into a consumer project that typechecks every public name (strict, skipLibCheck: false) and runs", () => {
	const dir = mkdtempSync(join(tmpdir(), "vmap-consumer-"));
	try {
		// prepack builds dist; --ignore-scripts would ship whatever dist/ happens to hold.
		execFileSync("npm", ["pack", "--pack-destination", dir, "--silent"], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
		const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"));
		assert.ok(tarball, "npm pack wrote a tarball");
		const app = join(dir, "app");
		execFileSync("mkdir", [app]);
		writeFileSync(join(app, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
		execFileSync("npm", ["install", "--no-audit", "--no-fund", "--offline", join(dir, tarball)], { cwd: app, stdio: ["ignore", "pipe", "inherit"] });
		writeFileSync(join(app, "main.ts"), CONSUMER);
		writeFileSync(
			join(app, "tsconfig.json"),
			JSON.stringify({
				compilerOptions: {
					target: "es2022",
					lib: ["es2024"],
					module: "nodenext",
					moduleResolution: "nodenext",
					strict: true,
					exactOptionalPropertyTypes: true,
					noUncheckedIndexedAccess: true,
					skipLibCheck: false,
					types: [],
					outDir: "out",
				},
				files: ["main.ts"],
			}),
		);
		// Our own TypeScript, so that the test installs nothing; the consumer has no @types/node.
		let out = "";
		try {
			execFileSync(process.execPath, [TSC, "-p", app], { cwd: app, encoding: "utf8" });
		} catch (e) {
			out = String((e as { stdout?: string }).stdout ?? e);
		}
		assert.equal(out, "", `the consumer does not typecheck against the published .d.ts:\n${out}`);
		const run = execFileSync(process.execPath, [join(app, "out", "main.js")], { cwd: app, encoding: "utf8" });
		assert.match(run, /^ENOENT /, "the compiled consumer ran against the installed package");
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
});
