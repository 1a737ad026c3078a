/** The listings' rows (info.ts): areas as flat numbers, made before any lock is taken. */

/**
 * Areas as flat triples (start, end, tag id, 0 for none) in a Float64Array that grows by
 * doubling. A chunk makes room before it takes its locks, so that nothing is allocated while
 * they are held: an allocation may start a garbage collection, which would stall every handle
 * waiting for them (measured: 100-400 ms pauses at 2 M areas when the rows were a JS array).
 */
export class Rows {
	a: Float64Array;
	n = 0;
	/** `areas`: about how many will be read (a guess: growing copies everything so far). */
	constructor(areas = 0) {
		this.a = new Float64Array(3 * Math.max(64, areas));
	}
	/** Room for `k` more numbers. */
	reserve(k: number): void {
		if (this.n + k <= this.a.length) return;
		const b = new Float64Array(Math.max(2 * this.a.length, this.n + k));
		b.set(this.a.subarray(0, this.n));
		this.a = b;
	}
}

/** The rows of an empty tree, shared: nothing writes to a tree's rows once it is read. */
export const NO_ROWS = new Rows(0);
