// upstream.read_scope: rls (issue #12): with PostgreSQL's row-level security fencing each tenant-scoped
// table, the sessions' views are plain views the planner flattens, so a join from an order to its
// customer reaches the customers' primary key (a security-barrier view gets no parameterised path:
// the control). The error oracles over other tenants' rows stay closed, the tenant setting is the
// proxy's, and start-up refuses a database whose policies are missing. Every case runs under the
// simple and the extended protocol; the proxy logs in as a role of its own (test/support/row-security.ts).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { startProxy } from '../../src/app';
import { resolveConfig } from '../../src/config/load';
import { silentLogger } from '../../src/log';
import { parseStructuredFile } from '../../src/policy/load';
import { rowSecurityScript } from '../../src/policy/tooling/rls';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { QUICKSTART, startTestProxy, type TestProxy } from '../support/proxy';
import { BULK_SETUP, plan, query, TENANT_SCAN } from '../support/plans';
import { modes } from '../support/red-team';
import { applyRowSecurity, prepareRowSecurityRole, releaseRowSecurityRole, rowSecurityRole } from '../support/row-security';

const POLICY = path.resolve(__dirname, '..', '..', 'config', 'quickstart', 'policy.yaml');

const SETUP = [...BULK_SETUP, 'ANALYZE'];

let db: TestDatabase;
let rls: TestProxy;
let views: TestProxy;
let budgeted: TestProxy;
let dir: string;
/** An order and a customer of tenant 1, and an order and a customer of tenant 2. */
let ids: { order: number; customer: number; other: number; otherCustomer: number };

beforeAll(async () => {
  db = await createTestDatabase();
  for (const sql of SETUP) await db.query(sql);
  [ids] = await db.query<typeof ids>(
    `SELECT (SELECT max(id) FROM orders WHERE tenant_id = 1) AS "order", (SELECT max(id) FROM customers WHERE tenant_id = 1) AS customer,
            (SELECT max(id) FROM orders WHERE tenant_id = 2) AS other, (SELECT max(id) FROM customers WHERE tenant_id = 2) AS "otherCustomer"`,
  );
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-rls-'));
  const budgetPolicy = path.join(dir, 'policy.yaml');
  writeFileSync(budgetPolicy, readFileSync(POLICY, 'utf8').replace(/^max_scan_rows: .*$/m, 'max_scan_rows: 50'));
  rls = await startTestProxy(db.url, { policies: [POLICY], upstream: { read_scope: 'rls' } });
  views = await startTestProxy(db.url, { policies: [POLICY], upstream: { read_scope: 'barrier_views' } });
  budgeted = await startTestProxy(db.url, { policies: [budgetPolicy], upstream: { read_scope: 'rls' } });
}, 120_000);

afterAll(async () => {
  await rls?.close();
  await views?.close();
  await budgeted?.close();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.each(modes)('$protocol protocol', (mode) => {
  test('a join from an order to its customer reaches the customers primary key; over a security-barrier view it cannot (control)', async () => {
    const sql = `SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = ${ids.order}`;
    const p = await plan(rls, sql, mode);
    expect(p).toMatch(/Index Scan using orders_pkey on orders/);
    expect(p).toMatch(/Index Scan using customers_pkey on customers/);
    expect(p).not.toMatch(TENANT_SCAN);
    expect(await plan(views, sql, mode)).toMatch(TENANT_SCAN);
    expect((await query(rls, sql, mode)).rows).toEqual([{ id: ids.order, name: expect.any(String) }]);
  });

  test('a point lookup, an IN list and a join from a customer to its orders use their indexes', async () => {
    expect(await plan(rls, `SELECT * FROM orders WHERE id = ${ids.order}`, mode)).toMatch(/Index Scan using orders_pkey on orders/);
    expect(await plan(rls, `SELECT id FROM orders WHERE id IN (${ids.order}, ${ids.other})`, mode)).toMatch(/Index Scan using orders_pkey on orders/);
    const join = await plan(rls, `SELECT c.name, o.total_cents FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = ${ids.customer}`, mode);
    expect(join).toMatch(/Index Scan using customers_pkey on customers/);
    expect(join).toMatch(/orders_customer_id_idx/);
    expect(join).not.toMatch(TENANT_SCAN);
    expect((await query(rls, `SELECT id FROM orders WHERE id IN (${ids.order}, ${ids.other}) ORDER BY id`, mode)).rows).toEqual([{ id: ids.order }]);
  });

  test("only the tenant's rows, masks applied; another tenant's ids and a forged tenant find nothing", async () => {
    const [{ n }] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders WHERE tenant_id = 1');
    expect((await query(rls, 'SELECT count(*)::int AS n FROM orders', mode)).rows).toEqual([{ n }]);
    expect((await query(rls, `SELECT id FROM orders WHERE id = ${ids.other}`, mode)).rows).toEqual([]);
    expect((await query(rls, `SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.id = ${ids.otherCustomer}`, mode)).rows).toEqual([]);
    expect((await query(rls, 'SELECT count(*)::int AS n FROM orders WHERE tenant_id = 2', mode)).rows).toEqual([{ n: 0 }]);
    const [customer] = (await query(rls, `SELECT email FROM customers WHERE id = ${ids.customer}`, mode)).rows!;
    expect(customer.email).toMatch(/^b\*\*\*@example\.com$/);
  });

  test("conditions that would fail on another tenant's rows never run on them", async () => {
    // Each fails on tenant 2's rows only: an error would tell they exist.
    for (const sql of [
      `SELECT id FROM orders WHERE id = ${ids.other} AND 1 / (tenant_id - 2) = 0`,
      'SELECT count(*)::int AS n FROM orders WHERE total_cents / (tenant_id - 2) < 0',
      `SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = ${ids.other} AND 1 / (c.tenant_id - 2) = 0`,
      'SELECT count(*)::int AS n FROM orders o JOIN customers c ON c.id = o.customer_id WHERE 1 / (c.tenant_id - 2) = 0',
      `SELECT id FROM orders WHERE id = ${ids.other} AND (CASE WHEN tenant_id = 2 THEN 'x' ELSE '1' END)::int = 1`,
      `SELECT id FROM customers WHERE id = ${ids.otherCustomer} AND name ~ CASE WHEN tenant_id = 2 THEN '[' ELSE 'B' END`,
    ]) {
      const o = await query(rls, sql, mode);
      expect({ sql, error: o.error?.message }).toEqual({ sql, error: undefined });
    }
  });

  test("an INSERT runs under the policy: the row carries the tenant; another tenant's customer is refused", async () => {
    const reason = "/* reason='rls test' */";
    const own = await query(rls, `INSERT INTO orders (customer_id, total_cents, status) VALUES (${ids.customer}, 7, 'rls-${mode.protocol}') RETURNING tenant_id ${reason}`, mode);
    expect({ error: own.error?.message, rows: own.rows }).toEqual({ error: undefined, rows: [{ tenant_id: 1 }] });
    const other = await query(rls, `INSERT INTO orders (customer_id, total_cents, status) VALUES (${ids.otherCustomer}, 7, 'rls-x-${mode.protocol}') ${reason}`, mode);
    expect(other.error).toBeDefined();
    expect(await db.query('SELECT tenant_id FROM orders WHERE status IN ($1, $2)', [`rls-${mode.protocol}`, `rls-x-${mode.protocol}`])).toEqual([{ tenant_id: 1 }]);
  });

  test('max_scan_rows asks the planner under the same policy: a lookup and a join by id pass, a scan of the tenant is refused', async () => {
    expect((await query(budgeted, `SELECT id FROM orders WHERE id = ${ids.order}`, mode)).rows).toEqual([{ id: ids.order }]);
    expect((await query(budgeted, `SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = ${ids.order}`, mode)).rows).toEqual([{ id: ids.order }]);
    expect((await query(budgeted, 'SELECT id FROM orders WHERE total_cents > 0', mode)).error?.routine).toBe('ormai.scan_budget_exceeded');
  });

  test('EXPLAIN shows the plan; VERBOSE, whose output lists would name the denied columns below a gating Result, is refused (everywhere)', async () => {
    // With the tenant named by the agent, the policy's condition and the literals meet in one
    // equivalence class and PostgreSQL checks the setting in a Result above the scan.
    const sql = 'SELECT name FROM customers WHERE tenant_id = 1';
    expect(await plan(rls, sql, mode)).toMatch(/One-Time Filter/);
    const verbose = await query(rls, `EXPLAIN VERBOSE ${sql}`, mode);
    expect(verbose.error?.routine).toBe('ormai.statement_not_allowed');
    expect(verbose.error?.message).not.toContain('api_secret');
    expect((await query(views, `EXPLAIN VERBOSE ${sql}`, mode)).error?.routine).toBe('ormai.statement_not_allowed');
    expect((await query(views, `EXPLAIN ${sql}`, mode)).error).toBeUndefined();
  });

  test('the tenant setting is the proxy\'s: SET, set_config and RESET ALL cannot move it', async () => {
    const c = new Client({ connectionString: rls.url() });
    c.on('error', () => undefined);
    await c.connect();
    try {
      const q = (sql: string) => c.query(mode.extended ? ({ text: sql, values: [], queryMode: 'extended' } as never) : sql) as unknown as Promise<{ rows: Array<Record<string, unknown>> }>;
      await expect(q("SET ormai.tenant_id = '2'")).rejects.toMatchObject({ routine: expect.stringMatching(/^ormai\./) });
      await expect(q("SELECT set_config('ormai.tenant_id', '2', false)")).rejects.toMatchObject({ routine: expect.stringMatching(/^ormai\./) });
      await q('RESET ALL');
      await q('DISCARD ALL');
      expect((await q(`SELECT id FROM orders WHERE id = ${ids.order}`)).rows).toEqual([{ id: ids.order }]);
      expect((await q(`SELECT id FROM orders WHERE id = ${ids.other}`)).rows).toEqual([]);
    } finally {
      await c.end();
    }
  });
});

test('a startup option naming the tenant setting is refused', async () => {
  const c = new Client({ connectionString: rls.url(), options: '-c ormai.tenant_id=2' });
  await expect(c.connect()).rejects.toMatchObject({ routine: 'ormai.startup_parameter_not_allowed' });
});

test('a table whose policy is dropped under a running proxy reads through a security-barrier view within the check interval (5 s), still fenced', async () => {
  const p = await startTestProxy(db.url, { policies: [POLICY], upstream: { read_scope: 'rls' } });
  try {
    const join = `SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = ${ids.order}`;
    expect(await plan(p, join, modes[0])).toMatch(/Index Scan using customers_pkey on customers/);
    await db.query('DROP POLICY ormai_tenant ON customers');
    // No reload: the proxy compares the tables' row-level security with its catalog every 5 s.
    const deadline = Date.now() + 15_000;
    let after = await plan(p, join, modes[0]);
    while (!TENANT_SCAN.test(after) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      after = await plan(p, join, modes[0]);
    }
    expect(after).toMatch(TENANT_SCAN);
    expect((await query(p, `SELECT id FROM customers WHERE id = ${ids.otherCustomer} AND name ~ CASE WHEN tenant_id = 2 THEN '[' ELSE 'B' END`, modes[0])).error).toBeUndefined();
    expect((await query(p, `SELECT id FROM customers WHERE id = ${ids.otherCustomer}`, modes[0])).rows).toEqual([]);
  } finally {
    await p.close();
    // Put it back for the other tests (the SQL is idempotent).
    await applyRowSecurity(db.url, (await rlsConfig()).config);
  }
});

/** The rls configuration for the role of this database, without starting anything. */
async function rlsConfig(): Promise<{ config: ReturnType<typeof resolveConfig>; url: string }> {
  const url = await prepareRowSecurityRole(db.url);
  await releaseRowSecurityRole(db.url);
  const doc = { ...(parseStructuredFile(readFileSync(QUICKSTART, 'utf8'), QUICKSTART) as object), policies: [POLICY], upstream: { read_scope: 'rls' }, audit: { sinks: [{ type: 'file', path: path.join(dir, 'audit.jsonl') }] } };
  const config = resolveConfig(doc, QUICKSTART, { ORMAI_UPSTREAM_URL: url, ORMAI_LISTEN: '127.0.0.1:0', ORMAI_ADMIN_LISTEN: '127.0.0.1:0' });
  return { config, url };
}

describe('start-up and ormai-proxy rls', () => {
  test('the SQL names the role and each tenant-scoped table, and is idempotent', async () => {
    const url = await prepareRowSecurityRole(db.url);
    try {
      const { config } = await rlsConfig();
      const script = await rowSecurityScript(config);
      const role = rowSecurityRole(db.url);
      expect(script.role).toBe(role);
      expect(script.inPlace.sort()).toEqual(['public.customers', 'public.orders']);
      expect(script.sql).toContain(`CREATE POLICY ormai_tenant ON "public"."orders" AS RESTRICTIVE FOR ALL TO "${role}" USING ("tenant_id" = (current_setting('ormai.tenant_id'::text))::integer)`);
      // Applied twice: no error.
      await applyRowSecurity(db.url, config);
      expect(url).toContain(role);
    } finally {
      await releaseRowSecurityRole(db.url);
    }
  });

  test('without the policy on a table the proxy does not start, and says what to run', async () => {
    await db.query('DROP POLICY ormai_tenant ON orders');
    const url = await prepareRowSecurityRole(db.url);
    try {
      const { config } = await rlsConfig();
      await expect(startProxy(config, silentLogger)).rejects.toThrow(/read_scope is rls, but row-level security does not fence every tenant-scoped table:\n {2}- public\.orders has no policy ormai_tenant\nRun `ormai-proxy rls --config /);
    } finally {
      await applyRowSecurity(db.url, (await rlsConfig()).config);
      await releaseRowSecurityRole(db.url);
    }
    expect(url).toBeTruthy();
  });

  test('a superuser upstream role is refused: row-level security never applies to it', async () => {
    const doc = { ...(parseStructuredFile(readFileSync(QUICKSTART, 'utf8'), QUICKSTART) as object), policies: [POLICY], upstream: { read_scope: 'rls' }, audit: { sinks: [{ type: 'file', path: path.join(dir, 'audit.jsonl') }] } };
    const config = resolveConfig(doc, QUICKSTART, { ORMAI_UPSTREAM_URL: db.url, ORMAI_LISTEN: '127.0.0.1:0', ORMAI_ADMIN_LISTEN: '127.0.0.1:0' });
    await expect(startProxy(config, silentLogger)).rejects.toThrow(/is a superuser, so row-level security never applies to it/);
  });
});
