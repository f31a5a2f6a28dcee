// Golden cases for writes: every target table found (CTEs included), the write gate, MERGE, multi-statement strings.
import { runGolden, gate, type Golden } from './golden';

const ordersOnly = { writeGate: gate('insert:orders', 'update:orders') };

const cases: Golden[] = [
  {
    sql: 'INSERT INTO orders (customer_id, total) VALUES ($1, $2) RETURNING id',
    out: 'INSERT INTO orders (customer_id, total) VALUES ($1, $2) RETURNING id',
    kinds: ['write'],
    writes: [{ name: 'orders', op: 'insert' }],
  },
  {
    sql: 'INSERT INTO orders AS o (id, total) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET total = excluded.total RETURNING *',
    out: 'INSERT INTO orders AS o (id, total) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET total = excluded.total RETURNING *',
    writes: [{ name: 'orders', op: 'insert' }],
  },
  {
    sql: 'INSERT INTO orders (id) SELECT id FROM staging ON CONFLICT DO NOTHING',
    out: 'INSERT INTO orders (id) SELECT id FROM staging ON CONFLICT DO NOTHING',
    writes: [{ name: 'orders', op: 'insert' }],
  },
  {
    sql: 'UPDATE orders o SET total = c.credit FROM customers c WHERE c.id = o.customer_id',
    out: 'UPDATE orders AS o SET total = c.credit FROM customers AS c WHERE c.id = o.customer_id',
    kinds: ['write'],
    writes: [{ name: 'orders', op: 'update' }],
  },
  {
    sql: 'UPDATE orders SET (a, b) = (SELECT 1, 2) WHERE id = $1',
    out: 'UPDATE orders SET (a, b) = (SELECT 1, 2) WHERE id = $1',
    writes: [{ name: 'orders', op: 'update' }],
  },
  {
    sql: 'DELETE FROM orders o USING customers c WHERE c.id = o.customer_id RETURNING o.id',
    out: 'DELETE FROM orders AS o USING customers AS c WHERE c.id = o.customer_id RETURNING o.id',
    ctx: { writeGate: gate('delete:orders') },
    writes: [{ name: 'orders', op: 'delete' }],
  },
  // Case folding: unquoted names arrive folded, quoted ones keep their case, schema is kept.
  {
    sql: 'DELETE FROM Sales.ORDERS WHERE id = 1',
    out: 'DELETE FROM sales.orders WHERE id = 1',
    ctx: { writeGate: gate('delete:sales.orders') },
    writes: [{ schema: 'sales', name: 'orders', op: 'delete' }],
  },
  {
    sql: 'UPDATE "Orders" SET total = 0',
    out: 'UPDATE "Orders" SET total = 0',
    ctx: { writeGate: gate('update:Orders') },
    writes: [{ name: 'Orders', op: 'update' }],
  },
  { sql: 'UPDATE "Orders" SET total = 0', err: 'model_writes_disabled', ctx: ordersOnly },
  { sql: 'UPDATE app.public.orders SET total = 0', err: 'statement_not_understood' },

  // Data-modifying CTEs are writes, and every target goes through the gate.
  {
    sql: 'WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d',
    out: 'WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d',
    ctx: { writeGate: gate('delete:orders') },
    kinds: ['write'],
    writes: [{ name: 'orders', op: 'delete' }],
  },
  { sql: 'WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d', err: 'model_writes_disabled', ctx: ordersOnly, message: 'DELETE on orders' },
  {
    sql: 'WITH a AS (INSERT INTO orders (id) VALUES (1) RETURNING id), b AS (UPDATE customers SET n = 1 RETURNING id) SELECT * FROM a, b',
    out: 'WITH a AS (INSERT INTO orders (id) VALUES (1) RETURNING id), b AS (UPDATE customers SET n = 1 RETURNING id) SELECT * FROM a, b',
    ctx: { writeGate: gate('insert:orders', 'update:customers') },
    writes: [
      { name: 'orders', op: 'insert' },
      { name: 'customers', op: 'update' },
    ],
  },
  {
    sql: 'WITH a AS (INSERT INTO orders (id) VALUES (1) RETURNING id), b AS (UPDATE customers SET n = 1 RETURNING id) SELECT * FROM a, b',
    err: 'model_writes_disabled',
    ctx: ordersOnly,
    message: 'UPDATE on customers',
  },
  {
    sql: 'WITH moved AS (DELETE FROM staging RETURNING *) INSERT INTO orders SELECT * FROM moved',
    out: 'WITH moved AS (DELETE FROM staging RETURNING *) INSERT INTO orders SELECT * FROM moved',
    ctx: { writeGate: gate('insert:orders', 'delete:staging') },
    writes: [
      { name: 'orders', op: 'insert' },
      { name: 'staging', op: 'delete' },
    ],
  },
  // A data-modifying CTE below the top level is still seen (PostgreSQL then rejects it itself).
  { sql: 'SELECT (WITH d AS (DELETE FROM orders RETURNING 1) SELECT 1)', err: 'model_writes_disabled', ctx: ordersOnly },
  // EXPLAIN of a write runs nothing, but only someone allowed to make the write gets its plan.
  { sql: 'EXPLAIN DELETE FROM orders', err: 'model_writes_disabled', ctx: ordersOnly },
  { sql: 'EXPLAIN UPDATE orders SET total = 1', out: 'EXPLAIN UPDATE orders SET total = 1', ctx: ordersOnly, kinds: ['read'], writes: [] },

  // No gate at all: every write is refused (fail closed).
  { sql: 'INSERT INTO orders DEFAULT VALUES', err: 'model_writes_disabled', ctx: { writeGate: undefined } },
  { sql: 'DELETE FROM orders', err: 'model_writes_disabled', ctx: ordersOnly, message: 'DELETE on orders is not allowed' },

  // MERGE waits for its own support.
  {
    sql: 'MERGE INTO orders o USING staging s ON o.id = s.id WHEN MATCHED THEN DELETE',
    err: 'statement_not_allowed',
    ctx: { writeGate: () => true },
    message: 'MERGE is not supported yet',
  },
  {
    sql: 'WITH m AS (SELECT 1) MERGE INTO orders o USING m ON true WHEN MATCHED THEN DELETE',
    err: 'statement_not_allowed',
    ctx: { writeGate: () => true },
  },

  // Multi-statement strings: all parts allowed or nothing is forwarded.
  { sql: 'SELECT 1; SELECT 2;', out: 'SELECT 1; SELECT 2', kinds: ['read', 'read'], multi: true },
  { sql: 'SELECT 1; DELETE FROM orders', err: 'model_writes_disabled', ctx: ordersOnly, multi: true },
  {
    sql: 'BEGIN; UPDATE orders SET total = 0 WHERE id = 7; COMMIT',
    out: 'BEGIN; UPDATE orders SET total = 0 WHERE id = 7; COMMIT',
    ctx: ordersOnly,
    kinds: ['transaction', 'write', 'transaction'],
    writes: [{ name: 'orders', op: 'update' }],
    multi: true,
  },
  { sql: 'SELECT 1; DROP TABLE orders', err: 'statement_not_allowed', message: 'DROP TABLE', multi: true },
  { sql: 'SET statement_timeout = 100; SET ROLE postgres', err: 'setting_not_allowed', multi: true },
];

runGolden(cases, ordersOnly);
