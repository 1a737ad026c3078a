/**
 * npm run lint's own checks (scripts/check-imports.mjs, scripts/check-size.mjs) on small trees
 * made for the purpose: each finds what it is there to find, and passes a clean tree.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const SCRIPTS = fileURLToPath(new URL("../../scripts/", import.meta.url));

/** Run `script` with `args` in a fresh folder holding `files`; its status and output. */
function runIn(files: Record<string, string>, script: string, ...args: string[]): { status: number | null; out: string } {
	const dir = mkdtempSync(join(tmpdir(), "vmap-lint-"));
	try {
		for (const [path, text] of Object.entries(files)) {
			mkdirSync(dirname(join(dir, path)), { recursive: true });
			writeFileSync(join(dir, path), text);
		}
		const r = spawnSync(process.execPath, [join(SCRIPTS, script), ...args], { cwd: dir, encoding: "utf8" });
		return { status: r.status, out: r.stdout + r.stderr };
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
}

test("check-imports: a cycle (type imports included), an import into a higher layer, an unknown layer and a file outside src/", () => {
	const clean = {
		"src/api/a.ts": "export const A = 1;\n",
		"src/buffer/b.ts": 'import { A } from "../api/a.ts";\nexport const B = A;\n',
		"src/index.ts": 'export { B } from "./buffer/b.ts";\n',
	};
	assert.equal(runIn(clean, "check-imports.mjs", "src").status, 0);
	const cycle = runIn(
		{
			...clean,
			"src/api/a.ts": 'import type { C } from "./c.ts";\nexport const A = 1;\n',
			"src/api/c.ts": 'import { A } from "./a.ts";\nexport type C = typeof A;\n',
		},
		"check-imports.mjs",
		"src",
	);
	assert.equal(cycle.status, 1);
	assert.match(cycle.out, /import cycle: src\/api\/a\.ts, src\/api\/c\.ts/);
	const upward = runIn(
		{ ...clean, "src/api/a.ts": 'import { B } from "../buffer/b.ts";\nexport const A = B;\n' },
		"check-imports.mjs",
		"src",
	);
	assert.match(upward.out, /src\/api\/a\.ts imports src\/buffer\/b\.ts: layer buffer is above api/);
	const unknown = runIn({ ...clean, "src/misc/m.ts": "export const M = 1;\n" }, "check-imports.mjs", "src");
	assert.match(unknown.out, /src\/misc is no layer/);
	const outside = runIn(
		{
			...clean,
			"bench/x.ts": "export const X = 1;\n",
			"src/cli/c.ts": 'const u = new URL("../../bench/x.ts", import.meta.url);\nexport { u };\n',
		},
		"check-imports.mjs",
		"src",
		"bench",
	);
	assert.match(outside.out, /src\/cli\/c\.ts loads bench\/x\.ts, which the package does not ship/);
	const shipped = runIn(
		{
			...clean,
			"package.json": JSON.stringify({ files: ["dist", "examples"] }),
			"examples/x.c": "int main(void) { return 0; }\n",
			"src/cli/c.ts": 'const u = new URL("../../examples/x.c", import.meta.url);\nexport { u };\n',
		},
		"check-imports.mjs",
		"src",
	);
	assert.equal(shipped.status, 0, `a file in package.json's files may be loaded: ${shipped.out}`);
});

test("check-size: a file in src/ over 400 lines and a function over 80, nested ones on their own", () => {
	const body = (n: number) => Array.from({ length: n }, (_, i) => `\tconst v${i} = ${i};`).join("\n");
	assert.equal(runIn({ "src/a.ts": `export function f() {\n${body(70)}\n}\n` }, "check-size.mjs", "src").status, 0);
	const long = runIn({ "src/a.ts": `export function f() {\n${body(80)}\n}\n` }, "check-size.mjs", "src");
	assert.equal(long.status, 1);
	assert.match(long.out, /src\/a\.ts:1: f is 82 lines/);
	const nested = runIn(
		{ "bench/a.ts": `export function f() {\n\tconst g = () => {\n${body(80)}\n\t};\n\treturn g;\n}\n` },
		"check-size.mjs",
		"bench",
	);
	assert.match(nested.out, /g is 82 lines/);
	const big = runIn({ "src/a.ts": `${"// x\n".repeat(401)}` }, "check-size.mjs", "src");
	assert.match(big.out, /src\/a\.ts: 401 lines/);
});
