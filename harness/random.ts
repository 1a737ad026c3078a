/**
 * The one generator of the tests, the workers and the bench: xorshift32, as in the
 * js-allocators anchor benchmark (docs/bench.md), so that our workloads draw the same
 * sequences as the figures quoted there. Seed 0 becomes 1.
 */
export function xorshift32(seed: number): () => number {
	let x = seed >>> 0 || 1;
	return () => {
		x ^= x << 13;
		x >>>= 0;
		x ^= x >>> 17;
		x ^= x << 5;
		x >>>= 0;
		return x;
	};
}

/** A generator of whole numbers in [0, n), seeded. */
export function randomBelow(seed: number): (n: number) => number {
	const next = xorshift32(seed);
	return (n) => next() % n;
}
