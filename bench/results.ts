/** What a bench run gives the report and the chart: each case's outcome, and the run's circumstances. */
import type { Case } from "./cases.ts";

export type Outcome =
	| { status: "ok"; result: Record<string, number | string | boolean> }
	| { status: "broken"; error: string; at: string }
	| { status: "skipped"; reason: string };

export type Run = Case & Outcome;

export interface Meta {
	date: string;
	node: string;
	platform: string;
	cpu: string;
	cores: number;
	seed: number;
	quick: boolean;
	timeLimit: number;
	wallSec: number;
}
