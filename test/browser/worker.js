// A browser Web Worker sharing a space with the page: attach, random work, each live range
// claimed page by page in a shared ownership map (an overlap shows as a page already owned).
import { VmapSpace } from "/dist/index.js";

self.onmessage = ({ data }) => {
	const { handle, owners: ownersBuffer, ops, seed } = data;
	const space = VmapSpace.attach(handle);
	const owners = new Int32Array(ownersBuffer);
	const me = space.id;
	const P = space.pageSize;
	const violations = [];
	let x = seed;
	const rnd = (n) => {
		x ^= x << 13;
		x >>>= 0;
		x ^= x >>> 17;
		x ^= x << 5;
		x >>>= 0;
		return x % n;
	};
	const mark = (a, size, from, to) => {
		for (let p = (a - space.start) / P, n = size / P; n > 0; p++, n--) {
			const was = Atomics.compareExchange(owners, p, from, to);
			if (was !== from && violations.length < 10) violations.push(`handle ${me}: page ${p} held by ${was}, expected ${from}`);
		}
	};
	const live = [];
	let allocs = 0;
	for (let i = 0; i < ops; i++) {
		if (live.length > 0 && (live.length > 200 || rnd(2) === 0)) {
			const [a, size] = live.splice(rnd(live.length), 1)[0];
			mark(a, size, me, 0);
			space.free(a);
		} else {
			const size = P * (1 + rnd(8));
			const a = space.alloc(size, { align: P * 2 ** rnd(3) });
			mark(a, size, 0, me);
			live.push([a, size]);
			allocs++;
		}
	}
	for (const [a, size] of live) {
		mark(a, size, me, 0);
		space.free(a);
	}
	space.close();
	self.postMessage({ id: me, allocs, violations });
};
