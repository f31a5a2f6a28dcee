// Golden cases for attribute notation: `q.f` and `(expr).f` naming no column are calls f(q) in PostgreSQL, under the allow-list.
import { gate, runGolden, type Golden } from './golden';
import { COUNTRIES, CUSTOMERS, ORDERS, principal, scopeFromFile, scopeVariant, WITH_COUNTRIES } from './rewrite-scope';

const scope = scopeFromFile(WITH_COUNTRIES);
const base = { scope, principal: principal('1'), captureWrites: false, writeGate: gate('insert:orders', 'update:orders', 'delete:orders') };
const allowing = scopeVariant(WITH_COUNTRIES, { allow_functions: ['pg_column_size'] });

const cases: Golden[] = [
  // A name that is no visible column of the entry would call a function on the whole row.
  { sql: 'SELECT c.pg_column_size FROM customers c', err: 'column_not_found', message: 'column c.pg_column_size does not exist' },
  { sql: 'SELECT c.hash_record FROM customers c', err: 'column_not_found', message: 'column c.hash_record does not exist' },
  { sql: 'SELECT count(*) FROM customers c WHERE c.pg_column_size > 0', err: 'column_not_found' },
  { sql: 'SELECT customers.pg_column_size FROM customers', err: 'column_not_found', message: 'column customers.pg_column_size does not exist' },
  { sql: 'SELECT public.customers.pg_column_size FROM customers', err: 'column_not_found' },
  { sql: 'SELECT c.api_secret FROM customers c', err: 'column_not_found', message: 'column c.api_secret does not exist' },
  // System columns are not columns of the policy view.
  { sql: 'SELECT o.ctid FROM orders o', err: 'column_not_found', message: 'column o.ctid does not exist' },
  { sql: 'SELECT o.xmin, o.tableoid FROM orders o', err: 'column_not_found' },
  // Visible columns, and allowed functions in attribute notation, pass.
  { sql: 'SELECT c.name, c.email FROM customers c', out: `SELECT c.name, c.email FROM ${CUSTOMERS} AS c LIMIT 201` },
  { sql: 'SELECT c.to_jsonb FROM customers c', out: `SELECT c.to_jsonb FROM ${CUSTOMERS} AS c LIMIT 201` },
  { sql: 'SELECT c.pg_column_size FROM customers c', out: `SELECT c.pg_column_size FROM ${CUSTOMERS} AS c LIMIT 201`, ctx: { scope: allowing } },
  // Function results: scalar ones are named by the alias, others by their OUT parameters.
  { sql: 'SELECT x.x FROM generate_series(1, 3) x', out: 'SELECT x.x FROM generate_series(1, 3) AS x LIMIT 201' },
  { sql: 'SELECT x.pg_get_userbyid FROM generate_series(10, 10) x', err: 'column_not_found', message: 'column x.pg_get_userbyid does not exist' },
  { sql: 'SELECT e.key, e.value FROM customers c, LATERAL jsonb_each(to_jsonb(c)) e', out: `SELECT e.key, e.value FROM ${CUSTOMERS} AS c, LATERAL jsonb_each(to_jsonb(c)) AS e LIMIT 201` },
  { sql: "SELECT e.pg_column_size FROM jsonb_each('{}') e", err: 'column_not_found' },
  { sql: `SELECT x.a FROM json_to_record('{"a":1}') AS x(a int)`, out: `SELECT x.a FROM json_to_record('{"a":1}') x (a int) LIMIT 201` },
  { sql: "SELECT g.n, g.ordinality FROM generate_series(1, 2) WITH ORDINALITY AS g(n)", out: 'SELECT g.n, g.ordinality FROM generate_series(1, 2) WITH ORDINALITY AS g(n) LIMIT 201' },
  // ROWS FROM without an alias is named after its first function.
  { sql: 'SELECT generate_series.pg_column_size FROM ROWS FROM (generate_series(1, 2), generate_series(1, 3))', err: 'column_not_found' },
  { sql: 'SELECT generate_series.generate_series FROM ROWS FROM (generate_series(1, 2), generate_series(1, 3))', out: 'SELECT generate_series.generate_series FROM ROWS FROM (generate_series(1, 2), generate_series(1, 3)) LIMIT 201' },
  // Unnamed select-list entries are named as PostgreSQL names them: a cast of a constant by its type.
  { sql: 'SELECT s.text FROM (SELECT (1::int)::text) s', out: 'SELECT s.text FROM ( SELECT CAST(1::int AS text) ) AS s LIMIT 201' },
  { sql: "SELECT s.name FROM (SELECT ('x'::name)::text) s", err: 'column_not_found' },
  { sql: 'SELECT s.name FROM (SELECT c.name::text FROM customers c) s', out: `SELECT s.name FROM ( SELECT c.name::text FROM ${CUSTOMERS} AS c ) AS s LIMIT 201` },
  // unnest's columns depend on its argument's type (a tsvector has three): only allowed functions pass.
  { sql: "SELECT x.pg_ls_dir FROM unnest(ARRAY['.']) x", err: 'statement_not_understood', message: '.pg_ls_dir' },
  { sql: "SELECT x.current_setting FROM unnest(ARRAY['search_path']) x", err: 'statement_not_understood' },
  { sql: "SELECT x.upper FROM unnest(ARRAY['a']) x", out: "SELECT x.upper FROM unnest(ARRAY['a']) AS x LIMIT 201" },
  // With a column alias, unnest's first column has that name whatever the argument's type.
  { sql: 'SELECT t.id FROM unnest($1::int[]) AS t(id)', out: 'SELECT t.id FROM unnest(CAST($1 AS int[])) AS t(id) LIMIT 201' },
  { sql: 'SELECT t.id, t.n FROM unnest($1::int[]) WITH ORDINALITY AS t(id, n)', out: 'SELECT t.id, t.n FROM unnest(CAST($1 AS int[])) WITH ORDINALITY AS t(id, n) LIMIT 201' },
  { sql: 'SELECT t.pg_column_size FROM unnest($1::int[]) AS t(id)', err: 'column_not_found' },
  // Entries whose columns the proxy does not work out (JSON_TABLE, XMLTABLE) admit only allowed functions.
  { sql: "SELECT jt.pg_column_size FROM JSON_TABLE('[1]', '$[*]' COLUMNS (x int PATH '$')) jt", err: 'statement_not_understood', message: '.pg_column_size' },
  // (expr).f calls f(expr) for a value of any type.
  { sql: 'SELECT (10).pg_get_userbyid', err: 'statement_not_understood' },
  { sql: "SELECT ('search_path').current_setting", err: 'statement_not_understood' },
  { sql: "SELECT ('/etc/passwd'::text).pg_read_file", err: 'statement_not_understood' },
  { sql: 'SELECT (c.name).pg_column_size FROM customers c', err: 'statement_not_understood' },
  { sql: 'SELECT (c).name FROM customers c', out: `SELECT (c).name FROM ${CUSTOMERS} AS c LIMIT 201` },
  { sql: 'SELECT (c).pg_column_size FROM customers c', err: 'statement_not_understood' },
  { sql: "SELECT (jsonb_each('{}')).key", out: "SELECT (jsonb_each('{}')).key LIMIT 201" },
  // information_schema._pg_expandarray (JDBC getIndexInfo/getPrimaryKeys): its OUT columns x and n,
  // in FROM, on the call, and on a subquery column that holds its result.
  { sql: 'SELECT e.x, e.n FROM information_schema._pg_expandarray(ARRAY[5, 6]) e', out: 'SELECT e.x, e.n FROM information_schema._pg_expandarray(ARRAY[5, 6]) AS e LIMIT 201' },
  { sql: 'SELECT e.pg_column_size FROM information_schema._pg_expandarray(ARRAY[5]) e', err: 'column_not_found' },
  { sql: 'SELECT (information_schema._pg_expandarray(ARRAY[5])).n', out: 'SELECT (information_schema._pg_expandarray(ARRAY[5])).n LIMIT 201' },
  { sql: 'SELECT (information_schema._pg_expandarray(ARRAY[5])).pg_column_size', err: 'statement_not_understood' },
  { sql: 'SELECT s.k FROM (SELECT information_schema._pg_expandarray(ARRAY[5]) AS k) s WHERE (s.k).x = 5', out: 'SELECT s.k FROM ( SELECT information_schema._pg_expandarray(ARRAY[5]) AS k ) AS s WHERE (s.k).x = 5 LIMIT 201' },
  { sql: 'SELECT (r.kk).n FROM (SELECT information_schema._pg_expandarray(ARRAY[5]) AS k) AS r (kk)', out: 'SELECT (r.kk).n FROM ( SELECT information_schema._pg_expandarray(ARRAY[5]) AS k ) AS r(kk) LIMIT 201' },
  { sql: 'SELECT (r.k).n FROM (SELECT information_schema._pg_expandarray(ARRAY[5]) AS k) AS r (kk)', err: 'statement_not_understood' },
  { sql: 'WITH w AS (SELECT information_schema._pg_expandarray(ARRAY[5]) AS k) SELECT (w.k).x FROM w', out: 'WITH w AS (SELECT information_schema._pg_expandarray(ARRAY[5]) AS k) SELECT (w.k).x FROM w LIMIT 201' },
  // The field must be one of the result's: anything else is f(value), and a column holding any other value knows no fields.
  { sql: 'SELECT (s.k).pg_ls_dir FROM (SELECT information_schema._pg_expandarray(ARRAY[5]) AS k) s', err: 'statement_not_understood', message: '.pg_ls_dir' },
  { sql: 'SELECT (s.k).x FROM (SELECT 1 AS k) s', err: 'statement_not_understood' },
  { sql: "SELECT (s.k).x FROM (SELECT ROW('/', 1) AS k) s", err: 'statement_not_understood' },
  { sql: 'SELECT (s.name).x FROM (SELECT c.name FROM customers c) s', err: 'statement_not_understood' },
  // The same name at two query levels: both must hold the result.
  { sql: 'SELECT (s.k).x FROM (SELECT information_schema._pg_expandarray(ARRAY[5]) AS k) s, LATERAL (SELECT (s.k).x FROM (SELECT 1 AS k) s) t', err: 'statement_not_understood' },
  // Only information_schema's listed function: another schema's is the policy's allow_functions.
  { sql: 'SELECT (s.k).x FROM (SELECT information_schema._pg_keysequal(ARRAY[5], ARRAY[5]) AS k) s', err: 'function_not_allowed' },
  { sql: 'SELECT (s.k).x FROM (SELECT public._pg_expandarray(ARRAY[5]) AS k) s', err: 'function_not_allowed' },
  // Subqueries, CTEs, VALUES and joins: their output names.
  { sql: 'SELECT s.n FROM (SELECT count(*) AS n FROM orders) s', out: `SELECT s.n FROM ( SELECT count(*) AS n FROM ${ORDERS} AS orders ) AS s LIMIT 201` },
  { sql: 'SELECT s.status FROM (SELECT * FROM orders) s', out: `SELECT s.status FROM ( SELECT * FROM ${ORDERS} AS orders ) AS s LIMIT 201` },
  { sql: 'SELECT s.pg_column_size FROM (SELECT * FROM orders) s', err: 'column_not_found' },
  { sql: 'SELECT s.name FROM (SELECT c.* FROM customers c) s', out: `SELECT s.name FROM ( SELECT c.* FROM ${CUSTOMERS} AS c ) AS s LIMIT 201` },
  { sql: 'SELECT s.id FROM (SELECT id FROM orders UNION SELECT id FROM customers) s', out: `SELECT s.id FROM ( SELECT id FROM ${ORDERS} AS orders UNION SELECT id FROM ${CUSTOMERS} AS customers ) AS s LIMIT 201` },
  { sql: 'WITH x AS (SELECT id, name FROM customers) SELECT x.name, x.pg_column_size FROM x', err: 'column_not_found', message: 'column x.pg_column_size does not exist' },
  { sql: 'WITH x(a) AS (SELECT id FROM customers) SELECT x.a FROM x', out: `WITH x(a) AS (SELECT id FROM ${CUSTOMERS} AS customers) SELECT x.a FROM x LIMIT 201` },
  { sql: 'WITH customers AS (SELECT 1 AS x) SELECT c.x FROM customers c', out: 'WITH customers AS (SELECT 1 AS x) SELECT c.x FROM customers AS c LIMIT 201' },
  { sql: 'WITH customers AS (SELECT 1 AS x) SELECT c.name FROM customers c', err: 'column_not_found' },
  // A non-recursive CTE's own body reads the table of its name.
  { sql: 'WITH customers AS (SELECT c.name FROM customers c) SELECT * FROM customers', out: `WITH customers AS (SELECT c.name FROM ${CUSTOMERS} AS c) SELECT * FROM customers LIMIT 201` },
  { sql: 'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT r.n + 1 FROM r WHERE r.n < 5) SELECT r.n FROM r', out: 'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT r.n + 1 FROM r WHERE r.n < 5) SELECT r.n FROM r LIMIT 201' },
  { sql: 'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT r.pg_column_size FROM r WHERE false) SELECT 1', err: 'column_not_found' },
  { sql: 'SELECT (SELECT x.name FROM customers x WHERE x.id = c.id) FROM customers c', out: `SELECT (SELECT x.name FROM ${CUSTOMERS} AS x WHERE x.id = c.id) FROM ${CUSTOMERS} AS c LIMIT 201` },
  { sql: 'SELECT v.column1 FROM (VALUES (1)) v', out: 'SELECT v.column1 FROM ( VALUES (1) ) AS v LIMIT 201' },
  { sql: 'SELECT v.pg_column_size FROM (VALUES (1)) v', err: 'column_not_found' },
  { sql: 'SELECT j.name, j.total_cents FROM (customers c JOIN orders o ON o.customer_id = c.id) j', out: `SELECT j.name, j.total_cents FROM (${CUSTOMERS} AS c JOIN ${ORDERS} AS o ON o.customer_id = c.id) j LIMIT 201` },
  { sql: 'SELECT k.code FROM countries k', out: `SELECT k.code FROM ${COUNTRIES} AS k LIMIT 201` },
  // Catalog answers have known columns too.
  { sql: 'SELECT t.table_name FROM information_schema.tables t WHERE t.pg_column_size > 0', err: 'column_not_found' },
  // A database-qualified column would compare the name with the upstream database's.
  { sql: 'SELECT app.public.customers.name FROM customers', err: 'statement_not_understood', message: 'are not supported' },
  // Writes: the target, EXCLUDED and RETURNING's rows.
  { sql: "/*reason='r'*/ UPDATE orders o SET status = 'x' WHERE o.pg_column_size > 0", err: 'column_not_found' },
  { sql: "/*reason='r'*/ DELETE FROM orders o WHERE o.id = 1 RETURNING o.pg_column_size", err: 'column_not_found' },
  // A write target's row is the real table's, hidden columns included: no function of it, allowed or not.
  { sql: "/*reason='r'*/ UPDATE customers c SET name = c.to_jsonb::text WHERE c.id = 1", err: 'column_not_found', message: 'column c.to_jsonb does not exist', ctx: { writeGate: gate('update:customers') } },
  { sql: "/*reason='r'*/ UPDATE customers SET name = customers.row_to_json::text WHERE id = 1", err: 'column_not_found', ctx: { writeGate: gate('update:customers') } },
  // The write rules' own refusal of a whole-row reference comes first.
  { sql: "/*reason='r'*/ UPDATE customers c SET name = (c).to_jsonb::text WHERE c.id = 1", err: 'statement_not_allowed', message: 'whole-row', ctx: { writeGate: gate('update:customers') } },
  { sql: "/*reason='r'*/ DELETE FROM orders o WHERE o.id = 1 RETURNING o.row_to_json", err: 'column_not_found' },
  { sql: "/*reason='r'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET status = excluded.to_jsonb::text", err: 'column_not_found', message: 'column excluded.to_jsonb does not exist' },
  { sql: "/*reason='r'*/ UPDATE orders o SET status = 'x' WHERE o.id = 1 RETURNING o.status", out: "UPDATE orders AS o SET status = 'x' WHERE o.tenant_id = '1'::int AND o.id = 1 RETURNING o.status" },
];

runGolden(cases, base);

describe('without a read policy', () => {
  // No relation's columns are known: names the allow-list refuses by name are refused in attribute position.
  runGolden([
    { sql: "SELECT x.pg_ls_dir FROM unnest(ARRAY['.']) x", err: 'statement_not_understood' },
    { sql: 'SELECT (10).pg_get_userbyid', err: 'statement_not_understood' },
    { sql: 'SELECT o.id FROM orders o', out: 'SELECT o.id FROM orders AS o' },
  ]);
});

describe('schema.table.column references', () => {
  runGolden(
    [
      { sql: 'SELECT public.customers.name FROM public.customers', out: `SELECT customers.name FROM ${CUSTOMERS} AS customers LIMIT 201` },
      { sql: 'SELECT public.customers.name FROM customers WHERE public.customers.id > 1 ORDER BY public.customers.id', out: `SELECT customers.name FROM ${CUSTOMERS} AS customers WHERE customers.id > 1 ORDER BY customers.id LIMIT 201` },
      { sql: 'SELECT public.customers.* FROM customers', out: `SELECT customers.* FROM ${CUSTOMERS} AS customers LIMIT 201` },
      { sql: 'SELECT public.orders.total_cents, public.customers.name FROM public.orders JOIN public.customers ON public.customers.id = public.orders.customer_id', out: `SELECT orders.total_cents, customers.name FROM ${ORDERS} AS orders JOIN ${CUSTOMERS} AS customers ON customers.id = orders.customer_id LIMIT 201` },
      // An alias hides the table's name (PostgreSQL would answer that the FROM entry is missing): refused with a hint.
      { sql: 'SELECT public.customers.name FROM customers c', err: 'statement_not_understood', message: 'schema.table.column' },
      { sql: 'SELECT public.customers.pg_column_size FROM customers', err: 'column_not_found' },
      { sql: 'SELECT public.customers.api_secret FROM customers', err: 'column_not_found' },
      { sql: "/*reason='r'*/ UPDATE orders SET status = 'x' WHERE public.orders.id = 1", out: "UPDATE orders SET status = 'x' WHERE orders.tenant_id = '1'::int AND orders.id = 1" },
    ],
    base,
  );
});
