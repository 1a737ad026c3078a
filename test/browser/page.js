// The page: creates a space, hands it to two Web Workers, allocates on the main thread at the
// same time (where Atomics.wait is forbidden: locks spin), then checks the result.
import { VmapSpace } from "/dist/index.js";

async function main() {
	const pages = 1 << 12;
	const space = VmapSpace.create({ size: pages * 4096, lazyMaxPages: 128 });
	const owners = new Int32Array(new SharedArrayBuffer(4 * pages));
	const ops = 20000;
	const workers = [1, 2].map(() => new Worker("/test/browser/worker.js", { type: "module" }));
	const reports = workers.map(
		(w, i) =>
			new Promise((resolve, reject) => {
				w.onmessage = (e) => resolve(e.data);
				w.onerror = (e) => reject(new Error(e.message));
				w.postMessage({ handle: space.handle, owners: owners.buffer, ops, seed: 17 + i });
			}),
	);
	// The main thread works alongside, yielding now and then so the workers' reports arrive.
	const violations = [];
	let mainAllocs = 0;
	for (let round = 0; round < 40; round++) {
		const mine = [];
		for (let i = 0; i < 50; i++) {
			const a = space.alloc(4096);
			const p = (a - space.start) / 4096;
			const was = Atomics.compareExchange(owners, p, 0, space.id);
			if (was !== 0) violations.push(`main: page ${p} held by ${was}`);
			mine.push(a);
			mainAllocs++;
		}
		for (const a of mine) {
			Atomics.store(owners, (a - space.start) / 4096, 0);
			space.free(a);
		}
		await new Promise((r) => setTimeout(r, 1));
	}
	const done = await Promise.all(reports);
	for (const w of workers) w.terminate();
	space.purge({ sync: true });
	space.check();
	const pooled = space.stats();
	space.trim(); // pooled areas back to free space
	space.check();
	const st = space.stats();
	return {
		crossOriginIsolated: self.crossOriginIsolated,
		mainAllocs,
		workers: done,
		violations,
		whole: st.freeBlocks === 1 && st.freeBytes === st.size && st.busyAreas === 0 && st.lazyAreas === 0,
		purges: st.purges,
		nodes: st.nodes.length,
		poolHits: st.poolHits,
		pooledBeforeTrim: pooled.poolAreas,
	};
}

main().then(
	(r) => (window.__result = r),
	(e) => (window.__result = { error: String(e?.stack || e) }),
);
