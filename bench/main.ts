/** `npm run bench -- [options]`: the bench's arguments and help; run from a clone (the peers are devDependencies). */
import { parseOptions, usageError, wholeNumber } from "../src/cli/args.ts";
import { LINEAR_OPS, OPS, SCALE } from "./cases.ts";
import { PEERS } from "./peers.ts";
import { bench } from "./run.ts";

const HELP = `vmalloc bench: vmap side by side with the JavaScript allocators, in one run

Every case runs alone in a fresh child process, one after another, on the same workloads and
the same xorshift32 seed, and the report gives ratios to vmap VmapSpace:
  W0       ${OPS.toLocaleString("en-US")} alloc+free pairs of 64 B (number-allocator: one ID; vmap with lazyMaxPages
           1 MiB, so that its frees purge)
  scale    random sizes 1..4096 B at ${SCALE.map((n) => n.toLocaleString("en-US")).join(" / ")} live, ${OPS.toLocaleString("en-US")} operations each
           (10,000 live is W1); fragmentation = peak address span / peak live bytes
  workers  1 and 2 worker_threads sharing one allocator, and 2 on private spaces (vmap with
           its small-area cache on; then off, with 1 and 2 nodes; shared-memory-objects'
           locked MemoryBuffer)
  lookups  vmap at 1,000,000 lazy areas: find/free/resize of lazy, free and unknown addresses;
           another worker's worst alloc+free gap while vmallocinfo/dump/check run
  batching vmap's lazy free against a purge after every free, the flush costing 20 us
O(n) peers run ${LINEAR_OPS.toLocaleString("en-US")} operations per scale point and stop at --time-limit; the report
marks their cells. Every run reports failed allocations and overlapping ranges; a peer that
throws, dies or overruns is reported as broken with its error, and its later cases skipped.
Exit status 1 only if vmap itself broke or overlapped.

Options:
  --svg FILE        also write a chart of ops/s against live count (log scales) to FILE
  --viz DIR         also write, for every vmap run of the scale series, the map of its space
                    after the timed loop and the timeline of the loop (stats() at every clock
                    reading, about once a millisecond): DIR/scale-<live>-<peer>.map.svg and
                    .timeline.svg
  --json            print one JSON document (every run's figures) instead of markdown
  --only TEXT       run only the cases whose name starts with TEXT; repeat or separate with
                    commas (e.g. --only W0 --only "scale 10000 "); see --list
  --list            print the case names and exit
  --seed N          xorshift32 seed for every workload; default 1
  --time-limit S    seconds an O(n) peer's timed loop may run; default 5
  --quick           a tenth of the operations and live counts up to 10k: proves the bench
                    runs in about a minute; its figures are not for quoting
  -h, --help        this text

Allocators:
${PEERS.map((p) => `  ${p.id.padEnd(17)} ${p.name}${p.linear ? " (O(n))" : ""}\n${" ".repeat(20)}${p.note}`).join("\n")}
`;

async function main(argv: string[]): Promise<number> {
	const v = parseOptions("bench", argv, {
		svg: { type: "string" },
		viz: { type: "string" },
		json: { type: "boolean" },
		only: { type: "string", multiple: true },
		list: { type: "boolean" },
		seed: { type: "string" },
		"time-limit": { type: "string" },
		quick: { type: "boolean" },
		help: { type: "boolean", short: "h" },
	});
	if (v.help) {
		process.stdout.write(HELP);
		return 0;
	}
	if (v.svg === "") usageError("bench", "--svg needs a file name");
	if (v.viz === "") usageError("bench", "--viz needs a folder");
	return bench({
		svg: v.svg,
		json: v.json ?? false,
		only: (v.only ?? []).flatMap((s) => s.split(",")).filter((s) => s !== ""),
		list: v.list ?? false,
		seed: wholeNumber("bench", "seed", v.seed, 1, 2 ** 32 - 1) ?? 1,
		timeLimit: wholeNumber("bench", "time-limit", v["time-limit"], 1, 3600) ?? 5,
		quick: v.quick ?? false,
		viz: v.viz,
	});
}

process.exitCode = await main(process.argv.slice(2));
