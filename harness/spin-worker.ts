/**
 * A worker that only keeps a core busy (touching nothing shared but its control words), as a
 * control for the lock-free statistics reader ("vmalloc: use rcu list iterator to reduce
 * vmap_area_lock contention"). Control words as stats-reader.ts.
 */
import { parentPort, workerData } from "node:worker_threads";
import { STOP, waitAtGate } from "./gate.ts";

const flag = new Int32Array((workerData as { control: SharedArrayBuffer }).control);
let spins = 0;
waitAtGate(flag);
while (Atomics.load(flag, STOP) === 0) spins++;
parentPort!.postMessage({ snapshots: 0, spins });
