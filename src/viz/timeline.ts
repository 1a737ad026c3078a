/**
 * A run's timeline, sampled from stats() (which takes no allocator lock); its picture is
 * timeline-svg.ts's.
 *
 * Timeline.sample() copies a few figures of one VmapStats into typed arrays (no object per
 * sample); timelineSvg() draws four panels over a shared time axis:
 * - the lazy backlog (vmapLazyNr) against lazyMaxPages, where a drain is due, and twice it, the
 *   priority threshold where the free path purges by itself;
 * - purges so far, by who ran them (drain, priority, overflow, the rest);
 * - live bytes (busyBytes) and the largest free block;
 * - fragmentation: the peak span so far over the peak live bytes so far.
 */
import type { VmapStats } from "../api/types.ts";
import { VmapError, shown } from "../api/errors.ts";

/** The series a Timeline keeps, in the order of its columns: `t` (seconds) and figures of stats(). */
export const TIMELINE_FIELDS = [
	"t",
	"lazyPages",
	"lazyMaxPages",
	"purges",
	"drainPurges",
	"priorityPurges",
	"overflowPurges",
	"liveBytes",
	"spanBytes",
	"largestFreeBlock",
] as const;
/** The name of one series a Timeline keeps (one per sampled figure). */
export type TimelineField = (typeof TIMELINE_FIELDS)[number];

/** A timeline as JSON: one array per figure, `t` in seconds from the first sample. */
export type TimelineData = { [K in TimelineField]: number[] } & { title?: string };

export class Timeline {
	#cols: Float64Array[] = TIMELINE_FIELDS.map(() => new Float64Array(256));
	#n = 0;
	#t0 = -1;

	/** Samples taken. */
	get length(): number {
		return this.#n;
	}

	/** Record `stats` (of stats(); nothing of it is kept) as of `nowMs` (performance.now() when omitted). */
	sample(stats: VmapStats, nowMs: number = performance.now()): void {
		if (typeof stats !== "object" || stats === null || typeof nowMs !== "number") {
			throw new VmapError(
				"EINVAL",
				`Cannot sample: stats must be a stats() result and nowMs a number, got ${shown(stats)} and ${shown(nowMs)}`,
			);
		}
		if (this.#n === this.#cols[0]!.length)
			this.#cols = this.#cols.map((c) => {
				const d = new Float64Array(c.length * 2);
				d.set(c);
				return d;
			});
		if (this.#t0 < 0) this.#t0 = nowMs;
		const c = this.#cols;
		const n = this.#n++;
		c[0]![n] = (nowMs - this.#t0) / 1000;
		c[1]![n] = stats.vmapLazyNr;
		c[2]![n] = stats.lazyMaxPages;
		c[3]![n] = stats.purges;
		c[4]![n] = stats.drainPurges;
		c[5]![n] = stats.priorityPurges;
		c[6]![n] = stats.overflowPurges;
		c[7]![n] = stats.busyBytes;
		c[8]![n] = stats.spanBytes;
		c[9]![n] = stats.largestFreeBlock;
	}

	/** The samples as plain arrays (JSON.stringify calls this). */
	toJSON(): TimelineData {
		const out = {} as TimelineData;
		for (const [k, f] of TIMELINE_FIELDS.entries()) out[f] = Array.from(this.#cols[k]!.subarray(0, this.#n));
		return out;
	}

	/** A timeline from its toJSON(). */
	static fromJSON(data: TimelineData | string): Timeline {
		let d: unknown = data;
		if (typeof data === "string") {
			try {
				d = JSON.parse(data);
			} catch (e) {
				throw new VmapError("EINVAL", `Cannot read a timeline: not JSON (${(e as Error).message})`);
			}
		}
		const x = d as Partial<TimelineData> | null;
		const n = Array.isArray(x?.t) ? x.t.length : -1;
		const bad =
			typeof x !== "object" || x === null
				? "not an object"
				: TIMELINE_FIELDS.find(
						(f) => !Array.isArray(x[f]) || x[f].length !== n || !x[f].every((v) => typeof v === "number" && Number.isFinite(v)),
					);
		if (bad !== undefined)
			throw new VmapError(
				"EINVAL",
				`Cannot read a timeline: it must be a Timeline's toJSON() (${TIMELINE_FIELDS.join(", ")}: arrays of numbers of one length), got ${typeof bad === "string" && bad !== "not an object" ? `a bad ${bad}` : shown(d)}`,
			);
		const tl = new Timeline();
		tl.#cols = TIMELINE_FIELDS.map((f) => Float64Array.from(x![f]!.length > 0 ? x![f]! : [0]));
		tl.#n = n;
		tl.#t0 = 0;
		return tl;
	}

	/** @internal Column `f`, the first `length` values. */
	column(f: TimelineField): Float64Array {
		return this.#cols[TIMELINE_FIELDS.indexOf(f)]!.subarray(0, this.#n);
	}
}
