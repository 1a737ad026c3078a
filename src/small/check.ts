/**
 * check() of the small-area blocks (small/descriptor.ts): the block index, every descriptor and
 * its area, and, for the blocks the checking handle owns (whose words only its own thread
 * writes, so a copy of them is exact), every bitmap against the others and the dirty count.
 * Blocks of other live handles are checked for everything but their bitmaps, which their
 * owners change without a lock; each owner's own check() covers them, and its gauges
 * (buffer/gauges.ts) against the slots of the blocks it owns.
 */
import { corrupt, hex } from "../api/errors.ts";
import {
	HANDLE_ALIVE,
	HANDLE_ENDING,
	HANDLE_MAX,
	HDR_TAG_NR,
	HANDLE_WORDS,
	HDR_BLOCK_INDEX,
	HDR_BLOCK_NR,
	HDR_BLOCK_USED,
	HDRF_BLOCK_BYTES,
	HDRF_SMALL_MAX,
	REC_I32,
	VA_BUSY,
	VA_SMALL_BLOCK,
	VA_STATE,
	VA_OWNER_MASK,
} from "../buffer/layout.ts";
import { readGauges } from "../buffer/gauges.ts";
import { vaEnd, vaFlags, vaOwner, vaStart } from "../buffer/record.ts";
import {
	bitWord,
	blockStartOf,
	D_AREA,
	D_CLASS,
	D_TAG,
	D_DIRTY_NR,
	liveSlots,
	D_OWNER,
	D_RUN,
	D_SLOTS,
	D_STATE,
	D_BITS,
	OWNER_RETIRED,
	SMALL_BLOCK_LIMBO,
	D_WORDS,
	descriptorRun,
	DIRTY,
	FLUSHING,
	FREE,
	LIVE,
	MARK,
	MAX_SLOTS,
	popcount,
	REMOTE,
	sizeClasses,
	slotBytesOf,
	SMALL_BLOCK_ACTIVE,
} from "./descriptor.ts";
import { eachBlock, ENTRY_DESC, indexBase, indexRun, lookupBlock } from "./block-index.ts";
import { eachInLimbo } from "./limbo.ts";
import type { VaTable } from "../buffer/va-table.ts";

/**
 * Validate the blocks of still copy `t`; `blockAreas` are the busy records flagged
 * VA_SMALL_BLOCK the busy trees hold, `seen` marks records in use. Returns the records the
 * index and the descriptors take.
 */
export function checkBlocks(t: VaTable, self: number, blockAreas: number[], seen: Uint8Array, pageSize: number): number {
	const hdr = t.hdr;
	const i32 = t.i32;
	const f64 = t.f64;
	const smallMax = t.hdrF[HDRF_SMALL_MAX]!;
	const blockBytes = t.hdrF[HDRF_BLOCK_BYTES]!;
	const first = hdr[HDR_BLOCK_INDEX]!;
	if (smallMax === 0) {
		if (first !== 0 || blockAreas.length !== 0)
			corrupt(
				`small-area blocks: the space has no cache (smallMax 0) but ${blockAreas.length} block areas and index record ${first}`,
			);
		return 0;
	}
	if (first === 0) {
		if (blockAreas.length !== 0 || hdr[HDR_BLOCK_NR] !== 0)
			corrupt(`small-area blocks: ${blockAreas.length} block areas but no block index`);
		return 0;
	}
	let records = 0;
	const mark = (rec: number, n: number, what: string) => {
		for (let r = rec; r < rec + n; r++) {
			if (r <= 0 || r >= seen.length) corrupt(`${what}: record ${r} is outside [1, SLOT_HIGH ${seen.length})`);
			if (seen[r]) corrupt(`${what}: record ${r} is also in another structure`);
			seen[r] = 1;
		}
		records += n;
	};
	const cap = i32[first * REC_I32]!;
	if (!(cap >= 16 && 2 ** Math.round(Math.log2(cap)) === cap)) corrupt(`block index: capacity ${cap} is not a power of two >= 16`);
	mark(first, indexRun(cap), "block index");
	if (i32[first * REC_I32 + 1] !== indexRun(cap))
		corrupt(`block index: run of ${i32[first * REC_I32 + 1]} records, ${indexRun(cap)} expected`);

	const areaOf = new Map<number, number>();
	for (const va of blockAreas) areaOf.set(vaStart(f64, va), va);
	const ctx: BlockCheck = { t, classes: sizeClasses(smallMax, blockBytes, pageSize), blockBytes, areaOf, self, mark };
	let blocks = 0;
	let used = 0;
	for (let e = 0; e < cap; e++) {
		const w = indexBase(first) + e * 4;
		const d = i32[w + ENTRY_DESC]!;
		if (d === 0) continue;
		used++;
		if (d === -1) continue;
		blocks++;
		const what = `block index entry ${e}`;
		if (d % REC_I32 !== 0) corrupt(`${what}: descriptor word ${d} is not a record's first`);
		const start = f64[w >> 1]!;
		if (i32[d + D_STATE] !== SMALL_BLOCK_ACTIVE) corrupt(`${what}: descriptor at record ${d / REC_I32} is not an active block`);
		if (blockStartOf(f64, d) !== start) corrupt(`${what}: indexed at ${hex(start)}, its descriptor says ${hex(blockStartOf(f64, d))}`);
		if (lookupBlock(t, first, start, 1 / blockBytes) !== d)
			corrupt(`${what}: a lookup of ${hex(start)} does not find it (probe chain broken)`);
		checkDescriptor(ctx, d, start);
	}
	checkGauges(t, self);
	eachInLimbo(t, (d) => {
		const what = `limbo descriptor at record ${d / REC_I32}`;
		if (d <= 0 || d % REC_I32 !== 0 || d + D_BITS > i32.length) corrupt(`${what}: not a record's first word`);
		if (i32[d + D_STATE] !== SMALL_BLOCK_LIMBO || i32[d + D_OWNER] !== OWNER_RETIRED) corrupt(`${what}: not a retired descriptor`);
		mark(d / REC_I32, i32[d + D_RUN]!, what);
	});
	if (blocks !== hdr[HDR_BLOCK_NR]) corrupt(`block index: holds ${blocks} blocks, header says ${hdr[HDR_BLOCK_NR]}`);
	if (used !== hdr[HDR_BLOCK_USED])
		corrupt(`block index: ${used} entries in use (blocks and deleted), header says ${hdr[HDR_BLOCK_USED]}`);
	if (blocks !== blockAreas.length)
		corrupt(`small-area blocks: ${blockAreas.length} busy areas are flagged as blocks, the index holds ${blocks}`);
	return records;
}

/**
 * Each block's maker, as the index keeps it, against the owner recorded in its area; and the
 * gauges of handle `self` against the slots of the blocks it owns (whose words are still).
 */
function checkGauges(t: VaTable, self: number): void {
	const i32 = t.i32;
	const sums = [0, 0, 0, 0]; // as readGauges(): in use, dirty, in-use bytes, dirty bytes
	eachBlock(t, (d, token) => {
		const maker = vaOwner(i32, i32[d + D_AREA]!);
		if ((token & VA_OWNER_MASK) !== maker)
			corrupt(
				`small-area block at ${hex(blockStartOf(t.f64, d))}: its maker is handle ${token & VA_OWNER_MASK}, its area says ${maker}`,
			);
		if (i32[d + D_OWNER] !== self) return;
		const bytes = slotBytesOf(t.f64, d);
		const used = liveSlots(i32, d) + i32[d + D_DIRTY_NR]!;
		sums[0]! += used;
		sums[1]! += i32[d + D_DIRTY_NR]!;
		sums[2]! += used * bytes;
		sums[3]! += i32[d + D_DIRTY_NR]! * bytes;
	});
	const gauges = [...readGauges(t, self, new Float64Array(4))];
	if (gauges.some((x, i) => x !== sums[i]))
		corrupt(
			`small-area gauges of handle ${self}: [in use, dirty, in-use bytes, dirty bytes] are [${gauges}], its blocks hold [${sums}]`,
		);
}

/** What checkDescriptor() checks a descriptor against. */
interface BlockCheck {
	t: VaTable;
	/** The size classes, bytes. */
	classes: number[];
	blockBytes: number;
	/** Busy areas flagged as blocks, by start. */
	areaOf: Map<number, number>;
	/** The checking handle: only its own blocks' bitmaps are still. */
	self: number;
	/** Claim `n` records from `rec` for `what` (each in one structure only). */
	mark: (rec: number, n: number, what: string) => void;
}

function checkDescriptor(ctx: BlockCheck, d: number, start: number): void {
	const { t, classes, blockBytes, areaOf, self, mark } = ctx;
	const i32 = t.i32;
	const f64 = t.f64;
	const name = `small-area block [${hex(start)}, ${hex(start + blockBytes)})`;
	const c = i32[d + D_CLASS]!;
	const bytes = slotBytesOf(f64, d);
	const slots = i32[d + D_SLOTS]!;
	const words = i32[d + D_WORDS]!;
	if (!(c >= 0 && c < classes.length) || classes[c] !== bytes)
		corrupt(`${name}: class ${c} with ${bytes}-byte areas is not one of the size classes`);
	if (slots !== Math.min(MAX_SLOTS, Math.floor(blockBytes / bytes)) || words !== Math.ceil(slots / 32))
		corrupt(`${name}: ${slots} slots in ${words} words for ${bytes}-byte areas`);
	if (i32[d + D_RUN] !== descriptorRun(slots))
		corrupt(`${name}: descriptor run of ${i32[d + D_RUN]} records, ${descriptorRun(slots)} expected`);
	mark(d / REC_I32, descriptorRun(slots), `${name} descriptor`);
	if (start % blockBytes !== 0) corrupt(`${name}: not aligned to its size`);
	const va = areaOf.get(start);
	if (va === undefined || va !== i32[d + D_AREA])
		corrupt(`${name}: its area record ${i32[d + D_AREA]} is not a busy area flagged as a block starting there`);
	if (vaEnd(f64, va) !== start + blockBytes || (vaFlags(i32, va) & (VA_STATE | VA_SMALL_BLOCK)) !== (VA_BUSY | VA_SMALL_BLOCK))
		corrupt(`${name}: its area is not a busy block of ${blockBytes} bytes`);
	const tag = i32[d + D_TAG]!;
	if (!(tag >= 0 && tag < t.hdr[HDR_TAG_NR]!)) corrupt(`${name}: tag ${tag} is not in the tag table`);
	const owner = i32[d + D_OWNER]!;
	if (owner < 0 || owner > HANDLE_MAX) corrupt(`${name}: owner ${owner} is no handle id`);
	const state = owner === 0 ? HANDLE_ALIVE : t.handles[(owner - 1) * HANDLE_WORDS];
	if (state !== HANDLE_ALIVE && state !== HANDLE_ENDING) corrupt(`${name}: owned by handle ${owner}, which is not attached`); // ENDING: its end hooks orphan it
	if (owner !== self) return; // its bitmaps change under their owner's hand
	let nDirty = 0;
	for (let w = 0; w < words; w++) {
		const all = slots - 32 * w >= 32 ? -1 : (1 << (slots - 32 * w)) - 1;
		const l = i32[bitWord(d, LIVE, w)]!;
		const dt = i32[bitWord(d, DIRTY, w)]!;
		const f = i32[bitWord(d, FREE, w)]!;
		if ((l & dt) | (l & f) | (dt & f)) corrupt(`${name}: word ${w}: a slot is in two of live, dirty and free`);
		if ((l | dt | f) !== all)
			corrupt(`${name}: word ${w}: live | dirty | free is ${hex((l | dt | f) >>> 0)}, the slots are ${hex(all >>> 0)}`);
		if ((i32[bitWord(d, FLUSHING, w)]! & ~dt) !== 0) corrupt(`${name}: word ${w}: a flushing slot is not dirty`);
		if ((i32[bitWord(d, REMOTE, w)]! & ~l) !== 0) corrupt(`${name}: word ${w}: a slot freed by another handle is not live`);
		if ((i32[bitWord(d, MARK, w)]! & ~l) !== 0) corrupt(`${name}: word ${w}: a marked slot is not live`);
		nDirty += popcount(dt);
	}
	if (nDirty !== i32[d + D_DIRTY_NR]) corrupt(`${name}: bitmaps hold ${nDirty} dirty slots; the count says ${i32[d + D_DIRTY_NR]}`);
}
