/**
 * The viz layer (src/viz/): pictures as SVG text, from a dump() or a Timeline, with no Node
 * import: the map (this file and map-*.ts), the timeline (timeline.ts, timeline-svg.ts) and
 * their shared formatting (format.ts). It may import core/ (option checks) and api/.
 *
 * mapSvg(): a picture of an address space from its dump(), as rows of address bands.
 *
 * Every busy area is coloured by its tag (the five largest tags get a colour each, the rest
 * share one), lazy areas are hatched, pooled ones dotted, small-area blocks gridded with their
 * owning handle's id, free space is left blank and the largest free block is outlined. An area
 * at least BIG_PX pixels wide is drawn alone at its exact width; narrower ones are aggregated
 * per pixel into a stacked bar, each state as tall as its share of the pixel's bytes, so a
 * million areas draw in O(areas + pixels) time into a bounded number of rectangles.
 *
 * The steps, a file each: the input checked (map-input.ts), the ranges put in categories
 * (map-categories.ts), painted into the raster (map-raster.ts), and framed with axes and a
 * legend (map-render.ts).
 */
import type { DumpSmallBlock, VmapDump } from "../api/types.ts";
import { hex } from "../api/errors.ts";
import { bytes, count } from "./format.ts";
import { Categories, sweep } from "./map-categories.ts";
import { type MapOptions, mapOptions, parseDump } from "./map-input.ts";
import { blockLabel, type Geometry, Raster } from "./map-raster.ts";
import { axes, head, legend, outline } from "./map-render.ts";

export type { MapOptions } from "./map-input.ts";

/** Draw `dump` (a dump() object or its JSON text) as an SVG document. */
export function mapSvg(dump: VmapDump | string, options: MapOptions = {}): string {
	const d = parseDump(dump);
	const o = mapOptions(d, options);
	const span = o.to - o.from;
	const pageSize = d.stats.pageSize;
	const rowBytes = Math.max(pageSize, Math.ceil(span / o.rows / pageSize) * pageSize);
	const g: Geometry = { from: o.from, to: o.to, width: o.width, rows: Math.ceil(span / rowBytes), rowBytes, pxBytes: rowBytes / o.width };

	const blockAt = new Map<number, DumpSmallBlock>(d.blocks.map((b) => [b.start, b]));
	const cats = new Categories(d, blockAt, o.idPrefix, o.tagColours);
	const raster = new Raster(
		g,
		cats.list.map((c) => c.fill),
		cats.block,
	);
	const labels: string[] = [];
	const totals = sweep(
		d,
		cats,
		blockAt,
		(start, end, c, title) => raster.paint(start, end, c, title),
		(b) => labels.push(...blockLabel(g, b.start, b.end, b.owner)),
	);
	const bars = raster.stackedBars();
	const { lines, height } = legend(g, cats, totals, { pixels: raster.aggregatedPixels(), cell: bars.cell }, o.idPrefix);
	const areas = totals.busyAreas + cats.list[cats.lazy]!.areas;
	const title = o.title ?? `vmap address space [${hex(o.from)}, ${hex(o.to)}): ${bytes(span)}, ${count(areas)} areas`;
	const body = [...axes(g), ...bars.rects, ...raster.big, ...labels, ...outline(g, totals), ...lines];
	return [...head(g, title, height, o.idPrefix), ...body, "</svg>", ""].join("\n");
}
