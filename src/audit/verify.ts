// `ormai-proxy audit verify FILE`: walks a hash-chained audit file, keyed or not, and checks it against published heads.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { parseCommand } from '../cli-args';
import { loadConfig } from '../config/load';
import { checkLine, GENESIS_HASH } from './chain';
import { withSinkConnection } from './factory';
import { chainSource } from './heads';
import { chainKeyOf, type PrekeyedHmac } from './hmac';
import { loadAuditKey } from './redact';
import { headsTableName } from './sinks/postgres';
import { silentLogger } from '../log';

export const AUDIT_USAGE = `Usage:
  ormai-proxy audit verify FILE [--key-file KEY] [--head HASH]... [--config FILE [--source HOST:PATH]]
      check the hash chain of an audit file (exit 0 intact, 1 tampered, 2 usage or a key needed)
      --key-file KEY   the audit key (audit.key_file) a keyed file was written with
      --head HASH      a head published by the proxy (its log line "audit chain head", or the hash label of
                       ormai_audit_chain_head_timestamp_seconds, at least 16 hex digits): it must be in the file
      --config FILE    the proxy's config: its audit.key_file, and the heads its postgres sinks hold for
                       --source (default: this host and FILE's absolute path, as the proxy names its file)
`;

/** A head to find in the file: from --head (a hash or its prefix) or from a heads table (with the event it ends on). */
export interface HeadRef {
  hash: string;
  event_id?: string;
  event_time?: string;
}

export interface HeadsResult {
  checked: number;
  found: number;
  /** Published after the file's last line: a copy taken earlier, or lines cut off the end. */
  newer: HeadRef[];
  missing: HeadRef[];
}

export interface VerifyResult {
  ok: boolean;
  /** Lines that passed (all of them when ok). */
  intact: number;
  /** Hash of the last intact line: an anchor to compare with a copy kept elsewhere, since cutting lines off the end leaves no trace in the file. */
  lastHash: string;
  /** 1-based number of the first bad line (absent when the chain is intact but a head is missing). */
  badLine?: number;
  problem?: string;
  /** The file is keyed and no key was given. */
  needsKey?: boolean;
  /** Only when heads were given. */
  heads?: HeadsResult;
}

export interface VerifyOptions {
  key?: PrekeyedHmac;
  heads?: readonly HeadRef[];
}

const PREFIX = 16;
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

/**
 * Checks a chained audit stream from its first byte: every line linked to the one before, the
 * first to 64 zeros, each hash keyed when the file is. With heads, each must be the hash of one
 * of its lines: a file edited and re-chained from some line on has lost the heads published
 * after that line. (A head published after the file's last event is reported as newer.)
 */
export async function verifyStream(source: AsyncIterable<Buffer | string>, options: VerifyOptions = {}): Promise<VerifyResult> {
  const wanted = new Map<string, HeadRef[]>();
  for (const head of options.heads ?? []) {
    const refs = wanted.get(head.hash.slice(0, PREFIX)) ?? [];
    refs.push(head);
    wanted.set(head.hash.slice(0, PREFIX), refs);
  }
  const found = new Set<HeadRef>();
  let lastTime: string | undefined;
  let prev = GENESIS_HASH;
  let n = 0;
  for await (const { text, terminated } of rawLines(source)) {
    n++;
    // The writer ends every line with a newline before fsync; a last line without one is a
    // write a crash interrupted (the proxy cuts it off when it reopens the file) or an edit.
    if (!terminated) return { ok: false, intact: n - 1, lastHash: prev, badLine: n, problem: 'unfinished last line (no newline): an interrupted write or an edit' };
    const result = checkLine(text, prev, options.key);
    if (!result.ok) return { ok: false, intact: n - 1, lastHash: prev, badLine: n, problem: result.problem, ...(result.needsKey ? { needsKey: true } : {}) };
    prev = result.hash;
    if (wanted.size > 0) {
      for (const ref of wanted.get(prev.slice(0, PREFIX)) ?? []) if (prev.startsWith(ref.hash)) found.add(ref);
      lastTime = (JSON.parse(text) as { time?: string }).time;
    }
  }
  if (!options.heads || options.heads.length === 0) return { ok: true, intact: n, lastHash: prev };
  const newer: HeadRef[] = [];
  const missing: HeadRef[] = [];
  const last = lastTime === undefined ? NaN : Date.parse(lastTime);
  for (const head of options.heads) {
    if (found.has(head)) continue;
    if (head.event_time !== undefined && Date.parse(head.event_time) > last) newer.push(head);
    else missing.push(head);
  }
  const heads = { checked: options.heads.length, found: found.size, newer, missing };
  if (missing.length === 0) return { ok: true, intact: n, lastHash: prev, heads };
  return {
    ok: false,
    intact: n,
    lastHash: prev,
    problem: `${missing.length} published head(s) not in the file: it was edited and re-chained, or lines were removed`,
    heads,
  };
}

export function verifyFile(file: string, options: VerifyOptions = {}): Promise<VerifyResult> {
  return verifyStream(createReadStream(file), options);
}

/** The heads the config's postgres sinks hold for one file chain, oldest first. */
export async function publishedHeads(configFile: string, source: string): Promise<HeadRef[]> {
  const config = loadConfig(configFile);
  const heads: HeadRef[] = [];
  for (const sink of config.raw.audit.sinks) {
    if (sink.type !== 'postgres') continue;
    const rows = await withSinkConnection(sink, config, async (client) =>
      (await client.query<{ hash: string; event_id: string | null; event_time: Date | null }>(
        `SELECT hash, event_id, event_time FROM ${headsTableName(sink.table).qualified} WHERE source = $1 ORDER BY published_at`,
        [source],
      )).rows,
    );
    for (const r of rows) heads.push({ hash: r.hash, ...(r.event_id ? { event_id: r.event_id } : {}), ...(r.event_time ? { event_time: r.event_time.toISOString() } : {}) });
  }
  return heads;
}

interface Output {
  write(text: string): unknown;
}

async function verifyCommand(args: string[], out: Output, err: Output): Promise<number> {
  const parsed = parseCommand(args, { 'key-file': { type: 'string' }, head: { type: 'string', multiple: true }, config: { type: 'string', short: 'c' }, source: { type: 'string' } }, AUDIT_USAGE, out, err);
  if ('exit' in parsed) return parsed.exit;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) {
    err.write(`audit verify takes exactly one FILE\n${AUDIT_USAGE}`);
    return 2;
  }
  const [file] = positionals;
  const badHead = (values.head ?? []).find((h) => !new RegExp(`^[0-9a-f]{${PREFIX},64}$`).test(h));
  if (badHead !== undefined) {
    err.write(`--head ${badHead}: expected ${PREFIX} to 64 lowercase hex digits\n`);
    return 2;
  }
  const heads: HeadRef[] = (values.head ?? []).map((hash) => ({ hash }));
  let keyFile = values['key-file'];
  let source: string | undefined;
  try {
    if (!(await stat(file)).isFile()) throw Object.assign(new Error('not a regular file'), { code: 'not a regular file' });
    if (values.config) {
      const config = loadConfig(values.config);
      if (keyFile === undefined && config.raw.audit.key_file !== undefined) keyFile = path.resolve(config.dir, config.raw.audit.key_file);
      source = values.source ?? chainSource(path.resolve(file));
      heads.push(...(await publishedHeads(values.config, source)));
    }
  } catch (e) {
    err.write(`cannot read ${values.config && !(e as NodeJS.ErrnoException).path ? `the published heads (${values.config})` : file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
    return 2;
  }
  let result: VerifyResult;
  try {
    const key = keyFile === undefined ? undefined : chainKeyOf(loadAuditKey(keyFile, silentLogger));
    result = await verifyFile(file, { key, heads });
  } catch (e) {
    err.write(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
    return 2;
  }
  if (result.needsKey) {
    err.write(`${file}: line ${result.badLine}: ${result.problem}\n`);
    return 2;
  }
  if (source !== undefined && heads.length === 0) {
    out.write(`note: no heads published for ${source}; the file was checked for its own consistency only (pass --source HOST:PATH as the proxy named it)\n`);
  }
  const headsLine = (r: VerifyResult) =>
    r.heads ? `; ${r.heads.found} of ${r.heads.checked} published heads found${r.heads.newer.length > 0 ? `, ${r.heads.newer.length} newer than its last line` : ''}` : '';
  if (result.ok) {
    out.write(`ok: ${file}: ${result.intact} events, chain intact${keyFile !== undefined ? ' (keyed)' : ''}${headsLine(result)}; last hash ${result.lastHash}\n`);
    return 0;
  }
  if (result.badLine === undefined) {
    out.write(`tampered: ${file}: ${result.problem}\n`);
    for (const h of result.heads?.missing ?? []) out.write(`  missing head ${h.hash}${h.event_id ? ` (event ${h.event_id}, ${h.event_time})` : ''}\n`);
    return 1;
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
