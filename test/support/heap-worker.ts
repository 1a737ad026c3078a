/**
 * A worker doing real work on a shared heap. Every byte it owns holds a value it chose, checked
 * before it lets go; every page it owns is claimed in a shared ownership map (an overlap is a
 * page someone else holds). Modes:
 * - "mixed": vmalloc / vzalloc / vfree / vrealloc / vmMapRam + vmUnmapRam / freeDeferred;
 * - "producer": fills areas and hands their addresses to a consumer, half through a shared
 *   queue (queue.ts), half through a MessagePort;
 * - "consumer": checks what arrives byte by byte and frees it;
 * - "rcu-writer": publishes a fresh area in a shared slot and freeDeferred()s the one before;
 *   after every vmalloc, no reader may be reading inside the new area. Half way it waits until
 *   every reader has read READS_BEFORE_HALF times (a handshake: readers read while it frees);
 * - "rcu-reader": in read-side sections, reads the published area (it must be whole and
 *   unchanged), marking what it reads, then reports a quiescent point.
 * The rcu modes share `slots`: [0] the published area, [1..R] what reader r reads now, [R+1..2R]
 * how many reads reader r has done, for R readers.
 */
import { type MessagePort, parentPort, workerData } from "node:worker_threads";
import { VmapHeap, type VmapHeapHandle } from "../../src/index.ts";
import { SharedQueue } from "./queue.ts";
import { waitAtGate } from "../../harness/gate.ts";
import { randomBelow } from "../../harness/random.ts";

/** Reads each reader does before the writer goes on past half its operations. */
const READS_BEFORE_HALF = 100;

interface Job {
	handle: VmapHeapHandle;
	owners: SharedArrayBuffer;
	control: SharedArrayBuffer;
	mode: "mixed" | "producer" | "consumer" | "rcu-writer" | "rcu-reader";
	seed: number;
	ops: number;
	queue?: SharedArrayBuffer;
	port?: MessagePort;
	/** rcu: [0] the published address, [1 + reader] what each reader is reading (0: nothing). */
	slots?: SharedArrayBuffer;
}

const job = workerData as Job;
const heap = VmapHeap.attach(job.handle);
const P = heap.pageSize;
const guard = heap.guardPages * P;
const owners = new Int32Array(job.owners); // one word per page: owning handle id, 0 = none
const control = new Int32Array(job.control); // [0]: start gate, [1]: workers ready, [2]: stop, [3]: a word to nap on
const me = heap.space.id;
const violations: string[] = [];
const rnd = randomBelow(job.seed);
const note = (s: string) => void (violations.length < 10 && violations.push(s));

function claim(addr: number, size: number): void {
	for (let p = addr / P, end = (addr + size) / P; p < end; p++) {
		const was = Atomics.compareExchange(owners, p, 0, me);
		if (was !== 0) note(`handle ${me} got page ${p} (area ${addr}+${size}) already owned by handle ${was}`);
	}
}

function unclaim(addr: number, size: number): void {
	for (let p = addr / P, end = (addr + size) / P; p < end; p++) {
		const was = Atomics.compareExchange(owners, p, me, 0);
		if (was !== me) note(`handle ${me} let go of page ${p} owned by handle ${was}`);
	}
}

/** The bytes an area of `bytes` spans, guard included. */
const span = (bytes: number) => Math.ceil(bytes / P) * P + guard;

function expectFilled(addr: number, bytes: number, value: number, what: string): void {
	const b = heap.bytes(addr, bytes);
	const bad = b.findIndex((x) => x !== value);
	if (bad >= 0) note(`${what} ${addr}: byte ${bad} is ${b[bad]}, not ${value}`);
}

interface Live {
	addr: number;
	bytes: number;
	value: number;
	mapped: boolean;
}

waitAtGate(control);
const t0 = performance.now();
let ops = 0;
let moved = 0;
let busy = 0;

if (job.mode === "mixed") {
	const live: Live[] = [];
	const drop = (i: number) => live.splice(i, 1)[0]!;
	for (; ops < job.ops; ops++) {
		const r = rnd(100);
		try {
			if (live.length > 0 && (live.length >= 64 || r < 35)) {
				const a = drop(rnd(live.length));
				expectFilled(a.addr, a.bytes, a.value, "before freeing");
				unclaim(a.addr, a.mapped ? a.bytes : span(a.bytes));
				if (a.mapped) heap.vmUnmapRam(a.addr, a.bytes / P);
				else if (r % 5 === 0) heap.freeDeferred(a.addr);
				else heap.vfree(a.addr);
			} else if (live.length > 0 && r < 45) {
				const i = rnd(live.length);
				const a = live[i]!;
				if (a.mapped) continue;
				const bytes = 1 + rnd(6 * P);
				expectFilled(a.addr, a.bytes, a.value, "before vrealloc");
				unclaim(a.addr, span(a.bytes));
				let to: number;
				try {
					to = heap.vrealloc(a.addr, bytes);
				} catch (e) {
					claim(a.addr, span(a.bytes)); // EBUSY changed nothing: the area is still ours
					throw e;
				}
				claim(to, span(bytes));
				if (to !== a.addr) moved++;
				expectFilled(to, Math.min(a.bytes, bytes), a.value, "after vrealloc");
				heap.bytes(to, bytes).fill(a.value);
				live[i] = { addr: to, bytes, value: a.value, mapped: false };
			} else if (r < 55) {
				const pages = 1 + rnd(16);
				const addr = heap.vmMapRam(pages);
				claim(addr, pages * P);
				const value = 1 + rnd(250);
				heap.bytes(addr, pages * P).fill(value);
				live.push({ addr, bytes: pages * P, value, mapped: true });
			} else {
				const bytes = 1 + rnd(4 * P);
				const zero = r % 2 === 0;
				const addr = zero ? heap.vzalloc(bytes) : heap.vmalloc(bytes);
				claim(addr, span(bytes));
				if (zero) expectFilled(addr, bytes, 0, "vzalloc");
				const value = 1 + rnd(250);
				heap.bytes(addr, bytes).fill(value);
				live.push({ addr, bytes, value, mapped: false });
			}
		} catch (e) {
			if ((e as { code?: string }).code !== "EBUSY") throw e;
			busy++;
		}
	}
	while (live.length > 0) {
		const a = drop(0);
		expectFilled(a.addr, a.bytes, a.value, "at the end");
		unclaim(a.addr, a.mapped ? a.bytes : span(a.bytes));
		if (a.mapped) heap.vmUnmapRam(a.addr, a.bytes / P);
		else heap.vfree(a.addr);
	}
} else if (job.mode === "producer") {
	const queue = new SharedQueue(job.queue!);
	for (; ops < job.ops; ops++) {
		const bytes = 1 + rnd(3 * P);
		// The MessagePort does not push back: when the consumer falls behind, the heap fills up
		// (EBUSY), and the producer waits for it to free some.
		let addr = 0;
		while (addr === 0) {
			try {
				addr = heap.vmalloc(bytes);
			} catch (e) {
				if ((e as { code?: string }).code !== "EBUSY") throw e;
				busy++;
				Atomics.wait(control, 3, 0, 1);
			}
		}
		const b = heap.bytes(addr, bytes);
		for (let i = 0; i < bytes; i++) b[i] = (ops * 31 + i) & 0xff;
		claim(addr, span(bytes)); // the consumer lets go of the pages when it frees the area
		if (ops % 2 === 0) queue.push(addr, bytes, ops);
		else job.port!.postMessage([addr, bytes, ops]);
	}
	queue.push(0, 0, -1);
	job.port!.postMessage([0, 0, -1]);
	job.port!.close();
} else if (job.mode === "consumer") {
	const queue = new SharedQueue(job.queue!);
	const take = (addr: number, bytes: number, seq: number) => {
		const b = heap.bytes(addr, bytes);
		for (let i = 0; i < bytes; i++) {
			if (b[i] !== ((seq * 31 + i) & 0xff)) {
				note(`item ${seq} at ${addr}: byte ${i} is ${b[i]}`);
				break;
			}
		}
		// The producer's claim passes to us with the address.
		const owner = Atomics.load(owners, addr / P);
		for (let p = addr / P, end = (addr + span(bytes)) / P; p < end; p++) {
			const was = Atomics.exchange(owners, p, 0);
			if (was !== owner || owner === 0) note(`item ${seq}: page ${p} owned by ${was}, its first page by ${owner}`);
		}
		heap.vfree(addr);
		ops++;
	};
	let queueDone = false;
	let portDone = false;
	const fromPort: Array<[number, number, number]> = [];
	job.port!.on("message", (m: [number, number, number]) => fromPort.push(m));
	while (!queueDone || !portDone) {
		for (let item = queue.pop(0); item !== undefined; item = queue.pop(0)) {
			if (item[2] === -1) queueDone = true;
			else take(...item);
		}
		for (const m of fromPort.splice(0)) {
			if (m[2] === -1) portDone = true;
			else take(...m);
		}
		if (!queueDone || !portDone) {
			heap.offline(); // idle: grace periods need not wait for us
			await new Promise((r) => setTimeout(r, 1));
		}
	}
	job.port!.close();
} else if (job.mode === "rcu-writer") {
	const slots = new Int32Array(job.slots!);
	const readers = (slots.length - 1) / 2;
	for (; ops < job.ops; ops++) {
		if (ops === job.ops >> 1) waitForReaders(slots, readers);
		const addr = heap.vmalloc(P);
		for (let r = 1; r <= readers; r++) {
			const reading = Atomics.load(slots, r);
			if (reading >= addr && reading < addr + P + guard) note(`vmalloc returned ${addr}, which reader ${r} is still reading`);
		}
		heap.bytes(addr, P).fill(ops & 0xff);
		const old = Atomics.exchange(slots, 0, addr);
		if (old !== 0) heap.freeDeferred(old);
	}
	const last = Atomics.exchange(slots, 0, 0);
	heap.freeDeferred(last);
	Atomics.store(control, 2, 1);
} else {
	const slots = new Int32Array(job.slots!);
	const readers = (slots.length - 1) / 2;
	const r = 1 + (job.seed % readers);
	while (Atomics.load(control, 2) === 0) {
		// A read-side section: a few reads, then a quiescent point.
		for (let k = 0; k < 4; k++) {
			const addr = Atomics.load(slots, 0);
			if (addr === 0) continue;
			Atomics.store(slots, r, addr);
			try {
				const b = heap.bytes(addr, P);
				const v = b[0]!;
				for (let i = 1; i < P; i += 61)
					if (b[i] !== v) note(`reader ${r}: ${addr} changed under it (byte ${i} is ${b[i]}, byte 0 ${v})`);
			} catch (e) {
				note(`reader ${r}: ${addr}: ${(e as Error).message}`);
			}
			ops++;
			Atomics.add(slots, readers + r, 1);
		}
		Atomics.store(slots, r, 0);
		heap.quiescent();
	}
}

const report = { id: me, mode: job.mode, ops, moved, busy, violations, ms: performance.now() - t0, stats: heap.stats() };
heap.close();
parentPort!.postMessage(report);

/**
 * The writer's handshake: wait until each of the `readers` has read READS_BEFORE_HALF times
 * (30 s at most: past that, a reader that never reads is a violation, not a wait for ever).
 */
function waitForReaders(slots: Int32Array, readers: number): void {
	const until = performance.now() + 30_000;
	for (let r = 1; r <= readers; r++) {
		while (Atomics.load(slots, readers + r) < READS_BEFORE_HALF) {
			if (performance.now() > until) {
				note(`reader ${r} read ${Atomics.load(slots, readers + r)} times in 30 s while the writer waited`);
				return;
			}
			Atomics.wait(control, 3, 0, 1);
		}
	}
}
