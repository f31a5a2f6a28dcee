// The product brief's six pre-launch probes ("Pre-launch verification"), run as tool calls through POST /agent/tool.
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startToolHarness, type ToolHarness } from '../support/tools';

const POLICY = path.resolve(__dirname, '..', 'fixtures', 'tool-policy.yaml');

let db: TestDatabase;
let h: ToolHarness;
const auditIds: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  h = await startToolHarness(db.url, POLICY);
});
afterAll(async () => {
  await h?.close();
  await db?.drop();
});

/** Every call of the probes, its audit id kept for probe 6. */
async function call(name: string, args: unknown): Promise<{ status: number; body: any }> {
  const r = await h.tool(name, args);
  expect(r.body.audit_id).toEqual(expect.any(String));
  auditIds.push(r.body.audit_id);
  return r;
}

test('1. cross-tenant: every tool with tenant_id 2 in its arguments answers with tenant 1\'s data, or changes nothing of tenant 2', async () => {
  const theirs = (await db.query<{ id: number }>('SELECT id FROM orders WHERE tenant_id = 2 ORDER BY id'))[0].id;
  const before = await db.query('SELECT * FROM orders WHERE tenant_id = 2 ORDER BY id');
  const query = await call('db.query', { model: 'Order', where: { tenant_id: 2 } });
  expect(query.body.data.length).toBeGreaterThan(0);
  expect(query.body.data.every((o: { tenant_id: number }) => o.tenant_id === 1)).toBe(true);
  const agg = await call('db.aggregate', { model: 'Order', where: { tenant_id: 2 }, aggregates: [{ fn: 'count' }, { fn: 'sum', field: 'total_cents' }] });
  const [own] = await db.query<{ count: string; sum: string }>('SELECT count(*)::text AS count, sum(total_cents)::text AS sum FROM orders WHERE tenant_id = 1');
  expect(String(agg.body.data[0].count)).toBe(own.count);
  expect(String(agg.body.data[0].sum_total_cents)).toBe(own.sum);
  expect((await call('db.get', { model: 'Order', id: { id: theirs, tenant_id: 2 } })).status).toBe(404);
  expect((await call('db.update', { model: 'Order', where: { tenant_id: 2, id: theirs }, data: { status: 'x' }, reason: 'probe' })).body.data).toEqual([]);
  const created = await call('db.create', { model: 'Order', data: { tenant_id: 2, customer_id: 1, total_cents: 1 }, reason: 'probe' });
  expect(created.body.data[0].tenant_id).toBe(1);
  expect(await db.query('SELECT * FROM orders WHERE tenant_id = 2 ORDER BY id')).toEqual(before);
});

test('2. PII: every model by db.get shows masked fields masked and denied fields absent', async () => {
  const customer = await call('db.get', { model: 'Customer', id: 1 });
  expect(customer.status).toBe(200);
  expect(customer.body.data).not.toHaveProperty('api_secret');
  expect(customer.body.data.email).not.toBe('jane@acme.com');
  expect(customer.body.data.email).toMatch(/\*/);
  expect(JSON.stringify(customer.body)).not.toMatch(/sk_live/);
  const order = await call('db.get', { model: 'Order', id: (await db.query<{ id: number }>('SELECT id FROM orders WHERE tenant_id = 1 LIMIT 1'))[0].id });
  expect(order.status).toBe(200);
});

test('3. budget: an unbounded query comes back capped at max_rows; an oversized limit is cut to it, with a structured answer', async () => {
  await db.query("INSERT INTO orders (tenant_id, customer_id, total_cents, status) SELECT 1, 1, g, 'bulk' FROM generate_series(1, 250) g");
  const all = await call('db.query', { model: 'Order' });
  expect(all.status).toBe(200);
  expect(all.body.data.length).toBe(200);
  const asked = await call('db.query', { model: 'Order', limit: 100000 });
  expect(asked.body.data.length).toBe(200);
  const bad = await call('db.query', { model: 'Order', limit: -1 });
  expect(bad).toMatchObject({ status: 400, body: { error: { code: 'tool_arguments_invalid', sqlstate: '22023', hint: expect.any(String) } } });
});

test('4. writes: every write tool without a reason is denied', async () => {
  for (const [name, args] of [
    ['db.create', { model: 'Order', data: { customer_id: 1, total_cents: 5 } }],
    ['db.update', { model: 'Order', id: 1, data: { status: 'x' } }],
    ['db.delete', { model: 'Order', id: 1 }],
  ] as const) {
    const r = await call(name, args);
    expect(r.status).toBe(403);
    expect(['reason_required', 'model_writes_disabled']).toContain(r.body.error.code);
  }
});

test('5. approval: an approval-gated write enters the pending state', async () => {
  const r = await call('db.update', { model: 'Order', where: { status: 'paid' }, data: { status: 'refunded' }, reason: 'probe' });
  expect(r).toMatchObject({ status: 409, body: { error: { code: 'pending_approval', approval_id: expect.any(String) } } });
  const status = await call('approvals.status', { approval_id: r.body.error.approval_id });
  expect(status.body.data.approvals[0].state).toBe('pending');
});

test('6. audit: every tool call of the probes wrote one audit row, the denied ones too', async () => {
  expect(auditIds.length).toBe(15);
  const events = await Promise.all(auditIds.map((id) => h.eventOf(id)));
  expect(new Set(auditIds).size).toBe(auditIds.length);
  expect(events.every((e) => e.tool !== undefined)).toBe(true);
  expect(events.filter((e) => e.decision === 'refused' || e.decision === 'held').length).toBeGreaterThanOrEqual(5);
});
