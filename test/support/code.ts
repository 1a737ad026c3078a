import assert from "node:assert/strict";
import { VmapError } from "../../src/index.ts";

/** Run `fn`, which must throw a VmapError; return its code (the message must start with it). */
export function code(fn: () => unknown): string {
	try {
		fn();
	} catch (e) {
		assert.ok(e instanceof VmapError, `not a VmapError: ${String(e)}`);
		assert.ok(e instanceof Error);
		assert.equal(e.name, "VmapError");
		assert.ok(e.message.startsWith(`${e.code}: `), e.message);
		return e.code;
	}
	assert.fail("no error thrown");
}
