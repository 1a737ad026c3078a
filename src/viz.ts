/**
 * The package's second entry, `vmalloc/viz`: pictures of a space from its dump() and stats()
 * (no Node import, so a page draws them too), kept out of the core entry so that a program
 * that only allocates loads none of it. Re-exports only.
 * @module vmalloc/viz
 */
export { mapSvg, type MapOptions } from "./viz/map.ts";
export { Timeline, TIMELINE_FIELDS, type TimelineData, type TimelineField } from "./viz/timeline.ts";
export { timelineSvg, type TimelineOptions } from "./viz/timeline-svg.ts";
