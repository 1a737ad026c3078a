/**
 * README works when pasted: every ```js block is run as an .mjs file in a fresh project whose
 * node_modules/vmap is this working tree's src/ compiled now, and must exit 0; where a line is
 * `console.log(...); // text`, the line it prints must be `text`. A block of any language other
 * than js or sh (commands, not run) fails the test, so no example can dodge it.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const BLOCKS = [...README.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({
	lang: m[1]!,
	code: m[2]!,
	line: README.slice(0, m.index).split("\n").length,
}));

let app = "";
before(() => {
	app = mkdtempSync(join(tmpdir(), "vmap-readme-"));
	const pkg = join(app, "node_modules", "vmalloc");
	mkdirSync(pkg, { recursive: true });
	copyFileSync(join(ROOT, "package.json"), join(pkg, "package.json"));
	execFileSync(process.execPath, [
		join(ROOT, "node_modules/typescript/bin/tsc"),
		"-p",
		join(ROOT, "tsconfig.build.json"),
		"--outDir",
		join(pkg, "dist"),
	]);
	writeFileSync(join(app, "package.json"), JSON.stringify({ name: "readme", private: true, type: "module" }));
});
after(() => rmSync(app, { recursive: true, force: true }));

test("README: its code blocks are js (run below) or sh (commands), and there are some of each", () => {
	for (const b of BLOCKS)
		assert.ok(b.lang === "js" || b.lang === "sh", `README.md:${b.line}: a \`\`\`${b.lang} block; write js (it is run) or sh`);
	assert.ok(BLOCKS.filter((b) => b.lang === "js").length >= 3, "the three quick starts");
	assert.match(
		BLOCKS[0]!.code,
		/^npm ci --no-audit --no-fund && npm run vmalloc -- test --mode smoke .*\nnpm ci --no-audit --no-fund && npm test /,
		"README's first code block is the two commands",
	);
	assert.match(
		README,
		/^# \S.*\n\n(?:[^\n]+\n)+\n```sh\nnpm ci/,
		"the two commands stand right under the title and its one-paragraph summary",
	);
});

for (const [i, b] of BLOCKS.entries()) {
	if (b.lang !== "js") continue;
	const title =
		README.slice(0, README.indexOf(b.code))
			.match(/^## (.*)$/gm)
			?.at(-1)
			?.slice(3) ?? "the introduction";
	test(`README, block at line ${b.line} (${title}): runs, and prints what its comments say`, { timeout: 120_000 }, async () => {
		const file = join(app, `block-${i}.mjs`);
		writeFileSync(file, b.code);
		const { stdout } = await promisify(execFile)(process.execPath, [file], { cwd: app, timeout: 110_000 });
		const printed = stdout.split("\n");
		const logs = b.code.split("\n").filter((l) => /^\s*console\.log\(/.test(l));
		logs.forEach((l, k) => {
			const said = l.match(/\/\/ (.*)$/)?.[1];
			if (said !== undefined) assert.equal(printed[k], said, `README.md:${b.line}: ${l.trim()}`);
		});
	});
}

test("README is for a newcomer: within 250 lines, a table against the alternatives, every kernel word it uses explained", () => {
	const lines = README.split("\n").length;
	assert.ok(lines <= 250, `README.md has ${lines} lines; the details belong in docs/guide.md`);
	const when = README.slice(README.indexOf("## When to use it"));
	for (const peer of ["@thi.ng/malloc", "shared-memory-objects", "a plain free list", "WebAssembly's malloc"])
		assert.ok(
			when.split("\n").some((l) => l.startsWith("| |") && l.includes(peer)),
			`the alternatives table has a column for ${peer}`,
		);
	const glossary = README.slice(README.indexOf("The kernel's words"));
	for (const word of ["TLB flush", "GFP_NOWAIT", "kvfree_rcu", "vmap_block", "vm_map_ram", "quiescent point", "grace period", "shrinker"])
		assert.match(glossary, new RegExp(`^\\|[^\\n]*${word}`, "m"), `the glossary explains ${word}`);
});
