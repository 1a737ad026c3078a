/** What mapSvg() takes: the dump, checked (every range sorted and well formed), and its options. */
import type { DumpArea, DumpFreeBlock, VmapDump } from "../api/types.ts";
import { shown, VmapError } from "../api/errors.ts";
import { isPowerOfTwo, validateOptions } from "../core/options.ts";
import { titleOption, wholeOption } from "./format.ts";

export interface MapOptions {
	/** Width of the address bands, in pixels. @defaultValue 960 */
	width?: number;
	/** Number of address bands. @defaultValue 32 */
	rows?: number;
	/** The range drawn, [from, to): within the space. @defaultValue the whole space */
	from?: number;
	to?: number;
	/** The title above the picture. @defaultValue the range, its size and the number of areas */
	title?: string;
	/** Prefix of the ids of the SVG's patterns, for several pictures in one HTML page. @defaultValue "vmap-" */
	idPrefix?: string;
	/**
	 * The colour each tag was given, which mapSvg() reads and fills: pass the same Map to every
	 * redraw of a page, and a tag keeps its colour for the page's life (else each picture gives
	 * the largest tags the colours in order). @defaultValue a new Map
	 */
	tagColours?: Map<string, string>;
}

/** MapOptions with every default applied. */
export type MapParams = Required<Omit<MapOptions, "title">> & { title: string | undefined };

const MAP_KEYS = ["width", "rows", "from", "to", "title", "idPrefix", "tagColours"];

/** `dump` (a dump() object or its JSON text), checked: EINVAL naming what is wrong. */
export function parseDump(dump: VmapDump | string): VmapDump {
	let d: unknown = dump;
	if (typeof dump === "string") {
		try {
			d = JSON.parse(dump);
		} catch (e) {
			throw new VmapError("EINVAL", `Cannot draw a map: dump is not JSON (${(e as Error).message})`);
		}
	}
	const x = d as Partial<VmapDump> | null;
	const ok =
		typeof x === "object" &&
		x !== null &&
		Number.isSafeInteger(x.start) &&
		Number.isSafeInteger(x.end) &&
		x.start! < x.end! &&
		typeof x.stats === "object" &&
		x.stats !== null &&
		isPowerOfTwo(x.stats.pageSize) &&
		Array.isArray(x.areas) &&
		Array.isArray(x.free) &&
		Array.isArray(x.blocks);
	if (!ok)
		throw new VmapError(
			"EINVAL",
			`Cannot draw a map: dump must be what VmapSpace.dump() returns ({ start, end, stats with a power-of-two pageSize, areas, free, blocks }), got ${shown(d)}`,
		);
	validateSorted(x.areas!, "areas");
	validateSorted(x.free!, "free");
	return x as VmapDump;
}

function validateSorted(list: Array<DumpArea | DumpFreeBlock>, name: string): void {
	let last = -Infinity;
	for (const a of list) {
		if (
			!(
				typeof a === "object" &&
				a !== null &&
				Number.isSafeInteger(a.start) &&
				Number.isSafeInteger(a.end) &&
				a.start < a.end &&
				a.start > last
			)
		) {
			throw new VmapError(
				"EINVAL",
				`Cannot draw a map: dump.${name} must list ranges { start, end } with start < end, in rising order, got ${shown(a)} after start ${last}`,
			);
		}
		last = a.start;
	}
}

const CANNOT = "Cannot draw a map";

/** The options of a map of `d`, checked, with their defaults. */
export function mapOptions(d: VmapDump, options: MapOptions): MapParams {
	validateOptions(options, MAP_KEYS, CANNOT);
	const width = wholeOption(CANNOT, "width", options.width, 100, 20_000, 960);
	const rows = wholeOption(CANNOT, "rows", options.rows, 1, 4096, 32);
	const from = wholeOption(CANNOT, "from", options.from, d.start, d.end - 1, d.start);
	const to = wholeOption(CANNOT, "to", options.to, from + 1, d.end, d.end);
	const title = titleOption(CANNOT, options.title);
	const idPrefix = options.idPrefix ?? "vmap-";
	if (typeof idPrefix !== "string" || !/^[A-Za-z][\w-]*$/.test(idPrefix))
		throw new VmapError(
			"EINVAL",
			`${CANNOT}: idPrefix must be letters, digits, _ or -, starting with a letter, got ${shown(idPrefix)}`,
		);
	const tagColours = options.tagColours ?? new Map<string, string>();
	if (!(tagColours instanceof Map))
		throw new VmapError("EINVAL", `${CANNOT}: tagColours must be a Map from tag to colour, got ${shown(tagColours)}`);
	return { width, rows, from, to, title, idPrefix, tagColours };
}
