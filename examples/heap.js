/**
 * A producer and two consumers sharing one heap through addresses. The producer fills areas
 * with samples and posts only their addresses; each consumer reads the samples in place,
 * checks them and frees the area. A shared "settings" area is replaced now and then with
 * freeDeferred(): consumers may still be reading the old one, so it is freed only after each
 * of them has passed a quiescent point. Run: npm run example:heap (in a clone, after npm ci
 * builds dist/), or node node_modules/vmalloc/examples/heap.js where the package is installed.
 */
import { isMainThread, MessageChannel, parentPort, Worker, workerData } from "node:worker_threads";
import { VmapHeap } from "vmalloc";

const MESSAGES = 20_000;

if (isMainThread) {
	const heap = VmapHeap.create({ size: 4 * 2 ** 20, maxSize: 64 * 2 ** 20 });
	const settings = new Int32Array(new SharedArrayBuffer(4)); // the address of the settings area
	const start = (role, data, transfer) =>
		new Worker(new URL(import.meta.url), {
			workerData: { role, handle: heap.handle, settings: settings.buffer, ...data },
			transferList: transfer,
		});
	const channels = [new MessageChannel(), new MessageChannel()];
	const producer = start(
		"producer",
		{ ports: channels.map((c) => c.port1) },
		channels.map((c) => c.port1),
	);
	const consumers = channels.map((c, i) => start(`consumer ${i + 1}`, { port: c.port2 }, [c.port2]));
	heap.offline(); // this thread reads nothing while they run
	const reports = await Promise.all([producer, ...consumers].map((w) => new Promise((resolve) => w.once("message", resolve))));
	for (const r of reports) console.log(r);
	heap.vfree(Atomics.exchange(settings, 0, 0)); // nobody reads the last settings now
	heap.synchronize();
	heap.purge({ sync: true });
	heap.check();
	const s = heap.stats();
	console.log(
		`heap after the run: data ${s.dataBytes / 2 ** 20} MiB of at most ${s.maxBytes / 2 ** 20} MiB, ${s.allocs} areas allocated and ${s.frees} freed, ${s.deferred} deferred frees, busy now ${s.busyAreas}, free ${s.freeBytes === s.size ? "the whole space" : `${s.freeBytes} bytes`}; check() passed`,
	);
} else {
	const job = workerData; // { role, handle, settings, ports (the producer's) or port (a consumer's) }
	const heap = VmapHeap.attach(job.handle);
	const settings = new Int32Array(job.settings);
	if (job.role === "producer") {
		let replaced = 0;
		for (let i = 0; i < MESSAGES; i++) {
			if (i % 1000 === 0) {
				// New settings: publish, then free the old area after a grace period.
				const area = heap.vzalloc(16);
				heap.view(area, Float64Array, 2).set([i, 1 + i / 1000]);
				const old = Atomics.exchange(settings, 0, area);
				if (old !== 0) heap.freeDeferred(old);
				replaced++;
			}
			const n = 16 + (i % 1000);
			const addr = heap.vmalloc(8 * (n + 1));
			const v = heap.view(addr, Float64Array, n + 1);
			v[0] = n;
			for (let k = 1; k <= n; k++) v[k] = i + k;
			job.ports[i % 2].postMessage(addr);
		}
		for (const p of job.ports) p.postMessage(0);
		const s = heap.stats();
		heap.close();
		parentPort.postMessage(
			`producer: ${MESSAGES} messages posted as addresses, settings replaced ${replaced} times; data grew to ${s.dataBytes / 2 ** 20} MiB`,
		);
	} else {
		let got = 0;
		let bad = 0;
		let scale = 0;
		job.port.on("message", (addr) => {
			if (addr === 0) {
				job.port.close();
				heap.close();
				parentPort.postMessage(`${job.role}: ${got} messages read in place, ${bad} damaged; last settings scale ${scale}`);
				return;
			}
			// A read-side section: the settings area stays valid until our next heap call.
			const at = Atomics.load(settings, 0);
			if (at !== 0) scale = heap.view(at, Float64Array, 2)[1];
			const n = heap.view(addr, Float64Array, 1)[0];
			const v = heap.view(addr, Float64Array, n + 1);
			const first = v[1] - 1;
			for (let k = 1; k <= n; k++) if (v[k] !== first + k) bad++;
			heap.vfree(addr); // also a quiescent point
			got++;
		});
	}
}
