/**
 * A plain linear first-fit allocator, what a JavaScript user writes in an afternoon: the free
 * ranges in two parallel arrays sorted by address, allocation scans them from the bottom for
 * the first that fits (O(free ranges)), free finds its place by binary search, merges with its
 * neighbours and shifts the arrays (O(free ranges) with copyWithin). Sizes of busy ranges are
 * kept in a Map. A bench peer, not part of the library.
 *
 * Invariants (check()): free ranges are sorted, non-empty, not touching (merged), inside
 * [base, base + size), and disjoint from every busy range.
 */
export class FirstFit {
	#start = new Float64Array(1024);
	#len = new Float64Array(1024);
	#n = 0;
	readonly #busy = new Map<number, number>();

	readonly base: number;
	readonly size: number;

	constructor(base: number, size: number) {
		this.base = base;
		this.size = size;
		this.#start[0] = base;
		this.#len[0] = size;
		this.#n = 1;
	}

	/** The lowest address where `size` fits, or 0. */
	alloc(size: number): number {
		const s = this.#start;
		const l = this.#len;
		for (let i = 0; i < this.#n; i++) {
			if (l[i]! < size) continue;
			const addr = s[i]!;
			if (l[i] === size) this.#remove(i);
			else {
				s[i] = addr + size;
				l[i] = l[i]! - size;
			}
			this.#busy.set(addr, size);
			return addr;
		}
		return 0;
	}

	free(addr: number): void {
		const size = this.#busy.get(addr);
		if (size === undefined) throw new Error(`first-fit: free(${addr}): not allocated`);
		this.#busy.delete(addr);
		const s = this.#start;
		const l = this.#len;
		// i = the first free range above addr.
		let lo = 0;
		let hi = this.#n;
		while (lo < hi) {
			const mid = (lo + hi) >>> 1;
			if (s[mid]! < addr) lo = mid + 1;
			else hi = mid;
		}
		const i = lo;
		const joinsPrev = i > 0 && s[i - 1]! + l[i - 1]! === addr;
		const joinsNext = i < this.#n && addr + size === s[i]!;
		if (joinsPrev && joinsNext) {
			l[i - 1] = l[i - 1]! + size + l[i]!;
			this.#remove(i);
		} else if (joinsPrev) l[i - 1] = l[i - 1]! + size;
		else if (joinsNext) {
			s[i] = addr;
			l[i] = l[i]! + size;
		} else this.#insert(i, addr, size);
	}

	check(): void {
		let end = this.base;
		for (let i = 0; i < this.#n; i++) {
			const s = this.#start[i]!;
			const l = this.#len[i]!;
			if (!(l > 0) || s < end || (i > 0 && s === end) || s + l > this.base + this.size)
				throw new Error(`first-fit: free range ${i} [${s}, ${s + l}) is out of order, empty, touching or outside`);
			end = s + l;
		}
		let busy = 0;
		for (const l of this.#busy.values()) busy += l;
		let free = 0;
		for (let i = 0; i < this.#n; i++) free += this.#len[i]!;
		if (busy + free !== this.size) throw new Error(`first-fit: busy ${busy} + free ${free} != size ${this.size}`);
	}

	#remove(i: number): void {
		this.#start.copyWithin(i, i + 1, this.#n);
		this.#len.copyWithin(i, i + 1, this.#n);
		this.#n--;
	}

	#insert(i: number, addr: number, size: number): void {
		if (this.#n === this.#start.length) {
			const s = new Float64Array(this.#n * 2);
			const l = new Float64Array(this.#n * 2);
			s.set(this.#start);
			l.set(this.#len);
			this.#start = s;
			this.#len = l;
		}
		this.#start.copyWithin(i + 1, i, this.#n);
		this.#len.copyWithin(i + 1, i, this.#n);
		this.#start[i] = addr;
		this.#len[i] = size;
		this.#n++;
	}
}
