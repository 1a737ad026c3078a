/**
 * Looking addresses up: find() (kernel find_vmap_area), where an address lies when it starts
 * no busy area, and the error that says so in the words of the call that asked.
 */
import type { AreaInfo } from "./api.ts";
import { findVmapArea } from "./busy-tree.ts";
import { corrupt, hex, shown, VmapError } from "./errors.ts";
import { HDR_FREE_LOCK, HDR_FREE_ROOT, MAX_VA_SIZE_PAGES, N_BUSY_LOCK, N_BUSY_ROOT, N_LAZY_HEAD, N_LAZY_LOCK, N_POOL_LOCK, nodeBase } from "./layout.ts";
import { purgeHeads } from "./info.ts";
import { findListed, poolWord } from "./nodes.ts";
import { vaEnd, vaStart, vaTag } from "./record.ts";
import { NOT_SMALL } from "./small.ts";
import type { SpaceState } from "./space-init.ts";

/**
 * The area holding `addr`, busy or lazy, or undefined. A busy area is found in O(nodes log n):
 * the busy trees are searched from the address's node backwards, so an area spanning zones is
 * found at its start's node. Any other address is looked up with every lock held, a scan of
 * the lazy and pooled areas included.
 */
export function findArea(s: SpaceState, addr: number): AreaInfo | undefined {
	s.locks.checkAlive();
	if (!Number.isSafeInteger(addr)) throw new VmapError("EINVAL", `Cannot find: address must be a whole number, got ${shown(addr)}`);
	if (addr < s.start || addr >= s.end) return undefined;
	if (s.small !== undefined) {
		const info = s.small.find(addr); // an address in a small-area block: its small area, or none
		if (info !== NOT_SMALL) return info;
	}
	const t = s.table;
	const locks = s.locks;
	const first = s.addrNode(addr);
	for (let i = 0, v = first; i < s.nodes; i++, v = v === 0 ? s.nodes - 1 : v - 1) {
		const b = nodeBase(v);
		locks.acquire(b + N_BUSY_LOCK);
		t.sync();
		const va = findVmapArea(t, b + N_BUSY_ROOT, addr);
		const info = va === 0 ? undefined : describe(s, va, "busy");
		locks.release(b + N_BUSY_LOCK);
		if (info !== undefined) return info;
	}
	const where = locate(s, addr);
	return where.state === "busy" || where.state === "lazy" ? where.info : undefined;
}

function describe(s: SpaceState, va: number, state: "busy" | "lazy"): AreaInfo {
	const t = s.table;
	const f64 = t.f64;
	const i32 = t.i32;
	const start = vaStart(f64, va);
	const end = vaEnd(f64, va);
	const tag = vaTag(i32, va);
	return { start, end, size: end - start, tag: tag === 0 ? undefined : s.tags.name(tag), state };
}

/**
 * Run `read` over a still space: holding every lock but the purge mutex, in the lock order
 * (free space, then each kind of node lock in node order).
 */
export function withEveryLock<T>(s: SpaceState, read: () => T): T {
	const locks = s.locks;
	locks.checkAlive();
	const words = [HDR_FREE_LOCK];
	for (const kind of [N_POOL_LOCK, N_BUSY_LOCK, N_LAZY_LOCK]) for (let v = 0; v < s.nodes; v++) words.push(nodeBase(v) + kind);
	let held = 0;
	try {
		for (; held < words.length; held++) locks.acquire(words[held]!);
		s.table.sync();
		return read();
	} finally {
		while (held > 0) locks.release(words[--held]!);
	}
}

/**
 * Where `addr` lies, looked up with every lock held: in a busy area, a lazy one, free space
 * (a free block or a pooled area), or "nowhere", which only a broken space allows. `info`
 * describes a busy or lazy area.
 */
function locate(s: SpaceState, addr: number): { state: "busy" | "lazy" | "free" | "nowhere"; info: AreaInfo | undefined } {
	return withEveryLock(s, () => {
		const t = s.table;
		for (let v = 0; v < s.nodes; v++) {
			const b = nodeBase(v);
			const busy = findVmapArea(t, b + N_BUSY_ROOT, addr);
			if (busy !== 0) return { state: "busy", info: describe(s, busy, "busy") };
			let lazy = findListed(t, t.hdr[b + N_LAZY_HEAD]!, addr);
			for (const head of purgeHeads(t, v)) lazy ||= findListed(t, head, addr);
			if (lazy !== 0) return { state: "lazy", info: describe(s, lazy, "lazy") };
		}
		if (findVmapArea(t, HDR_FREE_ROOT, addr) !== 0) return { state: "free", info: undefined };
		for (let v = 0; v < s.nodes; v++) {
			for (let pages = 1; pages <= MAX_VA_SIZE_PAGES; pages++) {
				if (findListed(t, t.hdr[poolWord(v, pages)]!, addr) !== 0) return { state: "free", info: undefined };
			}
		}
		return { state: "nowhere", info: undefined };
	});
}

/** `addr` starts no busy area: throw the error that says what lies there, in the words of `op`. */
export function notAnArea(s: SpaceState, addr: number, op: string): never {
	if (addr < s.start || addr >= s.end) {
		throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: the address is outside the space [${hex(s.start)}, ${hex(s.end)})`);
	}
	const where = locate(s, addr);
	const info = where.info;
	if (where.state === "nowhere") return corrupt(`${hex(addr)} is in no busy area, no lazy area, no free block and no pool`);
	if (info === undefined) {
		throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: no area starts there; the address is free (never allocated, or already freed and purged)`);
	}
	const range = `[${hex(info.start)}, ${hex(info.end)})`;
	if (info.state === "lazy" && info.start === addr) {
		throw new VmapError("EDOUBLEFREE", `Cannot ${op} ${hex(addr)}: the area ${range} is freed already (lazy, waiting for a purge)`);
	}
	if (info.start === addr) {
		// Between the failed lookup and this diagnosis another worker allocated an area here.
		throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: no area started there when the call looked (another worker allocated ${range} since)`);
	}
	throw new VmapError("ENOENT", `Cannot ${op} ${hex(addr)}: no area starts there; it lies inside the area ${range}${info.state === "lazy" ? ", which is freed already" : ""}`);
}
