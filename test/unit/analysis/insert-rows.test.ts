// Golden cases for an INSERT's rows: one value per listed column (counted before any wrapper), the proxy's tenant in every row, DEFAULT.
import { gate, runGolden, type Golden } from './golden';
import { CUSTOMERS, ORDERS, principal, scopeFromFile, scopeVariant, scopeWithForeignKeys, WITH_COUNTRIES } from './rewrite-scope';

const scope = scopeFromFile(WITH_COUNTRIES);
const FK = scopeWithForeignKeys(WITH_COUNTRIES);
const base = { scope, principal: principal('1'), captureWrites: false, writeGate: gate('insert:orders', 'update:orders', 'delete:orders', 'insert:countries') };
const T = `'1'::int`;
const MORE = 'INSERT has more expressions than target columns';
const FEWER = 'INSERT has more target columns than expressions';
const checked = (v: string) =>
  `COALESCE((SELECT ormai_parent.ormai_key FROM ( SELECT id AS ormai_key FROM public.customers WHERE tenant_id = ${T} ) AS ormai_parent WHERE ormai_parent.ormai_key = ${v}), CASE WHEN ${v} IS NULL THEN NULL ELSE CAST((SELECT 'ormai:no_parent:customer_id') AS int) END)`;
/** Orders whose key the agent may choose, and countries (no tenant column) writable. */
const IDS = scopeVariant(WITH_COUNTRIES, {
  enable_writes: [
    { models: ['orders'], operations: ['create', 'update', 'delete'], require_reason: false, writable_fields: { orders: ['id', 'customer_id', 'total_cents', 'status'] } },
    { models: ['countries'], operations: ['create'], require_reason: false },
  ],
});

/** Shapes whose source gives more or fewer values than the column list names: refused as PostgreSQL refuses them, with or without a foreign key. */
const ARITY: Golden[] = [
  { sql: 'INSERT INTO orders (customer_id, total_cents) SELECT 1, 100, 2', err: 'column_count_mismatch', message: MORE },
  { sql: 'INSERT INTO orders (customer_id, total_cents) SELECT 1', err: 'column_count_mismatch', message: FEWER },
  { sql: 'INSERT INTO orders (customer_id, total_cents) VALUES (1, 100, 2)', err: 'column_count_mismatch', message: MORE },
  { sql: 'INSERT INTO orders (customer_id, total_cents) VALUES (1)', err: 'column_count_mismatch', message: FEWER },
  { sql: 'INSERT INTO orders (customer_id, total_cents) VALUES (1, 2), (1, 2, 2)', err: 'column_count_mismatch', message: 'VALUES lists must all be the same length' },
  { sql: 'INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 2, 1, 2)', err: 'column_count_mismatch', message: MORE },
  { sql: 'INSERT INTO orders (customer_id, total_cents) SELECT * FROM orders', err: 'column_count_mismatch', message: MORE },
  { sql: 'INSERT INTO orders (customer_id, total_cents) SELECT o.* FROM orders o', err: 'column_count_mismatch', message: MORE },
  { sql: 'INSERT INTO orders (customer_id, total_cents) SELECT *, 2 FROM (SELECT 1, 100) s', err: 'column_count_mismatch', message: MORE },
  { sql: 'INSERT INTO orders (customer_id, total_cents) SELECT * FROM (SELECT 1 AS a) x JOIN (SELECT 1 AS a, 2 AS b, 3 AS c) y ON true', err: 'column_count_mismatch', message: MORE },
  { sql: 'INSERT INTO orders (customer_id, total_cents) SELECT 1, 2 UNION ALL SELECT 1, 2, 2', err: 'column_count_mismatch', message: 'each UNION query must have the same number of columns' },
  { sql: 'INSERT INTO orders (customer_id, total_cents) SELECT 1, 2, 2 INTERSECT SELECT 1, 2, 2', err: 'column_count_mismatch', message: MORE },
  { sql: 'INSERT INTO orders (customer_id, total_cents) SELECT 1, 2 EXCEPT SELECT 1, 2, 2', err: 'column_count_mismatch', message: 'each EXCEPT query must have the same number of columns' },
  { sql: 'INSERT INTO orders (customer_id, total_cents) (SELECT 1, 2, 2 UNION SELECT 3, 4, 2) ORDER BY 1', err: 'column_count_mismatch', message: MORE },
  { sql: 'WITH s AS (SELECT 1, 100, 2) INSERT INTO orders (customer_id, total_cents) SELECT * FROM s', err: 'column_count_mismatch', message: MORE },
  { sql: 'WITH x AS (INSERT INTO orders (customer_id, total_cents) SELECT 1, 100, 2 RETURNING id) SELECT * FROM x', err: 'column_count_mismatch', message: MORE },
  { sql: 'WITH x AS (INSERT INTO orders (customer_id, total_cents) VALUES (1, 100, 2) RETURNING id) SELECT * FROM x', err: 'column_count_mismatch', message: MORE },
  { sql: "/*dry_run='true'*/ INSERT INTO orders (customer_id, total_cents) SELECT 1, 100, 2", err: 'column_count_mismatch', message: MORE },
  { sql: "/*dry_run='true'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 100, 2)", err: 'column_count_mismatch', message: MORE },
  { sql: 'EXPLAIN INSERT INTO orders (customer_id, total_cents) SELECT 1, 100, 2', err: 'column_count_mismatch', message: MORE },
  { sql: 'INSERT INTO orders (customer_id, total_cents) SELECT $1, $2, $3', err: 'column_count_mismatch', message: MORE },
  // What cannot be counted without running the statement is refused, not guessed.
  { sql: 'INSERT INTO orders (customer_id, total_cents) SELECT * FROM generate_series(1, 2) g, generate_series(1, 2) h', err: 'statement_not_allowed', message: 'cannot be counted' },
  { sql: 'INSERT INTO orders (customer_id, total_cents) SELECT * FROM (SELECT 1 AS a) x NATURAL JOIN (SELECT 1 AS a, 2 AS b) y', err: 'statement_not_allowed', message: 'cannot be counted' },
  { sql: 'INSERT INTO orders (customer_id, total_cents) SELECT (o).* FROM (SELECT 1, 2) o', err: 'statement_not_allowed', message: 'cannot be counted' },
  { sql: 'INSERT INTO orders (customer_id, total_cents) SELECT *', err: 'syntax_error', message: 'SELECT * with no tables specified is not valid' },
];

const cases: Golden[] = [
  ...ARITY,
  ...ARITY.map((c) => ({ ...c, ctx: { scope: FK } })),
  // Sources of the right width: `*` is counted through the policy views and CTEs, the tenant goes last.
  {
    sql: 'INSERT INTO orders (customer_id, total_cents) SELECT * FROM (SELECT 1, 100) s',
    out: `INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT ormai_source.*, ${T} FROM ( SELECT * FROM ( SELECT 1, 100 ) AS s ) AS ormai_source`,
  },
  {
    sql: 'INSERT INTO orders (customer_id, total_cents) SELECT * FROM (SELECT 1 AS a) x JOIN (SELECT 1 AS a, 2 AS b) y USING (a)',
    out: `INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT ormai_source.*, ${T} FROM ( SELECT * FROM ( SELECT 1 AS a ) AS x JOIN ( SELECT 1 AS a, 2 AS b ) AS y USING (a) ) AS ormai_source`,
  },
  {
    sql: 'WITH s(a, b) AS (SELECT customer_id, total_cents FROM orders) INSERT INTO orders (customer_id, total_cents) SELECT s.* FROM s',
    out: `WITH s(a, b) AS (SELECT customer_id, total_cents FROM ${ORDERS} AS orders) INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT ormai_source.*, ${T} FROM ( SELECT s.* FROM s ) AS ormai_source`,
  },
  {
    sql: 'INSERT INTO orders (customer_id, total_cents) SELECT id, 1 FROM customers UNION SELECT 2, 3 EXCEPT SELECT 4, 5',
    out: `INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT ormai_source.*, ${T} FROM ( (SELECT id, 1 FROM ${CUSTOMERS} AS customers UNION SELECT 2, 3) EXCEPT SELECT 4, 5 ) AS ormai_source`,
  },
  // A writing CTE's source counted through its siblings (a write's RETURNING * is its visible columns).
  {
    sql: 'WITH s AS (SELECT 1, 100), x AS (INSERT INTO orders (customer_id, total_cents) SELECT * FROM s RETURNING tenant_id) SELECT * FROM x',
    out: `WITH s AS (SELECT 1, 100), x AS (INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT ormai_source.*, ${T} FROM ( SELECT * FROM s ) AS ormai_source RETURNING tenant_id) SELECT * FROM x LIMIT 201`,
  },
  { sql: 'WITH s AS (SELECT 1, 100, 2), x AS (INSERT INTO orders (customer_id, total_cents) SELECT * FROM s RETURNING id) SELECT * FROM x', err: 'column_count_mismatch', message: MORE },
  { sql: 'WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING *), x AS (INSERT INTO orders (customer_id, total_cents) SELECT * FROM d RETURNING id) SELECT * FROM x', err: 'column_count_mismatch', message: MORE },
  { sql: 'WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING customer_id), x AS (INSERT INTO orders (customer_id, total_cents) SELECT * FROM d RETURNING id) SELECT * FROM x', err: 'column_count_mismatch', message: FEWER },
  // With a foreign key: the agent's columns are checked first, the tenant is bound outside the check.
  {
    sql: 'INSERT INTO orders (customer_id, total_cents) SELECT * FROM (SELECT 4, 1 UNION ALL SELECT 5, 2) s',
    out: `INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT ormai_source.*, ${T} FROM ( SELECT ${checked('ormai_checked.ormai_c0')}, ormai_checked.ormai_c1 FROM ( SELECT * FROM ( SELECT 4, 1 UNION ALL SELECT 5, 2 ) AS s ) AS ormai_checked(ormai_c0, ormai_c1) ) AS ormai_source`,
    ctx: { scope: FK },
  },
  // DEFAULT for the tenant column is the proxy's tenant, as when the column is left out; it never forges.
  { sql: 'INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, DEFAULT)', out: `INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, ${T})` },
  { sql: 'INSERT INTO orders (tenant_id, customer_id, total_cents) VALUES (DEFAULT, 1, 1), (1, 2, 2)', out: `INSERT INTO orders (tenant_id, customer_id, total_cents) VALUES (${T}, 1, 1), (${T}, 2, 2)` },
  { sql: 'INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, DEFAULT), (1, 1, 2)', err: 'tenant_forged' },
  { sql: 'INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, DEFAULT)', out: `INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (${checked('1')}, 1, ${T})`, ctx: { scope: FK } },
  {
    sql: "/*dry_run='true'*/ INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, DEFAULT)",
    out: `SELECT count(*) OVER () AS affected_rows, ormai_insert.* FROM ( VALUES (1, 1, ${T}) ) AS ormai_insert(customer_id, total_cents, tenant_id) LIMIT 201`,
  },
  {
    sql: 'WITH x AS (INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, DEFAULT) RETURNING tenant_id) SELECT * FROM x',
    out: `WITH x AS (INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, ${T}) RETURNING tenant_id) SELECT * FROM x LIMIT 201`,
  },
  { sql: 'INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT 1, 1, DEFAULT', err: 'tenant_forged' },
  // DEFAULT in every row is a column left out: a key the database numbers may be listed so (Drizzle, TypeORM)…
  { sql: 'INSERT INTO orders (id, customer_id, total_cents) VALUES (DEFAULT, 1, 1), (DEFAULT, 2, 2)', out: `INSERT INTO orders (id, customer_id, total_cents, tenant_id) VALUES (DEFAULT, 1, 1, ${T}), (DEFAULT, 2, 2, ${T})` },
  // …but a value in any row assigns it, and a hidden column does not exist either way.
  { sql: 'INSERT INTO orders (id, customer_id, total_cents) VALUES (DEFAULT, 1, 1), (7, 2, 2)', err: 'field_not_writable' },
  { sql: 'INSERT INTO orders (id, customer_id, total_cents) SELECT DEFAULT, 1, 1', err: 'field_not_writable' },
  { sql: 'INSERT INTO orders (tenant_id, customer_id, tenant_id) VALUES (1, 1, 1)', err: 'tenant_forged' },
  { sql: 'INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT 1, 2, 1 UNION SELECT 1, 2, 1', err: 'tenant_forged' },
  // A table without a tenant column: the count still holds, nothing is added.
  { sql: "INSERT INTO countries (code, name) VALUES ('x', 'y')", out: "INSERT INTO countries (code, name) VALUES ('x', 'y')", ctx: { scope: IDS } },
  { sql: "INSERT INTO countries (code, name) VALUES ('x', 'y', 'z')", err: 'column_count_mismatch', message: MORE, ctx: { scope: IDS } },
  { sql: "INSERT INTO countries (code, name) SELECT 'x'", err: 'column_count_mismatch', message: FEWER, ctx: { scope: IDS } },
  { sql: 'INSERT INTO countries (code, name) SELECT * FROM countries', out: `INSERT INTO countries (code, name) SELECT * FROM ( SELECT code, name FROM public.countries ) AS countries`, ctx: { scope: IDS } },
];

describe('INSERT rows under the policy', () => {
  runGolden(cases, base);
});
