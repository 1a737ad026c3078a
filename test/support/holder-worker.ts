/**
 * A worker of the freeAreas test (reclaim.test.ts): attaches to the heap, allocates one of each
 * kind (small and large vmalloc areas, tagged and not, small and large vm_map_ram mappings, an
 * area queued by freeDeferred), fills them, reports them with its id and token, and then keeps
 * allocating and freeing until it is terminated: it never frees what it reported.
 */
import { parentPort, workerData } from "node:worker_threads";
import { VmapHeap } from "../../src/index.ts";

const heap = VmapHeap.attach(workerData.handle);
const P = heap.pageSize;
const held = [heap.vmalloc(100), heap.vmalloc(300, { tag: "job" }), heap.vmalloc(9 * P), heap.vmalloc(3 * P, { tag: "job" })];
const mapped = [heap.vmMapRam(2), heap.vmMapRam(300)];
const deferred = heap.vmalloc(2 * P);
heap.freeDeferred(deferred);
for (const a of held) heap.bytes(a, 64).fill(7);
parentPort!.postMessage({ id: heap.space.id, token: heap.space.token, held, mapped, deferred });
for (;;) heap.vfree(heap.vmalloc(1 + (Date.now() % (4 * P))));
