// Golden cases for the read rewrite: every relation reference becomes its policy view, wherever it occurs.
import { analyze, initAnalysis } from '../../../src/analysis/pipeline';
import { gate, runGolden, type Golden } from './golden';
import { COUNTRIES, CUSTOMERS, INFO_COLUMN_NAMES, INFO_TABLE_NAMES, infoColumnRow, infoTableRow, ORDERS, principal, scopeFromFile, WITH_COUNTRIES } from './rewrite-scope';

const scope = scopeFromFile(WITH_COUNTRIES);
const base = { scope, principal: principal('1'), captureWrites: false, writeGate: gate('insert:orders', 'update:orders', 'delete:orders') };

const INFO_TABLES = `( VALUES ${['countries', 'customers', 'orders'].map((t) => infoTableRow('public', t)).join(', ')} )`;
const INFO_COLUMNS = `( VALUES ${[
  infoColumnRow('countries', 'code', 1, false, 'character(2)'),
  infoColumnRow('countries', 'name', 2, true, 'text'),
  infoColumnRow('customers', 'id', 1, false, 'integer'),
  infoColumnRow('customers', 'tenant_id', 2, false, 'integer'),
  infoColumnRow('customers', 'name', 3, false, 'character varying(120)'),
  infoColumnRow('customers', 'email', 4, false, 'character varying(120)', 'email'),
  infoColumnRow('customers', 'phone', 5, true, 'character varying(40)', 'phone'),
  infoColumnRow('orders', 'id', 1, false, 'integer'),
  infoColumnRow('orders', 'tenant_id', 2, false, 'integer'),
  infoColumnRow('orders', 'customer_id', 3, false, 'integer'),
  infoColumnRow('orders', 'total_cents', 4, false, 'integer'),
  infoColumnRow('orders', 'status', 5, false, 'character varying(20)'),
  infoColumnRow('orders', 'created_at', 6, false, 'timestamp without time zone'),
].join(', ')} )`;

const cases: Golden[] = [
  // Every policy table becomes its derived table: visible columns, masks, the tenant predicate.
  { sql: 'SELECT * FROM customers', out: `SELECT * FROM ${CUSTOMERS} AS customers LIMIT 201` },
  { sql: 'SELECT * FROM orders', out: `SELECT * FROM ${ORDERS} AS orders LIMIT 201` },
  { sql: 'SELECT * FROM countries', out: `SELECT * FROM ${COUNTRIES} AS countries LIMIT 201` },
  { sql: 'SELECT id, name FROM customers c WHERE c.id > 1', out: `SELECT id, name FROM ${CUSTOMERS} AS c WHERE c.id > 1 LIMIT 201` },
  { sql: 'SELECT * FROM customers AS c', out: `SELECT * FROM ${CUSTOMERS} AS c LIMIT 201` },
  { sql: 'TABLE customers', out: `SELECT * FROM ${CUSTOMERS} AS customers LIMIT 201` },
  { sql: 'SELECT * FROM ONLY customers', out: `SELECT * FROM ${CUSTOMERS.replace('FROM public', 'FROM ONLY public')} AS customers LIMIT 201` },
  { sql: 'SELECT * FROM customers*', out: `SELECT * FROM ${CUSTOMERS} AS customers LIMIT 201` },
  { sql: 'SELECT * FROM public.customers', out: `SELECT * FROM ${CUSTOMERS} AS customers LIMIT 201` },
  { sql: 'SELECT customers.id FROM public.customers', out: `SELECT customers.id FROM ${CUSTOMERS} AS customers LIMIT 201` },
  { sql: 'SELECT * FROM "customers"', out: `SELECT * FROM ${CUSTOMERS} AS customers LIMIT 201` },
  { sql: 'SELECT * FROM PUBLIC.Customers', out: `SELECT * FROM ${CUSTOMERS} AS customers LIMIT 201` },

  // Whole-row references see only the visible, masked columns.
  { sql: 'SELECT c FROM customers c', out: `SELECT c FROM ${CUSTOMERS} AS c LIMIT 201` },
  { sql: 'SELECT to_jsonb(c), row_to_json(c) FROM customers c', out: `SELECT to_jsonb(c), row_to_json(c) FROM ${CUSTOMERS} AS c LIMIT 201` },
  { sql: 'SELECT array_agg(c) FROM customers c', out: `SELECT array_agg(c) FROM ${CUSTOMERS} AS c LIMIT 201` },
  { sql: 'SELECT customers FROM customers', out: `SELECT customers FROM ${CUSTOMERS} AS customers LIMIT 201` },

  // Masked columns: every use reads the masked value.
  { sql: `SELECT upper(email), email || '' FROM customers WHERE email LIKE 'j%' ORDER BY email`, out: `SELECT upper(email), email || '' FROM ${CUSTOMERS} AS customers WHERE email LIKE 'j%' ORDER BY email LIMIT 201` },
  { sql: `SELECT count(*) FROM customers WHERE email = 'jane@acme.com'`, out: `SELECT count(*) FROM ${CUSTOMERS} AS customers WHERE email = 'jane@acme.com' LIMIT 201` },
  { sql: 'SELECT email, count(*) FROM customers GROUP BY email', out: `SELECT email, count(*) FROM ${CUSTOMERS} AS customers GROUP BY email LIMIT 201` },
  { sql: 'SELECT c.name FROM customers c JOIN customers d ON d.email = c.email', out: `SELECT c.name FROM ${CUSTOMERS} AS c JOIN ${CUSTOMERS} AS d ON d.email = c.email LIMIT 201` },

  // Denied columns: absent from every derived table, so PostgreSQL says the column does not exist.
  { sql: 'SELECT api_secret FROM customers', out: `SELECT api_secret FROM ${CUSTOMERS} AS customers LIMIT 201` },
  { sql: 'SELECT c.api_secret FROM customers c WHERE c.api_secret IS NOT NULL', err: 'column_not_found', message: 'column c.api_secret does not exist' },

  // Joins.
  { sql: 'SELECT c.name, o.total_cents FROM customers c JOIN orders o ON o.customer_id = c.id', out: `SELECT c.name, o.total_cents FROM ${CUSTOMERS} AS c JOIN ${ORDERS} AS o ON o.customer_id = c.id LIMIT 201` },
  { sql: `SELECT c.name, o.total_cents FROM customers c LEFT JOIN orders o ON o.customer_id = c.id AND o.status = 'paid'`, out: `SELECT c.name, o.total_cents FROM ${CUSTOMERS} AS c LEFT JOIN ${ORDERS} AS o ON o.customer_id = c.id AND o.status = 'paid' LIMIT 201` },
  { sql: 'SELECT * FROM customers NATURAL JOIN orders', out: `SELECT * FROM ${CUSTOMERS} AS customers NATURAL JOIN ${ORDERS} AS orders LIMIT 201` },
  { sql: 'SELECT * FROM orders JOIN customers USING (tenant_id)', out: `SELECT * FROM ${ORDERS} AS orders JOIN ${CUSTOMERS} AS customers USING (tenant_id) LIMIT 201` },
  { sql: 'SELECT * FROM customers c, orders o WHERE o.customer_id = c.id', out: `SELECT * FROM ${CUSTOMERS} AS c, ${ORDERS} AS o WHERE o.customer_id = c.id LIMIT 201` },
  { sql: 'SELECT * FROM countries c JOIN customers cu ON cu.name = c.name', out: `SELECT * FROM ${COUNTRIES} AS c JOIN ${CUSTOMERS} AS cu ON cu.name = c.name LIMIT 201` },
  { sql: 'SELECT * FROM (customers c JOIN orders o ON o.customer_id = c.id) j', out: `SELECT * FROM (${CUSTOMERS} AS c JOIN ${ORDERS} AS o ON o.customer_id = c.id) j LIMIT 201` },

  // Subqueries in every clause.
  { sql: 'SELECT name, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) FROM customers c', out: `SELECT name, (SELECT count(*) FROM ${ORDERS} AS o WHERE o.customer_id = c.id) FROM ${CUSTOMERS} AS c LIMIT 201` },
  { sql: 'SELECT * FROM customers WHERE id IN (SELECT customer_id FROM orders)', out: `SELECT * FROM ${CUSTOMERS} AS customers WHERE id IN (SELECT customer_id FROM ${ORDERS} AS orders) LIMIT 201` },
  { sql: 'SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)', out: `SELECT * FROM ${CUSTOMERS} AS c WHERE EXISTS (SELECT 1 FROM ${ORDERS} AS o WHERE o.customer_id = c.id) LIMIT 201` },
  { sql: 'SELECT * FROM customers WHERE id = ANY (SELECT customer_id FROM orders)', out: `SELECT * FROM ${CUSTOMERS} AS customers WHERE id = ANY (SELECT customer_id FROM ${ORDERS} AS orders) LIMIT 201` },
  { sql: 'SELECT * FROM customers WHERE id > ALL (SELECT customer_id FROM orders)', out: `SELECT * FROM ${CUSTOMERS} AS customers WHERE id > ALL (SELECT customer_id FROM ${ORDERS} AS orders) LIMIT 201` },
  { sql: 'SELECT status, count(*) FROM orders GROUP BY status HAVING count(*) > (SELECT count(*) FROM customers)', out: `SELECT status, count(*) FROM ${ORDERS} AS orders GROUP BY status HAVING count(*) > ((SELECT count(*) FROM ${CUSTOMERS} AS customers)) LIMIT 201` },
  { sql: 'SELECT * FROM customers ORDER BY (SELECT max(total_cents) FROM orders)', out: `SELECT * FROM ${CUSTOMERS} AS customers ORDER BY (SELECT max(total_cents) FROM ${ORDERS} AS orders) LIMIT 201` },
  { sql: 'SELECT * FROM customers c JOIN orders o ON o.customer_id IN (SELECT id FROM customers)', out: `SELECT * FROM ${CUSTOMERS} AS c JOIN ${ORDERS} AS o ON o.customer_id IN (SELECT id FROM ${CUSTOMERS} AS customers) LIMIT 201` },
  { sql: 'SELECT * FROM (SELECT * FROM orders WHERE total_cents > 100) big', out: `SELECT * FROM ( SELECT * FROM ${ORDERS} AS orders WHERE total_cents > 100 ) AS big LIMIT 201` },
  { sql: 'SELECT CASE WHEN EXISTS (SELECT 1 FROM countries) THEN 1 END', out: `SELECT CASE WHEN EXISTS (SELECT 1 FROM ${COUNTRIES} AS countries) THEN 1 END LIMIT 201` },
  { sql: 'SELECT * FROM customers c, LATERAL (SELECT * FROM orders o WHERE o.customer_id = c.id ORDER BY total_cents DESC LIMIT 1) l', out: `SELECT * FROM ${CUSTOMERS} AS c, LATERAL ( SELECT * FROM ${ORDERS} AS o WHERE o.customer_id = c.id ORDER BY total_cents DESC LIMIT 1 ) AS l LIMIT 201` },
  { sql: 'SELECT * FROM customers c LEFT JOIN LATERAL (SELECT count(*) AS n FROM orders o WHERE o.customer_id = c.id) l ON true', out: `SELECT * FROM ${CUSTOMERS} AS c LEFT JOIN LATERAL ( SELECT count(*) AS n FROM ${ORDERS} AS o WHERE o.customer_id = c.id ) AS l ON true LIMIT 201` },
  { sql: 'SELECT e.key FROM customers c, LATERAL jsonb_each(to_jsonb(c)) e', out: `SELECT e.key FROM ${CUSTOMERS} AS c, LATERAL jsonb_each(to_jsonb(c)) AS e LIMIT 201` },
  { sql: 'SELECT * FROM generate_series(1, (SELECT count(*) FROM orders)) g', out: `SELECT * FROM generate_series(1, (SELECT count(*) FROM ${ORDERS} AS orders)) AS g LIMIT 201` },

  // Set operations: each arm rewritten, the cap on the node above them.
  { sql: 'SELECT id FROM customers UNION SELECT id FROM orders', out: `SELECT id FROM ${CUSTOMERS} AS customers UNION SELECT id FROM ${ORDERS} AS orders LIMIT 201` },
  { sql: 'SELECT id FROM customers INTERSECT SELECT customer_id FROM orders', out: `SELECT id FROM ${CUSTOMERS} AS customers INTERSECT SELECT customer_id FROM ${ORDERS} AS orders LIMIT 201` },
  { sql: 'SELECT id FROM customers EXCEPT SELECT customer_id FROM orders', out: `SELECT id FROM ${CUSTOMERS} AS customers EXCEPT SELECT customer_id FROM ${ORDERS} AS orders LIMIT 201` },
  { sql: 'SELECT id FROM customers UNION ALL (SELECT id FROM orders INTERSECT SELECT customer_id FROM orders)', out: `SELECT id FROM ${CUSTOMERS} AS customers UNION ALL (SELECT id FROM ${ORDERS} AS orders INTERSECT SELECT customer_id FROM ${ORDERS} AS orders) LIMIT 201` },

  // CTEs: a CTE name shadows a table; a non-recursive CTE's body sees the real table; schema-qualified names are never CTEs.
  { sql: 'WITH customers AS (SELECT * FROM customers WHERE id < 3) SELECT * FROM customers', out: `WITH customers AS (SELECT * FROM ${CUSTOMERS} AS customers WHERE id < 3) SELECT * FROM customers LIMIT 201` },
  { sql: 'WITH c AS (SELECT * FROM customers) SELECT * FROM c JOIN orders o ON o.customer_id = c.id', out: `WITH c AS (SELECT * FROM ${CUSTOMERS} AS customers) SELECT * FROM c JOIN ${ORDERS} AS o ON o.customer_id = c.id LIMIT 201` },
  { sql: 'WITH a AS (SELECT * FROM orders), b AS (SELECT * FROM a) SELECT * FROM b', out: `WITH a AS (SELECT * FROM ${ORDERS} AS orders), b AS (SELECT * FROM a) SELECT * FROM b LIMIT 201` },
  { sql: 'WITH orders AS (SELECT 1 AS id) SELECT * FROM public.orders', out: `WITH orders AS (SELECT 1 AS id) SELECT * FROM ${ORDERS} AS orders LIMIT 201` },
  { sql: 'WITH o AS (SELECT * FROM orders) SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM o WHERE o.customer_id = c.id)', out: `WITH o AS (SELECT * FROM ${ORDERS} AS orders) SELECT * FROM ${CUSTOMERS} AS c WHERE EXISTS (SELECT 1 FROM o WHERE o.customer_id = c.id) LIMIT 201` },
  { sql: 'SELECT * FROM (WITH orders AS (SELECT 1 AS id) SELECT * FROM orders) s, orders', out: `SELECT * FROM ( WITH orders AS (SELECT 1 AS id) SELECT * FROM orders ) AS s, ${ORDERS} AS orders LIMIT 201` },
  { sql: 'WITH a AS (SELECT * FROM b), b AS (SELECT 1 AS x) SELECT * FROM a', err: 'model_not_allowed', message: 'relation "b" does not exist' },
  { sql: 'WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT 1 AS x) SELECT * FROM a', out: 'WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT 1 AS x) SELECT * FROM a LIMIT 201' },
  { sql: 'WITH RECURSIVE r AS (SELECT id, customer_id FROM orders UNION ALL SELECT o.id, o.customer_id FROM orders o JOIN r ON r.id = o.id + 1) SELECT * FROM r', out: `WITH RECURSIVE r AS (SELECT id, customer_id FROM ${ORDERS} AS orders UNION ALL SELECT o.id, o.customer_id FROM ${ORDERS} AS o JOIN r ON r.id = (o.id + 1)) SELECT * FROM r LIMIT 201` },
  { sql: 'WITH RECURSIVE customers AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM customers WHERE n < 3) SELECT * FROM customers', out: 'WITH RECURSIVE customers AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM customers WHERE n < 3) SELECT * FROM customers LIMIT 201' },
  { sql: 'WITH x AS (SELECT 1 AS id) SELECT * FROM customers WHERE id IN (WITH customers AS (SELECT 2 AS id) SELECT id FROM customers)', out: `WITH x AS (SELECT 1 AS id) SELECT * FROM ${CUSTOMERS} AS customers WHERE id IN (WITH customers AS (SELECT 2 AS id) SELECT id FROM customers) LIMIT 201` },

  // information_schema.tables and .columns come from the policy.
  { sql: `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`, out: `SELECT table_name FROM ${INFO_TABLES} AS tables(${INFO_TABLE_NAMES}) WHERE table_schema = 'public' LIMIT 201` },
  { sql: 'SELECT * FROM information_schema.tables t', out: `SELECT * FROM ${INFO_TABLES} AS t(${INFO_TABLE_NAMES}) LIMIT 201` },
  { sql: `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'customers'`, out: `SELECT column_name, data_type FROM ${INFO_COLUMNS} AS columns(${INFO_COLUMN_NAMES}) WHERE table_name = 'customers' LIMIT 201` },

  // Refused: system catalogs, unregistered or nonexistent tables, names that are not the registered ones.
  { sql: 'SELECT * FROM pg_class', err: 'catalog_not_allowed', message: 'system catalog "pg_class" is not available' },
  { sql: 'SELECT * FROM pg_catalog.pg_class', err: 'catalog_not_allowed', message: 'system catalog "pg_catalog.pg_class" is not available' },
  { sql: 'SELECT * FROM pg_catalog.pg_tables', err: 'catalog_not_allowed', message: 'system catalog "pg_catalog.pg_tables" is not available' },
  { sql: 'SELECT * FROM pg_stat_activity', err: 'catalog_not_allowed', message: 'system catalog "pg_stat_activity" is not available' },
  { sql: 'SELECT name, setting FROM pg_settings', err: 'catalog_not_allowed', message: 'system catalog "pg_settings" is not available' },
  { sql: 'SELECT * FROM information_schema.schemata', err: 'catalog_not_allowed', message: 'system catalog "information_schema.schemata" is not available' },
  { sql: 'SELECT * FROM information_schema.table_privileges', err: 'catalog_not_allowed', message: 'system catalog "information_schema.table_privileges" is not available' },
  { sql: 'SELECT * FROM pg_toast.pg_toast_1259', err: 'catalog_not_allowed', message: 'system catalog "pg_toast.pg_toast_1259" is not available' },
  { sql: `SELECT n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', '') AND n.nspname <> 'pg_catalog' ORDER BY 1, 2`, err: 'catalog_not_allowed', message: 'system catalog "pg_catalog.pg_class" is not available' },
  // A catalog query that also joins more relations than the policy allows: the catalog is the reason given.
  {
    sql: 'SELECT 1 FROM pg_class c JOIN pg_namespace n ON true JOIN pg_attribute a ON true JOIN pg_type t ON true JOIN pg_attrdef d ON true JOIN pg_description x ON true JOIN pg_index i ON true',
    err: 'catalog_not_allowed',
    message: 'system catalog "pg_class" is not available',
  },
  // pg_namespace is served through the policy: the schemas of visible tables and the system ones, no ACLs.
  {
    sql: 'SELECT nspname FROM pg_namespace n',
    out: "SELECT nspname FROM ( SELECT n.oid, n.nspname, n.nspowner, CAST(NULL AS aclitem[]) AS nspacl FROM pg_catalog.pg_namespace AS n WHERE n.nspname IN ('information_schema', 'pg_catalog', 'public') OFFSET 0 ) AS n LIMIT 201",
  },
  { sql: 'SELECT * FROM internal_notes', err: 'model_not_allowed', message: 'relation "internal_notes" does not exist' },
  { sql: 'SELECT * FROM nonexistent', err: 'model_not_allowed', message: 'relation "nonexistent" does not exist' },
  { sql: 'SELECT * FROM public.internal_notes', err: 'model_not_allowed', message: 'relation "public.internal_notes" does not exist' },
  { sql: 'SELECT * FROM other.customers', err: 'model_not_allowed', message: 'relation "other.customers" does not exist' },
  { sql: 'SELECT * FROM "Customers"', err: 'model_not_allowed', message: 'relation "Customers" does not exist' },
  { sql: 'SELECT * FROM customers WHERE id IN (SELECT id FROM internal_notes)', err: 'model_not_allowed', message: 'relation "internal_notes" does not exist' },
  { sql: 'WITH x AS (SELECT * FROM internal_notes) SELECT 1', err: 'model_not_allowed', message: 'relation "internal_notes" does not exist' },
  { sql: 'SELECT * FROM tables', err: 'model_not_allowed', message: 'relation "tables" does not exist' },
  { sql: 'SELECT * FROM app.public.customers', err: 'statement_not_understood', message: 'database-qualified name "app.public.customers" is not supported' },

  // Forms whose meaning the derived table would change.
  { sql: 'SELECT * FROM customers AS c(a, b)', err: 'statement_not_understood', message: 'column aliases on "customers" are not supported' },
  { sql: 'SELECT * FROM information_schema.tables AS t(a)', err: 'statement_not_understood', message: 'column aliases on "information_schema.tables" are not supported' },
  { sql: 'SELECT * FROM customers TABLESAMPLE system (10)', err: 'statement_not_understood', message: 'TABLESAMPLE on "customers" is not supported' },
  // schema.table.column names the table's policy view when the table is read unaliased; otherwise it is refused.
  { sql: 'SELECT public.customers.id FROM public.customers', out: `SELECT customers.id FROM ${CUSTOMERS} AS customers LIMIT 201` },
  { sql: 'SELECT public.customers.* FROM public.customers', out: `SELECT customers.* FROM ${CUSTOMERS} AS customers LIMIT 201` },
  { sql: 'SELECT public.customers.id FROM public.customers c', err: 'statement_not_understood', message: 'column references qualified with a schema (schema.table.column) are not supported' },

  // Writes: see rewrite-writes.test.ts.

  // EXPLAIN: the inner statement rewritten, no row cap.
  { sql: 'EXPLAIN SELECT * FROM orders', out: `EXPLAIN (COSTS OFF) SELECT * FROM ${ORDERS} AS orders` },
  { sql: 'EXPLAIN (FORMAT JSON) SELECT * FROM orders', out: `EXPLAIN (FORMAT JSON, COSTS OFF) SELECT * FROM ${ORDERS} AS orders` },
  // Estimates come from statistics over every tenant's rows.
  { sql: 'EXPLAIN (COSTS) SELECT * FROM orders', err: 'statement_not_allowed', message: 'EXPLAIN with COSTS is not allowed' },
  { sql: 'EXPLAIN (COSTS true) SELECT * FROM orders', err: 'statement_not_allowed', message: 'EXPLAIN with COSTS is not allowed' },
  // PostgreSQL applies repeated options in order: the last COSTS wins.
  { sql: 'EXPLAIN (COSTS OFF, COSTS ON) SELECT * FROM orders', err: 'statement_not_allowed', message: 'EXPLAIN with COSTS is not allowed' },
  { sql: 'EXPLAIN (COSTS false, COSTS) SELECT * FROM orders', err: 'statement_not_allowed', message: 'EXPLAIN with COSTS is not allowed' },
  { sql: 'EXPLAIN (COSTS OFF, COSTS false) SELECT * FROM orders', out: `EXPLAIN (COSTS OFF, COSTS FALSE) SELECT * FROM ${ORDERS} AS orders` },
  { sql: 'EXPLAIN (COSTS OFF) SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id', out: `EXPLAIN (COSTS OFF) SELECT * FROM ${CUSTOMERS} AS c JOIN ${ORDERS} AS o ON o.customer_id = c.id` },
  // The plan of a catalog read would show how the proxy serves it (the upstream role, oids).
  { sql: 'EXPLAIN SELECT * FROM pg_class', err: 'statement_not_allowed', message: 'EXPLAIN of a catalog read is not allowed' },
  { sql: 'EXPLAIN SELECT * FROM information_schema.tables', err: 'statement_not_allowed', message: 'EXPLAIN of a catalog read is not allowed' },
  { sql: 'EXPLAIN SELECT o.id FROM orders o JOIN pg_namespace n ON true', err: 'statement_not_allowed', message: 'EXPLAIN of a catalog read is not allowed' },

  // Statements without relations are unchanged except for the cap.
  { sql: 'SELECT 1', out: 'SELECT 1 LIMIT 201' },
  { sql: 'VALUES (1), (2)', out: 'VALUES (1), (2) LIMIT 201' },
  { sql: 'SELECT now()', out: 'SELECT now() LIMIT 201' },

];

runGolden(cases, base);

describe('what the agent cannot learn', () => {
  beforeAll(() => initAnalysis());
  const run = (sql: string) => analyze(sql, { ...base, protocol: 'extended' });

  test.each([
    'SELECT * FROM customers',
    'SELECT c FROM customers c',
    'SELECT to_jsonb(c) FROM customers c JOIN orders o ON o.customer_id = c.id',
    'SELECT * FROM information_schema.columns',
    'WITH x AS (SELECT * FROM customers) SELECT * FROM x',
  ])('no derived table selects api_secret: %s', (sql) => {
    const result = run(sql);
    if (!result.ok) throw new Error(result.error.message);
    expect(result.sql).not.toMatch(/api_secret/i);
  });

  test("the agent's own reference to a denied column is forwarded as written, for PostgreSQL to reject", () => {
    const result = run('SELECT api_secret FROM customers');
    if (!result.ok) throw new Error(result.error.message);
    expect(result.sql.match(/api_secret/g)).toHaveLength(1);
    expect(result.sql.startsWith('SELECT api_secret FROM (')).toBe(true);
  });

  test('an unregistered table and a nonexistent one give the same error', () => {
    const hidden = run('SELECT * FROM internal_notes');
    const missing = run('SELECT * FROM internal_notez');
    if (hidden.ok || missing.ok) throw new Error('expected refusals');
    expect(hidden.error.toFields()).toEqual({
      ...missing.error.toFields(),
      message: missing.error.toFields().message.replace('internal_notez', 'internal_notes'),
    });
    expect(hidden.error.sqlstate).toBe('42P01');
  });

  test('deep trees are rewritten or refused as not understood, never an internal error', () => {
    for (const n of [300, 800, 3000]) {
      const result = run(`SELECT ${'(SELECT '.repeat(n)}id FROM orders${')'.repeat(n)}`);
      if (!result.ok) expect(['statement_not_understood', 'statement_too_complex']).toContain(result.error.code);
      else expect(result.sql.split('FROM public.orders WHERE tenant_id').length).toBe(2);
    }
  });

  test('refusals never name hidden tables or columns', () => {
    for (const sql of ['SELECT * FROM pg_class', 'SELECT * FROM nonexistent', 'SELECT * FROM customers AS c(a, b)']) {
      const result = run(sql);
      if (result.ok) throw new Error(`expected a refusal for ${sql}`);
      expect(JSON.stringify(result.error.toFields())).not.toMatch(/internal_notes|api_secret/);
    }
  });
});
