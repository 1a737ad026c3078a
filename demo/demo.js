// The live page: creates the heap, starts the workers, and redraws the map and the timeline.
import { VmapHeap } from "/dist/index.js";
import { mapSvg, Timeline, timelineSvg } from "/dist/viz.js";

const params = new URLSearchParams(location.search);
const N = Math.max(1, Math.min(16, Number(params.get("workers")) || Math.min(4, Math.max(2, navigator.hardwareConcurrency || 2))));
const SAMPLE_MS = 100;
const MAP_MS = 500;
const $ = (id) => document.getElementById(id);
const fmt = (n) => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

// What the browser test reads.
const state = { workers: N, frames: 0, samples: 0, allocs: 0, badBytes: 0, killed: [], errors: [], status: "", poisoned: false };
globalThis.__demo = state;

const status = (text, bad = false) => {
	$("status").textContent = text;
	$("status").className = bad ? "bad" : "";
	state.status = text;
};

if (!crossOriginIsolated) {
	status("This page needs cross-origin isolation (COOP and COEP headers) for SharedArrayBuffer: open it through npm run demo.", true);
	throw new Error("not cross-origin isolated");
}

// 64 MiB of addresses, 4 KiB pages, 2 nodes; a drain is due at 8 MiB lazily freed.
const heap = VmapHeap.create({ size: 4 * 2 ** 20, maxSize: 64 * 2 ** 20, nodes: 2, lazyMaxPages: 2048, smallMax: 16 * 1024 }); // small requests (guard page included) from small-area blocks
heap.offline(); // this page only watches: grace periods do not wait for it
$("n").textContent = String(N);

const workers = [];
for (let i = 0; i < N; i++) {
	const w = new Worker("/demo/worker.js", { type: "module" });
	const row = { index: i, worker: w, id: 0, token: "", alive: true, report: null };
	w.onmessage = ({ data }) => {
		if (data.type === "hello") {
			row.id = data.id;
			row.token = data.token;
		} else row.report = data;
	};
	w.onerror = (e) => {
		e.preventDefault();
		state.errors.push(`worker ${i}: ${e.message}`);
	};
	w.postMessage({ cmd: "start", handle: heap.handle, index: i, seed: 0x9e3779b9 ^ (i * 7919) });
	workers.push(row);
}

const timeline = new Timeline();
const st = heap.space.stats();
state.timeline = timeline;
state.stats = st;
setInterval(() => {
	timeline.sample(heap.space.stats({ into: st }));
	state.samples = timeline.length;
}, SAMPLE_MS);

function renderTable() {
	const body = $("workers").tBodies[0];
	const rows = workers.map((w) => {
		const r = w.report ?? { allocs: 0, frees: 0, live: 0, liveBytes: 0, badBytes: 0, error: "" };
		return `<tr class="${w.alive ? "" : "dead"}"><td>worker ${w.index}${w.alive ? "" : " (killed)"}</td><td>${w.id}</td><td>${r.allocs}</td><td>${r.frees}</td><td>${r.live}</td><td>${fmt(r.liveBytes)}</td><td>${r.badBytes}</td><td class="err">${escapeHtml(r.error)}</td></tr>`;
	});
	body.innerHTML = rows.join("");
	state.allocs = workers.reduce((n, w) => n + (w.report?.allocs ?? 0), 0);
	state.badBytes = workers.reduce((n, w) => n + (w.report?.badBytes ?? 0), 0);
}

function escapeHtml(s) {
	return s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
}

let drawing = false;
let paused = false;
/** Each tag keeps its colour for the life of the page (mapSvg's tagColours). */
const tagColours = new Map();
async function redraw() {
	if (drawing || paused) return;
	drawing = true;
	try {
		const dump = await heap.space.dumpAsync();
		const t0 = performance.now();
		$("map").innerHTML = mapSvg(dump, {
			width: 1000,
			rows: 24,
			idPrefix: "map-",
			tagColours,
			title: `The heap's address space now: ${fmt(heap.maxSize)}, ${workers.filter((w) => w.alive).length} of ${N} workers running`,
		});
		$("timeline").innerHTML = timelineSvg(timeline, {
			width: 960,
			title: `The last ${timeline.length} samples of stats(), one every ${SAMPLE_MS} ms`,
		});
		state.drawMs = performance.now() - t0;
		renderTable();
		state.frames++;
	} catch (e) {
		if (e && e.code === "EOWNERDEAD") {
			// A killed worker's critical section could not be undone: the space is poisoned. The
			// last map stays; stats() and the timeline go on (they take no lock).
			clearInterval(mapTimer);
			renderTable();
			status(`The space is poisoned: ${e.message}. Reload the page to start again.`, true);
			state.poisoned = true;
			return;
		}
		state.errors.push(String(e?.message ? e.message : e));
		status(`drawing failed: ${e.message}`, true);
	} finally {
		drawing = false;
	}
}
const mapTimer = setInterval(redraw, MAP_MS);
redraw();
status(`${N} workers running; the map and the timeline redraw twice a second.`);

$("pause").onclick = () => {
	paused = !paused;
	state.paused = paused;
	$("pause").textContent = paused ? "resume pictures" : "pause pictures";
};
$("storm").onclick = () => {
	for (const w of workers) if (w.alive) w.worker.postMessage({ cmd: "storm" });
	status(
		"vfree storm: every worker allocates 600 more areas, then frees everything at once. Watch the lazy backlog pass lazyMaxPages (drains) and 2 × it (priority purges).",
	);
};
$("purge").onclick = () => {
	const before = heap.stats();
	heap.purge({ sync: true });
	const after = heap.stats();
	status(
		`purge: ${before.lazyAreas} lazy areas (${fmt(before.lazyBytes)}) before, ${after.lazyAreas} after; ${after.purges - before.purges} purge(s) ran.`,
	);
};
$("trim").onclick = () => {
	const r = heap.space.trim();
	status(`trim(): ${r.areas} pooled areas (${fmt(r.bytes)}) went back to free space.`);
};
/**
 * How long after terminate() a Web Worker's thread may still run: Chromium lets its current
 * task go on for up to 2 s before it forces the end (kForcibleTerminationDelay in Blink's
 * worker_thread.cc; whatwg/html#6210), and terminate() returns at once. Only after that has
 * the page seen the worker end, and may call exited().
 */
const TERMINATE_GRACE_MS = 2500;

$("kill").onclick = () => {
	const w = [...workers].reverse().find((x) => x.alive && x.id > 0);
	if (!w) {
		status("no worker left to kill.", true);
		return;
	}
	w.worker.terminate();
	w.alive = false;
	state.killed.push(w.index);
	renderTable();
	status(
		`worker ${w.index} (handle ${w.id}) terminated; its thread may finish its current task, so the page tells the heap in ${TERMINATE_GRACE_MS / 1000} s.`,
	);
	setTimeout(() => ended(w), TERMINATE_GRACE_MS);
};

/**
 * A Web Worker has no exit event: the page knows it ended, and says so. What it was changing
 * under a lock, if anything, is undone and its locks released; its areas are freed.
 */
function ended(w) {
	heap.exited(w.token, { freeAreas: true });
	const r = w.report ?? { live: 0, liveBytes: 0 };
	const dead = isPoisoned();
	state.poisoned = dead;
	renderTable();
	if (dead) setInterval(renderTable, 250); // the map no longer redraws: the table still shows the others' errors
	status(
		dead
			? `worker ${w.index} (handle ${w.id}) was killed in a critical section that could not be undone: the space is poisoned, and every other worker now gets EOWNERDEAD (see the table). Reload the page to start again.`
			: `worker ${w.index} (handle ${w.id}) killed mid-run: what it was changing under a lock, if anything, was undone and its locks released, so the others go on. The ${r.live} areas (${fmt(r.liveBytes)}) it had last reported live were freed with it (exited's freeAreas).`,
		dead,
	);
}

/** Whether the space was poisoned (a handle ended in a critical section that could not be undone): any locked call then throws EOWNERDEAD. */
function isPoisoned() {
	try {
		heap.space.find(heap.space.start);
		return false;
	} catch (e) {
		return e && e.code === "EOWNERDEAD";
	}
}
