/**
 * xorshift32: the generator of the anchor benchmark (../shared/anchors/js-allocators.md), so
 * that our workloads draw the same sequences as the figures quoted there. Seed 0 becomes 1.
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
