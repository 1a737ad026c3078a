/**
 * `vmalloc viz FILE`: a dump() JSON file drawn as the map of its space, or a timeline JSON file
 * (what `--viz` runs write beside their pictures) drawn as the timeline.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parseWithFile, usageError, wholeNumber } from "./args.ts";
import { mapSvg, type MapOptions } from "../viz/map.ts";
import { Timeline } from "../viz/timeline.ts";
import { timelineSvg } from "../viz/timeline-svg.ts";

interface VizParams {
	file: string;
	out: string | undefined;
	map: MapOptions;
	width: number | undefined;
	title: string | undefined;
}

/** Draw `p.file`; returns the SVG's path. Errors (not JSON, neither kind) name the file. */
function viz(p: VizParams): string {
	let text: string;
	try {
		text = readFileSync(p.file, "utf8");
	} catch (e) {
		throw new Error(`${p.file}: cannot read it (${(e as Error).message})`);
	}
	let data: unknown;
	try {
		data = JSON.parse(text);
	} catch (e) {
		throw new Error(`${p.file}: not a JSON file (${(e as Error).message})`);
	}
	const out = p.out ?? `${p.file.replace(/\.json$/i, "")}.svg`;
	const isMap = typeof data === "object" && data !== null && "areas" in data;
	const isTimeline = typeof data === "object" && data !== null && "lazyPages" in data;
	if (!isMap && !isTimeline)
		throw new Error(
			`${p.file}: neither a dump (VmapSpace.dump(): { start, end, stats, areas, free, blocks }) nor a timeline (Timeline's toJSON(): { t, lazyPages, ... })`,
		);
	const title = p.title === undefined ? {} : { title: p.title };
	const svg = isMap
		? mapSvg(data as Parameters<typeof mapSvg>[0], { ...p.map, ...(p.width !== undefined && { width: p.width }), ...title })
		: timelineSvg(Timeline.fromJSON(data as Parameters<typeof Timeline.fromJSON>[0]), {
				...(p.width !== undefined && { width: p.width }),
				...title,
			});
	writeFileSync(out, svg);
	return out;
}

const VIZ_HELP = `vmalloc viz FILE: draw a dump or a timeline as SVG

FILE is JSON: what VmapSpace.dump() returns (or VmapHeap's space.dump()), drawn as the map of
the space: rows of address bands, busy areas coloured by tag, lazy areas hatched, pooled ones
dotted, small-area blocks gridded with their owner's handle id, free space blank, the largest
free block outlined, a legend with the bytes of each state. Or a timeline.json that vmalloc test
--viz, npm run bench -- --viz and vmalloc replay write, drawn as the timeline.

Options:
  -o, --out FILE   the SVG to write; default FILE with .json replaced by .svg
  --rows N         address bands of the map; default 32
  --width N        width in pixels; default 960 (map), 900 (timeline)
  --from ADDR      first address the map shows (decimal or 0x hex); default the space's start
  --to ADDR        end of the range the map shows; default the space's end
  --title TEXT     the title; default says what is shown
  -h, --help       this text
`;

/** `vmalloc viz` from its arguments; exits 2 on a bad one. */
export function vizCommand(argv: string[]): number {
	const { values: v, file } = parseWithFile(
		"viz",
		argv,
		{
			out: { type: "string", short: "o" },
			rows: { type: "string" },
			width: { type: "string" },
			from: { type: "string" },
			to: { type: "string" },
			title: { type: "string" },
			help: { type: "boolean", short: "h" },
		},
		"FILE",
	);
	if (v.help) {
		process.stdout.write(VIZ_HELP);
		return 0;
	}
	if (file === undefined) usageError("viz", "needs FILE: a dump() JSON file or a timeline.json (see vmalloc viz --help)");
	const n = (name: string, value: string | undefined, min: number, max: number) => wholeNumber("viz", name, value, min, max);
	const map = { rows: n("rows", v.rows, 1, 4096), from: n("from", v.from, 0, 2 ** 53), to: n("to", v.to, 1, 2 ** 53) };
	const out = viz({
		file,
		out: v.out,
		map: Object.fromEntries(Object.entries(map).filter(([, x]) => x !== undefined)),
		width: n("width", v.width, 200, 20_000),
		title: v.title,
	});
	process.stderr.write(`vmalloc viz: wrote ${out}\n`);
	return 0;
}
