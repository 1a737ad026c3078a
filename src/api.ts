/** Public types. */

export interface VmapSpaceOptions {
	/** First address of the managed range; a multiple of pageSize. @defaultValue pageSize */
	start?: number;
	/** Bytes in the managed range [start, start + size); a multiple of pageSize, start + size <= 2^53. */
	size: number;
	/** Power of two; every size and address handed out is a multiple of it. @defaultValue 4096 */
	pageSize?: number;
	/**
	 * Put the space in a growable SharedArrayBuffer, so that workers can share it (true), or in
	 * a resizable ArrayBuffer for one thread (false). @defaultValue true
	 */
	shared?: boolean;
	/**
	 * Most areas (busy plus free blocks) the record table may hold; the buffer reserves room
	 * for this many (40 bytes each) and grows into it as needed. @defaultValue 2^22
	 */
	maxAreas?: number;
}

export interface AllocOptions {
	/** Power of two; the address returned is a multiple of max(align, pageSize). @defaultValue pageSize */
	align?: number;
	/** Lowest address the area may start at. @defaultValue the space's start */
	vstart?: number;
	/** The area must end at or below this address. @defaultValue the space's end */
	vend?: number;
	/** A label shown by find() and the listings (at most 63 bytes of UTF-8). */
	tag?: string;
}

export type AreaState = "busy" | "lazy";

/** What find() reports about the area holding an address. */
export interface AreaInfo {
	start: number;
	end: number;
	size: number;
	tag: string | undefined;
	state: AreaState;
}
