// `ormai-proxy audit verify FILE`: walks a hash-chained audit file and reports the first line that breaks the chain.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { checkLine, GENESIS_HASH } from './chain';

export const AUDIT_USAGE = `Usage:
  ormai-proxy audit verify FILE        check the hash chain of an audit file (exit 0 intact, 1 tampered, 2 usage)
`;

export interface VerifyResult {
  ok: boolean;
  /** Lines that passed (all of them when ok). */
  intact: number;
  /** Hash of the last intact line: an anchor to compare with a copy kept elsewhere, since cutting lines off the end leaves no trace in the file. */
  lastHash: string;
  /** 1-based number of the first bad line. */
  badLine?: number;
  problem?: string;
}

/**
 * Splits on LF only, byte-exact: a reader that also took CR or CRLF as line ends (node's
 * readline does) would let an added CR, or a line split in two by one, pass unnoticed.
 */
async function* rawLines(source: AsyncIterable<Buffer | string>): AsyncGenerator<{ text: string; terminated: boolean }> {
  let rest = Buffer.alloc(0);
  for await (const chunk of source) {
    let buf = Buffer.concat([rest, typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk]);
    for (let nl = buf.indexOf(0x0a); nl >= 0; nl = buf.indexOf(0x0a)) {
      yield { text: buf.subarray(0, nl).toString('utf8'), terminated: true };
      buf = buf.subarray(nl + 1);
    }
    rest = buf;
  }
  if (rest.length > 0) yield { text: rest.toString('utf8'), terminated: false };
}

/** Checks a chained audit stream from its first byte: every line linked to the one before, the first to 64 zeros. */
export async function verifyStream(source: AsyncIterable<Buffer | string>): Promise<VerifyResult> {
  let prev = GENESIS_HASH;
  let n = 0;
  for await (const { text, terminated } of rawLines(source)) {
    n++;
    // The writer ends every line with a newline before fsync; a last line without one is a
    // write a crash interrupted (the proxy cuts it off when it reopens the file) or an edit.
    if (!terminated) return { ok: false, intact: n - 1, lastHash: prev, badLine: n, problem: 'unfinished last line (no newline): an interrupted write or an edit' };
    const result = checkLine(text, prev);
    if (!result.ok) return { ok: false, intact: n - 1, lastHash: prev, badLine: n, problem: result.problem };
    prev = result.hash;
  }
  return { ok: true, intact: n, lastHash: prev };
}

export function verifyFile(file: string): Promise<VerifyResult> {
  return verifyStream(createReadStream(file));
}

interface Output {
  write(text: string): unknown;
}

async function verifyCommand(args: string[], out: Output, err: Output): Promise<number> {
  if (args.length === 1 && (args[0] === '--help' || args[0] === '-h')) {
    out.write(AUDIT_USAGE);
    return 0;
  }
  if (args.length !== 1 || args[0].startsWith('-')) {
    err.write(`audit verify takes exactly one FILE\n${AUDIT_USAGE}`);
    return 2;
  }
  const [file] = args;
  let result: VerifyResult;
  try {
    if (!(await stat(file)).isFile()) throw Object.assign(new Error('not a regular file'), { code: 'not a regular file' });
    result = await verifyFile(file);
  } catch (e) {
    err.write(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
    return 2;
  }
  if (result.ok) {
    out.write(`ok: ${file}: ${result.intact} events, chain intact; last hash ${result.lastHash}\n`);
    return 0;
  }
  out.write(`tampered: ${file}: line ${result.badLine}: ${result.problem}\n`);
  out.write(`  the ${result.intact} lines before it are intact; last intact hash ${result.lastHash}\n`);
  return 1;
}

/** `ormai-proxy audit SUBCOMMAND ...`: the exit code (0 intact, 1 tampered, 2 usage or unreadable file). */
export async function auditCommand(args: string[], out: Output = process.stdout, err: Output = process.stderr): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'verify') return verifyCommand(rest, out, err);
  if (sub === '--help' || sub === '-h') {
    out.write(AUDIT_USAGE);
    return 0;
  }
  err.write(sub === undefined ? AUDIT_USAGE : `unknown audit command "${sub}"\n${AUDIT_USAGE}`);
  return 2;
}
