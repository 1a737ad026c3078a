// `npm run demo`: serve the live page from 127.0.0.1 with the cross-origin isolation headers
// that SharedArrayBuffer needs (COOP same-origin, COEP require-corp). The page imports the
// compiled library from /dist/; dist/ is (re)built with the repository's TypeScript when it is
// missing or older than src/.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import type { Server } from "node:http";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = fileURLToPath(new URL("..", import.meta.url));
const TYPES: Record<string, string> = {
	".js": "text/javascript",
	".mjs": "text/javascript",
	".html": "text/html; charset=utf-8",
	".css": "text/css",
	".svg": "image/svg+xml",
	".map": "application/json",
};

/** Newest modification time of the files under `dir`. */
function newest(dir: string): number {
	let t = 0;
	for (const e of readdirSync(dir, { withFileTypes: true })) {
		const p = join(dir, e.name);
		t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
	}
	return t;
}

/** dist/ of the repository, built first when missing or older than src/. */
export function ensureDist(): string {
	const dist = join(root, "dist");
	const index = join(dist, "index.js");
	if (!existsSync(index) || statSync(index).mtimeMs < newest(join(root, "src"))) {
		process.stderr.write("vmap demo: building dist/ (tsc -p tsconfig.build.json) ...\n");
		const tsc = createRequire(join(root, "package.json")).resolve("typescript/bin/tsc");
		execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
	}
	return dist;
}

/**
 * Serve /demo/* from the repository's demo/ and /dist/* from `dist`, on 127.0.0.1:`port` (0:
 * any free port). Resolves to the listening server and its URL.
 */
export function serveDemo({
	port = 8080,
	dist = join(root, "dist"),
}: {
	port?: number;
	dist?: string;
} = {}): Promise<{ server: Server; url: string }> {
	const server = createServer((req, res) => {
		try {
			// decodeURIComponent throws on a malformed escape: that request is a 404 too.
			const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname));
			const file =
				path === "/" || path === "/index.html"
					? join(root, "demo", "index.html")
					: path.startsWith("/demo/")
						? join(root, path)
						: path.startsWith("/dist/")
							? join(dist, path.slice(6))
							: null;
			// Only files under demo/ and dist/: a path with .. that normalizes elsewhere is refused.
			if (file === null || !(file.startsWith(join(root, "demo") + sep) || file.startsWith(dist + sep))) throw new Error("not served");
			const body = readFileSync(file);
			res.writeHead(200, {
				"Content-Type": TYPES[extname(file)] ?? "application/octet-stream",
				"Cross-Origin-Opener-Policy": "same-origin",
				"Cross-Origin-Embedder-Policy": "require-corp",
				"Cache-Control": "no-store",
			});
			res.end(body);
		} catch {
			res.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
		}
	});
	return new Promise((resolve, reject) => {
		server.once("error", reject);
		server.listen(port, "127.0.0.1", () =>
			resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/` }),
		);
	});
}

if (process.argv[1] && fileURLToPath(import.meta.url) === normalize(process.argv[1])) {
	const { values } = parseArgs({ options: { port: { type: "string" }, help: { type: "boolean", short: "h" } } });
	if (values.help) {
		process.stdout.write("npm run demo [-- --port N]: serve the live page at http://127.0.0.1:N/ (default 8080; 0: any free port)\n");
		process.exit(0);
	}
	const port = values.port === undefined ? 8080 : Number(values.port);
	if (!Number.isInteger(port) || port < 0 || port > 65535) {
		process.stderr.write(`vmap demo: --port must be a whole number from 0 to 65535, got ${JSON.stringify(values.port)}\n`);
		process.exit(2);
	}
	const dist = ensureDist();
	try {
		const { url } = await serveDemo({ port, dist });
		process.stdout.write(`vmap demo: open ${url} in a browser (Ctrl-C stops the server)\n`);
	} catch (err) {
		const e = err as NodeJS.ErrnoException;
		const why = e.code === "EADDRINUSE" ? `port ${port} is in use; pick another: npm run demo -- --port ${port + 1}` : e.message;
		process.stderr.write(`vmap demo: ${why}\n`);
		process.exit(1);
	}
}
