/**
 * What the heap's calls may touch: the live vmalloc area an address starts (liveArea), and
 * whether bytes may be read and written (validateReach: EFAULT otherwise).
 */
import type { AreaInfo } from "../api/types.ts";
import type { Blocks } from "./map-ram.ts";
import { VM_MAP_RAM } from "./map-ram.ts";
import { hex, shown, VmapError } from "../api/errors.ts";
import type { SpaceExtension } from "../core/extension.ts";
import type { VmapSpace } from "../space/space.ts";

/** The tag of areas freeDeferred has queued: the heap's own, vfree() refuses them. */
export const DEFERRED_TAG = "vfree_deferred";
/** The tag of vmalloc areas when the caller gives none. */
export const VMALLOC_TAG = "vmalloc";

/** The busy vmalloc area starting at `addr`; throws what `op` must say otherwise. */
export function liveArea(space: VmapSpace, addr: number, op: string): AreaInfo {
	if (!Number.isSafeInteger(addr)) throw new VmapError("EINVAL", `Cannot ${op}: address must be a whole number, got ${shown(addr)}`);
	const area = space.find(addr);
	if (area !== undefined && area.start === addr && area.state === "busy" && area.tag !== DEFERRED_TAG && area.tag !== VM_MAP_RAM)
		return area;
	if (!area) throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: no area starts there; the address is free`);
	const range = `[${hex(area.start)}, ${hex(area.end)})`;
	if (area.start !== addr)
		throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: no area starts there; it lies inside the ${area.state} area ${range}`);
	if (area.state === "lazy") throw new VmapError("EDOUBLEFREE", `Cannot ${op} ${hex(addr)}: the area ${range} is freed already`);
	if (area.tag === DEFERRED_TAG)
		throw new VmapError("EDOUBLEFREE", `Cannot ${op} ${hex(addr)}: the area ${range} is queued for freeing after a grace period`);
	throw new VmapError("EINVAL", `Cannot ${op} ${hex(addr)}: ${range} is a vm_map_ram mapping; use vmUnmapRam`);
}

/** What validateReach() looks at: the heap's space and its extension, its vm_map_ram blocks, the guard pages of an area. */
export interface Reach {
	ext: SpaceExtension;
	space: VmapSpace;
	blocks: Blocks;
	guardPages: number;
}

/** EFAULT unless [addr, addr + length) may be read and written; EINVAL for bad arguments. */
export function validateReach(reach: Reach, addr: number, length: number, align: number, op: string): void {
	const { ext, space, blocks, guardPages } = reach;
	ext.ensureAlive();
	if (!Number.isSafeInteger(addr) || addr < 0 || addr % align !== 0) {
		throw new VmapError(
			"EINVAL",
			`Cannot ${op}: address must be a whole number${align > 1 ? ` and a multiple of ${align}` : ""}, got ${shown(addr)}`,
		);
	}
	if (!Number.isSafeInteger(length) || length < 0)
		throw new VmapError("EINVAL", `Cannot ${op}: length must be a whole number, got ${shown(length)}`);
	const refused = () => `${op}() cannot reach [${hex(addr)}, ${hex(addr + length)})`;
	const idx = blocks.blockAt(addr);
	if (idx >= 0) {
		if (!blocks.mapped(idx, addr, length))
			throw new VmapError("EFAULT", `${refused()}: not all of it is mapped in its vm_map_ram block`);
		return;
	}
	const area = space.find(addr);
	if (!area) throw new VmapError("EFAULT", `${refused()}: ${hex(addr)} is in no area (free space)`);
	if (area.state === "lazy") throw new VmapError("EFAULT", `${refused()}: the area [${hex(area.start)}, ${hex(area.end)}) was freed`);
	const end = area.tag === VM_MAP_RAM ? area.end : area.end - guardPages * space.pageSize;
	if (addr + length > end) {
		throw new VmapError(
			"EFAULT",
			`${refused()}: it crosses the end of the area [${hex(area.start)}, ${hex(end)})${end < area.end ? " into its guard page" : ""}`,
		);
	}
}

/** view()'s arguments checked: the element size of `type`. */
export function elementSize(type: unknown, length: number): number {
	const size = (type as { BYTES_PER_ELEMENT?: unknown } | null)?.BYTES_PER_ELEMENT;
	if (typeof type !== "function" || typeof size !== "number") {
		throw new VmapError("EINVAL", `Cannot view: type must be a typed-array constructor such as Float64Array, got ${shown(type)}`);
	}
	if (!Number.isSafeInteger(length) || length < 0)
		throw new VmapError(
			"EINVAL",
			`Cannot view: length must be a whole number of elements, got ${typeof length === "number" ? shown(length) : `${typeof length} ${shown(length)}`}`,
		);
	return size;
}
