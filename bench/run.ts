/**
 * `vmap bench`: every case of the plan in its own fresh child process, in turn, then one
 * report. A peer whose case throws, or whose process dies or overruns, is reported as broken
 * with its error, and its later cases are not run.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { plan, type Case, type PlanOptions } from "./cases.ts";
import type { Meta, Outcome, Run } from "./results.ts";
import { PEERS } from "./peers.ts";
import { markdown } from "./report.ts";
import { chart } from "./svg.ts";

export interface BenchOptions extends PlanOptions {
	/** Run only the cases whose name starts with one of these. */
	only: string[];
	json: boolean;
	svg: string | undefined;
	list: boolean;
}

const CHILD = fileURLToPath(new URL("./child.ts", import.meta.url));

/** One case in a fresh process, killed if it runs past `hardMs`. */
function runChild(c: Case, hardMs: number): Promise<Outcome> {
	return new Promise((resolve) => {
		const child = spawn(process.execPath, ["--import", "tsx", CHILD, JSON.stringify(c.spec)], { stdio: ["ignore", "pipe", "pipe"] });
		let out = "";
		let err = "";
		child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
		child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
		const timer = setTimeout(() => child.kill("SIGKILL"), hardMs);
		child.on("close", (code, signal) => {
			clearTimeout(timer);
			const last = out.trim().split("\n").pop() ?? "";
			let parsed: Record<string, number | string | boolean> | undefined;
			try {
				parsed = JSON.parse(last) as Record<string, number | string | boolean>;
			} catch {
				parsed = undefined;
			}
			if (signal === "SIGKILL") resolve({ status: "broken", error: `no result after ${hardMs / 1000} s; killed`, at: "" });
			else if (parsed && typeof parsed.error === "string")
				resolve({ status: "broken", error: parsed.error, at: String(parsed.at ?? "") });
			else if (code !== 0 || !parsed) {
				const lines = err.trim().split("\n");
				const e = lines.find((l) => /^\w*Error\b/.test(l)) ?? lines.pop() ?? "";
				resolve({ status: "broken", error: `exit ${code ?? signal}: ${e}`, at: "" });
			} else resolve({ status: "ok", result: parsed });
		});
	});
}

/** A peer broken in W0 or the scale series would break again there; worker setups differ and all run. */
function peerOf(c: Case): string | undefined {
	return c.spec.kind === "W0" || c.spec.kind === "scale" ? c.spec.peer : undefined;
}

export async function bench(o: BenchOptions): Promise<number> {
	const cases = plan(o).filter((c) => o.only.length === 0 || o.only.some((f) => c.name.startsWith(f)));
	if (o.list) {
		for (const c of cases) console.log(c.name);
		return 0;
	}
	if (cases.length === 0) {
		process.stderr.write(`vmap bench: --only ${o.only.join(",")} matches no case (see npm run bench -- --list)\n`);
		return 2;
	}
	const t0 = performance.now();
	const brokeIn = new Map<string, string>();
	const runs: Run[] = [];
	for (const [i, c] of cases.entries()) {
		const peer = peerOf(c);
		const where = peer === undefined ? undefined : brokeIn.get(peer);
		if (where !== undefined) {
			runs.push({ ...c, status: "skipped", reason: `not run: broke in ${where}` });
			process.stderr.write(`[${i + 1}/${cases.length}] ${c.name}: not run, broke in ${where}\n`);
			continue;
		}
		const t = performance.now();
		process.stderr.write(`[${i + 1}/${cases.length}] ${c.name} ... `);
		const hardMs = ("timeLimitMs" in c.spec ? c.spec.timeLimitMs : 0) + 180_000;
		const outcome = await runChild(c, hardMs);
		process.stderr.write(`${outcome.status === "ok" ? "" : "BROKEN "}${((performance.now() - t) / 1000).toFixed(1)} s\n`);
		if (outcome.status === "broken" && peer !== undefined) brokeIn.set(peer, c.name);
		runs.push({ ...c, ...outcome });
	}
	const meta: Meta = {
		date: new Date().toISOString(),
		node: process.version,
		platform: `${os.platform()} ${os.arch()}`,
		cpu: os.cpus()[0]?.model.trim() ?? "unknown",
		cores: os.availableParallelism(),
		seed: o.seed,
		quick: o.quick,
		timeLimit: o.timeLimit,
		wallSec: (performance.now() - t0) / 1000,
	};
	if (o.json) console.log(JSON.stringify({ meta, peers: PEERS.map(({ make: _, ...p }) => p), runs }, null, 2));
	else process.stdout.write(markdown(runs, meta));
	if (o.svg !== undefined) {
		writeFileSync(o.svg, chart(runs, meta));
		process.stderr.write(`chart written to ${o.svg}\n`);
	}
	// The bench fails only for our own allocator: a peer that breaks or overlaps is a finding.
	const ours = runs.filter((r) => r.spec.peer.startsWith("vmap"));
	const bad = ours.filter((r) => r.status === "broken" || (r.status === "ok" && Number(r.result.overlaps) > 0));
	for (const r of bad)
		process.stderr.write(
			`vmap bench: ${r.name}: ${r.status === "broken" ? r.error : `${r.status === "ok" ? r.result.overlaps : ""} overlaps`}\n`,
		);
	return bad.length > 0 ? 1 : 0;
}
