// The read scope keeps PostgreSQL's indexes (issue #12): through the session's barrier views a point
// lookup, an IN list, a range on an indexed column and a foreign-key join use the index, at a data
// size where a scan of the tenant's rows is what the fenced form gets (the control below). Error
// oracles over other tenants' rows stay closed, and max_scan_rows budgets the plan that runs.
// Every case runs under the simple and the extended protocol.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { randomBytes } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { BULK_SETUP, plan, query, TENANT_SCAN } from '../support/plans';
import { modes } from '../support/red-team';
import { RawClient, type Message } from '../support/raw-client';
import { serialize } from 'pg-protocol';

const POLICY = path.resolve(__dirname, '..', '..', 'config', 'quickstart', 'policy.yaml');

const SETUP = [...BULK_SETUP, 'CREATE INDEX orders_created_at_idx ON orders (created_at)', 'ANALYZE'];

let db: TestDatabase;
let views: TestProxy;
let fence: TestProxy;
let budgeted: TestProxy;
/** The quickstart policy with updates of orders granted too. */
let writer: TestProxy;
let dir: string;
/** An order and a customer of tenant 1, an order of tenant 2, and a customer of tenant 1 that the writes give orders to. */
let ids: { order: number; customer: number; other: number; spare: number };

beforeAll(async () => {
  db = await createTestDatabase();
  for (const sql of SETUP) await db.query(sql);
  [ids] = await db.query<{ order: number; customer: number; other: number; spare: number }>(
    `SELECT (SELECT max(id) FROM orders WHERE tenant_id = 1) AS "order", (SELECT max(id) FROM customers WHERE tenant_id = 1) AS customer,
            (SELECT max(id) FROM orders WHERE tenant_id = 2) AS other, (SELECT min(id) FROM customers WHERE tenant_id = 1) AS spare`,
  );
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-plans-'));
  const budgetPolicy = path.join(dir, 'policy.yaml');
  writeFileSync(budgetPolicy, readFileSync(POLICY, 'utf8').replace(/^max_scan_rows: .*$/m, 'max_scan_rows: 50'));
  views = await startTestProxy(db.url, { policies: [POLICY], upstream: { read_scope: 'barrier_views' } });
  fence = await startTestProxy(db.url, { policies: [POLICY], upstream: { read_scope: 'fence' } });
  budgeted = await startTestProxy(db.url, { policies: [budgetPolicy], upstream: { read_scope: 'barrier_views' } });
  const writerPolicy = path.join(dir, 'writer.yaml');
  writeFileSync(writerPolicy, readFileSync(POLICY, 'utf8').replace(/^(\s+operations:) \[create\]$/m, '$1 [create, update]'));
  writer = await startTestProxy(db.url, { policies: [writerPolicy], upstream: { read_scope: 'barrier_views' } });
}, 120_000);

afterAll(async () => {
  await views?.close();
  await fence?.close();
  await budgeted?.close();
  await writer?.close();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs `write` and reads PostgreSQL's counters of `table`: rows read (sequentially or fetched by
 * an index), index scans. A backend publishes its counters once it is idle (at most once a
 * second) or when it ends: the counters must first hold still for longer than that (so that no
 * earlier statement's reads arrive during the write), and the counter `done` of `doneTable` is
 * awaited to move after it.
 */
async function tableReads<T>(table: string, done: 'n_tup_upd' | 'n_tup_ins', write: () => Promise<T>, doneTable = table) {
  const counters = async () => {
    const rows = await db.query<{ relname: string; read: string; idx: string; done: string }>(
      `SELECT relname, seq_tup_read + coalesce(idx_tup_fetch, 0) AS read, coalesce(idx_scan, 0) AS idx, ${done} AS done FROM pg_stat_user_tables WHERE relname IN ($1, $2)`,
      [table, doneTable],
    );
    const of = (name: string) => rows.find((r) => r.relname === name)!;
    return { read: Number(of(table).read), idx: Number(of(table).idx), done: Number(of(doneTable).done) };
  };
  const same = (a: { read: number; idx: number; done: number }, b: typeof a) => a.read === b.read && a.idx === b.idx && a.done === b.done;
  let before = await counters();
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 1200));
    const again = await counters();
    if (same(again, before)) break;
    before = again;
  }
  const outcome = await write();
  let after = before;
  for (let i = 0; i < 100 && after.done === before.done; i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = await counters();
  }
  return { outcome, counted: after.done - before.done, fewRowsRead: after.read - before.read <= 10, indexScans: after.idx - before.idx };
}

describe.each(modes)('$protocol protocol', (mode) => {
  test('a point lookup by id uses the primary key; the fenced form scans the tenant (control)', async () => {
    const sql = `SELECT * FROM orders WHERE id = ${ids.order}`;
    const p = await plan(views, sql, mode);
    expect(p).toMatch(/Index Scan using orders_pkey on orders/);
    expect(p).not.toMatch(TENANT_SCAN);
    expect(await plan(fence, sql, mode)).toMatch(TENANT_SCAN);
    expect((await query(views, sql, mode)).rows).toEqual([expect.objectContaining({ id: ids.order, tenant_id: 1 })]);
  });

  test('an IN list uses the primary key', async () => {
    const p = await plan(views, `SELECT id, total_cents FROM orders WHERE id IN (${ids.order}, ${ids.order - 2}, ${ids.other})`, mode);
    expect(p).toMatch(/Index Scan using orders_pkey on orders/);
    expect(p).not.toMatch(TENANT_SCAN);
    // Tenant 2's order is not among the rows.
    const rows = (await query(views, `SELECT id FROM orders WHERE id IN (${ids.order}, ${ids.other}) ORDER BY id`, mode)).rows;
    expect(rows).toEqual([{ id: ids.order }]);
  });

  test('a range on an indexed column uses its index', async () => {
    // created_at is a timestamp: compared with a timestamp (a leakproof operator). Against now(), a
    // timestamptz, the comparison converts time zones, is not leakproof, and stays above the barrier.
    const sql = "SELECT id FROM orders WHERE created_at > localtimestamp - interval '30 minutes'";
    const p = await plan(views, sql, mode);
    expect(p).toMatch(/orders_created_at_idx/);
    expect(p).not.toMatch(TENANT_SCAN);
    expect(await plan(fence, sql, mode)).toMatch(TENANT_SCAN);
  });

  test('a foreign-key join from a customer to its orders uses both indexes', async () => {
    const sql = `SELECT c.name, o.total_cents FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = ${ids.customer}`;
    const p = await plan(views, sql, mode);
    expect(p).toMatch(/Index Scan using customers_pkey on customers/);
    expect(p).toMatch(/orders_customer_id_idx/);
    expect(p).not.toMatch(TENANT_SCAN);
    expect((await query(views, sql, mode)).rows).toHaveLength(2);
  });

  test("conditions that would fail on another tenant's rows never run on them", async () => {
    // Each fails on tenant 2's rows only (tenant_id - 2 = 0): an error would tell they exist.
    for (const sql of [
      `SELECT id FROM orders WHERE id = ${ids.other} AND 1 / (tenant_id - 2) = 0`,
      'SELECT count(*)::int AS n FROM orders WHERE total_cents / (tenant_id - 2) < 0',
      `SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = ${ids.other} AND 1 / (c.tenant_id - 2) = 0`,
      `SELECT id FROM orders WHERE id = ${ids.other} AND (CASE WHEN tenant_id = 2 THEN 'x' ELSE '1' END)::int = 1`,
    ]) {
      const o = await query(views, sql, mode);
      expect({ sql, error: o.error?.message }).toEqual({ sql, error: undefined });
    }
    const [{ n }] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders WHERE tenant_id = 1');
    expect((await query(views, 'SELECT count(*)::int AS n FROM orders WHERE total_cents / (tenant_id - 2) < 0', mode)).rows).toEqual([{ n }]);
  });

  test("an UPDATE by id reads by the primary key only: the before-values' join on the key reaches it too", async () => {
    // EXPLAIN of a write shows it without the before/after capture (src/analysis/rewrite/capture.ts),
    // which only an executed write has: PostgreSQL's own counters of the table say how it was read.
    const changed = await tableReads('orders', 'n_tup_upd', () => query(writer, `/*reason='plan check'*/ UPDATE orders SET status = 'shipped' WHERE id = ${ids.order}`, mode));
    // The target and the max_affected_rows count, and before PostgreSQL 18 the before-values'
    // join, each one row by the key (behind OFFSET 0 the before-values read the tenant's 40,000
    // orders); from 18 the before-values are RETURNING old.x, with no join.
    expect(changed).toMatchObject({ outcome: { rowCount: 1 }, counted: 1, fewRowsRead: true });
    const [{ v }] = await db.query<{ v: number }>("SELECT current_setting('server_version_num')::int AS v");
    expect(changed.indexScans).toBeGreaterThanOrEqual(v >= 180000 ? 1 : 2);
  });

  test("an INSERT's foreign-key check finds the parent by its key, not by reading the tenant's customers", async () => {
    const sql = `/*reason='plan check'*/ INSERT INTO orders (customer_id, total_cents, status) VALUES (${ids.spare}, 100, 'new')`;
    const checked = await tableReads('customers', 'n_tup_ins', () => query(writer, sql, mode), 'orders');
    expect(checked).toMatchObject({ outcome: { rowCount: 1 }, counted: 1, fewRowsRead: true });
  });

  test('max_scan_rows budgets the plan that runs: a lookup by id passes, a scan of the tenant is refused', async () => {
    expect((await query(budgeted, `SELECT id FROM orders WHERE id = ${ids.order}`, mode)).rows).toEqual([{ id: ids.order }]);
    expect((await query(budgeted, `SELECT o.id FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = ${ids.customer}`, mode)).rows).toHaveLength(2);
    const o = await query(budgeted, 'SELECT id FROM orders WHERE total_cents > 0', mode);
    expect(o.error?.routine).toBe('ormai.scan_budget_exceeded');
  });

  test('DISCARD ALL drops the views; the session reads through fenced tables until PostgreSQL has made them again', async () => {
    const c = new Client({ connectionString: views.url() });
    await c.connect();
    try {
      const q = (sql: string) => c.query(mode.extended ? ({ text: sql, values: [], queryMode: 'extended' } as never) : sql) as unknown as Promise<{ rows: Array<Record<string, unknown>> }>;
      const explain = async (sql: string) => (await q(`EXPLAIN ${sql}`)).rows.map((r) => String(r['QUERY PLAN'])).join('\n');
      const lookup = `SELECT id FROM orders WHERE id = ${ids.order}`;
      expect(await explain(lookup)).toMatch(/orders_pkey/);
      await q('BEGIN');
      await q('DISCARD TEMP');
      // Inside the transaction the views are gone and cannot be made: the fenced form, same answer.
      expect(await explain(lookup)).toMatch(TENANT_SCAN);
      expect((await q(lookup)).rows).toEqual([{ id: ids.order }]);
      await q('ROLLBACK');
      await q('DISCARD ALL');
      // Idle again: the Query that makes the views goes before the next statement, which is read
      // through the fenced form (the views exist once PostgreSQL has answered); the one after reads the views.
      expect(await explain(lookup)).toMatch(TENANT_SCAN);
      expect(await explain(lookup)).toMatch(/orders_pkey/);
      expect((await q(lookup)).rows).toEqual([{ id: ids.order }]);
    } finally {
      await c.end();
    }
  });

  test('a Query PostgreSQL would discard (skipping to Sync after an error) does not carry the Query that makes the views: the session makes them after the Sync', async () => {
    if (mode.extended) return; // one message sequence, written by hand
    const c = await RawClient.connect(views.port, 'tenant1-agent', 'tenant1-password');
    const lookup = `EXPLAIN SELECT id FROM orders WHERE id = ${ids.order}`;
    const planOf = (ms: Message[]) => ms.filter((m) => m.name === 'dataRow').map((m) => (m as unknown as { fields: string[] }).fields[0]).join('\n');
    try {
      c.send(serialize.query('DISCARD ALL'), serialize.parse({ text: 'SELECT 1/0x' }), serialize.flush());
      await c.untilReady();
      while ((await c.next()).name !== 'error');
      // PostgreSQL skips this Query; the views may not be made now.
      c.send(serialize.query('SELECT 1'), serialize.sync());
      await c.untilReady();
      c.send(serialize.query(lookup));
      expect(planOf(await c.untilReady())).toMatch(TENANT_SCAN);
      c.send(serialize.query(lookup));
      expect(planOf(await c.untilReady())).toMatch(/orders_pkey/);
    } finally {
      c.end();
    }
  });

  test('a reload that changes a table\'s scope: a transaction begun before it reads through the fenced form, the session then makes the new views', async () => {
    const file = path.join(dir, `reload-${mode.protocol}.yaml`);
    writeFileSync(file, readFileSync(POLICY, 'utf8'));
    const p = await startTestProxy(db.url, { policies: [file], upstream: { read_scope: 'barrier_views' } });
    const c = new Client({ connectionString: p.url() });
    await c.connect();
    try {
      const q = (sql: string) => c.query(mode.extended ? ({ text: sql, values: [], queryMode: 'extended' } as never) : sql) as unknown as Promise<{ rows: Array<Record<string, unknown>> }>;
      const explain = async (sql: string) => (await q(`EXPLAIN ${sql}`)).rows.map((r) => String(r['QUERY PLAN'])).join('\n');
      const lookup = `SELECT id, total_cents FROM orders WHERE id = ${ids.order}`;
      expect(await explain(lookup)).toMatch(/orders_pkey/);
      await q('BEGIN');
      // total_cents is now denied: the orders view has other columns, so another name.
      writeFileSync(file, `${readFileSync(POLICY, 'utf8').replace('deny_fields: ["*secret*"', 'deny_fields: ["total_cents", "*secret*"')}`);
      expect((await p.reload()).policies).toBe('reloaded');
      const inBlock = await q(`SELECT * FROM orders WHERE id = ${ids.order}`);
      expect(Object.keys(inBlock.rows[0])).not.toContain('total_cents');
      expect(await explain(`SELECT id FROM orders WHERE id = ${ids.order}`)).toMatch(TENANT_SCAN);
      await q('COMMIT');
      // Idle: the new views are made before the next statement, and used once PostgreSQL has answered.
      expect(await explain(`SELECT id FROM orders WHERE id = ${ids.order}`)).toMatch(TENANT_SCAN);
      expect(await explain(`SELECT id FROM orders WHERE id = ${ids.order}`)).toMatch(/orders_pkey/);
      expect((await q(`SELECT * FROM orders WHERE id = ${ids.order}`)).rows).toEqual([expect.not.objectContaining({ total_cents: expect.anything() })]);
    } finally {
      await c.end();
      await p.close();
    }
  });

  test("the views are the session's own: the agent cannot name them, pg_temp or their columns", async () => {
    for (const sql of ['SELECT * FROM pg_temp.orders', "SELECT relname FROM pg_class WHERE relname LIKE 'ormai%'", "SELECT count(*)::int AS n FROM pg_namespace WHERE nspname LIKE 'pg_temp%'"]) {
      const o = await query(views, sql, mode);
      if (o.error) expect(o.error.routine).toMatch(/^ormai\./);
      else expect(o.rows).toEqual(sql.includes('count') ? [{ n: 0 }] : []);
    }
  });
});

describe('start-up', () => {
  test('a role that may not create temporary objects stops barrier_views with both remedies named; read_scope: fence starts', async () => {
    const role = `ormai_notemp_${randomBytes(4).toString('hex')}`;
    const url = new URL(db.url);
    await db.query(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`);
    try {
      await db.query(`REVOKE TEMP ON DATABASE "${url.pathname.slice(1)}" FROM PUBLIC`);
      await db.query(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}`);
      url.username = role;
      url.password = 'pw';
      await expect(startTestProxy(url.toString(), { policies: [POLICY], upstream: { read_scope: 'barrier_views' } })).rejects.toThrow(
        /upstream\.read_scope is barrier_views, but the upstream role "ormai_notemp_[0-9a-f]+" may not create temporary objects.*GRANT TEMP ON DATABASE.*set upstream\.read_scope: fence/,
      );
      const fenced = await startTestProxy(url.toString(), { policies: [POLICY], upstream: { read_scope: 'fence' } });
      try {
        expect((await query(fenced, `SELECT id FROM orders WHERE id = ${ids.order}`, modes[0])).rows).toEqual([{ id: ids.order }]);
      } finally {
        await fenced.close();
      }
    } finally {
      await db.query(`GRANT TEMP ON DATABASE "${url.pathname.slice(1)}" TO PUBLIC`);
      await db.query(`DROP OWNED BY ${role}`);
      await db.query(`DROP ROLE ${role}`);
    }
  });
});
