/**
 * `vmalloc viz` and `vmalloc replay` as a user runs them (child processes from the sources): the
 * pictures written, a trace replayed plain and gzipped, bad traces named by file and line.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { MAX_LINE, MAX_TRACE_OPS, readTrace } from "../../src/cli/trace.ts";
import { VmapSpace } from "../../src/index.ts";

const P = 4096;
const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const vmap = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", MAIN, ...args], { encoding: "utf8", timeout: 120_000 });

test("vmalloc viz draws a dump file and a timeline file; vmalloc replay replays a trace (plain and gzip) and writes the pictures", async () => {
	const dir = mkdtempSync(join(tmpdir(), "vmap-viz-"));
	try {
		const s = VmapSpace.create({ size: 256 * P });
		s.alloc(3 * P, { tag: "x" });
		writeFileSync(join(dir, "dump.json"), JSON.stringify(s.dump()));
		let r = vmap("viz", join(dir, "dump.json"), "--rows", "8");
		assert.equal(r.status, 0, r.stderr);
		assert.match(readFileSync(join(dir, "dump.svg"), "utf8"), /^<svg [^>]*data-rows="8"/);

		const trace = "# a comment\na 100 one\na 5000 two\nf one\na 0 three\nf two\nf three\n";
		writeFileSync(join(dir, "t.trace"), trace);
		writeFileSync(join(dir, "t.trace.gz"), gzipSync(trace));
		for (const file of ["t.trace", "t.trace.gz"]) {
			r = vmap("replay", join(dir, file), "--out", join(dir, "out"), "--json");
			assert.equal(r.status, 0, r.stderr);
			const f = JSON.parse(r.stdout) as {
				ops: number;
				allocs: number;
				frees: number;
				peakLiveBytes: number;
				liveBytesAtEnd: number;
				fragmentation: number;
				pictures: string[];
				native: { opsPerSec: number; compiler: string } | { missing: string };
				harnessOpsPerSec: number;
			};
			assert.deepEqual([f.ops, f.allocs, f.frees, f.peakLiveBytes], [6, 3, 3, 112 + 5008], file);
			assert.equal(f.liveBytesAtEnd, 0, "everything was freed: the small-area blocks left do not count as live");
			assert.ok(f.fragmentation >= 1);
			// The native anchor: the C library's malloc on the same trace, or why it did not run.
			if ("missing" in f.native) assert.match(f.native.missing, /C compiler|replay\.c|C replayer/);
			else assert.ok(f.native.opsPerSec > 0 && f.native.compiler !== "", JSON.stringify(f.native));
			assert.ok(f.harnessOpsPerSec > 0);
			assert.deepEqual(
				f.pictures.map((p) => p.slice(dir.length + 5)),
				["map-peak.svg", "map-end.svg", "timeline.svg"],
			);
		}
		r = vmap("viz", join(dir, "out", "timeline.json"), "-o", join(dir, "tl.svg"));
		assert.equal(r.status, 0, r.stderr);
		assert.match(readFileSync(join(dir, "tl.svg"), "utf8"), /Lazy backlog/);

		// Bad traces name the line and what was expected (the parser here; the command once).
		for (const [text, re] of [
			["a 10 x\nf y\n", /t2.trace:2: ID "y" is freed but not live/],
			["a 10 x\na 5 x\n", /t2.trace:2: ID "x" is allocated again while it is live/],
			["a -3 x\n", /t2.trace:1: SIZE must be a whole number of bytes, got "-3"/],
			["a 1.5 x\n", /t2.trace:1: SIZE must be a whole number of bytes, got "1.5"/],
			["m 3 x\n", /t2.trace:1: a line is "a SIZE ID" or "f ID"/],
			["f\n", /t2.trace:1: a free is "f ID", got "f"/],
			["# nothing\n", /t2.trace: no operation in the trace/],
		] as const) {
			writeFileSync(join(dir, "t2.trace"), text);
			await assert.rejects(readTrace(join(dir, "t2.trace")), re, text);
		}
		writeFileSync(join(dir, "t2.trace"), "a 10 x\nf y\n");
		r = vmap("replay", join(dir, "t2.trace"), "--out", join(dir, "out2"));
		assert.equal(r.status, 1);
		assert.match(r.stderr, /t2.trace:2: ID "y" is freed but not live/);
		r = vmap("viz", join(dir, "t.trace"));
		assert.equal(r.status, 1);
		assert.match(r.stderr, /t.trace: not a JSON file/);
		r = vmap("viz", dir); // a folder: read, not parsed
		assert.equal(r.status, 1);
		assert.match(r.stderr, /: cannot read it \(EISDIR/);
		r = vmap("replay");
		assert.equal(r.status, 2);
		assert.match(r.stderr, /needs FILE: an allocation trace/);
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
});

test("vmalloc replay on hostile input, read as a stream: a gzip bomb is refused at its first bound (line length or operations), a cut gzip file, a directory and a trace too large for any space are named", async () => {
	const dir = mkdtempSync(join(tmpdir(), "vmap-replay-"));
	try {
		writeFileSync(join(dir, "bomb.trace.gz"), gzipSync(Buffer.alloc(300 * 2 ** 20, 0x61)));
		const whole = gzipSync("a 10 x\nf x\n");
		writeFileSync(join(dir, "cut.trace.gz"), whole.subarray(0, whole.length - 6));
		writeFileSync(join(dir, "huge.trace"), "a 4000000000000000 x\n");
		mkdirSync(join(dir, "a.dir"));
		for (const [file, message] of [
			["bomb.trace.gz", new RegExp(`bomb\\.trace\\.gz:1: the line is longer than ${MAX_LINE} characters: not a trace`)],
			["cut.trace.gz", /cut\.trace\.gz: not a whole gzip file \(unexpected end of file\)/],
			["a.dir", /a\.dir: cannot read it \(EISDIR/],
			[
				"huge.trace",
				/huge\.trace: its peak of live bytes, 4000000000000000 in whole pages, needs a space of more than 2\^52 bytes .*give --size/,
			],
		] as const) {
			const r = vmap("replay", join(dir, file), "--out", join(dir, "out"));
			assert.equal(r.status, 1, file);
			assert.match(r.stderr, message, file);
		}
		// A bomb of valid lines: refused at MAX_TRACE_OPS operations, having held no more than their arrays.
		const lines = "a 1 x\nf x\n".repeat(2 ** 16);
		const chunk = gzipSync(lines);
		writeFileSync(join(dir, "ops.trace.gz"), Buffer.concat(Array.from({ length: MAX_TRACE_OPS / 2 ** 17 + 1 }, () => chunk)));
		await assert.rejects(
			readTrace(join(dir, "ops.trace.gz")),
			new RegExp(`ops\\.trace\\.gz:${MAX_TRACE_OPS + 1}: the trace holds more than ${MAX_TRACE_OPS} operations`),
		);
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
});
