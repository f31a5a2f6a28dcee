// Golden cases: the system columns of a write target (ctid, xmin, xmax, cmin, cmax, tableoid) read as missing columns, like hidden ones.
import { gate, runGolden } from './golden';
import { principal, scopeFromFile, scopeVariant, WITH_COUNTRIES } from './rewrite-scope';

const scope = scopeFromFile(WITH_COUNTRIES);
const base = { scope, principal: principal('1'), captureWrites: false, writeGate: gate('insert:orders', 'update:orders', 'delete:orders') };
/** Orders whose key the agent may choose, for ON CONFLICT (id). */
const IDS = scopeVariant(WITH_COUNTRIES, {
  enable_writes: [{ models: ['orders'], operations: ['create', 'update', 'delete'], require_reason: false, writable_fields: { orders: ['id', 'customer_id', 'total_cents', 'status'] } }],
});

describe('system columns of a write target read as missing columns', () => {
  runGolden(
    [
      { sql: "UPDATE orders SET status = 'x' WHERE ctid = '(0,1)'", err: 'column_not_found', message: 'column "ctid" does not exist' },
      { sql: "UPDATE orders SET status = 'x' WHERE id = 1 RETURNING xmin", err: 'column_not_found', message: 'column "xmin" does not exist' },
      { sql: "UPDATE orders o SET status = 'x' WHERE o.id = 1 RETURNING o.tableoid", err: 'column_not_found', message: 'column o.tableoid does not exist' },
      { sql: "UPDATE orders SET status = 'x' WHERE id = 1 RETURNING *, cmax", err: 'column_not_found', message: 'column "cmax" does not exist' },
      { sql: 'UPDATE orders SET status = cmin::text WHERE id = 1', err: 'column_not_found', message: 'column "cmin" does not exist' },
      { sql: "UPDATE orders SET status = 'x' WHERE id IN (SELECT 1 WHERE xmax <> '0')", err: 'column_not_found', message: 'column "xmax" does not exist' },
      { sql: "UPDATE orders SET xmin = '1'", err: 'column_not_found', message: 'column "xmin" of relation "orders" does not exist' },
      { sql: "DELETE FROM orders WHERE orders.xmax <> '0'", err: 'column_not_found', message: 'column orders.xmax does not exist' },
      { sql: 'DELETE FROM orders WHERE id = 1 RETURNING id, tableoid', err: 'column_not_found', message: 'column "tableoid" does not exist' },
      { sql: 'INSERT INTO orders (customer_id, total_cents) VALUES (1, 1) RETURNING ctid', err: 'column_not_found', message: 'column "ctid" does not exist' },
      { sql: 'INSERT INTO orders (customer_id, total_cents, ctid) VALUES (1, 1, 1)', err: 'column_not_found', message: 'column "ctid" of relation "orders" does not exist' },
      {
        sql: 'INSERT INTO orders (id, customer_id, total_cents) VALUES (1, 1, 1) ON CONFLICT (id) DO UPDATE SET status = excluded.xmin::text',
        err: 'column_not_found',
        message: 'column excluded.xmin does not exist',
        ctx: { scope: IDS },
      },
      { sql: "/*dry_run='true'*/ UPDATE orders SET status = 'x' WHERE ctid = '(0,1)'", err: 'column_not_found' },
      { sql: "WITH u AS (UPDATE orders SET status = 'x' RETURNING xmin) SELECT * FROM u", err: 'column_not_found' },
    ],
    base,
  );
});
