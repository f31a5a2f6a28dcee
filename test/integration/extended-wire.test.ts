// The extended protocol at message level: binary parameters and results, row limits, portals, pipelines, error recovery.
import { serialize } from 'pg-protocol';
import { cstr, int16, int32, msg } from '../support/bytes';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { RawClient, type Message } from '../support/raw-client';

let db: TestDatabase;
let proxy: TestProxy;
let c: RawClient;

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url);
});
beforeEach(async () => {
  c = await RawClient.connect(proxy.port, 'tenant1-agent', 'tenant1-password');
});
afterEach(() => c.end());
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

const names = (ms: Message[]) => ms.map((m) => m.name);

/** Bind with explicit parameter and result format codes (pg-protocol's serializer cannot mix them). */
function bind(portal: string, statement: string, params: Array<{ format: 0 | 1; value: Buffer | null }>, resultFormats: number[]): Buffer {
  const parts: Buffer[] = [cstr(portal), cstr(statement), int16(params.length), ...params.map((p) => int16(p.format)), int16(params.length)];
  for (const p of params) parts.push(p.value === null ? int32(-1) : Buffer.concat([int32(p.value.length), p.value]));
  parts.push(int16(resultFormats.length), ...resultFormats.map(int16));
  return msg('B', ...parts);
}

test('binary parameters and binary results pass through untouched', async () => {
  const int4 = Buffer.alloc(4);
  int4.writeInt32BE(41);
  c.send(
    serialize.parse({ name: 's1', text: 'SELECT $1::int4 + 1 AS n, $2::bytea AS b, $3::text AS t', types: [23, 17, 25] }),
    bind('', 's1', [
      { format: 1, value: int4 },
      { format: 1, value: Buffer.from([0, 1, 254, 255]) },
      { format: 0, value: null },
    ], [1]),
    serialize.describe({ type: 'P', name: '' }),
    serialize.execute({ portal: '' }),
    serialize.sync(),
  );
  const ms = await c.untilReady();
  expect(names(ms)).toEqual(['parseComplete', 'bindComplete', 'rowDescription', 'dataRow', 'commandComplete', 'readyForQuery']);
  const desc = ms[2] as unknown as { fields: Array<{ name: string; format: string }> };
  expect(desc.fields.map((f) => [f.name, f.format])).toEqual([
    ['n', 'binary'],
    ['b', 'binary'],
    ['t', 'binary'],
  ]);
  // pg-protocol decodes DataRow fields as UTF-8 strings; compare on that view of the bytes.
  const row = (ms[3] as unknown as { fields: Array<string | null> }).fields;
  expect(Buffer.from(row[0]!, 'latin1').length).toBe(4);
  expect(row[0]!.charCodeAt(3)).toBe(42);
  expect(row[2]).toBeNull();
});

test('Execute with a row limit suspends the portal and resumes it', async () => {
  c.send(
    serialize.parse({ name: '', text: 'SELECT g FROM generate_series(1, 5) g', types: [] }),
    serialize.bind({ portal: 'p1', statement: '' }),
    serialize.execute({ portal: 'p1', rows: 2 }),
    serialize.execute({ portal: 'p1', rows: 2 }),
    serialize.execute({ portal: 'p1', rows: 2 }),
    serialize.close({ type: 'P', name: 'p1' }),
    serialize.sync(),
  );
  const ms = await c.untilReady();
  expect(names(ms)).toEqual([
    'parseComplete', 'bindComplete',
    'dataRow', 'dataRow', 'portalSuspended',
    'dataRow', 'dataRow', 'portalSuspended',
    'dataRow', 'commandComplete',
    'closeComplete', 'readyForQuery',
  ]);
});

test('Describe of a statement, and reuse of a named statement across syncs', async () => {
  c.send(serialize.parse({ name: 'st', text: 'SELECT id, name FROM customers WHERE id = $1', types: [] }), serialize.describe({ type: 'S', name: 'st' }), serialize.sync());
  const first = await c.untilReady();
  expect(names(first)).toEqual(['parseComplete', 'parameterDescription', 'rowDescription', 'readyForQuery']);
  for (const id of ['1', '2']) {
    c.send(serialize.bind({ statement: 'st', values: [id] }), serialize.execute({}), serialize.sync());
    expect(names(await c.untilReady())).toEqual(['bindComplete', 'dataRow', 'commandComplete', 'readyForQuery']);
  }
  c.send(serialize.close({ type: 'S', name: 'st' }), serialize.sync());
  expect(names(await c.untilReady())).toEqual(['closeComplete', 'readyForQuery']);
});

test('a refused Parse in a pipeline: error, the rest skipped up to Sync, the next batch runs', async () => {
  c.send(
    serialize.parse({ name: '', text: 'SELECT 1', types: [] }),
    serialize.bind({}),
    serialize.execute({}),
    serialize.parse({ name: '', text: 'DROP TABLE orders', types: [] }),
    serialize.bind({}),
    serialize.execute({}),
    serialize.sync(),
    serialize.parse({ name: '', text: 'SELECT 2', types: [] }),
    serialize.bind({}),
    serialize.execute({}),
    serialize.sync(),
  );
  const a = await c.untilReady();
  expect(names(a)).toEqual(['parseComplete', 'bindComplete', 'dataRow', 'commandComplete', 'error', 'readyForQuery']);
  expect(a[4]).toMatchObject({ code: '42501', routine: 'ormai.statement_not_allowed' });
  const b = await c.untilReady();
  expect(names(b)).toEqual(['parseComplete', 'bindComplete', 'dataRow', 'commandComplete', 'readyForQuery']);
  expect(await db.query("SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'orders'")).toEqual([{ n: 1 }]);
});

test('an implicit transaction spanning a batch is rolled back when a later statement is refused', async () => {
  c.send(
    serialize.parse({ name: '', text: "/*reason='test'*/ INSERT INTO orders (tenant_id, customer_id, total_cents) VALUES (1, 1, 9191)", types: [] }),
    serialize.bind({}),
    serialize.execute({}),
    serialize.parse({ name: '', text: 'DELETE FROM orders', types: [] }),
    serialize.bind({}),
    serialize.execute({}),
    serialize.sync(),
  );
  const ms = await c.untilReady();
  expect(names(ms)).toEqual(['parseComplete', 'bindComplete', 'commandComplete', 'error', 'readyForQuery']);
  expect(await db.query('SELECT count(*)::int AS n FROM orders WHERE total_cents = 9191')).toEqual([{ n: 0 }]);
});

test('Flush delivers pending results without ending the batch', async () => {
  c.send(serialize.parse({ name: '', text: 'SELECT 7 AS seven', types: [] }), serialize.bind({}), serialize.execute({}), serialize.flush());
  expect((await c.next()).name).toBe('parseComplete');
  expect((await c.next()).name).toBe('bindComplete');
  expect((await c.next()).name).toBe('dataRow');
  expect((await c.next()).name).toBe('commandComplete');
  c.send(serialize.sync());
  expect((await c.next()).name).toBe('readyForQuery');
});

test('the fast-path function call interface is refused', async () => {
  c.send(msg('F', int32(1598), int16(0), int16(0), int16(0)));
  const ms = await c.untilReady();
  expect(ms[0]).toMatchObject({ name: 'error', routine: 'ormai.statement_not_allowed' });
  // Its event says what was refused (it has no statement text to redact).
  let event;
  for (let i = 0; i < 50 && !event; i++) {
    event = proxy.auditEvents().find((e) => e.sql === '<fast-path function call>');
    if (!event) await new Promise((r) => setTimeout(r, 20));
  }
  expect(event).toMatchObject({ decision: 'refused', code: 'statement_not_allowed' });
});

describe('a Parse PostgreSQL refuses is recorded once, whatever follows it and whenever it arrives (I7)', () => {
  /** The statement events written since `before` (an index into the trail), once at least one is in and a moment has passed. */
  async function statementsSince(before: number) {
    const since = () => proxy.auditEvents().slice(before).filter((e) => e.kind === 'statement');
    for (let i = 0; i < 100 && since().length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 150));
    return since().map((e) => `${e.decision} ${e.code ?? ''} ${e.sql}`);
  }

  test('Parse, Bind, Execute and Sync in one write: one error event', async () => {
    const before = proxy.auditEvents().length;
    c.send(serialize.parse({ name: '', text: 'SELECT missing_col_a FROM orders' }), serialize.bind({}), serialize.execute({}), serialize.sync());
    expect(names(await c.untilReady())).toEqual(['error', 'readyForQuery']);
    expect(await statementsSince(before)).toEqual(['error 42703 SELECT missing_col_a FROM orders']);
  });

  test('Parse and Sync alone: one error event', async () => {
    const before = proxy.auditEvents().length;
    c.send(serialize.parse({ name: 'pb', text: 'SELECT missing_col_b FROM orders' }), serialize.sync());
    expect(names(await c.untilReady())).toEqual(['error', 'readyForQuery']);
    expect(await statementsSince(before)).toEqual(['error 42703 SELECT missing_col_b FROM orders']);
  });

  test('Parse, then Bind, Execute and Sync once its error is in: one error event', async () => {
    const before = proxy.auditEvents().length;
    c.send(serialize.parse({ name: '', text: 'SELECT missing_col_c FROM orders' }), serialize.flush());
    expect((await c.next()).name).toBe('error');
    c.send(serialize.bind({}), serialize.execute({}), serialize.sync());
    expect(names(await c.untilReady())).toEqual(['readyForQuery']);
    expect(await statementsSince(before)).toEqual(['error 42703 SELECT missing_col_c FROM orders']);
  });

  test('a Parse that succeeds records nothing of its own: its Execute does', async () => {
    const before = proxy.auditEvents().length;
    c.send(serialize.parse({ name: '', text: 'SELECT 1 AS fine_col' }), serialize.bind({}), serialize.execute({}), serialize.sync());
    expect(names(await c.untilReady())).toEqual(['parseComplete', 'bindComplete', 'dataRow', 'commandComplete', 'readyForQuery']);
    expect(await statementsSince(before)).toEqual(['allowed  SELECT $1 AS fine_col']);
  });
});
