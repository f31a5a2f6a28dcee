// Fuzz pathological SQL: texts built to stress the scanner, the size and nesting bounds, the parser and the rewriter.
const { CUSTOMERS } = require('./corpus');

const repeat = (n, f) => Array.from({ length: n }, (_, i) => f(i));

/** Each generator returns one SQL text; sizes are drawn around the proxy's bounds (README, Limits). */
const GENERATORS = [
  (r) => { const d = r.pick([100, 399, 401, 1000, 5000, 100000]); return `SELECT ${'('.repeat(d)}1${')'.repeat(d)}`; },
  (r) => `SELECT ${repeat(r.pick([1000, 10000, 10000, 60000]), () => '1').join('+')}`,
  (r) => `SELECT count(*) FROM orders WHERE id IN (${repeat(r.pick([1000, 10000, 30000, 120000]), (i) => i).join(',')})`,
  (r) => { const n = r.pick([50, 100, 101, 1000]); return `WITH ${repeat(n, (i) => `c${i} AS (SELECT ${i ? `x + 1 AS x FROM c${i - 1}` : '1 AS x'})`).join(', ')} SELECT x FROM c${n - 1}`; },
  (r) => { const d = r.pick([10, 16, 17, 40]); let s = 'SELECT 1 AS x'; for (let i = 0; i < d; i++) s = `WITH w${i} AS (${s}) SELECT * FROM w${i}`; return s; },
  (r) => repeat(r.pick([10, 999, 1000, 1001, 3000]), (i) => (i % 3 ? 'SELECT 1' : 'SELECT count(*) FROM orders')).join('; '),
  (r) => `SELECT 1 AS "${'a'.repeat(r.pick([63, 64, 200, 100000]))}"`,
  (r) => `SELECT * FROM ${'o'.repeat(r.pick([63, 64, 5000]))}`,
  () => 'SELECT U&"\\0069\\0064" FROM orders',
  () => "SELECT U&'\\+01F600 \\D800' UESCAPE '!'",
  () => "SELECT U&'!0041' UESCAPE '!', U&\"t!0061ble\" UESCAPE '!'",
  () => 'SELECT * FROM U&"\\006f\\0072\\0064\\0065\\0072\\0073"',
  () => "SELECT U&'\\DBFF\\DFFF\\0000'",
  () => 'SELECT $$a$$, $tag$ $$ nested $x$ $tag$, $q$;DROP TABLE orders;$q$',
  () => 'SELECT $abc$ unterminated',
  () => 'SELECT $1$ not a tag $1$',
  (r) => { const d = r.pick([100, 10000]); return `SELECT 1 ${'/* '.repeat(d)}x${' */'.repeat(d)} FROM orders`; },
  () => 'SELECT 1 /* /* unterminated */',
  (r) => { const d = r.pick([50, 500, 3000]); return `SELECT ${'CASE WHEN true THEN '.repeat(d)}1${' END'.repeat(d)}`; },
  (r) => { const d = r.pick([30, 200, 1000]); return `SELECT ${'(SELECT '.repeat(d)}1${')'.repeat(d)}`; },
  (r) => { const d = r.pick([20, 300]); return `SELECT ${'ARRAY['.repeat(d)}1${']'.repeat(d)}`; },
  (r) => `SELECT 1 FROM orders ${repeat(r.pick([3, 4, 50]), (i) => `JOIN orders o${i} ON o${i}.id = orders.id`).join(' ')}`,
  (r) => `SELECT '${'x'.repeat(r.pick([1000, 1024 * 1024, 1024 * 1024 + 10]))}'`,
  (r) => `SELECT ${repeat(r.pick([100, 5000]), (i) => `c${i}`).join(' || ')} FROM (SELECT 1) t`,
  (r) => `SELECT * FROM orders WHERE ${repeat(r.pick([100, 2000]), (i) => `(id = ${i} OR total_cents > ${i})`).join(' AND ')}`,
  (r) => `SELECT * FROM (${repeat(r.pick([10, 500]), () => 'SELECT * FROM customers').join(' UNION ALL ')}) u`,
  (r) => `SELECT ${repeat(r.pick([100, 3000]), (i) => `$${i + 1}`).join(', ')}`,
  () => "SELECT E'\\xff\\x00', '\\', E'\\u0000', 'a' 'b'",
  (r) => `/*reason='${'%27'.repeat(r.pick([10, 1000]))}'*/ INSERT INTO orders (customer_id, total_cents) VALUES (${CUSTOMERS[1][0]}, 1)`,
  (r) => `${repeat(r.pick([5, 500]), () => "/*reason='fuzz'*/").join(' ')} INSERT INTO orders (customer_id, total_cents) VALUES (${CUSTOMERS[1][0]}, 1)`,
  () => 'SELECT * FROM orders o WHERE (o).tenant_id = 2 OR o.customer_id IN (SELECT c.id FROM customers c WHERE (c).api_secret IS NOT NULL)',
  () => 'SELECT (SELECT c FROM customers c LIMIT 1).*, o.* FROM orders o',
  () => 'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r',
  () => 'SELECT count(*) FROM generate_series(1, 100000000)',
  () => "SELECT repeat('x', 10000000)",
];

function pathologicalSql(r) {
  return r.pick(GENERATORS)(r);
}

module.exports = { pathologicalSql, GENERATORS };
