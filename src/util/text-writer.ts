/**
 * ASCII text written byte by byte into a growing Uint8Array and decoded once: the listings
 * print millions of lines, and building them as JS strings cost 2.8 µs a line, most of it
 * garbage collection (5.7 s for 2 M lines), against well under a tenth of that here.
 */
const HEX = "0123456789abcdef";
const TWO32 = 4294967296;

export class TextWriter {
	#a: Uint8Array;
	#n = 0;
	/** UTF-8 bytes of strings written before, by content (tag names, JSON keys). */
	readonly #encoded = new Map<string, Uint8Array>();

	/** `bytes`: about how much will be written (growing costs a copy of everything so far). */
	constructor(bytes: number) {
		this.#a = new Uint8Array(Math.max(1 << 12, bytes));
	}

	#room(k: number): void {
		if (this.#n + k <= this.#a.length) return;
		const b = new Uint8Array(Math.max(2 * this.#a.length, this.#n + k));
		b.set(this.#a.subarray(0, this.#n));
		this.#a = b;
	}

	/** A string, UTF-8 encoded (once per distinct string). */
	text(s: string): this {
		let bytes = this.#encoded.get(s);
		if (bytes === undefined) {
			bytes = new TextEncoder().encode(s);
			this.#encoded.set(s, bytes);
		}
		this.#room(bytes.length);
		this.#a.set(bytes, this.#n);
		this.#n += bytes.length;
		return this;
	}

	/** "0x" and 16 hex digits of a whole number below 2^53 (the kernel's %pK on 64-bit). */
	hex16(v: number): this {
		this.#room(18);
		const a = this.#a;
		a[this.#n++] = 48; // 0
		a[this.#n++] = 120; // x
		const hi = Math.floor(v / TWO32);
		const lo = v - hi * TWO32;
		for (let shift = 28; shift >= 0; shift -= 4) a[this.#n++] = HEX.charCodeAt((hi >>> shift) & 15);
		for (let shift = 28; shift >= 0; shift -= 4) a[this.#n++] = HEX.charCodeAt((lo >>> shift) & 15);
		return this;
	}

	/** A whole number in [0, 2^53) in decimal, padded with spaces on the left to `width`. */
	int(v: number, width = 0): this {
		this.#room(Math.max(width, 16));
		let digits = 1;
		for (let x = v; x >= 10; x = Math.floor(x / 10)) digits++;
		for (let pad = width - digits; pad > 0; pad--) this.#a[this.#n++] = 32;
		let x = v;
		for (let i = digits - 1; i >= 0; i--) {
			const q = Math.floor(x / 10);
			this.#a[this.#n + i] = 48 + (x - q * 10);
			x = q;
		}
		this.#n += digits;
		return this;
	}

	toString(): string {
		return new TextDecoder().decode(this.#a.subarray(0, this.#n));
	}
}
