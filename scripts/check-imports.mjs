// npm run lint's import check. Fails on:
// - an import cycle (type imports included) among the files of the folders named;
// - an import from one of src/'s layer folders into a layer above it, in the order LAYERS
//   gives (lowest first), or a folder LAYERS does not name;
// - a file in src/ that imports a file outside src/, or loads by `new URL(...)` a file the
//   package does not ship (src/ compiled into dist/, and package.json's "files").
// Usage: node scripts/check-imports.mjs src bench test [--graph]
import { readFileSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { sourceFiles } from "./source-files.mjs";

const IMPORT = /(?:^|[^.\w])(?:import|export)\s*(?:type\s+)?(?:[\w*{}\s,$]*?\s*from\s*)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

const URL_REF = /new\s+URL\(\s*["'`](\.[^"'`]+)["'`]\s*,\s*import\.meta\.url/g;

function code(path) {
	return readFileSync(path, "utf8")
		.replace(/\/\*[\s\S]*?\*\//g, "")
		.replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

/** The relative imports of one file, resolved to paths; comments are stripped first. */
function importsOf(path) {
	const out = [];
	for (const m of code(path).matchAll(IMPORT)) {
		const spec = m[1] ?? m[2];
		if (spec?.startsWith(".")) out.push(resolve(dirname(path), spec));
	}
	return out;
}

/** The files one file loads by `new URL("./x", import.meta.url)` (workers, entries). */
function urlsOf(path) {
	return [...code(path).matchAll(URL_REF)].map((m) => resolve(dirname(path), m[1]));
}

/** Strongly connected components of more than one file, or a file importing itself (Tarjan). */
function cycles(graph) {
	let next = 0;
	const index = new Map();
	const low = new Map();
	const stack = [];
	const onStack = new Set();
	const found = [];
	const visit = (v) => {
		index.set(v, next);
		low.set(v, next++);
		stack.push(v);
		onStack.add(v);
		for (const w of graph.get(v) ?? []) {
			if (!graph.has(w)) continue;
			if (!index.has(w)) {
				visit(w);
				low.set(v, Math.min(low.get(v), low.get(w)));
			} else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
		}
		if (low.get(v) !== index.get(v)) return;
		const scc = [];
		let w;
		do {
			w = stack.pop();
			onStack.delete(w);
			scc.push(w);
		} while (w !== v);
		if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(scc);
	};
	for (const v of graph.keys()) if (!index.has(v)) visit(v);
	return found;
}

/** src/'s layers, lowest first: each may import only those before it (and itself). "." is src/index.ts. */
const LAYERS = ["api", "util", "buffer", "tree", "purge", "small", "core", "diag", "space", "heap", "viz", "cli", "."];

const args = process.argv.slice(2);
const roots = args.filter((a) => !a.startsWith("--"));
const graph = new Map();
for (const root of roots) for (const f of sourceFiles(root)) graph.set(resolve(f), importsOf(f));

/** Whether package.json's "files" ship `path` (a file there, or in a folder there). */
const FILES = (() => {
	try {
		return (JSON.parse(readFileSync("package.json", "utf8")).files ?? []).map((f) => resolve(f));
	} catch {
		return []; // no package.json here: nothing ships but src/
	}
})();
const shipped = (path) => FILES.some((f) => path === f || path.startsWith(`${f}/`));

const problems = [];
const src = resolve("src");
const layerOf = (file) => relative(src, dirname(file)).split("/")[0] || ".";
for (const [file, deps] of graph) {
	if (!file.startsWith(`${src}/`)) continue;
	for (const d of [...deps, ...urlsOf(file)]) {
		if (!d.startsWith(`${src}/`) && d !== resolve("package.json") && !(urlsOf(file).includes(d) && shipped(d)))
			problems.push(`${relative(".", file)} loads ${relative(".", d)}, which the package does not ship`);
	}
	const from = LAYERS.indexOf(layerOf(file));
	if (from < 0)
		problems.push(`${relative(".", file)}: its folder src/${layerOf(file)} is no layer of LAYERS (scripts/check-imports.mjs)`);
	for (const d of deps) {
		const to = LAYERS.indexOf(layerOf(d));
		if (d.startsWith(`${src}/`) && to > from)
			problems.push(`${relative(".", file)} imports ${relative(".", d)}: layer ${LAYERS[to]} is above ${LAYERS[from]}`);
	}
}
for (const scc of cycles(graph)) {
	problems.push(
		`import cycle: ${scc
			.map((f) => relative(".", f))
			.sort()
			.join(", ")}`,
	);
}
if (args.includes("--graph")) {
	for (const [file, deps] of graph) for (const d of deps) console.log(`${relative(".", file)} -> ${relative(".", d)}`);
}
for (const p of problems) console.error(p);
if (problems.length > 0) process.exit(1);
console.log(`check-imports: ${graph.size} files in ${roots.join(", ")}, no import cycle`);
