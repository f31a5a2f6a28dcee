// Red-team probes against the write path (I1, I2, I3, I5, I9): tenant 1's agent, with INSERT/UPDATE/DELETE and every
// shape around them (RETURNING, ON CONFLICT, UPDATE … FROM, DELETE … USING, subqueries, read CTEs, EXPLAIN, prepared
// statements, parameters, multi-statement strings, transactions, savepoints, sqlcommenter tags, quoting), tries to
// read, change, plant or learn anything of tenant 2, of hidden columns or raw masked values, to write beyond what the
// policy allows, or to crash or hang the proxy. Every probe runs under the simple and the extended protocol (the
// message-level probes, which need control of Parse/Bind/Execute/Sync, under the extended protocol only), every byte
// the client receives is checked for forbidden values, and the database is read directly afterwards.
//
// Probes the proxy holds are ordinary tests. Probes that show a real hole are `test.failing`, with a comment above
// each saying the exact statement, what leaks or what rule is broken, why (in the code) and a suggested fix: they
// pass while the hole exists and start failing (as a reminder to flip them to `test`) once it is fixed.
//
// The databases are ANALYZEd after seeding, as autovacuum would do on a live system: with statistics the planner
// scans these small tables sequentially, which is what the qual-ordering findings below depend on.
import path from 'node:path';
import { Client } from 'pg';
import { serialize } from 'pg-protocol';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { RawClient, type Message } from '../support/raw-client';
import { startRelay, type Relay } from '../support/relay';
import { expectForeignConflictLeftAlone } from '../support/red-team';
import { checkTenantIntegrityAfterEach, unwatchTenantIntegrity, watchTenantIntegrity } from '../support/tenant-integrity';

const FIXTURES = path.resolve(__dirname, '..', 'fixtures');
const WRITE_POLICY = path.join(FIXTURES, 'write-policy.yaml');
const CAP_POLICY = path.join(FIXTURES, 'write-cap-policy.yaml');
const BUDGET_POLICY = path.join(FIXTURES, 'write-budget-policy.yaml');
const APPROVAL_POLICY = path.join(FIXTURES, 'rtw-approval-policy.yaml');
const GRANTS_POLICY = path.join(FIXTURES, 'rtw-grants-policy.yaml');
const ROW_FILTER_POLICY = path.join(FIXTURES, 'rtw-row-filter-policy.yaml');

const R = "/*reason='red team'*/ ";

type Mode = { protocol: string; extended: boolean };
const modes: Mode[] = [
  { protocol: 'simple', extended: false },
  { protocol: 'extended', extended: true },
];

/** Tenant 2's data, every secret, tenant 1's raw PII and the hidden column's name: none of it may reach tenant 1's agent. */
const FORBIDDEN = [
  'Globex', 'hank@globex.com', 'lisa@globexship.com', '555-0200', '555-0201', '990000', '123400', '55500',
  'sk_live_', 'DO_NOT_LEAK',
  'jane@acme.com', 'joe@acmelabs.com', 'ann@acmeretail.com', '555-0100', '555-0101',
  'api_secret',
];

/** What the agent's own escaped text decodes to: an echo of its own words, not a leak. */
const ECHOES: Record<string, string[]> = {
  [`${R}UPDATE customers SET name = name WHERE U&"api\\005fsecret" IS NULL`]: ['api_secret'],
};

// ---------------------------------------------------------------------------------------------------------------
// Harness: a database per target (quickstart schema and seed, ANALYZEd), a proxy with one policy, a relay that
// records every byte the proxy sends to clients.
// ---------------------------------------------------------------------------------------------------------------

interface Target {
  db: TestDatabase;
  proxy: TestProxy;
  relay: Relay;
  received: Buffer[];
  forbidden: string[];
  /** One open session per protocol, reused by every probe (reconnected when the proxy ends it). */
  clients: Map<string, Client>;
}

async function startTarget(policy: string, setup: string[] = [], extraForbidden: string[] = []): Promise<Target> {
  const db = await createTestDatabase();
  for (const sql of [...setup, 'ANALYZE customers', 'ANALYZE orders']) await db.query(sql);
  watchTenantIntegrity(db);
  // The I9 probes send writes of 20,000 terms and 2,000 rows, each analysed once, cold: on a loaded
  // 2-core CI machine that can take longer than the default 2 s analysis budget, which is a bound
  // of its own (hardening-bounds.test.ts). Here the answers are what is tested, not the time.
  const proxy = await startTestProxy(db.url, { policies: [policy], analysis: { budget_ms: 10_000 } });
  const target = { db, proxy, received: [] as Buffer[], forbidden: [...FORBIDDEN, ...extraForbidden], clients: new Map() } as Target;
  target.relay = await startRelay('127.0.0.1', proxy.port, (chunk) => target.received.push(Buffer.from(chunk)));
  return target;
}

async function closeClients(t: Target | undefined): Promise<void> {
  for (const c of t?.clients.values() ?? []) await Promise.race([c.end().catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
  t?.clients.clear();
}

async function stopTarget(t: Target | undefined): Promise<void> {
  unwatchTenantIntegrity(t?.db);
  await closeClients(t);
  await t?.relay?.close();
  await t?.proxy?.close();
  await t?.db?.drop();
}

// After every test: no row of one tenant references a row of another, in any database a target holds.
checkTenantIntegrityAfterEach();

type PgError = Error & { code?: string; routine?: string; detail?: string; hint?: string; column?: string; constraint?: string };

interface Outcome {
  rows?: Array<Record<string, unknown>>;
  rowCount?: number | null;
  error?: PgError;
}

type Statement = string | { sql: string; values: unknown[] };

async function clientFor(t: Target, mode: Mode): Promise<Client> {
  const open = t.clients.get(mode.protocol);
  if (open) return open;
  const c = new Client({ connectionString: `postgres://tenant1-agent:tenant1-password@127.0.0.1:${t.relay.port}/app` });
  c.on('error', () => t.clients.delete(mode.protocol));
  c.on('end', () => t.clients.delete(mode.protocol));
  await c.connect();
  t.clients.set(mode.protocol, c);
  return c;
}

/**
 * Runs the statements in order on tenant 1's session for this protocol, each under the mode, going on after errors;
 * returns each outcome and every byte the client received meanwhile. A statement without an answer in 10 s is a hang.
 */
async function session(t: Target, mode: Mode, statements: Statement[]): Promise<{ outcomes: Outcome[]; bytes: Buffer }> {
  const c = await clientFor(t, mode);
  t.received.length = 0;
  const outcomes: Outcome[] = [];
  for (const s of statements) {
    const sql = typeof s === 'string' ? s : s.sql;
    const values = typeof s === 'string' ? [] : s.values;
    let timer: NodeJS.Timeout | undefined;
    try {
      const r = await Promise.race([
        c.query(mode.extended ? ({ text: sql, values, queryMode: 'extended' } as never) : sql),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within 10 s (hang): ${sql.slice(0, 200)}`)), 10_000);
        }),
      ]);
      const results = (Array.isArray(r) ? r : [r]) as Array<{ rows: Array<Record<string, unknown>>; rowCount: number | null }>;
      outcomes.push({ rows: results.flatMap((x) => x.rows), rowCount: results[results.length - 1].rowCount });
    } catch (error) {
      if ((error as Error).message.includes('(hang)')) {
        t.clients.delete(mode.protocol);
        throw error;
      }
      outcomes.push({ error: error as PgError });
    } finally {
      clearTimeout(timer);
    }
  }
  return { outcomes, bytes: Buffer.concat(t.received) };
}

/** One statement in its own session. */
async function run(t: Target, sql: string, mode: Mode, values: unknown[] = []): Promise<Outcome & { bytes: Buffer }> {
  const { outcomes, bytes } = await session(t, mode, [values.length ? { sql, values } : sql]);
  return { ...outcomes[0], bytes };
}

/** A statement between BEGIN and ROLLBACK: what it did is seen (rows, counts, errors), nothing stays. */
async function inRollback(t: Target, mode: Mode, statements: Statement[]): Promise<{ outcomes: Outcome[]; bytes: Buffer }> {
  const { outcomes, bytes } = await session(t, mode, ['BEGIN', ...statements, 'ROLLBACK']);
  return { outcomes: outcomes.slice(1, -1), bytes };
}

/** No forbidden byte in anything the client received; a value the agent's own text contains may echo back. */
function expectNothingForbidden(t: Target, bytes: Buffer, sql: string): void {
  const text = bytes.toString('latin1');
  for (const f of t.forbidden) {
    if (sql.includes(f) || ECHOES[sql]?.includes(f)) continue;
    if (text.includes(f)) throw new Error(`"${f}" reached the client for: ${sql}\n${text.replace(/[^\x20-\x7e]+/g, ' ')}`);
  }
}

function expectNoInternalError(o: Outcome): void {
  if (o.error) {
    expect(o.error.code).not.toBe('XX000');
    expect(o.error.routine ?? '').not.toBe('ormai.internal_error');
  }
}

/** What tenant 1's agent must never change: tenant 2's rows (hidden columns included), rows of no tenant, tenant 1's secrets. */
async function protectedState(db: TestDatabase): Promise<unknown> {
  return {
    customers: await db.query('SELECT * FROM customers WHERE tenant_id <> 1 ORDER BY id'),
    orders: await db.query('SELECT id, tenant_id, customer_id, total_cents, status, created_at FROM orders WHERE tenant_id <> 1 ORDER BY id'),
    secrets: await db.query('SELECT id, api_secret FROM customers WHERE tenant_id = 1 ORDER BY id'),
  };
}

async function withRawClient<T>(t: Target, fn: (c: RawClient, bytes: () => Buffer) => Promise<T>): Promise<T> {
  const c = await RawClient.connect(t.proxy.port, 'tenant1-agent', 'tenant1-password');
  const chunks: Buffer[] = [];
  c.socket.on('data', (chunk) => chunks.push(Buffer.from(chunk)));
  try {
    return await fn(c, () => Buffer.concat(chunks));
  } finally {
    c.end();
  }
}

const errorOf = (ms: Message[]) => ms.find((m) => m.name === 'error') as (Message & { code?: string; message?: string; detail?: string }) | undefined;
const completed = (ms: Message[]) => ms.filter((m) => m.name === 'commandComplete').map((m) => (m as unknown as { text: string }).text);

// ---------------------------------------------------------------------------------------------------------------
// 1. Byte probes: whatever they return or refuse, nothing forbidden reaches the client, no internal error, and
//    tenant 2's rows, rows of no tenant and tenant 1's secrets are unchanged in the database.
// ---------------------------------------------------------------------------------------------------------------

const WRITE_PROBES: string[] = [
  // Hidden column of the target, in every clause and spelling.
  'UPDATE customers SET name = name WHERE api_secret LIKE \'sk_live_A%\'',
  'UPDATE customers SET name = name WHERE customers.api_secret IS NOT NULL',
  'UPDATE customers c SET name = name WHERE c."api_secret" IS NULL',
  'UPDATE customers SET name = name WHERE U&"api\\005fsecret" IS NULL',
  'UPDATE customers SET name = api_secret WHERE id = 1',
  'UPDATE customers SET name = (SELECT api_secret) WHERE id = 1',
  'UPDATE customers SET name = name WHERE id = 1 RETURNING api_secret',
  'UPDATE customers SET name = name WHERE id = 1 RETURNING (SELECT api_secret)',
  'UPDATE customers SET name = name WHERE EXISTS (SELECT 1 WHERE api_secret LIKE \'sk%\')',
  'UPDATE customers SET name = name WHERE api_secret(customers) IS NULL',
  'UPDATE customers SET name = name WHERE (customers).api_secret IS NULL',
  'UPDATE customers SET name = name WHERE row_to_json(customers)::text LIKE \'%sk_live%\'',
  'UPDATE customers SET name = name WHERE to_jsonb(customers.*) ? \'api_secret\'',
  'UPDATE customers SET name = name WHERE id = 1 RETURNING customers',
  'UPDATE customers SET name = name WHERE id = 1 RETURNING row(customers.*)::text',
  'UPDATE customers SET name = name WHERE id = 1 RETURNING to_jsonb(customers)',
  'UPDATE customers SET name = name WHERE id = 1 RETURNING customers.*',
  'UPDATE customers SET name = name WHERE id = 1 RETURNING *, ctid, xmin',
  'UPDATE customers AS old SET name = old.api_secret WHERE old.id = 1',
  'UPDATE customers AS excluded SET name = excluded.api_secret WHERE excluded.id = 1',
  'UPDATE customers SET name = name FROM customers c2 WHERE c2.api_secret IS NOT NULL',
  'UPDATE customers SET api_secret = \'x\' WHERE id = 1',
  'UPDATE customers SET (name, api_secret) = (\'x\', \'y\') WHERE id = 1',
  'UPDATE customers SET name = name WHERE api_secre = \'x\'',
  'UPDATE orders SET status = (SELECT c.api_secret FROM customers c WHERE c.id = orders.customer_id) WHERE id = 1',
  'INSERT INTO orders (customer_id, total_cents) VALUES (1, 1) RETURNING (SELECT api_secret FROM customers LIMIT 1)',
  // Masked columns of the target: never copied, compared or computed on; bare RETURNING items come back masked.
  'UPDATE customers SET name = email WHERE id = 1',
  'UPDATE customers SET name = lower(email) WHERE id = 1',
  'UPDATE customers SET name = name WHERE email LIKE \'jane%\'',
  'UPDATE customers SET name = name WHERE phone = \'555-0100\'',
  'UPDATE customers SET (name, phone) = (SELECT email, phone) WHERE id = 1',
  'UPDATE customers SET name = name WHERE id = 1 RETURNING email || \'\'',
  'UPDATE customers SET name = name WHERE id = 1 RETURNING email, phone, customers.email AS e2',
  'UPDATE customers c SET name = c.email WHERE c.id = 1',
  'UPDATE customers AS new SET name = new.phone WHERE new.id = 1',
  'UPDATE customers SET phone = phone || \'\' WHERE id = 1',
  'UPDATE customers SET email = email WHERE id = 1',
  'UPDATE customers SET name = name WHERE id = 1 RETURNING old.email, new.phone',
  'UPDATE customers SET name = name WHERE id = 1 RETURNING old.*, new.*',
  'UPDATE customers SET name = name WHERE id = 1 RETURNING email COLLATE "C"',
  'UPDATE customers SET name = name WHERE id = 1 RETURNING WITH (OLD AS o) o.email',
  'UPDATE customers SET name = name FROM customers c2 WHERE c2.id = customers.id AND c2.email LIKE \'jane%\'',
  'UPDATE customers SET name = CASE WHEN email LIKE \'j%\' THEN name END WHERE id = 1',
  'UPDATE customers SET name = name FROM customers AS excluded WHERE excluded.id = customers.id AND excluded.email LIKE \'jane%\'',
  // The tenant column: never assignable, never another tenant's.
  'UPDATE orders SET tenant_id = 2 WHERE id = 1',
  'UPDATE orders SET (status, tenant_id) = (\'x\', 2) WHERE id = 1',
  'UPDATE orders SET tenant_id = tenant_id + 1 WHERE id = 1',
  'INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (4, 1, 2)',
  'INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (4, 1, \'2\')',
  'INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (4, 1, 2.0)',
  'INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (4, 1, (SELECT 2))',
  'INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (4, 1, NULL)',
  'INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, 1), (4, 1, 2)',
  'INSERT INTO orders (id, customer_id, total_cents) VALUES (5, 4, 1) ON CONFLICT (id) DO UPDATE SET tenant_id = 1',
  'INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT customer_id, total_cents, tenant_id FROM orders',
  'INSERT INTO orders (customer_id, total_cents) SELECT customer_id, total_cents FROM orders WHERE tenant_id = 2',
  'INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (4, 1, 2) UNION ALL VALUES (4, 1, 2)',
  // Shapes that reach for tenant 2's rows: they match nothing, evaluate nothing on them, return nothing of them.
  'UPDATE orders SET status = status WHERE tenant_id = 2',
  'UPDATE orders SET status = status WHERE id IN (5, 6, 7) RETURNING *',
  'UPDATE orders o SET status = o.status FROM customers c WHERE c.id = o.customer_id AND c.name LIKE \'Globex%\' RETURNING o.id, c.name',
  'DELETE FROM orders o USING customers c WHERE c.id = o.customer_id AND c.tenant_id = 2 RETURNING o.*, c.name',
  'DELETE FROM orders WHERE total_cents IN (990000, 123400, 55500) RETURNING *',
  'UPDATE orders SET status = (SELECT string_agg(name, \',\') FROM customers) WHERE id = -1 RETURNING status',
  'DELETE FROM orders WHERE id = -1 RETURNING *, (SELECT string_agg(name || email, \',\') FROM customers)',
  'UPDATE orders SET status = status WHERE id IN (SELECT id FROM orders WHERE total_cents > 50000 AND make_date(2000, 1, total_cents) IS NOT NULL)',
  'INSERT INTO orders (customer_id, total_cents) SELECT 1, make_date(2000, 1, total_cents)::text::int FROM orders WHERE total_cents > 50000',
  'INSERT INTO orders (customer_id, total_cents) VALUES (1, (SELECT max(total_cents) FROM orders)) RETURNING total_cents',
  'WITH o AS (SELECT * FROM orders) UPDATE orders SET status = status FROM o WHERE o.id = orders.id AND o.total_cents = 990000',
  'WITH orders AS (SELECT * FROM orders WHERE tenant_id = 2) UPDATE orders SET status = \'hijacked\' WHERE id IN (SELECT id FROM orders)',
  'INSERT INTO orders (id, customer_id, total_cents) VALUES (5, 1, 1) ON CONFLICT (id) DO UPDATE SET status = \'hijacked\' RETURNING *',
  'INSERT INTO orders (id, customer_id, total_cents) VALUES (5, 1, 1) ON CONFLICT (id) DO UPDATE SET status = orders.status || excluded.status ' +
    'WHERE orders.total_cents > 50000 AND make_date(2000, 1, orders.total_cents) IS NOT NULL RETURNING *',
  'INSERT INTO orders (id, customer_id, total_cents) VALUES (6, 1, 1) ON CONFLICT (id) DO UPDATE SET total_cents = orders.total_cents / (orders.total_cents - 123400)',
  'INSERT INTO orders (id, customer_id, total_cents) VALUES (7, 1, 1) ON CONFLICT ON CONSTRAINT orders_pkey DO NOTHING RETURNING *',
  // EXPLAIN of writes: plans of the rewritten statement, no costs, nothing run.
  'EXPLAIN UPDATE orders SET status = \'x\' WHERE tenant_id = 2',
  'EXPLAIN (VERBOSE, FORMAT JSON) UPDATE customers SET name = \'y\' WHERE id = 1 RETURNING *',
  'EXPLAIN (VERBOSE) INSERT INTO orders (id, customer_id, total_cents) VALUES (5, 1, 1) ON CONFLICT (id) DO UPDATE SET status = excluded.status RETURNING *',
  'EXPLAIN (VERBOSE, FORMAT XML) DELETE FROM orders USING customers c WHERE c.id = orders.customer_id',
  'EXPLAIN UPDATE orders SET status = status WHERE total_cents > 50000 AND make_date(2000, 1, total_cents) IS NOT NULL',
  'EXPLAIN ANALYZE UPDATE orders SET status = \'x\'',
  'EXPLAIN (ANALYZE true, FORMAT JSON) DELETE FROM orders',
  'EXPLAIN (COSTS) DELETE FROM orders WHERE total_cents = 1',
  'EXPLAIN UPDATE customers SET name = api_secret',
  'EXPLAIN DELETE FROM customers',
  // Dry runs: the preview SELECT shows only tenant 1's rows, masked values masked, and writes nothing.
  "/*dry_run='true'*/ UPDATE customers SET email = 'q@example.com', name = name WHERE id = 1",
  "/*dry_run='true'*/ UPDATE orders SET status = 'x' WHERE tenant_id = 2",
  "/*dry_run='true'*/ UPDATE orders o SET status = c.name FROM customers c WHERE c.id = o.customer_id",
  "/*dry_run='true'*/ DELETE FROM orders USING customers c WHERE c.id = orders.customer_id",
  "/*dry_run='true'*/ DELETE FROM orders WHERE total_cents IN (990000, 123400, 55500)",
  "/*dry_run='true'*/ INSERT INTO orders (customer_id, total_cents) SELECT customer_id, total_cents FROM orders",
  "/*dry_run='true'*/ INSERT INTO orders (customer_id, total_cents) VALUES (4, (SELECT max(total_cents) FROM orders))",
  "/*dry_run='true'*/ INSERT INTO orders (id, customer_id, total_cents) VALUES (5, 1, 1) ON CONFLICT (id) DO UPDATE SET status = 'x'",
  "/*dry_run='true'*/ UPDATE customers SET (name, phone) = (SELECT 'a', 'b') WHERE id = 1",
  // Data-modifying CTEs and MERGE.
  'WITH x AS (UPDATE orders SET status = \'x\' RETURNING *) SELECT * FROM x',
  'WITH x AS (DELETE FROM orders WHERE tenant_id = 2 RETURNING *) UPDATE orders SET status = \'y\' WHERE id = 1',
  'MERGE INTO orders o USING customers c ON c.id = o.customer_id WHEN MATCHED THEN UPDATE SET status = \'x\'',
  // Names, quoting, case, targets the policy does not grant.
  'UPDATE app.public.orders SET status = \'x\'',
  'UPDATE pg_catalog.pg_class SET relname = \'x\'',
  'UPDATE "ORDERS" SET status = \'x\'',
  'UPDATE public."orders" AS "O" SET status = "O".status WHERE "O".id = -1',
  'UPDATE orders SET status = \'x\' WHERE CURRENT OF c',
  'DELETE FROM customers WHERE id = 4',
  'INSERT INTO customers (name, email) VALUES (\'x\', \'y\')',
  // Errors for writes: no DETAIL (it prints whole rows), no HINT, hidden columns never named.
  'UPDATE customers SET name = NULL WHERE id = 1',
  'UPDATE customers SET name = repeat(\'x\', 200) WHERE id = 1',
  'INSERT INTO orders (customer_id, total_cents) VALUES (NULL, 1)',
  'INSERT INTO orders (id, customer_id, total_cents) VALUES (1, 1, 1)',
  'UPDATE orders SET customer_id = 99 WHERE id = 1',
  'UPDATE orders SET total_cents = total_cents / 0 WHERE id = 1',
];

describe('red-team write byte probes', () => {
  let t: Target;
  let before: unknown;
  beforeAll(async () => {
    t = await startTarget(WRITE_POLICY);
  });
  afterAll(async () => {
    await stopTarget(t);
  });
  beforeEach(async () => {
    before = await protectedState(t.db);
  });
  afterEach(async () => {
    expect(await protectedState(t.db)).toEqual(before);
    expect(await t.db.query('SELECT count(*)::int AS n FROM orders WHERE tenant_id NOT IN (1, 2)')).toEqual([{ n: 0 }]);
  });

  describe.each(modes)('under the $protocol protocol', (mode) => {
    test.each(WRITE_PROBES)('%s', async (probe) => {
      const sql = probe.startsWith('EXPLAIN') ? probe : `${R}${probe}`;
      const outcome = await run(t, sql, mode);
      expectNothingForbidden(t, outcome.bytes, sql);
      expectNoInternalError(outcome);
      // A database error for a write never carries DETAIL or HINT (a constraint's DETAIL prints the whole row).
      if (outcome.error && !outcome.error.routine?.startsWith('ormai.')) {
        expect(outcome.error.detail).toBeUndefined();
        expect(outcome.error.hint).toBeUndefined();
      }
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 2. What the proxy holds, checked by result: refusal codes, rows and counts, the database afterwards.
// ---------------------------------------------------------------------------------------------------------------

const REFUSED: Array<[string, string]> = [
  [`${R}UPDATE customers SET name = name WHERE api_secret LIKE 'sk%'`, 'ormai.column_not_found'],
  [`${R}UPDATE customers SET name = name WHERE api_secret(customers) IS NULL`, 'ormai.function_not_allowed'],
  [`${R}UPDATE customers SET name = name WHERE (customers).api_secret IS NULL`, 'ormai.statement_not_allowed'],
  [`${R}UPDATE customers SET name = name WHERE id = 1 RETURNING to_jsonb(customers)`, 'ormai.statement_not_allowed'],
  [`${R}UPDATE customers SET name = name WHERE id = 1 RETURNING row(customers.*)::text`, 'ormai.statement_not_allowed'],
  [`${R}UPDATE customers AS excluded SET name = excluded.api_secret WHERE excluded.id = 1`, 'ormai.statement_not_allowed'],
  [`${R}UPDATE customers SET name = email WHERE id = 1`, 'ormai.field_masked'],
  [`${R}UPDATE customers SET (name, phone) = (SELECT email, phone) WHERE id = 1`, 'ormai.field_masked'],
  [`${R}UPDATE customers c SET name = c.email WHERE c.id = 1`, 'ormai.field_masked'],
  [`${R}UPDATE customers AS new SET name = new.phone WHERE new.id = 1`, 'ormai.statement_not_allowed'],
  [`${R}UPDATE customers AS old SET name = old.email WHERE old.id = 1`, 'ormai.statement_not_allowed'],
  [`${R}UPDATE customers SET name = name WHERE id = 1 RETURNING email COLLATE "C"`, 'ormai.field_masked'],
  [`${R}UPDATE customers SET name = name WHERE id = 1 RETURNING WITH (OLD AS o) o.email`, 'ormai.statement_not_allowed'],
  [`${R}UPDATE orders SET (status, tenant_id) = ('x', 2) WHERE id = 1`, 'ormai.field_not_writable'],
  [`${R}INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (4, 1, 2.0)`, 'ormai.tenant_forged'],
  [`${R}INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (4, 1, (SELECT 2))`, 'ormai.tenant_forged'],
  [`${R}INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, 1), (4, 1, 2)`, 'ormai.tenant_forged'],
  [`${R}INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (4, 1, 2) UNION ALL VALUES (4, 1, 2)`, 'ormai.tenant_forged'],
  [`${R}INSERT INTO orders (id, customer_id, total_cents) VALUES (5, 4, 1) ON CONFLICT (id) DO UPDATE SET tenant_id = 1`, 'ormai.field_not_writable'],
  [`${R}WITH x AS (DELETE FROM orders WHERE tenant_id = 2 RETURNING *) UPDATE orders SET status = 'y' WHERE id = 1`, 'ormai.statement_not_allowed'],
  [`${R}MERGE INTO orders o USING customers c ON c.id = o.customer_id WHEN MATCHED THEN UPDATE SET status = 'x'`, 'ormai.statement_not_allowed'],
  [`${R}UPDATE app.public.orders SET status = 'x'`, 'ormai.statement_not_understood'],
  ['EXPLAIN ANALYZE UPDATE orders SET status = \'x\'', 'ormai.statement_not_allowed'],
  ['EXPLAIN DELETE FROM customers', 'ormai.model_writes_disabled'],
  ['EXPLAIN UPDATE customers SET name = api_secret', 'ormai.column_not_found'],
  ["/*reason='%20'*/ UPDATE orders SET status = status WHERE id = 1", 'ormai.reason_required'],
  ["/*reason=''*/ UPDATE orders SET status = status WHERE id = 1", 'ormai.reason_required'],
  ["SELECT '/*reason=''x''*/'; UPDATE orders SET status = status WHERE id = 1", 'ormai.reason_required'],
  ["/*reason='x',dry_run='maybe'*/ UPDATE orders SET status = status WHERE id = 1", 'ormai.statement_not_allowed'],
  ["/*dry_run='true'*/ UPDATE customers SET name = email WHERE id = 1", 'ormai.field_masked'],
  ["/*dry_run='true'*/ UPDATE customers SET name = name WHERE api_secret IS NULL", 'ormai.column_not_found'],
  ["/*dry_run='true'*/ UPDATE orders SET tenant_id = 2 WHERE id = 1", 'ormai.field_not_writable'],
  ["/*dry_run='true'*/ INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (4, 1, 2)", 'ormai.tenant_forged'],
  ["/*dry_run='true'*/ DELETE FROM customers WHERE id = 1", 'ormai.model_writes_disabled'],
];

describe('red-team write refusals and results', () => {
  let t: Target;
  let before: unknown;
  beforeAll(async () => {
    t = await startTarget(WRITE_POLICY);
  });
  afterAll(async () => {
    await stopTarget(t);
  });
  beforeEach(async () => {
    before = await protectedState(t.db);
  });
  afterEach(async () => {
    expect(await protectedState(t.db)).toEqual(before);
  });

  const own = async () => (await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders WHERE tenant_id = 1'))[0].n;

  describe.each(modes)('under the $protocol protocol', (mode) => {
    test.each(REFUSED)('%s → %s', async (sql, routine) => {
      if (mode.extended && sql.includes('; ')) return; // a multi-statement string is not a prepared statement
      const { outcomes, bytes } = await inRollback(t, mode, [sql]);
      expect(outcomes[outcomes.length - 1].error?.routine).toBe(routine);
      expectNothingForbidden(t, bytes, sql);
    });

    test('UPDATE, DELETE and ON CONFLICT reach only tenant 1’s rows; reads inside writes see only tenant 1', async () => {
      const n = await own();
      const { outcomes, bytes } = await inRollback(t, mode, [
        `${R}UPDATE orders SET status = status`,
        `${R}UPDATE orders SET status = 'x' WHERE id IN (5, 6, 7)`,
        `${R}UPDATE orders o SET status = 'x' FROM customers c WHERE c.id = o.customer_id AND c.tenant_id = 2`,
        `${R}DELETE FROM orders o USING orders o2 WHERE o2.id = o.id AND o2.total_cents > 50000`,
        `${R}UPDATE orders SET total_cents = (SELECT max(total_cents) FROM orders) WHERE id = 1 RETURNING total_cents`,
        `${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, (SELECT count(*) FROM orders)) RETURNING tenant_id, total_cents`,
        `${R}INSERT INTO orders (customer_id, total_cents) SELECT customer_id, total_cents FROM orders WHERE total_cents > 50000 RETURNING *`,
        `${R}UPDATE customers SET name = name WHERE id = 1 RETURNING *`,
        // Last: under row-level security it is an error, which ends the transaction.
        `${R}INSERT INTO orders (id, customer_id, total_cents) VALUES (5, 1, 1) ON CONFLICT (id) DO UPDATE SET status = 'x' RETURNING *`,
      ]);
      expect(outcomes.slice(0, -1).map((o) => o.error?.message)).toEqual(outcomes.slice(0, -1).map(() => undefined));
      expect(outcomes.slice(0, -1).map((o) => o.rowCount)).toEqual([n, 0, 0, 0, 1, 1, 0, 1]);
      expect(outcomes[4].rows).toEqual([{ total_cents: 20000 }]);
      expect(outcomes[5].rows).toEqual([{ tenant_id: 1, total_cents: n }]);
      expect(outcomes[7].rows).toEqual([{ id: 1, tenant_id: 1, name: 'Acme Corp', email: 'j***@acme.com', phone: '55****00' }]);
      expectForeignConflictLeftAlone(outcomes[8]);
      expectNothingForbidden(t, bytes, '');
    });

    // The ON CONFLICT DO UPDATE WHERE is evaluated in the order written, the tenant predicate first: an agent
    // condition that would raise an error carrying a value is never evaluated on a foreign conflicting row.
    test('ON CONFLICT DO UPDATE never evaluates the agent’s WHERE or SET on a foreign conflicting row', async () => {
      const sql =
        `${R}INSERT INTO orders (id, customer_id, total_cents) VALUES (5, 1, 1) ON CONFLICT (id) DO UPDATE ` +
        "SET status = to_date(orders.status, 'Month')::text WHERE orders.total_cents > 50000 AND make_date(2000, 1, orders.total_cents) IS NOT NULL RETURNING *";
      const { outcomes, bytes } = await inRollback(t, mode, [sql]);
      expectForeignConflictLeftAlone(outcomes[0]);
      expectNothingForbidden(t, bytes, sql);
    });

    test('RETURNING old/new (PostgreSQL 18) shows masked values; elsewhere the database refuses it', async () => {
      const sql = `${R}UPDATE customers SET name = name WHERE id = 1 RETURNING old.email, new.phone, old.*`;
      const { outcomes, bytes } = await inRollback(t, mode, [sql]);
      if (outcomes[0].error) expect(outcomes[0].error.code).toBe('42P01');
      else expect(outcomes[0].rows?.[0]).toMatchObject({ email: 'j***@acme.com', phone: '55****00' });
      expectNothingForbidden(t, bytes, sql);
    });

    test('a multi-statement string with one refused write runs nothing', async () => {
      if (mode.extended) return; // one statement per Parse
      const sql = `${R}UPDATE orders SET status = 'rtw-multi' WHERE id = 1; UPDATE customers SET api_secret = 'x' WHERE id = 1`;
      const o = await run(t, sql, mode);
      expect(o.error?.routine).toBe('ormai.column_not_found');
      expect(await t.db.query("SELECT count(*)::int AS n FROM orders WHERE status = 'rtw-multi'")).toEqual([{ n: 0 }]);
    });

    test('savepoints: a refused write aborts to the savepoint; what commits is tenant 1’s only', async () => {
      const status = `rtw-sp-${mode.protocol}`;
      const { outcomes, bytes } = await session(t, mode, [
        'BEGIN',
        `${R}UPDATE orders SET status = '${status}' WHERE id = 1`,
        'SAVEPOINT a',
        `${R}UPDATE orders SET tenant_id = 2 WHERE id = 1`,
        'SELECT 1',
        'ROLLBACK TO SAVEPOINT a',
        `${R}UPDATE orders SET status = '${status}' WHERE id IN (2, 5)`,
        'RELEASE SAVEPOINT a',
        'COMMIT',
      ]);
      expect(outcomes[3].error?.routine).toBe('ormai.field_not_writable');
      expect(outcomes[4].error?.code).toBe('25P02');
      expect(outcomes[6].rowCount).toBe(1);
      expect(outcomes[8].error).toBeUndefined();
      expect(await t.db.query('SELECT id, tenant_id FROM orders WHERE status = $1 ORDER BY id', [status])).toEqual([
        { id: 1, tenant_id: 1 },
        { id: 2, tenant_id: 1 },
      ]);
      expectNothingForbidden(t, bytes, '');
      await t.db.query("UPDATE orders SET status = 'pending' WHERE id = 1");
      await t.db.query("UPDATE orders SET status = 'paid' WHERE id = 2");
    });

    test('parameters: a foreign id or a tenant parameter matches nothing; a tenant parameter cannot be inserted', async () => {
      if (!mode.extended) return;
      const { outcomes, bytes } = await inRollback(t, mode, [
        { sql: `${R}UPDATE orders SET status = $1 WHERE id = $2 OR tenant_id = $3`, values: ['hijacked', 5, 2] },
        { sql: `${R}DELETE FROM orders WHERE total_cents = ANY($1::int[])`, values: ['{990000,123400,55500}'] },
        { sql: `${R}INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES ($1, $2, $3)`, values: [4, 1, 2] },
      ]);
      expect(outcomes[0].rowCount).toBe(0);
      expect(outcomes[1].rowCount).toBe(0);
      expect(outcomes[2].error?.routine).toBe('ormai.tenant_forged');
      expectNothingForbidden(t, bytes, '');
    });

    test('database errors for writes lose DETAIL and HINT and never name a hidden column', async () => {
      const { outcomes, bytes } = await inRollback(t, mode, [`${R}UPDATE customers SET name = NULL WHERE id = 1`]);
      expect(outcomes[0].error?.code).toBe('23502');
      expect(outcomes[0].error?.detail).toBeUndefined();
      expectNothingForbidden(t, bytes, '');
      const near = await run(t, `${R}UPDATE customers SET name = name WHERE api_secre = 'x'`, mode);
      expect(near.error?.code).toBe('42703');
      expect(near.bytes.toString('latin1')).not.toContain('api_secret');
    });

    test('I9: very long, deep and many-statement writes are answered, never an internal error or a hang', async () => {
      const inList = Array.from({ length: 20_000 }, (_, i) => i + 1000).join(',');
      const values = Array.from({ length: 2000 }, () => '(1, 1)').join(',');
      const statements = [
        `${R}UPDATE orders SET status = status WHERE id IN (${inList})`,
        `${R}INSERT INTO orders (customer_id, total_cents) VALUES ${values}`,
        `${R}UPDATE orders SET total_cents = ${'('.repeat(3000)}1${')'.repeat(3000)} WHERE id = -1`,
        `${R}UPDATE orders SET total_cents = 1 WHERE ${'NOT ('.repeat(2000)}true${')'.repeat(2000)} AND id = -1`,
      ];
      if (!mode.extended) statements.push(Array.from({ length: 300 }, (_, i) => `${R}UPDATE orders SET status = status WHERE id = -${i}`).join('; '));
      const { outcomes } = await inRollback(t, mode, statements);
      for (const o of outcomes) expectNoInternalError(o);
      expect(outcomes[0].rowCount).toBe(0);
      expect({ rowCount: outcomes[1].rowCount, error: outcomes[1].error?.message }).toEqual({ rowCount: 2000, error: undefined });
      const after = await run(t, 'SELECT count(*)::int AS n FROM orders', mode);
      expect(after.rows).toEqual([{ n: await own() }]);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 3. Findings on the write path of the write-policy (customers updatable, orders fully writable).
// ---------------------------------------------------------------------------------------------------------------

describe('red-team write findings (write-policy)', () => {
  let t: Target;
  beforeAll(async () => {
    t = await startTarget(WRITE_POLICY);
  });
  afterAll(async () => {
    await stopTarget(t);
  });

  describe.each(modes)('under the $protocol protocol', (mode) => {
    // Fixed, kept as a regression test. Was: LEAK (critical, I1): the agent's WHERE on the write TARGET is evaluated on other tenants' rows.
    //   /*reason='…'*/ UPDATE orders SET status = status WHERE total_cents > 50000 AND make_date(2000, 1, total_cents) IS NOT NULL
    // answers `ERROR: date field value out of range: 2000-01-990000` — tenant 2's order total — and
    //   UPDATE customers SET name = name WHERE name LIKE 'Glo%' AND to_date(name, 'Month') IS NOT NULL
    // answers `invalid value "Globex" for "Month"`; DELETE the same. As a boolean oracle,
    //   UPDATE customers SET name = name WHERE name LIKE 'Globex S%' AND int4range(id, 0) IS NOT NULL
    // fails ("range lower bound must be less than or equal to range upper bound") exactly when some row of ANY
    // tenant matches the LIKE, so any visible column of any tenant can be read prefix by prefix.
    // Why: writes.ts guardWrite ANDs `orders.tenant_id = '1'::int` with the agent's WHERE on the REAL table (the
    // target cannot be a fenced derived table). PostgreSQL turns that equality into an equivalence class whose
    // derived clause is appended AFTER the agent's clauses, and order_qual_clauses only sorts by cost (stable): a
    // one-function predicate (cost = one operator, like the tenant test) is evaluated first, on every row of the
    // sequential scan. The derived tables of reads are fenced with OFFSET 0; the write target is not. The same
    // clauses reach the max_affected_rows count and the approval count (see the approvals findings).
    // Fix: make the agent's condition unevaluable on foreign rows regardless of planning, e.g. emit
    //   WHERE t.tenant_id = X AND CASE WHEN t.tenant_id = X THEN (<agent's WHERE>) ELSE false END
    // (CASE fixes the evaluation order), and the same in countRows()/countSql and the ON CONFLICT WHERE.
    test('FIXED a cheap WHERE predicate on the target is evaluated on other tenants’ rows (values in errors)', async () => {
      const probes = [
        `${R}UPDATE orders SET status = status WHERE total_cents > 50000 AND make_date(2000, 1, total_cents) IS NOT NULL`,
        `${R}DELETE FROM orders WHERE total_cents > 50000 AND make_date(2000, 1, total_cents) IS NOT NULL`,
        `${R}UPDATE customers SET name = name WHERE name LIKE 'Glo%' AND to_date(name, 'Month') IS NOT NULL`,
      ];
      const leaks: string[] = [];
      for (const sql of probes) {
        const o = await run(t, sql, mode);
        try {
          expectNothingForbidden(t, o.bytes, sql);
          expect(o.error).toBeUndefined();
          expect(o.rowCount).toBe(0);
        } catch {
          leaks.push(`${sql} → ${o.error?.message}`);
        }
      }
      expect(leaks).toEqual([]);
    });

    test('FIXED error-or-not of a cheap WHERE predicate tells whether another tenant has a matching row', async () => {
      const foreign = await run(t, `${R}UPDATE customers SET name = name WHERE name LIKE 'Globex S%' AND int4range(id, 0) IS NOT NULL`, mode);
      const absent = await run(t, `${R}UPDATE customers SET name = name WHERE name LIKE 'Nobody%' AND int4range(id, 0) IS NOT NULL`, mode);
      expect(absent.error).toBeUndefined();
      expect(foreign.error?.message).toBe(absent.error?.message);
      expect(foreign.rowCount).toBe(absent.rowCount);
    });

    // Fixed, kept as a regression test. Was: LEAK (critical, I1 + I2 + I3): a dry run drops the write's WITH clause, so a relation that the read rewrite
    // left alone because a CTE of that name was in scope names the REAL table in the preview.
    //   /*dry_run='true'*/ WITH customers AS (SELECT 1 AS x) UPDATE orders SET status =
    //     (SELECT string_agg(c.name || ' ' || c.email || ' ' || c.api_secret, ', ') FROM customers c) WHERE orders.id = 1
    // returns, as status_after, every customer of EVERY tenant with raw email and api_secret ("Acme Corp
    // jane@acme.com sk_live_ACME_DO_NOT_LEAK, …, Globex Inc hank@globex.com sk_live_GLOBEX_DO_NOT_LEAK, …").
    // Why: walk.ts rightly keeps `customers` inside the UPDATE as the CTE; writes.ts checkReferences only knows the
    // TARGET's hidden columns (orders has none); dry-run.ts previewUpdate/previewDelete build a new SELECT from the
    // write's SET, FROM and WHERE without `stmt.withClause`, and index.ts sends that SELECT instead of the write,
    // so the unreplaced `customers` is now the real table, unfiltered and unmasked.
    // Fix: give the preview the write's WITH clause (or refuse dry runs of writes that have one); as defence in
    // depth, check the final tree: every RangeVar must be a derived table, a CTE in scope or the guarded target.
    test('FIXED a dry run with a WITH clause reads a CTE-shadowed name as the real table', async () => {
      const sql =
        "/*dry_run='true'*/ WITH customers AS (SELECT 1 AS x) UPDATE orders SET status = " +
        "(SELECT string_agg(c.name || ' ' || c.email || ' ' || c.api_secret, ', ') FROM customers c) WHERE orders.id = 1";
      const o = await run(t, sql, mode);
      expectNothingForbidden(t, o.bytes, sql);
    });

    // Fixed, kept as a regression test. Was: LEAK (high, I3 — in the before/after capture being added to the working tree, not yet committed): every
    // UPDATE that changes a non-key column gets
    //   FROM (SELECT id AS ormai_key_0, <changed columns, RAW> AS ormai_before_N FROM customers WHERE tenant_id = '1') AS ormai_old
    // and the agent can name it:
    //   /*reason='…'*/ UPDATE customers SET email = 'x@example.com', phone = '1' WHERE customers.id = 1 RETURNING ormai_old.*
    // returns ormai_before_0 = jane@acme.com and ormai_before_1 = 555-0100; `SET name = ormai_before_0` copies the
    // raw value into a visible column, and `WHERE ormai_before_0 LIKE 'jane%'` is an oracle. Why: capture.ts
    // joinOldRow adds the subquery AFTER writes.ts checkReferences, which lets through qualified references whose
    // qualifier is not the target (assumed to be a derived table) and unqualified names the target lacks.
    // Fix: reserve the `ormai_` prefix (refuse any agent identifier, alias or column starting with it), and keep
    // raw values out of anything the agent's expressions can reach (RETURNING old.* on 18, or a separate read).
    test('FIXED the write capture’s raw before-values can be named by the agent', async () => {
      const { outcomes, bytes } = await inRollback(t, mode, [
        `${R}UPDATE customers SET email = 'x@example.com', phone = '1' WHERE customers.id = 1 RETURNING ormai_old.*`,
        'ROLLBACK',
        'BEGIN',
        `${R}UPDATE customers SET email = 'x@example.com', name = ormai_before_0 WHERE customers.id = 1 RETURNING name`,
        'ROLLBACK',
        'BEGIN',
        `${R}UPDATE customers SET email = 'x@example.com' WHERE ormai_before_0 LIKE 'jane%'`,
        'ROLLBACK',
        'BEGIN',
        `${R}UPDATE customers SET email = 'x@example.com' WHERE ormai_before_0 LIKE 'zzz%'`,
      ]);
      expectNothingForbidden(t, bytes, '');
      expect(outcomes[6].rowCount).toBe(outcomes[9].rowCount);
    });

    // Fixed, kept as a regression test. Was: LEAK (critical, I1 — rows planted in another tenant): the tenant value of an INSERT is checked with
    // nodes.ts constantText(), which looks through every TypeCast to the innermost constant.
    //   /*reason='…'*/ INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (4, 424201, 1::bit(1)::bit(2)::int)
    // is accepted as tenant '1', but B'1'::bit(2) is B'10' = 2: the row lands in tenant 2 (with tenant 2's
    // customer 4); `'1'::"char"::int` is 49. Why: writes.ts checkInsert → constantText(row[at]) ignores casts.
    // Fix: accept only a bare constant, or one cast to the tenant column's own type (`'1'::int`), for the tenant
    // column; refuse anything else (tenant_forged) — or always replace the value by the proxy's tenant literal.
    test('FIXED a cast chain around the tenant constant inserts rows into another tenant', async () => {
      const before = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders WHERE tenant_id <> 1');
      try {
        const outcomes = [];
        for (const value of ['1::bit(1)::bit(2)::int', "'1'::\"char\"::int"]) {
          outcomes.push(await run(t, `${R}INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (4, 424201, ${value}) RETURNING tenant_id`, mode));
        }
        expect(await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders WHERE tenant_id <> 1')).toEqual(before);
        for (const o of outcomes) for (const row of o.rows ?? []) expect(row).toEqual({ tenant_id: 1 });
      } finally {
        await t.db.query('DELETE FROM orders WHERE total_cents = 424201');
      }
    });

    // Fixed, kept as a regression test. Was: LEAK (high, I3): aliasing the UPDATE target as `excluded` switches off the masked-column check.
    //   /*reason='…'*/ UPDATE customers AS excluded SET name = excluded.email || ' ' || excluded.phone WHERE excluded.id = 1 RETURNING name
    // returns `jane@acme.com 555-0100` (raw email and phone; `name` is not masked), and
    //   UPDATE customers AS excluded SET name = name WHERE excluded.email LIKE 'jane%'
    // is a raw-value oracle through its affected-row count; a dry run shows the raw value as name_after. Why: writes.ts checkColumnRef exempts every
    // `excluded.<masked>` reference (meant for INSERT … ON CONFLICT's EXCLUDED pseudo-row, which holds the agent's
    // own values), but resolveTarget puts the target's alias into the same `refs` set, so when the alias IS
    // "excluded" the real row is read unmasked (DELETE … AS excluded likewise). Fix: exempt `excluded` only for an
    // INSERT with ON CONFLICT whose target alias is not "excluded"; otherwise treat it like any target reference
    // (or refuse "excluded"/"old"/"new" as a target alias).
    test('FIXED UPDATE customers AS excluded reads masked columns raw', async () => {
      const copy = `${R}UPDATE customers AS excluded SET name = excluded.email || ' ' || excluded.phone WHERE excluded.id = 1 RETURNING name`;
      const { outcomes, bytes } = await inRollback(t, mode, [
        copy,
        `${R}UPDATE customers AS excluded SET name = name WHERE excluded.email LIKE 'jane%'`,
        "/*dry_run='true'*/ UPDATE customers AS excluded SET name = excluded.phone WHERE excluded.id = 1",
      ]);
      expectNothingForbidden(t, bytes, '');
      expect(outcomes[0].error?.routine).toMatch(/^ormai\./);
      expect(outcomes[1].error?.routine).toMatch(/^ormai\./);
    });

    // Fixed, kept as a regression test. Was: LEAK (medium, I5 — a dry run runs for real): only a well-formed `dry_run='…'` pair refuses the write.
    //   /*dry_run=true*/ /*reason='…'*/ UPDATE orders …          (value not quoted: the pair is skipped)
    //   /*DRY_RUN='true'*/ …                                     (key is case-sensitive)
    //   /*reason='…'*/ /*a0='x',…,a30='x'*/ /*dry_run='true'*/ …  (the 33rd tag is dropped: MAX_TAGS = 32)
    //   /*dry_run='<2049 characters>'*/ …                         (over MAX_VALUE_LENGTH: dropped)
    // all run the UPDATE for real. Why: comments.ts parseCommentTags skips malformed, over-long and surplus pairs
    // silently ("tags are advice"), and writes.ts refuseUnenforced only tests `'dry_run' in tags`. Fix: for a write,
    // fail closed when any comment mentions dry_run in any form (case-insensitive match on the raw comment text),
    // or when tags were dropped for MAX_TAGS/length.
    test('FIXED malformed, upper-case, surplus or over-long dry_run tags run the write for real', async () => {
      const update = 'UPDATE orders SET status = status WHERE id = 1';
      const many = Array.from({ length: 31 }, (_, i) => `a${i}='x'`).join(','); // with the reason: 32 tags
      const variants = [
        `/*dry_run=true*/ ${R}${update}`,
        `/*DRY_RUN='true'*/ ${R}${update}`,
        `${R}/*${many}*/ /*dry_run='true'*/ ${update}`,
        `/*dry_run='${'t'.repeat(2049)}'*/ ${R}${update}`,
      ];
      const ran: string[] = [];
      for (const sql of variants) {
        const o = await run(t, sql, mode);
        if (!o.error) ran.push(`${sql.slice(0, 60)} → ran, ${o.rowCount} row`);
      }
      expect(ran).toEqual([]);
    });

    // LEAK (medium, I1 existence oracle; a variant of the README's known unique-violation oracle, without an
    // error): `INSERT INTO orders (id, customer_id, total_cents) VALUES (5, 1, 1) ON CONFLICT DO NOTHING` (or
    // `ON CONFLICT (id) DO UPDATE …`, whose tenant-guarded WHERE skips the foreign row) affects 0 rows when id 5
    // exists in ANY tenant and 1 row when it does not. Why: the arbiter index sees every tenant's rows; writes.ts
    // lets the agent assign serial primary keys. Fix: make serial/identity keys non-writable by default (the
    // known fix), or refuse ON CONFLICT on an arbiter that does not include the tenant column.
    test.failing('LEAK: ON CONFLICT DO NOTHING affects 0 rows for another tenant’s id, 1 for an unused one', async () => {
      const { outcomes } = await inRollback(t, mode, [
        `${R}INSERT INTO orders (id, customer_id, total_cents) VALUES (5, 1, 1) ON CONFLICT DO NOTHING`,
        `${R}INSERT INTO orders (id, customer_id, total_cents) VALUES (100005, 1, 1) ON CONFLICT DO NOTHING`,
      ]);
      expect(outcomes[0].rowCount).toBe(outcomes[1].rowCount);
    });
  });

  // Fixed, kept as a regression test. Was: LEAK (high, I2/I3 and I5): ReadyForQuery 'I' clears the session's portal table (session.ts: router.onReady →
  // this.portals.clear()) when it ARRIVES, not for the transaction it ends. A client that pipelines
  //   Sync, Parse(''=<write>), Bind(portal p)            … then, after the first ReadyForQuery, Execute(p), Sync
  // has its portal p forgotten by the proxy while PostgreSQL still holds it (it belongs to the NEXT implicit
  // transaction). Execute(p) then finds no portal: no approval hold (portal.held), no write budget (needs
  // portal.prepared / portal.writes) and no write-error sanitising (portal.targets / portal.writes). With
  //   Parse /*reason='…'*/ UPDATE customers SET name = NULL WHERE id = 1
  // the client receives PostgreSQL's own DETAIL: `Failing row contains (1, 1, null, jane@acme.com, 555-0100,
  // sk_live_ACME_DO_NOT_LEAK)` — the hidden secret and the raw masked values. Fix: key portal lifetime to the
  // transaction the portal was bound in (clear only portals bound before the Sync that produced this
  // ReadyForQuery, e.g. by tagging each portal with the count of Syncs sent), and treat an Execute of an unknown
  // portal as a write that may need approval (fail closed: refuse it).
  test('FIXED LEAK (extended, message level): a portal forgotten at ReadyForQuery runs a write with raw DETAIL', async () => {
    const bytes = await withRawClient(t, async (c, received) => {
      c.send(serialize.sync(), serialize.parse({ name: '', text: `${R}UPDATE customers SET name = NULL WHERE id = 1`, types: [] }), serialize.bind({ portal: 'p', statement: '' }));
      await c.untilReady();
      c.send(serialize.execute({ portal: 'p' }), serialize.sync());
      await c.untilReady();
      return received();
    });
    expectNothingForbidden(t, bytes, '');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 4. max_affected_rows (write-cap-policy: orders capped at 2 rows).
// ---------------------------------------------------------------------------------------------------------------

describe('red-team max_affected_rows', () => {
  let t: Target;
  beforeAll(async () => {
    t = await startTarget(CAP_POLICY);
  });
  afterAll(async () => {
    await stopTarget(t);
  });

  describe.each(modes)('under the $protocol protocol', (mode) => {
    test('the guard counts only tenant 1’s rows, distinct target rows, and refuses before anything is written', async () => {
      const { outcomes, bytes } = await inRollback(t, mode, [
        `${R}UPDATE orders SET status = 'rtw-cap' WHERE id IN (1, 2, 5, 6, 7)`,
        `${R}UPDATE orders o SET status = 'rtw-cap' FROM generate_series(1, 50) g WHERE o.id = 3`,
        `${R}DELETE FROM orders o USING customers c WHERE c.id = o.customer_id`,
      ]);
      expect(outcomes[0].rowCount).toBe(2);
      expect(outcomes[1].rowCount).toBe(1);
      expect(outcomes[2].error).toMatchObject({ routine: 'ormai.max_affected_rows_exceeded', message: expect.stringContaining('would change 4 rows') });
      expectNothingForbidden(t, bytes, '');
      const more = await run(t, `${R}UPDATE orders SET status = status WHERE total_cents < 1000000`, mode);
      expect(more.error?.message).toContain('would change 4 rows'); // tenant 2's three orders are not counted
      for (const sql of [
        `${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, 1), (1, 2), (1, 3)`,
        `${R}INSERT INTO orders (customer_id, total_cents) SELECT 1, g FROM generate_series(1, 3) g`,
        `${R}INSERT INTO orders (customer_id, total_cents) SELECT * FROM (VALUES (1, 1), (1, 2), (1, 3)) v`,
      ]) {
        const o = await run(t, sql, mode);
        expect(o.error?.routine).toMatch(/^ormai\.(max_affected_rows_exceeded|statement_not_allowed)$/);
      }
      expect(await t.db.query("SELECT count(*)::int AS n FROM orders WHERE status = 'rtw-cap' OR total_cents IN (1, 2, 3)")).toEqual([{ n: 0 }]);
    });

    // Fixed, kept as a regression test. Was: LEAK (medium, I5): a CTE named like the target makes the affected-row guard count the CTE.
    //   /*reason='…'*/ WITH orders AS (SELECT 1 AS tenant_id WHERE false) UPDATE orders SET status = 'rtw-cte'
    // changes all 4 of tenant 1's orders under a cap of 2 (DELETE the same). Why: writes.ts capAffectedRows puts
    // `SELECT count(*) FROM orders WHERE <the write's WHERE>` INSIDE the statement, after the read rewrite;
    // PostgreSQL resolves that `orders` to the CTE in scope (the UPDATE target itself never resolves to a CTE), so
    // the guard counts zero rows. Fix: schema-qualify the counted relation (`public.orders`, which a CTE cannot
    // shadow) in countRows(), or refuse a WITH whose CTE name equals the target's name.
    test('FIXED a CTE shadowing the target’s name blinds the affected-row guard', async () => {
      const { outcomes } = await inRollback(t, mode, [
        `${R}WITH orders AS (SELECT 1 AS tenant_id WHERE false) UPDATE orders SET status = 'rtw-cte'`,
      ]);
      expect(outcomes[0].error?.routine).toMatch(/^ormai\./);
    });

    // Fixed, kept as a regression test. Was: LEAK (medium, I5): the guard and the write evaluate a volatile WHERE separately.
    //   /*reason='…'*/ UPDATE orders SET status = 'rtw-rand' WHERE random() < 0.5
    // is counted by the guard's subquery with one set of random draws and applied with another: about one try in
    // five changes 3 or 4 rows under a cap of 2. Why: writes.ts capAffectedRows re-runs the WHERE in an
    // uncorrelated count subquery; "the statement's own snapshot" does not make a volatile predicate stable.
    // Fix: refuse volatile functions (random, clock_timestamp, gen_random_uuid, …) in the WHERE/FROM of a write
    // under max_affected_rows or affected_rows_gt; or enforce the cap on the rows actually changed (e.g. wrap the
    // write as `WITH w AS (UPDATE … RETURNING 1) SELECT CASE WHEN count(*) > cap THEN <error> END FROM w`).
    test('FIXED a volatile WHERE slips more rows than the cap past the guard', async () => {
      const changed: number[] = [];
      for (let i = 0; i < 60 && !changed.some((n) => n > 2); i++) {
        const { outcomes } = await inRollback(t, mode, [`${R}UPDATE orders SET status = 'rtw-rand' WHERE random() < 0.5`]);
        if (outcomes[0].rowCount !== undefined && outcomes[0].rowCount !== null) changed.push(outcomes[0].rowCount);
      }
      expect(Math.max(...changed)).toBeLessThanOrEqual(2);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 5. Operation grants and upserts (rtw-grants-policy: orders create-only; customers create and update).
// ---------------------------------------------------------------------------------------------------------------

describe('red-team operation grants and upserts', () => {
  let t: Target;
  let before: unknown;
  beforeAll(async () => {
    t = await startTarget(GRANTS_POLICY);
  });
  afterAll(async () => {
    await stopTarget(t);
  });
  beforeEach(async () => {
    before = await protectedState(t.db);
  });
  afterEach(async () => {
    expect(await protectedState(t.db)).toEqual(before);
  });

  const UPSERT = `${R}INSERT INTO customers (id, name, email) VALUES (1, 'x', 'y@example.com') ON CONFLICT`;

  describe.each(modes)('under the $protocol protocol', (mode) => {
    test('upserts: hidden and masked columns of the existing row stay out of reach; foreign conflicts are left alone', async () => {
      const cases: Array<[string, string | undefined]> = [
        [`${UPSERT} (id) DO UPDATE SET name = excluded.api_secret`, 'ormai.column_not_found'],
        [`${UPSERT} (id) DO UPDATE SET name = customers.api_secret`, 'ormai.column_not_found'],
        [`${UPSERT} (id) DO UPDATE SET name = customers.email`, 'ormai.field_masked'],
        [`${UPSERT} (id) DO UPDATE SET name = customers.name WHERE customers.email LIKE 'jane%'`, 'ormai.field_masked'],
        [`${UPSERT} (api_secret) DO NOTHING`, 'ormai.column_not_found'],
        [`${UPSERT} (lower(email)) DO NOTHING`, 'ormai.field_masked'],
        [`${UPSERT} (id) WHERE api_secret IS NULL DO NOTHING`, 'ormai.column_not_found'],
        [`${UPSERT} (id) DO UPDATE SET tenant_id = 2`, 'ormai.field_not_writable'],
        [`${R}INSERT INTO customers (name, email, api_secret) VALUES ('x', 'y', 'z')`, 'ormai.column_not_found'],
        [`${R}INSERT INTO customers (name, email, tenant_id) VALUES ('x', 'y', 2)`, 'ormai.tenant_forged'],
        [`${R}DELETE FROM customers WHERE id = 1`, 'ormai.model_writes_disabled'],
        [`${R}UPDATE orders SET status = 'x' WHERE id = 1`, 'ormai.model_writes_disabled'],
        [`${R}DELETE FROM orders WHERE id = 1`, 'ormai.model_writes_disabled'],
      ];
      for (const [sql, routine] of cases) {
        const { outcomes, bytes } = await inRollback(t, mode, [sql]);
        expect([sql, outcomes[0].error?.routine]).toEqual([sql, routine]);
        expectNothingForbidden(t, bytes, sql);
      }
      const { outcomes, bytes } = await inRollback(t, mode, [
        `${UPSERT} (id) DO UPDATE SET name = excluded.email RETURNING name, email, phone`,
        `${R}INSERT INTO customers (id, name, email) VALUES (4, 'x', 'y') ON CONFLICT (id) DO UPDATE SET name = 'hijacked' RETURNING *`,
      ]);
      expect(outcomes[0].rows).toEqual([{ name: 'y@example.com', email: 'j***@acme.com', phone: '55****00' }]);
      expectForeignConflictLeftAlone(outcomes[1]);
      expectNothingForbidden(t, bytes, '');
    });

    // Fixed, kept as a regression test. Was: LEAK (medium, I5 — "model and operation enabled"): a create-only grant updates existing rows.
    //   /*reason='…'*/ INSERT INTO orders (id, customer_id, total_cents) VALUES (1, 1, 1) ON CONFLICT (id) DO UPDATE SET status = 'rtw-upsert'
    // updates tenant 1's order 1 although the policy grants orders only `create`. Why: classify.ts checkQuery
    // records an InsertStmt as op 'insert' only, and writes.ts guardWrite looks up the `insert` rule; the
    // ON CONFLICT DO UPDATE action is never checked against an `update` grant. Fix: for ON CONFLICT DO UPDATE,
    // also require the update grant (and apply its writable_fields to the SET list) in classify's write gate.
    test('FIXED INSERT … ON CONFLICT DO UPDATE updates rows under a create-only grant', async () => {
      const { outcomes } = await inRollback(t, mode, [
        `${R}INSERT INTO orders (id, customer_id, total_cents) VALUES (1, 1, 1) ON CONFLICT (id) DO UPDATE SET status = 'rtw-upsert' RETURNING id, status`,
      ]);
      expect(outcomes[0].error?.routine).toMatch(/^ormai\./);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 6. A schema with a unique masked column and a NOT NULL hidden column (rtw-grants-policy).
// ---------------------------------------------------------------------------------------------------------------

describe('red-team constraint oracles on masked and hidden columns', () => {
  let t: Target;
  beforeAll(async () => {
    t = await startTarget(
      GRANTS_POLICY,
      [
        'CREATE UNIQUE INDEX customers_email_key ON customers (email)',
        'ALTER TABLE orders ADD COLUMN internal_token text',
        "UPDATE orders SET internal_token = 'tok-' || id",
        'ALTER TABLE orders ALTER COLUMN internal_token SET NOT NULL',
      ],
      ['internal_token', 'tok-'],
    );
  });
  afterAll(async () => {
    await stopTarget(t);
  });

  describe.each(modes)('under the $protocol protocol', (mode) => {
    // LEAK (medium, I3 + I1): a unique index on a masked column answers equality questions on raw values.
    //   /*reason='…'*/ INSERT INTO customers (name, email) VALUES ('x', 'hank@globex.com')     → 23505
    //   … VALUES ('x', 'nobody@example.com')                                                     → INSERT 0 1
    //   UPDATE customers SET email = 'jane@acme.com' WHERE id = 3                                 → 23505
    //   INSERT … ON CONFLICT (email) DO NOTHING                                                  → 0 vs 1 rows
    // reveal that tenant 2 has a customer hank@globex.com and that tenant 1's masked j***@acme.com is
    // jane@acme.com. Why: a masked column may be assigned (writes.ts), the unique check runs on the real table
    // across tenants, and checkIndexElem lets a masked column be an ON CONFLICT arbiter. Fix: refuse assigning a
    // masked column that has a unique index unless the index includes the tenant column, and refuse masked
    // columns as arbiters; report 23505 on such an index as a generic, indistinguishable error.
    test.failing('LEAK: unique violations on a masked column reveal raw values, also of another tenant', async () => {
      const pairs: Array<[string, string]> = [
        [`${R}INSERT INTO customers (name, email) VALUES ('x', 'hank@globex.com')`, `${R}INSERT INTO customers (name, email) VALUES ('x', 'nobody@example.com')`],
        [`${R}UPDATE customers SET email = 'jane@acme.com' WHERE id = 3`, `${R}UPDATE customers SET email = 'fresh@example.com' WHERE id = 3`],
        [
          `${R}INSERT INTO customers (name, email) VALUES ('x', 'lisa@globexship.com') ON CONFLICT (email) DO NOTHING`,
          `${R}INSERT INTO customers (name, email) VALUES ('x', 'fresh2@example.com') ON CONFLICT (email) DO NOTHING`,
        ],
      ];
      const differ: string[] = [];
      for (const [existing, fresh] of pairs) {
        const [a] = (await inRollback(t, mode, [existing])).outcomes;
        const [b] = (await inRollback(t, mode, [fresh])).outcomes;
        if (a.error?.code !== b.error?.code || a.rowCount !== b.rowCount) differ.push(`${existing} → ${a.error?.code ?? a.rowCount} vs ${b.error?.code ?? b.rowCount}`);
      }
      expect(differ).toEqual([]);
    });

    // Fixed, kept as a regression test. Was: LEAK (low, I2 — existence and name of a hidden column): a NOT NULL hidden column without a default
    // (`orders.internal_token`, denied by the always-denied *token* pattern) is named by every INSERT:
    //   /*reason='…'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 1)
    // → `null value in column "internal_token" of relation "orders" violates not-null constraint`, and the
    // ErrorResponse's column field ('c') is `internal_token`. Why: results/write-errors.ts drops DETAIL and HINT
    // but keeps the message and the column/constraint fields. Fix: for 23502 (and 23505/23514 with a constraint
    // over hidden columns) whose column is hidden, replace the message with a generic one and drop the 'c', 'n',
    // 't' and 's' fields (the column is known to the proxy's catalog).
    test('FIXED a NOT NULL violation names a hidden column', async () => {
      const sql = `${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, 1)`;
      const o = await run(t, sql, mode);
      expect(o.error?.code).toBe('23502');
      expectNothingForbidden(t, o.bytes, sql);
    });
  });
});

describe('a constraint named after a hidden column', () => {
  let t: Target;
  beforeAll(async () => {
    // Named as PostgreSQL names a CHECK on that column alone (<table>_<column>_check); this one reads a visible column too.
    t = await startTarget(
      GRANTS_POLICY,
      ["ALTER TABLE orders ADD COLUMN internal_token text DEFAULT 'tok-new' CONSTRAINT orders_internal_token_check CHECK (internal_token IS NULL OR total_cents < 5000000)"],
      ['internal_token', 'tok-'],
    );
  });
  afterAll(async () => {
    await stopTarget(t);
  });

  test.each(modes)('under the $protocol protocol, its violation gives the generic message', async (mode) => {
    expect(await t.db.query("SELECT conname FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'c'")).toEqual([{ conname: 'orders_internal_token_check' }]);
    const sql = `${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, 5000000)`;
    const o = await run(t, sql, mode);
    expect({ code: o.error?.code, message: o.error?.message }).toEqual({ code: '23514', message: 'the write violates a constraint of the table' });
    expectNothingForbidden(t, o.bytes, sql);
  });
});

describe("a write's conditions that can raise on a column's kind (a circle's area overflows) never run on other tenants' rows", () => {
  let t: Target;
  beforeAll(async () => {
    // Without an index on the tenant column, the tenant condition is one filter among the agent's.
    t = await startTarget(WRITE_POLICY, ['DROP INDEX orders_tenant_id_idx', "ALTER TABLE orders ADD COLUMN zone circle DEFAULT '<(0,0),1>'"]);
  });
  afterAll(async () => {
    await stopTarget(t);
  });

  test.each(modes)("under the $protocol protocol, UPDATE and DELETE answer the same for tenant 2's id and for an id nobody has", async (mode) => {
    const [{ id, top }] = await t.db.query<{ id: number; top: number }>('SELECT min(id) FILTER (WHERE tenant_id = 2) AS id, max(id) AS top FROM orders');
    for (const probe of [
      (n: number) => `${R}UPDATE orders SET status = status WHERE id >= ${n} AND id <= ${n} AND zone = '<(0,0),1e200>'`,
      (n: number) => `${R}DELETE FROM orders WHERE id >= ${n} AND id <= ${n} AND zone = '<(0,0),1e200>'`,
    ]) {
      const theirs = await run(t, probe(id), mode);
      const nobodys = await run(t, probe(top + 1000), mode);
      expect({ sql: probe(id), code: theirs.error?.code, rows: theirs.rowCount }).toEqual({ sql: probe(id), code: nobodys.error?.code, rows: nobodys.rowCount });
    }
  });
});

describe('constraints the agent cannot see: one named after a long hidden column (cut to 63 bytes), a hidden table\'s foreign key', () => {
  let t: Target;
  const LONG = 'internal_reconciliation_reference_token_for_finance';
  beforeAll(async () => {
    t = await startTarget(
      GRANTS_POLICY,
      [
        // PostgreSQL names a column's CHECK after the column, cut: orders_internal_reconciliation_reference_token_for_fina_check.
        `ALTER TABLE orders ADD COLUMN ${LONG} bigint GENERATED ALWAYS AS (total_cents) STORED CHECK (${LONG} < 5000000)`,
        'CREATE TABLE ledger_links (id int PRIMARY KEY, customer_id int REFERENCES customers (id))',
        "INSERT INTO customers (id, tenant_id, name, email) VALUES (4242, 1, 'Ledger Co', 'ledger@example.com')",
        'INSERT INTO ledger_links VALUES (1, 4242)',
        // Checked at COMMIT: its error comes from the COMMIT (or the Sync that commits), not the write.
        'CREATE TABLE ledger_later (id int PRIMARY KEY, customer_id int REFERENCES customers (id) DEFERRABLE INITIALLY DEFERRED)',
        "INSERT INTO customers (id, tenant_id, name, email) VALUES (4243, 1, 'Later Co', 'later@example.com')",
        'INSERT INTO ledger_later VALUES (1, 4243)',
      ],
      ['internal_reconciliation', 'ledger_links', 'ledger_later', 'still referenced'],
    );
  });
  afterAll(async () => {
    await stopTarget(t);
  });

  test.each(modes)('under the $protocol protocol, their violations give the generic message', async (mode) => {
    const [{ conname }] = await t.db.query<{ conname: string }>(`SELECT conname FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%${LONG}%'`);
    expect(conname).toMatch(/^orders_internal_reconciliation_\w+_check$/);
    expect(conname.includes(LONG)).toBe(false);
    const [{ id }] = await t.db.query<{ id: number }>('SELECT customer_id AS id FROM ledger_links');
    for (const [sql, code] of [
      [`${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, 5000000)`, '23514'],
      [`${R}UPDATE customers SET id = 99999 WHERE id = ${id}`, '23503'],
    ]) {
      const o = await run(t, sql, mode);
      expect({ sql, code: o.error?.code, message: o.error?.message }).toEqual({ sql, code, message: 'the write violates a constraint of the table' });
      expectNothingForbidden(t, o.bytes, sql);
    }
    // A deferred one, at a COMMIT of its own and at the end of an autocommit write (the proxy's COMMIT, or the Sync).
    for (const statements of [['BEGIN', `${R}UPDATE customers SET id = 99998 WHERE id = 4243`, 'COMMIT'], [`${R}UPDATE customers SET id = 99998 WHERE id = 4243`]]) {
      const { outcomes, bytes } = await session(t, mode, statements);
      const failed = outcomes.find((o) => o.error)!;
      expect({ statements, code: failed.error?.code, message: failed.error?.message }).toEqual({ statements, code: '23503', message: 'the write violates a constraint of the table' });
      expectNothingForbidden(t, bytes, statements.join('; '));
    }
    expect(await t.db.query('SELECT id FROM customers WHERE id IN (4243, 99998)')).toEqual([{ id: 4243 }]);
    // A visible constraint keeps PostgreSQL's words.
    const o = await run(t, `${R}INSERT INTO customers (id, name, email) VALUES (${id}, 'dup', 'dup@example.com')`, mode);
    expect({ code: o.error?.code, message: o.error?.message }).toEqual({ code: '23505', message: 'duplicate key value violates unique constraint "customers_pkey"' });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 7. Approvals (rtw-approval-policy: update orders held when status → cancelled, total_cents → 0, or more than
//    one row; every delete held). The memory store records what is held.
// ---------------------------------------------------------------------------------------------------------------

describe('red-team approvals', () => {
  let t: Target;
  let before: unknown;
  beforeAll(async () => {
    t = await startTarget(APPROVAL_POLICY);
  });
  afterAll(async () => {
    await stopTarget(t);
  });
  beforeEach(async () => {
    before = await protectedState(t.db);
  });
  afterEach(async () => {
    expect(await protectedState(t.db)).toEqual(before);
  });

  const order = async (id: number) => (await t.db.query('SELECT * FROM orders WHERE id = $1', [id]))[0];
  /** Puts a row deleted by a probe back exactly as it was. */
  const restore = async (row: Record<string, unknown>) => {
    await t.db.query(
      'INSERT INTO orders (id, tenant_id, customer_id, total_cents, status, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING',
      [row.id, row.tenant_id, row.customer_id, row.total_cents, row.status, row.created_at],
    );
  };

  describe.each(modes)('under the $protocol protocol', (mode) => {
    test('held writes are stored, not run; the count behind affected_rows_gt sees only tenant 1', async () => {
      const o1 = await order(1);
      const { outcomes, bytes } = await session(t, mode, [
        `${R}UPDATE orders SET status = 'cancelled' WHERE id = 1`,
        `${R}UPDATE orders SET total_cents = 0 WHERE id = 1`,
        `${R}UPDATE orders SET status = 'rtw-two' WHERE id IN (1, 2)`,
        `${R}DELETE FROM orders WHERE id = 5`,
        `${R}WITH orders AS (SELECT 1 AS tenant_id WHERE false) UPDATE orders SET status = 'rtw-cte'`,
        `${R}UPDATE orders SET status = 'pending' WHERE id IN (1, 5, 6, 7)`,
      ]);
      expect(outcomes.slice(0, 5).map((o) => o.error?.routine)).toEqual(Array(5).fill('ormai.pending_approval'));
      expect(outcomes[5].error?.message).toBeUndefined();
      expect(outcomes[5].rowCount).toBe(1);
      expect(await order(1)).toEqual(o1);
      expect(await t.db.query("SELECT count(*)::int AS n FROM orders WHERE status LIKE 'rtw-%'")).toEqual([{ n: 0 }]);
      const held = await t.proxy.approvals.list({ tenantId: '1', user: 'tenant1-agent', state: 'pending' });
      for (const a of held) expect(a.statementSql).toMatch(/"?orders"?\."?tenant_id"? = '1'::int/);
      expectNothingForbidden(t, bytes, '');
    });

    test('a held write must come alone, and a held write in a transaction block fails the block', async () => {
      if (!mode.extended) {
        const multi = await run(t, `${R}UPDATE orders SET status = 'cancelled' WHERE id = 1; SELECT 1`, mode);
        expect(multi.error?.routine).toBe('ormai.statement_not_allowed');
      }
      const { outcomes } = await inRollback(t, mode, [`${R}DELETE FROM orders WHERE id = 1`, 'SELECT 1']);
      expect(outcomes[0].error?.routine).toBe('ormai.statement_not_allowed');
      expect(outcomes[0].error?.message).toMatch(/inside a transaction block/);
      expect(outcomes[1].error?.code).toBe('25P02');
    });

    // Fixed, kept as a regression test. Was: LEAK (medium, I5): approval rules on an assigned value compare TEXT of the constant, through casts.
    //   /*reason='…'*/ UPDATE orders SET status = 'cancelledX'::varchar(9) WHERE id = 1   → status 'cancelled', not held
    //   /*reason='…'*/ UPDATE orders SET total_cents = 0.0 WHERE id = 1                   → total_cents 0, not held
    // Why: writes.ts fieldMatches → constantText() strips every TypeCast and compares `'cancelledX'` / `'0.0'`
    // with the rule's `String(value)`; PostgreSQL truncates on the explicit varchar(9) cast and reads 0.0 as 0.
    // Fix: treat a constant under any cast, and any numeric constant not byte-equal to its canonical form, as
    // "may match" (the rule applies), or evaluate `<assigned expr>::<column type> IN (<rule values>)` in SQL.
    test('FIXED a cast or another spelling of the held value escapes a field rule', async () => {
      // Held writes are refused inside a transaction block, so these run on their own (and are held: nothing runs).
      const { outcomes } = await session(t, mode, [
        `${R}UPDATE orders SET status = 'cancelledX'::varchar(9) WHERE id = 1 RETURNING status`,
        `${R}UPDATE orders SET total_cents = 0.0 WHERE id = 1 RETURNING total_cents`,
      ]);
      expect(outcomes[0].error?.routine).toBe('ormai.pending_approval');
      expect(outcomes[1].error?.routine).toBe('ormai.pending_approval');
    });

    // Fixed, kept as a regression test. Was: LEAK (medium, I5): an upsert updates existing rows without consulting the `update` approval rules.
    //   /*reason='…'*/ INSERT INTO orders (id, customer_id, total_cents) VALUES (1,1,1), (2,1,1), (3,1,1)
    //     ON CONFLICT (id) DO UPDATE SET status = 'cancelled', total_cents = 0
    // cancels and zeroes three existing orders at once: every `update orders` rule would hold it, none is asked.
    // Why: writes.ts approvalNeed matches rules by `operation` = 'create' for any INSERT. Fix: for ON CONFLICT DO
    // UPDATE, also match the `update` rules (field rules against the DO UPDATE SET list, affected_rows_gt against
    // the VALUES row count).
    test('FIXED INSERT … ON CONFLICT DO UPDATE escapes the update approval rules', async () => {
      const { outcomes } = await session(t, mode, [
        `${R}INSERT INTO orders (id, customer_id, total_cents) VALUES (1, 1, 1), (2, 1, 1), (3, 1, 1) ON CONFLICT (id) DO UPDATE SET status = 'cancelled', total_cents = 0`,
      ]);
      // Not run: a rule holds it, and its dry run cannot show the rows an upsert changes, so it is refused rather than held.
      expect(outcomes[0].error?.routine).toBe('ormai.statement_not_allowed');
      expect(outcomes[0].error?.message).toMatch(/needs approval \(update orders when status in \["cancelled"\]\), and its dry run cannot show its rows/);
    });

    // Fixed, kept as a regression test. Was: LEAK (medium, I5): affected_rows_gt is counted on the proxy's own connection, outside the agent's
    // transaction, so rows the agent's transaction created or changed are not counted:
    //   BEGIN; INSERT INTO orders (customer_id, total_cents, status) VALUES (1,1,'rtw-m'), (1,2,'rtw-m'), (1,3,'rtw-m');
    //   UPDATE orders SET total_cents = 7 WHERE status = 'rtw-m'     → counted 0 (uncommitted), runs on 3 rows
    // Why: approval-hold.ts holdForApproval → planner.countRows(countSql) runs on a separate read-only connection
    // (other snapshot; also racy against concurrent commits). Fix: count in the agent's own session/transaction
    // (e.g. send the count ahead of the write on the same upstream), or enforce the threshold inside the statement
    // like max_affected_rows does.
    test('FIXED affected_rows_gt does not see the agent’s own uncommitted rows', async () => {
      const { outcomes } = await inRollback(t, mode, [
        `${R}INSERT INTO orders (customer_id, total_cents, status) VALUES (1, 1, 'rtw-m'), (1, 2, 'rtw-m'), (1, 3, 'rtw-m')`,
        `${R}UPDATE orders SET total_cents = 7 WHERE status = 'rtw-m'`,
      ]);
      // Fixed by the write's own guard: counted again as it runs, in the agent's transaction, it meets the rule and fails.
      expect(outcomes[0].rowCount).toBe(3);
      expect(outcomes[1].error?.routine).toBe('ormai.approval_required');
    });

    // Fixed, kept as a regression test. Was: LEAK (critical family, I1 — see "cheap WHERE predicate" above): the approval count runs the agent's WHERE
    // with the same qual ordering, on the proxy's own connection; a count that fails holds the write. So
    //   UPDATE orders SET status = 'pending' WHERE id = 1 AND int4range(total_cents, 100000) IS NOT NULL    → held
    //   UPDATE orders SET status = 'pending' WHERE id = 1 AND int4range(total_cents, 5000000) IS NOT NULL   → runs
    // tells that another tenant has an order above 100000 (binary search gives its exact maximum). Same fix.
    test('FIXED held-or-not depends on other tenants’ rows through the approval count', async () => {
      const { outcomes } = await session(t, mode, [
        `${R}UPDATE orders SET status = 'pending' WHERE id = 1 AND int4range(total_cents, 100000) IS NOT NULL`,
        `${R}UPDATE orders SET status = 'pending' WHERE id = 1 AND int4range(total_cents, 5000000) IS NOT NULL`,
      ]);
      expect(outcomes[1].rowCount).toBe(1);
      expect(outcomes[0].error?.routine).toBe(outcomes[1].error?.routine);
      expect(outcomes[0].rowCount).toBe(outcomes[1].rowCount);
    });
  });

  describe('message level (extended protocol)', () => {
    test('Parse/Bind/Execute of a held write is held, also with Flush before Sync; binary parameters are refused', async () => {
      const o3 = await order(3);
      await withRawClient(t, async (c, received) => {
        c.send(
          serialize.parse({ name: 'h', text: `${R}DELETE FROM orders WHERE id = 3`, types: [] }),
          serialize.bind({ portal: 'p', statement: 'h' }),
          serialize.execute({ portal: 'p' }),
          serialize.flush(),
        );
        const first = await c.next();
        const second = await c.next();
        const third = await c.next();
        expect([first.name, second.name, third.name]).toEqual(['parseComplete', 'bindComplete', 'error']);
        expect((third as unknown as { message: string }).message).toMatch(/^pending_approval/);
        c.send(serialize.sync());
        await c.untilReady();
        c.send(
          serialize.parse({ name: 'b', text: `${R}UPDATE orders SET status = $1 WHERE id = 3`, types: [] }),
          serialize.bind({ statement: 'b', values: [Buffer.from('cancelled')] }),
          serialize.execute({}),
          serialize.sync(),
        );
        const ms = await c.untilReady();
        expect(errorOf(ms)?.message).toMatch(/^statement_not_allowed: a write held for approval must send its parameters in text format/);
        expectNothingForbidden(t, received(), '');
      });
      expect(await order(3)).toEqual(o3);
    });

    // Fixed, kept as a regression test. Was: LEAK (high, I5 — a held write runs without approval): a refused re-Parse of a named statement makes the
    // proxy forget it while PostgreSQL keeps the old one.
    //   Parse S = /*reason='…'*/ DELETE FROM orders WHERE id = 4; Sync      (held at Execute: every delete is)
    //   Parse S = SELECT * FROM pg_authid; Sync                             (refused → session.ts deletes S; the
    //                                                                        sentinel Parse fails upstream, so
    //                                                                        PostgreSQL's S is unchanged)
    //   Bind S; Execute; Sync                                               → DELETE 1, no approval asked
    // Why: session.ts parse() drops its record of S on refusal, and Bind of a statement it does not know builds a
    // portal with `held` undefined (and, in the working tree, no `prepared`, so the write budget is skipped too;
    // for a read, no max_scan_rows check and max_rows + 1 rows delivered). Fix: on a refused Parse of a named statement that
    // already exists, keep (or mark as poisoned) the proxy's record; Bind of an unknown statement must be refused
    // (fail closed) rather than forwarded with defaults.
    test('FIXED re-Parse of a held statement with refused text, then Bind/Execute, runs it unheld', async () => {
      const row = await order(4);
      try {
        const done = await withRawClient(t, async (c) => {
          c.send(serialize.parse({ name: 's', text: `${R}DELETE FROM orders WHERE id = 4`, types: [] }), serialize.sync());
          await c.untilReady();
          c.send(serialize.parse({ name: 's', text: 'SELECT * FROM pg_authid', types: [] }), serialize.sync());
          await c.untilReady();
          c.send(serialize.bind({ statement: 's' }), serialize.execute({}), serialize.sync());
          return completed(await c.untilReady());
        });
        expect(done).toEqual([]);
        expect(await order(4)).toEqual(row);
      } finally {
        await restore(row);
      }
    });

    // Fixed, kept as a regression test. Was: LEAK (high, I5): the portal forgotten at ReadyForQuery (see the write-policy finding above) also skips the
    // approval hold: Sync + Parse(DELETE … id = 2) + Bind(p), then Execute(p) + Sync → DELETE 1, nothing held.
    test('FIXED a portal forgotten at ReadyForQuery runs a held write without approval', async () => {
      const row = await order(2);
      try {
        const done = await withRawClient(t, async (c) => {
          c.send(serialize.sync(), serialize.parse({ name: '', text: `${R}DELETE FROM orders WHERE id = 2`, types: [] }), serialize.bind({ portal: 'p', statement: '' }));
          await c.untilReady();
          c.send(serialize.execute({ portal: 'p' }), serialize.sync());
          return completed(await c.untilReady());
        });
        expect(done).toEqual([]);
        expect(await order(2)).toEqual(row);
      } finally {
        await restore(row);
      }
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 8. max_writes_per_minute (write-budget-policy: 3 writes per minute per agent and per tenant). A fresh proxy per
//    test: the budget lives in the proxy's memory.
// ---------------------------------------------------------------------------------------------------------------

describe('red-team write budget', () => {
  let db: TestDatabase;
  let current: Target | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await closeClients(current);
    await current?.proxy.close();
    current = undefined;
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function budgeted(): Promise<Target> {
    const proxy = await startTestProxy(db.url, { policies: [BUDGET_POLICY] });
    // Probes here go straight to the proxy (no relay): they count writes, not bytes.
    current = { db, proxy, relay: { port: proxy.port } as Relay, received: [], forbidden: FORBIDDEN, clients: new Map() };
    return current;
  }

  describe.each(modes)('under the $protocol protocol', (mode) => {
    test('every write counts, in one string or one per Execute; EXPLAIN and reads do not; past the budget nothing runs', async () => {
      const t = await budgeted();
      const status = `rtw-budget-${mode.protocol}`;
      const write = (id: number) => `${R}UPDATE orders SET status = '${status}' WHERE id = ${id}`;
      const statements = mode.extended
        ? [write(1), `EXPLAIN ${write(2)}`, write(2), write(3), write(4), 'SELECT count(*)::int AS n FROM orders']
        : [`${write(1)}; EXPLAIN ${write(2)}; ${write(2)}`, `${write(3)}; ${write(4)}`, 'SELECT count(*)::int AS n FROM orders'];
      const { outcomes } = await session(t, mode, statements);
      const refused = outcomes.filter((o) => o.error?.routine === 'ormai.write_rate_limited').length;
      expect(refused).toBe(mode.extended ? 1 : 1);
      expect(outcomes[outcomes.length - 1].rows).toEqual([{ n: 4 }]);
      const changed = await db.query<{ id: number }>('SELECT id FROM orders WHERE status = $1 ORDER BY id', [status]);
      expect(changed.map((r) => r.id)).toEqual(mode.extended ? [1, 2, 3] : [1, 2]);
    });
  });

  // Fixed, kept as a regression test. Was: LEAK (medium, I5): the portal forgotten at ReadyForQuery (section 3) is also outside the write budget: after
  // the 3 writes of the minute are spent, Sync + Parse(UPDATE …) + Bind(p), then Execute(p) + Sync → UPDATE 1.
  test('FIXED LEAK (extended, message level): a portal forgotten at ReadyForQuery writes past max_writes_per_minute', async () => {
    const t = await budgeted();
    const status = 'rtw-budget-bypass';
    await session(t, modes[1], [1, 2, 3].map((id) => `${R}UPDATE orders SET status = '${status}' WHERE id = ${id}`));
    const done = await withRawClient(t, async (c) => {
      c.send(serialize.sync(), serialize.parse({ name: '', text: `${R}UPDATE orders SET status = '${status}' WHERE id = 4`, types: [] }), serialize.bind({ portal: 'p', statement: '' }));
      await c.untilReady();
      c.send(serialize.execute({ portal: 'p' }), serialize.sync());
      return completed(await c.untilReady());
    });
    expect(done).toEqual([]);
    expect(await db.query('SELECT count(*)::int AS n FROM orders WHERE status = $1', [status])).toEqual([{ n: 3 }]);
  });
});

// Fixed, kept as a regression test. Was: LEAK (medium, row filter): the foreign-key check's parent
// subquery exposed the key as `id`, so an unqualified `id` in the agent's value meant the parent's
// row (`SET customer_id = id` failed with 21000). Once the subquery was no longer fenced, the value
// ran in the parent scan's own condition list, before a costlier row filter:
//   UPDATE orders SET customer_id = id + (2147483647 - 2) WHERE id = 1   -> 22003, only for hidden customer 3
//   UPDATE orders SET customer_id = id + (2147483647 - 3) WHERE id = 1   -> 23503
// a binary search for the largest hidden id. Fix: the parent's key is renamed (ormai_key), so the
// value's names mean the target's columns and nothing in it depends on the parent's rows.
describe('red-team foreign-key checks under a row filter', () => {
  let t: Target;
  beforeAll(async () => {
    t = await startTarget(ROW_FILTER_POLICY);
  });
  afterAll(async () => {
    await stopTarget(t);
  });

  describe.each(modes)('$protocol protocol', (mode) => {
    test('FIXED the check value cannot name the parent row: an unqualified id is the order\'s, and no value tells a hidden customer from a missing one', async () => {
      const { outcomes } = await inRollback(t, mode, [
        `${R}UPDATE orders SET customer_id = id WHERE id = 1 RETURNING customer_id`,
        'ROLLBACK',
        'BEGIN',
        `${R}UPDATE orders SET customer_id = id + (2147483647 - 2) WHERE id = 1`,
        'ROLLBACK',
        'BEGIN',
        `${R}UPDATE orders SET customer_id = id + (2147483647 - 3) WHERE id = 1`,
        'ROLLBACK',
        'BEGIN',
        `${R}UPDATE orders SET customer_id = 3 WHERE id = 1`,
        'ROLLBACK',
        'BEGIN',
        `${R}UPDATE orders SET customer_id = 99 WHERE id = 1`,
      ]);
      // Order 1's own id as its customer: customer 1, which tenant 1 may see.
      expect(outcomes[0]).toMatchObject({ rows: [{ customer_id: 1 }] });
      const answer = (o: Outcome) => ({ code: o.error?.code, routine: o.error?.routine, message: o.error?.message });
      expect(answer(outcomes[3])).toEqual(answer(outcomes[6]));
      expect(answer(outcomes[9])).toEqual(answer(outcomes[12]));
      expect(answer(outcomes[9])).toMatchObject({ code: '23503', routine: 'ormai.reference_not_found' });
    });
  });
});
