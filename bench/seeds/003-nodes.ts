/**
 * Seed 003 (Uladzislau Rezki, 2024): per-node busy/lazy trees and pools took lock contention
 * from 93% to 6-16% on 64 threads. Nodes and pools are issue 5 and not built yet: this script
 * runs the one-node baseline, 1 and 2 workers on W0 and W1, from the bench harness.
 * Run: node --import tsx bench/seeds/003-nodes.ts
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const harness = fileURLToPath(new URL("../core.bench.ts", import.meta.url));
console.log("seed 003: native_queued_spin_lock_slowpath 93.05% -> 6.11% (Threadripper 3970X, 64 threads); real 10m51s -> 0m51s");
console.log("vmap: nodes are not built yet (issue 5); one node, workers sharing one space:");
process.stdout.write(execFileSync(process.execPath, ["--import", "tsx", harness, "workers W"], { encoding: "utf8" }));
