/**
 * One bench case in a fresh process: `node --import tsx bench/child.ts '<case spec JSON>'`.
 * Prints one JSON line: the case's figures (peak RSS as its timed part ended), or `{ "error": ... }` with exit 1
 * when the allocator threw, so the driver reports the peer as broken with its own words.
 */
import { runCase, type Spec } from "./cases.ts";

const spec = JSON.parse(process.argv[2]!) as Spec;
try {
	const result = await runCase(spec);
	console.log(JSON.stringify(result));
} catch (e) {
	const err = e instanceof Error ? e : new Error(String(e));
	// The first stack frame says where the peer broke.
	const at =
		err.stack
			?.split("\n")
			.find((l) => l.trimStart().startsWith("at "))
			?.trim() ?? "";
	console.log(JSON.stringify({ error: `${err.name}: ${err.message}`, at }));
	process.exitCode = 1;
}
