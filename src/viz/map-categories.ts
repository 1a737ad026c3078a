/**
 * The map's categories, and one sweep that puts every range of a dump in one: the five largest
 * busy tags get a colour each, the other tags share one, then untagged, small-area blocks,
 * lazy and pooled. Pooled space is what lies in no area and no free block: exact on a still
 * space; on one that others change while the dump reads it, a range that moved between
 * listings shows as pooled.
 */
import type { DumpArea, DumpSmallBlock, VmapDump } from "../api/types.ts";
import { hex } from "../api/errors.ts";
import { BLUE, bytes, GREY, ORANGE, PURPLE, SKY, VERMILLION } from "./format.ts";

/** Busy tags that get a colour of their own, largest first. */
const TAG_COLOURS = [BLUE, ORANGE, PURPLE, SKY, VERMILLION];
const SMALL_BLOCK_TAG = "vmap_block";

export interface Category {
	label: string;
	fill: string;
	bytes: number;
	areas: number;
}

/** Totals from the dump beside the categories' (the legend's figures): all busy areas, and free space. */
export interface MapTotals {
	busyBytes: number;
	busyAreas: number;
	freeBytes: number;
	freeBlocks: number;
	largestFreeBlock: number;
	largestFreeStart: number;
}

/** The categories of one dump: the tag ones first (their count is `untagged - 1`), then the fixed ones. */
export class Categories {
	readonly list: Category[] = [];
	readonly #ofTag = new Map<string, number>();
	readonly other: number;
	readonly untagged: number;
	readonly block: number;
	readonly lazy: number;
	readonly pooled: number;

	/** `remembered`: the colour each tag had in earlier pictures (read and filled), so that it keeps it. */
	constructor(d: VmapDump, blockAt: ReadonlyMap<number, DumpSmallBlock>, idPrefix: string, remembered: Map<string, string>) {
		const tagBytes = new Map<string, number>();
		for (const a of d.areas) {
			if (a.state === "busy" && !blockAt.has(a.start)) tagBytes.set(a.tag ?? "", (tagBytes.get(a.tag ?? "") ?? 0) + a.size);
		}
		const named = [...tagBytes.entries()].filter(([t]) => t !== "").sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1));
		const shown = named.slice(0, TAG_COLOURS.length).map(([tag]) => tag);
		const taken = new Set<string>();
		// A tag keeps the colour it had, unless a larger tag shown now has it already.
		const kept = shown.map((tag) => {
			const c = remembered.get(tag);
			if (c === undefined || taken.has(c) || !TAG_COLOURS.includes(c)) return undefined;
			taken.add(c);
			return c;
		});
		for (const [i, tag] of shown.entries()) {
			const colour = kept[i] ?? TAG_COLOURS.find((c) => !taken.has(c))!;
			taken.add(colour);
			remembered.set(tag, colour);
			this.#ofTag.set(tag, this.list.length);
			this.#add(`busy · ${tag}`, colour);
		}
		this.other = this.#add(`busy · ${named.length - TAG_COLOURS.length} other tags`, GREY);
		this.untagged = this.#add("busy · no tag", "#555555");
		this.block = this.#add("small-area blocks (busy; label: owning handle)", `url(#${idPrefix}block)`);
		this.lazy = this.#add("lazy: freed, waiting for a purge", `url(#${idPrefix}lazy)`);
		this.pooled = this.#add("pooled: purged into a node's pool", `url(#${idPrefix}pooled)`);
	}

	#add(label: string, fill: string): number {
		this.list.push({ label, fill, bytes: 0, areas: 0 });
		return this.list.length - 1;
	}

	/**
	 * The category of area `a`. A small-area block is a busy area tagged vmap_block; dump.blocks,
	 * read without a lock, may miss one made meanwhile (it is drawn as a block, without its owner).
	 */
	of(a: DumpArea, isBlock: boolean): number {
		if (a.state === "lazy") return this.lazy;
		if (isBlock || a.tag === SMALL_BLOCK_TAG) return this.block;
		return a.tag === undefined ? this.untagged : (this.#ofTag.get(a.tag) ?? this.other);
	}

	count(c: number, size: number): void {
		this.list[c]!.bytes += size;
		this.list[c]!.areas++;
	}
}

/**
 * One sweep in address order over the dump's areas and free blocks: each area counted in its
 * category and handed to `paint`, each gap between them painted as pooled, each small-area
 * block handed to `block`; returns the totals.
 */
export function sweep(
	d: VmapDump,
	cats: Categories,
	blockAt: ReadonlyMap<number, DumpSmallBlock>,
	paint: (start: number, end: number, c: number, title: string) => void,
	block: (b: DumpSmallBlock) => void,
): MapTotals {
	const t: MapTotals = { busyBytes: 0, busyAreas: 0, freeBytes: 0, freeBlocks: 0, largestFreeBlock: 0, largestFreeStart: -1 };
	let cursor = d.start;
	const gap = (end: number) => {
		if (end <= cursor) return;
		cats.count(cats.pooled, end - cursor);
		paint(cursor, end, cats.pooled, `${hex(cursor)}–${hex(end)} ${bytes(end - cursor)} pooled`);
	};
	const { areas, free } = d;
	for (let i = 0, j = 0; i < areas.length || j < free.length; ) {
		if (j >= free.length || (i < areas.length && areas[i]!.start < free[j]!.start)) {
			const a = areas[i++]!;
			gap(a.start);
			cursor = Math.max(cursor, a.end);
			const b = a.state === "busy" ? blockAt.get(a.start) : undefined;
			if (a.state === "busy") {
				t.busyBytes += a.size;
				t.busyAreas++;
			}
			const c = cats.of(a, b !== undefined);
			cats.count(c, a.size);
			paint(a.start, a.end, c, `${hex(a.start)}–${hex(a.end)} ${bytes(a.size)} ${a.state}${a.tag === undefined ? "" : ` ${a.tag}`}`);
			if (b !== undefined) block(b);
		} else {
			const b = free[j++]!;
			gap(b.start);
			cursor = Math.max(cursor, b.end);
			t.freeBytes += b.size;
			t.freeBlocks++;
			if (b.size > t.largestFreeBlock) {
				t.largestFreeBlock = b.size;
				t.largestFreeStart = b.start;
			}
		}
	}
	gap(d.end);
	return t;
}
