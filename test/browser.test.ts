/**
 * The same space shared by a browser page and two Web Workers, in Debian's headless Chromium
 * driven by playwright-core. The library is compiled with tsc and served from 127.0.0.1 with the
 * cross-origin isolation headers that SharedArrayBuffer needs.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { type Browser, chromium } from "playwright-core";

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

test("browser: a page and two Web Workers share one space; without cross-origin isolation a one-thread space works (headless Chromium)", { timeout: 120_000, skip }, async () => {
	const dist = mkdtempSync(join(tmpdir(), "vmap-dist-"));
	execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json"), "--outDir", dist]);
	const server = createServer((req, res) => {
		const path = normalize(new URL(req.url ?? "/", "http://x").pathname);
		const file = path.startsWith("/dist/") ? join(dist, path.slice(6)) : path.startsWith("/test/browser/") ? join(root, path) : null;
		try {
			if (!file) throw new Error("not served");
			const body = readFileSync(file);
			// plain.html is served without cross-origin isolation: no SharedArrayBuffer there.
			const isolation = path.endsWith("/plain.html") ? {} : { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" };
			res.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream", ...isolation });
			res.end(body);
		} catch {
			res.writeHead(404).end();
		}
	});
	await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
	const port = (server.address() as { port: number }).port;
	const browser = await chromium.launch({
		executablePath: CHROMIUM!,
		args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
	});
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
		console.log(`# browser: main thread ${r.mainAllocs} allocations, workers ${r.workers.map((w) => `#${w.id}: ${w.allocs}`).join(", ")}, ${r.purges} purges, ${r.nodes} nodes (navigator.hardwareConcurrency), ${r.poolHits} pool hits, ${r.pooledBeforeTrim} areas pooled before trim()`);
		assert.equal(r.crossOriginIsolated, true);
		assert.deepEqual(r.violations, []);
		for (const w of r.workers) assert.deepEqual(w.violations, [], `worker ${w.id}`);
		// Ids are unique among open handles; a worker that closed early may give its id to the next.
		assert.ok(r.workers.every((w) => w.id >= 2), `worker ids ${r.workers.map((w) => w.id)}: the page holds id 1`);
		assert.ok(r.workers.every((w) => w.allocs > 1000));
		assert.equal(r.whole, true, "after everything was freed, purged and trimmed, free space is the whole space");

		// Without cross-origin isolation: no SharedArrayBuffer, yet a one-thread space works.
		const p = await resultOf<{ hasSAB: boolean; sharedError: string; whole: boolean; allocs: number }>(browser, `http://127.0.0.1:${port}/test/browser/plain.html`);
		assert.equal(p.hasSAB, false, "the plain page is not cross-origin isolated");
		assert.match(p.sharedError, /^EINVAL: Cannot create a space: SharedArrayBuffer is not available here .*pass shared: false/);
		assert.equal(p.whole, true);
		assert.ok(p.allocs > 3000);
	} finally {
		await browser.close();
		server.close();
		rmSync(dist, { recursive: true, force: true });
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
	await page.waitForFunction(() => (globalThis as unknown as { __result?: unknown }).__result !== undefined, undefined, { timeout: 90_000 });
	const r = (await page.evaluate(() => (globalThis as unknown as { __result: unknown }).__result)) as T & { error?: string };
	assert.equal(r.error, undefined, r.error);
	assert.deepEqual(errors, [], `page errors on ${url}`);
	return r;
}
