/** Argument checks shared by the `vmalloc` subcommands: a bad argument exits 2, naming the option. */
import { parseArgs, type ParseArgsConfig } from "node:util";

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values<O extends Options> = ReturnType<
	typeof parseArgs<{ args: string[]; strict: true; allowPositionals: false; options: O }>
>["values"];

/** Options only, strictly: an unknown option or a stray word exits 2. */
export function parseOptions<O extends Options>(command: string, argv: string[], options: O): Values<O> {
	try {
		return parseArgs({ args: argv, strict: true, allowPositionals: false, options }).values;
	} catch (e) {
		return usageError(command, `${(e as Error).message} (see vmalloc ${command} --help)`);
	}
}

export function usageError(command: string, message: string): never {
	process.stderr.write(`vmalloc ${command}: ${message}\n`);
	process.exit(2);
}

/** A whole number from `min` to `max` (decimal or 0x hex), or exit 2 naming the option. */
export function wholeNumber(command: string, name: string, value: string | undefined, min: number, max: number): number | undefined {
	if (value === undefined) return undefined;
	const n = /^0x[0-9a-f]+$/i.test(value) ? Number.parseInt(value, 16) : /^\d+$/.test(value) ? Number(value) : Number.NaN;
	if (!Number.isSafeInteger(n) || n < min || n > max)
		usageError(command, `--${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
	return n;
}

/** Options and exactly one positional argument, `what` (named in the error when missing). */
export function parseWithFile<O extends Options>(
	command: string,
	argv: string[],
	options: O,
	what: string,
): {
	values: ReturnType<typeof parseArgs<{ args: string[]; strict: true; allowPositionals: true; options: O }>>["values"];
	file: string | undefined;
} {
	let r: ReturnType<typeof parseArgs<{ args: string[]; strict: true; allowPositionals: true; options: O }>>;
	try {
		r = parseArgs({ args: argv, strict: true, allowPositionals: true, options });
	} catch (e) {
		return usageError(command, `${(e as Error).message} (see vmalloc ${command} --help)`);
	}
	if (r.positionals.length > 1)
		usageError(command, `takes one ${what}, got ${r.positionals.length}: ${r.positionals.map((p) => JSON.stringify(p)).join(" ")}`);
	return { values: r.values, file: r.positionals[0] };
}
