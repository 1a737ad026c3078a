/**
 * Crash-point runs, as databases test crash safety: a handle "dies" at its k-th crash point
 * (buffer/journal.ts: every journaled write, every step of the lock protocol), for every k
 * its operation passes, and another handle of the space observes its end and recovers. After
 * each: check() passes, and the space is as it was before the operation or as the operation
 * leaves it (or, for an operation made of several critical sections, as the scenario accepts).
 */
import assert from "node:assert/strict";
import { CrashPoint, crashAfter, crashPointsLeft, hasCrashed, overflows } from "../../src/buffer/journal.ts";
import type { VmapDump, VmapHeap, VmapSpace } from "../../src/index.ts";

/** Another handle of the victim's space (or heap): it observes the end, recovers and checks. */
export type Recoverer = VmapSpace | VmapHeap;

/** What a scenario sets up afresh for every crash point. */
export interface Stage<V, R extends Recoverer = VmapSpace> {
	/** The handle that runs the operation and dies in it. */
	victim: V;
	/** Its token (the recoverer ends it). */
	token: string;
	recoverer: R;
}

export interface Scenario<V, R extends Recoverer = VmapSpace> {
	name: string;
	setup(): Stage<V, R>;
	op(victim: V): void;
	/**
	 * For an operation of several critical sections: the state after recovery is one of its
	 * steps, not only before or after. `settle` runs on the recoverer first (e.g. a purge that
	 * finishes what the dead one began), and then the state must equal the reference's after
	 * the operation and the same settle.
	 */
	settle?(recoverer: R): void;
	/**
	 * For an operation of two critical sections around work that holds no lock (a heap's
	 * vrealloc: allocate, copy, free): true when a death between them may also leave the areas
	 * of both states, the new one held by the dead handle.
	 */
	both?: boolean;
	/**
	 * What must equal before or after, when not the whole state: a small-area block emptied by
	 * a death is retired when its end is seen, so there the live small areas are what counts.
	 */
	project?(recoverer: R): unknown;
	/**
	 * Run on the recoverer before each state is read, before and after alike (the state before
	 * is read from a stage of its own): for what a death leaves for another step to take in
	 * (a remote free its owner has not taken in yet).
	 */
	tidy?(recoverer: R): void;
}

const MANY = 1e9;

/** The state a dump describes, minus what only says who looked (statistics of handles and waits). */
export function state(r: Recoverer): unknown {
	const d = dumpOf(r) as unknown as { areas: unknown; free: unknown; blocks: Owned[]; stats: Record<string, unknown> };
	const { lockWaitMs: _w, ...stats } = d.stats;
	return { areas: d.areas, free: d.free, blocks: unowned(d.blocks), stats };
}

type Owned = { owner?: unknown };

/** Small-area blocks without their owners: the dead handle's become nobody's when its end is seen. */
function unowned(blocks: Owned[]): unknown {
	return blocks.map(({ owner: _o, ...rest }) => rest);
}

function dumpOf(r: Recoverer): VmapDump {
	return "space" in r ? r.space.dump() : r.dump();
}

const GAUGES = ["busyBytes", "busyAreas", "lazyBytes", "lazyAreas", "freeBytes", "freeBlocks", "poolBytes", "poolAreas", "vmapLazyNr"];

/**
 * What a space holds, without its event counters: after a death mid-purge, the purge that
 * adopts the dead one's batch flushes it again and counts that (as it should).
 */
export function holdings(r: Recoverer): unknown {
	const d = dumpOf(r) as unknown as { areas: unknown; free: unknown; blocks: Owned[]; stats: Record<string, unknown> };
	return { areas: d.areas, free: d.free, blocks: unowned(d.blocks), gauges: GAUGES.map((g) => [g, d.stats[g]]) };
}

/** Run `s` with a death at each of its crash points in turn; returns how many there were. */
export function crashEveryPoint<V, R extends Recoverer>(s: Scenario<V, R>): number {
	const ref = s.setup();
	crashAfter(MANY);
	s.op(ref.victim);
	const points = MANY - crashPointsLeft();
	crashAfter(0);
	const project = s.project ?? (s.settle === undefined ? state : holdings);
	const look = (r: R) => {
		s.tidy?.(r);
		return project(r);
	};
	let tidyBefore: unknown;
	if (s.tidy !== undefined) {
		const b = s.setup();
		tidyBefore = look(b.recoverer);
		b.recoverer.close();
	}
	if (s.settle !== undefined) {
		ref.recoverer.exited(ref.token); // as in the runs below: settle() runs on a space the victim has left
		s.settle(ref.recoverer);
	}
	const after = look(ref.recoverer);
	assert.ok(points > 0, `${s.name}: the operation passed no crash point`);
	const overflowed = overflows;
	for (let k = 1; k <= points; k++) {
		const st = s.setup();
		const before = s.tidy === undefined ? look(st.recoverer) : tidyBefore;
		crashAfter(k);
		try {
			s.op(st.victim);
		} catch (e) {
			if (!(e instanceof CrashPoint)) throw e;
		}
		assert.ok(hasCrashed(), `${s.name}: crash point ${k} of ${points} was not reached`);
		crashAfter(0);
		st.recoverer.exited(st.token);
		try {
			st.recoverer.check();
			if (s.settle !== undefined) {
				s.settle(st.recoverer);
				st.recoverer.check();
				assert.deepEqual(look(st.recoverer), after);
			} else {
				const now = look(st.recoverer);
				const same = isDeepEqual(now, before) || isDeepEqual(now, after) || (s.both === true && isUnion(now, before, after));
				if (!same) assert.deepEqual(now, before, "neither the state before nor the one after");
			}
		} catch (e) {
			(e as Error).message = `${s.name}, death at crash point ${k} of ${points}: ${(e as Error).message}`;
			throw e;
		}
		assert.equal(overflows, overflowed, `${s.name}: a journal overflowed`);
		st.recoverer.close();
	}
	ref.recoverer.close();
	return points;
}

/** Whether `now`'s busy areas are those of `before` and `after` together. */
function isUnion(now: unknown, before: unknown, after: unknown): boolean {
	type Areas = { areas: Array<{ start: number }> };
	const all = new Map<number, unknown>();
	for (const a of [...(after as Areas).areas, ...(before as Areas).areas]) all.set(a.start, a); // an area in both as it was before
	return isDeepEqual(
		(now as Areas).areas,
		[...all.values()].sort((x, y) => (x as { start: number }).start - (y as { start: number }).start),
	);
}

function isDeepEqual(a: unknown, b: unknown): boolean {
	try {
		assert.deepEqual(a, b);
		return true;
	} catch {
		return false;
	}
}
