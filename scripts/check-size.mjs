// npm run lint's size check: no file in src/ over MAX_FILE lines and no function (declaration,
// method, arrow or expression, nested ones each on their own) over MAX_FUNCTION lines in the
// folders named. Lines are counted from the function's first line to its last, comments included.
// Usage: node scripts/check-size.mjs src bench test harness
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { sourceFiles } from "./source-files.mjs";
import ts from "typescript";

const MAX_FILE = 400;
const MAX_FUNCTION = 80;

function nameOf(node, sf) {
	if (node.name) return node.name.getText(sf);
	if (ts.isConstructorDeclaration(node)) return "constructor";
	const parent = node.parent;
	if (parent && ts.isVariableDeclaration(parent)) return parent.name.getText(sf);
	if (parent && ts.isPropertyAssignment(parent)) return parent.name.getText(sf);
	if (parent && ts.isPropertyDeclaration(parent)) return parent.name.getText(sf);
	return "(anonymous)";
}

const problems = [];
for (const root of process.argv.slice(2)) {
	for (const file of sourceFiles(root)) {
		const text = readFileSync(file, "utf8");
		const lines = text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
		const where = relative(".", file);
		if (where.startsWith("src/") && lines > MAX_FILE) problems.push(`${where}: ${lines} lines (at most ${MAX_FILE} in src/)`);
		const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
		const visit = (node) => {
			if (ts.isFunctionLike(node) && "body" in node && node.body) {
				const first = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
				const last = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
				const n = last - first + 1;
				if (n > MAX_FUNCTION) problems.push(`${where}:${first + 1}: ${nameOf(node, sf)} is ${n} lines (at most ${MAX_FUNCTION})`);
			}
			ts.forEachChild(node, visit);
		};
		visit(sf);
	}
}
for (const p of problems) console.error(p);
if (problems.length > 0) process.exit(1);
console.log(`check-size: files in src/ within ${MAX_FILE} lines, functions within ${MAX_FUNCTION}`);
