/**
 * An attached handle that does nothing but wait on its event loop: it helps purges only
 * through its idle listener (parallel purge). Says "ready", and on "exit" closes its handle
 * and reports its id.
 */
import { parentPort, workerData } from "node:worker_threads";
import { VmapSpace } from "../../src/index.ts";

const space = VmapSpace.attach(workerData.handle);
parentPort!.on("message", () => {
	space.close();
	parentPort!.postMessage({ id: space.id });
	parentPort!.close();
});
parentPort!.postMessage({ ready: space.id });
