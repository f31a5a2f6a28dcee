// postgres.js through the proxy: extended protocol with pipelining and prepared statements, simple protocol, transactions.
import postgres from 'postgres';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { SLOW_QUERY } from '../support/clients';

let db: TestDatabase;
let proxy: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url);
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

function connect(opts: postgres.Options<Record<string, postgres.PostgresType>> = {}) {
  return postgres(proxy.url(), { max: 1, onnotice: () => undefined, ...opts });
}

test('parameters and prepared statements', async () => {
  const sql = connect({ prepare: true });
  try {
    for (const tenant of [1, 2, 1]) {
      const rows = await sql`SELECT count(*)::int AS n FROM orders WHERE tenant_id = ${tenant}`;
      // Tenant 1's agent: its own 4 orders; a forged tenant_id = 2 matches nothing.
      expect(rows[0].n).toBe(tenant === 1 ? 4 : 0);
    }
  } finally {
    await sql.end();
  }
});

test('pipelined queries on one connection keep their order', async () => {
  const sql = connect();
  try {
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => sql`SELECT ${i}::int AS i, repeat('z', ${i}) AS pad`));
    expect(results.map((r) => r[0].i)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  } finally {
    await sql.end();
  }
});

test('an error in a pipeline fails only its own query', async () => {
  const sql = connect();
  try {
    const results = await Promise.allSettled([sql`SELECT 1 AS a`, sql`SELECT 1/0 AS b`, sql.unsafe('DROP TABLE orders'), sql`SELECT 3 AS c`]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({ routine: 'ormai.statement_not_allowed' });
    expect((results[3] as PromiseFulfilledResult<postgres.RowList<postgres.Row[]>>).value[0].c).toBe(3);
  } finally {
    await sql.end();
  }
});

test('simple protocol, multi-statement reads', async () => {
  const sql = connect();
  try {
    const result = await sql.unsafe('SELECT 1 AS one; SELECT 2 AS two').simple();
    expect(result).toEqual([[{ one: 1 }], [{ two: 2 }]]);
    await expect(sql.unsafe('SELECT 1; DROP TABLE orders').simple()).rejects.toMatchObject({ routine: 'ormai.statement_not_allowed' });
  } finally {
    await sql.end();
  }
});

test('transactions commit and roll back through sql.begin', async () => {
  const sql = connect();
  try {
    await sql.begin(async (tx) => {
      await tx`/*reason='test'*/ INSERT INTO orders (tenant_id, customer_id, total_cents) VALUES (1, 1, 333)`;
    });
    await expect(
      sql.begin(async (tx) => {
        await tx`/*reason='test'*/ INSERT INTO orders (tenant_id, customer_id, total_cents) VALUES (1, 1, 444)`;
        await tx`SELECT 1/0`;
      }),
    ).rejects.toMatchObject({ code: '22012' });
  } finally {
    await sql.end();
  }
  expect(await db.query('SELECT total_cents FROM orders WHERE total_cents IN (333, 444) ORDER BY 1')).toEqual([{ total_cents: 333 }]);
});

test('cancel through postgres.js', async () => {
  const sql = connect();
  try {
    const q = sql.unsafe(SLOW_QUERY);
    const settled = q.then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    await new Promise((r) => setTimeout(r, 300));
    q.cancel();
    expect(await settled).toMatchObject({ code: '57014' });
    expect((await sql`SELECT 1 AS ok`)[0].ok).toBe(1);
  } finally {
    await sql.end();
  }
});
