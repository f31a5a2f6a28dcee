// A red-team harness: a seeded database, a proxy in front of it, and a relay that records every byte clients receive.
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from './db';
import { startTestProxy, type TestProxy } from './proxy';
import { startRelay, type Relay } from './relay';

export interface Target {
  db: TestDatabase;
  proxy: TestProxy;
  relay: Relay;
  received: Buffer[];
}

export async function startTarget(policyFile: string, setup: string[] = []): Promise<Target> {
  const db = await createTestDatabase();
  for (const sql of setup) await db.query(sql);
  const proxy = await startTestProxy(db.url, { policies: [policyFile] });
  const target = { db, proxy, received: [] as Buffer[] } as Target;
  target.relay = await startRelay('127.0.0.1', proxy.port, (chunk) => target.received.push(Buffer.from(chunk)));
  return target;
}

export async function stopTarget(t: Target | undefined): Promise<void> {
  await t?.relay?.close();
  await t?.proxy?.close();
  await t?.db?.drop();
}

export type Mode = { protocol: string; extended: boolean };
export const modes: Mode[] = [
  { protocol: 'simple', extended: false },
  { protocol: 'extended', extended: true },
];

/**
 * The suite runs with upstream.read_scope: rls (ORMAI_TEST_READ_SCOPE). PostgreSQL's row-level
 * security checks an upsert's conflicting row against the policy before the DO UPDATE's WHERE, so
 * a conflict with another tenant's row is an error (42501) there, where the proxy's tenant
 * condition makes it a no-op in the other read scopes. Either way nothing of the row is seen, and
 * the conflict tells that its key is taken, as a plain INSERT's unique violation does.
 */
export const UNDER_ROW_SECURITY = process.env.ORMAI_TEST_READ_SCOPE === 'rls';

/** An upsert that conflicts with another tenant's row: updated nothing, or (under row-level security) refused by its policy. */
export function expectForeignConflictLeftAlone(o: { rows?: unknown[]; error?: PgError }): void {
  if (UNDER_ROW_SECURITY) {
    expect(o.error?.code).toBe('42501');
    expect(o.error?.message).toMatch(/row-level security policy "ormai_tenant"/);
  } else {
    expect(o.error).toBeUndefined();
    expect(o.rows).toEqual([]);
  }
}

export type PgError = Error & { code?: string; routine?: string; hint?: string; detail?: string; position?: string };

export interface Outcome {
  rows?: Array<Record<string, unknown>>;
  fields?: string[];
  error?: PgError;
  notices: Array<{ severity: string; message: string }>;
  /** Every byte the client received, the connection's start included. */
  bytes: Buffer;
}

/**
 * Runs statements in order through one fresh session (tenant 1 unless told) and captures every
 * byte the client received; the outcome is the last statement's (or the first error's).
 */
export async function run(
  t: Target,
  sqls: string | string[],
  mode: Mode,
  opts: { user?: string; password?: string; values?: unknown[] } = {},
): Promise<Outcome> {
  t.received.length = 0;
  const user = opts.user ?? 'tenant1-agent';
  const password = opts.password ?? 'tenant1-password';
  const c = new Client({ connectionString: `postgres://${user}:${password}@127.0.0.1:${t.relay.port}/app` });
  const notices: Outcome['notices'] = [];
  c.on('notice', (n) => notices.push({ severity: (n as { severity?: string }).severity ?? '', message: `${n.message ?? ''} ${n.detail ?? ''}` }));
  c.on('error', () => undefined);
  await c.connect();
  try {
    let last: { rows: Array<Record<string, unknown>>; fields: Array<{ name: string }> } | undefined;
    for (const sql of Array.isArray(sqls) ? sqls : [sqls]) {
      const query = c.query(mode.extended ? ({ text: sql, values: opts.values ?? [], queryMode: 'extended' } as never) : sql);
      const r = await Promise.race([
        query,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within 10 s (hang): ${sql}`)), 10_000)),
      ]);
      last = Array.isArray(r) ? r[r.length - 1] : r;
    }
    return { rows: last?.rows, fields: last?.fields.map((f) => f.name), notices, bytes: Buffer.concat(t.received) };
  } catch (error) {
    if ((error as Error).message.includes('(hang)')) throw error;
    return { error: error as PgError, notices, bytes: Buffer.concat(t.received) };
  } finally {
    await Promise.race([c.end().catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
  }
}

/** Tenant 2's data, every secret, tenant 1's raw PII, and the hidden column's name (quickstart seed). */
export const QUICKSTART_FORBIDDEN = [
  'Globex', 'hank@globex.com', 'lisa@globexship.com', '555-0200', '555-0201', '990000', '123400', '55500',
  'sk_live_', 'DO_NOT_LEAK',
  'jane@acme.com', 'joe@acmelabs.com', 'ann@acmeretail.com', '555-0100', '555-0101',
  'api_secret',
];

/** No forbidden string in anything the client received (rows, errors, notices), unless the agent's own text holds it. */
export function expectNothingForbidden(bytes: Buffer, sql: string | string[], forbidden: readonly string[]): void {
  const text = bytes.toString('latin1');
  const own = Array.isArray(sql) ? sql.join('\n') : sql;
  for (const f of forbidden) {
    if (own.includes(f)) continue;
    if (text.includes(f)) throw new Error(`"${f}" reached the client for: ${own}`);
  }
}

/** A direct query against the test database (no proxy): what PostgreSQL itself answers. */
export async function direct<T extends Record<string, unknown>>(t: Target, sql: string, values?: unknown[]): Promise<T[]> {
  return t.db.query<T>(sql, values);
}
