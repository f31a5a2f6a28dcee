// Budgets enforced by the proxy (I6): planner scan estimates, per-tenant statements per minute, join depth —
// the seeds' budget probe included. Each case under the simple and the extended protocol.
import path from 'node:path';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';

let db: TestDatabase;
let proxy: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  // events: tenant 1 has 300 rows, tenant 2 has 40,000; notes: tenant 1 has 4,000 (a sequential scan), tenant 2
  // 2,000; audit_events is a global table of 40,000 rows.
  await db.query(`
    CREATE TABLE events (id serial PRIMARY KEY, tenant_id int NOT NULL, kind text NOT NULL, at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX events_tenant_idx ON events (tenant_id);
    INSERT INTO events (tenant_id, kind) SELECT 1, 'login' FROM generate_series(1, 300);
    INSERT INTO events (tenant_id, kind) SELECT 2, 'login' FROM generate_series(1, 40000);
    CREATE TABLE notes (id serial PRIMARY KEY, tenant_id int NOT NULL, body text NOT NULL);
    INSERT INTO notes (tenant_id, body) SELECT 1, 'n' || g FROM generate_series(1, 4000) g;
    INSERT INTO notes (tenant_id, body) SELECT 2, 'n' || g FROM generate_series(1, 2000) g;
    CREATE TABLE audit_events (id serial PRIMARY KEY, what text NOT NULL);
    INSERT INTO audit_events (what) SELECT 'x' || g FROM generate_series(1, 40000) g;
    ANALYZE;`);
  proxy = await startTestProxy(db.url, { policies: [path.resolve(__dirname, '../fixtures/budget-policy.yaml')] });
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

async function session<T>(fn: (q: (sql: string) => Promise<{ rows: Array<Record<string, unknown>> }>) => Promise<T>, extended: boolean, user = 'tenant1-agent'): Promise<T> {
  const c = new Client({ connectionString: proxy.url(user, user.replace('agent', 'password')) });
  await c.connect();
  try {
    return await fn((sql) => c.query(extended ? ({ text: sql, values: [], queryMode: 'extended' } as never) : sql));
  } finally {
    await c.end();
  }
}

const modes = [
  { protocol: 'simple', extended: false },
  { protocol: 'extended', extended: true },
];

describe.each(modes)('under the $protocol protocol', ({ extended }) => {
  test('an unbounded scan of a big table is refused before it runs, with a structured error (seeds budget probe)', async () => {
    await session(async (q) => {
      const err = await q('SELECT count(*) FROM audit_events').then(
        () => undefined,
        (e: Error & { code?: string; routine?: string; hint?: string }) => e,
      );
      expect(err).toMatchObject({ code: '54000', routine: 'ormai.scan_budget_exceeded' });
      expect(err!.message).toBe('scan_budget_exceeded: the statement would scan more rows than the policy allows (5000)');
      expect(err!.hint).toMatch(/indexed column/);
      // A selective lookup on an indexed column is within budget.
      expect((await q('SELECT what FROM audit_events WHERE id = 7')).rows).toEqual([{ what: 'x7' }]);
    }, extended);
  });

  test("a tenant's own rows are counted, not the whole table's", async () => {
    await session(async (q) => {
      expect((await q('SELECT count(*)::int AS n FROM events')).rows).toEqual([{ n: 300 }]);
      // 300 × 300 rows through a cross join exceeds the budget.
      await expect(q('SELECT count(*) FROM events a, events b')).rejects.toMatchObject({ routine: 'ormai.scan_budget_exceeded' });
    }, extended);
  });

  test("a sequential scan of a tenant-scoped table counts the tenant's rows; a refusal names the budget, never the estimate", async () => {
    await session(async (q) => {
      // 4,000 of the table's 6,000 rows: within the budget of 5,000, though the whole table is not.
      expect((await q("SELECT count(*)::int AS n FROM notes WHERE body <> 'x'")).rows).toEqual([{ n: 4000 }]);
      // The estimate comes from statistics over every tenant's rows: multiplied by a known factor
      // and printed, it counted them (6,000 × 10 = "about 60000").
      const err = await q('SELECT count(*) FROM generate_series(1, 10) g, notes n WHERE n.id > g').then(
        () => undefined,
        (e: Error & { routine?: string }) => e,
      );
      expect(err).toMatchObject({ routine: 'ormai.scan_budget_exceeded', message: 'scan_budget_exceeded: the statement would scan more rows than the policy allows (5000)' });
    }, extended);
    // The scan reads all of the tenant's rows whatever its filter keeps: tenant 2's 40,000 are over the budget.
    await session(async (q) => {
      await expect(q("SELECT count(*) FROM events WHERE kind LIKE '%zz%'")).rejects.toMatchObject({ routine: 'ormai.scan_budget_exceeded' });
    }, extended, 'tenant2-agent');
  });

  test('join depth beyond max_join_depth is refused', async () => {
    await session(async (q) => {
      expect((await q('SELECT count(*)::int AS n FROM customers a JOIN customers b ON a.id = b.id JOIN customers c ON c.id = a.id')).rows).toEqual([{ n: 3 }]);
      await expect(
        q('SELECT 1 FROM customers a JOIN customers b ON a.id = b.id JOIN customers c ON c.id = a.id JOIN customers d ON d.id = a.id'),
      ).rejects.toMatchObject({ code: '54000', routine: 'ormai.join_depth_exceeded' });
    }, extended);
  });
});

test("statements beyond the tenant's per-minute budget are refused; other tenants are unaffected", async () => {
  // Earlier tests in this file used part of tenant 1's budget of 40; spend the rest and one more.
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  let refused: (Error & { code?: string; routine?: string; detail?: string }) | undefined;
  try {
    for (let i = 0; i < 45 && !refused; i++) {
      await c.query(i % 2 ? { text: 'SELECT $1::int AS i', values: [i] } : 'SELECT 1').catch((e) => (refused = e));
    }
    expect(refused).toMatchObject({ code: '53400', routine: 'ormai.query_rate_limited' });
    expect(refused!.detail).toMatch(/retry after \d+ s/);
    // The session stays usable for what does not count, and the refusal changed nothing upstream.
    await expect(c.query('SELECT 1')).rejects.toMatchObject({ routine: 'ormai.query_rate_limited' });
  } finally {
    await c.end();
  }
  const other = new Client({ connectionString: proxy.url('tenant2-agent', 'tenant2-password') });
  await other.connect();
  expect((await other.query('SELECT count(*)::int AS n FROM customers')).rows).toEqual([{ n: 2 }]);
  await other.end();
});
