// The tool-call adversarial family (docs/tools.md), mirroring the SQL one: every case over POST /agent/tool with a
// bearer token, answered by the same engine as SQL from the wire; the results are compared with the same question in SQL.
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startToolHarness, type ToolHarness } from '../support/tools';

const POLICY = path.resolve(__dirname, '..', 'fixtures', 'tool-policy.yaml');

let db: TestDatabase;
let h: ToolHarness;
let proxy: ToolHarness['proxy'];
let base: string;
const tool = (...args: Parameters<ToolHarness['tool']>) => h.tool(...args);
const sql = (...args: Parameters<ToolHarness['sql']>) => h.sql(...args);
const eventOf = (id: string) => h.eventOf(id);

beforeAll(async () => {
  db = await createTestDatabase();
  h = await startToolHarness(db.url, POLICY);
  ({ proxy, base } = h);
});
afterAll(async () => {
  await h?.close();
  await db?.drop();
});

describe('tenant', () => {
  test('a tenant_id in where is ignored and flagged: the same rows as the agent\'s own tenant, never the other', async () => {
    const r = await tool('db.query', { model: 'Order', where: { tenant_id: 2 }, order_by: 'id' });
    expect(r.status).toBe(200);
    const own = await sql('SELECT * FROM orders ORDER BY id');
    expect(r.body.data.map((o: { id: number }) => o.id)).toEqual(own.map((o) => o.id));
    expect(r.body.data.every((o: { tenant_id: number }) => o.tenant_id === 1)).toBe(true);
    const event = await eventOf(r.body.audit_id);
    expect(event).toMatchObject({ kind: 'statement', decision: 'allowed', tool: { name: 'db.query' }, flags: expect.arrayContaining(['tenant_argument_ignored']) });
    expect(JSON.stringify(event.tool)).not.toContain('"2"');
  });

  test('another tenant\'s row by id: not found to read, untouched by a write', async () => {
    const [theirs] = await sql('SELECT id, status FROM orders ORDER BY id LIMIT 1', 'tenant2');
    const get = await tool('db.get', { model: 'Order', id: theirs.id });
    expect(get).toMatchObject({ status: 404, body: { error: { code: 'row_not_found', sqlstate: 'P0002' } } });
    const update = await tool('db.update', { model: 'Order', id: theirs.id, data: { status: 'hijacked' }, reason: 'probe' });
    expect(update.status).toBe(200);
    expect(update.body).toMatchObject({ data: [], rows: 0 });
    expect((await db.query<{ status: string }>(`SELECT status FROM orders WHERE id = ${theirs.id}`))[0].status).toBe(theirs.status);
  });

  test('a tenant_id in data is ignored: the row is created in the agent\'s tenant', async () => {
    const r = await tool('db.create', { model: 'Order', data: { customer_id: 1, total_cents: 4242, tenant_id: 2 }, reason: 'customer called' });
    expect(r.status).toBe(200);
    expect(r.body.data).toEqual([expect.objectContaining({ total_cents: 4242, tenant_id: 1 })]);
    expect((await eventOf(r.body.audit_id)).flags).toContain('tenant_argument_ignored');
    expect(await db.query('SELECT tenant_id FROM orders WHERE total_cents = 4242')).toEqual([{ tenant_id: 1 }]);
  });
});

describe('fields', () => {
  test.each([
    ['select', { model: 'Customer', select: ['name', 'api_secret'] }],
    ['where', { model: 'Customer', where: { api_secret: 'sk_live_ACME_DO_NOT_LEAK' } }],
    ['order_by', { model: 'Customer', order_by: 'api_secret' }],
  ])('a denied field in %s is an unknown column, and the hint lists only visible fields', async (_where, args) => {
    const r = await tool('db.query', args);
    expect(r).toMatchObject({ status: 400, body: { error: { code: 'column_not_found', sqlstate: '42703' } } });
    // The agent's own field name may come back; no other denied column, and no value of one.
    expect(r.body.error.hint).not.toMatch(/secret/);
    expect(JSON.stringify(r.body)).not.toMatch(/sk_live/);
  });

  test('masked fields come back masked, and filtering on one means what it means in SQL', async () => {
    const rows = await tool('db.query', { model: 'Customer', select: ['name', 'email'], order_by: 'id' });
    expect(rows.body.data).toEqual(await sql('SELECT name, email FROM customers ORDER BY id'));
    expect(rows.body.data[0].email).not.toBe('jane@acme.com');
    const filtered = await tool('db.query', { model: 'Customer', select: ['name'], where: { email: 'jane@acme.com' } });
    const inSql = await sql("SELECT name FROM customers WHERE email = 'jane@acme.com'").catch((e: { code: string }) => e.code);
    if (Array.isArray(inSql)) expect(filtered.body.data).toEqual(inSql);
    else expect(filtered.body.error.sqlstate).toBe(inSql);
  });

  test('db.describe_schema lists visible fields, marks masked ones and never names a denied one', async () => {
    const r = await tool('db.describe_schema', {});
    expect(r.status).toBe(200);
    const text = JSON.stringify(r.body);
    expect(text).toContain('Customer');
    expect(text).not.toContain('api_secret');
    expect(text).toMatch(/email/);
  });
});

describe('writes', () => {
  test('a write without a reason is refused, and nothing is written', async () => {
    const before = await db.query('SELECT count(*)::int AS n FROM orders');
    const r = await tool('db.create', { model: 'Order', data: { customer_id: 1, total_cents: 1 } });
    expect(r).toMatchObject({ status: 403, body: { error: { code: 'reason_required' } } });
    expect(await db.query('SELECT count(*)::int AS n FROM orders')).toEqual(before);
    expect((await eventOf(r.body.audit_id)).decision).toBe('refused');
  });

  test('a write the policy does not enable is refused (delete, customers)', async () => {
    expect(await tool('db.delete', { model: 'Order', id: 1, reason: 'oops' })).toMatchObject({ body: { error: { code: 'model_writes_disabled' } } });
    expect(await tool('db.update', { model: 'Customer', id: 1, data: { name: 'x' }, reason: 'r' })).toMatchObject({ body: { error: { code: 'model_writes_disabled' } } });
  });

  test('an update over max_affected_rows is refused before anything is held', async () => {
    const r = await tool('db.update', { model: 'Order', where: { status: { in: ['pending', 'paid', 'cancelled'] } }, data: { status: 'x' }, reason: 'bulk' });
    expect(r).toMatchObject({ status: 403, body: { error: { code: 'max_affected_rows_exceeded' } } });
    expect(await proxy.approvals.list({ state: 'pending' })).toEqual([]);
  });

  test('an update of two rows is held for approval: approvals.status shows it to its agent only', async () => {
    const r = await tool('db.update', { model: 'Order', where: { status: 'paid' }, data: { status: 'refunded' }, reason: 'customer asked' });
    expect(r).toMatchObject({ status: 409, body: { error: { code: 'pending_approval', approval_id: expect.stringMatching(/^appr_/) } } });
    const id = r.body.error.approval_id as string;
    expect((await tool('approvals.status', { approval_id: id })).body.data.approvals).toEqual([expect.objectContaining({ approval_id: id, state: 'pending', approvals_required: 1 })]);
    expect((await tool('approvals.status', { approval_id: id }, 'tenant2')).body.data.approvals).toEqual([]);
    expect(await sql("SELECT count(*)::int AS n FROM orders WHERE status = 'refunded'")).toEqual([{ n: 0 }]);
  });

  test('a dry run shows the change and writes nothing', async () => {
    const [order] = await sql("SELECT id, status FROM orders WHERE status = 'pending' ORDER BY id LIMIT 1");
    const r = await tool('db.update', { model: 'Order', id: order.id, data: { status: 'shipped' }, reason: 'preview', dry_run: true });
    expect(r.status).toBe(200);
    expect(r.body.dry_run).toBe(true);
    expect((await db.query<{ status: string }>(`SELECT status FROM orders WHERE id = ${order.id}`))[0].status).toBe(order.status);
  });
});

test('every call is audited once, refused ones included, with its tool_call_id and no argument values', async () => {
  const calls: Array<[string, unknown]> = [
    ['db.query', { model: 'Order', where: { status: 'paid' } }],
    ['db.nope', {}],
    ['db.query', { model: 'Order', bogus: 1 }],
    ['db.get', { model: 'Order', id: 999999 }],
    ['db.create', { model: 'Order', data: { customer_id: 1, total_cents: 7 } }],
    ['db.describe_schema', {}],
  ];
  const ids: string[] = [];
  for (const [i, [name, args]] of calls.entries()) {
    const r = await tool(name, args, 'tenant1', `call_${i}_audit`);
    expect(r.body.audit_id).toEqual(expect.any(String));
    ids.push(r.body.audit_id);
  }
  const events = await Promise.all(ids.map(eventOf));
  expect(events.map((e) => e.tool_call_id)).toEqual(calls.map((_, i) => `call_${i}_audit`));
  expect(new Set(ids).size).toBe(calls.length);
  for (const e of events) {
    expect(e.tool).toBeDefined();
    expect(JSON.stringify(e.tool)).not.toMatch(/paid|999999|"7"/);
  }
  expect(events.map((e) => e.decision)).toEqual(['allowed', 'refused', 'refused', 'allowed', 'refused', 'allowed']);
});

test('no token, a wrong token: 401 and nothing runs', async () => {
  const none = await fetch(`${base}/agent/tool`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'db.query', arguments: { model: 'Order' } }) });
  expect(none.status).toBe(401);
  const wrong = await fetch(`${base}/agent/tool`, { method: 'POST', headers: { authorization: 'Bearer not-a-token-of-anyone-000000', 'content-type': 'application/json' }, body: '{}' });
  expect(wrong.status).toBe(401);
});
