/**
 * @daneren2005/shared-memory-objects ships TypeScript sources written for Vite; it is loaded
 * untyped, with the little of its API the bench uses declared here, so its sources stay out of
 * our typecheck.
 */
export interface SmoBuffer {
	malloc(n: number): number;
	free(addr: number): boolean;
}

export interface Smo {
	/** `skipInitialization`: attach to a buffer another thread initialized. */
	MemoryBuffer: new (o: {
		buf: SharedArrayBuffer;
		align?: number;
		skipInitialization?: boolean;
	}) => SmoBuffer;
	MemoryHeap: new () => { allocUI32(n: number): { pointer: number; free(): void } };
}

export const loadSmo = async (): Promise<Smo> => (await import("@daneren2005/shared-memory-objects" as string)) as Smo;
