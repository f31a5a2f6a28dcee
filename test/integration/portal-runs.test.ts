// What runs a bound portal: only an Execute of it, with the analysis it was bound under. MOVE on a portal that is
// not a cursor ran the whole write behind it (PostgreSQL runs a RETURNING statement to completion, and the proxy adds
// one to every write); a portal of `EXECUTE p` ran whatever p held when it ran, not what was checked at Bind.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serialize } from 'pg-protocol';
import { writeAdminSecrets } from '../support/admin';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { modes, type Mode } from '../support/modes';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { RawClient, type Message } from '../support/raw-client';

// Every UPDATE and DELETE of orders waits for an approver.
const POLICY = path.resolve(__dirname, '..', 'fixtures', 'approval-audit-policy.yaml');
let db: TestDatabase;
let proxy: TestProxy;
let dir: string;
let c: RawClient;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-portal-runs-'));
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url, { policies: [POLICY], admin: writeAdminSecrets(dir) });
});
beforeEach(async () => {
  c = await RawClient.connect(proxy.port, 'tenant1-agent', 'tenant1-password');
});
afterEach(() => c.end());
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

const names = (ms: Message[]) => ms.map((m) => m.name);

/** One statement under the mode: a Query, or Parse/Bind/Execute/Sync of the unnamed statement. */
async function statement(mode: Mode, sql: string): Promise<Message[]> {
  if (mode.extended) c.send(serialize.parse({ text: sql }), serialize.bind({}), serialize.execute({}), serialize.sync());
  else c.send(serialize.query(sql));
  return c.untilReady();
}

const errorOf = (ms: Message[]) => ms.find((m) => m.name === 'error') as (Message & { routine?: string; message?: string }) | undefined;

async function firstOrder(): Promise<{ id: number; status: string }> {
  return (await db.query<{ id: number; status: string }>('SELECT id, status FROM orders WHERE tenant_id = 1 ORDER BY id LIMIT 1'))[0];
}

describe.each(modes)('$protocol protocol', (mode) => {
  test('MOVE in a bound portal that is no cursor is refused: the write behind it (one a rule holds) never runs', async () => {
    const order = await firstOrder();
    await statement(mode, 'BEGIN');
    c.send(
      serialize.parse({ name: 'up', text: `/*reason='move'*/ UPDATE orders SET status = 'moved-${mode.protocol}' WHERE id = ${order.id} RETURNING id, status` }),
      serialize.bind({ portal: 'w', statement: 'up' }),
      serialize.sync(),
    );
    expect(names(await c.untilReady())).toEqual(['parseComplete', 'bindComplete', 'readyForQuery']);
    for (const move of ['MOVE ALL IN w', 'MOVE FORWARD 1 FROM w', 'MOVE w']) {
      const refused = errorOf(await statement(mode, move));
      expect(refused?.routine).toBe('ormai.statement_not_allowed');
      expect(refused?.message).toMatch(/MOVE in portal "w" is not allowed/);
      // Refused, the transaction is aborted; a savepoint-free retry needs a new one.
      await statement(mode, 'ROLLBACK');
      await statement(mode, 'BEGIN');
      c.send(serialize.parse({ name: 'up2', text: `/*reason='move'*/ UPDATE orders SET status = 'moved-${mode.protocol}' WHERE id = ${order.id} RETURNING id` }), serialize.bind({ portal: 'w', statement: 'up2' }), serialize.sync());
      await c.untilReady();
      c.send(serialize.close({ type: 'S', name: 'up2' }), serialize.sync());
      await c.untilReady();
    }
    await statement(mode, 'ROLLBACK');
    expect(await db.query('SELECT status FROM orders WHERE id = $1', [order.id])).toEqual([{ status: order.status }]);
    // Not held either: nothing waits for an approver.
    expect(await db.query("SELECT count(*)::int AS n FROM orders WHERE status LIKE 'moved-%'")).toEqual([{ n: 0 }]);
  });

  test.each(['FETCH ALL FROM c', 'MOVE ALL IN c'])("a Parse'd %s bound while c was a cursor is refused at Execute once c is a portal of a write", async (fetch) => {
    const order = await firstOrder();
    await statement(mode, 'BEGIN');
    await statement(mode, 'DECLARE c CURSOR FOR SELECT id FROM orders');
    c.send(serialize.parse({ name: 'sf', text: fetch }), serialize.bind({ portal: 'f', statement: 'sf' }), serialize.sync());
    expect(names(await c.untilReady())).toEqual(['parseComplete', 'bindComplete', 'readyForQuery']);
    expect(errorOf(await statement(mode, 'CLOSE c'))).toBeUndefined();
    c.send(
      serialize.parse({ name: 'su', text: `/*reason='swap'*/ UPDATE orders SET status = 'swapped-${mode.protocol}' WHERE id = ${order.id}` }),
      serialize.bind({ portal: 'c', statement: 'su' }),
      serialize.sync(),
    );
    expect(names(await c.untilReady())).toEqual(['parseComplete', 'bindComplete', 'readyForQuery']);
    c.send(serialize.execute({ portal: 'f' }), serialize.sync());
    const ran = await c.untilReady();
    expect(errorOf(ran)?.routine).toBe('ormai.statement_not_allowed');
    expect(errorOf(ran)?.message).toMatch(/cursor "c" has changed since portal "f" was bound/);
    await statement(mode, 'ROLLBACK');
    expect(await db.query('SELECT status FROM orders WHERE id = $1', [order.id])).toEqual([{ status: order.status }]);
  });

  test('the same swap pipelined in one batch (Close and Bind of c unanswered when f runs) is refused too', async () => {
    const order = await firstOrder();
    await statement(mode, 'BEGIN');
    await statement(mode, 'DECLARE c CURSOR FOR SELECT id FROM orders');
    c.send(
      serialize.parse({ name: 'sm', text: 'MOVE ALL IN c' }),
      serialize.bind({ portal: 'm', statement: 'sm' }),
      serialize.close({ type: 'P', name: 'c' }),
      serialize.parse({ name: 'su', text: `/*reason='swap'*/ UPDATE orders SET status = 'piped-${mode.protocol}' WHERE id = ${order.id}` }),
      serialize.bind({ portal: 'c', statement: 'su' }),
      serialize.execute({ portal: 'm' }),
      serialize.sync(),
    );
    const ran = await c.untilReady();
    expect(errorOf(ran)?.routine).toBe('ormai.statement_not_allowed');
    await statement(mode, 'ROLLBACK');
    expect(await db.query('SELECT status FROM orders WHERE id = $1', [order.id])).toEqual([{ status: order.status }]);
  });

  test('a Parse\'d FETCH of a cursor that is still the one it was bound with runs', async () => {
    await statement(mode, 'BEGIN');
    await statement(mode, 'DECLARE k2 CURSOR FOR SELECT id FROM orders ORDER BY id');
    c.send(serialize.parse({ name: 'sk', text: 'FETCH 2 FROM k2' }), serialize.bind({ portal: 'g', statement: 'sk' }), serialize.sync());
    await c.untilReady();
    c.send(serialize.execute({ portal: 'g' }), serialize.sync());
    const ran = await c.untilReady();
    expect(errorOf(ran)).toBeUndefined();
    expect(ran.filter((m) => m.name === 'dataRow')).toHaveLength(2);
    await statement(mode, 'ROLLBACK');
  });

  test('MOVE in a cursor still moves it', async () => {
    await statement(mode, 'BEGIN');
    await statement(mode, 'DECLARE k CURSOR FOR SELECT id FROM orders ORDER BY id');
    const moved = await statement(mode, 'MOVE 1 IN k');
    expect(errorOf(moved)).toBeUndefined();
    expect(moved.find((m) => m.name === 'commandComplete')).toMatchObject({ text: 'MOVE 1' });
    const fetched = await statement(mode, 'FETCH 1 FROM k');
    const ids = (await db.query<{ id: number }>('SELECT id FROM orders WHERE tenant_id = 1 ORDER BY id LIMIT 2')).map((r) => String(r.id));
    expect(fetched.filter((m) => m.name === 'dataRow').map((m) => (m as unknown as { fields: string[] }).fields[0])).toEqual([ids[1]]);
    await statement(mode, 'ROLLBACK');
  });

  test('a portal of EXECUTE p whose p was deallocated and prepared again since its Bind is refused at Execute', async () => {
    const order = await firstOrder();
    await statement(mode, 'BEGIN');
    await statement(mode, 'PREPARE p AS SELECT 1');
    c.send(serialize.parse({ name: 'e', text: 'EXECUTE p' }), serialize.bind({ portal: 'x', statement: 'e' }), serialize.sync());
    expect(names(await c.untilReady())).toEqual(['parseComplete', 'bindComplete', 'readyForQuery']);
    expect(errorOf(await statement(mode, 'DEALLOCATE p'))).toBeUndefined();
    // A write a rule holds: sent as a statement of its own it would wait for an approver.
    expect(errorOf(await statement(mode, `/*reason='late'*/ PREPARE p AS UPDATE orders SET status = 'late-${mode.protocol}' WHERE id = ${order.id} RETURNING id`))).toBeUndefined();
    c.send(serialize.execute({ portal: 'x' }), serialize.sync());
    const ran = await c.untilReady();
    expect(errorOf(ran)).toMatchObject({ routine: 'ormai.statement_not_allowed' });
    expect(errorOf(ran)?.message).toMatch(/prepared statement "p" has changed since portal "x" was bound/);
    await statement(mode, 'ROLLBACK');
    expect(await db.query('SELECT status FROM orders WHERE id = $1', [order.id])).toEqual([{ status: order.status }]);
  });

  test('a portal of EXECUTE p runs while p is the statement it was bound with', async () => {
    await statement(mode, 'BEGIN');
    await statement(mode, 'PREPARE q AS SELECT 7 AS seven');
    c.send(serialize.parse({ name: 'e', text: 'EXECUTE q' }), serialize.bind({ portal: 'y', statement: 'e' }), serialize.sync());
    await c.untilReady();
    c.send(serialize.execute({ portal: 'y' }), serialize.sync());
    const ran = await c.untilReady();
    expect(errorOf(ran)).toBeUndefined();
    expect(ran.filter((m) => m.name === 'dataRow')).toHaveLength(1);
    await statement(mode, 'ROLLBACK');
  });
});

describe('a DISCARD in a Query text before a read', () => {
  // (DISCARD ALL cannot run in a text of several statements: PostgreSQL refuses it in a transaction block.)
  test.each(['DISCARD TEMP'])("%s; SELECT … reads the tenant's rows through the fence (the views are gone when the SELECT runs)", async (discard) => {
    const out = await statement(modes[0], `${discard}; SELECT id FROM orders ORDER BY id`);
    expect(errorOf(out)).toBeUndefined();
    const ids = (await db.query<{ id: number }>('SELECT id FROM orders WHERE tenant_id = 1 ORDER BY id')).map((r) => String(r.id));
    expect(out.filter((m) => m.name === 'dataRow').map((m) => (m as unknown as { fields: string[] }).fields[0])).toEqual(ids);
    // And after it, the views again.
    expect(errorOf(await statement(modes[1], 'SELECT id FROM orders'))).toBeUndefined();
  });
});

describe('a DISCARD TEMP parsed early and executed later', () => {
  test("drops the session's views when it runs: later reads make them again, or read through the fence, and still answer", async () => {
    c.send(serialize.parse({ name: 'd', text: 'DISCARD TEMP' }), serialize.sync());
    await c.untilReady();
    // Reads after the Parse: the views are made again.
    for (let i = 0; i < 2; i++) expect(errorOf(await statement(modes[0], 'SELECT id FROM customers'))).toBeUndefined();
    c.send(serialize.bind({ statement: 'd' }), serialize.execute({}), serialize.sync());
    expect(errorOf(await c.untilReady())).toBeUndefined();
    for (const mode of modes) {
      const read = await statement(mode, 'SELECT id FROM customers ORDER BY id');
      expect(errorOf(read)).toBeUndefined();
      expect(read.filter((m) => m.name === 'dataRow').length).toBeGreaterThan(0);
    }
  });
});

describe.each(modes)('COMMIT AND CHAIN after a write ($protocol protocol)', (mode) => {
  test('commits the write and opens the next block, as PostgreSQL does (the held-back COMMIT keeps AND CHAIN)', async () => {
    const customer = (await db.query<{ id: number }>('SELECT min(id) AS id FROM customers WHERE tenant_id = 1'))[0].id;
    await statement(mode, 'BEGIN');
    expect(errorOf(await statement(mode, `/*reason='chain'*/ INSERT INTO orders (customer_id, total_cents, status) VALUES (${customer}, 5201, 'chain-${mode.protocol}')`))).toBeUndefined();
    const committed = await statement(mode, 'COMMIT AND CHAIN');
    expect(errorOf(committed)).toBeUndefined();
    expect(committed.find((m) => m.name === 'readyForQuery')).toMatchObject({ status: 'T' });
    expect(await db.query('SELECT count(*)::int AS n FROM orders WHERE status = $1', [`chain-${mode.protocol}`])).toEqual([{ n: 1 }]);
    expect((await statement(mode, 'ROLLBACK')).find((m) => m.name === 'readyForQuery')).toMatchObject({ status: 'I' });
  });
});
