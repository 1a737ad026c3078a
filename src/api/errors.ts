/**
 * Error codes. Stable strings: callers switch on `error.code`, never on the message.
 * - EINVAL: an argument is wrong (the message says which, what it was, what is expected).
 * - EBUSY: no free block fits the request, as the kernel says when the address space is full.
 * - ENOENT: no area starts at the address given.
 * - EDOUBLEFREE: the area at the address was freed already.
 * - ENOMEM: the record table cannot grow (maxAreas reached, or the host refused memory).
 * - ECORRUPT: check() found a broken invariant.
 * - EOWNERDEAD: a handle died in a critical section that could not be undone (its journal
 *   overflowed, or the trees it rolled back could not be repaired); the space refuses further use.
 * - EFAULT: (heap) bytes asked for lie outside a live area, or poisoned bytes were written.
 * - ETIMEDOUT: a wait (for a lock, a purge batch being flushed, a grace period) passed its timeoutMs.
 */
export type VmapErrorCode = "EINVAL" | "EBUSY" | "ENOENT" | "EDOUBLEFREE" | "ENOMEM" | "ECORRUPT" | "EOWNERDEAD" | "EFAULT" | "ETIMEDOUT";

export class VmapError extends Error {
	override readonly name = "VmapError";
	readonly code: VmapErrorCode;
	/** The message without its `CODE: ` prefix, for a layer that wraps it in its own words. */
	readonly detail: string;

	constructor(code: VmapErrorCode, detail: string, options?: { cause?: unknown }) {
		super(`${code}: ${detail}`, options);
		this.code = code;
		this.detail = detail;
	}
}

/** An internal invariant that can only break through a bug in this library. */
export function corrupt(message: string): never {
	throw new VmapError("ECORRUPT", message);
}

export function hex(n: number): string {
	return `0x${n.toString(16)}`;
}

/** How a bad value reads in a message: strings quoted, everything else as JS prints it. */
export function shown(v: unknown): string {
	if (typeof v === "string") return JSON.stringify(v);
	if (typeof v === "bigint") return `${v}n`;
	if (typeof v === "number" && Number.isInteger(v) && Math.abs(v) >= 0x10000) return `${v} (${hex(v)})`;
	try {
		return String(v);
	} catch {
		return Object.prototype.toString.call(v); // no toString (Object.create(null)) or one that throws
	}
}
