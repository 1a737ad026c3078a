/**
 * The ceiling: a bare LIFO stack of fixed-size slots in a typed array. alloc pops a slot,
 * free pushes it back; nothing is searched, merged, checked or shared. Every size up to the
 * slot size takes a whole slot. Addresses are (slot + 1) * slotSize, so 0 means failure.
 * A bench peer, not part of the library.
 */
export class Lifo {
	readonly #stack: Uint32Array;
	#top: number;

	readonly slotSize: number;

	constructor(slotSize: number, slots: number) {
		this.slotSize = slotSize;
		this.#stack = new Uint32Array(slots);
		// Slot 0 on top, so the lowest addresses go first.
		for (let i = 0; i < slots; i++) this.#stack[i] = slots - 1 - i;
		this.#top = slots;
	}

	alloc(size: number): number {
		if (size > this.slotSize || this.#top === 0) return 0;
		return (this.#stack[--this.#top]! + 1) * this.slotSize;
	}

	free(addr: number): void {
		this.#stack[this.#top++] = addr / this.slotSize - 1;
	}
}
