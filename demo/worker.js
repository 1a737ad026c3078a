// A demo worker: attaches the page's heap and works in slices of about 8 ms, giving its event
// loop a turn between them (its drains run there, and the page's messages arrive).
import { VmapHeap } from "/dist/index.js";

let storm = false;
self.onmessage = ({ data }) => {
	if (data.cmd === "start") start(data);
	else if (data.cmd === "storm") storm = true;
};

function start({ handle, index, seed }) {
	const heap = VmapHeap.attach(handle);
	const tag = `worker ${index}`;
	const P = heap.pageSize;
	let x = seed >>> 0 || 1;
	const rnd = (n) => {
		x ^= x << 13;
		x >>>= 0;
		x ^= x >>> 17;
		x ^= x << 5;
		x >>>= 0;
		return x % n;
	};
	const live = []; // [addr, bytes]
	const r = { type: "report", index, id: heap.space.id, allocs: 0, frees: 0, live: 0, liveBytes: 0, badBytes: 0, error: "" };
	self.postMessage({ type: "hello", index, id: heap.space.id, token: heap.space.token });

	const alloc = () => {
		// Half from the worker's small-area blocks (no options), half tagged with its name.
		const small = rnd(2) === 0;
		const bytes = small ? 1 + rnd(2 * P) : P * (1 + Math.min(rnd(8) * rnd(8), 48));
		const a = small ? heap.vmalloc(bytes) : heap.vmalloc(bytes, { tag });
		heap.bytes(a, bytes).fill(index + 1);
		live.push([a, bytes]);
		r.allocs++;
		r.liveBytes += bytes;
	};
	const free = (k) => {
		const [a, bytes] = live[k];
		live[k] = live[live.length - 1];
		live.pop();
		const b = heap.bytes(a, bytes);
		for (let i = 0; i < bytes; i += 97) if (b[i] !== index + 1) r.badBytes++;
		heap.vfree(a);
		r.frees++;
		r.liveBytes -= bytes;
	};
	let last = 0;
	const slice = () => {
		try {
			if (storm) {
				storm = false;
				for (let i = 0; i < 600; i++) alloc();
				while (live.length > 0) free(live.length - 1);
			}
			const until = performance.now() + 8;
			while (performance.now() < until) {
				for (let i = 0; i < 32; i++) {
					if (live.length > 0 && (live.length > 400 || rnd(2) === 0)) free(rnd(live.length));
					else alloc();
				}
			}
			heap.quiescent();
		} catch (e) {
			r.error = String(e?.message ? e.message : e);
			if (e && e.code === "EOWNERDEAD") {
				report(true);
				return; // the space is poisoned: nothing more to do
			}
		}
		report(false);
		setTimeout(slice, 0);
	};
	const report = (now) => {
		const t = performance.now();
		if (!now && t - last < 200) return;
		last = t;
		r.live = live.length;
		self.postMessage(r);
	};
	slice();
}
