// A page without cross-origin isolation has no SharedArrayBuffer: the library still loads, a
// one-thread space (shared: false) works, and asking for a shared one says what is missing.
import { VmapSpace } from "/dist/index.js";

function main() {
	let sharedError = "";
	try {
		VmapSpace.create({ size: 1 << 20 });
	} catch (e) {
		sharedError = e.message;
	}
	const space = VmapSpace.create({ size: 1024 * 4096, shared: false, lazyMaxPages: 16 });
	const live = [];
	for (let i = 0; i < 5000; i++) {
		if (live.length > 50 && i % 3 === 0) space.free(live.splice(i % live.length, 1)[0]);
		else live.push(space.alloc(4096 * (1 + (i % 4))));
		if (live.length > 200) space.free(live.shift());
	}
	for (const a of live) space.free(a);
	space.purge();
	space.trim();
	space.check();
	const st = space.stats();
	return {
		hasSAB: typeof SharedArrayBuffer !== "undefined",
		sharedError,
		whole: st.freeBlocks === 1 && st.freeBytes === st.size,
		allocs: st.allocs,
	};
}

try {
	window.__result = main();
} catch (e) {
	window.__result = { error: String(e?.stack || e) };
}
