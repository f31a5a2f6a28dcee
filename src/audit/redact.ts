// Statement text for the audit trail: literals replaced by placeholders, comments dropped, and a keyed hash of the raw text.
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Node } from '@pgsql/types';
import { deparseOne } from '../analysis/deparse';
import { statementName } from '../analysis/labels';
import { normalizeText, parseStatements, parseWithTexts, scanTokens } from '../analysis/parser';
import { nodeBody, nodeTypeOf } from '../analysis/types';
import { ProxyError } from '../errors/catalogue';
import { ConfigError } from '../config/load';
import type { Logger } from '../log';
import type { AuditEvent } from './event';
import { PrekeyedHmac } from './hmac';

/** Stands for text PostgreSQL's grammar rejects: such text may be anything, secrets included, so none of it is kept. */
export const UNPARSEABLE = '<unparseable statement>';
/** Stands for text over the analysis bounds (size, depth, terms): it was never parsed, so none of it is kept. */
export const OVER_LIMITS = '<statement over the analysis limits>';
/** Stands for a fast-path FunctionCall message (always refused): it has no statement text. */
export const FAST_PATH_CALL = '<fast-path function call>';

const CONTROL_ALL = /[\x01-\x08\x0b\x0c\x0e-\x1f]/g;
const SPACE = new Set([0x20, 0x09, 0x0a, 0x0d, 0x0b, 0x0c]);

/**
 * Drops comments from normalized text. PostgreSQL's normalisation keeps them, and a comment can carry
 * anything (a sqlcommenter reason, a pasted customer record); the reason has its own field.
 * Scanner offsets are in bytes, hence the Buffer.
 */
function withoutComments(text: string): string {
  // A comment starts with one of these, and normalised text has no string literal to hide one in:
  // without either, there is nothing to scan for (the text the proxy forwards never has comments).
  if (!text.includes('/*') && !text.includes('--')) return text;
  // The scanner's JSON output breaks on raw control characters; they are one byte each, so a
  // space in their place keeps every offset.
  const tokens = scanTokens(text.replace(CONTROL_ALL, ' ')).tokens.filter((t) => t.tokenName === 'C_COMMENT' || t.tokenName === 'SQL_COMMENT');
  if (tokens.length === 0) return text;
  const bytes = Buffer.from(text, 'utf8');
  let out = '';
  let pos = 0;
  for (const t of tokens) {
    out += bytes.subarray(pos, t.start).toString('utf8');
    pos = t.end;
    const spaceBefore = out.length === 0 || /\s$/.test(out);
    const spaceAfter = pos >= bytes.length || SPACE.has(bytes[pos]);
    // The whitespace after the comment goes with it; two tokens the comment separated stay apart.
    while (pos < bytes.length && SPACE.has(bytes[pos])) pos++;
    if (!spaceBefore && !spaceAfter) out += ' ';
  }
  out += bytes.subarray(pos).toString('utf8');
  return out.trim();
}

/**
 * A string literal the normalisation left (it leaves those of DDL, COMMENT ON and EXPLAIN
 * EXECUTE, for one): a quote, or a dollar quote. A quote inside a quoted identifier counts too.
 */
const LITERAL_LEFT = /'|\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$/;

/**
 * A number the normalisation left, outside an identifier or a placeholder. In a query (SELECT,
 * INSERT, UPDATE, DELETE) only type modifiers (`varchar(120)`) are left, and kept; elsewhere
 * (a DDL default, EXPLAIN EXECUTE's arguments, FETCH's count) it may be anything the agent chose.
 */
const NUMBER_LEFT = /(?<![\w$.])\d/;
const QUERY_START = /^\s*(?:select|insert|update|delete|with|values|table)\b/i;
const QUERIES = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt']);

/** PostgreSQL's normalisation leaves PREPARE bodies and EXECUTE arguments as they are. */
const PREPARED = /\b(prepare|execute)\b/i;

/** A literal the normalisation left in `text`: a string one anywhere, a number outside a query. */
function literalLeft(text: string, query: boolean): boolean {
  return LITERAL_LEFT.test(text) || (!query && NUMBER_LEFT.test(text));
}

/**
 * The text statement by statement, when the whole text's normalisation is not enough (it holds
 * a PREPARE or an EXECUTE, or a literal was left; undefined when neither is so after all):
 * `PREPARE name (types) AS <body, normalised>` and `EXECUTE name($1, …)` are printed from the
 * tree (nothing of the agent's text between their parts, a comment, is kept); any other statement
 * is normalised; one where a literal would still be left is named by its kind alone.
 */
function byStatement(sql: string, literal: boolean): string | undefined {
  const parts = parseWithTexts(sql);
  if (!literal && !parts.some((p) => 'PrepareStmt' in p.node || 'ExecuteStmt' in p.node)) return undefined;
  return parts
    .map(({ node, text }) => {
      const type = nodeTypeOf(node);
      let one: string;
      if ('ExecuteStmt' in node) {
        const params = (node.ExecuteStmt.params ?? []).map((_, i) => ({ ParamRef: { number: i + 1, location: -1 } }) as Node);
        one = deparseOne({ ExecuteStmt: { ...node.ExecuteStmt, params } } as Node);
      } else if ('PrepareStmt' in node && node.PrepareStmt.query) {
        const head = deparseOne({ PrepareStmt: { ...node.PrepareStmt, query: selectOne() } } as Node);
        one = `${head.slice(0, head.length - SELECT_ONE.length)}${withoutComments(normalizeText(deparseOne(node.PrepareStmt.query)))}`;
      } else one = withoutComments(normalizeText(text));
      return literalLeft(one, QUERIES.has(type)) ? `${statementName(type, nodeBody(node))} …` : one;
    })
    .join('; ');
}

const SELECT_ONE = 'SELECT 1';
let selectOneNode: Node | undefined;
function selectOne(): Node {
  selectOneNode ??= parseStatements(SELECT_ONE)[0];
  return selectOneNode;
}

/**
 * The statement with every literal replaced by a `$n` placeholder (numbered after any the text
 * already has), using PostgreSQL's own normalisation as pg_stat_statements does. Requires the
 * parser module loaded (initAnalysis). Text that does not parse becomes UNPARSEABLE.
 */
/**
 * `parsed`: the caller knows PostgreSQL's grammar accepts the text (the proxy's analysis parsed
 * it); the check parse, which guards against the normaliser's error messages, is then skipped.
 */
export function redactSql(sql: string, parsed = false): string {
  if (sql.trim() === '') return '';
  if (sql === FAST_PATH_CALL) return sql;
  // The parser reads a C string: text after a zero byte would silently vanish from the result.
  if (sql.includes('\0')) return UNPARSEABLE;
  try {
    // Parsed first: on some errors the normaliser returns the parser's message instead of
    // throwing, and that message quotes the text near the error (a literal, perhaps a secret).
    if (!parsed) parseStatements(sql);
    const out = withoutComments(normalizeText(sql));
    const literal = literalLeft(out, QUERY_START.test(out) && !out.includes(';'));
    return (literal || PREPARED.test(sql) ? byStatement(sql, literal) : undefined) ?? out;
  } catch (err) {
    if (err instanceof ProxyError && (err.code === 'statement_too_large' || err.code === 'statement_too_complex')) return OVER_LIMITS;
    return UNPARSEABLE;
  }
}

/** HMAC-SHA256 of the raw text, hex: proves later whether a given text is the one the agent sent, without storing it. */
export function sqlHmac(sql: string, key: Buffer): string {
  return createHmac('sha256', key).update(sql, 'utf8').digest('hex');
}

const MIN_KEY_BYTES = 32;

/**
 * The audit key from a mounted secret (one trailing newline ignored), or a random key for this
 * process only, with a warning: hashes made with it cannot be checked after a restart.
 */
export function loadAuditKey(file: string | undefined, log: Logger): Buffer {
  if (file === undefined) {
    log.warn('audit.key_file is not set: sql_hmac uses a random key of this process, so it cannot be checked after a restart');
    return randomBytes(MIN_KEY_BYTES);
  }
  let key: Buffer;
  try {
    key = readFileSync(file);
  } catch (err) {
    throw new ConfigError(`cannot read audit key file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (key.length > 0 && key[key.length - 1] === 0x0a) key = key.subarray(0, key.length - (key[key.length - 2] === 0x0d ? 2 : 1));
  if (key.length < MIN_KEY_BYTES) throw new ConfigError(`audit key file ${file} must hold at least ${MIN_KEY_BYTES} bytes`);
  return key;
}

/** How the log turns an agent's text into event fields: redacted (or raw, if so configured) text and its keyed hash. */
export class AuditText {
  declare private readonly key: PrekeyedHmac;

  constructor(
    key: Buffer,
    readonly redactLiterals: boolean = true,
  ) {
    // Non-enumerable: the key never shows up in a log line or a serialised object.
    Object.defineProperty(this, 'key', { value: new PrekeyedHmac(key), enumerable: false });
  }

  /** The text to store: redacted unless redact_literals is off. */
  sql(text: string, parsed = false): string {
    return this.redactLiterals ? redactSql(text, parsed) : text;
  }

  hmac(text: string): string {
    return this.key.hex(text);
  }

  /** sql, sql_hmac and (when given) rewritten_sql of a statement event. */
  fields(raw: string, rewritten?: string): Pick<AuditEvent, 'sql' | 'sql_hmac' | 'rewritten_sql'> {
    const fields: Pick<AuditEvent, 'sql' | 'sql_hmac' | 'rewritten_sql'> = { sql: this.sql(raw), sql_hmac: this.hmac(raw) };
    if (rewritten !== undefined) fields.rewritten_sql = this.sql(rewritten);
    return fields;
  }
}
