/**
 * The mail "mm: vmalloc: Offload free_vmap_area_lock lock" (Uladzislau Rezki, 2024): per-node busy/lazy trees and pools took lock contention
 * from 93% to 6-16% on 64 threads. This script runs the same experiment at our scale: fixed-size
 * (W0) and random-size (W1) allocation from 1 and 2 workers sharing one space, with one node
 * and with 2 and 4, printing aggregate ops/s, lock wait and pool hit rate (bench harness).
 * Run: node --import tsx bench/mails/nodes.ts
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const bench = fileURLToPath(new URL("../main.ts", import.meta.url));
console.log(
	"mm: vmalloc: Offload free_vmap_area_lock lock: native_queued_spin_lock_slowpath 93.05% -> 6.11% (Threadripper 3970X, 64 threads); real 10m51s -> 0m51s",
);
console.log("vmap: 1 and 2 workers, nodes 1 against nodes 2 and 4 (share of worker time waiting is our slowpath figure):");
process.stdout.write(execFileSync(process.execPath, ["--import", "tsx", bench, "--only", "workers vmap"], { encoding: "utf8" }));
