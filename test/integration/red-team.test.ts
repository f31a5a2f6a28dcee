// Red-team probes against the read policy (I1–I4, I6, I8, I9): an attacker with SQL only, under the simple and
// the extended protocol, trying to observe other tenants' rows, denied or raw masked values, or unlisted names.
//
// Probes that the proxy holds are regression tests. Probes that show a real leak (or a crash, hang, internal
// error or an error an agent cannot act on) are `test.failing` with a comment describing the leak: they pass
// while the hole exists and start failing (as a reminder to flip them to `test`) once it is fixed.
import path from 'node:path';
import { Client } from 'pg';
import { serialize } from 'pg-protocol';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { RawClient, type Message } from '../support/raw-client';
import { startRelay, type Relay } from '../support/relay';

/** One database with the quickstart data, a proxy in front, and a relay that records every byte sent to clients. */
interface Target {
  db: TestDatabase;
  proxy: TestProxy;
  relay: Relay;
  received: Buffer[];
}

async function startTarget(setup: string[] = []): Promise<Target> {
  const db = await createTestDatabase();
  for (const sql of setup) await db.query(sql);
  const proxy = await startTestProxy(db.url, { policies: [path.resolve(__dirname, '..', 'fixtures', 'red-team-policy.yaml')] });
  const target = { db, proxy, received: [] as Buffer[] } as Target;
  target.relay = await startRelay('127.0.0.1', proxy.port, (chunk) => target.received.push(Buffer.from(chunk)));
  return target;
}

async function stopTarget(t: Target | undefined): Promise<void> {
  await t?.relay?.close();
  await t?.proxy?.close();
  await t?.db?.drop();
}

// An unlisted table that exists upstream: its name must never reach an agent (I4).
const UNLISTED = 'CREATE TABLE internal_notes (id int, note text)';

let main: Target;

beforeAll(async () => {
  main = await startTarget([UNLISTED]);
});
afterAll(async () => {
  await stopTarget(main);
});

/** Tenant 2's data, every secret, tenant 1's raw PII, hidden column and unlisted table names. */
const FORBIDDEN = [
  'Globex', 'hank@globex.com', 'lisa@globexship.com', '555-0200', '555-0201', '990000', '123400', '55500',
  'sk_live_', 'DO_NOT_LEAK',
  'jane@acme.com', 'joe@acmelabs.com', 'ann@acmeretail.com', '555-0100', '555-0101',
  'api_secret', 'internal_notes',
];

type Mode = { protocol: string; extended: boolean };
const modes: Mode[] = [
  { protocol: 'simple', extended: false },
  { protocol: 'extended', extended: true },
];

type PgError = Error & { code?: string; routine?: string; hint?: string; detail?: string; position?: string };

interface Outcome {
  rows?: Array<Record<string, unknown>>;
  error?: PgError;
  notices: string[];
  bytes: Buffer;
}

/** Runs one statement through a fresh session (tenant 1 unless told) and captures every byte the client received. */
async function run(sql: string, mode: Mode, opts: { target?: Target; user?: string; password?: string } = {}): Promise<Outcome> {
  const t = opts.target ?? main;
  t.received.length = 0;
  const user = opts.user ?? 'tenant1-agent';
  const password = opts.password ?? 'tenant1-password';
  const c = new Client({ connectionString: `postgres://${user}:${password}@127.0.0.1:${t.relay.port}/app` });
  const notices: string[] = [];
  c.on('notice', (n) => notices.push(`${n.message ?? ''} ${n.detail ?? ''}`));
  c.on('error', () => undefined);
  await c.connect();
  try {
    const query = c.query(mode.extended ? ({ text: sql, values: [], queryMode: 'extended' } as never) : sql);
    const r = await Promise.race([
      query,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within 10 s (hang): ${sql}`)), 10_000)),
    ]);
    const results = Array.isArray(r) ? r : [r];
    return { rows: results.flatMap((x: { rows: Array<Record<string, unknown>> }) => x.rows), notices, bytes: Buffer.concat(t.received) };
  } catch (error) {
    if ((error as Error).message.includes('(hang)')) throw error;
    return { error: error as PgError, notices, bytes: Buffer.concat(t.received) };
  } finally {
    await Promise.race([c.end().catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
  }
}

/** What the agent's own escaped text decodes to (U&"…", U&'…'): an echo of its own words, not a leak. */
const ECHOES: Record<string, string[]> = {
  'SELECT U&"api\\005fsecret" FROM customers': ['api_secret'],
  "SELECT U&\"!0061pi_secret\" UESCAPE '!' FROM customers": ['api_secret'],
  "SELECT U&'\\0047lobex' AS s": ['Globex'],
};

/** No forbidden byte in anything the client received (rows, errors, notices); a literal the agent wrote may echo back. */
function expectNothingForbidden(bytes: Buffer, sql: string): void {
  const text = bytes.toString('latin1');
  for (const f of FORBIDDEN) {
    if (sql.includes(f) || ECHOES[sql]?.includes(f)) continue;
    if (text.includes(f)) throw new Error(`"${f}" reached the client for: ${sql}`);
  }
}

/** No internal error and no connection-level failure: the proxy answered like PostgreSQL would. */
function expectNoInternalError(o: Outcome): void {
  if (o.error) {
    expect(o.error.code).not.toBe('XX000');
    expect(o.error.routine ?? '').not.toBe('ormai.internal_error');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Byte-level probes: whatever they return or refuse, nothing forbidden reaches the client.
// ---------------------------------------------------------------------------------------------------------------

const PROBES = [
  // Error oracles on other tenants' rows: the derived tables are fenced (OFFSET 0), so nothing here may be
  // evaluated on a foreign row.
  "SELECT * FROM customers WHERE CASE WHEN name LIKE 'Globex%' THEN 1 / (id - id) ELSE 0 END = 0",
  'SELECT * FROM customers WHERE (CASE WHEN tenant_id = 2 THEN name ELSE \'1\' END)::int = 1',
  "SELECT * FROM customers WHERE name ~ CASE WHEN tenant_id = 2 THEN repeat('(', id) ELSE 'x' END",
  "SELECT * FROM customers WHERE CASE WHEN tenant_id <> 1 THEN name::int = 0 ELSE true END",
  'SELECT * FROM orders WHERE CASE WHEN total_cents > 50000 THEN (total_cents::text || \'x\')::int ELSE 0 END = 0',
  'SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id AND 1 / (c.tenant_id - 2) = -1',
  'SELECT count(*) FROM customers c1 JOIN customers c2 ON (c1.email || c2.name)::int = 1',
  'SELECT name::int FROM customers',
  'SELECT email::int FROM customers',
  'SELECT phone::numeric FROM customers',
  "SELECT to_date(name, 'YYYY') FROM customers",
  "SELECT jsonb_path_query(to_jsonb(c), 'strict $.api_secret') FROM customers c",
  "SELECT (to_jsonb(c) ->> 'api_secret') FROM customers c",
  'SELECT total_cents / (total_cents - 990000) FROM orders',
  // Aggregates, windows, grouping, FILTER, DISTINCT ON over joined data.
  'SELECT count(*), sum(total_cents), max(total_cents), min(total_cents), avg(total_cents) FROM orders',
  'SELECT status, tenant_id, sum(total_cents) FROM orders GROUP BY CUBE (status, tenant_id)',
  'SELECT tenant_id, sum(total_cents) FROM orders GROUP BY ROLLUP (tenant_id)',
  'SELECT sum(total_cents) FROM orders GROUP BY GROUPING SETS ((), (customer_id), (tenant_id))',
  'SELECT count(*) FILTER (WHERE tenant_id = 2), sum(total_cents) FILTER (WHERE total_cents > 50000) FROM orders',
  'SELECT sum(total_cents) OVER (), rank() OVER (ORDER BY total_cents DESC), lag(total_cents) OVER () FROM orders',
  'SELECT DISTINCT ON (tenant_id) tenant_id, name FROM customers ORDER BY tenant_id, name DESC',
  'SELECT c.name, sum(o.total_cents) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.name',
  'SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total_cents), mode() WITHIN GROUP (ORDER BY status) FROM orders',
  'SELECT string_agg(name || email, \',\' ORDER BY phone) FROM customers',
  // Set operations, CTEs (scoping and shadowing), recursion, LATERAL, VALUES, ROWS FROM, generate_series.
  'SELECT id FROM customers INTERSECT SELECT customer_id FROM orders',
  'SELECT 4 EXCEPT SELECT id FROM customers',
  'SELECT * FROM customers WHERE tenant_id = 2 UNION ALL SELECT * FROM customers WHERE tenant_id <> 1',
  'WITH RECURSIVE r(id) AS (SELECT 1 UNION SELECT r.id + 1 FROM r WHERE r.id < 10) SELECT r.id, c.name FROM r LEFT JOIN customers c ON c.id = r.id',
  'WITH RECURSIVE customers AS (SELECT 1 AS id UNION ALL SELECT id + 1 FROM customers WHERE id < 3) SELECT * FROM customers',
  'WITH a AS (SELECT * FROM customers), customers AS (SELECT * FROM a) SELECT * FROM customers',
  'WITH customers AS (SELECT * FROM customers WHERE tenant_id = 2) SELECT * FROM customers',
  'WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT * FROM customers) SELECT * FROM a',
  'SELECT * FROM (WITH customers AS (SELECT 1 AS x) SELECT * FROM customers) s, customers',
  'WITH o AS MATERIALIZED (SELECT * FROM orders) SELECT * FROM o WHERE tenant_id = 2',
  'SELECT * FROM generate_series(1, 10) g LEFT JOIN customers c ON c.id = g',
  "SELECT * FROM ROWS FROM (generate_series(1, 6), unnest(ARRAY['a'])) AS t(a, b) LEFT JOIN customers c ON c.id = t.a",
  'SELECT * FROM (VALUES (1), (4), (5)) v(id) LEFT JOIN LATERAL (SELECT * FROM customers c WHERE c.id = v.id) l ON true',
  'SELECT * FROM orders, LATERAL (SELECT * FROM customers WHERE customers.id = orders.customer_id) x WHERE orders.tenant_id = 2',
  'VALUES ((SELECT max(total_cents) FROM orders), (SELECT string_agg(name, \',\') FROM customers))',
  'SELECT (SELECT count(*) FROM orders) + (SELECT count(*) FROM customers)',
  'SELECT * FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE total_cents = 990000)',
  'SELECT * FROM customers WHERE id = ANY (ARRAY[4, 5])',
  'SELECT * FROM customers WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = 4)',
  // Whole rows, json/xml/array functions over rows, c.* expansions.
  'SELECT to_jsonb(c.*), row(c.*)::text, c.*::text FROM customers c',
  'SELECT json_agg(c ORDER BY c.id), jsonb_agg(o) FROM customers c, orders o',
  'SELECT row_to_json(x) FROM (SELECT * FROM customers) x',
  'SELECT array_agg(c)::text FROM customers c',
  "SELECT format('%I %L %s', name, email, phone), concat(c.*), concat_ws(',', c.*) FROM customers c",
  'SELECT xmlelement(name x, name), xmlforest(name, email) FROM customers',
  'SELECT json_object(\'a\': name), JSON_ARRAYAGG(c.name), JSON_OBJECTAGG(c.name : c.email) FROM customers c',
  'SELECT JSON_SERIALIZE(to_json(c)) FROM customers c',
  'SELECT jsonb_each_text(to_jsonb(c)) FROM customers c',
  'SELECT c FROM customers c WHERE c = c',
  'SELECT pg_typeof(c) FROM customers c',
  // Hidden columns everywhere, in every spelling.
  'SELECT * FROM customers ORDER BY api_secret',
  'SELECT * FROM customers c ORDER BY c.api_secret',
  'SELECT name FROM customers GROUP BY api_secret',
  'SELECT api_secret FROM (SELECT * FROM customers) s',
  'SELECT "api_secret" FROM customers',
  'SELECT U&"api\\005fsecret" FROM customers',
  "SELECT U&\"!0061pi_secret\" UESCAPE '!' FROM customers",
  'SELECT * FROM customers ORDER BY 6',
  'SELECT * FROM customers WHERE ctid = \'(0,4)\'',
  'SELECT ctid, xmin, tableoid FROM customers',
  'SELECT * FROM customers c JOIN orders o USING (id)',
  'SELECT * FROM customers NATURAL JOIN orders',
  // Masked columns as oracles.
  "SELECT count(*) FROM customers WHERE email = 'jane@acme.com' OR phone = '555-0100' OR email LIKE 'jane%'",
  'SELECT lower(email), length(email), md5(email), phone || \'\' FROM customers ORDER BY email',
  "SELECT * FROM customers WHERE strpos(email, 'jane') > 0",
  // Names: ONLY, inheritance star, quoting, case, unicode, schema.
  'SELECT * FROM customers*',
  'SELECT * FROM ONLY public.customers',
  'SELECT * FROM "public"."customers" AS "Customers"',
  'SELECT * FROM customers AS pg_class',
  'SELECT * FROM U&"\\0063ustomers"',
  'SELECT * FROM "Customers"',
  'SELECT * FROM pg_temp.customers',
  'SELECT * FROM app.public.customers',
  'SELECT public.customers.name FROM customers',
  'TABLE orders',
  // Strings, comments, quoting tricks.
  "SELECT E'\\x27' || name FROM customers",
  "SELECT E'\\\\'' || name FROM customers",
  "SELECT $tag$ $$ ' \" $tag$ || name FROM customers",
  "SELECT $a$ $b$ ; SELECT * FROM pg_authid; $b$ $a$ AS s",
  'SELECT /* /* nested */ ; SELECT * FROM pg_class */ name FROM customers --',
  'SELECT name FROM customers -- ; SELECT * FROM pg_class',
  "SELECT 'a' 'b'",
  "SELECT 'x'\n'y' AS s, name FROM customers",
  "SELECT U&'\\0047lobex' AS s",
  // Multi-statement strings.
  'SELECT 1; SELECT * FROM pg_authid',
  'SELECT 1; SELECT name FROM customers WHERE tenant_id = 2',
  'BEGIN; SELECT * FROM customers; COMMIT',
  // Catalogs and information_schema beyond tables/columns; the drivers' pg_type view.
  'SELECT * FROM information_schema.views',
  'SELECT * FROM information_schema.routines',
  'SELECT * FROM information_schema.table_privileges',
  'SELECT * FROM information_schema.key_column_usage',
  'SELECT * FROM information_schema.check_constraints',
  'SELECT * FROM information_schema.schemata',
  'SELECT * FROM information_schema.columns',
  'SELECT * FROM information_schema.tables',
  'SELECT * FROM pg_type',
  'SELECT typname FROM pg_type WHERE typname LIKE \'%notes%\' OR typname LIKE \'%customers%\'',
  'SELECT t.typname FROM pg_catalog.pg_type t WHERE typrelid <> 0',
  'SELECT * FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace',
  'SELECT * FROM pg_catalog.pg_type AS t(a)',
  'SELECT * FROM pg_stats',
  'SELECT * FROM pg_class',
  'SELECT * FROM internal_notes',
  'SELECT * FROM public.internal_notes',
  // Types: table row types, reg* casts, populate functions.
  'SELECT NULL::customers',
  'SELECT NULL::public.customers',
  "SELECT '(1,1,x,y,z,w)'::customers",
  'SELECT CAST(NULL AS internal_notes)',
  'SELECT jsonb_populate_record(NULL::customers, \'{}\')',
  'SELECT * FROM json_populate_record(NULL::orders, \'{"id": 1}\')',
  'SELECT * FROM json_to_record(\'{"a":1}\') AS x(a customers)',
  "SELECT 'customers'::regclass",
  "SELECT 'customers'::text::regclass::oid",
  "SELECT 'internal_notes'::pg_catalog.regclass",
  "SELECT '16384'::oid::regclass",
  "SELECT 'internal_notes'::regtype",
  "SELECT ARRAY['customers']::regclass[]",
  // Functions: dangerous ones refused; session state not readable.
  "SELECT current_setting('search_path')",
  "SELECT set_config('statement_timeout', '0', false)",
  "SELECT query_to_xml('select * from customers', true, true, '')",
  "SELECT cursor_to_xml('c', 1, true, true, '')",
  "SELECT database_to_xml(true, true, '')",
  "SELECT ts_stat('SELECT to_tsvector(name) FROM customers')",
  "SELECT xpath('/a', '<a/>')",
  "SELECT to_regclass('internal_notes')",
  "SELECT pg_get_viewdef('customers')",
  'SELECT CURRENT_USER, SESSION_USER',
  'SELECT current_database()',
  "SELECT pg_read_file('/etc/passwd')",
  "SELECT lo_import('/etc/passwd')",
  "SELECT nextval('orders_id_seq')",
  'SELECT pg_sleep(0)',
  'SELECT public.pg_sleep(0)',
  'SELECT "pg_sleep"(0)',
  'SELECT pg_catalog.pg_sleep(0)',
  // LIMIT/OFFSET/FETCH.
  'SELECT * FROM customers LIMIT 100000000000',
  'SELECT * FROM customers OFFSET 9223372036854775807',
  'SELECT * FROM customers LIMIT ALL',
  'SELECT * FROM customers FETCH FIRST 99999999999 ROWS ONLY',
  // EXPLAIN variants: plans show the rewritten (tenant-filtered, masked) statement, never values.
  'EXPLAIN SELECT * FROM customers WHERE tenant_id = 2',
  'EXPLAIN (VERBOSE, COSTS, SETTINGS, FORMAT JSON) SELECT * FROM customers WHERE name = \'x\'',
  'EXPLAIN (FORMAT XML, VERBOSE) SELECT * FROM orders WHERE tenant_id = 2',
  'EXPLAIN (FORMAT YAML, SETTINGS) SELECT c FROM customers c',
  'EXPLAIN (COSTS OFF, COSTS ON) SELECT * FROM orders',
  'EXPLAIN (COSTS false, COSTS, FORMAT JSON) SELECT * FROM orders',
  'EXPLAIN (GENERIC_PLAN) SELECT * FROM customers WHERE id = $1',
  'EXPLAIN (ANALYZE off) SELECT * FROM customers',
  'EXPLAIN ANALYZE SELECT * FROM customers',
  'EXPLAIN (ANALYZE 1) SELECT * FROM customers',
  'EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM customers',
  "EXPLAIN VERBOSE /*reason='probe'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 1)",
  // SET / RESET / SHOW.
  'SET client_min_messages = debug5; SELECT * FROM customers',
  'SHOW search_path',
  'SHOW ALL',
  'RESET role',
  'SET default_transaction_read_only = off',
  'SET "ormai.tenant" = \'2\'',
  'SET search_path = pg_temp, public',
  'SET standard_conforming_strings = off',
  "SET client_encoding = 'SJIS'",
  'SET statement_timeout = 0',
  "SET LOCAL statement_timeout = '1d'",
];

describe.each(modes)('red-team byte probes under the $protocol protocol', (mode) => {
  test.each(PROBES)('%s', async (sql) => {
    const outcome = await run(sql, mode);
    expectNothingForbidden(outcome.bytes, sql);
    expectNoInternalError(outcome);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 2. Result-level facts: what tenant 1 observes equals what it should observe over its own rows only.
// ---------------------------------------------------------------------------------------------------------------

const FACTS: Array<[string, Array<Record<string, unknown>>]> = [
  ['SELECT count(*)::int AS n, sum(total_cents)::int AS s, max(total_cents) AS m FROM orders', [{ n: 4, s: 41800, m: 20000 }]],
  ['SELECT count(*)::int AS n FROM customers c1 CROSS JOIN customers c2', [{ n: 9 }]],
  ['SELECT count(*)::int AS n FROM orders o JOIN customers c ON c.id = o.customer_id', [{ n: 4 }]],
  ['SELECT count(*)::int AS n FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL', [{ n: 0 }]],
  ['SELECT sum(total_cents)::int AS s FROM orders GROUP BY GROUPING SETS (())', [{ s: 41800 }]],
  ['SELECT count(*)::int AS n FROM (SELECT tenant_id FROM orders GROUP BY CUBE (tenant_id)) s', [{ n: 2 }]],
  ['SELECT DISTINCT (count(*) OVER ())::int AS n FROM orders', [{ n: 4 }]],
  ['SELECT (count(*) FILTER (WHERE total_cents > 50000))::int AS n FROM orders', [{ n: 0 }]],
  ['SELECT ((SELECT count(*) FROM orders) + (SELECT count(*) FROM customers))::int AS n', [{ n: 7 }]],
  ['SELECT count(*)::int AS n FROM (SELECT id FROM customers UNION SELECT customer_id FROM orders) s', [{ n: 3 }]],
  ['SELECT count(*)::int AS n FROM (SELECT 4 INTERSECT SELECT id FROM customers) s', [{ n: 0 }]],
  ['WITH RECURSIVE r(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM r WHERE id < 10) SELECT count(c.id)::int AS n FROM r LEFT JOIN customers c ON c.id = r.id', [{ n: 3 }]],
  ['SELECT count(l.id)::int AS n FROM generate_series(1, 10) g, LATERAL (SELECT id FROM customers WHERE id = g) l', [{ n: 3 }]],
  ['SELECT count(c.id)::int AS n FROM ROWS FROM (generate_series(1, 10)) AS t(a) JOIN customers c ON c.id = t.a', [{ n: 3 }]],
  ['SELECT count(c.id)::int AS n FROM (VALUES (1), (4), (5)) v(id) JOIN customers c USING (id)', [{ n: 1 }]],
  ['SELECT count(*)::int AS n FROM generate_series(1, 10) g WHERE EXISTS (SELECT 1 FROM orders WHERE customer_id = g)', [{ n: 3 }]],
  ["SELECT count(*)::int AS n FROM customers WHERE email = 'jane@acme.com' OR phone = '555-0100' OR email LIKE 'jane%'", [{ n: 0 }]],
  ['SELECT count(*)::int AS n FROM orders WHERE total_cents IN (990000, 123400, 55500)', [{ n: 0 }]],
  ['SELECT max(id)::int AS m FROM customers', [{ m: 3 }]],
  ['SELECT count(*)::int AS n FROM (SELECT DISTINCT ON (tenant_id) tenant_id FROM customers) s', [{ n: 1 }]],
  ['SELECT array_length(array_agg(c), 1) AS n FROM customers c', [{ n: 3 }]],
  ['SELECT k FROM customers c, jsonb_object_keys(to_jsonb(c)) k WHERE c.id = 1 ORDER BY k', ['email', 'id', 'name', 'phone', 'tenant_id'].map((k) => ({ k }))],
  ['SELECT count(*)::int AS n FROM (SELECT * FROM customers LIMIT 100000000000) s', [{ n: 3 }]],
  ['WITH customers AS (SELECT * FROM customers WHERE tenant_id = 2) SELECT count(*)::int AS n FROM customers', [{ n: 0 }]],
  // The fence: none of these may raise on a foreign row.
  ["SELECT count(*)::int AS n FROM customers WHERE CASE WHEN name LIKE 'Globex%' THEN 1 / (id - id) ELSE 0 END = 0", [{ n: 3 }]],
  ["SELECT count(*)::int AS n FROM customers WHERE CASE WHEN name LIKE 'Globex%' THEN name ~ repeat('(', id) ELSE true END", [{ n: 3 }]],
  ["SELECT count(*)::int AS n FROM orders WHERE CASE WHEN total_cents > 50000 THEN (total_cents::text || 'x')::int ELSE 0 END = 0", [{ n: 4 }]],
  ['SELECT count(*)::int AS n FROM orders o JOIN customers c ON c.id = o.customer_id AND 1 / (c.tenant_id - 2) = -1', [{ n: 4 }]],
  ['SELECT count(*)::int AS n FROM orders WHERE total_cents / (total_cents - 990000) IS NOT NULL', [{ n: 4 }]],
  // information_schema and pg_type show nothing of hidden columns or unlisted tables.
  ["SELECT count(*)::int AS n FROM information_schema.columns WHERE column_name LIKE '%secret%'", [{ n: 0 }]],
  ["SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name NOT IN ('customers', 'orders')", [{ n: 0 }]],
  // The only row types served are the visible tables' own (what a whole-row value of each has), never an array of one.
  ["SELECT count(*)::int AS n FROM pg_type WHERE (typrelid <> 0 AND typname NOT IN ('customers', 'orders')) OR typname IN ('internal_notes', '_customers', '_orders', '_internal_notes')", [{ n: 0 }]],
  ["SELECT string_agg(typname::text, ',' ORDER BY typname) AS t FROM pg_type WHERE typrelid <> 0", [{ t: 'customers,orders' }]],
];

describe.each(modes)('red-team result facts under the $protocol protocol', (mode) => {
  test.each(FACTS)('%s', async (sql, expected) => {
    const outcome = await run(sql, mode);
    expect(outcome.error).toBeUndefined();
    expect(outcome.rows).toEqual(expected);
    expectNothingForbidden(outcome.bytes, sql);
  });

  test('the row cap holds with huge LIMIT, UNION ALL and FETCH FIRST', async () => {
    for (const sql of [
      'SELECT g FROM generate_series(1, 1000) g LIMIT 100000000000',
      'SELECT g FROM generate_series(1, 500) g UNION ALL SELECT g FROM generate_series(1, 500) g',
      'SELECT g FROM generate_series(1, 1000) g FETCH FIRST 5000 ROWS ONLY',
      'SELECT g FROM generate_series(1, 1000) g OFFSET 0',
    ]) {
      const { rows, notices } = await run(sql, mode);
      expect(rows).toHaveLength(200);
      expect(notices.join('\n')).toMatch(/truncated to 200 rows/);
    }
  });

  test('a statement cached for tenant 2 is not served to tenant 1', async () => {
    const sql = 'SELECT name AS red_team_cache FROM customers ORDER BY id';
    const t2 = await run(sql, mode, { user: 'tenant2-agent', password: 'tenant2-password' });
    expect(t2.rows!.map((r) => r.red_team_cache)).toEqual(['Globex Inc', 'Globex Shipping']);
    const t1 = await run(sql, mode);
    expect(t1.rows!.map((r) => r.red_team_cache)).toEqual(['Acme Corp', 'Acme Labs', 'Acme Retail']);
    expectNothingForbidden(t1.bytes, sql);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 3. Refusals: the right machine-readable code, under both protocols.
// ---------------------------------------------------------------------------------------------------------------

const REFUSALS: Array<[string, string]> = [
  ['SELECT * FROM customers TABLESAMPLE BERNOULLI (100) REPEATABLE (1)', 'ormai.statement_not_understood'],
  ['SELECT * FROM customers AS c(a, b, x)', 'ormai.statement_not_understood'],
  ['SELECT NULL::customers', 'ormai.type_not_allowed'],
  ["SELECT jsonb_populate_record(NULL::customers, '{}')", 'ormai.type_not_allowed'],
  ["SELECT 'internal_notes'::regclass", 'ormai.model_not_allowed'],
  ["SELECT 'admin'::regrole", 'ormai.function_not_allowed'],
  ["SELECT ARRAY['customers']::regclass[]", 'ormai.function_not_allowed'],
  ['SELECT * FROM information_schema.views', 'ormai.catalog_not_allowed'],
  ['SELECT * FROM information_schema.check_constraints', 'ormai.catalog_not_allowed'],
  ['SELECT * FROM pg_stats', 'ormai.catalog_not_allowed'],
  ['SELECT * FROM internal_notes', 'ormai.model_not_allowed'],
  ["SELECT current_setting('search_path')", 'ormai.function_not_allowed'],
  ["SELECT cursor_to_xml('c', 1, true, true, '')", 'ormai.function_not_allowed'],
  ['SELECT public.pg_sleep(0)', 'ormai.function_not_allowed'],
  ['SHOW ALL', 'ormai.setting_not_allowed'],
  ['SET default_transaction_read_only = off', 'ormai.setting_not_allowed'],
  ['SET standard_conforming_strings = off', 'ormai.setting_not_allowed'],
  ["SET client_encoding = 'SJIS'", 'ormai.setting_not_allowed'],
  ["SET LOCAL statement_timeout = '1d'", 'ormai.statement_timeout_raise'],
  ['EXPLAIN (ANALYZE 1) SELECT * FROM customers', 'ormai.statement_not_allowed'],
  ['EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM customers', 'ormai.statement_not_allowed'],
  ['SELECT * FROM orders FOR SHARE', 'ormai.statement_not_allowed'],
  // A write in the WITH of a SELECT meets the write rules: here the reason the quickstart requires.
  ["WITH x AS (INSERT INTO orders (customer_id, total_cents) VALUES (1, 1) RETURNING *) SELECT * FROM x", 'ormai.reason_required'],
  ["/*reason='probe'*/ WITH x AS (UPDATE orders SET status = status WHERE total_cents = 990000 RETURNING *) SELECT * FROM x", 'ormai.model_writes_disabled'],
  ["/*reason='probe'*/ WITH x AS (INSERT INTO orders (customer_id, total_cents) VALUES (1, 1) RETURNING id) INSERT INTO orders (customer_id, total_cents) SELECT 1, id FROM x", 'ormai.statement_not_allowed'],
  // … and, allowed by them, it is still refused: the trail could record neither its rows nor their number.
  ["/*reason='probe'*/ WITH x AS (INSERT INTO orders (customer_id, total_cents) VALUES (1, 1) RETURNING *) SELECT * FROM x", 'ormai.statement_not_allowed'],
  ["INSERT INTO orders (customer_id, total_cents) VALUES (1, 1)", 'ormai.reason_required'],
  // The quickstart lists no writable fields: a key the database numbers is not the agent's to choose.
  ["/*reason='probe'*/ INSERT INTO orders (id, customer_id, total_cents) VALUES (5, 1, 1) ON CONFLICT (id) DO UPDATE SET tenant_id = 2", 'ormai.field_not_writable'],
  ["/*reason='probe'*/ INSERT INTO orders (id, customer_id, total_cents) VALUES (5, 1, 1) ON CONFLICT (id) DO UPDATE SET status = orders.status RETURNING *", 'ormai.field_not_writable'],
  // … and DO UPDATE needs the update grant, which the quickstart does not give.
  ["/*reason='probe'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET status = 'x'", 'ormai.model_writes_disabled'],
  ["/*reason='probe'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 1) RETURNING orders", 'ormai.statement_not_allowed'],
  ["/*dry_run='perhaps'*/ /*reason='probe'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 1)", 'ormai.statement_not_allowed'],
  ["/*reason='probe'*/ INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, 2)", 'ormai.tenant_forged'],
  ["/*reason='probe'*/ INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, 1 + 1)", 'ormai.tenant_forged'],
  ["INSERT INTO customers (name, email) VALUES ('x', 'y')", 'ormai.model_writes_disabled'],
  ["UPDATE orders SET status = 'x'", 'ormai.model_writes_disabled'],
];

// Write shapes the policy allows: they run, and still show nothing of another tenant.
const ALLOWED_WRITES = [
  "/*reason='probe'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 1) RETURNING *",
  "/*reason='probe'*/ INSERT INTO orders (customer_id, total_cents) SELECT customer_id, total_cents FROM orders WHERE total_cents > 100000 RETURNING *",
  "/*dry_run='true'*/ INSERT INTO orders (customer_id, total_cents) SELECT customer_id, total_cents FROM orders",
  // DEFAULT for the tenant column is the proxy's tenant, as when the column is left out.
  "/*reason='probe'*/ INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, DEFAULT) RETURNING *",
];

describe.each(modes)('red-team allowed writes under the $protocol protocol', (mode) => {
  test.each(ALLOWED_WRITES)('%s', async (sql) => {
    const outcome = await run(sql, mode);
    expect(outcome.error).toBeUndefined();
    for (const row of outcome.rows ?? []) expect(row).toMatchObject({ tenant_id: 1 });
    expectNothingForbidden(outcome.bytes, sql);
  });
});

describe.each(modes)('red-team refusals under the $protocol protocol', (mode) => {
  test.each(REFUSALS)('%s → %s', async (sql, routine) => {
    const outcome = await run(sql, mode);
    expect(outcome.error?.routine).toBe(routine);
    expectNothingForbidden(outcome.bytes, sql);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 4. Message-level probes (extended protocol only: they need control of Parse/Bind/Execute).
// ---------------------------------------------------------------------------------------------------------------

async function raw(frames: Buffer[]): Promise<{ messages: Message[]; bytes: Buffer }> {
  const c = await RawClient.connect(main.proxy.port, 'tenant1-agent', 'tenant1-password');
  const bytes: Buffer[] = [];
  c.socket.on('data', (chunk) => bytes.push(Buffer.from(chunk)));
  try {
    c.send(...frames, serialize.sync());
    return { messages: await c.untilReady(), bytes: Buffer.concat(bytes) };
  } finally {
    c.end();
  }
}

function dataRows(ms: Message[]): Array<Array<string | null>> {
  return ms.filter((m) => m.name === 'dataRow').map((m) => (m as unknown as { fields: Array<string | null> }).fields);
}

const REGCLASS = 2205;
const REGTYPE = 2206;
const REGNAMESPACE = 4089;
const REGROLE = 4096;
const INT4 = 23;
const TEXT = 25;
const INT4_ARRAY = 1007;

describe('red-team message-level probes', () => {
  test('Execute with a row limit, repeated, cannot read past max_rows', async () => {
    const frames = [
      serialize.parse({ name: '', text: 'SELECT g FROM generate_series(1, 1000) g', types: [] }),
      serialize.bind({ portal: 'p', statement: '', values: [] }),
      serialize.execute({ portal: 'p', rows: 150 }),
      serialize.execute({ portal: 'p', rows: 150 }),
      serialize.execute({ portal: 'p', rows: 150 }),
    ];
    const { messages } = await raw(frames);
    expect(dataRows(messages)).toHaveLength(200);
  });

  test('LIMIT $1 with the largest bigint is still capped', async () => {
    const { messages } = await raw([
      serialize.parse({ name: '', text: 'SELECT g FROM generate_series(1, 1000) g LIMIT $1', types: [] }),
      serialize.bind({ statement: '', values: ['9223372036854775807'] }),
      serialize.execute({}),
    ]);
    expect(dataRows(messages)).toHaveLength(200);
  });

  test('a tenant parameter matches nothing foreign', async () => {
    const { messages, bytes } = await raw([
      serialize.parse({ name: '', text: 'SELECT * FROM customers WHERE tenant_id = $1 OR name LIKE $2', types: [] }),
      serialize.bind({ statement: '', values: ['2', 'Glo%'] }),
      serialize.execute({}),
    ]);
    expect(dataRows(messages)).toEqual([]);
    expectNothingForbidden(bytes, '');
  });

  test('a NUL byte inside a Query message does not smuggle a second statement', async () => {
    const c = await RawClient.connect(main.proxy.port, 'tenant1-agent', 'tenant1-password');
    const bytes: Buffer[] = [];
    c.socket.on('data', (chunk) => bytes.push(Buffer.from(chunk)));
    const body = Buffer.from("SELECT 1\0SELECT * FROM pg_authid\0", 'latin1');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length + 4);
    c.send(Buffer.concat([Buffer.from('Q'), len, body]));
    const messages = await c.untilReady().catch(() => [] as Message[]);
    c.end();
    // Either refused or the session is closed; never a row of pg_authid.
    expect(dataRows(messages).length).toBeLessThanOrEqual(1);
    expect(Buffer.concat(bytes).toString('latin1')).not.toMatch(/rolpassword|SCRAM-SHA-256\$/);
  });

  test('a parameter cast to a reg* type is read as an oid, never looked up by name', async () => {
    const { messages } = await raw([
      serialize.parse({ name: '', text: 'SELECT $1::regclass::text', types: [] }),
      serialize.bind({ statement: '', values: ['internal_notes'] }),
      serialize.execute({}),
    ]);
    // The cast goes through the policy's pg_class by oid: a name is not an oid (22P02), and no row comes back.
    expect(messages.find((m) => m.name === 'error')).toMatchObject({ code: '22P02' });
    expect(dataRows(messages)).toHaveLength(0);
  });

  // I4: Parse carries parameter type OIDs. A parameter declared as regclass/regtype/regrole/regnamespace would
  // make PostgreSQL resolve the bound text (or an OID number) in the catalogs and print names back: any
  // table's existence and name, the upstream role, schema names. The proxy allows built-in non-reg* types only.
  test('Parse parameter types of reg* are refused', async () => {
    const leaks: string[] = [];
    for (const [type, value] of [
      [REGCLASS, 'internal_notes'],
      [REGTYPE, 'internal_notes'],
      [REGROLE, '10'],
      [REGNAMESPACE, '2200'],
    ] as const) {
      const { messages, bytes } = await raw([
        serialize.parse({ name: '', text: 'SELECT $1::text AS t', types: [type] }),
        serialize.bind({ statement: '', values: [value] }),
        serialize.execute({}),
      ]);
      const rows = dataRows(messages);
      if (rows.length > 0) leaks.push(`${type}:${value} → ${rows[0][0]}`);
      expect(messages.find((m) => m.name === 'error')).toMatchObject({ code: '42704' });
      expectNothingForbidden(bytes, '');
    }
    expect(leaks).toEqual([]);
  });

  // I2: a parameter of the REAL table's row type (its OID is next to the table's, which RowDescription
  // reports) would list every column of the real table when converted to JSON, denied ones included.
  test('a parameter of a table’s row type is refused', async () => {
    const [{ oid }] = await main.db.query<{ oid: number }>("SELECT 'customers'::regtype::oid::int AS oid");
    const { bytes, messages } = await raw([
      serialize.parse({ name: '', text: 'SELECT to_jsonb($1) AS j', types: [oid] }),
      serialize.bind({ statement: '', values: ['(1,1,a,b,c,d)'] }),
      serialize.execute({}),
    ]);
    expect(dataRows(messages)).toEqual([]);
    expect(messages.find((m) => m.name === 'error')).toMatchObject({ code: '42704' });
    expectNothingForbidden(bytes, '');
  });

  test('built-in parameter types, arrays of them and 0 are accepted', async () => {
    const { messages } = await raw([
      serialize.parse({ name: '', text: 'SELECT $1::int + 1 AS n, $2::text AS t, $3 AS u, cardinality($4::int[]) AS c', types: [INT4, TEXT, 0, INT4_ARRAY] }),
      serialize.bind({ statement: '', values: ['41', 'x', 'y', '{1,2}'] }),
      serialize.execute({}),
    ]);
    expect(dataRows(messages)).toEqual([['42', 'x', 'y', '2']]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 5. Findings that need their own database: writes that succeed, and planner statistics.
// ---------------------------------------------------------------------------------------------------------------

describe('red-team write-path findings', () => {
  let w: Target;
  beforeAll(async () => {
    w = await startTarget();
  });
  afterAll(async () => {
    await stopTarget(w);
  });

  async function tenant2Orders(): Promise<Array<Record<string, unknown>>> {
    return w.db.query('SELECT id, customer_id, total_cents, status FROM orders WHERE tenant_id = 2 ORDER BY id');
  }

  describe.each(modes)('under the $protocol protocol', (mode) => {
    // I1: a data-modifying CTE under a write on the same table must not escape the write checks: its
    // ON CONFLICT DO UPDATE would target any tenant's row, its RETURNING read that row, and a cast error in
    // the outer VALUES print it. Every write below the top node is refused, however many share a target.
    test('WITH (INSERT … ON CONFLICT DO UPDATE … RETURNING) INSERT … is refused', async () => {
      const sql =
        "/*reason='probe'*/ WITH x AS (INSERT INTO orders (id, tenant_id, customer_id, total_cents) VALUES (5, 1, 1, 1) " +
        'ON CONFLICT (id) DO UPDATE SET status = orders.status RETURNING total_cents) ' +
        "INSERT INTO orders (customer_id, total_cents) VALUES (1, (SELECT 'v=' || total_cents FROM x)::int)";
      const outcome = await run(sql, mode, { target: w });
      expect(outcome.error?.routine).toBe('ormai.statement_not_allowed');
      expectNothingForbidden(outcome.bytes, sql);
    });

    // I1: the same shape would exfiltrate through a constraint error's DETAIL ("Failing row contains …").
    test('a NOT NULL violation in a CTE ON CONFLICT DO UPDATE cannot print another tenant’s row', async () => {
      const sql =
        "/*reason='probe'*/ WITH x AS (INSERT INTO orders (id, tenant_id, customer_id, total_cents) VALUES (6, 1, 1, 1) " +
        'ON CONFLICT (id) DO UPDATE SET customer_id = NULL) INSERT INTO orders (customer_id, total_cents) VALUES (1, 2)';
      const outcome = await run(sql, mode, { target: w });
      expectNothingForbidden(outcome.bytes, sql);
    });

    // I1 writes: an inner INSERT with tenant_id = 2 would plant rows in tenant 2's data.
    test('a CTE INSERT cannot write a row into another tenant', async () => {
      const before = await tenant2Orders();
      const sql =
        "/*reason='probe'*/ WITH x AS (INSERT INTO orders (tenant_id, customer_id, total_cents) VALUES (2, 4, 1) RETURNING id) " +
        'INSERT INTO orders (customer_id, total_cents) VALUES (1, 1)';
      const outcome = await run(sql, mode, { target: w });
      expect(outcome.error?.routine).toMatch(/^ormai\./);
      expect(await tenant2Orders()).toEqual(before);
    });

    // Fixed, kept as a regression test. Was: LEAK (I1, existence oracle + integrity): an INSERT may reference another tenant's customer. The FK check
    // runs on the real table: customer_id = 4 (tenant 2's) is accepted while 99 fails with 23503, so tenant 1
    // learns which ids exist in other tenants, and creates orders that point at tenant 2's customer.
    // Fix (write policy, #4): for FK columns into tenant-scoped tables, check the referenced row through the
    // derived table (e.g. rewrite VALUES into INSERT … SELECT … WHERE EXISTS (SELECT 1 FROM <derived customers>
    // WHERE id = v)) or require tenant-composite FKs; report a missing/foreign parent identically.
    test('FIXED FK check tells another tenant’s customer id from a missing one (references are checked through the parent’s policy view)', async () => {
      const before = await w.db.query('SELECT count(*)::int AS n FROM orders');
      const foreign = await run("/*reason='probe'*/ INSERT INTO orders (customer_id, total_cents) VALUES (4, 1)", mode, { target: w });
      const missing = await run("/*reason='probe'*/ INSERT INTO orders (customer_id, total_cents) VALUES (99, 1)", mode, { target: w });
      expect(foreign.error).toMatchObject({ code: '23503', routine: 'ormai.reference_not_found' });
      expect(missing.error?.message).toBe(foreign.error?.message);
      expect(await w.db.query('SELECT count(*)::int AS n FROM orders')).toEqual(before);
      const own = await run("/*reason='probe'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 1)", mode, { target: w });
      expect(own.error).toBeUndefined();
    });

    // The check finds the parent by its key without a fence (derived.ts parentKeys): PostgreSQL may
    // then compare the value with other tenants' keys before the tenant condition drops them. The
    // value's type, cast or computation must not tell a foreign id from a missing one.
    test('the FK check answers the same for a foreign and a missing id whatever form the value takes', async () => {
      const forms = (id: number) => [`${id}::bigint`, `${id}.0`, `'${id}'`, `(SELECT ${id})`, `${id} + 0 * length(repeat('x', 3))`, `CAST(${id} AS numeric)`];
      for (const [foreign, missing] of forms(4).map((f, i) => [f, forms(99)[i]])) {
        const a = await run(`/*reason='probe'*/ INSERT INTO orders (customer_id, total_cents) VALUES (${foreign}, 1)`, mode, { target: w });
        const b = await run(`/*reason='probe'*/ INSERT INTO orders (customer_id, total_cents) VALUES (${missing}, 1)`, mode, { target: w });
        expect({ foreign, code: a.error?.code, message: a.error?.message }).toEqual({ foreign, code: b.error?.code, message: b.error?.message });
        expect({ foreign, refused: a.error !== undefined }).toEqual({ foreign, refused: true });
      }
    });

    // Fixed, kept as a regression test. Was: LEAK (I1, existence oracle): explicit primary-key values were writable, so the unique violation
    // "Key (id)=(7) already exists" reveals that id 7 exists (tenant 2's order) while an unused id succeeds.
    // Fix: make serial/identity primary keys non-writable by default (writes.ts guardWrite, writable_fields),
    // or map 23505 on a key the agent cannot see to a generic error.
    test('FIXED unique violation on an explicit id reveals another tenant’s row (serial keys are not writable by default)', async () => {
      const sql = "/*reason='probe'*/ INSERT INTO orders (id, customer_id, total_cents) VALUES (7, 1, 1)";
      const outcome = await run(sql, mode, { target: w });
      expect(outcome.error?.routine).toMatch(/^ormai\./);
    });
  });
});

describe('red-team planner-statistics findings', () => {
  let s: Target;
  beforeAll(async () => {
    // Another tenant's data with a distinctive value, and statistics as autovacuum would gather them.
    s = await startTarget([
      "INSERT INTO orders (tenant_id, customer_id, total_cents, status) SELECT 2, 4, 424242, 'refunded' FROM generate_series(1, 300)",
      'ANALYZE customers',
      'ANALYZE orders',
    ]);
  });
  afterAll(async () => {
    await stopTarget(s);
  });

  describe.each(modes)('under the $protocol protocol', (mode) => {
    test('results stay tenant 1’s own', async () => {
      const { rows } = await run('SELECT count(*)::int AS n FROM orders WHERE total_cents = 424242', mode, { target: s });
      expect(rows).toEqual([{ n: 0 }]);
    });

    // I1, statistics side channel: the planner estimates the agent's predicates from the WHOLE table's
    // statistics (MCVs, histograms), dominated by other tenants: `total_cents = 424242` (a value only tenant 2
    // has, 300 times) would estimate rows=4 against rows=1 for an absent value. EXPLAIN therefore runs with
    // COSTS OFF, and asking for costs is refused. (max_scan_rows refusals remain a coarse form of the same
    // signal; see the README's "Not yet enforced".)
    test('EXPLAIN shows no estimates, in any format', async () => {
      for (const sql of [
        'EXPLAIN SELECT * FROM orders WHERE total_cents = 424242',
        'EXPLAIN (FORMAT JSON) SELECT * FROM orders WHERE total_cents = 424242',
        'EXPLAIN (FORMAT YAML) SELECT * FROM orders WHERE total_cents = 424242',
      ]) {
        const { rows, error } = await run(sql, mode, { target: s });
        expect(error).toBeUndefined();
        const text = JSON.stringify(rows);
        expect(text).toMatch(/Seq Scan|Index Scan|Bitmap|Node Type/);
        expect(text).not.toMatch(/rows=|cost=|Plan Rows|Total Cost/);
      }
      for (const asked of ['COSTS ON', 'COSTS OFF, COSTS ON', 'COSTS false, COSTS', 'FORMAT JSON, COSTS off, COSTS true']) {
        const costs = await run(`EXPLAIN (${asked}) SELECT * FROM orders WHERE total_cents = 424242`, mode, { target: s });
        expect({ asked, routine: costs.error?.routine }).toEqual({ asked, routine: 'ormai.statement_not_allowed' });
      }
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 6. Errors an agent cannot act on.
// ---------------------------------------------------------------------------------------------------------------

describe.each(modes)('red-team error quality under the $protocol protocol', (mode) => {
  // Errors raised by PostgreSQL carry a position ('P') into the REWRITTEN text; the proxy moves it into the
  // agent's text (or drops it when the word is not there exactly once), so the caret lands on what it wrote.
  test('an error position points into the agent’s text', async () => {
    const sql = 'SELECT name FROM customers WHERE nme = 1';
    const { error } = await run(sql, mode);
    expect(error?.code).toBe('42703');
    expect(sql.slice(Number(error?.position) - 1)).toMatch(/^nme/);
    const ambiguous = await run('SELECT nme FROM customers WHERE nme = 1', mode);
    expect(ambiguous.error?.code).toBe('42703');
    expect(ambiguous.error?.position).toBeUndefined();
  });

  // FETCH FIRST … WITH TIES cannot be printed faithfully by the deparser: the refusal names it and the fix.
  test('FETCH FIRST … WITH TIES is refused by name', async () => {
    const { rows, error } = await run('SELECT g FROM generate_series(1, 10) g ORDER BY g FETCH FIRST 2 ROWS WITH TIES', mode);
    if (error) expect(`${error.message} ${error.hint ?? ''}`).toMatch(/WITH TIES/i);
    else expect(rows).toHaveLength(2);
  });

  // SQL/JSON query functions and XMLTABLE: refused by name, with the jsonb function to use instead.
  test('JSON_TABLE / JSON_QUERY / XMLTABLE are refused by name', async () => {
    for (const sql of [
      "SELECT * FROM JSON_TABLE('[1]', '$[*]' COLUMNS (x int PATH '$'))",
      "SELECT JSON_QUERY(to_jsonb(c), '$.name') FROM customers c",
      "SELECT * FROM XMLTABLE('/a' PASSING '<a/>' COLUMNS x int PATH '.')",
    ]) {
      const { error } = await run(sql, mode);
      if (error) expect(`${error.message} ${error.hint ?? ''}`).toMatch(/JSON_TABLE|JSON_QUERY|XMLTABLE/i);
    }
  });
});

describe('red-team startup parameters', () => {
  async function connectWith(options: string): Promise<{ error?: PgError; applicationName?: string }> {
    const c = new Client({ connectionString: main.proxy.url(), options } as never);
    c.on('error', () => undefined);
    try {
      await c.connect();
      const r = await c.query('SHOW application_name');
      return { applicationName: r.rows[0].application_name as string };
    } catch (error) {
      return { error: error as PgError };
    } finally {
      await Promise.race([c.end().catch(() => undefined), new Promise((r) => setTimeout(r, 500))]);
    }
  }

  test('search_path and role cannot be smuggled in options, even escaped into another value', async () => {
    expect((await connectWith('-c search_path=pg_temp')).error?.routine).toBe('ormai.startup_parameter_not_allowed');
    expect((await connectWith('-c role=postgres')).error?.routine).toBe('ormai.startup_parameter_not_allowed');
    expect((await connectWith('--default-transaction-read-only=off')).error?.routine).toBe('ormai.startup_parameter_not_allowed');
    // The escaped spaces stay inside application_name's value: harmless.
    expect((await connectWith('-c application_name=x\\ -c\\ search_path=evil')).applicationName).toBe('x -c search_path=evil');
  });

  test("a value PostgreSQL refuses for an allowed setting is the client's error (22023, its message), not an outage", async () => {
    for (const [options, setting] of [
      ['-c TimeZone=Nowhere/Invalid', 'TimeZone'],
      ['-c DateStyle=sideways', 'DateStyle'],
      ['-c extra_float_digits=99', 'extra_float_digits'],
    ]) {
      const { error } = await connectWith(options);
      expect({ options, code: error?.code, routine: error?.routine }).toEqual({ options, code: '22023', routine: 'ormai.invalid_startup_parameter' });
      expect(error?.message).toContain(`"${setting}"`);
    }
  });

  // Names of Object.prototype members are settings like any other: not on the allow-list.
  test('-c constructor=1 and friends are refused as startup parameters', async () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const { error } = await connectWith(`-c ${name}=1`);
      expect(error?.routine).toBe('ormai.startup_parameter_not_allowed');
    }
  });
});
