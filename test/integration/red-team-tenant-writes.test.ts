// Red-team probes against the tenant of inserted rows (I1, I5, I9): tenant 1's agent tries to make a row land with another
// tenant's id — a source one column wider or narrower than its column list (with and without a foreign-key check around it,
// `*`, UNION/INTERSECT/EXCEPT, VALUES), a tenant column it names itself (constants, parameters, DEFAULT), inside a writing CTE,
// under a dry run and EXPLAIN — and to read or use the system columns of a write target. Every probe runs under the simple
// and the extended protocol (parameters where the probe has them) and is checked three ways: what the agent receives
// (PostgreSQL's own SQLSTATE and message where PostgreSQL itself would refuse), the audit event, and the database read
// directly (rows per tenant, every new row the principal's, no row referencing another tenant's).
import path from 'node:path';
import { Client } from 'pg';
import type { AuditEvent } from '../../src/audit/event';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { modes, send, type Mode, type Outcome } from '../support/modes';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { checkTenantIntegrityAfterEach, unwatchTenantIntegrity, watchTenantIntegrity } from '../support/tenant-integrity';

const POLICY = path.resolve(__dirname, '..', 'fixtures', 'tenant-writes-policy.yaml');
const R = "/*reason='red team'*/ ";
const DRY = "/*dry_run='true'*/ ";
const MORE = 'INSERT has more expressions than target columns';
const FEWER = 'INSERT has more target columns than expressions';

let db: TestDatabase;
let proxy: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url, { policies: [POLICY] });
  watchTenantIntegrity(db);
});
afterAll(async () => {
  unwatchTenantIntegrity(db);
  await proxy?.close();
  await db?.drop();
});
checkTenantIntegrityAfterEach();

/** A probe: its SQL for the simple protocol, and optionally a parameterised form for the extended one. */
interface Probe {
  sql: string;
  extended?: { sql: string; values: unknown[] };
}

const p = (sql: string, extended?: Probe['extended']): Probe => ({ sql, ...(extended ? { extended } : {}) });

function statementOf(probe: Probe, mode: Mode): { sql: string; values: unknown[] } {
  return mode.extended && probe.extended ? probe.extended : { sql: probe.sql, values: [] };
}

/** Runs one statement in a session of its own; returns what the agent received and the session's statement events. */
async function run(probe: Probe, mode: Mode): Promise<{ outcome: Outcome; events: AuditEvent[] }> {
  const { sql, values } = statementOf(probe, mode);
  const before = new Set(proxy.auditEvents().map((e) => e.session_id));
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  const outcome = await send(c, mode, sql, values);
  await c.end();
  for (let i = 0; i < 200; i++) {
    const id = proxy.auditEvents().find((e) => e.kind === 'connection' && e.decision === 'login' && !before.has(e.session_id))?.session_id;
    const events = proxy.auditEvents().filter((e) => e.session_id === id);
    if (id && events.some((e) => e.decision === 'disconnect')) return { outcome, events: events.filter((e) => e.kind === 'statement') };
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('the session’s audit events did not arrive');
}

/** What the database holds, read directly: rows per tenant of both tables, every row of tenant 2, the highest ids. */
async function state(): Promise<{ counts: unknown; foreign: unknown; maxOrder: number; maxCustomer: number }> {
  return {
    counts: await db.query("SELECT 'orders' AS t, tenant_id, count(*)::int AS n FROM orders GROUP BY tenant_id UNION ALL SELECT 'customers', tenant_id, count(*)::int FROM customers GROUP BY tenant_id ORDER BY 1, 2"),
    foreign: {
      orders: await db.query('SELECT id, tenant_id, customer_id, total_cents, status FROM orders WHERE tenant_id <> 1 ORDER BY id'),
      customers: await db.query('SELECT * FROM customers WHERE tenant_id <> 1 ORDER BY id'),
    },
    maxOrder: (await db.query<{ m: number }>('SELECT coalesce(max(id), 0)::int AS m FROM orders'))[0].m,
    maxCustomer: (await db.query<{ m: number }>('SELECT coalesce(max(id), 0)::int AS m FROM customers'))[0].m,
  };
}

/** Rows written since `before`, per table, with their tenant. */
async function newRows(before: { maxOrder: number; maxCustomer: number }): Promise<{ orders: number[]; customers: number[] }> {
  const tenants = async (table: string, max: number) => (await db.query<{ tenant_id: number }>(`SELECT tenant_id FROM ${table} WHERE id > $1 ORDER BY id`, [max])).map((r) => r.tenant_id);
  return { orders: await tenants('orders', before.maxOrder), customers: await tenants('customers', before.maxCustomer) };
}

/** The same statement sent to PostgreSQL directly, in a transaction rolled back: its error, if any. */
async function direct(probe: Probe, mode: Mode): Promise<{ code?: string; message?: string }> {
  const { sql, values } = statementOf(probe, mode);
  const c = new Client({ connectionString: db.url });
  await c.connect();
  try {
    await c.query('BEGIN');
    await c.query(sql, values);
    return {};
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message };
  } finally {
    await c.query('ROLLBACK').catch(() => undefined);
    await c.end();
  }
}

/** Refused: the SQLSTATE and routine the agent receives, one refused event with that code, and nothing changed in the database. */
async function expectRefused(probe: Probe, mode: Mode, sqlstate: string, code: string, message?: string): Promise<Outcome> {
  const before = await state();
  const { outcome, events } = await run(probe, mode);
  expect(outcome.error?.code).toBe(sqlstate);
  expect(outcome.error?.routine).toBe(`ormai.${code}`);
  if (message !== undefined) expect(outcome.error?.message).toBe(`${code}: ${message}`);
  expect(outcome.rows).toBeUndefined();
  expect(events).toHaveLength(1);
  expect(events[0]).toMatchObject({ decision: 'refused', code });
  expect(await state()).toEqual(before);
  return outcome;
}

// ---------------------------------------------------------------------------------------------------------------
// 1. A source wider or narrower than its column list: refused before any wrapper is built, exactly as PostgreSQL
//    refuses it (same SQLSTATE, same message), with or without a foreign key, in every shape.
// ---------------------------------------------------------------------------------------------------------------

const ARITY: Array<[Probe, string]> = [
  // The hole: an extra value took the tenant column's place in the foreign-key check's column list.
  [p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT 1, 100, 2`, { sql: `${R}INSERT INTO orders (customer_id, total_cents) SELECT $1::int, $2::int, $3::int`, values: [1, 100, 2] }), MORE],
  [p(`${R}INSERT INTO customers (name, email) SELECT 'n', 'n@x.io', 2`, { sql: `${R}INSERT INTO customers (name, email) SELECT $1::text, $2::text, $3::int`, values: ['n', 'n@x.io', 2] }), MORE],
  [p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT o.customer_id, o.total_cents, 2 FROM orders o WHERE o.id = 1`, { sql: `${R}INSERT INTO orders (customer_id, total_cents) SELECT o.customer_id, o.total_cents, $1::int FROM orders o WHERE o.id = $2`, values: [2, 1] }), MORE],
  [p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT 1`), FEWER],
  // `*`, counted through the policy view (the visible columns) and through subqueries and CTEs.
  [p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT * FROM orders`), MORE],
  [p(`${R}INSERT INTO customers (name, email) SELECT * FROM customers WHERE id = 1`), MORE],
  [p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT *, 2 FROM (SELECT 1, 100) s`, { sql: `${R}INSERT INTO orders (customer_id, total_cents) SELECT *, $1::int FROM (SELECT 1, 100) s`, values: [2] }), MORE],
  [p(`${R}WITH s AS (SELECT 1, 100, 2) INSERT INTO orders (customer_id, total_cents) SELECT * FROM s`), MORE],
  // Set operations.
  [p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT 1, 100 UNION ALL SELECT 1, 100, 2`), 'each UNION query must have the same number of columns'],
  [p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT 1, 100, 2 UNION SELECT 1, 101, 2`, { sql: `${R}INSERT INTO orders (customer_id, total_cents) SELECT 1, 100, $1::int UNION SELECT 1, 101, $1::int`, values: [2] }), MORE],
  [p(`${R}INSERT INTO customers (name, email) SELECT 'n', 'e', 2 INTERSECT SELECT 'n', 'e', 2`), MORE],
  [p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT 1, 100, 2 EXCEPT SELECT 1, 0, 2`), MORE],
  [p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT 1, 100 EXCEPT SELECT 1, 0, 2`), 'each EXCEPT query must have the same number of columns'],
  // VALUES: more, fewer, rows of different lengths.
  [p(`${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, 100, 2)`, { sql: `${R}INSERT INTO orders (customer_id, total_cents) VALUES ($1::int, $2::int, $3::int)`, values: [1, 100, 2] }), MORE],
  [p(`${R}INSERT INTO customers (name, email) VALUES ('n', 'e', 2)`), MORE],
  [p(`${R}INSERT INTO orders (customer_id, total_cents) VALUES (1)`), FEWER],
  [p(`${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, 100), (1, 100, 2)`), 'VALUES lists must all be the same length'],
  [p(`${R}INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 100, 1, 2)`), MORE],
  // Inside a writing CTE, under a dry run, under EXPLAIN.
  [p(`${R}WITH x AS (INSERT INTO orders (customer_id, total_cents) SELECT 1, 100, 2 RETURNING tenant_id) SELECT * FROM x`), MORE],
  [p(`${R}WITH x AS (INSERT INTO customers (name, email) VALUES ('n', 'e', 2) RETURNING tenant_id) SELECT * FROM x`), MORE],
  [p(`${R}WITH s AS (SELECT 1, 100, 2), x AS (INSERT INTO orders (customer_id, total_cents) SELECT * FROM s RETURNING tenant_id) SELECT * FROM x`), MORE],
  [p(`${DRY}INSERT INTO orders (customer_id, total_cents) SELECT 1, 100, 2`, { sql: `${DRY}INSERT INTO orders (customer_id, total_cents) SELECT $1::int, $2::int, $3::int`, values: [1, 100, 2] }), MORE],
  [p(`${DRY}INSERT INTO customers (name, email) VALUES ('n', 'e', 2)`), MORE],
  [p(`EXPLAIN INSERT INTO orders (customer_id, total_cents) SELECT 1, 100, 2`), MORE],
];

describe.each(modes)('a source of the wrong width, under the $protocol protocol', (mode) => {
  test.each(ARITY)('%p → %s', async (probe, message) => {
    // PostgreSQL's own answer to the same statement.
    expect(await direct(probe, mode)).toEqual({ code: '42601', message });
    await expectRefused(probe, mode, '42601', 'column_count_mismatch', message);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 2. The tenant column named by the agent: only its own tenant as a plain constant, or DEFAULT; anything else is
//    tenant_forged, in the reply and in the audit event.
// ---------------------------------------------------------------------------------------------------------------

const FORGED: Probe[] = [
  p(`${R}INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT 1, 100, 2`, { sql: `${R}INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT 1, 100, $1::int`, values: [2] }),
  p(`${R}INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 100, 2)`, { sql: `${R}INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 100, $1)`, values: [2] }),
  p(`${R}INSERT INTO customers (name, email, tenant_id) VALUES ('n', 'e', 2)`, { sql: `${R}INSERT INTO customers (name, email, tenant_id) VALUES ('n', 'e', $1)`, values: [1] }),
  p(`${R}INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 100, DEFAULT), (1, 100, 2)`),
  p(`${R}INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT 1, 100, 1 UNION ALL SELECT 1, 100, 2`),
  p(`${R}INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT customer_id, total_cents, tenant_id FROM orders`),
  p(`${R}INSERT INTO orders (tenant_id, customer_id, tenant_id) VALUES (1, 1, 2)`),
  p(`${R}WITH x AS (INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 100, 2) RETURNING tenant_id) SELECT * FROM x`),
  p(`${DRY}INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 100, 2)`),
];

describe.each(modes)('a tenant column the agent fills, under the $protocol protocol', (mode) => {
  test.each(FORGED)('%p', async (probe) => {
    await expectRefused(probe, mode, '42501', 'tenant_forged');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 3. Shapes the policy allows: every row lands with tenant 1 (DEFAULT included), as returned and as stored.
// ---------------------------------------------------------------------------------------------------------------

const ALLOWED: Array<[Probe, { orders: number; customers: number }]> = [
  [p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT 1, 100 RETURNING tenant_id`, { sql: `${R}INSERT INTO orders (customer_id, total_cents) SELECT $1::int, $2::int RETURNING tenant_id`, values: [1, 100] }), { orders: 1, customers: 0 }],
  [p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT * FROM (SELECT 1, 101) s RETURNING tenant_id`), { orders: 1, customers: 0 }],
  [p(`${R}WITH s AS (SELECT 2, 102) INSERT INTO orders (customer_id, total_cents) SELECT * FROM s RETURNING tenant_id`), { orders: 1, customers: 0 }],
  [p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT customer_id, total_cents FROM orders WHERE id = 1 RETURNING tenant_id`), { orders: 1, customers: 0 }],
  [p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT 1, 103 UNION ALL SELECT 2, 104 RETURNING tenant_id`, { sql: `${R}INSERT INTO orders (customer_id, total_cents) SELECT $1::int, 103 UNION ALL SELECT $2::int, 104 RETURNING tenant_id`, values: [1, 2] }), { orders: 2, customers: 0 }],
  [p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT 1, 105 INTERSECT SELECT 1, 105 RETURNING tenant_id`), { orders: 1, customers: 0 }],
  [p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT 1, 106 EXCEPT SELECT 1, 0 RETURNING tenant_id`), { orders: 1, customers: 0 }],
  [p(`${R}INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 107, DEFAULT) RETURNING tenant_id`, { sql: `${R}INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES ($1, $2, DEFAULT) RETURNING tenant_id`, values: [1, 107] }), { orders: 1, customers: 0 }],
  [p(`${R}INSERT INTO orders (tenant_id, customer_id, total_cents) VALUES (DEFAULT, 1, 108), (1, 2, 109) RETURNING tenant_id`), { orders: 2, customers: 0 }],
  [p(`${R}INSERT INTO customers (name, email) SELECT 'n1', 'n1@x.io' RETURNING tenant_id`, { sql: `${R}INSERT INTO customers (name, email) SELECT $1::text, $2::text RETURNING tenant_id`, values: ['n1', 'n1@x.io'] }), { orders: 0, customers: 1 }],
  [p(`${R}INSERT INTO customers (name, email) SELECT * FROM (VALUES ('n2', 'n2@x.io'), ('n3', 'n3@x.io')) v RETURNING tenant_id`), { orders: 0, customers: 2 }],
  [p(`${R}INSERT INTO customers (name, email, tenant_id) VALUES ('n4', 'n4@x.io', DEFAULT) RETURNING tenant_id`), { orders: 0, customers: 1 }],
];

/** Inserts the rules allow, inside the WITH of a SELECT: refused, since the trail could record neither their rows nor their number. */
const IN_WITH = [
  p(`${R}WITH x AS (INSERT INTO orders (customer_id, total_cents) SELECT 1, 110 RETURNING tenant_id) SELECT * FROM x`),
  p(`${R}WITH s AS (SELECT 2, 111), x AS (INSERT INTO orders (customer_id, total_cents) SELECT * FROM s RETURNING tenant_id) SELECT * FROM x`),
  p(`${R}WITH x AS (INSERT INTO customers (name, email, tenant_id) VALUES ('n5', 'n5@x.io', DEFAULT) RETURNING tenant_id) SELECT * FROM x`),
];

describe.each(modes)('inserts inside the WITH of a SELECT, under the $protocol protocol', (mode) => {
  test.each(IN_WITH)('%p', async (probe) => {
    const before = await state();
    const { outcome } = await run(probe, mode);
    expect(outcome.error?.routine).toBe('ormai.statement_not_allowed');
    expect(await state()).toEqual(before);
  });
});

describe.each(modes)('inserts the policy allows, under the $protocol protocol', (mode) => {
  test.each(ALLOWED)('%p', async (probe, added) => {
    const before = await state();
    const { outcome, events } = await run(probe, mode);
    expect(outcome.error).toBeUndefined();
    expect(outcome.rows?.length).toBe(added.orders + added.customers);
    for (const row of outcome.rows ?? []) expect(row).toEqual({ tenant_id: 1 });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ decision: 'allowed' });
    expect(events[0].flags ?? []).not.toContain('tenant_forged');
    const after = await state();
    expect(after.foreign).toEqual(before.foreign);
    expect(await newRows(before)).toEqual({ orders: new Array(added.orders).fill(1), customers: new Array(added.customers).fill(1) });
  });
});

describe.each(modes)('dry runs show the proxy’s tenant and write nothing, under the $protocol protocol', (mode) => {
  test.each([
    p(`${DRY}INSERT INTO orders (customer_id, total_cents) SELECT 1, 100`, { sql: `${DRY}INSERT INTO orders (customer_id, total_cents) SELECT $1::int, $2::int`, values: [1, 100] }),
    p(`${DRY}INSERT INTO orders (customer_id, total_cents) SELECT 1, 100 UNION ALL SELECT 2, 200`),
    p(`${DRY}INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 100, DEFAULT), (2, 200, 1)`),
    p(`${DRY}INSERT INTO customers (name, email) SELECT * FROM (VALUES ('n', 'n@x.io')) v`),
  ])('%p', async (probe) => {
    const before = await state();
    const { outcome, events } = await run(probe, mode);
    expect(outcome.error).toBeUndefined();
    expect(outcome.rows?.length).toBeGreaterThan(0);
    for (const row of outcome.rows ?? []) expect(row).toMatchObject({ tenant_id: 1 });
    expect(events[0]).toMatchObject({ decision: 'allowed', statement_kind: 'dry_run' });
    expect(await state()).toEqual(before);
  });
});

describe.each(modes)('a reference into another tenant’s customer, under the $protocol protocol', (mode) => {
  test.each([
    p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT 4, 1`, { sql: `${R}INSERT INTO orders (customer_id, total_cents) SELECT $1::int, 1`, values: [4] }),
    p(`${R}INSERT INTO orders (customer_id, total_cents) SELECT * FROM (SELECT 1, 1 UNION ALL SELECT 4, 1) s`),
    p(`${R}INSERT INTO orders (customer_id, total_cents) VALUES (4, 1)`, { sql: `${R}INSERT INTO orders (customer_id, total_cents) VALUES ($1, 1)`, values: [4] }),
  ])('%p reads like a missing row', async (probe) => {
    const before = await state();
    const { outcome, events } = await run(probe, mode);
    expect(outcome.error?.code).toBe('23503');
    expect(outcome.error?.routine).toBe('ormai.reference_not_found');
    expect(events[0]).toMatchObject({ decision: 'error' });
    expect(await state()).toEqual(before);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 4. System columns of the write target read as missing columns, exactly like a hidden column.
// ---------------------------------------------------------------------------------------------------------------

const SYSTEM: Array<[Probe, string]> = [
  [p(`${R}UPDATE orders SET status = status WHERE id = 1 RETURNING ctid`), 'column "ctid" does not exist'],
  [p(`${R}UPDATE orders SET status = status WHERE id = 1 RETURNING id, xmin`), 'column "xmin" does not exist'],
  [p(`${R}UPDATE orders o SET status = status WHERE o.id = 1 RETURNING o.tableoid`), 'column o.tableoid does not exist'],
  [p(`${R}UPDATE orders SET status = 'x' WHERE xmin::text <> '0'`), 'column "xmin" does not exist'],
  [p(`${R}UPDATE orders SET status = cmin::text WHERE id = 1`, { sql: `${R}UPDATE orders SET status = cmin::text WHERE id = $1`, values: [1] }), 'column "cmin" does not exist'],
  [p(`${R}UPDATE orders SET xmax = '0' WHERE id = 1`), 'column "xmax" of relation "orders" does not exist'],
  [p(`${R}DELETE FROM orders WHERE id = -1 RETURNING tableoid`), 'column "tableoid" does not exist'],
  [p(`${R}DELETE FROM orders WHERE ctid = '(0,1)'`, { sql: `${R}DELETE FROM orders WHERE ctid = $1`, values: ['(0,1)'] }), 'column "ctid" does not exist'],
  [p(`${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, 1) RETURNING cmax`), 'column "cmax" does not exist'],
  [p(`${R}WITH u AS (UPDATE orders SET status = status WHERE id = 1 RETURNING ctid) SELECT * FROM u`), 'column "ctid" does not exist'],
  [p(`${DRY}UPDATE orders SET status = 'x' WHERE ctid = '(0,1)'`), 'column "ctid" does not exist'],
  // A hidden column, for comparison: the same code, the same wording.
  [p(`${R}UPDATE customers SET name = name WHERE id = 1 RETURNING api_secret`), 'column "api_secret" does not exist'],
];

describe.each(modes)('system columns of a write target, under the $protocol protocol', (mode) => {
  test.each(SYSTEM)('%p → %s', async (probe, message) => {
    const before = {
      state: await state(),
      orders: await db.query('SELECT * FROM orders ORDER BY id'),
    };
    const outcome = await expectRefused(probe, mode, '42703', 'column_not_found', message);
    expect(outcome.error?.hint).not.toMatch(/ctid|xmin|xmax|cmin|cmax|tableoid|api_secret/);
    expect(await db.query('SELECT * FROM orders ORDER BY id')).toEqual(before.orders);
  });
});
