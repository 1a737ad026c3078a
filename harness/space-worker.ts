/**
 * A worker doing real work on a shared space: random allocations (sizes, alignments, tags) and
 * frees, with every live range claimed page by page in a shared ownership map. A page already
 * claimed by anyone when an allocation returns it is an overlap; a page not ours when we free
 * it is one too. Modes:
 * - "mixed": alloc/free/find, occasional purges;
 * - "free-storm": alloc + free as fast as possible ("mm/vmalloc: Keep a separate lazy-free list": free racing another's purges);
 * - "purge-storm": purge({ sync: true }) in a loop, check() now and then;
 * - "hold-lock": take the free-space lock and node 0's busy lock, change the structures they
 *   guard half way (journaled writes, as a critical section makes), and stop there for good:
 *   the test terminates us mid-section.
 */
import { parentPort, workerData } from "node:worker_threads";
import { VmapSpace } from "../src/index.ts";
import { addF, put } from "../src/buffer/journal.ts";
import { HDR_FREE_HEAD, HDR_FREE_LOCK, HDR_FREE_ROOT, HDRF_FREE_BYTES } from "../src/buffer/layout.ts";
import { N_BUSY_LOCK, N_BUSY_ROOT, nodeBase } from "../src/buffer/node-layout.ts";
import { waitAtGate } from "./gate.ts";
import { randomBelow } from "./random.ts";

interface Job {
	handle: { buffer: SharedArrayBuffer };
	owners: SharedArrayBuffer;
	control: SharedArrayBuffer;
	mode: "mixed" | "free-storm" | "purge-storm" | "hold-lock";
	seed: number;
	ops: number;
	maxLive: number;
}

const job = workerData as Job;
const space = VmapSpace.attach(job.handle);
const owners = new Int32Array(job.owners); // one word per page: the owning handle id, 0 = none
const control = new Int32Array(job.control); // [0]: start gate, [1]: workers ready
const me = space.id;
const P = space.pageSize;
const violations: string[] = [];
const rnd = randomBelow(job.seed);

function claim(addr: number, size: number): void {
	for (let p = (addr - space.start) / P, n = size / P; n > 0; p++, n--) {
		const was = Atomics.compareExchange(owners, p, 0, me);
		if (was !== 0 && violations.length < 10)
			violations.push(`handle ${me} got page ${p} (area ${addr}+${size}) already owned by handle ${was}`);
	}
}

function release(addr: number, size: number): void {
	for (let p = (addr - space.start) / P, n = size / P; n > 0; p++, n--) {
		const was = Atomics.compareExchange(owners, p, me, 0);
		if (was !== me && violations.length < 10) violations.push(`handle ${me} freed page ${p} owned by handle ${was}`);
	}
}

waitAtGate(control);
const t0 = performance.now();
const live: Array<[number, number]> = [];
let allocs = 0;
let busy = 0;
let ops = 0;
if (job.mode === "hold-lock") {
	space.locks.acquire(HDR_FREE_LOCK);
	space.locks.acquire(nodeBase(0) + N_BUSY_LOCK);
	const t = space.table;
	put(t.hdr, HDR_FREE_ROOT, 0); // the free tree, gone
	addF(t.hdrF, HDRF_FREE_BYTES, -P);
	put(t.hdr, nodeBase(0) + N_BUSY_ROOT, t.hdr[HDR_FREE_HEAD]!); // a free block in the busy tree
	parentPort!.postMessage({ holding: true });
	for (;;) Atomics.wait(control, 1, 0, 1000); // hold it until terminated
}
for (; ops < job.ops; ops++) {
	if (job.mode === "purge-storm") {
		space.purge({ sync: true });
		if (ops % 64 === 0) space.check();
		continue;
	}
	if (job.mode === "free-storm") {
		const size = P * (1 + rnd(4));
		const a = space.alloc(size);
		claim(a, size);
		release(a, size);
		space.free(a);
		continue;
	}
	const r = rnd(100);
	if (live.length > 0 && (live.length >= job.maxLive || r < 45)) {
		const [a, size] = live.splice(rnd(live.length), 1)[0]!;
		release(a, size);
		space.free(a);
	} else if (r < 95) {
		const size = P * (1 + rnd(8));
		const align = P * 2 ** rnd(4);
		try {
			const a = space.alloc(size, rnd(4) === 0 ? { align, tag: `w${me}` } : { align });
			claim(a, size);
			live.push([a, size]);
			allocs++;
		} catch (e) {
			if ((e as { code?: string }).code !== "EBUSY") throw e;
			busy++;
		}
	} else if (r < 98) {
		const a = space.start + P * rnd((space.end - space.start) / P);
		const f = space.find(a);
		if (f && (a < f.start || a >= f.end)) violations.push(`find(${a}) returned [${f.start}, ${f.end})`);
	} else {
		space.purge();
	}
}
for (const [a, size] of live) {
	release(a, size);
	space.free(a);
}
const report = { id: me, ops, allocs, busy, violations, ms: performance.now() - t0, lockWaitMs: space.lockWaitMs };
space.close(); // before the test terminates us: no drain may start afterwards
parentPort!.postMessage(report);
