/**
 * The pictures: mapSvg() of known spaces (every area at its width, the legend's totals equal to
 * stats()), aggregation at scale, timelineSvg(), their bad inputs. The `vmalloc viz` and `vmap
 * replay` commands: test/tools/viz-cli.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type VmapDump, VmapSpace, type VmapStats } from "../src/index.ts";
import { mapSvg, Timeline, timelineSvg } from "../src/viz.ts";

const P = 4096;

/** The attributes of every <rect data-start=...>: its start (hex) and width. */
function areaRects(svg: string): Array<{ start: number; width: number; fill: string }> {
	return [...svg.matchAll(/<rect data-start="0x([0-9a-f]+)" x="[\d.]+" y="[\d.]+" width="([\d.]+)" height="\d+" fill="([^"]+)"/g)].map(
		(m) => ({ start: Number.parseInt(m[1]!, 16), width: Number(m[2]), fill: m[3]! }),
	);
}

/** The legend's totals, from the data attributes of its totals line. */
function totals(svg: string): Record<string, number> {
	const line = /<text id="vmap-totals"([^>]*)>/.exec(svg);
	assert.ok(line, "the legend has a totals line");
	return Object.fromEntries([...line[1]!.matchAll(/data-([a-z-]+)="(\d+)"/g)].map((m) => [m[1]!, Number(m[2])]));
}

function legendMatchesStats(svg: string, st: VmapStats): void {
	const t = totals(svg);
	assert.deepEqual(
		[
			t["busy-bytes"],
			t["busy-areas"],
			t["lazy-bytes"],
			t["lazy-areas"],
			t["pooled-bytes"],
			t["free-bytes"],
			t["free-blocks"],
			t["largest-free-block"],
		],
		[st.busyBytes, st.busyAreas, st.lazyBytes, st.lazyAreas, st.poolBytes, st.freeBytes, st.freeBlocks, st.largestFreeBlock],
		"legend totals = stats()",
	);
}

test("mapSvg: a known small space, every area at its exact width and colour, the legend's totals equal to stats()", () => {
	// 64 pages in 4 rows of 16 pages, 160 px wide: one page is 10 px.
	const s = VmapSpace.create({ size: 64 * P, nodes: 1, smallMax: 0, lazyMaxPages: 1000 });
	const a = s.alloc(3 * P, { tag: "textures" });
	const b = s.alloc(P, { tag: "meshes" });
	const c = s.alloc(20 * P, { tag: "textures" }); // crosses from row 0 into row 1
	const d = s.alloc(2 * P);
	const e = s.alloc(7 * P); // pages 26-32: at 32 pages a row, one page into the second row
	s.free(b); // lazy
	const dump = s.dump() as VmapDump;
	const svg = mapSvg(dump, { width: 160, rows: 4 });
	assert.match(svg, /data-px-bytes="409.6"/);
	const rects = areaRects(svg);
	const widthOf = (start: number) => rects.filter((r) => r.start === start).reduce((n, r) => n + r.width, 0);
	for (const [start, pages] of [
		[a, 3],
		[b, 1],
		[c, 20],
		[d, 2],
		[e, 7],
	] as const)
		assert.equal(widthOf(start), pages * 10, `the area at ${start} is ${pages} pages wide`);
	assert.equal(rects.filter((r) => r.start === c).length, 2, "an area that crosses a row is drawn in two pieces");
	const fill = (start: number) => rects.find((r) => r.start === start)!.fill;
	assert.equal(fill(a), fill(c), "one tag, one colour");
	assert.notEqual(fill(a), fill(d));
	assert.equal(fill(b), "url(#vmap-lazy)", "lazy areas are hatched");
	assert.match(svg, /busy · textures: 92 KiB in 2 areas/);
	assert.match(svg, /lazy: freed, waiting for a purge: 4 KiB in 1 area/);
	assert.match(svg, /largest free block: 124 KiB at 0x22000/);
	assert.match(svg, /every area is drawn at its own width/);
	assert.match(svg, /<text[^>]*>0x01000<\/text>[\s\S]*<text[^>]*>0x11000<\/text>/, "rows are labelled with their first address in hex");
	legendMatchesStats(svg, s.stats());
	// A string works as well as the parsed object.
	assert.equal(mapSvg(s.dump(), { width: 160, rows: 4 }), svg);
	// 2 rows of 32 pages in 100 px: the last area's piece in the second row is 3.125 px.
	const narrow = areaRects(mapSvg(dump, { width: 100, rows: 2 })).filter((r) => r.start === e);
	assert.deepEqual(
		narrow.map((r) => r.width),
		[18.75, 3.13],
	);
});

test("mapSvg: pooled areas (nodes 2, after a purge) and small-area blocks with their owner; totals equal stats()", () => {
	const s = VmapSpace.create({ size: 4096 * P, nodes: 2, smallMax: 4 * P, lazyMaxPages: 1 << 20 });
	const big = Array.from({ length: 60 }, (_, i) => s.alloc((5 + (i % 5)) * P, { tag: `t${i % 8}` })); // above smallMax: not from blocks
	const small = Array.from({ length: 50 }, () => s.alloc(P)); // from this handle's blocks
	for (const x of big.filter((_, i) => i % 3 === 0)) s.free(x);
	s.purge({ sync: true }); // purged areas of up to 256 pages go to their node's pools
	for (const x of big.filter((_, i) => i % 3 === 1)) s.free(x); // lazy again
	const st = s.stats();
	assert.ok(st.poolBytes > 0 && st.lazyBytes > 0 && st.smallBlocks > 0, "the space has pooled, lazy and small areas");
	const dump = s.dump() as VmapDump;
	const svg = mapSvg(dump);
	legendMatchesStats(svg, st);
	assert.match(svg, /pooled: purged into a node's pool/);
	assert.match(svg, /busy · 3 other tags/, "tags past the fifth share one colour");
	assert.match(svg, new RegExp(`small-area blocks \\(busy; label: owning handle\\): [^<]* in ${st.smallBlocks} area`));
	assert.match(svg, new RegExp(`>${s.id}</text>`), "each block is labelled with its owner's handle id");
	assert.equal(
		totals(svg)["block-bytes"],
		dump.blocks.reduce((n, b) => n + b.end - b.start, 0),
	);
	assert.equal(small.length, 50);
});

test("mapSvg at 200,000 areas: aggregated below a pixel (and says so), bounded in size, totals still equal stats()", () => {
	const s = VmapSpace.create({ size: 2 ** 32, smallMax: 0, lazyMaxPages: 1 << 30 }); // about half of it used
	let x = 1;
	const rnd = (n: number) => {
		x = (Math.imul(x, 1103515245) + 12345) >>> 0;
		return x % n;
	};
	const live: number[] = [];
	for (let i = 0; i < 200_000; i++) live.push(s.alloc(P * (1 + rnd(4)), rnd(3) === 0 ? { tag: `tag${rnd(9)}` } : undefined));
	for (let i = 0; i < 50_000; i++) {
		const k = rnd(live.length);
		s.free(live[k]!);
		live[k] = live[live.length - 1]!;
		live.pop();
	}
	const st = s.stats();
	const t0 = performance.now();
	const svg = mapSvg(s.dump());
	const ms = performance.now() - t0;
	const rects = (svg.match(/<rect /g) ?? []).length;
	console.log(
		`# mapSvg of ${st.busyAreas + st.lazyAreas} areas: ${ms.toFixed(0)} ms, ${(svg.length / 1024).toFixed(0)} KiB, ${rects} rects`,
	);
	assert.ok(rects < 40_000 + 1000, `${rects} rectangles: not bounded`);
	assert.match(svg, /pixels hold areas narrower than 2 px: there each state is as tall as its share of the bytes/);
	// Minorities stay visible: the lazy areas (a fifth of the bytes) and a tag of a ninth of a third.
	assert.ok((svg.match(/fill="url\(#vmap-lazy\)"/g) ?? []).length > 100, "lazy areas show among the aggregated pixels");
	const tag0 = /<rect x="20" y="\d+" width="18" height="12" fill="(#[0-9A-F]{6})"[^>]*\/>\n<text[^>]*>busy · tag\d/.exec(svg)![1]!;
	assert.ok((svg.match(new RegExp(`fill="${tag0}"`, "g")) ?? []).length > 100, "the largest tag shows among the aggregated pixels");
	legendMatchesStats(svg, st);
});

test("mapSvg, random spaces and pictures (fast-check): legend totals = stats(), every area of 2 px or more at its exact width inside the range drawn, no NaN", () => {
	const op = fc.oneof(
		fc.record({
			kind: fc.constant("alloc" as const),
			pages: fc.integer({ min: 1, max: 24 }),
			tag: fc.constantFrom(undefined, "a", "b", "c", "d", "e", "f", "g"),
		}),
		fc.record({ kind: fc.constant("free" as const), pick: fc.nat() }),
		fc.record({ kind: fc.constant("purge" as const) }),
	);
	fc.assert(
		fc.property(
			fc.array(op, { maxLength: 120 }),
			fc.record({
				nodes: fc.integer({ min: 1, max: 3 }),
				width: fc.integer({ min: 100, max: 700 }),
				rows: fc.integer({ min: 1, max: 300 }),
				lo: fc.nat({ max: 1023 }),
				hi: fc.nat({ max: 1023 }),
			}),
			(ops, o) => {
				const s = VmapSpace.create({ size: 1024 * P, nodes: o.nodes, smallMax: 0, lazyMaxPages: 64 });
				const live: number[] = [];
				for (const x of ops) {
					if (x.kind === "alloc") {
						try {
							live.push(s.alloc(x.pages * P, x.tag === undefined ? undefined : { tag: x.tag }));
						} catch {
							// EBUSY: full
						}
					} else if (x.kind === "free" && live.length > 0) s.free(live.splice(x.pick % live.length, 1)[0]!);
					else if (x.kind === "purge") s.purge({ sync: true });
				}
				const st = s.stats();
				const from = s.start + Math.min(o.lo, o.hi) * P;
				const to = s.start + (Math.max(o.lo, o.hi) + 1) * P;
				const dump = s.dump() as VmapDump;
				const svg = mapSvg(dump, { width: o.width, rows: o.rows, from, to });
				legendMatchesStats(svg, st);
				assert.doesNotMatch(svg, /NaN|undefined|Infinity/);
				const pxBytes = Number(/data-px-bytes="([\d.e+-]+)"/.exec(svg)![1]);
				const rects = areaRects(svg);
				for (const a of dump.areas) {
					const w = (Math.min(a.end, to) - Math.max(a.start, from)) / pxBytes;
					const drawn = rects.filter((r) => r.start === a.start).reduce((n, r) => n + r.width, 0);
					if (w >= 2)
						assert.ok(
							Math.abs(drawn - w) < 0.05 * Math.ceil(w / o.width + 1),
							`area at ${a.start}: ${drawn} px drawn, ${w} expected`,
						);
					else assert.equal(drawn, 0, `area at ${a.start} narrower than 2 px is aggregated`);
				}
			},
		),
		{ seed: Number(process.env.VMAP_SEED ?? 20), numRuns: Number(process.env.VMAP_RUNS ?? 150) },
	);
});

test("mapSvg and timelineSvg: bad input is EINVAL, saying what was expected", () => {
	const s = VmapSpace.create({ size: 64 * P });
	const dump = s.dump();
	const bad = (f: () => unknown, re: RegExp) =>
		assert.throws(f, (e: Error & { code?: string }) => e.code === "EINVAL" && re.test(e.message), String(re));
	bad(() => mapSvg("{nope"), /^EINVAL: Cannot draw a map: dump is not JSON/);
	bad(
		() => mapSvg({} as VmapDump),
		/dump must be what VmapSpace.dump\(\) returns \(\{ start, end, stats with a power-of-two pageSize, areas, free, blocks \}\)/,
	);
	bad(() => mapSvg({ ...dump, stats: { ...dump.stats, pageSize: 0 } }), /stats with a power-of-two pageSize/);
	bad(
		() => mapSvg({ ...dump, areas: [{ start: 5, end: 3, size: -2, state: "busy" }] }),
		/dump.areas must list ranges \{ start, end \} with start < end, in rising order/,
	);
	bad(() => mapSvg(dump, { rows: 0 }), /rows must be a whole number from 1 to 4096, got 0/);
	bad(() => mapSvg(dump, { width: 1.5 }), /width must be a whole number from 100 to 20000, got 1.5/);
	bad(() => mapSvg(dump, { from: 0 }), /from must be a whole number from 4096 to/);
	bad(() => mapSvg(dump, { from: 8 * P, to: 8 * P }), /to must be a whole number from 32769 to/);
	bad(
		() => mapSvg(dump, { colour: "red" } as never),
		/unknown option "colour" \(known: width, rows, from, to, title, idPrefix, tagColours\)/,
	);
	bad(() => mapSvg(dump, { idPrefix: "1<" }), /idPrefix must be letters, digits/);
	bad(() => timelineSvg("[1,2]"), /^EINVAL: Cannot read a timeline: it must be a Timeline's toJSON\(\)/);
	bad(() => timelineSvg(new Timeline(), { width: 50 }), /width must be a whole number from 200 to 20000, got 50/);
	bad(() => timelineSvg(new Timeline(), { height: 5 } as never), /unknown option "height"/);
});

test("timelineSvg: the lazy backlog against lazyMaxPages and 2x, purges by kind, bytes, fragmentation; JSON round trip", () => {
	const s = VmapSpace.create({ size: 1024 * P, lazyMaxPages: 8, smallMax: 0 });
	const tl = new Timeline();
	const st = s.stats();
	const live: number[] = [];
	for (let i = 0; i < 300; i++) {
		if (i % 3 === 2) s.free(live.shift()!);
		else live.push(s.alloc(P * (1 + (i % 4))));
		tl.sample(s.stats({ into: st }), i * 10);
	}
	assert.equal(tl.length, 300);
	assert.ok(st.priorityPurges > 0, "the loop never yields: the free path purged at 2 x lazyMaxPages");
	const svg = timelineSvg(tl);
	assert.match(svg, /data-samples="300"/);
	assert.match(svg, /lazyMaxPages: a drain is due/);
	assert.match(svg, /2 × lazyMaxPages: priority threshold/);
	assert.match(svg, new RegExp(`priority \\(at 2 × lazyMaxPages\\): ${st.priorityPurges}<`));
	assert.match(svg, /time since the first sample \(s\)/);
	assert.equal((svg.match(/<polyline /g) ?? []).length, 3 + 4 + 2 + 1, "one line per series");
	const json = JSON.parse(JSON.stringify(tl)) as { t: number[]; lazyPages: number[] };
	assert.equal(json.t[299], 2.99, "seconds from the first sample");
	assert.deepEqual(json.lazyPages.slice(0, 3), [0, 0, 1], "the third step freed a page: one lazy page");
	assert.equal(timelineSvg(JSON.stringify(tl)), svg, "a timeline read back from JSON draws the same");
});

test("mapSvg: with the same tagColours Map, a tag keeps its colour across redraws when the largest tags change places", () => {
	const swatch = (svg: string, tag: string) => {
		const lines = svg.split("\n");
		const i = lines.findIndex((l) => l.includes(`>busy · ${tag}:`));
		return /fill="(#[0-9A-Fa-f]{6})"/.exec(lines[i - 1] ?? "")?.[1];
	};
	const s = VmapSpace.create({ size: 256 * P, smallMax: 0 });
	const a = s.alloc(8 * P, { tag: "a" });
	s.alloc(2 * P, { tag: "b" });
	const colours = new Map<string, string>();
	const first = mapSvg(s.dump(), { rows: 4, tagColours: colours });
	const [aColour, bColour] = [swatch(first, "a"), swatch(first, "b")];
	assert.notEqual(aColour, bColour);
	s.free(a);
	s.alloc(P, { tag: "a" });
	s.alloc(6 * P, { tag: "b" }); // b is now the larger
	const second = mapSvg(s.dump(), { rows: 4, tagColours: colours });
	assert.deepEqual([swatch(second, "a"), swatch(second, "b")], [aColour, bColour], "each tag keeps its colour");
	const fresh = mapSvg(s.dump(), { rows: 4 });
	assert.deepEqual(
		[swatch(fresh, "a"), swatch(fresh, "b")],
		[bColour, aColour],
		"without the Map, the largest tag takes the first colour",
	);
	assert.throws(() => mapSvg(s.dump(), { tagColours: {} as never }), /EINVAL: Cannot draw a map: tagColours must be a Map/);
});
