// Worker bootstrap: Node 20 ignores loader flags in a Worker's execArgv (nodejs/node#47747),
// so the worker registers tsx itself, then imports the TypeScript entry named in workerData.
import { register } from "tsx/esm/api";
import { workerData } from "node:worker_threads";

register();
await import(workerData.entry);
