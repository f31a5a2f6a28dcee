// The `pg` driver through the proxy: simple and extended protocol, binary, prepared statements, transactions, cancel, big results, concurrency.
import path from 'node:path';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { SLOW_QUERY } from '../support/clients';

let db: TestDatabase;
let proxy: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  // Wire-level tests of big results need a row cap above 20,000 rows.
  proxy = await startTestProxy(db.url, { policies: [path.resolve(__dirname, '../fixtures/wide-policy.yaml')] });
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

async function connect(user?: string, password?: string): Promise<Client> {
  const client = new Client({ connectionString: proxy.url(user, password) });
  await client.connect();
  return client;
}

async function withClient<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const c = await connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const modes = [
  { name: 'simple', extended: false },
  { name: 'extended', extended: true },
] as const;

describe.each(modes)('queries under the $name protocol', ({ extended }) => {
  const q = (c: Client, text: string, values?: unknown[]) =>
    c.query(extended ? { text, values: values ?? [], queryMode: 'extended' } as never : { text });

  test('reads rows', async () => {
    await withClient(async (c) => {
      const r = await q(c, 'SELECT id, name FROM customers WHERE tenant_id = 1 ORDER BY id');
      expect(r.rows.map((x: { name: string }) => x.name)).toEqual(['Acme Corp', 'Acme Labs', 'Acme Retail']);
      expect(r.fields.map((f) => f.name)).toEqual(['id', 'name']);
    });
  });

  test('errors inside a transaction abort it, as in PostgreSQL', async () => {
    await withClient(async (c) => {
      await q(c, 'BEGIN');
      await expect(q(c, 'SELECT 1/0')).rejects.toMatchObject({ code: '22012' });
      await expect(q(c, 'SELECT 1')).rejects.toMatchObject({ code: '25P02' });
      await q(c, 'ROLLBACK');
      const r = await q(c, 'SELECT 42 AS answer');
      expect(r.rows[0].answer).toBe(42);
    });
  });

  test('a refused statement inside a transaction aborts the transaction', async () => {
    await withClient(async (c) => {
      await q(c, 'BEGIN');
      await q(c, "/*reason='test'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 111)");
      await expect(q(c, 'DROP TABLE orders')).rejects.toMatchObject({ code: '42501', routine: 'ormai.statement_not_allowed' });
      await expect(q(c, 'SELECT 1')).rejects.toMatchObject({ code: '25P02' });
      const r = await q(c, 'COMMIT');
      expect(r.command).toBe('ROLLBACK');
    });
    expect(await db.query('SELECT count(*)::int AS n FROM orders WHERE total_cents = 111')).toEqual([{ n: 0 }]);
  });

  test('empty statement', async () => {
    await withClient(async (c) => {
      const r = await q(c, '-- nothing here');
      expect(r.rows ?? []).toEqual([]);
    });
  });
});

test('parameters, named prepared statements and reuse', async () => {
  await withClient(async (c) => {
    for (const id of [1, 2, 3]) {
      const r = await c.query({ name: 'by_id', text: 'SELECT name FROM customers WHERE id = $1', values: [id] });
      expect(r.rows).toHaveLength(1);
    }
    const r = await c.query('SELECT $1::text || $2::text AS s, $3::int + 1 AS n', ['a', 'b', 41]);
    expect(r.rows[0]).toEqual({ s: 'ab', n: 42 });
  });
});

test('large results split across many TCP packets arrive intact', async () => {
  await withClient(async (c) => {
    const r = await c.query("SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g");
    expect(r.rows).toHaveLength(20000);
    expect(r.rows[19999]).toEqual({ g: 20000, pad: 'x'.repeat(200) });
    const big = await c.query("SELECT repeat('y', 5000000) AS s");
    expect(big.rows[0].s.length).toBe(5000000);
  });
});

test('concurrent clients each get their own answers', async () => {
  const results = await Promise.all(
    Array.from({ length: 16 }, (_, i) =>
      withClient(async (c) => {
        const r = await c.query('SELECT $1::int * 2 AS v', [i]);
        return r.rows[0] as { v: number };
      }),
    ),
  );
  expect(results.map((r) => r.v)).toEqual(Array.from({ length: 16 }, (_, i) => i * 2));
});

test('cancel request stops the running statement', async () => {
  const c = await connect();
  try {
    const started = Date.now();
    const running = c.query(SLOW_QUERY);
    await new Promise((r) => setTimeout(r, 300));
    // pg's own cancel: a CancelRequest on a new connection with the key the proxy issued.
    const canceller = new Client({ connectionString: proxy.url() }) as Client & { cancel(c: Client, q: unknown): void };
    canceller.cancel(c, (c as unknown as { activeQuery: unknown }).activeQuery);
    await expect(running).rejects.toMatchObject({ code: '57014' });
    expect(Date.now() - started).toBeLessThan(10000);
    expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
  } finally {
    await c.end();
  }
});

test('statement_timeout from the policy is set on the upstream session', async () => {
  await withClient(async (c) => {
    expect((await c.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('3s');
    const started = Date.now();
    await expect(c.query(SLOW_QUERY)).rejects.toMatchObject({ code: '57014' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(2900);
    await c.query('SET statement_timeout = 100');
    const lowered = Date.now();
    await expect(c.query(SLOW_QUERY)).rejects.toMatchObject({ code: '57014' });
    expect(Date.now() - lowered).toBeLessThan(2500);
    await expect(c.query("SET statement_timeout = '10min'")).rejects.toMatchObject({ routine: 'ormai.statement_timeout_raise' });
  });
});
