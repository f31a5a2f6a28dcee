// Statements outside the allow-lists are refused with a structured error, under both protocols, and never reach the database.
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';

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

const cases: Array<{ sql: string; routine: string; sqlstate: string }> = [
  { sql: 'DROP TABLE orders', routine: 'ormai.statement_not_allowed', sqlstate: '42501' },
  { sql: 'COPY orders TO STDOUT', routine: 'ormai.statement_not_allowed', sqlstate: '42501' },
  { sql: "DO $$ BEGIN EXECUTE 'DROP TABLE orders'; END $$", routine: 'ormai.statement_not_allowed', sqlstate: '42501' },
  { sql: 'SET ROLE postgres', routine: 'ormai.setting_not_allowed', sqlstate: '42501' },
  { sql: 'SET search_path = pg_temp, public', routine: 'ormai.setting_not_allowed', sqlstate: '42501' },
  { sql: 'SET SESSION AUTHORIZATION postgres', routine: 'ormai.setting_not_allowed', sqlstate: '42501' },
  { sql: 'RESET search_path', routine: 'ormai.setting_not_allowed', sqlstate: '42501' },
  { sql: 'DELETE FROM orders', routine: 'ormai.model_writes_disabled', sqlstate: '42501' },
  { sql: 'TRUNCATE orders', routine: 'ormai.statement_not_allowed', sqlstate: '42501' },
  { sql: 'CREATE TABLE evil (id int)', routine: 'ormai.statement_not_allowed', sqlstate: '42501' },
  { sql: 'SELECT * INTO evil FROM orders', routine: 'ormai.statement_not_allowed', sqlstate: '42501' },
  // A PREPARE's body gets the refusal the same statement gets on its own.
  { sql: 'PREPARE p AS DELETE FROM orders', routine: 'ormai.model_writes_disabled', sqlstate: '42501' },
  { sql: 'BEGIN READ WRITE', routine: 'ormai.setting_not_allowed', sqlstate: '42501' },
  { sql: 'SELEC 1', routine: 'ormai.syntax_error', sqlstate: '42601' },
];

async function snapshot() {
  const [tables] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'");
  const [orders] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders');
  return { tables: tables.n, orders: orders.n };
}

describe.each([
  { protocol: 'simple', extended: false },
  { protocol: 'extended', extended: true },
])('under the $protocol protocol', ({ extended }) => {
  test.each(cases)('$sql is refused', async ({ sql, routine, sqlstate }) => {
    const before = await snapshot();
    const c = new Client({ connectionString: proxy.url() });
    await c.connect();
    try {
      const err = await c.query(extended ? ({ text: sql, values: [], queryMode: 'extended' } as never) : sql).then(
        () => undefined,
        (e: Error & Record<string, unknown>) => e,
      );
      expect(err).toBeDefined();
      expect(err!.routine).toBe(routine);
      expect(err!.code).toBe(sqlstate);
      expect(err!.message).toMatch(new RegExp(`^${routine.replace('ormai.', '')}: `));
      expect(typeof err!.hint).toBe('string');
      expect((err!.hint as string).length).toBeGreaterThan(20);
      // The session stays usable.
      expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
    } finally {
      await c.end();
    }
    expect(await snapshot()).toEqual(before);
  });
});

test('a multi-statement string with one refused part is refused whole and runs nothing', async () => {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  try {
    await expect(c.query("INSERT INTO orders (tenant_id, customer_id, total_cents) VALUES (1, 1, 222); DELETE FROM orders")).rejects.toMatchObject({
      routine: 'ormai.model_writes_disabled',
    });
    await expect(c.query('SELECT 1; DELETE FROM orders')).rejects.toMatchObject({ routine: 'ormai.model_writes_disabled' });
  } finally {
    await c.end();
  }
  expect(await db.query('SELECT count(*)::int AS n FROM orders WHERE total_cents = 222')).toEqual([{ n: 0 }]);
  expect(await db.query('SELECT count(*)::int AS n FROM orders')).toEqual([{ n: 7 }]);
});

test('in an extended-protocol pipeline, a refused Parse skips the rest of the batch up to Sync', async () => {
  // pg sends Parse/Bind/Describe/Execute/Sync per query; several queued queries exercise the skip-to-Sync path.
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  try {
    const results = await Promise.allSettled([
      c.query({ text: 'SELECT $1::int AS a', values: [1] }),
      c.query({ text: 'DROP TABLE orders', values: [], queryMode: 'extended' } as never),
      c.query({ text: 'SELECT $1::int AS b', values: [2] }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[2] as PromiseFulfilledResult<{ rows: unknown[] }>).value.rows).toEqual([{ b: 2 }]);
  } finally {
    await c.end();
  }
});
