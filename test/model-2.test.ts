/**
 * Model-based tests of VmapSpace, part 2 of 2 (test/support/space-model.ts says what they
 * prove): random command sequences against a plain model, check() after every command.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { MIN_COMMANDS, modelRuns, RUNS, SEED } from "./support/space-model.ts";

const seed = SEED + 1;
test(`model 2/2: alloc/free/purge/find against a sorted-interval model (seed ${seed}, ${RUNS} runs)`, () => {
	const commands = modelRuns(seed, RUNS);
	assert.ok(commands >= MIN_COMMANDS || RUNS < 300, `only ${commands} commands ran; each half promises ${MIN_COMMANDS}`);
});
