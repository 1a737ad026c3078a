/**
 * The native anchor of `vmalloc replay`: the same trace through the C library's malloc and
 * free (examples/traces/replay.c, compiled at run time with the C compiler found: $CC, cc,
 * gcc or clang), and through the replay loop with a bump allocator (the harness alone, the
 * ceiling of any allocator in this loop). Without a compiler the anchor says why it is missing.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Trace } from "./trace.ts";

/** The C replayer's rounds: its figure is their median. */
const ROUNDS = 5;
/** The most a compile or the C replayer's run may take (a hung compiler ends the anchor, not the replay). */
const LIMIT_MS = 120_000;

export type NativeAnchor = { opsPerSec: number; compiler: string; rounds: number } | { missing: string };

/** The trace through the C library's malloc: the median of ROUNDS timed rounds, or why it could not run. */
export function nativeReplay(trace: Trace): NativeAnchor {
	const source = new URL("../../examples/traces/replay.c", import.meta.url);
	if (!existsSync(source)) return { missing: `no ${source.pathname} (the package carries it in examples/traces/)` };
	const built = compile(readFileSync(source, "utf8"), source.pathname);
	if ("missing" in built) return built;
	const dir = join(tmpdir(), `vmalloc-replay-${process.pid}`);
	mkdirSync(dir, { recursive: true });
	try {
		const opsFile = join(dir, "ops.bin");
		writeFileSync(opsFile, opsBytes(trace));
		const out = execFileSync(built.exe, [opsFile, String(ROUNDS)], { encoding: "utf8", maxBuffer: 1 << 20, timeout: LIMIT_MS });
		const secs = [...out.matchAll(/seconds (\S+)/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
		if (secs.length !== ROUNDS) return { missing: `the C replayer printed ${JSON.stringify(out.slice(0, 200))}` };
		return { opsPerSec: trace.ops / secs[ROUNDS >> 1]!, compiler: built.compiler, rounds: ROUNDS };
	} catch (e) {
		return { missing: `the C replayer failed: ${(e as Error).message.split("\n")[0]}` };
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
}

/** The replayer built from `code`, cached in the temporary folder under the hash of its source. */
function compile(code: string, path: string): { exe: string; compiler: string } | { missing: string } {
	const exe = join(tmpdir(), `vmalloc-replay-${createHash("sha256").update(code).digest("hex").slice(0, 16)}`);
	if (existsSync(exe) && existsSync(`${exe}.cc`)) return { exe, compiler: readFileSync(`${exe}.cc`, "utf8") };
	const tried: string[] = [];
	for (const cc of [process.env.CC, "cc", "gcc", "clang"]) {
		if (cc === undefined || cc === "" || tried.includes(cc)) continue;
		tried.push(cc);
		try {
			execFileSync(cc, ["-O2", "-o", exe, path], { stdio: "pipe", timeout: LIMIT_MS });
			writeFileSync(`${exe}.cc`, cc); // which compiler built it, for the next run's line
			return { exe, compiler: cc };
		} catch {
			// Not installed, or it could not build the file: try the next one.
		}
	}
	return { missing: `no C compiler could build ${path} (tried ${tried.join(", ")}; set CC to one)` };
}

/** The trace as replay.c reads it: uint32 operations, uint32 slots, then per operation int64 size (-1 free) and uint32 slot. */
function opsBytes(trace: Trace): Uint8Array {
	const bytes = new Uint8Array(8 + 12 * trace.ops);
	const view = new DataView(bytes.buffer);
	view.setUint32(0, trace.ops, true);
	view.setUint32(4, trace.slots, true);
	for (let i = 0, at = 8; i < trace.ops; i++, at += 12) {
		view.setBigInt64(at, BigInt(trace.size[i]! >= 0 ? trace.size[i]! : -1), true);
		view.setUint32(at + 8, trace.slot[i]!, true);
	}
	return bytes;
}

/** The replay loop with a bump allocator instead of an allocator: what the harness alone can do (the median of ROUNDS, after a round to warm up). */
export function harnessCeiling(trace: Trace): number {
	const addr = new Float64Array(trace.slots);
	const secs: number[] = [];
	let sink = 0;
	for (let r = -1; r < ROUNDS; r++) {
		let next = 16;
		const t0 = performance.now();
		for (let i = 0; i < trace.ops; i++) {
			const s = trace.size[i]!;
			const k = trace.slot[i]!;
			if (s >= 0) {
				addr[k] = next;
				next += Math.max(16, Math.ceil(s / 16) * 16);
			} else sink += addr[k]!;
		}
		if (r >= 0) secs.push((performance.now() - t0) / 1000);
	}
	if (sink < 0) console.log(sink); // keeps the frees' reads
	secs.sort((a, b) => a - b);
	return trace.ops / secs[ROUNDS >> 1]!;
}
