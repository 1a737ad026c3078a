// npm's prepare step (npm install in a clone, a git or folder dependency, npm pack, npm publish):
// compile src/ to dist/ with the TypeScript of this folder's devDependencies. A folder
// dependency whose devDependencies were never installed gets a message saying what to run,
// or keeps the dist/ it already has.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
let tsc;
try {
	tsc = createRequire(join(root, "package.json")).resolve("typescript/bin/tsc");
} catch {
	if (existsSync(join(root, "dist", "index.js"))) {
		console.error(`vmalloc: TypeScript is not installed in ${root}; keeping the dist/ built before`);
		process.exit(0);
	}
	console.error(
		`vmalloc: cannot build dist/: TypeScript is not installed in ${root}. Run \`npm install\` there first (it builds dist/), then install this folder again.`,
	);
	process.exit(1);
}
execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
