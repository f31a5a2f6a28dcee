// SQL-level PREPARE / EXECUTE / DEALLOCATE through the proxy, with the pg driver against a real PostgreSQL: the body
// of a PREPARE is analysed as the query of a Parse, an EXECUTE is enforced with that analysis (tenant scope, row cap,
// write rules, budgets, one audit event), and the session's record of the name follows PostgreSQL's answers. Each
// case runs with the statements sent as simple Queries and as Parse/Bind/Execute.
import path from 'node:path';
import { Client } from 'pg';
import { serialize } from 'pg-protocol';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { modes, send, type Mode, type PgError } from '../support/modes';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { RawClient, type Message } from '../support/raw-client';

const POLICY = path.resolve(__dirname, '..', 'fixtures', 'session-state-policy.yaml');
const R = "/*reason='sql prepare'*/ ";

let db: TestDatabase;
let proxy: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url, { policies: [POLICY] });
});

afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

afterEach(async () => {
  // Whatever ran, tenant 2's rows are as seeded.
  expect(await db.query("SELECT id, status FROM orders WHERE tenant_id = 2 ORDER BY id")).toEqual([
    { id: 5, status: 'paid' },
    { id: 6, status: 'pending' },
    { id: 7, status: 'paid' },
  ]);
});

async function withAgent<T>(fn: (c: Client) => Promise<T>, restart = false): Promise<T> {
  if (restart) {
    // A fresh proxy: a fresh write budget.
    await proxy.close();
    proxy = await startTestProxy(db.url, { policies: [POLICY] });
  }
  const c = new Client({ host: '127.0.0.1', port: proxy.port, user: 'tenant1-agent', password: 'tenant1-password', database: 'app' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function ok(c: Client, mode: Mode, sql: string, values: unknown[] = []) {
  const r = await send(c, mode, sql, values);
  if (r.error) throw new Error(`${sql}: ${r.error.message}`);
  return r;
}

async function fails(c: Client, mode: Mode, sql: string, values: unknown[] = []): Promise<PgError> {
  const r = await send(c, mode, sql, values);
  if (!r.error) throw new Error(`${sql}: expected an error`);
  return r.error;
}

describe.each(modes)('SQL PREPARE / EXECUTE ($protocol)', (mode) => {
  test('a read runs in the tenant scope, with the declared parameter type', async () => {
    await withAgent(async (c) => {
      await ok(c, mode, 'PREPARE n_of (int) AS SELECT count(*)::int AS n FROM orders WHERE customer_id = $1');
      expect((await ok(c, mode, 'EXECUTE n_of(1)')).rows).toEqual([{ n: 2 }]);
      // Customer 4 is tenant 2's: none of its orders is ever seen.
      expect((await ok(c, mode, 'EXECUTE n_of(4)')).rows).toEqual([{ n: 0 }]);
      await ok(c, mode, 'PREPARE every AS SELECT count(*)::int AS n, max(tenant_id) AS t FROM orders');
      expect((await ok(c, mode, 'EXECUTE every')).rows).toEqual([{ n: 4, t: 1 }]);
      await ok(c, mode, 'DEALLOCATE ALL');
    });
  });

  test('quoted names keep their case and spaces ("P" is not p), as in PostgreSQL', async () => {
    await withAgent(async (c) => {
      await ok(c, mode, 'PREPARE "P" AS SELECT 1 AS upper');
      await ok(c, mode, 'PREPARE p AS SELECT 2 AS lower');
      await ok(c, mode, 'PREPARE "a b" (int) AS SELECT $1 + 1 AS next');
      expect((await ok(c, mode, 'EXECUTE "P"')).rows).toEqual([{ upper: 1 }]);
      expect((await ok(c, mode, 'EXECUTE p')).rows).toEqual([{ lower: 2 }]);
      expect((await ok(c, mode, 'EXECUTE "a b"(41)')).rows).toEqual([{ next: 42 }]);
      await ok(c, mode, 'DEALLOCATE "P"');
      expect((await ok(c, mode, 'EXECUTE p')).rows).toEqual([{ lower: 2 }]);
      expect((await fails(c, mode, 'EXECUTE "P"')).code).toBe('26000');
      await ok(c, mode, 'DEALLOCATE ALL');
    });
  });

  test('the row cap applies to what EXECUTE returns', async () => {
    await withAgent(async (c) => {
      await ok(c, mode, 'PREPARE ids AS SELECT id FROM orders ORDER BY id');
      expect((await ok(c, mode, 'EXECUTE ids')).rows).toEqual([{ id: 1 }, { id: 2 }]);
    });
  });

  test('a body the pipeline refuses is refused at PREPARE with the error the body gets', async () => {
    await withAgent(async (c) => {
      const plain = await fails(c, mode, 'SELECT api_secret FROM customers');
      const prepared = await fails(c, mode, 'PREPARE s AS SELECT api_secret FROM customers');
      expect(prepared.code).toBe(plain.code);
      expect(prepared.message).toBe(plain.message);
      expect((await fails(c, mode, 'PREPARE f AS SELECT pg_sleep(1)')).routine).toBe('ormai.function_not_allowed');
      expect((await fails(c, mode, 'PREPARE t (regclass) AS SELECT $1')).routine).toBe('ormai.function_not_allowed');
      expect((await fails(c, mode, 'PREPARE t (customers) AS SELECT $1')).routine).toBe('ormai.type_not_allowed');
      expect((await fails(c, mode, 'PREPARE d AS DELETE FROM customers WHERE id = 1')).routine).toBe('ormai.model_writes_disabled');
      // Nothing was prepared under those names.
      expect((await fails(c, mode, 'EXECUTE s')).routine).toBe('ormai.prepared_statement_not_found');
      expect((await fails(c, mode, 'EXPLAIN EXECUTE s')).routine).toBe('ormai.statement_not_allowed');
      expect((await fails(c, mode, 'CREATE TABLE t AS EXECUTE s')).routine).toBe('ormai.statement_not_allowed');
    });
  });

  test('a write needs its reason at PREPARE, keeps the tenant scope, and gets one audit event per EXECUTE', async () => {
    await withAgent(async (c) => {
      const refused = await fails(c, mode, "PREPARE w (int) AS UPDATE orders SET status = 'paid' WHERE id = $1");
      expect(refused.routine).toBe('ormai.reason_required');
      await ok(c, mode, `${R}PREPARE w (int) AS UPDATE orders SET status = 'paid' WHERE id = $1`);
      expect((await ok(c, mode, 'EXECUTE w(1)')).rowCount).toBe(1);
      // Order 6 is tenant 2's: the write reaches no row of it.
      expect((await ok(c, mode, "/*reason='second try'*/ EXECUTE w(6)")).rowCount).toBe(0);
      await ok(c, mode, 'DEALLOCATE w');
    }, true);
    expect((await db.query("SELECT status FROM orders WHERE id = 1"))[0].status).toBe('paid');
    await db.query("UPDATE orders SET status = 'pending' WHERE id = 1");
    const events = proxy.auditEvents().filter((e) => e.kind === 'statement' && /EXECUTE w/.test(e.sql ?? ''));
    expect(events).toHaveLength(2);
    expect(events.map((e) => [e.decision, e.statement_kind, e.rows, e.reason])).toEqual([
      ['allowed', 'write', 1, 'sql prepare'],
      ['allowed', 'write', 0, 'second try'],
    ]);
    expect(events[0].rewritten_sql).toMatch(/^UPDATE orders/);
    expect(events[0].changes?.rows).toHaveLength(1);
  });

  test('an EXECUTE that asks for a dry run of a prepared write is refused, never run', async () => {
    await withAgent(async (c) => {
      await ok(c, mode, `${R}PREPARE real (int) AS UPDATE orders SET status = 'cancelled' WHERE id = $1`);
      expect((await fails(c, mode, "/*dry_run='true'*/ EXECUTE real(2)")).routine).toBe('ormai.statement_not_allowed');
      await ok(c, mode, "/*dry_run='true'*/ PREPARE preview (int) AS UPDATE orders SET status = 'cancelled' WHERE id = $1");
      await ok(c, mode, 'EXECUTE preview(2)');
    });
    expect((await db.query('SELECT status FROM orders WHERE id = 2'))[0].status).toBe('paid');
  });

  test('EXECUTE of a write counts against the write budget', async () => {
    await withAgent(async (c) => {
      await ok(c, mode, `${R}PREPARE touch (int) AS UPDATE orders SET status = status WHERE id = $1`);
      for (let i = 0; i < 3; i++) await ok(c, mode, 'EXECUTE touch(2)');
      expect((await fails(c, mode, 'EXECUTE touch(2)')).routine).toBe('ormai.write_rate_limited');
    }, true);
  });

  test('DEALLOCATE and DISCARD ALL drop the statement: EXECUTE is refused, never forwarded', async () => {
    await withAgent(async (c) => {
      await ok(c, mode, 'PREPARE gone AS SELECT 1 AS one');
      await ok(c, mode, 'DEALLOCATE gone');
      const e = await fails(c, mode, 'EXECUTE gone');
      expect([e.code, e.routine]).toEqual(['26000', 'ormai.prepared_statement_not_found']);
      await ok(c, mode, 'PREPARE gone AS SELECT 1 AS one');
      await ok(c, mode, 'DEALLOCATE ALL');
      expect((await fails(c, mode, 'EXECUTE gone')).routine).toBe('ormai.prepared_statement_not_found');
      await ok(c, mode, 'PREPARE gone AS SELECT 1 AS one');
      await ok(c, mode, 'DISCARD ALL');
      expect((await fails(c, mode, 'EXECUTE gone')).routine).toBe('ormai.prepared_statement_not_found');
    });
  });

  test('a duplicate name fails as in PostgreSQL, and the name keeps the first statement', async () => {
    await withAgent(async (c) => {
      await ok(c, mode, 'PREPARE dup AS SELECT 1 AS v');
      const e = await fails(c, mode, 'PREPARE dup AS SELECT 2 AS v');
      expect(e.code).toBe('42P05');
      expect((await ok(c, mode, 'EXECUTE dup')).rows).toEqual([{ v: 1 }]);
    });
  });

  test('a PREPARE in a failed transaction prepares nothing', async () => {
    await withAgent(async (c) => {
      await ok(c, mode, 'BEGIN');
      await fails(c, mode, 'SELECT 1 / 0');
      expect((await fails(c, mode, 'PREPARE late AS SELECT 1')).code).toBe('25P02');
      await ok(c, mode, 'ROLLBACK');
      expect((await fails(c, mode, 'EXECUTE late')).routine).toBe('ormai.prepared_statement_not_found');
    });
  });

  test('EXECUTE arguments that could read data are refused', async () => {
    await withAgent(async (c) => {
      await ok(c, mode, 'PREPARE arg (int) AS SELECT count(*)::int AS n FROM orders WHERE customer_id = $1');
      for (const sql of ['EXECUTE arg((SELECT max(customer_id) FROM orders))', 'EXECUTE arg(length(current_user))', 'EXECUTE arg(customer_id)']) {
        const e = await fails(c, mode, sql);
        expect(e.routine).toBe('ormai.statement_not_allowed');
        expect(e.hint).toMatch(/constant/);
      }
      expect((await fails(c, mode, "EXECUTE arg('orders'::regclass::int)")).routine).toBe('ormai.function_not_allowed');
      expect((await ok(c, mode, "EXECUTE arg('1'::int)")).rows).toEqual([{ n: 2 }]);
      expect((await ok(c, mode, 'EXECUTE arg(NULL)')).rows).toEqual([{ n: 0 }]);
    });
  });
});

describe('SQL PREPARE / EXECUTE in one simple Query', () => {
  test('PREPARE, EXECUTE and DEALLOCATE in one text, and a refused part refuses all', async () => {
    await withAgent(async (c) => {
      const r = (await c.query('PREPARE m (int) AS SELECT count(*)::int AS n FROM orders WHERE customer_id = $1; EXECUTE m(1); DEALLOCATE m')) as unknown as Array<{ rows: unknown[] }>;
      expect(r[1].rows).toEqual([{ n: 2 }]);
      await expect(c.query('PREPARE m2 AS SELECT 1; DEALLOCATE m2; EXECUTE m2')).rejects.toMatchObject({ routine: 'ormai.prepared_statement_not_found' });
      // Nothing of the refused text ran: m2 does not exist.
      await c.query('PREPARE m2 AS SELECT 1');
    });
  });

  test('a Parse of EXECUTE with a $n argument gets PostgreSQL\'s own answer; one of a dropped name is refused', async () => {
    const c = await RawClient.connect(proxy.port, 'tenant1-agent', 'tenant1-password');
    try {
      c.send(serialize.query('PREPARE x (int) AS SELECT count(*)::int AS n FROM orders WHERE customer_id = $1'));
      await c.untilReady();
      const run = (text: string, values: string[], types: number[] = []) => [
        serialize.parse({ name: '', text, types }),
        serialize.bind({ statement: '', values }),
        serialize.execute({}),
        serialize.sync(),
      ];
      c.send(...run('EXECUTE x(1)', []));
      expect(rowsOf(await c.untilReady())).toEqual([['2']]);
      // PostgreSQL evaluates EXECUTE's arguments without the portal's parameters (transformParamRef: 42P02).
      c.send(...run('EXECUTE x($1)', ['1'], [23]));
      expect(codesOf(await c.untilReady())).toEqual(['42P02']);
      c.send(serialize.query('DEALLOCATE x'));
      await c.untilReady();
      c.send(...run('EXECUTE x(1)', []));
      expect(codesOf(await c.untilReady())).toEqual(['26000']);
    } finally {
      c.end();
    }
  });
});

const rowsOf = (ms: Message[]) => ms.filter((m) => m.name === 'dataRow').map((m) => (m as unknown as { fields: Array<string | null> }).fields);
const codesOf = (ms: Message[]) => ms.filter((m) => m.name === 'error').map((m) => (m as unknown as { code: string }).code);
