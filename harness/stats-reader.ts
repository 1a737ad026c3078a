/**
 * A worker that reads a space's statistics in a loop through its own handle (stats() takes no
 * lock, and refills one object), and checks in every snapshot the invariants that hold within
 * one statistics domain.
 */
import { parentPort, workerData } from "node:worker_threads";
import { VmapSpace } from "../src/index.ts";
import { PROGRESS, STOP, waitAtGate } from "./gate.ts";

// pace: sleep this many microseconds between snapshots (Atomics.wait, as a monitoring loop
// would); 0 reads back to back.
const { buffer, control, pace = 0 } = workerData as { buffer: SharedArrayBuffer; control: SharedArrayBuffer; pace?: number };
const flag = new Int32Array(control);
const space = VmapSpace.attach({ buffer });
const s = space.stats();
let snapshots = 0;
let inconsistent = 0;
const violations: string[] = [];
waitAtGate(flag);
while (Atomics.load(flag, STOP) === 0) {
	if (pace > 0) Atomics.wait(flag, STOP, 0, pace / 1000);
	space.stats({ into: s });
	Atomics.store(flag, PROGRESS, ++snapshots);
	if (!s.consistent) {
		// Flagged: the reader gave up waiting for a writer; such a snapshot promises nothing.
		inconsistent++;
		continue;
	}
	// Busy domain: every alloc made a busy area, every free turned one lazy, every purged
	// area left; the counts and bytes move together.
	if (s.allocs - s.frees !== s.busyAreas) violations.push(`allocs ${s.allocs} - frees ${s.frees} != busy areas ${s.busyAreas}`);
	if (s.lazyBytes !== s.vmapLazyNr * s.pageSize) violations.push(`lazyBytes ${s.lazyBytes} != vmapLazyNr ${s.vmapLazyNr} pages`);
	if ((s.busyAreas === 0) !== (s.busyBytes === 0)) violations.push(`busy areas ${s.busyAreas} but busy bytes ${s.busyBytes}`);
	// Free domain: the largest block is part of the free bytes.
	if (s.largestFreeBlock > s.freeBytes) violations.push(`largest free block ${s.largestFreeBlock} > free bytes ${s.freeBytes}`);
	if ((s.freeBlocks === 0) !== (s.freeBytes === 0)) violations.push(`free blocks ${s.freeBlocks} but free bytes ${s.freeBytes}`);
	// Purge domain: one flush per purge; the free path's and overflow purges are some of them.
	if (s.flushes !== s.purges) violations.push(`flushes ${s.flushes} != purges ${s.purges}`);
	if (s.drainPurges + s.priorityPurges + s.overflowPurges > s.purges)
		violations.push(`drain ${s.drainPurges} + priority ${s.priorityPurges} + overflow ${s.overflowPurges} purges > purges ${s.purges}`);
	// Across the lazy and pool domains: the pages purged are read before the pages added.
	if (s.vmapLazyNr < 0) violations.push(`vmapLazyNr ${s.vmapLazyNr} < 0`);
	if (!(s.spanBytes >= 0 && s.spanBytes <= s.size && s.spanBytes % s.pageSize === 0))
		violations.push(`spanBytes ${s.spanBytes} of a space of ${s.size}`);
	if (violations.length > 20) break;
}
space.close();
parentPort!.postMessage({ snapshots, inconsistent, violations });
