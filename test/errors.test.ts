/**
 * Errors that teach: a misspelt per-call option is EINVAL naming the known ones (as create()
 * does), a full heap names maxSize and how to raise it, and the usual mistakes of sharing
 * (posting the object instead of its handle, attaching a space to a heap's handle or the
 * reverse) say what to post. Each failed call leaves dump() as it was.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { MessageChannel, type MessagePort } from "node:worker_threads";
import { VmapError, VmapHeap, VmapSpace } from "../src/index.ts";

const P = 4096;

function einval(pattern: RegExp) {
	return (e: unknown) => e instanceof VmapError && e.code === "EINVAL" && pattern.test(e.message);
}

/** `value` as a worker would receive it: through a real MessagePort (structured clone). */
async function posted(value: unknown): Promise<unknown> {
	const { port1, port2 } = new MessageChannel();
	const got = new Promise((resolve) => port2.once("message", resolve));
	port1.postMessage(value);
	const v = await got;
	for (const p of [port1, port2] as MessagePort[]) p.close();
	return v;
}

test("errors: a misspelt per-call option is EINVAL naming the known options, and changes nothing", async () => {
	const space = VmapSpace.create({ size: 64 * P });
	const heap = VmapHeap.create({ size: 64 * P });
	const a = heap.vmalloc(10);
	const before = [space.dump(), heap.space.dump()];
	const typo = { aligment: 65536 } as never;
	assert.throws(
		() => space.alloc(P, typo),
		einval(/^EINVAL: Cannot alloc: unknown option "aligment" \(known: align, vstart, vend, tag, nowait, timeoutMs\)$/),
	);
	await assert.rejects(space.allocAsync(P, typo), einval(/Cannot alloc: unknown option "aligment"/));
	assert.throws(() => space.purge({ synk: true } as never), einval(/Cannot purge: unknown option "synk" \(known: sync, timeoutMs\)/));
	assert.throws(() => space.stats({ pool: true } as never), einval(/Cannot read stats: unknown option "pool" \(known: pools, into\)/));
	assert.throws(
		() => VmapSpace.attach(space.handle, { flsh: () => {} } as never),
		einval(/Cannot attach: unknown option "flsh" \(known: flush, timeoutMs\)/),
	);
	assert.throws(
		() => heap.vmalloc(P, { alignment: 65536 } as never),
		einval(/Cannot vmalloc: unknown option "alignment" \(known: tag, align, nowait\)/),
	);
	assert.throws(() => heap.vzalloc(P, { tags: "x" } as never), einval(/Cannot vzalloc: unknown option "tags"/));
	assert.throws(
		() => heap.freeDeferred(a, { noWait: true } as never),
		einval(/Cannot freeDeferred: unknown option "noWait" \(known: nowait\)/),
	);
	assert.throws(() => VmapHeap.attach(heap.handle, { timeout: 5 } as never), einval(/Cannot attach: unknown option "timeout"/));
	assert.throws(
		() => space.alloc(P, 5 as never),
		einval(/Cannot alloc: options must be an object like \{ align, vstart, vend, tag, nowait, timeoutMs \}, got 5/),
	);
	assert.deepEqual([space.dump(), heap.space.dump()], before);
});

test("errors: a full heap says it is full at its maxSize and how to raise it", () => {
	const heap = VmapHeap.create({ size: 16 * P });
	heap.vmalloc(8 * P); // 9 pages with its guard page, of 15
	// The areas and free blocks (the failedAllocs counter counts the failure, as the kernel's does).
	const layout = () => JSON.stringify({ ...heap.space.dump(), stats: undefined });
	const before = layout();
	assert.throws(
		() => heap.vmalloc(8 * P),
		(e: unknown) =>
			e instanceof VmapError &&
			e.code === "EBUSY" &&
			/^EBUSY: Cannot vmalloc 32768 bytes: nothing fits in the heap's maxSize of 65536 bytes \(busy 36864, .*largest free block 24576, each area with 1 guard page\(s\)\)\. Free more, or create the heap with a larger maxSize/.test(
				e.message,
			) &&
			e.cause instanceof VmapError,
	);
	assert.equal(layout(), before);
	const grows = VmapHeap.create({ size: 16 * P, maxSize: 1024 * P });
	const p = grows.vmalloc(64 * P);
	assert.ok(grows.stats().dataBytes >= p + 64 * P, "a heap with a larger maxSize grows its data");
});

test("errors: posting a space or heap object instead of its handle, or attaching the wrong kind, says what to post", async () => {
	const space = VmapSpace.create({ size: 64 * P });
	const heap = VmapHeap.create({ size: 64 * P });
	// Posting the objects themselves works (no DataCloneError); what arrives is a plain copy.
	const spaceCopy = await posted(space);
	const heapCopy = await posted(heap);
	assert.throws(
		() => VmapSpace.attach(spaceCopy as never),
		einval(/Cannot attach: the handle is a VmapSpace object \(a plain copy.*\): post `space\.handle`/),
	);
	assert.throws(
		() => VmapHeap.attach(heapCopy as never),
		einval(/Cannot attach a heap: the handle is a VmapHeap object .*: post `heap\.handle`/),
	);
	assert.throws(() => VmapSpace.attach(heapCopy as never), einval(/post `heap\.handle`/));
	assert.throws(
		() => VmapSpace.attach(heap.handle),
		einval(/Cannot attach: the handle is a heap's handle: attach it with VmapHeap\.attach\(handle\)/),
	);
	assert.throws(
		() => VmapHeap.attach(space.handle as never),
		einval(/Cannot attach a heap: the handle is a space's handle, which has no data/),
	);
	// The handles themselves, posted, attach.
	const h = VmapHeap.attach((await posted(heap.handle)) as never);
	const s = VmapSpace.attach((await posted(space.handle)) as never);
	assert.equal(h.space.id, 2);
	assert.equal(s.id, 2);
	h.close();
	s.close();
});
