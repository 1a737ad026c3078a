/**
 * A worker that waits for a lock someone else holds, with no timeoutMs, and reports the
 * warnings its thread emitted meanwhile. It shortens the long-wait threshold of its own copy
 * of util/report.ts to `longMs`, says it is about to wait (control word 0 becomes 1), then
 * allocates: the allocation waits for the free-space lock until the holder lets it go.
 */
import { parentPort, workerData } from "node:worker_threads";
import { VmapSpace } from "../src/index.ts";
import { longWait } from "../src/util/report.ts";

const job = workerData as { handle: { buffer: SharedArrayBuffer }; control: SharedArrayBuffer; longMs: number; size: number };
longWait.longMs = job.longMs;
const warnings: string[] = [];
process.on("warning", (w) => warnings.push(w.message));
const space = VmapSpace.attach(job.handle);
const control = new Int32Array(job.control);
Atomics.store(control, 0, 1);
Atomics.notify(control, 0);
const addr = space.alloc(job.size, { tag: "waiter" }); // above smallMax: the locked path
await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
space.close();
parentPort!.postMessage({ addr, warnings, id: space.id });
