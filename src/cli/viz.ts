/**
 * `vmap viz FILE`: a dump() JSON file drawn as the map of its space, or a timeline JSON file
 * (what `--viz` runs write beside their pictures) drawn as the timeline.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { mapSvg, type MapOptions } from "../viz/map.ts";
import { Timeline, timelineSvg } from "../viz/timeline.ts";

export interface VizParams {
	file: string;
	out: string | undefined;
	map: MapOptions;
	width: number | undefined;
	title: string | undefined;
}

/** Draw `p.file`; returns the SVG's path. Errors (not JSON, neither kind) name the file. */
export function viz(p: VizParams): string {
	let data: unknown;
	try {
		data = JSON.parse(readFileSync(p.file, "utf8"));
	} catch (e) {
		throw new Error(`${p.file}: not a JSON file (${(e as Error).message})`);
	}
	const out = p.out ?? `${p.file.replace(/\.json$/i, "")}.svg`;
	const isMap = typeof data === "object" && data !== null && "areas" in data;
	const isTimeline = typeof data === "object" && data !== null && "lazyPages" in data;
	if (!isMap && !isTimeline) throw new Error(`${p.file}: neither a dump (VmapSpace.dump(): { start, end, stats, areas, free, blocks }) nor a timeline (Timeline's toJSON(): { t, lazyPages, ... })`);
	const title = p.title === undefined ? {} : { title: p.title };
	const svg = isMap
		? mapSvg(data as Parameters<typeof mapSvg>[0], { ...p.map, ...(p.width !== undefined && { width: p.width }), ...title })
		: timelineSvg(Timeline.fromJSON(data as Parameters<typeof Timeline.fromJSON>[0]), { ...(p.width !== undefined && { width: p.width }), ...title });
	writeFileSync(out, svg);
	return out;
}
