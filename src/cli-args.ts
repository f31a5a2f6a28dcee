// Argument parsing shared by the subcommands: strict flags, --help, and usage errors as exit codes.
import { parseArgs, type ParseArgsConfig } from 'node:util';

interface Output {
  write(text: string): unknown;
}

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O & { help: { type: 'boolean'; short: 'h' } }; allowPositionals: true; strict: true }>>;

/**
 * Parses `args` strictly (positionals allowed) with `--help`/`-h` added. Either the parsed values,
 * or the exit code the command returns at once: 0 after printing the usage for --help, 2 after a
 * usage error (the parser's message, then the usage).
 */
export function parseCommand<O extends Options>(args: string[], options: O, usage: string, out: Output, err: Output): Parsed<O> | { exit: number } {
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true }) as Parsed<O>;
  } catch (e) {
    err.write(`${(e as Error).message}\n${usage}`);
    return { exit: 2 };
  }
  if ((parsed.values as { help?: boolean }).help) {
    out.write(usage);
    return { exit: 0 };
  }
  return parsed;
}
