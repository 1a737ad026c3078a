// The source files npm run lint's checks read: .ts, .mts, .js and .mjs below a folder, no
// declaration files, nothing under node_modules or a dot folder.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

export function sourceFiles(dir) {
	const out = [];
	for (const name of readdirSync(dir)) {
		const path = join(dir, name);
		if (name === "node_modules" || name.startsWith(".")) continue;
		if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
		else if (/\.(ts|mts|js|mjs)$/.test(name) && !name.endsWith(".d.ts")) out.push(path);
	}
	return out;
}
