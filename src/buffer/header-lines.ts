/**
 * The header's 64-byte lines, as data: the words on each (by their names in layout.ts) and whose
 * they are, as layout.ts draws them; test/layout.test.ts checks every header word against it.
 */
export const HEADER_LINES: ReadonlyArray<{ domain: string; words: readonly string[] }> = [
	{
		domain: "read-mostly",
		words: [
			...[
				"HDR_MAGIC",
				"HDR_VERSION",
				"HDR_CAPACITY",
				"HDR_MAX_CAPACITY",
				"HDR_NO_PRIORITY",
				"HDR_TAG_NR",
				"HDR_DEAD",
				"HDR_DEAD_WORD",
			],
			...["HDRF_START", "HDRF_END", "HDRF_PAGE_SIZE", "HDRF_LAZY_MAX_PAGES"],
		],
	},
	{
		domain: "free-space lock",
		words: [
			"HDR_FREE_LOCK",
			"HDR_FREE_ROOT",
			"HDR_FREE_HEAD",
			"HDR_FREE_NR",
			"HDR_SLOT_HIGH",
			"HDR_SLOT_FREE",
			"HDR_SLOT_FREE_NR",
			"HDRF_FREE_BYTES",
			"HDRF_FAILED",
		],
	},
	{ domain: "purge batches: flush ranges", words: ["HDRF_BATCH_START", "HDRF_BATCH_END"] },
	{
		domain: "purge mutex",
		words: [
			"HDRF_DRAIN_PURGES",
			"HDR_PURGE_LOCK",
			"HDR_SEQ_PURGE",
			"HDRF_PRIORITY_PURGES",
			"HDRF_PURGES",
			"HDRF_FLUSHES",
			"HDRF_FLUSHED_BYTES",
			"HDRF_HELPED",
		],
	},
	{
		domain: "purge counters, the tag lock, the block index and busy hash records (free-space lock)",
		words: [
			...[
				"HDRF_OVERFLOW_PURGES",
				"HDRF_FLUSH_ERRORS",
				"HDRF_TRIMS",
				"HDR_TAG_LOCK",
				"HDR_BLOCK_INDEX",
				"HDR_BLOCK_NR",
				"HDR_BLOCK_USED",
			],
			...["HDR_SMALL_FLUSHES", "HDR_SMALL_MARK_TAG", "HDR_HASH_BUDGET", "HDR_HASH_RECORDS", "HDR_SMALL_LIMBO"],
		],
	},
	{
		domain: "read-mostly",
		words: [
			"HDR_NODES",
			"HDR_RECORDS_OFFSET",
			"HDR_EXT_OFFSET",
			"HDR_EXT_WORDS",
			"HDRF_ZONE_SIZE",
			"HDRF_TIMEOUT_MS",
			"HDRF_SMALL_MAX",
			"HDRF_BLOCK_BYTES",
			"HDR_HANDLE_HIGH",
		],
	},
	{ domain: "purge helpers", words: ["HDR_WORK"] },
	{ domain: "purge batches: owners and generations", words: ["HDR_BATCH_OWNER", "HDR_BATCH_GEN", "HDR_BATCH_FLAGS"] },
];
