// Golden cases for system columns in reads: not columns of a policy view, unless the model sets system_columns.
import { runGolden, type Golden } from './golden';
import { CUSTOMERS, ORDERS, principal, scopeFromFile, scopeVariant, WITH_COUNTRIES } from './rewrite-scope';

const scope = scopeFromFile(WITH_COUNTRIES);
const base = { scope, principal: principal('1'), captureWrites: false };
const optIn = scopeVariant(WITH_COUNTRIES, { models: [{ table: 'customers', system_columns: true }, 'orders', 'countries'] });
const withSystem = (...names: string[]): string => CUSTOMERS.replace(' FROM public.customers', `, ${names.join(', ')} FROM public.customers`);

const cases: Golden[] = [
  // By default a policy view has no system columns: PostgreSQL (or, qualified, the proxy) says they do not exist.
  { sql: 'SELECT ctid, xmin FROM customers', out: `SELECT ctid, xmin FROM ${CUSTOMERS} AS customers LIMIT 201` },
  { sql: 'SELECT c.ctid FROM customers c', err: 'column_not_found', message: 'column c.ctid does not exist' },
  { sql: 'SELECT o.tableoid FROM orders o JOIN customers c ON c.id = o.customer_id', err: 'column_not_found' },
  { sql: 'SELECT s.xmax FROM (SELECT * FROM orders) s', err: 'column_not_found' },
  { sql: 'WITH x AS (SELECT * FROM orders) SELECT x.cmin FROM x', err: 'column_not_found' },
  // The cast's lookup goes through the policy's pg_class, which this catalog (no objects loaded) does not serve: fail closed.
  { sql: 'SELECT tableoid::regclass FROM customers', err: 'catalog_not_allowed' },
  // Opted in: the statement's named system columns are carried by that table's view only.
  { sql: 'SELECT c.xmin, c.name FROM customers c', out: `SELECT c.xmin, c.name FROM ${withSystem('xmin')} AS c LIMIT 201`, ctx: { scope: optIn } },
  { sql: 'SELECT ctid, xmin FROM customers WHERE id = 1', out: `SELECT ctid, xmin FROM ${withSystem('ctid', 'xmin')} AS customers WHERE id = 1 LIMIT 201`, ctx: { scope: optIn } },
  { sql: 'SELECT o.xmin FROM orders o', err: 'column_not_found', ctx: { scope: optIn } },
  { sql: 'SELECT xmin FROM orders', out: `SELECT xmin FROM ${ORDERS} AS orders LIMIT 201`, ctx: { scope: optIn } },
  { sql: 'SELECT c.pg_column_size FROM customers c', err: 'column_not_found', ctx: { scope: optIn } },
];

runGolden(cases, base);
