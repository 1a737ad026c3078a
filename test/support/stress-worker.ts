/**
 * A worker of the liveness stress run and the kill soak: random vmalloc/vfree on a shared heap
 * (small and large, a third tagged), every live area
 * claimed page by page in a shared ownership map (an overlap is a page already owned) and
 * filled with a pattern checked before it is freed (bytes intact), with a flush hook that is
 * slow, asynchronous, throwing or absent, and now and then dump(), check(), a sync purge or a
 * deferred free. It yields to its event loop every few operations, so its asynchronous flushes
 * settle. On message "stop" it frees what it holds, closes, and reports.
 */
import { parentPort, workerData } from "node:worker_threads";
import { VmapError, VmapHeap } from "../../src/index.ts";
import { randomBelow } from "../../harness/random.ts";

const job = workerData as {
	handle: { buffer: SharedArrayBuffer; data: SharedArrayBuffer };
	owners: SharedArrayBuffer;
	flush: "slow" | "async" | "throwing" | "none";
	seed: number;
};
const rnd = randomBelow(job.seed);
const burn = (ms: number) => {
	const until = performance.now() + ms;
	while (performance.now() < until);
};
let flushes = 0;
const flush =
	job.flush === "slow"
		? () => {
				flushes++;
				burn(1 + rnd(20));
			}
		: job.flush === "async"
			? () => {
					flushes++;
					return new Promise<void>((r) => setTimeout(r, rnd(15)));
				}
			: job.flush === "throwing"
				? () => {
						flushes++;
						if (rnd(5) === 0) throw new Error("flush failed (on purpose)");
					}
				: undefined;
const heap = VmapHeap.attach(job.handle, { ...(flush && { flush }), timeoutMs: 30_000 });
const owners = new Int32Array(job.owners);
const me = heap.space.id;
const P = heap.pageSize;
const violations: string[] = [];
const counts = { ops: 0, allocs: 0, frees: 0, deferred: 0, dumps: 0, checks: 0, purges: 0, busy: 0, flushErrors: 0 };
const live: Array<[number, number, number]> = []; // addr, bytes, pattern

/** A broken promise: kept for the report, and posted at once (a worker may be terminated before it reports). */
function violation(what: string): void {
	if (violations.length >= 10) return;
	violations.push(what);
	parentPort!.postMessage({ violation: what });
}

function mark(addr: number, bytes: number, from: number, to: number): void {
	for (let p = Math.floor(addr / P), end = Math.ceil((addr + bytes) / P); p < end; p++) {
		const was = Atomics.compareExchange(owners, p, from, to);
		if (was !== from) violation(`handle ${me}: page ${p} held by ${was}, expected ${from}`);
	}
}

function release(i: number, deferred: boolean): void {
	const [addr, bytes, pattern] = live[i]!;
	live[i] = live[live.length - 1]!;
	live.pop();
	const view = heap.bytes(addr, bytes);
	for (let k = 0; k < bytes; k += 97) if (view[k] !== ((pattern + k) & 0xff)) violation(`handle ${me}: byte ${k} of ${addr} changed`);
	mark(addr, bytes, me, 0);
	if (deferred) {
		heap.freeDeferred(addr);
		counts.deferred++;
	} else {
		heap.vfree(addr);
		counts.frees++;
	}
}

let stopping = false;
parentPort!.on("message", (m) => {
	if (m === "stop") stopping = true;
});
parentPort!.postMessage({ ready: me });

for (;;) {
	for (let n = 0; n < 64 && !stopping; n++, counts.ops++) {
		const r = rnd(1000);
		try {
			if (live.length > 0 && (live.length > 150 || r < 450)) release(rnd(live.length), r < 20);
			else if (r < 990) {
				const bytes = 1 + rnd(4 * P);
				const addr = r < 300 ? heap.vmalloc(bytes, { tag: `worker ${me % 4}` }) : heap.vmalloc(bytes); // tagged: the locked path
				mark(addr, bytes, 0, me);
				const pattern = rnd(256);
				const view = heap.bytes(addr, bytes);
				for (let k = 0; k < bytes; k += 97) view[k] = (pattern + k) & 0xff;
				live.push([addr, bytes, pattern]);
				counts.allocs++;
			} else if (r < 994) {
				heap.space.dump();
				counts.dumps++;
			} else if (r < 997) {
				heap.check();
				counts.checks++;
			} else {
				heap.purge();
				counts.purges++;
			}
		} catch (e) {
			// A sync purge throws what the flush hook threw; EBUSY: the heap is full for now.
			if (e instanceof Error && e.message.includes("flush failed (on purpose)")) counts.flushErrors++;
			else if (e instanceof VmapError && e.code === "EBUSY") counts.busy++;
			else throw e;
		}
	}
	if (stopping) break;
	await new Promise((r) => setImmediate(r));
}
while (live.length > 0) release(live.length - 1, false);
heap.close();
parentPort!.postMessage({ id: me, flush: job.flush, flushes, violations, ...counts });
