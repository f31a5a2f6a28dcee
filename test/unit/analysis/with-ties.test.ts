// Golden cases for FETCH FIRST … WITH TIES: printed faithfully, and capped by a SELECT around it (ties can exceed any n).
import { runGolden, type Golden } from './golden';
import { CUSTOMERS, ORDERS, principal, scopeFromFile, WITH_COUNTRIES } from './rewrite-scope';

const scope = scopeFromFile(WITH_COUNTRIES);
const base = { scope, principal: principal('1'), captureWrites: false };
const capped = (inner: string): string => `SELECT * FROM ( ${inner} ) AS ormai_ties LIMIT 201`;

const cases: Golden[] = [
  { sql: 'SELECT * FROM orders ORDER BY status FETCH FIRST 1 ROW WITH TIES', out: capped(`SELECT * FROM ${ORDERS} AS orders ORDER BY status FETCH FIRST (1) ROWS WITH TIES`), rowLimit: 200 },
  { sql: 'SELECT id FROM orders ORDER BY total_cents DESC OFFSET 1 ROWS FETCH NEXT 2 ROWS WITH TIES', out: capped(`SELECT id FROM ${ORDERS} AS orders ORDER BY total_cents DESC OFFSET 1 FETCH FIRST (2) ROWS WITH TIES`) },
  { sql: 'SELECT id FROM orders ORDER BY status FETCH FIRST $1 ROWS WITH TIES', out: capped(`SELECT id FROM ${ORDERS} AS orders ORDER BY status FETCH FIRST ($1) ROWS WITH TIES`) },
  { sql: 'SELECT id FROM orders ORDER BY status FETCH FIRST (1 + 1) ROWS WITH TIES', out: capped(`SELECT id FROM ${ORDERS} AS orders ORDER BY status FETCH FIRST (1 + 1) ROWS WITH TIES`) },
  // The WITH clause goes up to the capping SELECT (where a data-modifying CTE must be).
  {
    sql: 'WITH x AS (SELECT * FROM orders) SELECT status FROM x ORDER BY status FETCH FIRST 1 ROWS WITH TIES',
    out: `WITH x AS (SELECT * FROM ${ORDERS} AS orders) ${capped('SELECT status FROM x ORDER BY status FETCH FIRST (1) ROWS WITH TIES')}`,
  },
  {
    sql: 'SELECT id FROM orders UNION ALL SELECT id FROM customers ORDER BY id FETCH FIRST 2 ROWS WITH TIES',
    out: capped(`SELECT id FROM ${ORDERS} AS orders UNION ALL SELECT id FROM ${CUSTOMERS} AS customers ORDER BY id FETCH FIRST (2) ROWS WITH TIES`),
  },
  // Below the top, WITH TIES is printed as written; the cap is the outer LIMIT as usual.
  {
    sql: 'SELECT * FROM (SELECT * FROM orders ORDER BY status FETCH FIRST 1 ROW WITH TIES) s',
    out: `SELECT * FROM ( SELECT * FROM ${ORDERS} AS orders ORDER BY status FETCH FIRST (1) ROWS WITH TIES ) AS s LIMIT 201`,
  },
  {
    sql: '(SELECT id FROM orders ORDER BY status FETCH FIRST 1 ROW WITH TIES) UNION ALL SELECT 1',
    out: `(SELECT id FROM ${ORDERS} AS orders ORDER BY status FETCH FIRST (1) ROWS WITH TIES) UNION ALL SELECT 1 LIMIT 201`,
  },
  // PostgreSQL's grammar requires ORDER BY.
  { sql: 'SELECT * FROM orders FETCH FIRST 1 ROW WITH TIES', err: 'syntax_error' },
];

runGolden(cases, base);

describe('without a read policy', () => {
  runGolden([
    { sql: 'SELECT g FROM generate_series(1, 10) g ORDER BY g FETCH FIRST 2 ROWS WITH TIES', out: 'SELECT g FROM generate_series(1, 10) AS g ORDER BY g FETCH FIRST (2) ROWS WITH TIES' },
    { sql: 'SELECT g FROM generate_series(1, 10) g ORDER BY g OFFSET 3 FETCH FIRST 2 ROWS WITH TIES', out: 'SELECT g FROM generate_series(1, 10) AS g ORDER BY g OFFSET 3 FETCH FIRST (2) ROWS WITH TIES' },
  ]);
});
