/**
 * A worker that reads a space's statistics in a loop through its own handle (stats() takes no
 * lock, and refills one object), and checks in every snapshot the invariants that hold within
 * one statistics domain.
 *
 * With `modes` (the bench), control word MODE says what to do from moment to moment, so that
 * one run of the allocator meets every kind of neighbour in turns of a few milliseconds:
 * READER_IDLE (asleep in Atomics.wait), READER_SPIN (keep the core busy, touching nothing of
 * the space), 0 (read back to back) or a pace in microseconds (sleep that long between
 * snapshots, as a monitoring loop would). Without, it reads back to back. It reports its
 * snapshots per mode (`byMode`, keyed by the MODE value).
 */
import { parentPort, workerData } from "node:worker_threads";
import { VmapSpace } from "../src/index.ts";
import { PROGRESS, STOP, waitAtGate } from "./gate.ts";

/** Control word of the mode, after the gate's words (gate.ts); a control buffer of READER_CONTROL_BYTES has it. */
export const MODE = 4;
export const READER_CONTROL_BYTES = 32;
export const READER_IDLE = -2;
export const READER_SPIN = -1;

const { buffer, control, modes = false } = (workerData ?? {}) as { buffer: SharedArrayBuffer; control: SharedArrayBuffer; modes?: boolean };

/** The invariants one snapshot must hold, each broken one as a line. */
function broken(s: ReturnType<VmapSpace["stats"]>): string[] {
	const out: string[] = [];
	// Busy domain: every alloc made a busy area, every free turned one lazy, every purged
	// area left; the counts and bytes move together.
	if (s.allocs - s.frees !== s.busyAreas) out.push(`allocs ${s.allocs} - frees ${s.frees} != busy areas ${s.busyAreas}`);
	if (s.lazyBytes !== s.vmapLazyNr * s.pageSize) out.push(`lazyBytes ${s.lazyBytes} != vmapLazyNr ${s.vmapLazyNr} pages`);
	if ((s.busyAreas === 0) !== (s.busyBytes === 0)) out.push(`busy areas ${s.busyAreas} but busy bytes ${s.busyBytes}`);
	// Free domain: the largest block is part of the free bytes.
	if (s.largestFreeBlock > s.freeBytes) out.push(`largest free block ${s.largestFreeBlock} > free bytes ${s.freeBytes}`);
	if ((s.freeBlocks === 0) !== (s.freeBytes === 0)) out.push(`free blocks ${s.freeBlocks} but free bytes ${s.freeBytes}`);
	// Purge domain: one flush per purge; the free path's and overflow purges are some of them.
	if (s.flushes !== s.purges) out.push(`flushes ${s.flushes} != purges ${s.purges}`);
	if (s.drainPurges + s.priorityPurges + s.overflowPurges > s.purges)
		out.push(`drain ${s.drainPurges} + priority ${s.priorityPurges} + overflow ${s.overflowPurges} purges > purges ${s.purges}`);
	// Across the lazy and pool domains: the pages purged are read before the pages added.
	if (s.vmapLazyNr < 0) out.push(`vmapLazyNr ${s.vmapLazyNr} < 0`);
	if (!(s.spanBytes >= 0 && s.spanBytes <= s.size && s.spanBytes % s.pageSize === 0))
		out.push(`spanBytes ${s.spanBytes} of a space of ${s.size}`);
	return out;
}

if (parentPort !== null) {
	const flag = new Int32Array(control);
	const space = VmapSpace.attach({ buffer });
	const s = space.stats();
	const byMode: Record<number, number> = {};
	let snapshots = 0;
	let inconsistent = 0;
	const violations: string[] = [];
	waitAtGate(flag);
	while (Atomics.load(flag, STOP) === 0 && violations.length <= 20) {
		const mode = modes ? Atomics.load(flag, MODE) : 0;
		if (mode === READER_IDLE) {
			Atomics.wait(flag, MODE, READER_IDLE, 50);
			continue;
		}
		if (mode === READER_SPIN) continue;
		if (mode > 0) Atomics.wait(flag, MODE, mode, mode / 1000); // woken early when the mode changes
		space.stats({ into: s });
		byMode[mode] = (byMode[mode] ?? 0) + 1;
		Atomics.store(flag, PROGRESS, ++snapshots);
		// Flagged: the reader gave up waiting for a writer; such a snapshot promises nothing.
		if (!s.consistent) inconsistent++;
		else violations.push(...broken(s));
	}
	space.close();
	parentPort.postMessage({ snapshots, inconsistent, violations, byMode });
}
