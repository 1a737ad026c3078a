/** A worker that only keeps a core busy (touching nothing shared but its stop flag), as a control for seed 001. */
import { parentPort, workerData } from "node:worker_threads";

const flag = new Int32Array((workerData as { control: SharedArrayBuffer }).control);
let spins = 0;
Atomics.store(flag, 1, 1);
while (Atomics.load(flag, 0) === 0) spins++;
parentPort!.postMessage({ snapshots: 0, spins });
