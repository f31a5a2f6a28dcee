// Golden cases for reads: SELECT shapes, EXPLAIN, parameters, names, and the read-side refusals.
import { runGolden, type Golden } from './golden';

const cases: Golden[] = [
  // Shapes that pass, printed by the deparser and verified.
  {
    sql: 'SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total > $1 ORDER BY o.id DESC LIMIT 10',
    out: 'SELECT o.id, c.name FROM orders AS o JOIN customers AS c ON c.id = o.customer_id WHERE o.total > $1 ORDER BY o.id DESC LIMIT 10',
    kinds: ['read'],
    writes: [],
  },
  { sql: 'select 1', out: 'SELECT 1', kinds: ['read'] },
  { sql: 'SELECT 1 UNION ALL SELECT 2 EXCEPT SELECT 3', out: '(SELECT 1 UNION ALL SELECT 2) EXCEPT SELECT 3' },
  { sql: "VALUES (1, 'a'), (2, 'b')", out: "VALUES (1, 'a'), (2, 'b')", kinds: ['read'] },
  { sql: 'TABLE orders', out: 'SELECT * FROM orders', kinds: ['read'] },
  {
    sql: 'WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval \'1 day\') SELECT count(*) FROM recent',
    out: "WITH recent AS (SELECT * FROM orders WHERE created_at > (now() - '1 day'::interval)) SELECT count(*) FROM recent",
  },
  {
    sql: 'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r',
    out: 'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r',
  },
  {
    sql: 'SELECT * FROM t1 LEFT JOIN LATERAL (SELECT * FROM t2 WHERE t2.a = t1.a LIMIT 1) s ON true',
    out: 'SELECT * FROM t1 LEFT JOIN LATERAL ( SELECT * FROM t2 WHERE t2.a = t1.a LIMIT 1 ) AS s ON true',
  },
  { sql: 'SELECT * FROM ONLY orders', out: 'SELECT * FROM ONLY orders' },
  { sql: 'SELECT status, count(*) FILTER (WHERE total > 0) FROM orders GROUP BY status HAVING count(*) > 1',
    out: 'SELECT status, count(*) FILTER (WHERE total > 0) FROM orders GROUP BY status HAVING count(*) > 1' },
  { sql: 'SELECT * FROM t FETCH FIRST 3 ROWS ONLY', out: 'SELECT * FROM t LIMIT 3' },
  // Functions are allow-listed even without a policy (functions.test.ts has the cases).
  { sql: 'SELECT pg_sleep(1)', err: 'function_not_allowed', message: 'function pg_sleep() is not allowed' },

  // Parameters survive exactly, including gaps and casts.
  { sql: 'SELECT $1, $2::text WHERE $10 = 1', out: 'SELECT $1, CAST($2 AS text) WHERE $10 = 1' },
  { sql: 'SELECT * FROM t WHERE a = ANY($1::int[]) LIMIT $2 OFFSET $3', out: 'SELECT * FROM t WHERE a = ANY (CAST($1 AS int[])) LIMIT $2 OFFSET $3' },

  // Names: case folding, quoting, Unicode escapes.
  { sql: 'SELECT ID FROM Public.ORDERS', out: 'SELECT id FROM public.orders' },
  { sql: 'SELECT "Weird""Name", "UPPER" FROM "My Table"', out: 'SELECT "Weird""Name", "UPPER" FROM "My Table"' },
  { sql: 'SELECT "t0"."id" FROM "public"."orders" AS "t0"', out: 'SELECT t0.id FROM public.orders AS t0' },
  { sql: String.raw`SELECT U&"d\0061t" FROM t`, out: 'SELECT dat FROM t' },

  // EXPLAIN without ANALYZE is a read; its statement is checked with the same rules.
  { sql: 'EXPLAIN SELECT * FROM orders', out: 'EXPLAIN SELECT * FROM orders', kinds: ['read'] },
  { sql: 'EXPLAIN (VERBOSE FALSE, COSTS OFF, FORMAT JSON) SELECT 1', out: 'EXPLAIN (VERBOSE FALSE, COSTS OFF, FORMAT JSON) SELECT 1' },
  // VERBOSE prints more than the statement names (an INSERT's defaults, a generated column's expression); SETTINGS the server's configuration.
  { sql: 'EXPLAIN (VERBOSE, COSTS OFF, FORMAT JSON) SELECT 1', err: 'statement_not_allowed', message: 'EXPLAIN VERBOSE is not allowed' },
  { sql: 'EXPLAIN (SETTINGS) SELECT 1', err: 'statement_not_allowed', message: 'EXPLAIN (SETTINGS) is not allowed' },
  // Its plan lists the table's unique indexes as arbiters, hidden ones too.
  { sql: 'EXPLAIN INSERT INTO orders (id) VALUES (1) ON CONFLICT (id) DO NOTHING', err: 'statement_not_allowed', message: 'EXPLAIN of INSERT … ON CONFLICT is not allowed' },
  { sql: 'EXPLAIN (ANALYZE false) SELECT 1', out: 'EXPLAIN (ANALYZE FALSE) SELECT 1' },
  { sql: 'EXPLAIN (ANALYZE 0) SELECT 1', out: 'EXPLAIN (ANALYZE 0) SELECT 1' },
  { sql: 'EXPLAIN ANALYZE SELECT 1', err: 'statement_not_allowed', message: 'EXPLAIN ANALYZE is not allowed' },
  { sql: 'EXPLAIN (ANALYZE) SELECT 1', err: 'statement_not_allowed', message: 'EXPLAIN ANALYZE' },
  { sql: 'EXPLAIN (ANALYZE on) SELECT 1', err: 'statement_not_allowed', message: 'EXPLAIN ANALYZE' },
  { sql: 'EXPLAIN (ANALYZE 1) SELECT 1', err: 'statement_not_allowed', message: 'EXPLAIN ANALYZE' },
  { sql: 'EXPLAIN ANALYZE DELETE FROM orders', err: 'statement_not_allowed', message: 'EXPLAIN ANALYZE' },
  { sql: 'EXPLAIN SELECT * FROM t FOR UPDATE', err: 'statement_not_allowed', message: 'FOR UPDATE' },
  { sql: 'EXPLAIN EXECUTE p', err: 'statement_not_allowed', message: 'EXPLAIN EXECUTE is not allowed' },
  { sql: 'EXPLAIN CREATE TABLE x AS SELECT 1', err: 'statement_not_allowed', message: 'CREATE TABLE AS' },
  { sql: 'EXPLAIN ("ANALYZE") SELECT 1', err: 'statement_not_understood' },

  // Reads that are not plain reads.
  { sql: 'SELECT * INTO new_table FROM orders', err: 'statement_not_allowed', message: 'SELECT ... INTO' },
  { sql: 'SELECT * FROM orders FOR UPDATE', err: 'statement_not_allowed', message: 'SELECT ... FOR UPDATE is not allowed' },
  { sql: 'SELECT * FROM orders FOR NO KEY UPDATE SKIP LOCKED', err: 'statement_not_allowed', message: 'FOR NO KEY UPDATE' },
  { sql: 'SELECT * FROM orders FOR SHARE', err: 'statement_not_allowed', message: 'FOR SHARE' },
  { sql: 'SELECT 1 FROM orders FOR KEY SHARE', err: 'statement_not_allowed', message: 'FOR KEY SHARE' },
  { sql: 'SELECT * FROM (SELECT * FROM orders FOR UPDATE) s', err: 'statement_not_allowed', message: 'FOR UPDATE' },
  { sql: 'WITH x AS (SELECT * FROM orders FOR SHARE) SELECT * FROM x', err: 'statement_not_allowed', message: 'FOR SHARE' },
  // Set operations hold their arms unwrapped (larg/rarg): INTO there still creates a table.
  { sql: 'SELECT 1 UNION SELECT 2 INTO new_table', err: 'statement_not_allowed', message: 'SELECT ... INTO' },
  { sql: '(SELECT 1 INTO new_table) UNION SELECT 2', err: 'statement_not_allowed', message: 'SELECT ... INTO' },
  { sql: 'SELECT 1 UNION (SELECT id FROM orders FOR UPDATE)', err: 'statement_not_allowed', message: 'FOR UPDATE' },
  { sql: '(SELECT id FROM orders FOR SHARE) EXCEPT SELECT 1', err: 'statement_not_allowed', message: 'FOR SHARE' },

  // Known deparser slips: refused, never forwarded wrong.
  { sql: 'SELECT (ARRAY[1,2])[1]', err: 'statement_not_understood', message: 'the proxy cannot reproduce this SELECT statement exactly' },
  // ... and where the construct is known, named, with what to use instead.
  { sql: 'SELECT * FROM orders ORDER BY total FETCH FIRST 3 ROWS WITH TIES', out: 'SELECT * FROM orders ORDER BY total FETCH FIRST (3) ROWS WITH TIES' },
  { sql: "SELECT JSON_VALUE(j, '$.a' RETURNING int) FROM t", err: 'statement_not_understood', message: 'JSON_VALUE is not supported by the proxy' },
  { sql: "SELECT 1 FROM t WHERE JSON_EXISTS(j, '$.a') AND JSON_QUERY(j, '$.b') IS NULL", err: 'statement_not_understood', message: 'JSON_EXISTS is not supported by the proxy' },
  { sql: "SELECT * FROM JSON_TABLE('[1]', '$[*]' COLUMNS (x int PATH '$'))", err: 'statement_not_understood', message: 'JSON_TABLE is not supported by the proxy' },
  { sql: "SELECT * FROM xmltable('/a' PASSING '<a/>' COLUMNS x int PATH '.')", err: 'statement_not_understood', message: 'XMLTABLE is not supported by the proxy' },
  { sql: 'SHOW "TimeZone"', out: 'SHOW "TimeZone"' },
  { sql: "SET TIME ZONE INTERVAL '+02:00' HOUR TO MINUTE", out: "SET TIME ZONE INTERVAL '+02:00' HOUR TO MINUTE" },
];

runGolden(cases);
