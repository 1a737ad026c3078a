/**
 * A worker of the diagnostics-under-load test (test/listing.test.ts). Role "diag": dump(),
 * check() and vmallocinfo() in a loop, each dump parsed and its areas checked to be in address
 * order inside the space, each vmallocinfo line checked for its shape. Role "alloc": alloc+free of 1..4 pages on the locked path, each live
 * area claimed page by page in a shared ownership map (an overlap is a page already owned),
 * keeping the longest gap between two operations. Both stop when control word 0 turns nonzero,
 * then close and report. As they go, each publishes its counts in the control words
 * 1 + 4 * index + (0 dumps, 1 checks, 2 infos, 3 pairs), for the test's progress handshakes.
 */
import { parentPort, workerData } from "node:worker_threads";
import { VmapSpace } from "../../src/index.ts";

const job = workerData as {
	handle: { buffer: SharedArrayBuffer };
	control: SharedArrayBuffer;
	owners: SharedArrayBuffer;
	role: "diag" | "alloc";
	index: number;
};
const stop = new Int32Array(job.control);
const progress = (k: number) => Atomics.add(stop, 1 + 4 * job.index + k, 1);
const space = VmapSpace.attach(job.handle, { timeoutMs: 60_000 });
const P = space.pageSize;
const me = space.id;
const violations: string[] = [];
const counts = { dumps: 0, checks: 0, infos: 0, pairs: 0, maxGapMs: 0 };

if (job.role === "diag") {
	while (Atomics.load(stop, 0) === 0) {
		const d = space.dump() as { areas: Array<{ start: number; end: number }> };
		for (let i = 0; i < d.areas.length; i++) {
			const a = d.areas[i]!;
			if (a.start < space.start || a.end > space.start + space.size || (i > 0 && d.areas[i - 1]!.start >= a.start)) {
				violations.push(`dump: area ${i} [${a.start}, ${a.end}) out of order or outside the space`);
				break;
			}
		}
		counts.dumps++;
		progress(0);
		space.check();
		counts.checks++;
		progress(1);
		const bad = space
			.vmallocinfo()
			.split("\n")
			.find((l) => l !== "" && !/^0x[0-9a-f]{16}-0x[0-9a-f]{16} +\d+( .+)?$/.test(l));
		if (bad !== undefined && violations.length < 10) violations.push(`vmallocinfo: a malformed line: ${bad}`);
		counts.infos++;
		progress(2);
	}
} else {
	const owners = new Int32Array(job.owners);
	const claim = (addr: number, size: number, from: number, to: number) => {
		for (let p = (addr - space.start) / P, end = p + size / P; p < end; p++) {
			const was = Atomics.compareExchange(owners, p, from, to);
			if (was !== from && violations.length < 10) violations.push(`handle ${me}: page ${p} held by ${was}, expected ${from}`);
		}
	};
	let last = performance.now();
	for (let i = 0; Atomics.load(stop, 0) === 0; i++) {
		const size = P * (1 + (i & 3));
		const a = space.alloc(size, {});
		claim(a, size, 0, me);
		claim(a, size, me, 0);
		space.free(a);
		counts.pairs++;
		progress(3);
		const now = performance.now();
		if (now - last > counts.maxGapMs) counts.maxGapMs = now - last;
		last = now;
		if ((i & 63) === 63) {
			await new Promise((r) => setImmediate(r)); // its drain purges here
			last = performance.now(); // a turn of its own event loop is not a stall
		}
	}
}
space.close();
parentPort!.postMessage({ violations, counts });
