/**
 * A new heap's two buffers: its space, whose extension region holds the heap's shared words
 * (layout.ts), written here before any other handle can see them; and its data.
 */
import { VmapError } from "../api/errors.ts";
import { VmapSpace } from "../space/space.ts";
import {
	blockPages,
	H_BLOCK_PAGES,
	H_COMMITTED,
	H_FLAGS,
	H_GP,
	H_GUARD,
	H_NR_BLOCKS,
	H_RING_CAP,
	heapWords,
	HF_POISON,
	POISON_BYTE,
} from "./layout.ts";
import { parseHeapOptions, type VmapHeapOptions } from "./options.ts";

/** The space and data of a new heap of `options` (checked: EINVAL naming what is wrong; ENOMEM when the runtime refuses the data). */
export function createHeapBuffers(options: VmapHeapOptions): { space: VmapSpace; data: SharedArrayBuffer } {
	const { space: params, size, maxSize, guardPages, poison, ringCap } = parseHeapOptions(options);
	const pageSize = params.pageSize;
	const bp = blockPages(maxSize / pageSize, params.nodes);
	const nrBlocks = Math.floor(maxSize / (bp * pageSize));
	let data: SharedArrayBuffer;
	try {
		data = new SharedArrayBuffer(size, { maxByteLength: maxSize });
	} catch (e) {
		throw new VmapError(
			"ENOMEM",
			`Cannot create a heap: the runtime refused a SharedArrayBuffer of ${size} bytes growable to ${maxSize} (${(e as Error).message})`,
		);
	}
	const space = VmapSpace.createWith(params, heapWords(ringCap, nrBlocks));
	const ext = space.extension();
	const hdr = ext.words;
	const e = ext.base;
	hdr[e + H_COMMITTED] = size / pageSize;
	hdr[e + H_FLAGS] = poison ? HF_POISON : 0;
	hdr[e + H_GUARD] = guardPages;
	hdr[e + H_BLOCK_PAGES] = bp;
	hdr[e + H_NR_BLOCKS] = nrBlocks;
	hdr[e + H_RING_CAP] = ringCap;
	hdr[e + H_GP] = 1;
	if (poison) new Uint8Array(data).fill(POISON_BYTE);
	return { space, data };
}
