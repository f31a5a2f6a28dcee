// libpg-query, PostgreSQL's own grammar: one-time WASM load, parsing, and scanning for comments.
import { loadModule, parseSync, scanSync, hasSqlDetails } from 'libpg-query';
import type { Node } from '@pgsql/types';
import { ProxyError } from '../errors/catalogue';

let loading: Promise<void> | undefined;
let loaded = false;

/** Loads the parser's WebAssembly module; call (and await) once before the first analyze(). */
export function initAnalysis(): Promise<void> {
  loading ??= loadModule().then(
    () => {
      loaded = true;
    },
    (err: unknown) => {
      // Let a later call retry instead of caching the failure forever.
      loading = undefined;
      throw err;
    },
  );
  return loading;
}

function assertLoaded(): void {
  // A programming error, not a client one: it surfaces as internal_error.
  if (!loaded) throw new Error('libpg-query is not loaded: await initAnalysis() before analyze()');
}

/**
 * Parses SQL text into its statements (empty for empty or comment-only text).
 * Throws ProxyError: syntax_error for text PostgreSQL would reject, statement_not_understood
 * for trees too deep to handle.
 */
export function parseStatements(sql: string): Node[] {
  assertLoaded();
  // The parser reads a C string: text after a NUL would be silently ignored. PostgreSQL's own
  // protocol cannot carry a NUL inside a statement, so anything holding one is refused.
  const nul = sql.indexOf('\0');
  if (nul >= 0) {
    throw new ProxyError('syntax_error', { message: 'statement text contains a zero byte', position: nul + 1 });
  }
  if (sql.length === 0) return [];
  let result;
  try {
    result = parseSync(sql);
  } catch (err) {
    if (hasSqlDetails(err) && err.sqlDetails) {
      const { message, cursorPosition } = err.sqlDetails;
      // libpg-query's cursor is 0-based in characters; ErrorResponse 'P' is 1-based.
      throw new ProxyError('syntax_error', {
        message,
        position: cursorPosition >= 0 ? cursorPosition + 1 : undefined,
      });
    }
    if (err instanceof RangeError) {
      throw new ProxyError('statement_not_understood', {
        message: 'the statement is nested too deeply to be checked',
        logMessage: `parse: ${err.message}`,
      });
    }
    throw err;
  }
  const nodes: Node[] = [];
  for (const raw of result.stmts ?? []) {
    if (raw.stmt) nodes.push(raw.stmt);
  }
  return nodes;
}

const CONTROL = /[\x01-\x08\x0b\x0c\x0e-\x1f]/;
const CONTROL_ALL = /[\x01-\x08\x0b\x0c\x0e-\x1f]/g;

/** The text of every C-style comment, as PostgreSQL's scanner delimits them (nesting included). */
export function scanComments(sql: string): string[] {
  assertLoaded();
  // The scanner's JSON output breaks on raw control characters. After a successful parse they
  // can only sit inside literals and comments, so a space keeps every token boundary intact.
  const safe = CONTROL.test(sql) ? sql.replace(CONTROL_ALL, ' ') : sql;
  const comments: string[] = [];
  for (const token of scanSync(safe).tokens) {
    if (token.tokenName === 'C_COMMENT') comments.push(token.text);
  }
  return comments;
}
