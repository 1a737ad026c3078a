/**
 * Where a pool-path allocation that missed its pool goes (several nodes): the lowest fit that
 * starts in a zone of the allocating handle's node.
 *
 * Why: an area's busy tree is its start's node's (addr_to_node), and its purge returns it to
 * the pool of the node that allocated it (vn_id). When the two are one node, a later pool hit
 * takes that node's pool and busy locks only, and its free that node's busy and lazy locks: two
 * workers on two nodes share no node lock. With plain lowest fit, a worker's areas land in
 * either zone, and each worker waited on both nodes' busy locks about equally (the bench's
 * workers table: 22.6 % of worker time, node 0's busy lock 48 %, node 1's 46 %).
 *
 * The rule, exact (the model tests compute it too): take the plain lowest fit; while the fit
 * does not start in a zone of the node, try the node's next zone at or above it: if the
 * request fits in the same free block from that zone's start, that is the answer (nothing
 * lower starts in one of the node's zones: lower blocks cannot hold the request at all);
 * otherwise search again from that zone's start. After ZONE_TRIES searches, one more: the
 * lowest block at or above the last zone tried that is `size` plus (nodes - 1) zones long,
 * which holds the request at its first zone of the node wherever it starts; when there is none,
 * the plain lowest fit stands. Only for requests aligned to a page (a zone's start is then
 * aligned) over the whole space, under the free-space lock.
 *
 * The last search is for a node whose zones are full far up while the others' are free (a
 * space of two nodes with one busy worker: the other node's zones low in the space stay empty,
 * one zone each between full ones). Without it, 64 searches each skipped two zones and stopped
 * far below the free part of its zones, and 39 % of its areas went to the other node's zones.
 */
import type { VaTable } from "../buffer/va-table.ts";
import { vaEnd, vaStart } from "../buffer/record.ts";
import { findVmapLowestMatch } from "../tree/free-space.ts";
import { addrToNode } from "../tree/nodes.ts";
import type { SpaceState } from "./state.ts";

/**
 * Searches zone by zone before the search for a block that surely holds one of the node's
 * zones: each skips at least one zone of another node, and costs a descent of the free tree (a
 * few hundred ns) under the free-space lock.
 */
export const ZONE_TRIES = 16;

/** The start ownZoneFit() chose (module scratch: the pool-miss path returns two numbers and allocates nothing). */
export let zoneFitStart = 0;

/** The first address at or above `at` in a zone of handle `s`'s node. */
function nextOwnZone(s: SpaceState, at: number): number {
	const delta = s.node - addrToNode(at, s.zoneInverse, s.nodes);
	if (delta === 0) return at;
	// The zones dealt to the other nodes after at's, up to the next of this node's.
	return (Math.floor(at * s.zoneInverse) + (delta > 0 ? delta : delta + s.nodes)) * s.zoneSize;
}

/**
 * The free block to carve for a pool-path miss of `size` bytes (aligned to a page) by handle
 * `s`, given the plain lowest fit: block `va`, start `nva`. Sets zoneFitStart.
 */
export function ownZoneFit(t: VaTable, s: SpaceState, va: number, nva: number, size: number): number {
	zoneFitStart = nva;
	let block = va;
	let at = nva;
	for (let i = 0; i < ZONE_TRIES; i++) {
		const own = nextOwnZone(s, at);
		if (own + size <= vaEnd(t.f64, block)) {
			zoneFitStart = own;
			return block;
		}
		block = findVmapLowestMatch(t, size, s.pageSize, own, s.end, s.pageSize);
		if (block === 0) return va;
		at = Math.max(vaStart(t.f64, block), own);
	}
	// A block this long holds the request at its first zone of the node, wherever it starts.
	const from = nextOwnZone(s, at);
	block = findVmapLowestMatch(t, size + (s.nodes - 1) * s.zoneSize, s.pageSize, from, s.end, s.pageSize);
	if (block === 0) return va;
	zoneFitStart = nextOwnZone(s, Math.max(vaStart(t.f64, block), from));
	return block;
}
