// Golden cases for the policy knobs of the read rewrite: row cap, tenant_forged, tenant literal types, mask strategies, row filters.
import type { Node } from '@pgsql/types';
import { analyze, initAnalysis } from '../../../src/analysis/pipeline';
import { classify } from '../../../src/analysis/classify';
import { parseStatements } from '../../../src/analysis/parser';
import { rewriteReads } from '../../../src/analysis/rewrite';
import { forgedParams } from '../../../src/analysis/rewrite/tenant';
import type { AnalysisContext } from '../../../src/analysis/types';
import { loadPolicyFile } from '../../../src/policy/load';
import { compileScope, type ReadScope } from '../../../src/policy/scope';
import { gate, runGolden } from './golden';
import { COUNTRIES, CUSTOMERS, INFO_COLUMN_NAMES, INFO_TABLE_NAMES, infoColumnRow, infoTableRow, ORDERS, principal, QUICKSTART, quickstartCatalog, scopeFromFile, scopeVariant, WITH_COUNTRIES } from './rewrite-scope';

const scope = scopeFromFile(WITH_COUNTRIES);
const base = { scope, principal: principal('1'), captureWrites: false, writeGate: gate('insert:orders', 'update:orders', 'delete:orders') };
const orders = (tenant: string): string => ORDERS.replace(`'1'::int`, tenant);

describe('row cap', () => {
  runGolden(
    [
      { sql: 'SELECT id FROM orders', out: `SELECT id FROM ${ORDERS} AS orders LIMIT 201`, rowLimit: 200 },
      { sql: 'SELECT id FROM orders LIMIT 10', out: `SELECT id FROM ${ORDERS} AS orders LIMIT LEAST(10, 201)`, rowLimit: 200 },
      { sql: 'SELECT id FROM orders LIMIT 1000', out: `SELECT id FROM ${ORDERS} AS orders LIMIT LEAST(1000, 201)` },
      { sql: 'SELECT id FROM orders LIMIT $1', out: `SELECT id FROM ${ORDERS} AS orders LIMIT LEAST($1, CAST(201 AS bigint))` },
      { sql: 'SELECT id FROM orders LIMIT $1 OFFSET $2', out: `SELECT id FROM ${ORDERS} AS orders LIMIT LEAST($1, CAST(201 AS bigint)) OFFSET $2` },
      { sql: 'SELECT id FROM orders LIMIT ALL', out: `SELECT id FROM ${ORDERS} AS orders LIMIT LEAST(NULL, 201)` },
      { sql: 'SELECT id FROM orders LIMIT NULL', out: `SELECT id FROM ${ORDERS} AS orders LIMIT LEAST(NULL, 201)` },
      { sql: 'SELECT id FROM orders OFFSET 5', out: `SELECT id FROM ${ORDERS} AS orders LIMIT 201 OFFSET 5` },
      { sql: 'SELECT id FROM orders FETCH FIRST 5 ROWS ONLY', out: `SELECT id FROM ${ORDERS} AS orders LIMIT LEAST(5, 201)` },
      // WITH TIES can return more than n rows: the cap goes on a SELECT around it.
      { sql: 'SELECT id FROM orders ORDER BY id FETCH FIRST 5 ROWS WITH TIES', out: `SELECT * FROM ( SELECT id FROM ${ORDERS} AS orders ORDER BY id FETCH FIRST (5) ROWS WITH TIES ) AS ormai_ties LIMIT 201`, rowLimit: 200 },
      // Set operations: the cap belongs to the node above the arms; an arm's own LIMIT is the agent's business.
      { sql: 'SELECT 1 UNION SELECT 2', out: 'SELECT 1 UNION SELECT 2 LIMIT 201' },
      { sql: 'SELECT 1 UNION ALL SELECT 2 LIMIT 1', out: 'SELECT 1 UNION ALL SELECT 2 LIMIT LEAST(1, 201)' },
      { sql: '(SELECT 1 LIMIT 500) UNION (SELECT 2 LIMIT 500)', out: '(SELECT 1 LIMIT 500) UNION (SELECT 2 LIMIT 500) LIMIT 201' },
      { sql: 'SELECT 1 INTERSECT SELECT 1 EXCEPT SELECT 2 LIMIT $1', out: '(SELECT 1 INTERSECT SELECT 1) EXCEPT SELECT 2 LIMIT LEAST($1, CAST(201 AS bigint))' },
      // Only the outermost LIMIT: subqueries and CTEs keep theirs.
      { sql: 'SELECT * FROM (SELECT id FROM orders LIMIT 1000) s', out: `SELECT * FROM ( SELECT id FROM ${ORDERS} AS orders LIMIT 1000 ) AS s LIMIT 201` },
      { sql: 'WITH t AS (SELECT id FROM orders LIMIT 1000) SELECT * FROM t LIMIT 300', out: `WITH t AS (SELECT id FROM ${ORDERS} AS orders LIMIT 1000) SELECT * FROM t LIMIT LEAST(300, 201)` },
      // Not a top-level SELECT: no cap.
      { sql: 'EXPLAIN SELECT id FROM orders', out: `EXPLAIN (COSTS OFF) SELECT id FROM ${ORDERS} AS orders`, rowLimit: null },
      { sql: 'EXPLAIN SELECT id FROM orders LIMIT 5000', out: `EXPLAIN (COSTS OFF) SELECT id FROM ${ORDERS} AS orders LIMIT 5000`, rowLimit: null },
      // A write is not rewritten with a LIMIT; its RETURNING rows are capped on the wire.
      { sql: 'INSERT INTO orders (customer_id, total_cents) VALUES ((SELECT max(customer_id) FROM orders), 1)', out: `INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES ((SELECT max(customer_id) FROM ${ORDERS} AS orders), 1, '1'::int)`, rowLimit: 200 },
      { sql: 'BEGIN', out: 'BEGIN', rowLimit: null },
      { sql: 'SELECT id FROM orders; SELECT 1', out: `SELECT id FROM ${ORDERS} AS orders LIMIT 201; SELECT 1 LIMIT 201`, multi: true },
      { sql: 'SELECT 1', out: 'SELECT 1 LIMIT 6', rowLimit: 5, ctx: { scope: scopeVariant(WITH_COUNTRIES, { max_rows: 5 }) } },
    ],
    base,
  );
});

describe('cursors', () => {
  runGolden(
    [
      // The cursor's query is rewritten and capped like a SELECT; FETCHes share the cap on the wire.
      { sql: 'DECLARE c NO SCROLL CURSOR FOR SELECT id FROM orders', out: `DECLARE c NO SCROLL CURSOR FOR SELECT id FROM ${ORDERS} AS orders LIMIT 201`, rowLimit: 200, kinds: ['read'] },
      { sql: 'DECLARE c BINARY SCROLL CURSOR FOR SELECT * FROM customers WHERE id > 1', out: `DECLARE c SCROLL BINARY CURSOR FOR SELECT * FROM ${CUSTOMERS} AS customers WHERE id > 1 LIMIT 201`, rowLimit: 200 },
      // A hidden column is missing from the policy view: PostgreSQL itself says it does not exist.
      { sql: 'DECLARE c CURSOR FOR SELECT api_secret FROM customers', out: `DECLARE c CURSOR FOR SELECT api_secret FROM ${CUSTOMERS} AS customers LIMIT 201` },
      { sql: 'DECLARE c CURSOR FOR SELECT * FROM pg_authid', err: 'model_not_allowed' },
      { sql: 'DECLARE c CURSOR FOR SELECT pg_sleep(1)', err: 'function_not_allowed' },
      { sql: 'DECLARE c CURSOR WITH HOLD FOR SELECT id FROM orders', err: 'statement_not_allowed' },
      { sql: 'DECLARE c CURSOR FOR WITH d AS (DELETE FROM orders RETURNING id) SELECT * FROM d', err: 'statement_not_allowed' },
      { sql: 'DECLARE c CURSOR FOR SELECT id FROM orders FOR UPDATE', err: 'statement_not_allowed' },
      { sql: 'FETCH FORWARD 10 FROM c', out: 'FETCH FORWARD 10 c', kinds: ['read'] },
      { sql: 'FETCH ALL IN c', out: 'FETCH FORWARD 2147483647 c', kinds: ['read'] },
      { sql: 'MOVE NEXT IN c', out: 'MOVE FORWARD 1 c', kinds: ['session'] },
    ],
    base,
  );
});

describe('tenant_forged', () => {
  runGolden(
    [
      { sql: 'SELECT * FROM orders WHERE tenant_id = 2', out: `SELECT * FROM ${ORDERS} AS orders WHERE tenant_id = 2 LIMIT 201`, flags: ['tenant_forged'] },
      { sql: 'SELECT * FROM orders o WHERE o.tenant_id IN (2, 3)', out: `SELECT * FROM ${ORDERS} AS o WHERE o.tenant_id IN (2, 3) LIMIT 201`, flags: ['tenant_forged'] },
      { sql: 'SELECT * FROM orders o WHERE 7 = o.tenant_id', out: `SELECT * FROM ${ORDERS} AS o WHERE 7 = o.tenant_id LIMIT 201`, flags: ['tenant_forged'] },
      { sql: "SELECT * FROM orders WHERE tenant_id = '2'", out: `SELECT * FROM ${ORDERS} AS orders WHERE tenant_id = '2' LIMIT 201`, flags: ['tenant_forged'] },
      { sql: 'SELECT * FROM orders WHERE tenant_id = 2::bigint', out: `SELECT * FROM ${ORDERS} AS orders WHERE tenant_id = CAST(2 AS bigint) LIMIT 201`, flags: ['tenant_forged'] },
      { sql: 'SELECT * FROM orders WHERE tenant_id = ANY (ARRAY[1, 2])', out: `SELECT * FROM ${ORDERS} AS orders WHERE tenant_id = ANY (ARRAY[1, 2]) LIMIT 201`, flags: ['tenant_forged'] },
      { sql: 'SELECT * FROM orders WHERE tenant_id IS NOT DISTINCT FROM 2', out: `SELECT * FROM ${ORDERS} AS orders WHERE tenant_id IS NOT DISTINCT FROM 2 LIMIT 201`, flags: ['tenant_forged'] },
      {
        sql: 'SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.tenant_id = 2)',
        out: `SELECT * FROM ${CUSTOMERS} AS c WHERE EXISTS (SELECT 1 FROM ${ORDERS} AS o WHERE o.customer_id = c.id AND o.tenant_id = 2) LIMIT 201`,
        flags: ['tenant_forged'],
      },
      { sql: 'WITH x AS (SELECT * FROM orders) SELECT * FROM x WHERE x.tenant_id = 2', out: `WITH x AS (SELECT * FROM ${ORDERS} AS orders) SELECT * FROM x WHERE x.tenant_id = 2 LIMIT 201`, flags: ['tenant_forged'] },
      { sql: 'INSERT INTO orders (customer_id, total_cents) VALUES ((SELECT max(customer_id) FROM orders WHERE tenant_id = 2), 1)', out: `INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES ((SELECT max(customer_id) FROM ${ORDERS} AS orders WHERE tenant_id = 2), 1, '1'::int)`, flags: ['tenant_forged'] },
      // The principal's own tenant, parameters, and comparisons that name no tenant are not flagged.
      { sql: 'SELECT * FROM orders WHERE tenant_id = 1', out: `SELECT * FROM ${ORDERS} AS orders WHERE tenant_id = 1 LIMIT 201`, flags: [] },
      { sql: "SELECT * FROM orders WHERE tenant_id IN (1, '1')", out: `SELECT * FROM ${ORDERS} AS orders WHERE tenant_id IN (1, '1') LIMIT 201`, flags: [] },
      { sql: 'SELECT * FROM orders WHERE tenant_id = $1', out: `SELECT * FROM ${ORDERS} AS orders WHERE tenant_id = $1 LIMIT 201`, flags: [] },
      { sql: 'SELECT * FROM orders WHERE customer_id = 2', out: `SELECT * FROM ${ORDERS} AS orders WHERE customer_id = 2 LIMIT 201`, flags: [] },
      { sql: "SELECT * FROM countries WHERE code = '2'", out: `SELECT * FROM ${COUNTRIES} AS countries WHERE code = '2' LIMIT 201`, flags: [] },
    ],
    base,
  );
});

describe('tenant_forged through casts, expressions, ranges, subqueries, rows and aliases', () => {
  beforeAll(() => initAnalysis());
  // Each asks about another tenant: a value other than tenant 1, or a shape only another tenant could match.
  const FORGED = [
    'SELECT id FROM orders WHERE tenant_id::int = 2',
    'SELECT id FROM orders WHERE (tenant_id)::bigint = 2',
    'SELECT id FROM orders WHERE tenant_id + 0 = 2',
    'SELECT id FROM orders WHERE tenant_id BETWEEN 2 AND 2',
    'SELECT id FROM orders WHERE tenant_id IN (SELECT 2)',
    'SELECT id FROM orders WHERE tenant_id = ANY (SELECT 2)',
    'SELECT id FROM orders WHERE 2 = ANY (ARRAY[tenant_id])',
    'SELECT id FROM orders WHERE tenant_id >= 2',
    'SELECT id FROM orders WHERE tenant_id > 1',
    'SELECT id FROM orders WHERE tenant_id <> 1',
    'SELECT id FROM orders WHERE tenant_id IS DISTINCT FROM 1',
    'SELECT id FROM orders o WHERE (o.tenant_id, 1) = (2, 1)',
    'SELECT id FROM orders WHERE coalesce(tenant_id, 0) = 2',
    'SELECT id FROM (SELECT tenant_id AS t, id FROM orders) s WHERE t = 2',
    'SELECT id FROM (SELECT tenant_id, id FROM orders) s(t, id) WHERE s.t = 2',
    'WITH w(t) AS (SELECT tenant_id FROM orders) SELECT t FROM w WHERE t = 2',
    'SELECT id FROM orders WHERE tenant_id <> $1',
    'SELECT CASE WHEN tenant_id = 2 THEN 1 END FROM orders',
    'SELECT CASE tenant_id WHEN 2 THEN true END FROM orders',
    'SELECT id FROM orders WHERE tenant_id = 1 + 1',
    'SELECT id FROM orders o WHERE (o).tenant_id = 2',
    'SELECT id FROM orders WHERE tenant_id IN (VALUES (2))',
    'SELECT id FROM orders WHERE tenant_id IN (SELECT 1 UNION SELECT 2)',
    "SELECT id FROM orders WHERE tenant_id = ANY ('{1,2}')",
    'SELECT id FROM orders WHERE tenant_id = $1 + 1',
    'SELECT id FROM orders WHERE (tenant_id, id) IN ((1, 1), (2, 2))',
    'SELECT o.id FROM orders o JOIN (SELECT 2 AS t) v ON o.tenant_id = v.t',
    'SELECT id FROM orders JOIN (SELECT 2 AS tenant_id) t USING (tenant_id)',
    'SELECT id FROM orders NATURAL JOIN (SELECT 2 AS tenant_id) t',
    'SELECT id FROM orders WHERE tenant_id IN (SELECT x FROM (SELECT 2 AS x) s)',
    'WITH t AS (SELECT 2 AS k) SELECT id FROM orders, t WHERE orders.tenant_id = t.k',
    'SELECT id FROM orders, (VALUES (2)) v(x) WHERE tenant_id = x',
    'SELECT id FROM orders WHERE tenant_id = ANY (SELECT x FROM (VALUES (2)) v(x))',
    'SELECT id FROM orders WHERE (tenant_id, id) IN (VALUES (2, 5))',
    'SELECT o.id FROM orders o JOIN (VALUES (2, 5)) AS v(tenant_id, id) ON o.tenant_id = v.tenant_id AND o.id = v.id',
    'SELECT orders.id FROM orders, (SELECT 2 AS tenant_id) s WHERE orders.tenant_id = s.tenant_id',
    'SELECT o.id FROM orders o JOIN (SELECT 1 AS t UNION SELECT 2) v ON o.tenant_id = v.t',
    'SELECT id FROM orders NATURAL JOIN (SELECT 2 AS tenant_id UNION SELECT 3) v',
  ];
  // Tenant 1's own rows, joins on the tenant column, and parameters (judged at Bind) are not flagged.
  const NOT_FORGED = [
    'SELECT id FROM orders WHERE tenant_id::int = 1',
    'SELECT id FROM orders o WHERE (o.tenant_id, o.id) = (1, 5)',
    'SELECT id FROM orders WHERE tenant_id IN (SELECT 1)',
    'SELECT o.id FROM orders o JOIN customers c ON c.tenant_id = o.tenant_id AND c.id = o.customer_id',
    'SELECT id FROM orders WHERE tenant_id = $1',
    'SELECT id FROM orders WHERE tenant_id = ANY ($1)',
    'SELECT id FROM orders WHERE tenant_id IS NULL OR id = 2',
    'SELECT id FROM (SELECT tenant_id AS t, id FROM orders) s WHERE id = 2',
    'SELECT id FROM orders WHERE (tenant_id, id) IN ((1, 1), (1, 2))',
    "SELECT id FROM orders WHERE tenant_id = ANY ('{1}')",
    'SELECT id FROM orders WHERE tenant_id IN (SELECT tenant_id FROM customers WHERE id = 5)',
    'SELECT CASE tenant_id WHEN 1 THEN true END FROM orders',
    'SELECT id FROM orders WHERE (tenant_id, id) IN (VALUES (1, 5))',
    'SELECT id FROM orders WHERE tenant_id OPERATOR(pg_catalog.=) 1',
    'SELECT o.id FROM orders o JOIN (SELECT 1 AS t) v ON o.tenant_id = v.t',
    'SELECT id FROM orders JOIN (SELECT 1 AS tenant_id, 5 AS k) t USING (tenant_id)',
    'SELECT o.id FROM orders o JOIN (VALUES (1, 5), (1, 6)) AS v(tenant_id, id) ON o.tenant_id = v.tenant_id AND o.id = v.id',
    'SELECT o.id FROM orders o JOIN customers c ON c.tenant_id = o.tenant_id',
  ];
  for (const protocol of ['simple', 'extended'] as const) {
    test.each(FORGED)(`${protocol}: %s`, (sql) => {
      const result = analyze(sql, { ...base, protocol });
      expect(result.ok && result.statements[0].flags).toEqual(['tenant_forged']);
    });
    test.each(NOT_FORGED)(`${protocol}, not forged: %s`, (sql) => {
      const result = analyze(sql, { ...base, protocol });
      expect(result.ok && (result.statements[0].flags ?? [])).toEqual([]);
    });
  }
  test('parameters compared with the tenant column are named for Bind to judge', () => {
    const params = (sql: string) => {
      const result = analyze(sql, { ...base, protocol: 'extended' });
      return result.ok ? result.statements[0].tenantParams : 'refused';
    };
    expect(params('SELECT id FROM orders WHERE tenant_id = $1 AND id = $2')).toEqual({ numbers: [1], arrays: [] });
    expect(params('SELECT id FROM orders WHERE id = $1 AND $2::int = tenant_id')).toEqual({ numbers: [2], arrays: [] });
    expect(params('SELECT id FROM orders WHERE tenant_id = ANY ($1)')).toEqual({ numbers: [1], arrays: [1] });
    expect(params('SELECT id FROM orders WHERE id = $1')).toBeUndefined();
  });
  test('bound values are read in text and in binary, lists under = ANY element by element', () => {
    const one = { numbers: [1], arrays: [] };
    const text = (value: string) => ({ types: [0], values: [Buffer.from(value)], formats: [0] });
    const int4 = (n: number) => ({ types: [23], values: [Buffer.from([0, 0, 0, n])], formats: [1] });
    expect([text('1'), text(' 1 '), text('1.0'), int4(1)].map((b) => forgedParams(one, b, 'integer', '1'))).toEqual([false, false, false, false]);
    expect([text('2'), text('01x'), int4(2)].map((b) => forgedParams(one, b, 'integer', '1'))).toEqual([true, true, true]);
    const int8 = Buffer.alloc(8);
    int8.writeBigInt64BE(9007199254740993n);
    expect(forgedParams(one, { types: [20], values: [int8], formats: [1] }, 'bigint', '9007199254740993')).toBe(false);
    expect(forgedParams(one, { types: [20], values: [int8], formats: [1] }, 'bigint', '9007199254740992')).toBe(true);
    const uuid = '2b1e7c1e-0f5a-4c3e-9d2b-7a1f3e5c9d01';
    expect(forgedParams(one, { types: [2950], values: [Buffer.from(uuid.replace(/-/g, ''), 'hex')], formats: [1] }, 'uuid', uuid)).toBe(false);
    // A NULL names no tenant; a value it cannot read counts as naming another.
    expect(forgedParams(one, { types: [23], values: [null], formats: [1] }, 'integer', '1')).toBe(false);
    expect(forgedParams(one, { types: [1700], values: [Buffer.from([0, 1])], formats: [1] }, 'integer', '1')).toBe(true);
    // Untyped binary: read as the tenant column's type, as PostgreSQL infers it.
    expect(forgedParams(one, { types: [0], values: [Buffer.from([0, 0, 0, 1])], formats: [1] }, 'integer', '1')).toBe(false);
    expect(forgedParams(one, { types: [0], values: [Buffer.from([0, 0, 0, 2])], formats: [1] }, 'integer', '1')).toBe(true);
    expect(forgedParams(one, text('1'.padStart(70_000, '0')), 'integer', '1')).toBe(true);
    const list = { numbers: [1], arrays: [1] };
    expect(['{1}', '{1,"1",NULL}', '{}', '{1,2}', '{2}', '{{2}}', '[1:1]={2}'].map((v) => forgedParams(list, text(v), 'integer', '1'))).toEqual([false, false, false, true, true, true, true]);
    // Binary one-dimensional arrays (pgx, JDBC): int4[] of 1, 1 and of 1, 2.
    const int4s = (...ns: number[]) => {
      const b = Buffer.alloc(20 + ns.length * 8);
      b.writeInt32BE(1, 0);
      b.writeInt32BE(0, 4);
      b.writeInt32BE(23, 8);
      b.writeInt32BE(ns.length, 12);
      b.writeInt32BE(1, 16);
      ns.forEach((n, i) => {
        b.writeInt32BE(4, 20 + i * 8);
        b.writeInt32BE(n, 24 + i * 8);
      });
      return { types: [1007], values: [b], formats: [1] };
    };
    expect([int4s(1, 1), int4s(1, 2), int4s()].map((b) => forgedParams(list, b, 'integer', '1'))).toEqual([false, true, false]);
    // One format code for every parameter, or one each.
    const two = { numbers: [2], arrays: [] };
    expect(forgedParams(two, { types: [23, 23], values: [Buffer.from('1'), Buffer.from([0, 0, 0, 2])], formats: [0, 1] }, 'integer', '1')).toBe(true);
  });
});

describe('the tenant literal follows the tenant type', () => {
  const typed = (type: 'text' | 'uuid' | 'bigint'): ReadScope => scopeVariant(WITH_COUNTRIES, { tenant_scope: { column: 'tenant_id', type } });
  const uuid = '2b1e7c1e-0f5a-4c3e-9d2b-7a1f3e5c9d01';
  runGolden(
    [
      { sql: 'SELECT id FROM orders', out: `SELECT id FROM ${orders(`'acme'::text`)} AS orders LIMIT 201`, ctx: { scope: typed('text'), principal: principal('acme') } },
      { sql: 'SELECT id FROM orders', out: `SELECT id FROM ${orders(`'o''brien'::text`)} AS orders LIMIT 201`, ctx: { scope: typed('text'), principal: principal("o'brien") } },
      { sql: 'SELECT id FROM orders', out: `SELECT id FROM ${orders(`E'a\\\\b'::text`)} AS orders LIMIT 201`, ctx: { scope: typed('text'), principal: principal('a\\b') } },
      { sql: 'SELECT id FROM orders', out: `SELECT id FROM ${orders(`'x'' OR true --'::text`)} AS orders LIMIT 201`, ctx: { scope: typed('text'), principal: principal("x' OR true --") } },
      { sql: 'SELECT id FROM orders', out: `SELECT id FROM ${orders(`'${uuid}'::uuid`)} AS orders LIMIT 201`, ctx: { scope: typed('uuid'), principal: principal(uuid) } },
      { sql: 'SELECT id FROM orders', out: `SELECT id FROM ${orders(`CAST('9007199254740993' AS bigint)`)} AS orders LIMIT 201`, ctx: { scope: typed('bigint'), principal: principal('9007199254740993') } },
      { sql: "SELECT id FROM orders WHERE tenant_id = 'acme'", out: `SELECT id FROM ${orders(`'acme'::text`)} AS orders WHERE tenant_id = 'acme' LIMIT 201`, flags: [], ctx: { scope: typed('text'), principal: principal('acme') } },
      { sql: "SELECT id FROM orders WHERE tenant_id = 'ACME'", out: `SELECT id FROM ${orders(`'acme'::text`)} AS orders WHERE tenant_id = 'ACME' LIMIT 201`, flags: ['tenant_forged'], ctx: { scope: typed('text'), principal: principal('acme') } },
      { sql: `SELECT id FROM orders WHERE tenant_id = '${uuid.toUpperCase()}'`, out: `SELECT id FROM ${orders(`'${uuid}'::uuid`)} AS orders WHERE tenant_id = '${uuid.toUpperCase()}' LIMIT 201`, flags: [], ctx: { scope: typed('uuid'), principal: principal(uuid) } },
      // An id that does not fit the type never reaches the SQL.
      { sql: 'SELECT id FROM orders', err: 'internal_error', ctx: { principal: principal('1 OR true') } },
      { sql: 'SELECT id FROM orders', err: 'internal_error', ctx: { principal: principal('99999999999') } },
      { sql: 'SELECT id FROM orders', err: 'internal_error', ctx: { scope: typed('uuid'), principal: principal("2b1e7c1e'--") } },
      { sql: 'SELECT id FROM orders', err: 'internal_error', ctx: { principal: undefined } },
      // A global table needs no tenant, so any principal reads it the same way.
      { sql: 'SELECT * FROM countries', out: `SELECT * FROM ${COUNTRIES} AS countries LIMIT 201`, ctx: { principal: principal('7') } },
    ],
    base,
  );
});

describe('mask strategies and row filters', () => {
  const masked = scopeVariant(WITH_COUNTRIES, {
    mask_fields: [
      { field: 'customers.email', strategy: 'email' },
      { field: 'customers.name', strategy: 'null' },
      { field: 'orders.total_cents', strategy: 'last4' },
      { field: 'orders.status', strategy: 'partial' },
      { field: 'countries.name', strategy: 'phone' },
    ],
  });
  const filtered = scopeVariant(WITH_COUNTRIES, {
    models: ['customers', { table: 'orders', row_filter: "status <> 'cancelled' AND total_cents > 0" }, { table: 'countries', row_filter: "code <> 'zz' OR name IS NULL" }],
  });
  const badFilter = (row_filter: string): ReadScope => scopeVariant(WITH_COUNTRIES, { models: [{ table: 'orders', row_filter }] });
  runGolden(
    [
      {
        sql: 'SELECT name, total_cents, status FROM customers, orders',
        out:
          `SELECT name, total_cents, status FROM ( SELECT id, tenant_id, CAST(NULL AS varchar(120)) AS name, CAST(CASE WHEN strpos(email, '@') = 0 THEN '***' ELSE ("left"(email, 1) || '***@') || split_part(email, '@', -1) END AS varchar(120)) AS email, phone FROM public.customers WHERE tenant_id = '1'::int OFFSET 0 ) AS customers, ` +
          `( SELECT id, tenant_id, customer_id, CAST(repeat('*', length(total_cents::text) - 4) || "right"(total_cents::text, 4) AS text) AS total_cents, CAST(CASE WHEN length(status) <= 4 THEN repeat('*', length(status)) ELSE ("left"(status, 2) || repeat('*', length(status) - 4)) || "right"(status, 2) END AS varchar(20)) AS status, created_at FROM public.orders WHERE tenant_id = '1'::int OFFSET 0 ) AS orders LIMIT 201`,
        ctx: { scope: masked },
      },
      {
        sql: 'SELECT name FROM countries',
        out: `SELECT name FROM ( SELECT code, CAST(CASE WHEN length(name) <= 4 THEN repeat('*', length(name)) ELSE ("left"(name, 2) || repeat('*', length(name) - 4)) || "right"(name, 2) END AS text) AS name FROM public.countries ) AS countries LIMIT 201`,
        ctx: { scope: masked },
      },
      {
        sql: 'SELECT * FROM orders',
        out: `SELECT * FROM ( SELECT id, tenant_id, customer_id, total_cents, status, created_at FROM public.orders WHERE tenant_id = '1'::int AND (status <> 'cancelled' AND total_cents > 0) OFFSET 0 ) AS orders LIMIT 201`,
        ctx: { scope: filtered },
      },
      {
        sql: 'SELECT * FROM countries',
        out: `SELECT * FROM ( SELECT code, name FROM public.countries WHERE code <> 'zz' OR name IS NULL OFFSET 0 ) AS countries LIMIT 201`,
        ctx: { scope: filtered },
      },
      // A row filter is one expression: anything that would escape it is a policy error, never SQL.
      { sql: 'SELECT * FROM orders', err: 'internal_error', ctx: { scope: badFilter('true) OR (true') } },
      { sql: 'SELECT * FROM orders', err: 'internal_error', ctx: { scope: badFilter('true; DELETE FROM orders') } },
      { sql: 'SELECT * FROM orders', err: 'internal_error', ctx: { scope: badFilter('true LIMIT 1') } },
      { sql: 'SELECT * FROM orders', err: 'internal_error', ctx: { scope: badFilter('true UNION SELECT 1') } },
      // A comment cannot swallow what follows: the filter is spliced as a node, not pasted as text.
      { sql: 'SELECT * FROM orders', out: `SELECT * FROM ${ORDERS.replace("'1'::int", "'1'::int AND true")} AS orders LIMIT 201`, ctx: { scope: badFilter('true -- ') } },
    ],
    base,
  );

  test('information_schema.columns reports the type the agent sees and the strategy', () => {
    const result = analyze("SELECT * FROM information_schema.columns WHERE table_name = 'orders'", { ...base, scope: masked, protocol: 'simple' });
    if (!result.ok) throw new Error(result.error.message);
    // A masked integer reads as text, with text's facts; the null strategy makes the column nullable.
    expect(result.sql).toContain(infoColumnRow('orders', 'total_cents', 4, false, 'text', 'last4'));
    expect(result.sql).toContain(infoColumnRow('customers', 'name', 3, true, 'character varying(120)', 'null'));
  });
});

describe('the quickstart policy file', () => {
  const quickstart = scopeFromFile(QUICKSTART);
  runGolden(
    [
      { sql: 'SELECT id, email FROM customers', out: `SELECT id, email FROM ${CUSTOMERS} AS customers LIMIT 201` },
      // countries is registered only in the test fixture.
      { sql: 'SELECT * FROM countries', err: 'model_not_allowed', message: 'relation "countries" does not exist' },
      { sql: 'SELECT table_name FROM information_schema.tables', out: `SELECT table_name FROM ( VALUES ${infoTableRow('public', 'customers')}, ${infoTableRow('public', 'orders')} ) AS tables(${INFO_TABLE_NAMES}) LIMIT 201` },
    ],
    { ...base, scope: quickstart },
  );
});

/** information_schema.columns' typed NULLs: the cardinal_number columns are integers, the rest text. */
const INT_COLUMNS = new Set([4, 8, 9, 10, 11, 12, 13, 15, 31]);
const EMPTY_COLUMNS = INFO_COLUMN_NAMES.split(', ').map((_, i) => (INT_COLUMNS.has(i) ? 'NULL::int' : 'NULL::text')).join(', ');

describe('information_schema with nothing visible', () => {
  const bare = scopeVariant(WITH_COUNTRIES, { models: ['countries'], tenant_scope: undefined, deny_fields: ['*'], mask_fields: [] });
  const empty: ReadScope = { ...bare, tables: new Map(), resolve: bare.resolve };
  runGolden(
    [
      {
        sql: 'SELECT * FROM information_schema.columns',
        out: `SELECT * FROM ( SELECT ${EMPTY_COLUMNS} WHERE false ) AS columns(${INFO_COLUMN_NAMES}) LIMIT 201`,
        ctx: { scope: bare },
      },
      { sql: 'SELECT count(*) FROM countries', out: 'SELECT count(*) FROM ( SELECT FROM public.countries ) AS countries LIMIT 201', ctx: { scope: bare } },
      {
        sql: 'SELECT table_name FROM information_schema.tables',
        out: `SELECT table_name FROM ( SELECT ${Array(12).fill('NULL::text').join(', ')} WHERE false ) AS tables(${INFO_TABLE_NAMES}) LIMIT 201`,
        ctx: { scope: empty },
      },
    ],
    base,
  );
});

describe('rewriteReads is pure', () => {
  beforeAll(() => initAnalysis());
  const ctx = (tenant: string, extra: Partial<AnalysisContext> = {}): AnalysisContext => ({ protocol: 'simple', ...base, principal: principal(tenant), ...extra });
  const classified = (sql: string, c: AnalysisContext) => classify(parseStatements(sql)[0], c);
  const SQL = "WITH x AS (SELECT * FROM orders) SELECT c, (SELECT count(*) FROM x) FROM customers c WHERE email LIKE 'a%' AND tenant_id = 2 LIMIT $1";

  test('the input tree is never modified', () => {
    const stmt = classified(SQL, ctx('1'));
    const before = JSON.stringify(stmt);
    const out = rewriteReads(stmt, ctx('1'));
    expect(JSON.stringify(stmt)).toBe(before);
    expect(out.stmt).not.toBe(stmt.stmt);
    expect(out.flags).toEqual(['tenant_forged']);
    expect(stmt.flags).toBeUndefined();
  });

  test('results do not share nodes with each other or with cached templates', () => {
    const first = rewriteReads(classified(SQL, ctx('1')), ctx('1'));
    const snapshot = JSON.stringify(first.stmt);
    const other = rewriteReads(classified(SQL, ctx('2')), ctx('2'));
    expect(JSON.stringify(other.stmt)).not.toBe(snapshot);
    // Scribble over a result: later results must not see it.
    const scribble = (v: unknown): void => {
      if (v && typeof v === 'object') for (const [k, child] of Object.entries(v)) if (k === 'sval') (v as Record<string, unknown>)[k] = 'X'; else scribble(child);
    };
    scribble(other.stmt);
    const again = rewriteReads(classified(SQL, ctx('1')), ctx('1'));
    expect(JSON.stringify(again.stmt)).toBe(snapshot);
  });

  test('without a scope the tree passes through untouched', () => {
    const stmt = classified('SELECT * FROM internal_notes', { protocol: 'simple' });
    expect(rewriteReads(stmt, { protocol: 'simple' })).toBe(stmt);
    const result = analyze('SELECT * FROM internal_notes', { protocol: 'simple' });
    expect(result.ok && result.sql).toBe('SELECT * FROM internal_notes');
  });

  test('an explicit rewrite step in the context wins', () => {
    const identity = (s: { stmt: Node }) => s;
    const result = analyze('SELECT * FROM internal_notes', { ...ctx('1'), rewrite: identity as never });
    expect(result.ok && result.sql).toBe('SELECT * FROM internal_notes');
  });
});

describe('the database name is the one the agent connected to', () => {
  // The fixture's upstream database is "app"; this agent connected as "agentdb".
  const agent = { ...principal('1'), database: 'agentdb' };
  const allowing = scopeVariant(WITH_COUNTRIES, { allow_functions: ['current_database'] });
  runGolden(
    [
      {
        sql: 'SELECT table_catalog FROM information_schema.tables',
        out: `SELECT table_catalog FROM ( VALUES ${['countries', 'customers', 'orders'].map((t) => infoTableRow('public', t).replace("'app'", "'agentdb'")).join(', ')} ) AS tables(${INFO_TABLE_NAMES}) LIMIT 201`,
      },
      { sql: 'SELECT current_database()', out: "SELECT CAST('agentdb' AS name) AS current_database LIMIT 201" },
      { sql: 'SELECT CURRENT_CATALOG', err: 'function_not_allowed' },
      { sql: 'SELECT current_database()', out: "SELECT CAST('agentdb' AS name) AS current_database LIMIT 201", ctx: { scope: allowing } },
      { sql: 'SELECT pg_catalog.current_database() AS db, name FROM countries', out: `SELECT CAST('agentdb' AS name) AS db, name FROM ${COUNTRIES} AS countries LIMIT 201`, ctx: { scope: allowing } },
      // Without a connected name (no session), NULL rather than the upstream name.
      { sql: 'SELECT current_database()', out: 'SELECT CAST(NULL AS name) AS current_database LIMIT 201', ctx: { scope: allowing, principal: { ...agent, database: undefined } } },
    ],
    { ...base, principal: agent },
  );

  test('no catalog column names the upstream database', () => {
    const result = analyze('SELECT * FROM information_schema.columns', { ...base, principal: agent, protocol: 'simple' });
    if (!result.ok) throw new Error(result.error.message);
    expect(result.sql).toContain("'agentdb'");
    expect(result.sql).not.toContain("'app'");
  });
});

describe('information_schema.columns computes the standard facts from the catalog', () => {
  beforeAll(() => initAnalysis());
  const catalog = quickstartCatalog();
  const countries = catalog.relations.get('public.countries')!;
  const extra: Array<[string, string, number, string]> = [
    ['price', 'numeric(10,2)', 1700, 'numeric'],
    ['amount', 'numeric', 1700, 'numeric'],
    ['big', 'bigint', 20, 'int8'],
    ['ratio', 'double precision', 701, 'float8'],
    ['at', 'timestamp(3) with time zone', 1184, 'timestamptz'],
    ['span', 'interval year to month', 1186, 'interval'],
    ['mood', 'mood', 90000, 'mood'],
  ];
  extra.forEach(([name, type, typeOid, udt], i) =>
    countries.columns.push({ name, attnum: 3 + i, type, typeOid, notNull: false, udtSchema: udt === 'mood' ? 'public' : 'pg_catalog', udtName: udt }),
  );
  catalog.relations.get('public.orders')!.columns[0].identity = 'd';
  catalog.relations.get('public.orders')!.columns[3].stored = true;
  const scope = compileScope(loadPolicyFile(WITH_COUNTRIES), catalog);
  const facts = (table: string, column: string): string => {
    const result = analyze(`SELECT * FROM information_schema.columns WHERE table_name = '${table}' AND column_name = '${column}'`, { ...base, scope, protocol: 'simple' });
    if (!result.ok) throw new Error(result.error.message);
    const row = result.sql.split('), (').find((r) => r.includes(`'${table}', '${column}',`));
    if (!row) throw new Error(`no row for ${table}.${column}`);
    return row;
  };

  test.each([
    // data_type, character_maximum_length, character_octet_length, numeric_precision, radix, scale, datetime_precision, interval_type
    ['countries', 'price', `'numeric', NULL::int, NULL::int, 10, 10, 2, NULL::int, NULL::text`],
    ['countries', 'amount', `'numeric', NULL::int, NULL::int, NULL::int, 10, NULL::int, NULL::int, NULL::text`],
    ['countries', 'big', `'bigint', NULL::int, NULL::int, 64, 2, 0, NULL::int, NULL::text`],
    ['countries', 'ratio', `'double precision', NULL::int, NULL::int, 53, 2, NULL::int, NULL::int, NULL::text`],
    ['countries', 'at', `'timestamp with time zone', NULL::int, NULL::int, NULL::int, NULL::int, NULL::int, 3, NULL::text`],
    ['countries', 'span', `'interval', NULL::int, NULL::int, NULL::int, NULL::int, NULL::int, 6, 'YEAR TO MONTH'`],
    // A type outside pg_catalog is USER-DEFINED, named in udt_schema and udt_name.
    ['countries', 'mood', `'USER-DEFINED'`],
    ['countries', 'mood', `'app', 'public', 'mood'`],
    // is_identity, identity_generation, identity options (NULL), is_generated.
    ['orders', 'id', `'YES', 'BY DEFAULT', NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, 'NEVER'`],
    ['orders', 'total_cents', `'NO', NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, 'ALWAYS'`],
  ])('%s.%s has %s', (table, column, expected) => {
    expect(facts(table, column)).toContain(expected);
  });
});
