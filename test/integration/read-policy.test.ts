// The read policy end to end (I1–I4): tenant isolation, denied and masked columns, catalogs, functions, row caps —
// every probe under the simple and the extended protocol, and no forbidden byte in anything the client receives.
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { startRelay, type Relay } from '../support/relay';

let db: TestDatabase;
let proxy: TestProxy;
let relay: Relay;
let received: Buffer[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url);
  relay = await startRelay('127.0.0.1', proxy.port, (chunk) => received.push(Buffer.from(chunk)));
});
afterAll(async () => {
  await relay?.close();
  await proxy?.close();
  await db?.drop();
});

/** Tenant 2's data, every secret, and tenant 1's raw PII: none of it may ever reach tenant 1's agent. */
const FORBIDDEN = [
  'Globex', 'hank@globex.com', 'lisa@globexship.com', '555-0200', '555-0201', '990000', '123400', '55500',
  'sk_live_', 'DO_NOT_LEAK',
  'jane@acme.com', 'joe@acmelabs.com', 'ann@acmeretail.com', '555-0100', '555-0101',
];

type Mode = { protocol: string; extended: boolean };
const modes: Mode[] = [
  { protocol: 'simple', extended: false },
  { protocol: 'extended', extended: true },
];

interface Outcome {
  rows?: Array<Record<string, unknown>>;
  error?: Error & { code?: string; routine?: string };
  notices: string[];
  bytes: Buffer;
}

/** Runs one statement as tenant 1 through a fresh session and captures every byte the client received. */
async function run(sql: string, mode: Mode, user = 'tenant1-agent', password = 'tenant1-password'): Promise<Outcome> {
  received = [];
  const c = new Client({ connectionString: `postgres://${user}:${password}@127.0.0.1:${relay.port}/app` });
  const notices: string[] = [];
  c.on('notice', (n) => notices.push(n.message ?? ''));
  await c.connect();
  try {
    const r = await c.query(mode.extended ? ({ text: sql, values: [], queryMode: 'extended' } as never) : sql);
    const results = Array.isArray(r) ? r : [r];
    return { rows: results.flatMap((x) => x.rows), notices, bytes: Buffer.concat(received) };
  } catch (error) {
    return { error: error as Outcome['error'], notices, bytes: Buffer.concat(received) };
  } finally {
    await c.end();
  }
}

function expectNothingForbidden(outcome: Outcome, sql: string): void {
  const text = outcome.bytes.toString('latin1');
  for (const f of FORBIDDEN) {
    // A literal the agent wrote itself may come back in an error message; that is not a leak.
    if (sql.includes(f)) continue;
    if (text.includes(f)) throw new Error(`"${f}" reached the client for: ${sql}`);
  }
}

/** Adversarial probes: whatever they return or refuse, nothing forbidden may come back. */
const PROBES = [
  'SELECT * FROM customers',
  'SELECT * FROM orders WHERE tenant_id = 2',
  'SELECT * FROM orders WHERE tenant_id = 2 OR true',
  'SELECT * FROM orders WHERE tenant_id IN (1, 2)',
  'SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id',
  'SELECT * FROM orders o LEFT JOIN customers c ON c.id = o.customer_id AND c.tenant_id = 2',
  'SELECT (SELECT name FROM customers WHERE id = 4) AS n',
  'SELECT * FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE total_cents > 100000)',
  'SELECT * FROM customers WHERE EXISTS (SELECT 1 FROM orders WHERE orders.tenant_id = 2)',
  'SELECT * FROM orders WHERE total_cents = ANY (SELECT total_cents FROM orders)',
  'WITH x AS (SELECT * FROM customers) SELECT * FROM x',
  'WITH customers AS (SELECT * FROM customers WHERE tenant_id = 2) SELECT * FROM customers',
  'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT r.n, c.name FROM r, customers c',
  'SELECT * FROM customers c, LATERAL (SELECT * FROM orders o WHERE o.customer_id = c.id) l',
  'SELECT name FROM customers UNION ALL SELECT status FROM orders',
  'SELECT name FROM customers EXCEPT SELECT name FROM customers WHERE id > 100',
  'TABLE customers',
  'SELECT * FROM ONLY customers',
  'SELECT * FROM public.customers',
  'SELECT * FROM "customers"',
  'SELECT * FROM PUBLIC.CUSTOMERS',
  'SELECT to_jsonb(c) FROM customers c',
  'SELECT row_to_json(c) FROM customers c',
  'SELECT c FROM customers c',
  'SELECT c::text FROM customers c',
  'SELECT array_agg(c) FROM customers c',
  'SELECT json_agg(o) FROM orders o',
  'SELECT upper(email), email || \'\', lower(phone) FROM customers',
  "SELECT count(*) FROM customers WHERE email LIKE 'j%'",
  'SELECT * FROM customers ORDER BY email',
  'SELECT email, count(*) FROM customers GROUP BY email',
  'SELECT string_agg(name, \',\') FROM customers',
  'SELECT api_secret FROM customers',
  'SELECT * FROM customers WHERE api_secret IS NOT NULL',
  'SELECT c.api_secret FROM customers c',
  'SELECT * FROM customers NATURAL JOIN orders',
  'SELECT * FROM customers JOIN orders USING (tenant_id)',
  'SELECT sum(total_cents), count(*), max(total_cents) FROM orders',
  'SELECT * FROM (SELECT * FROM customers) s WHERE s.tenant_id = 2',
  'SELECT name, count(*) OVER () FROM customers',
  'SELECT * FROM customers c1 CROSS JOIN customers c2',
  'SELECT * FROM (VALUES (4), (5)) v(id) JOIN customers c ON c.id = v.id',
  'SELECT * FROM customers WHERE id = 4',
  'SELECT * FROM orders FOR UPDATE',
  'SELECT * FROM customers /* ; SELECT * FROM pg_catalog.pg_authid */',
  "SELECT $$ ; DROP TABLE orders; $$ AS s, * FROM customers",
  "SELECT E'\\\\'' AS s, * FROM customers",
  'SELECT U&"n\\0061me" FROM customers',
  'EXPLAIN SELECT * FROM customers WHERE tenant_id = 2',
  'SELECT * FROM pg_catalog.pg_class',
  'SELECT * FROM pg_class',
  'SELECT * FROM pg_stats',
  'SELECT * FROM pg_stat_user_tables',
  'SELECT * FROM information_schema.schemata',
  "SELECT query_to_xml('select * from customers', true, true, '')",
  "SELECT table_to_xml('customers', true, true, '')",
  "SELECT current_setting('search_path')",
  "SELECT set_config('statement_timeout', '0', false)",
  "SELECT 'customers'::regclass",
  'SELECT * FROM information_schema.columns',
  'SELECT * FROM information_schema.tables',
  'SELECT * FROM internal_notes',
];

describe.each(modes)('adversarial probes under the $protocol protocol', (mode) => {
  test.each(PROBES)('%s', async (sql) => {
    const outcome = await run(sql, mode);
    expectNothingForbidden(outcome, sql);
  });
});

describe.each(modes)('acceptance under the $protocol protocol', (mode) => {
  test('SELECT * FROM customers: own rows only, api_secret absent, email and phone masked', async () => {
    const { rows, error } = await run('SELECT * FROM customers ORDER BY id', mode);
    expect(error).toBeUndefined();
    expect(rows!.map((r) => r.name)).toEqual(['Acme Corp', 'Acme Labs', 'Acme Retail']);
    expect(Object.keys(rows![0])).toEqual(['id', 'tenant_id', 'name', 'email', 'phone']);
    expect(rows!.map((r) => r.email)).toEqual(['j***@acme.com', 'j***@acmelabs.com', 'a***@acmeretail.com']);
    expect(rows![0].phone).toBe('55****00');
    expect(rows![2].phone).toBeNull();
  });

  test('tenant 2 sees only its own rows', async () => {
    const { rows } = await run('SELECT name FROM customers ORDER BY id', mode, 'tenant2-agent', 'tenant2-password');
    expect(rows!.map((r) => r.name)).toEqual(['Globex Inc', 'Globex Shipping']);
  });

  test('a forged tenant predicate matches nothing', async () => {
    expect((await run('SELECT * FROM orders WHERE tenant_id = 2', mode)).rows).toEqual([]);
    expect((await run('SELECT count(*)::int AS n FROM orders WHERE tenant_id = 2 OR true', mode)).rows).toEqual([{ n: 4 }]);
  });

  test('whole-row references carry only visible, masked columns', async () => {
    const { rows } = await run('SELECT to_jsonb(c) AS j FROM customers c ORDER BY id LIMIT 1', mode);
    expect(rows![0].j).toEqual({ id: 1, tenant_id: 1, name: 'Acme Corp', email: 'j***@acme.com', phone: '55****00' });
  });

  test('expressions and predicates see only the masked value', async () => {
    const upper = await run('SELECT upper(email) AS e FROM customers ORDER BY id LIMIT 1', mode);
    expect(upper.rows).toEqual([{ e: 'J***@ACME.COM' }]);
    const oracle = await run("SELECT count(*)::int AS n FROM customers WHERE email = 'jane@acme.com'", mode);
    expect(oracle.rows).toEqual([{ n: 0 }]);
  });

  test('a denied column does not exist', async () => {
    const { error } = await run('SELECT api_secret FROM customers', mode);
    expect(error).toMatchObject({ code: '42703' });
  });

  test('unlisted and nonexistent tables read the same: relation does not exist', async () => {
    const unlisted = await run('SELECT * FROM pgbench_nope', mode);
    const missing = await run('SELECT * FROM no_such_table', mode);
    expect(unlisted.error).toMatchObject({ code: '42P01', routine: 'ormai.model_not_allowed' });
    expect(missing.error).toMatchObject({ code: '42P01', routine: 'ormai.model_not_allowed' });
  });

  test('query_to_xml is refused', async () => {
    const { error } = await run("SELECT query_to_xml('select * from customers', true, true, '')", mode);
    expect(error).toMatchObject({ code: '42501', routine: 'ormai.function_not_allowed' });
  });

  test('system catalogs the proxy does not serve are refused with a hint towards information_schema', async () => {
    const { error } = await run('SELECT * FROM pg_catalog.pg_stats', mode);
    expect(error).toMatchObject({ code: '42501', routine: 'ormai.catalog_not_allowed' });
    expect(error!.message + ((error as { hint?: string }).hint ?? '')).toMatch(/information_schema/);
  });

  test('information_schema lists only visible tables and columns, masked ones marked', async () => {
    const tables = await run("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1", mode);
    expect(tables.rows!.map((r) => r.table_name)).toEqual(['customers', 'orders']);
    const columns = await run("SELECT column_name, data_type, ormai_mask FROM information_schema.columns WHERE table_name = 'customers' ORDER BY ordinal_position", mode);
    expect(columns.rows).toEqual([
      { column_name: 'id', data_type: 'integer', ormai_mask: null },
      { column_name: 'tenant_id', data_type: 'integer', ormai_mask: null },
      { column_name: 'name', data_type: 'character varying', ormai_mask: null },
      { column_name: 'email', data_type: 'character varying', ormai_mask: 'email' },
      { column_name: 'phone', data_type: 'character varying', ormai_mask: 'phone' },
    ]);
  });

  test('rows beyond max_rows are cut with a NOTICE, never silently', async () => {
    const { rows, notices } = await run('SELECT g FROM generate_series(1, 1000) g', mode);
    expect(rows).toHaveLength(200);
    expect(notices.join('\n')).toMatch(/truncated to 200 rows/);
    const small = await run('SELECT g FROM generate_series(1, 1000) g LIMIT 5', mode);
    expect(small.rows).toHaveLength(5);
    expect(small.notices).toEqual([]);
  });
});
