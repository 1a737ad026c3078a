/**
 * A worker of the small-area cross-free test (small-workers.test.ts). It follows the test's
 * commands, one message at a time, and claims every page of every area it allocates in a
 * shared ownership map by CAS: a page already owned when an allocation returns it is an
 * overlap. Commands:
 * - alloc n: allocate n areas (mostly small, some large), claimed; reply with them;
 * - free areas: free areas other workers allocated (remote frees), releasing their pages
 *   (CAS from their allocator's id), while churning small allocations of its own;
 * - refree areas: free them again, while no one allocates: each must fail (EDOUBLEFREE while
 *   lazy, ENOENT once flushed and free; a double free after the range was handed out again
 *   is a free of the new area, which no allocator can tell);
 * - check: check() (this handle's blocks to the bit);
 * - close: close() with whatever this handle still has live;
 * - exit.
 */
import { parentPort, workerData } from "node:worker_threads";
import { VmapError, VmapSpace } from "../../src/index.ts";
import { randomBelow } from "../../harness/random.ts";

interface Job {
	handle: { buffer: SharedArrayBuffer };
	owners: SharedArrayBuffer;
	seed: number;
}
type Area = [addr: number, size: number, owner: number];
type Command =
	| { cmd: "alloc"; n: number }
	| { cmd: "free"; areas: Area[] }
	| { cmd: "refree"; areas: Area[] }
	| { cmd: "check" }
	| { cmd: "close" }
	| { cmd: "exit" };

const job = workerData as Job;
let flushes = 0;
const space = VmapSpace.attach(job.handle, { flush: () => void flushes++ });
const owners = new Int32Array(job.owners);
const me = space.id;
const P = space.pageSize;
const smallMax = space.stats().smallMax;
const rnd = randomBelow(job.seed);
const violations: string[] = [];

function claim(addr: number, size: number, want: number, to: number): void {
	for (let p = (addr - space.start) / P, n = size / P; n > 0; p++, n--) {
		const was = Atomics.compareExchange(owners, p, want, to);
		if (was !== want && violations.length < 10)
			violations.push(`handle ${me}: page ${p} of [${addr}, ${addr + size}) was owned by ${was}, expected ${want}`);
	}
}

/** The area's size as find() reports it: small areas take their whole class. */
function sizeOf(addr: number): number {
	const info = space.find(addr);
	if (info === undefined || info.start !== addr || info.state !== "busy")
		throw new Error(`find(${addr}) right after alloc: ${JSON.stringify(info)}`);
	return info.size;
}

function alloc(small: boolean): Area {
	const size = small ? P * (1 + rnd(smallMax / P)) : smallMax + P * (1 + rnd(64));
	const addr = space.alloc(size);
	const got = sizeOf(addr);
	claim(addr, got, 0, me);
	return [addr, got, me];
}

parentPort!.on("message", (c: Command) => {
	try {
		switch (c.cmd) {
			case "alloc": {
				const areas: Area[] = [];
				for (let i = 0; i < c.n; i++) areas.push(alloc(rnd(10) !== 0));
				parentPort!.postMessage({ areas });
				return;
			}
			case "free": {
				const mine: Area[] = [];
				for (const [addr, size, owner] of c.areas) {
					claim(addr, size, owner, 0);
					space.free(addr);
					// Churn of our own between remote frees: our blocks fill, flush and refill.
					if (mine.length < 64) mine.push(alloc(true));
					else {
						const [a, s] = mine.splice(rnd(mine.length), 1)[0]!;
						claim(a, s, me, 0);
						space.free(a);
					}
				}
				for (const [a, s] of mine) {
					claim(a, s, me, 0);
					space.free(a);
				}
				parentPort!.postMessage({ violations, flushes });
				return;
			}
			case "refree": {
				// Nobody allocates now, so no freed area can have been handed out again.
				let lazy = 0;
				let refused = 0;
				for (const [addr] of c.areas) {
					try {
						space.free(addr);
						violations.push(`handle ${me}: a second free of ${addr} succeeded`);
					} catch (e) {
						if (!(e instanceof VmapError && (e.code === "EDOUBLEFREE" || e.code === "ENOENT"))) throw e;
						refused++;
						if (e.code === "EDOUBLEFREE") lazy++;
					}
				}
				parentPort!.postMessage({ refused, lazy, violations });
				return;
			}
			case "check":
				space.check();
				parentPort!.postMessage({ ok: true, stats: space.stats() });
				return;
			case "close":
				space.close();
				parentPort!.postMessage({ ok: true });
				return;
			case "exit":
				process.exit(0);
		}
	} catch (e) {
		parentPort!.postMessage({ error: e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e) });
	}
});
parentPort!.postMessage({ ready: me });
