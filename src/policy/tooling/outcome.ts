// What a regression case did through the proxy (one statement as its principal, one protocol) and how that compares with what it expected.
import { Client, DatabaseError, types, type ClientConfig, type QueryArrayConfig, type QueryArrayResult } from 'pg';
import type { Credentials, Protocol, TestCase } from './case-file';

/** What one statement did through the proxy. */
export type Outcome =
  | {
      kind: 'allowed';
      /** Column names in result order (duplicates kept). */
      fields: string[];
      /** Rows as arrays of values, in column order. */
      rows: unknown[][];
      /** Rows returned, or affected by a write without RETURNING. */
      rowCount: number;
    }
  | {
      kind: 'refused';
      /** The policy code (the routine field without `ormai.`); absent for PostgreSQL's own errors. */
      code?: string;
      sqlstate?: string;
      message: string;
    }
  /** Could not be run at all: the proxy did not answer, a timeout, a network error. */
  | { kind: 'failed'; message: string };

const MAX_SHOWN = 240;

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}…` : text;
}

/** Rows as objects by column name (a later duplicate name wins, as in node-postgres). */
export function rowObjects(outcome: { fields: string[]; rows: unknown[][] }): Array<Record<string, unknown>> {
  return outcome.rows.map((row) => Object.fromEntries(outcome.fields.map((f, i) => [f, row[i]])));
}

/**
 * Equality of a value from the case file with one from the database. int8 and numeric arrive
 * as text (node-postgres keeps their precision), so a number in the file matches its decimal text.
 */
export function valueEquals(expected: unknown, actual: unknown): boolean {
  if (typeof expected === 'number' && typeof actual === 'string') return String(expected) === actual;
  if (expected === null || actual === null || typeof expected !== 'object' || typeof actual !== 'object') return expected === actual;
  if (Array.isArray(expected) !== Array.isArray(actual)) return false;
  if (Array.isArray(expected)) {
    const a = actual as unknown[];
    return expected.length === a.length && expected.every((v, i) => valueEquals(v, a[i]));
  }
  const e = expected as Record<string, unknown>;
  const a = actual as Record<string, unknown>;
  const keys = Object.keys(e);
  return keys.length === Object.keys(a).length && keys.every((k) => k in a && valueEquals(e[k], a[k]));
}

function describeRefusal(o: { code?: string; sqlstate?: string; message: string }): string {
  const id = [o.code, o.sqlstate && `SQLSTATE ${o.sqlstate}`].filter(Boolean).join(', ');
  return `${id ? `${id}: ` : ''}${o.message}`;
}

function rowsDifference(expected: NonNullable<TestCase['rows']>, outcome: { fields: string[]; rows: unknown[][] }): string | undefined {
  const objects = rowObjects(outcome);
  for (let i = 0; i < Math.min(expected.length, objects.length); i++) {
    const want = expected[i];
    const got = Array.isArray(want) ? outcome.rows[i] : objects[i];
    if (!valueEquals(want, got)) return `row ${i + 1}: expected ${show(want)}, got ${show(got)}`;
  }
  if (expected.length !== objects.length) {
    const extra = objects.length > expected.length ? `, first extra ${show(objects[expected.length])}` : '';
    return `expected ${expected.length} row${expected.length === 1 ? '' : 's'}, got ${objects.length}${extra}`;
  }
  return undefined;
}

/** The first difference between the case's expectations and the outcome, or undefined when it passes. */
export function compareOutcome(c: TestCase, outcome: Outcome): string | undefined {
  if (outcome.kind === 'failed') return `could not run: ${outcome.message}`;
  if (c.expect === 'allowed' && outcome.kind === 'refused') return `expected allowed, got refused (${describeRefusal(outcome)})`;
  if (c.expect === 'refused' && outcome.kind === 'allowed') {
    return `expected refused${c.code ? ` (${c.code})` : ''}, got allowed with ${outcome.rowCount} row${outcome.rowCount === 1 ? '' : 's'}${outcome.rows.length ? `: ${show(rowObjects(outcome).slice(0, 3))}` : ''}`;
  }
  if (outcome.kind === 'refused') {
    if (c.code !== undefined && c.code !== outcome.code && c.code !== outcome.sqlstate) return `expected code ${c.code}, got ${describeRefusal(outcome)}`;
    if (c.message !== undefined && !outcome.message.includes(c.message)) return `expected a message containing ${show(c.message)}, got ${describeRefusal(outcome)}`;
    return undefined;
  }
  if (c.row_count !== undefined && c.row_count !== outcome.rowCount) return `expected row_count ${c.row_count}, got ${outcome.rowCount}`;
  if (c.rows !== undefined) {
    const diff = rowsDifference(c.rows, outcome);
    if (diff) return diff;
  }
  const text = JSON.stringify(rowObjects(outcome));
  const missing = c.contains?.find((s) => !text.includes(s));
  if (missing !== undefined) return `the rows do not contain ${show(missing)}: ${show(rowObjects(outcome).slice(0, 3))}`;
  const present = c.not_contains?.find((s) => text.includes(s));
  if (present !== undefined) return `the rows contain ${show(present)}`;
  return undefined;
}

// ---- running the statement ----
/**
 * Types kept as the server's text, so that expected rows are written as psql prints them and do
 * not depend on the test machine's time zone (node-postgres would build local-time Dates) or on
 * Buffer's JSON form: date, time, timestamp(tz), interval, timetz, bytea, and their arrays.
 */
const AS_TEXT = new Set([1082, 1083, 1114, 1184, 1186, 1266, 17, 1182, 1183, 1115, 1185, 1187, 1270, 1001]);
const identity = (value: string) => value;
const typeParsers = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (AS_TEXT.has(oid) ? identity : types.getTypeParser(oid, format ?? 'text'))) as typeof types.getTypeParser,
};

export interface ProxyTarget {
  host: string;
  port: number;
  database: string;
  /** The proxy serves TLS: connect with it (not verified: the proxy is this process's own). */
  tls: boolean;
}

export interface StatementSpec {
  sql: string;
  params?: ReadonlyArray<string | number | boolean | null>;
  protocol: Protocol;
  timeoutMs: number;
}

/** node-postgres sends a Query message without values; queryMode forces Parse/Bind/Execute (it is missing from @types/pg). */
type ArrayQuery = QueryArrayConfig & { queryMode?: 'extended' };

function refusal(err: DatabaseError): Outcome {
  const code = err.routine?.startsWith('ormai.') ? err.routine.slice('ormai.'.length) : undefined;
  return { kind: 'refused', ...(code ? { code } : {}), ...(err.code ? { sqlstate: err.code } : {}), message: err.message };
}

/** A fresh session per statement: no SET, transaction or prepared statement carries over between cases. */
export async function runStatement(target: ProxyTarget, login: Credentials, spec: StatementSpec): Promise<Outcome> {
  const config: ClientConfig = {
    host: target.host,
    port: target.port,
    database: target.database,
    user: login.user,
    password: login.password,
    ssl: target.tls ? { rejectUnauthorized: false } : false,
    connectionTimeoutMillis: spec.timeoutMs,
    query_timeout: spec.timeoutMs,
    application_name: 'ormai-proxy test',
    types: typeParsers,
  };
  const client = new Client(config);
  // A connection that drops after login reports here as well as on the pending query.
  client.on('error', () => undefined);
  try {
    await client.connect();
    const query: ArrayQuery = {
      text: spec.sql,
      rowMode: 'array',
      ...(spec.protocol === 'extended' ? { values: [...(spec.params ?? [])], queryMode: 'extended' as const } : {}),
    };
    const result = (await client.query(query)) as QueryArrayResult | QueryArrayResult[];
    // A simple-protocol string of several statements answers with one result each; the last is the case's.
    const last = Array.isArray(result) ? result[result.length - 1] : result;
    const fields = (last.fields ?? []).map((f) => f.name);
    const rows = last.rows ?? [];
    return { kind: 'allowed', fields, rows, rowCount: last.command === 'SELECT' || fields.length > 0 ? rows.length : (last.rowCount ?? rows.length) };
  } catch (err) {
    if (err instanceof DatabaseError) return refusal(err);
    return { kind: 'failed', message: (err as Error).message || String(err) };
  } finally {
    await client.end().catch(() => undefined);
  }
}
