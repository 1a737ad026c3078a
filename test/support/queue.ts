/**
 * A single-producer single-consumer queue of [addr, bytes, seq] triples in a SharedArrayBuffer:
 * how workers hand heap addresses to each other without postMessage. Int32 words [0] head
 * (next to pop) and [1] tail (next to push), then CAPACITY triples of Float64.
 */
const CAPACITY = 256;

export class SharedQueue {
	static bytes(): number {
		return 8 + CAPACITY * 24;
	}

	private readonly idx: Int32Array;
	private readonly items: Float64Array;

	constructor(buffer: SharedArrayBuffer) {
		this.idx = new Int32Array(buffer, 0, 2);
		this.items = new Float64Array(buffer, 8, CAPACITY * 3);
	}

	/** Push, sleeping while the queue is full. */
	push(addr: number, bytes: number, seq: number): void {
		for (;;) {
			const head = Atomics.load(this.idx, 0);
			const tail = Atomics.load(this.idx, 1);
			if (tail - head < CAPACITY) {
				const at = (tail % CAPACITY) * 3;
				this.items[at] = addr;
				this.items[at + 1] = bytes;
				this.items[at + 2] = seq;
				Atomics.store(this.idx, 1, tail + 1); // publishes the triple written above
				Atomics.notify(this.idx, 1);
				return;
			}
			Atomics.wait(this.idx, 0, head, 10);
		}
	}

	/** Pop, waiting up to `ms` for an item; undefined when none came. */
	pop(ms: number): [number, number, number] | undefined {
		const head = Atomics.load(this.idx, 0);
		if (Atomics.load(this.idx, 1) === head && (ms === 0 || Atomics.wait(this.idx, 1, head, ms) === "timed-out")) return undefined;
		if (Atomics.load(this.idx, 1) === head) return undefined;
		const at = (head % CAPACITY) * 3;
		const item: [number, number, number] = [this.items[at]!, this.items[at + 1]!, this.items[at + 2]!];
		Atomics.store(this.idx, 0, head + 1);
		Atomics.notify(this.idx, 0);
		return item;
	}
}
