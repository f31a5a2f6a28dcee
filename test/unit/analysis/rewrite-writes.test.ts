// Golden cases for writes under the policy: the tenant on every target row, writable columns, hidden and masked references, RETURNING, reasons.
import { analyze, initAnalysis } from '../../../src/analysis/pipeline';
import { gate, runGolden, type Golden } from './golden';
import { CUSTOMERS, ORDERS, principal, quickstartCatalog, scopeFromFile, scopeVariant, scopeWithForeignKeys, WITH_COUNTRIES } from './rewrite-scope';
import { buildPolicy } from '../../../src/policy/load';
import { policySchema } from '../../../src/policy/schema';
import { compileScope } from '../../../src/policy/scope';

const scope = scopeFromFile(WITH_COUNTRIES);
const base = { scope, principal: principal('1'), captureWrites: false, writeGate: gate('insert:orders', 'update:orders', 'delete:orders', 'insert:customers', 'update:customers') };
const T = `'1'::int`;
const REASON = "/*reason='ticket 7'*/ ";
const EMAIL_MASK = `CAST(CASE WHEN strpos(customers.email, '@') = 0 THEN '***' ELSE ("left"(customers.email, 1) || '***@') || split_part(customers.email, '@', -1) END AS varchar(120)) AS email`;

/** Orders whose key the agent may choose (the policy lists it among the writable fields). */
const IDS = scopeVariant(WITH_COUNTRIES, {
  enable_writes: [{ models: ['orders'], operations: ['create', 'update', 'delete'], require_reason: false, writable_fields: { orders: ['id', 'customer_id', 'total_cents', 'status'] } }],
});
const CAPPED = scopeVariant(WITH_COUNTRIES, { enable_writes: [{ models: ['orders'], operations: ['create', 'update', 'delete'], require_reason: false, max_affected_rows: 5 }] });
/** CAPPED, with a function of the policy's that the catalog says is volatile. */
const VOLATILE_PICK = compileScope(
  buildPolicy(policySchema.parse({ ...CAPPED.policy.raw, allow_functions: ['public.pick'] }), WITH_COUNTRIES),
  { ...quickstartCatalog(), volatileFunctions: new Set(['public.pick', 'random', 'pg_catalog.random']), userOperators: new Map([['<~>', [['public', 'pick']] as const]]) },
);

const cases: Golden[] = [
  // INSERT: the tenant comes from the principal.
  { sql: 'INSERT INTO orders (customer_id, total_cents) VALUES (5, 100)', out: `INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (5, 100, ${T})` },
  // A tenant the agent wrote is checked, then replaced by the proxy's own literal.
  { sql: 'INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (5, 100, 1), (6, 7, 1)', out: `INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (5, 100, ${T}), (6, 7, ${T})` },
  { sql: 'INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (4, 1, 1::bit(1)::bit(2)::int)', err: 'tenant_forged' },
  { sql: "INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (4, 1, '1'::\"char\"::int)", err: 'tenant_forged' },
  { sql: 'INSERT INTO orders (customer_id, total_cents) VALUES ((SELECT max(id) FROM customers), 100)', out: `INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES ((SELECT max(id) FROM ${CUSTOMERS} AS customers), 100, ${T})` },
  { sql: 'INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (5, 100, 2)', err: 'tenant_forged', message: '"tenant_id" must be your own tenant' },
  { sql: 'INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (5, 100, 1), (5, 100, $1)', err: 'tenant_forged' },
  { sql: 'INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT 1, 2, 1', err: 'tenant_forged' },
  {
    sql: `INSERT INTO orders (customer_id, total_cents) SELECT id, 100 FROM customers WHERE name = 'x'`,
    out: `INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT ormai_source.*, ${T} FROM ( SELECT id, 100 FROM ${CUSTOMERS} AS customers WHERE name = 'x' ) AS ormai_source`,
  },
  { sql: 'INSERT INTO orders VALUES (1, 1, 1, 1)', err: 'statement_not_allowed', message: 'INSERT without a column list is not allowed' },
  { sql: 'INSERT INTO orders DEFAULT VALUES', err: 'statement_not_allowed' },
  { sql: `${REASON}INSERT INTO customers (name, api_secret) VALUES ('x', 'y')`, err: 'column_not_found', message: 'column "api_secret" of relation "customers" does not exist' },
  { sql: `${REASON}INSERT INTO customers (name, nonexistent) VALUES ('x', 'y')`, err: 'column_not_found', message: 'column "nonexistent" of relation "customers" does not exist' },
  { sql: `${REASON}INSERT INTO customers (id, name) VALUES (1, 'x')`, err: 'field_not_writable', message: 'column "id" of "customers" is not writable' },
  // A key the database numbers is not writable unless the policy lists it: another tenant's row might hold it.
  { sql: 'INSERT INTO orders (id, customer_id, total_cents) VALUES (7, 1, 1)', err: 'field_not_writable', message: 'column "id" of "orders" is set by the database' },
  { sql: 'UPDATE orders SET id = 7 WHERE id = 1', err: 'field_not_writable', message: 'is set by the database' },
  // RETURNING: visible columns, masked ones masked.
  { sql: 'INSERT INTO orders (customer_id, total_cents) VALUES (1, 100) RETURNING id', out: `INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 100, ${T}) RETURNING id` },
  {
    sql: `${REASON}INSERT INTO customers (name, email) VALUES ('x', 'x@y.z') RETURNING *`,
    out: `INSERT INTO customers (name, email, tenant_id) VALUES ('x', 'x@y.z', ${T}) RETURNING customers.id, customers.tenant_id, customers.name, ${EMAIL_MASK}, CAST(CASE WHEN length(customers.phone) <= 4 THEN repeat('*', length(customers.phone)) ELSE ("left"(customers.phone, 2) || repeat('*', length(customers.phone) - 4)) || "right"(customers.phone, 2) END AS varchar(40)) AS phone`,
  },
  { sql: `${REASON}INSERT INTO customers (name) VALUES ('x') RETURNING email`, out: `INSERT INTO customers (name, tenant_id) VALUES ('x', ${T}) RETURNING ${EMAIL_MASK}` },
  { sql: `${REASON}INSERT INTO customers (name) VALUES ('x') RETURNING email AS e`, out: `INSERT INTO customers (name, tenant_id) VALUES ('x', ${T}) RETURNING ${EMAIL_MASK.replace(/AS email$/, 'AS e')}` },
  { sql: `${REASON}INSERT INTO customers (name) VALUES ('x') RETURNING upper(email)`, err: 'field_masked' },
  { sql: `${REASON}INSERT INTO customers (name) VALUES ('x') RETURNING api_secret`, err: 'column_not_found', message: 'column "api_secret" does not exist' },
  { sql: `${REASON}INSERT INTO customers (name) VALUES ('x') RETURNING customers`, err: 'statement_not_allowed', message: 'whole-row reference' },
  { sql: `${REASON}INSERT INTO customers (name) VALUES ('x') RETURNING to_jsonb(customers.*)`, err: 'statement_not_allowed', message: 'whole-row reference' },
  { sql: `${REASON}UPDATE customers c SET name = 'x' WHERE row_to_json(c.*)::text LIKE '%k%'`, err: 'statement_not_allowed', message: 'whole-row reference' },
  { sql: `${REASON}UPDATE customers c SET name = 'x' WHERE c::text LIKE '%k%'`, err: 'statement_not_allowed', message: 'whole-row reference' },
  // ON CONFLICT: the conflicting row must be the principal's own.
  {
    sql: 'INSERT INTO orders (id, customer_id, total_cents) VALUES (1, 1, 1) ON CONFLICT (id) DO UPDATE SET total_cents = excluded.total_cents',
    out: `INSERT INTO orders (id, customer_id, total_cents, tenant_id) VALUES (1, 1, 1, ${T}) ON CONFLICT (id) DO UPDATE SET total_cents = excluded.total_cents WHERE orders.tenant_id = ${T}`,
    ctx: { scope: IDS },
  },
  { sql: 'INSERT INTO orders (id, customer_id, total_cents) VALUES (1, 1, 1) ON CONFLICT (id) DO UPDATE SET tenant_id = 2', err: 'field_not_writable', message: 'the tenant column "tenant_id" cannot be assigned' , ctx: { scope: IDS } },
  { sql: 'INSERT INTO orders (id, customer_id, total_cents) VALUES (1, 1, 1) ON CONFLICT DO NOTHING', out: `INSERT INTO orders (id, customer_id, total_cents, tenant_id) VALUES (1, 1, 1, ${T}) ON CONFLICT DO NOTHING` , ctx: { scope: IDS } },
  { sql: `${REASON}INSERT INTO customers (name) VALUES ('x') ON CONFLICT (api_secret) DO NOTHING`, err: 'column_not_found' },

  // UPDATE and DELETE: the target rows are the principal's own.
  { sql: "UPDATE orders SET status = 'paid' WHERE id = 1", out: `UPDATE orders SET status = 'paid' WHERE orders.tenant_id = ${T} AND id = 1` },
  { sql: "UPDATE orders SET status = 'paid'", out: `UPDATE orders SET status = 'paid' WHERE orders.tenant_id = ${T}` },
  { sql: "UPDATE orders o SET status = 'paid' WHERE o.id = 1 OR o.id = 2", out: `UPDATE orders AS o SET status = 'paid' WHERE o.tenant_id = ${T} AND CASE WHEN o.tenant_id = ${T} THEN (o.id = 1 OR o.id = 2) ELSE false END` },
  // Conditions that can raise an error run only on the principal's rows; plain comparisons stay outside the CASE.
  {
    sql: 'UPDATE orders SET status = 1 WHERE total_cents > 50000 AND make_date(2000, 1, total_cents) IS NOT NULL AND id IN (1, $1)',
    out: `UPDATE orders SET status = 1 WHERE orders.tenant_id = ${T} AND total_cents > 50000 AND id IN (1, $1) AND CASE WHEN orders.tenant_id = ${T} THEN make_date(2000, 1, total_cents) IS NOT NULL ELSE false END`,
  },
  {
    sql: 'UPDATE orders SET total_cents = (SELECT max(total_cents) FROM orders o2) FROM customers c WHERE c.id = orders.customer_id',
    out: `UPDATE orders SET total_cents = (SELECT max(total_cents) FROM ${ORDERS} AS o2) FROM ${CUSTOMERS} AS c WHERE orders.tenant_id = ${T} AND c.id = orders.customer_id`,
  },
  { sql: 'UPDATE orders SET tenant_id = 2 WHERE id = 1', err: 'field_not_writable', message: 'the tenant column "tenant_id" cannot be assigned' },
  { sql: 'UPDATE orders SET nope = 2 WHERE id = 1', err: 'column_not_found', message: 'column "nope" of relation "orders" does not exist' },
  { sql: "UPDATE orders SET status = 'paid' WHERE tenant_id = 2", out: `UPDATE orders SET status = 'paid' WHERE orders.tenant_id = ${T} AND tenant_id = 2`, flags: ['tenant_forged'] },
  { sql: 'DELETE FROM orders WHERE id = 1', out: `DELETE FROM orders WHERE orders.tenant_id = ${T} AND id = 1` },
  { sql: 'DELETE FROM orders', out: `DELETE FROM orders WHERE orders.tenant_id = ${T}` },
  {
    sql: `DELETE FROM orders USING customers c WHERE c.id = orders.customer_id AND c.email LIKE 'x%' RETURNING orders.id`,
    out: `DELETE FROM orders USING ${CUSTOMERS} AS c WHERE orders.tenant_id = ${T} AND c.id = orders.customer_id AND CASE WHEN orders.tenant_id = ${T} THEN c.email LIKE 'x%' ELSE false END RETURNING orders.id`,
  },
  { sql: 'DELETE FROM orders USING customers c WHERE c.id = orders.customer_id RETURNING *', err: 'statement_not_allowed', message: 'RETURNING * is not allowed together with FROM or USING' },
  { sql: 'DELETE FROM orders WHERE id = 1 RETURNING *', out: `DELETE FROM orders WHERE orders.tenant_id = ${T} AND id = 1 RETURNING orders.id, orders.tenant_id, orders.customer_id, orders.total_cents, orders.status, orders.created_at` },
  // Hidden and masked columns of the target, wherever they are named.
  { sql: `${REASON}UPDATE customers SET name = 'x' WHERE api_secret = 'k'`, err: 'column_not_found', message: 'column "api_secret" does not exist' },
  { sql: `${REASON}UPDATE customers c SET name = 'x' WHERE c.api_secret = 'k'`, err: 'column_not_found', message: 'column c.api_secret does not exist' },
  { sql: `${REASON}UPDATE customers SET name = 'x' WHERE id IN (SELECT id FROM orders WHERE api_secret = 'k')`, err: 'column_not_found' },
  { sql: `${REASON}UPDATE customers SET name = api_secret`, err: 'column_not_found' },
  { sql: `${REASON}UPDATE customers SET api_secret = 'x'`, err: 'column_not_found', message: 'column "api_secret" of relation "customers" does not exist' },
  { sql: `${REASON}UPDATE customers SET name = email`, err: 'field_masked', message: 'masked column "email" cannot be read in a write' },
  { sql: `${REASON}UPDATE customers SET name = 'x' WHERE email LIKE 'a%'`, err: 'field_masked' },
  { sql: `${REASON}UPDATE customers SET name = 'x' WHERE customers.phone IS NULL`, err: 'field_masked' },
  { sql: `${REASON}UPDATE customers SET email = 'new@acme.com' WHERE id = 3`, out: `UPDATE customers SET email = 'new@acme.com' WHERE customers.tenant_id = ${T} AND id = 3` },
  { sql: `${REASON}UPDATE customers SET name = 'x' WHERE id = 3 RETURNING id, email`, out: `UPDATE customers SET name = 'x' WHERE customers.tenant_id = ${T} AND id = 3 RETURNING id, ${EMAIL_MASK}` },
  { sql: `${REASON}UPDATE customers SET name = 'x' RETURNING customers`, err: 'statement_not_allowed', message: 'whole-row reference' },

  // Reasons, where the grant requires one.
  { sql: "UPDATE customers SET name = 'x' WHERE id = 3", err: 'reason_required', message: 'UPDATE on customers needs a reason' },
  { sql: "/*reason=''*/ UPDATE customers SET name = 'x' WHERE id = 3", err: 'reason_required' },
  { sql: "UPDATE customers SET name = 'x' WHERE id = 3 /*reason='Customer%20asked'*/", out: `UPDATE customers SET name = 'x' WHERE customers.tenant_id = ${T} AND id = 3` },
  { sql: "EXPLAIN UPDATE customers SET name = 'x' WHERE id = 3", out: `EXPLAIN (COSTS OFF) UPDATE customers SET name = 'x' WHERE customers.tenant_id = ${T} AND id = 3` },

  // Rules not enforced yet refuse what they cover; a dry run never writes.
  // Dry runs: the write becomes the SELECT of what it would change; no reason needed, nothing written.
  {
    sql: "/*dry_run='true'*/ UPDATE orders SET status = 'cancelled', total_cents = total_cents + $1 WHERE status = 'pending'",
    out: `SELECT count(*) OVER () AS affected_rows, orders.id, orders.status AS status_before, 'cancelled' AS status_after, orders.total_cents AS total_cents_before, total_cents + $1 AS total_cents_after FROM public.orders AS orders WHERE orders.tenant_id = ${T} AND status = 'pending' ORDER BY orders.id LIMIT 201`,
  },
  {
    sql: `/*dry_run='true'*/ UPDATE customers c SET email = 'new@x.io' WHERE c.id = 3`,
    out: `SELECT count(*) OVER () AS affected_rows, c.id, ${EMAIL_MASK.replace(/customers\./g, 'c.').replace(/AS email$/, 'AS email_before')}, 'new@x.io' AS email_after FROM public.customers AS c WHERE c.tenant_id = ${T} AND c.id = 3 ORDER BY c.id LIMIT 201`,
  },
  {
    sql: "/*dry_run='1'*/ DELETE FROM orders USING customers c WHERE c.id = orders.customer_id AND c.name = 'x'",
    out: `SELECT count(*) OVER () AS affected_rows, orders.id, orders.tenant_id, orders.customer_id, orders.total_cents, orders.status, orders.created_at FROM public.orders AS orders, ${CUSTOMERS} AS c WHERE orders.tenant_id = ${T} AND c.id = orders.customer_id AND c.name = 'x' ORDER BY orders.id LIMIT 201`,
  },
  {
    sql: "/*dry_run='true'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 2), (3, 4)",
    out: `SELECT count(*) OVER () AS affected_rows, ormai_insert.* FROM ( VALUES (1, 2, ${T}), (3, 4, ${T}) ) AS ormai_insert(customer_id, total_cents, tenant_id) LIMIT 201`,
  },
  { sql: "/*dry_run='true'*/ UPDATE orders SET tenant_id = 2", err: 'field_not_writable' },
  { sql: "/*dry_run='true'*/ UPDATE customers SET name = email", err: 'field_masked' },
  { sql: "/*dry_run='true'*/ UPDATE orders SET (status, total_cents) = ('a', 1)", err: 'statement_not_allowed', message: 'a dry run of UPDATE' },
  { sql: "/*dry_run='true'*/ INSERT INTO orders (id, customer_id, total_cents) VALUES (1, 1, 1) ON CONFLICT DO NOTHING", err: 'statement_not_allowed', message: 'a dry run of INSERT … ON CONFLICT' , ctx: { scope: IDS } },
  { sql: "/*dry_run='maybe'*/ UPDATE orders SET status = 'x'", err: 'statement_not_allowed', message: "dry_run='maybe' is not understood" },
  { sql: "/*dry_run='false'*/ UPDATE orders SET status = 'x'", out: `UPDATE orders SET status = 'x' WHERE orders.tenant_id = ${T}` },
  // max_affected_rows: counted inside the statement, in its own snapshot, failing it before anything is written.
  {
    sql: "UPDATE orders SET status = 'x' WHERE id = 1",
    out: `UPDATE orders SET status = 'x' WHERE orders.tenant_id = ${T} AND id = 1 AND (SELECT CASE WHEN ormai_count.n <= 5 THEN true ELSE CAST(('ormai:max_affected_rows:' || ormai_count.n) || ':5' AS int) > 0 END FROM ( SELECT count(*) AS n FROM public.orders AS orders WHERE (orders.tenant_id = ${T} AND id = 1) ) AS ormai_count)`,
    ctx: { scope: CAPPED },
  },
  {
    sql: 'DELETE FROM orders o USING customers c WHERE c.id = o.customer_id',
    out: `DELETE FROM orders AS o USING ${CUSTOMERS} AS c WHERE o.tenant_id = ${T} AND c.id = o.customer_id AND (SELECT CASE WHEN ormai_count.n <= 5 THEN true ELSE CAST(('ormai:max_affected_rows:' || ormai_count.n) || ':5' AS int) > 0 END FROM ( SELECT count(DISTINCT o.ctid) AS n FROM public.orders AS o, ${CUSTOMERS} AS c WHERE (o.tenant_id = ${T} AND c.id = o.customer_id) ) AS ormai_count)`,
    ctx: { scope: CAPPED },
  },
  { sql: 'INSERT INTO orders (customer_id, total_cents) VALUES (1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (1, 6)', err: 'max_affected_rows_exceeded', message: 'the write would change 6 rows; the policy allows at most 5', ctx: { scope: CAPPED } },
  { sql: 'INSERT INTO orders (customer_id, total_cents) SELECT 1, 1', err: 'statement_not_allowed', message: 'not allowed under max_affected_rows', ctx: { scope: CAPPED } },
  { sql: 'INSERT INTO orders (customer_id, total_cents) VALUES (1, 1)', out: `INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, ${T})`, ctx: { scope: CAPPED } },
  { sql: "EXPLAIN UPDATE orders SET status = 'x'", out: `EXPLAIN (COSTS OFF) UPDATE orders SET status = 'x' WHERE orders.tenant_id = ${T}`, ctx: { scope: CAPPED } },

  // Grants: operations and tables the policy does not list.
  { sql: `${REASON}DELETE FROM customers WHERE id = 1`, err: 'model_writes_disabled', ctx: { writeGate: () => true } },
  { sql: 'UPDATE internal_notes SET body = 1', err: 'model_writes_disabled', message: 'UPDATE on internal_notes is not allowed' },
  { sql: 'UPDATE internal_notes SET body = 1', err: 'model_not_allowed', message: 'relation "internal_notes" does not exist', ctx: { writeGate: () => true } },
  { sql: 'INSERT INTO orders (customer_id, total_cents) SELECT id, 1 FROM internal_notes', err: 'model_not_allowed', message: 'relation "internal_notes" does not exist' },
  { sql: 'UPDATE countries SET name = 1', err: 'model_writes_disabled', ctx: { writeGate: () => true } },

  // A write in the WITH of a SELECT goes through the write rules like a statement of its own.
  {
    sql: `WITH d AS (DELETE FROM orders WHERE status = 'cancelled' RETURNING *) SELECT count(*) FROM d`,
    out: `WITH d AS (DELETE FROM orders WHERE orders.tenant_id = ${T} AND status = 'cancelled' RETURNING orders.id, orders.tenant_id, orders.customer_id, orders.total_cents, orders.status, orders.created_at) SELECT count(*) FROM d LIMIT 201`,
  },
  {
    sql: `/*reason='r'*/ WITH u AS (UPDATE customers SET name = 'x' WHERE id = 1 RETURNING id, email) SELECT * FROM u`,
    out: `WITH u AS (UPDATE customers SET name = 'x' WHERE customers.tenant_id = ${T} AND id = 1 RETURNING id, ${EMAIL_MASK}) SELECT * FROM u LIMIT 201`,
  },
  { sql: `WITH u AS (UPDATE customers SET name = 'x' WHERE id = 1 RETURNING id) SELECT * FROM u`, err: 'reason_required' },
  { sql: `/*reason='r'*/ WITH u AS (UPDATE customers SET name = api_secret RETURNING id) SELECT * FROM u`, err: 'column_not_found' },
  { sql: `/*reason='r'*/ WITH u AS (UPDATE customers SET name = email RETURNING id) SELECT * FROM u`, err: 'field_masked' },
  { sql: `WITH u AS (INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, 2) RETURNING id) SELECT * FROM u`, err: 'tenant_forged' },
  { sql: `WITH d AS (DELETE FROM customers RETURNING id) SELECT * FROM d`, err: 'model_writes_disabled' },
  { sql: `/*dry_run='true'*/ WITH d AS (DELETE FROM orders RETURNING id) SELECT * FROM d`, err: 'statement_not_allowed', message: 'a dry run of a write inside WITH' },
  {
    sql: `WITH d AS (UPDATE orders SET status = 'x' RETURNING id) SELECT * FROM d`,
    err: 'statement_not_allowed',
    message: 'cannot sit inside WITH',
    ctx: { scope: scopeVariant(WITH_COUNTRIES, { require_approval: [{ operation: 'update', model: 'orders', approvers: 1, expires_in_s: 60 }] }) },
  },
  // Anywhere else a write below the statement is refused.
  { sql: 'WITH d AS (DELETE FROM orders RETURNING 1) INSERT INTO orders (customer_id, total_cents) VALUES (1, 1)', err: 'statement_not_allowed', message: 'data-modifying statements inside WITH are not allowed' },
  {
    sql: 'WITH a AS (UPDATE orders SET status = 1 RETURNING 1), b AS (UPDATE orders SET status = 2 RETURNING 1) SELECT 1',
    out: `WITH a AS (UPDATE orders SET status = 1 WHERE orders.tenant_id = ${T} RETURNING 1), b AS (UPDATE orders SET status = 2 WHERE orders.tenant_id = ${T} RETURNING 1) SELECT 1 LIMIT 201`,
  },
  { sql: 'SELECT * FROM (WITH d AS (DELETE FROM orders RETURNING id) SELECT id FROM d) s', err: 'statement_not_allowed', message: 'data-modifying statements inside WITH are not allowed' },
  { sql: 'EXPLAIN WITH d AS (DELETE FROM orders RETURNING id) SELECT id FROM d', err: 'statement_not_allowed', message: 'data-modifying statements inside WITH are not allowed' },
  // A read CTE under a write is rewritten like any read.
  {
    sql: 'WITH c AS (SELECT id FROM customers) UPDATE orders SET status = 1 WHERE customer_id IN (SELECT id FROM c)',
    out: `WITH c AS (SELECT id FROM ${CUSTOMERS} AS customers) UPDATE orders SET status = 1 WHERE orders.tenant_id = ${T} AND CASE WHEN orders.tenant_id = ${T} THEN customer_id IN (SELECT id FROM c) ELSE false END`,
  },
  { sql: 'EXPLAIN INSERT INTO orders (customer_id, total_cents) VALUES (1, 1)', out: `EXPLAIN (COSTS OFF) INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, ${T})` },
];

describe('writes under the policy', () => {
  runGolden(cases, base);
});

describe('require_approval: which writes a rule holds', () => {
  beforeAll(() => initAnalysis());
  const rules = scopeVariant(WITH_COUNTRIES, {
    require_approval: [
      { operation: 'update', model: 'orders', when: { field: 'status', in: ['refunded', 'void'] }, approvers: 2, expires_in_s: 600 },
      { operation: 'delete', model: 'orders', when: { affected_rows_gt: 1 }, approvers: 1, expires_in_s: 60 },
      { operation: 'create', model: 'orders', when: { affected_rows_gt: 2 }, approvers: 1, expires_in_s: 60 },
    ],
  });
  const need = (sql: string) => {
    const result = analyze(sql, { ...base, scope: rules, protocol: 'simple' });
    if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
    return result.statements[0].write?.approval;
  };

  const sqlOf = (sql: string) => {
    const result = analyze(sql, { ...base, scope: rules, protocol: 'simple' });
    if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
    return result.sql;
  };
  const VARCHAR = (v: string) => `CAST('${v}' AS varchar(20))`;

  test('a condition on an assigned constant or parameter is for PostgreSQL to judge, converting the value to the column type as the write would', () => {
    const judged = `${VARCHAR('refunded')} IN (${VARCHAR('refunded')}, ${VARCHAR('void')}) IS TRUE`;
    const preview = `SELECT COALESCE(json_agg(ormai_preview), '[]') FROM ( SELECT count(*) OVER () AS affected_rows, orders.id, orders.status AS status_before, 'refunded' AS status_after FROM public.orders AS orders WHERE orders.tenant_id = ${T} AND id = 1 ORDER BY orders.id LIMIT 100 ) AS ormai_preview`;
    expect(need("UPDATE orders SET status = 'refunded' WHERE id = 1")).toEqual({
      rule: 'update orders when status in ["refunded","void"]',
      approvers: 2,
      expiresInS: 600,
      // What the approvers see: the dry run of the write, as JSON; no assigned value reads the database.
      previewSql: preview,
      // And every row it matches, each hashed whole (count, key, values before and after): what the executor checks again.
      // No time column is assigned (a timestamp set to now() would be left out of the hash).
      previewDigestSql: `SELECT encode(sha256(convert_to(COALESCE(string_agg(ormai_rows.h, '' ORDER BY ormai_rows.h), ''), 'UTF8')), 'hex') FROM ( SELECT encode(sha256(convert_to(ormai_digest::text, 'UTF8')), 'hex') AS h FROM ( SELECT count(*) OVER () AS affected_rows, orders.id, orders.status AS status_before, 'refunded' AS status_after FROM public.orders AS orders WHERE orders.tenant_id = ${T} AND id = 1 ORDER BY orders.id ) AS ormai_digest ) AS ormai_rows`,
      timeColumns: [],
      comparedColumns: [],
      fieldCheckSql: `SELECT ${judged}`,
      fieldCheckParams: [],
      // Held, the write runs as it was analysed; sent unheld, it carries the guard below.
      statementSql: `UPDATE orders SET status = 'refunded' WHERE orders.tenant_id = ${T} AND id = 1`,
    });
    // The guard: PostgreSQL judges the value again as the write runs (no count: the rule is on values alone).
    expect(sqlOf("UPDATE orders SET status = 'refunded' WHERE id = 1")).toBe(
      `UPDATE orders SET status = 'refunded' WHERE orders.tenant_id = ${T} AND id = 1 AND (SELECT CASE WHEN ${judged} THEN CAST((SELECT 'ormai:approval_required:0:value') AS int) > 0 ELSE true END FROM ( SELECT 0 AS n ) AS ormai_count)`,
    );
    // A NULL of a type is a value like any other (it is also what the condition's placeholders are made of).
    expect(need('UPDATE orders SET status = NULL::text WHERE id = 1')?.fieldCheckSql).toBe(`SELECT CAST(NULL::text AS varchar(20)) IN (${VARCHAR('refunded')}, ${VARCHAR('void')}) IS TRUE`);
    // A value that reads as one of the rule's only once converted: PostgreSQL's to say.
    expect(need("UPDATE orders SET status = 'refunded   '::char(12) WHERE id = 1")?.fieldCheckSql).toBe(`SELECT CAST(CAST('refunded   ' AS char(12)) AS varchar(20)) IN (${VARCHAR('refunded')}, ${VARCHAR('void')}) IS TRUE`);
    expect(need('UPDATE orders SET status = $1::varchar(8) WHERE id = 1')).toMatchObject({ fieldCheckSql: `SELECT CAST(CAST($1 AS varchar(8)) AS varchar(20)) IN (${VARCHAR('refunded')}, ${VARCHAR('void')}) IS TRUE`, fieldCheckParams: [1] });
    expect(need('UPDATE orders SET total_cents = 1 WHERE id = 1')).toBeUndefined();
  });

  test('an INSERT sent unheld judges each value again as it runs; held, it runs without that guard', () => {
    const creating = scopeVariant(WITH_COUNTRIES, {
      require_approval: [{ operation: 'create', model: 'orders', when: { field: 'status', equals: 'void' }, approvers: 1, expires_in_s: 60 }],
    });
    const result = analyze("INSERT INTO orders (customer_id, total_cents, status) VALUES (1, 1, $1), (1, 2, NULL::text)", { ...base, scope: creating, protocol: 'extended' });
    if (!result.ok) throw new Error(result.error.message);
    const guard = (v: string) => `CASE WHEN CAST(${v} AS varchar(20)) IN (${VARCHAR('void')}) IS TRUE THEN CAST(CAST(CAST((SELECT 'ormai:approval_required:0:value') AS int) AS text) AS varchar(20)) ELSE ${v} END`;
    expect(result.sql).toBe(`INSERT INTO orders (customer_id, total_cents, status, tenant_id) VALUES (1, 1, ${guard('$1')}, ${T}), (1, 2, ${guard('NULL::text')}, ${T})`);
    expect(result.statements[0].write?.approval?.statementSql).toBe(`INSERT INTO orders (customer_id, total_cents, status, tenant_id) VALUES (1, 1, $1, ${T}), (1, 2, NULL::text, ${T})`);
  });

  test("a field an INSERT leaves out takes its default, which may be the rule's value: the rule applies; a DELETE's rule on a field holds every DELETE", () => {
    const catalog = quickstartCatalog();
    catalog.relations.get('public.orders')!.columns.find((c) => c.name === 'status')!.hasDefault = true;
    const policy = buildPolicy(
      policySchema.parse({
        ...scopeFromFile(WITH_COUNTRIES).policy.raw,
        require_approval: [
          { operation: 'create', model: 'orders', when: { field: 'status', equals: 'pending' }, approvers: 1, expires_in_s: 60 },
          { operation: 'delete', model: 'orders', when: { field: 'status', equals: 'cancelled' }, approvers: 1, expires_in_s: 60 },
        ],
      }),
      WITH_COUNTRIES,
    );
    const defaulted = { ...base, scope: compileScope(policy, catalog), protocol: 'simple' as const };
    const approval = (sql: string) => {
      const result = analyze(sql, defaulted);
      if (!result.ok) throw new Error(result.error.message);
      return result.statements[0].write?.approval;
    };
    expect(approval('INSERT INTO orders (customer_id, total_cents) VALUES (1, 1)')).toMatchObject({ rule: 'create orders when status = "pending"' });
    expect(approval('INSERT INTO orders (customer_id, total_cents) VALUES (1, 1)')?.fieldCheckSql).toBeUndefined();
    expect(approval("INSERT INTO orders (customer_id, total_cents, status) VALUES (1, 1, 'paid')")?.fieldCheckSql).toBeDefined();
    expect(approval('DELETE FROM orders WHERE id = 1')).toMatchObject({ rule: 'delete orders when status = "cancelled"' });
  });

  test('a field assigned from anything but a constant or a parameter may hold any value: the rule applies', () => {
    expect(need("UPDATE orders SET status = lower('VOID') WHERE id = 1")).toMatchObject({ approvers: 2 });
    expect(need("UPDATE orders SET status = lower('VOID') WHERE id = 1")?.fieldCheckSql).toBeUndefined();
    expect(need('UPDATE orders SET status = customer_id::text WHERE id = 1')?.fieldCheckSql).toBeUndefined();
    // Values read from the database are compared with the preview when the approved write runs.
    expect(need("UPDATE orders SET status = (SELECT name FROM customers WHERE id = 3), total_cents = 1 WHERE id = 1")?.comparedColumns).toEqual(['status']);
  });

  test('a condition on affected rows carries the count the session runs first', () => {
    expect(need('DELETE FROM orders WHERE id = $1')).toMatchObject({
      rule: 'delete orders when affected_rows > 1',
      approvers: 1,
      expiresInS: 60,
      affectedRowsGt: 1,
      countSql: `SELECT count(*) AS n FROM public.orders AS orders WHERE orders.tenant_id = ${T} AND id = $1`,
    });
    expect(need('INSERT INTO orders (customer_id, total_cents) VALUES (1, 1), (1, 2)')).toBeUndefined();
    expect(need('INSERT INTO orders (customer_id, total_cents) VALUES (1, 1), (1, 2), (1, 3)')?.rule).toBe('create orders when affected_rows > 2');
  });

  test('EXPLAIN is never held', () => {
    expect(need("EXPLAIN UPDATE orders SET status = 'void'")).toBeUndefined();
  });
});

describe('before/after capture columns from PostgreSQL 18 (RETURNING old.x)', () => {
  const pg18 = { ...scope, catalog: { ...scope.catalog, serverVersionNum: 180001 } };
  runGolden(
    [
      {
        sql: "UPDATE orders SET status = 'paid' WHERE id = 1",
        out: `UPDATE orders SET status = 'paid' WHERE orders.tenant_id = ${T} AND id = 1 RETURNING orders.id AS ormai_capture_0, old.status AS ormai_capture_1, orders.status AS ormai_capture_2`,
      },
      // A relation of the statement named old is what old.x would read: the join on the key then.
      {
        sql: "UPDATE orders SET status = 'paid' FROM (SELECT 1 AS id, 'fake' AS status) old WHERE orders.id = old.id",
        out:
          `UPDATE orders SET status = 'paid' FROM ( SELECT 1 AS id, 'fake' AS status ) AS old, ( SELECT id AS ormai_key_0, status AS ormai_before_0 FROM public.orders WHERE tenant_id = ${T} ) AS ormai_old ` +
          `WHERE orders.tenant_id = ${T} AND orders.id = old.id AND orders.id = ormai_old.ormai_key_0 RETURNING orders.id AS ormai_capture_0, ormai_old.ormai_before_0 AS ormai_capture_1, orders.status AS ormai_capture_2`,
      },
    ],
    { ...base, scope: pg18, captureWrites: true },
  );
});

describe('before/after capture columns', () => {
  // What the session always runs: the capture columns come last and the router cuts them off.
  runGolden(
    [
      {
        sql: "UPDATE orders SET status = 'paid' WHERE id = 1",
        out:
          `UPDATE orders SET status = 'paid' FROM ( SELECT id AS ormai_key_0, status AS ormai_before_0 FROM public.orders WHERE tenant_id = ${T} ) AS ormai_old ` +
          `WHERE orders.tenant_id = ${T} AND id = 1 AND orders.id = ormai_old.ormai_key_0 RETURNING orders.id AS ormai_capture_0, ormai_old.ormai_before_0 AS ormai_capture_1, orders.status AS ormai_capture_2`,
      },
      {
        sql: "UPDATE orders o SET status = 'paid' FROM customers c WHERE c.id = o.customer_id RETURNING o.id",
        out:
          `UPDATE orders AS o SET status = 'paid' FROM ${CUSTOMERS} AS c, ( SELECT id AS ormai_key_0, status AS ormai_before_0 FROM public.orders WHERE tenant_id = ${T} ) AS ormai_old ` +
          `WHERE o.tenant_id = ${T} AND c.id = o.customer_id AND o.id = ormai_old.ormai_key_0 RETURNING o.id, o.id AS ormai_capture_0, ormai_old.ormai_before_0 AS ormai_capture_1, o.status AS ormai_capture_2`,
      },
      {
        sql: 'DELETE FROM orders WHERE id = 1',
        out:
          `DELETE FROM orders WHERE orders.tenant_id = ${T} AND id = 1 RETURNING orders.id AS ormai_capture_0, orders.tenant_id AS ormai_capture_1, orders.customer_id AS ormai_capture_2, ` +
          'orders.total_cents AS ormai_capture_3, orders.status AS ormai_capture_4, orders.created_at AS ormai_capture_5',
      },
      {
        sql: 'INSERT INTO orders (customer_id, total_cents) VALUES (5, 100)',
        out: `INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (5, 100, ${T}) RETURNING orders.id AS ormai_capture_0, orders.customer_id AS ormai_capture_1, orders.total_cents AS ormai_capture_2, orders.tenant_id AS ormai_capture_3`,
      },
      // Not captured: ON CONFLICT DO UPDATE (a row may be inserted or updated), tables without a visible primary key.
      {
        sql: 'INSERT INTO orders (id, customer_id, total_cents) VALUES (1, 1, 1) ON CONFLICT (id) DO UPDATE SET total_cents = 2',
        out: `INSERT INTO orders (id, customer_id, total_cents, tenant_id) VALUES (1, 1, 1, ${T}) ON CONFLICT (id) DO UPDATE SET total_cents = 2 WHERE orders.tenant_id = ${T}`,
        ctx: { scope: IDS },
      },
      // A write inside the WITH of a SELECT: neither its rows nor their number reach the trail.
      { sql: 'WITH x AS (INSERT INTO orders (customer_id, total_cents) VALUES (1, 1) RETURNING id) SELECT * FROM x', err: 'statement_not_allowed', message: 'cannot be audited with the rows it changes' },
      { sql: "/*reason='r'*/ WITH d AS (UPDATE customers SET phone = '000' RETURNING id) SELECT 42 WHERE false", err: 'statement_not_allowed', message: 'cannot be audited with the rows it changes' },
    ],
    { ...base, captureWrites: true },
  );
});

describe('names and shapes the red team found', () => {
  runGolden(
    [
      // Names the proxy gives what it adds are not the agent's to use (information_schema's ormai_mask is).
      { sql: "UPDATE customers SET name = 'x' WHERE id = 1 RETURNING ormai_old.ormai_before_0", err: 'statement_not_allowed', message: 'reserved for the proxy', ctx: { writeGate: () => true } },
      { sql: 'SELECT 1 AS x FROM orders AS ormai_source', err: 'statement_not_allowed', message: 'reserved for the proxy' },
      { sql: 'WITH ormai_count AS (SELECT 1) SELECT * FROM ormai_count', err: 'statement_not_allowed', message: 'reserved for the proxy' },
      // excluded, old and new name target rows in PostgreSQL: never the target's alias.
      { sql: "/*reason='r'*/ UPDATE customers AS excluded SET name = excluded.email", err: 'statement_not_allowed', message: 'cannot be the alias of the write target' },
      // A dry run keeps the write's WITH: a CTE may shadow a table name.
      {
        sql: "/*dry_run='true'*/ WITH customers AS (SELECT 1 AS x) UPDATE orders SET status = (SELECT max(c.x)::text FROM customers c) WHERE orders.id = 1",
        out: `WITH customers AS (SELECT 1 AS x) SELECT count(*) OVER () AS affected_rows, orders.id, orders.status AS status_before, (SELECT (max(c.x))::text FROM customers AS c) AS status_after FROM public.orders AS orders WHERE orders.tenant_id = ${T} AND orders.id = 1 ORDER BY orders.id LIMIT 201`,
      },
      // A dry_run the tag syntax lost never becomes a real write.
      { sql: "/*dry_run=true*/ UPDATE orders SET status = 'x' WHERE id = 1", err: 'statement_not_allowed', message: 'a dry_run tag could not be read' },
      { sql: "/*DRY_RUN='true'*/ UPDATE orders SET status = 'x' WHERE id = 1", err: 'statement_not_allowed', message: 'a dry_run tag could not be read' },
      // DO UPDATE needs the update grant; a masked column cannot be a conflict target.
      { sql: "/*reason='r'*/ INSERT INTO customers (name) VALUES ('x') ON CONFLICT (id) DO UPDATE SET name = 'y'", err: 'model_writes_disabled', message: 'needs the update grant', ctx: { scope: scopeVariant(WITH_COUNTRIES, { enable_writes: [{ models: ['customers'], operations: ['create'], require_reason: true }] }) } },
      { sql: "/*reason='r'*/ INSERT INTO customers (name) VALUES ('x') ON CONFLICT (email) DO NOTHING", err: 'field_masked', message: 'cannot be a conflict target' },
      // Volatile functions cannot choose rows under a count-based rule.
      { sql: "UPDATE orders SET status = 'x' WHERE random() < 0.5", err: 'statement_not_allowed', message: 'random() cannot choose the rows', ctx: { scope: CAPPED } },
      { sql: "WITH s AS (SELECT id FROM orders WHERE random() < 0.5) UPDATE orders SET status = 'x' WHERE id IN (SELECT id FROM s)", err: 'statement_not_allowed', message: 'random() cannot choose the rows', ctx: { scope: CAPPED } },
      { sql: "DELETE FROM orders WHERE id = ANY (array_sample(ARRAY[1, 2, 3], 1))", err: 'statement_not_allowed', message: 'array_sample() cannot choose the rows', ctx: { scope: CAPPED } },
      // The catalog's volatile functions: a policy's own function too.
      { sql: "UPDATE orders SET status = 'x' WHERE id = public.pick()", err: 'statement_not_allowed', message: 'pick() cannot choose the rows', ctx: { scope: VOLATILE_PICK } },
      { sql: "UPDATE orders SET status = 'x' WHERE id <~> 3", err: 'statement_not_allowed', message: 'the operator <~> cannot choose the rows', ctx: { scope: VOLATILE_PICK } },
    ],
    base,
  );
});

describe('references into tenant-scoped tables', () => {
  // Checked through the parent's policy view: another tenant's customer reads like a missing one.
  const FK = scopeWithForeignKeys(WITH_COUNTRIES);
  const checked = (v: string) =>
    `COALESCE((SELECT ormai_parent.ormai_key FROM ( SELECT id AS ormai_key FROM public.customers WHERE tenant_id = ${T} ) AS ormai_parent WHERE ormai_parent.ormai_key = ${v}), CASE WHEN ${v} IS NULL THEN NULL ELSE CAST((SELECT 'ormai:no_parent:customer_id') AS int) END)`;
  runGolden(
    [
      { sql: 'INSERT INTO orders (customer_id, total_cents) VALUES (4, 1)', out: `INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (${checked('4')}, 1, ${T})` },
      { sql: 'UPDATE orders SET customer_id = $1 WHERE id = 1', out: `UPDATE orders SET customer_id = ${checked('$1')} WHERE orders.tenant_id = ${T} AND id = 1` },
      {
        sql: 'INSERT INTO orders (customer_id, total_cents) SELECT 4, 1',
        out: `INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT ormai_source.*, ${T} FROM ( SELECT ${checked('ormai_checked.ormai_c0')}, ormai_checked.ormai_c1 FROM ( SELECT 4, 1 ) AS ormai_checked(ormai_c0, ormai_c1) ) AS ormai_source`,
      },
      { sql: 'UPDATE orders SET (customer_id, total_cents) = (SELECT 4, 1) WHERE id = 1', err: 'statement_not_allowed', message: 'assign "customer_id" on its own' },
      { sql: 'INSERT INTO orders (total_cents, status) VALUES (1, DEFAULT)', out: `INSERT INTO orders (total_cents, status, tenant_id) VALUES (1, DEFAULT, ${T})` },
    ],
    { ...base, scope: FK },
  );

  // A parent with a row filter keeps its fence: unfenced, PostgreSQL would run the agent's value
  // before the (costlier) filter, on the rows it hides too, and the value's time would count them.
  const FILTERED = scopeWithForeignKeys(WITH_COUNTRIES, { models: [{ table: 'customers', row_filter: "name <> 'hidden'" }, 'orders', 'countries'] });
  const fenced = (v: string) =>
    `COALESCE((SELECT ormai_parent.ormai_key FROM ( SELECT id AS ormai_key FROM public.customers WHERE tenant_id = ${T} AND name <> 'hidden' OFFSET 0 ) AS ormai_parent WHERE ormai_parent.ormai_key = ${v}), CASE WHEN ${v} IS NULL THEN NULL ELSE CAST((SELECT 'ormai:no_parent:customer_id') AS int) END)`;
  runGolden(
    [
      { sql: 'INSERT INTO orders (customer_id, total_cents) VALUES (4, 1)', out: `INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (${fenced('4')}, 1, ${T})` },
      { sql: 'UPDATE orders SET customer_id = id + 1 WHERE id = 1', out: `UPDATE orders SET customer_id = ${fenced('(id + 1)').replace('CASE WHEN (id + 1) IS NULL', 'CASE WHEN id + 1 IS NULL')} WHERE orders.tenant_id = ${T} AND id = 1` },
    ],
    { ...base, scope: FILTERED },
  );
});

describe('a SELECT inside SET prints as a SELECT', () => {
  // The derived table of a masked column aliases its targets; inside SET they once printed as assignments.
  runGolden(
    [
      {
        sql: `${REASON}UPDATE customers SET name = (SELECT c.email FROM customers c WHERE c.id = 2) WHERE id = 1`,
        out: `UPDATE customers SET name = (SELECT c.email FROM ${CUSTOMERS} AS c WHERE c.id = 2) WHERE customers.tenant_id = ${T} AND id = 1`,
      },
    ],
    base,
  );
});
