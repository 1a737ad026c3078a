/**
 * The same space shared by a browser page and two Web Workers, and the live demo page
 * (npm run demo), in Debian's headless Chromium driven by playwright-core. The library is
 * compiled with tsc (once, for both) and served from 127.0.0.1 with the cross-origin isolation
 * headers that SharedArrayBuffer needs.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { serveDemo } from "../demo/server.ts";
import { countColour, decodePng } from "./support/png.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

/**
 * The Chromium to drive: $CHROMIUM, else the first on PATH. npm test installs nothing: without
 * one the test is skipped with the reason printed, and `npm run setup:browser` installs Debian's.
 */
function findChromium(): string | undefined {
	if (process.env.CHROMIUM) return process.env.CHROMIUM;
	for (const dir of (process.env.PATH ?? "").split(":")) {
		for (const name of ["chromium", "chromium-browser"]) if (dir && existsSync(join(dir, name))) return join(dir, name);
	}
	return undefined;
}
const CHROMIUM = findChromium();
const skip = CHROMIUM === undefined ? "no Chromium found (set CHROMIUM, or run npm run setup:browser to install Debian's chromium)" : false;
const TYPES: Record<string, string> = { ".js": "text/javascript", ".html": "text/html", ".map": "application/json" };
const ARGS = [
	"--no-sandbox",
	"--disable-gpu",
	"--disable-quic",
	"--no-first-run",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
];

/** The library compiled to a temporary folder, once for every test of this file. */
let compiled: string | undefined;
function dist(): string {
	if (compiled === undefined) {
		compiled = mkdtempSync(join(tmpdir(), "vmap-dist-"));
		execFileSync(process.execPath, [
			join(root, "node_modules/typescript/bin/tsc"),
			"-p",
			join(root, "tsconfig.build.json"),
			"--outDir",
			compiled,
		]);
	}
	return compiled;
}
after(() => {
	if (compiled !== undefined) rmSync(compiled, { recursive: true, force: true });
});

test("browser: a page and two Web Workers share one space; without cross-origin isolation a one-thread space works (headless Chromium)", {
	timeout: 120_000,
	skip,
}, async () => {
	const lib = dist();
	const server = createServer((req, res) => {
		const path = normalize(new URL(req.url ?? "/", "http://x").pathname);
		const file = path.startsWith("/dist/") ? join(lib, path.slice(6)) : path.startsWith("/test/browser/") ? join(root, path) : null;
		try {
			if (!file) throw new Error("not served");
			const body = readFileSync(file);
			// plain.html is served without cross-origin isolation: no SharedArrayBuffer there.
			const isolation = path.endsWith("/plain.html")
				? {}
				: { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" };
			res.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream", ...isolation });
			res.end(body);
		} catch {
			res.writeHead(404).end();
		}
	});
	await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
	const port = (server.address() as { port: number }).port;
	const browser = await chromium.launch({ executablePath: CHROMIUM!, args: ARGS });
	try {
		const r = await resultOf<{
			crossOriginIsolated: boolean;
			mainAllocs: number;
			workers: Array<{ id: number; allocs: number; violations: string[] }>;
			violations: string[];
			whole: boolean;
			purges: number;
			nodes: number;
			poolHits: number;
			pooledBeforeTrim: number;
		}>(browser, `http://127.0.0.1:${port}/test/browser/index.html`);
		console.log(
			`# browser: main thread ${r.mainAllocs} allocations, workers ${r.workers.map((w) => `#${w.id}: ${w.allocs}`).join(", ")}, ${r.purges} purges, ${r.nodes} nodes (navigator.hardwareConcurrency), ${r.poolHits} pool hits, ${r.pooledBeforeTrim} areas pooled before trim()`,
		);
		assert.equal(r.crossOriginIsolated, true);
		assert.deepEqual(r.violations, []);
		for (const w of r.workers) assert.deepEqual(w.violations, [], `worker ${w.id}`);
		// Ids are unique among open handles; a worker that closed early may give its id to the next.
		assert.ok(
			r.workers.every((w) => w.id >= 2),
			`worker ids ${r.workers.map((w) => w.id)}: the page holds id 1`,
		);
		assert.ok(r.workers.every((w) => w.allocs > 1000));
		assert.equal(r.whole, true, "after everything was freed, purged and trimmed, free space is the whole space");

		// Without cross-origin isolation: no SharedArrayBuffer, yet a one-thread space works.
		const p = await resultOf<{ hasSAB: boolean; sharedError: string; whole: boolean; allocs: number }>(
			browser,
			`http://127.0.0.1:${port}/test/browser/plain.html`,
		);
		assert.equal(p.hasSAB, false, "the plain page is not cross-origin isolated");
		assert.match(p.sharedError, /^EINVAL: Cannot create a space: SharedArrayBuffer is not available here .*pass shared: false/);
		assert.equal(p.whole, true);
		assert.ok(p.allocs > 3000);
	} finally {
		await browser.close();
		server.close();
	}
});

/**
 * Open `url` in a new page, wait for the `__result` its script sets, and return it; the page must
 * have thrown nothing and reported no error of its own.
 */
async function resultOf<T>(browser: Browser, url: string): Promise<T> {
	const page = await browser.newPage();
	const errors: string[] = [];
	page.on("pageerror", (e) => errors.push(String(e)));
	await page.goto(url);
	await page.waitForFunction(() => (globalThis as unknown as { __result?: unknown }).__result !== undefined, undefined, {
		timeout: 90_000,
	});
	const r = (await page.evaluate(() => (globalThis as unknown as { __result: unknown }).__result)) as T & { error?: string };
	assert.equal(r.error, undefined, r.error);
	assert.deepEqual(errors, [], `page errors on ${url}`);
	return r;
}

test("browser: the live demo page (npm run demo) draws the map and the timeline, its buttons work, a killed worker leaves the others running (headless Chromium)", {
	timeout: 120_000,
	skip,
}, async () => {
	const { server, url } = await serveDemo({ port: 0, dist: dist() });
	const browser = await chromium.launch({ executablePath: CHROMIUM!, args: ARGS });
	try {
		const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
		const problems: string[] = [];
		page.on("pageerror", (e) => problems.push(`page error: ${String(e)}`));
		page.on("console", (m) => {
			if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
		});
		await page.goto(`${url}?workers=3`);
		type Demo = {
			frames: number;
			samples: number;
			allocs: number;
			badBytes: number;
			killed: number[];
			errors: string[];
			status: string;
			poisoned: boolean;
			stats: { purges: number; trims: number; lazyAreas: number };
		};
		const demo = () =>
			page.evaluate(() => {
				const d = (globalThis as unknown as { __demo: Demo }).__demo;
				return { ...d, stats: { purges: d.stats.purges, trims: d.stats.trims, lazyAreas: d.stats.lazyAreas }, timeline: undefined };
			}) as Promise<Demo>;
		const until = (what: string, ok: (d: Demo) => boolean) => waitFor(page, what, ok, demo);
		await until("3 frames drawn and 1000 allocations made", (d) => d.frames >= 3 && d.allocs > 1000);
		const firstMap = await page.innerHTML("#map");
		assert.match(firstMap, /<svg[^>]*data-px-bytes/, "the map is an SVG from mapSvg()");
		assert.match(await page.innerHTML("#timeline"), /Lazy backlog/, "the timeline is drawn");

		// vfree storm: purges follow (drains or priority purges); purge and trim() report.
		const before = await demo();
		await page.click("#storm");
		await until("a purge after the storm", (d) => d.stats.purges > before.stats.purges && d.frames >= before.frames + 2);
		await page.click("#purge");
		assert.match((await demo()).status, /^purge: \d+ lazy areas/);
		await page.click("#trim");
		assert.match((await demo()).status, /^trim\(\): \d+ pooled areas/);
		await until("trim() counted in stats()", (d) => d.stats.trims >= 1);

		// Kill a worker: the page says what the others see, and they go on allocating.
		await page.click("#kill");
		assert.match((await demo()).status, /^worker 2 \(handle \d+\) terminated; its thread may finish its current task/);
		// The page calls exited() only once Chromium has surely stopped the worker (up to 2 s after terminate()).
		await until("the page told the heap the worker ended", (d) => !/terminated;/.test(d.status));
		const killed = await demo();
		assert.deepEqual(killed.killed, [2], "the last worker was killed");
		// Whatever it was changing under a lock is undone (buffer/journal.ts): the others go on.
		assert.match(killed.status, /^worker 2 \(handle \d+\) killed mid-run: what it was changing under a lock, if anything, was undone/);
		assert.equal(killed.poisoned, false);
		assert.equal(await page.locator("#workers tr.dead").count(), 1, "the killed worker's row is struck through");
		if (killed.poisoned) {
			const errs = page.locator("#workers tbody tr:not(.dead) td.err");
			await waitFor(
				page,
				"both other workers report EOWNERDEAD",
				(t: string[]) => t.length === 2 && t.every((e) => e.startsWith("EOWNERDEAD")),
				() => errs.allTextContents(),
			);
			console.log("# demo: the worker was killed holding a lock; the others saw EOWNERDEAD");
		} else {
			await until(
				"the others allocate on after the kill, and 2 more frames",
				(d) => d.allocs > killed.allocs + 1000 && d.frames >= killed.frames + 2,
			);
		}
		const end = await demo();
		assert.equal(end.badBytes, 0, "no worker found another's bytes in its areas");
		assert.deepEqual(end.errors, []);
		assert.notEqual(await page.innerHTML("#map"), firstMap, "the picture changed");

		// The screenshot's pixels: the map is not blank, and its legend is there (drawn once more,
		// then held still, so that the boxes measured are the ones in the picture).
		const frames = (await demo()).frames;
		if (!killed.poisoned) await until("one more frame", (d) => d.frames > frames); // a poisoned space keeps its last map
		// The legend names the tags of the areas in the picture: a surviving worker may hold none at
		// the instant a frame is drawn (it frees all it holds in turns), so up to five frames are
		// looked at, each held still, until one shows two workers' tags.
		const picture = async () => {
			await page.click("#pause");
			const shot = decodePng(await page.screenshot({ fullPage: true }));
			const map = (await page.locator("#map svg").boundingBox())!;
			const totals = (await page.locator("#map-totals").boundingBox())!;
			const plot = { x: map.x + 150, y: map.y + 84, width: map.width - 170, height: totals.y - map.y - 180 };
			const share = 1 - countColour(shot, plot, "#ffffff", 6) / (plot.width * plot.height);
			const legend = { x: map.x, y: totals.y - 90, width: map.width, height: 90 };
			const swatches = {
				blue: countColour(shot, legend, "#0072b2"),
				orange: countColour(shot, legend, "#e69f00"),
				purple: countColour(shot, legend, "#cc79a7"),
				ink: countColour(shot, { ...totals, x: totals.x, width: totals.width }, "#222222", 60),
			};
			return { share, swatches };
		};
		const tagged = (w: { blue: number; orange: number; purple: number }) => [w.blue, w.orange, w.purple].filter((n) => n > 100).length;
		let { share, swatches } = await picture();
		for (let tries = 1; tries < 5 && !killed.poisoned && tagged(swatches) < 2; tries++) {
			const frames = (await demo()).frames;
			await page.click("#pause"); // resume pictures
			await until("one more frame", (d) => d.frames > frames);
			({ share, swatches } = await picture());
		}
		console.log(
			`# demo: ${end.frames} frames, ${end.samples} samples, ${end.allocs} allocations, ${end.stats.purges} purges; map ${Math.round(share * 100)}% painted; legend swatch pixels ${JSON.stringify(swatches)}`,
		);
		assert.ok(share > 0.05, `the map is ${Math.round(share * 100)}% painted: blank`);
		// Two workers' tags in the legend, in the colours their tags had from the first picture (tagColours).
		assert.ok(tagged(swatches) >= 2, `legend swatches missing: ${JSON.stringify(swatches)}`);
		assert.ok(swatches.ink > 100, "the legend's totals line is not drawn");
		assert.deepEqual(problems, [], "console errors or page errors");
	} finally {
		await browser.close();
		server.close();
	}
});

/** Poll `read()` until `ok`, or fail after 30 s saying what did not happen and what was seen. */
async function waitFor<T>(page: Page, what: string, ok: (d: T) => boolean, read: () => Promise<T>): Promise<void> {
	const deadline = Date.now() + 30_000;
	for (;;) {
		const d = await read();
		if (ok(d)) return;
		if (Date.now() > deadline) assert.fail(`waited 30 s for ${what}; the page shows ${JSON.stringify(d)}`);
		await page.waitForTimeout(100);
	}
}
