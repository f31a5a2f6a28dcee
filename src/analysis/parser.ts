// PostgreSQL's own grammar (libpg-query, WebAssembly): bounded input, parsing, scanning for comments.
//
// Why the text is bounded before it reaches the parser, and why instances are replaced
// (figures from a shared 2-core machine, Node 20, libpg-query 18.1.5):
// - The parser recurses once per tree level. `SELECT 1+1+…` with 10,000 terms overflows the
//   stack inside the WebAssembly code (a RangeError thrown out of C); the C stack pointer is
//   left where the trap hit, so each such failure leaks C stack, and after 15 of them the
//   stack ran into the heap: every later parse in the process failed with internal_error.
//   The parser alone breaks between 7,000 and 8,000 levels; the proxy's full analysis (JSON,
//   tree walkers, deparse and the verifying re-parse) between 1,000 and 2,000. The depth
//   pre-scan (bounds.ts, default 400 levels) costs ~4 µs for a 160-byte statement whose parse
//   costs ~80 µs (5%), and refuses before any of that runs; cache hits skip both.
// - Should a call still end abnormally, the instance is retired and a spare, already loaded,
//   takes over (parser-host.ts). Loading an instance costs ~9 ms and ~2 MB RSS (128 MiB of
//   linear memory is reserved and touched lazily). Sessions never notice.
// - Considered and not chosen: a worker_threads pool. analyze() is synchronous in the session,
//   so a worker can only be called synchronously (Atomics.wait + receiveMessageOnPort): 155 µs
//   per first-seen statement instead of 36 µs in-process (same run), with the event loop still
//   blocked for the whole call. It pays only once the session awaits analysis; until then the
//   tree bound (100,000 nodes, ~8 µs each) keeps one analysis under about a second.
import type { Node } from '@pgsql/types';
import type { ScanResult } from 'libpg-query';
import { ProxyError } from '../errors/catalogue';
import { analysisLimits, checkText, type AnalysisLimits } from './bounds';
import { initParser, withParser } from './parser-host';
import { GrammarError, type ParserInstance } from './wasm-parser';

let loaded = false;

/** Loads the parser's WebAssembly module; call (and await) once before the first analyze(). */
export async function initAnalysis(): Promise<void> {
  await initParser();
  loaded = true;
}

/** Has initAnalysis() run (the policy compiler checks row filters with the parser once it has)? */
export function analysisLoaded(): boolean {
  return loaded;
}

function assertLoaded(): void {
  // A programming error, not a client one: it surfaces as internal_error.
  if (!loaded) throw new Error('libpg-query is not loaded: await initAnalysis() before analyze()');
}

/** Runs fn on the process's parser; refuses (analysis_unavailable) while none is loaded. */
function run<T>(fn: (p: ParserInstance) => T): T {
  assertLoaded();
  let result: T | undefined;
  let ran = false;
  try {
    result = withParser((p) => {
      ran = true;
      return fn(p);
    });
  } catch (err) {
    if (err instanceof GrammarError || err instanceof ProxyError) throw err;
    // A failure inside the parser: the instance has been replaced; this statement is refused.
    throw new ProxyError('statement_too_complex', {
      message: 'the statement is nested too deeply to be checked',
      logMessage: `parser: ${err instanceof Error ? err.message : String(err)}`,
    });
  }
  if (!ran) throw new ProxyError('analysis_unavailable');
  return result as T;
}

/**
 * Parses SQL text into its statements (empty for empty or comment-only text).
 * Throws ProxyError: syntax_error for text PostgreSQL would reject, statement_too_large or
 * statement_too_complex for text over the analysis bounds.
 */
export function parseStatements(sql: string): Node[] {
  return parseWithTexts(sql).map((s) => s.node);
}

/** Each statement of the text with its own text as the agent wrote it (for one audit event per statement). */
export interface ParsedStatement {
  node: Node;
  text: string;
}

export function parseWithTexts(sql: string): ParsedStatement[] {
  assertLoaded();
  // The parser reads a C string: text after a NUL would be silently ignored. PostgreSQL's own
  // protocol cannot carry a NUL inside a statement, so anything holding one is refused.
  const nul = sql.indexOf('\0');
  if (nul >= 0) {
    throw new ProxyError('syntax_error', { message: 'statement text contains a zero byte', position: nul + 1 });
  }
  if (sql.length === 0) return [];
  checkText(sql);
  let result;
  try {
    result = run((p) => p.parse(sql));
  } catch (err) {
    if (err instanceof GrammarError) {
      // The parser's cursor is 0-based in characters; ErrorResponse 'P' is 1-based.
      throw new ProxyError('syntax_error', {
        message: err.message,
        position: err.cursorPosition >= 0 ? err.cursorPosition + 1 : undefined,
      });
    }
    throw err;
  }
  const raws = result.stmts ?? [];
  // Locations are byte offsets into the UTF-8 text; ASCII text can be sliced as it is.
  const ascii = !/[^\x00-\x7f]/.test(sql);
  const bytes = ascii ? undefined : Buffer.from(sql, 'utf8');
  const length = bytes ? bytes.length : sql.length;
  const out: ParsedStatement[] = [];
  for (const raw of raws) {
    if (!raw.stmt) continue;
    const start = raw.stmt_location ?? 0;
    // stmt_len 0 means "to the end of the text".
    const end = raw.stmt_len ? start + raw.stmt_len : length;
    const text = raws.length === 1 ? sql : (bytes ? bytes.subarray(start, end).toString('utf8') : sql.slice(start, end)).trim();
    out.push({ node: raw.stmt, text });
  }
  return out;
}

/** The scanner's tokens (bounded like a parse). Throws GrammarError for text the scanner rejects. */
export function scanTokens(sql: string): ScanResult {
  assertLoaded();
  checkText(sql);
  return run((p) => p.scan(sql));
}

/**
 * The last texts normalised, and their normal form: a statement is normalised by the shape cache
 * (its key) and again by the audit trail (its redacted text). Texts past NORMALIZED_MAX_CHARS are
 * not kept.
 */
const normalized = new Map<string, { text: string; limits: AnalysisLimits }>();
const NORMALIZED_ENTRIES = 64;
const NORMALIZED_MAX_CHARS = 16 * 1024;

/** PostgreSQL's normalisation (literals become $n), as pg_stat_statements shows statements. */
export function normalizeText(sql: string): string {
  assertLoaded();
  const limits = analysisLimits();
  // Under the same limits only: a text normalised before they were lowered is checked again.
  const known = normalized.get(sql);
  if (known !== undefined && known.limits === limits) return known.text;
  checkText(sql, limits);
  const text = run((p) => p.normalize(sql));
  if (sql.length <= NORMALIZED_MAX_CHARS) {
    if (normalized.size >= NORMALIZED_ENTRIES) normalized.delete(normalized.keys().next().value as string);
    normalized.set(sql, { text, limits });
  }
  return text;
}

/**
 * Records `text` as the normal form of `sql`, found without the normaliser (normal-form.ts: the
 * forwarded text's, from the verifying re-parse's tree): the audit trail's normalizeText of the
 * forwarded text then finds it here.
 */
export function rememberNormalized(sql: string, text: string): void {
  if (sql.length > NORMALIZED_MAX_CHARS) return;
  if (normalized.size >= NORMALIZED_ENTRIES) normalized.delete(normalized.keys().next().value as string);
  normalized.set(sql, { text, limits: analysisLimits() });
}

const CONTROL = /[\x01-\x08\x0b\x0c\x0e-\x1f]/;
const CONTROL_ALL = /[\x01-\x08\x0b\x0c\x0e-\x1f]/g;

/** The text of every C-style comment, as PostgreSQL's scanner delimits them (nesting included). */
export function scanComments(sql: string): string[] {
  // The scanner's JSON output breaks on raw control characters. After a successful parse they
  // can only sit inside literals and comments, so a space keeps every token boundary intact.
  const safe = CONTROL.test(sql) ? sql.replace(CONTROL_ALL, ' ') : sql;
  const comments: string[] = [];
  for (const token of scanTokens(safe).tokens) {
    if (token.tokenName === 'C_COMMENT') comments.push(token.text);
  }
  return comments;
}
