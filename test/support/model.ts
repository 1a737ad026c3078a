/**
 * The reference model: a plain sorted array of busy and lazy ranges. Free space is whatever
 * lies between them (a lazy range is not free until purged), and the lowest fit is a linear
 * walk over those gaps. Nothing here shares code with the library.
 */
import type { Range } from "./inspect.ts";

export interface ModelArea {
	start: number;
	end: number;
	tag: string | undefined;
	lazy: boolean;
	/** A lazy range of several freed areas (mergeLazy): where each began is not known. */
	merged?: boolean;
}

export class Model {
	readonly busy: ModelArea[] = [];

	readonly start: number;
	readonly end: number;
	readonly pageSize: number;
	/**
	 * A space of one node merges an area it frees into the highest lazy range when that ends
	 * where the area starts, else into the lowest when that starts where it ends.
	 */
	readonly mergeLazy: boolean;

	constructor(start: number, end: number, pageSize: number, mergeLazy = false) {
		this.start = start;
		this.end = end;
		this.pageSize = pageSize;
		this.mergeLazy = mergeLazy;
	}

	/** Free gaps in address order. */
	gaps(): Range[] {
		const out: Range[] = [];
		let at = this.start;
		for (const a of this.busy) {
			if (a.start > at) out.push([at, a.start]);
			at = a.end;
		}
		if (at < this.end) out.push([at, this.end]);
		return out;
	}

	/**
	 * Lowest address where `size` at `align` fits inside [vstart, vend), or undefined: in the
	 * gaps, or in `blocks` when given (the free tree, when pools hold part of the gaps).
	 */
	lowestFit(size: number, align: number, vstart: number, vend: number, blocks: Range[] = this.gaps()): number | undefined {
		const a = Math.max(align, this.pageSize);
		for (const [gs, ge] of blocks) {
			const nva = Math.ceil(Math.max(gs, vstart) / a) * a;
			if (nva + size <= Math.min(ge, vend)) return nva;
		}
		return undefined;
	}

	/**
	 * The kernel-style adjusted answer: the gap holding vstart if the request fits in it, else
	 * the lowest gap starting at or above vstart with size >= size + align - pageSize, if the
	 * request then fits the window. The library must do at least this well.
	 */
	adjustedFit(size: number, align: number, vstart: number, vend: number, blocks: Range[] = this.gaps()): number | undefined {
		const a = Math.max(align, this.pageSize);
		const fit = (gs: number, ge: number) => {
			const nva = Math.ceil(Math.max(gs, vstart) / a) * a;
			return nva + size <= Math.min(ge, vend) ? nva : undefined;
		};
		for (const [gs, ge] of blocks) {
			if (gs < vstart && vstart < ge) {
				const n = fit(gs, ge);
				if (n !== undefined) return n;
			} else if (gs >= vstart && ge - gs >= size + a - this.pageSize) {
				return fit(gs, ge);
			}
		}
		return undefined;
	}

	add(start: number, end: number, tag: string | undefined): void {
		let i = 0;
		while (i < this.busy.length && this.busy[i]!.start < start) i++;
		this.busy.splice(i, 0, { start, end, tag, lazy: false });
	}

	lazyAreas(): ModelArea[] {
		return this.busy.filter((a) => a.lazy);
	}

	lazyPages(): number {
		return this.lazyAreas().reduce((n, a) => n + (a.end - a.start) / this.pageSize, 0);
	}

	/** The range a purge must flush: [lowest lazy start, highest lazy end), or undefined. */
	flushRange(): [number, number] | undefined {
		const lazy = this.lazyAreas();
		if (lazy.length === 0) return undefined;
		return [Math.min(...lazy.map((a) => a.start)), Math.max(...lazy.map((a) => a.end))];
	}

	purge(): void {
		for (let i = this.busy.length - 1; i >= 0; i--) if (this.busy[i]!.lazy) this.busy.splice(i, 1);
	}

	areaAt(addr: number): ModelArea | undefined {
		return this.busy.find((a) => a.start <= addr && addr < a.end);
	}

	/** Resize a busy area in place: a shrink's tail becomes a lazy area of the same tag. */
	resize(start: number, end: number): void {
		const i = this.busy.findIndex((x) => x.start === start && !x.lazy);
		const a = this.busy[i];
		if (!a) throw new Error(`model: no busy area at ${start}`);
		const tail = { start: end, end: a.end, tag: a.tag, lazy: true };
		a.end = end;
		if (tail.start < tail.end) {
			this.busy.splice(i + 1, 0, tail);
			this.#merge(tail);
		}
	}

	/** Lazy area `a`, just freed, merges as the space merges it (mergeLazy). */
	#merge(a: ModelArea): void {
		if (!this.mergeLazy) return;
		const others = this.lazyAreas().filter((x) => x !== a);
		if (others.length === 0) return;
		const last = others.reduce((x, y) => (y.start > x.start ? y : x));
		const head = others.reduce((x, y) => (y.start < x.start ? y : x));
		const into = last.end === a.start ? last : head.start === a.end ? head : undefined;
		if (into === undefined) return;
		into.start = Math.min(into.start, a.start);
		into.end = Math.max(into.end, a.end);
		into.merged = true;
		this.busy.splice(this.busy.indexOf(a), 1);
	}

	/** Free lazily. */
	free(start: number): void {
		const a = this.busy.find((x) => x.start === start);
		if (!a || a.lazy) throw new Error(`model: no busy area at ${start}`);
		a.lazy = true;
		this.#merge(a);
	}
}
