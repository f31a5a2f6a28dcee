// The tool-call adversarial family (docs/tools.md), mirroring the SQL one: every case over POST /agent/tool with a
// bearer token, answered by the same engine as SQL from the wire; the results are compared with the same question in SQL.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startToolHarness, TOOL_TOKENS, type ToolHarness } from '../support/tools';
import type { AuditEvent } from '../../src/audit/event';

const POLICY = path.resolve(__dirname, '..', 'fixtures', 'tool-policy.yaml');

let db: TestDatabase;
let h: ToolHarness;
let policyDir: string;
let policyFile: string;
let restrictedFile: string;
const RESTRICTED = 'name: restricted\nrequire_principal_role: ROLE\nmodels: [customers]\ntenant_scope: { column: tenant_id, type: integer }\n';
let proxy: ToolHarness['proxy'];
let base: string;
const tool = (...args: Parameters<ToolHarness['tool']>) => h.tool(...args);
const sql = (...args: Parameters<ToolHarness['sql']>) => h.sql(...args);
const eventOf = (id: string) => h.eventOf(id);

beforeAll(async () => {
  db = await createTestDatabase();
  // The policy is a copy the reload test edits; results are bounded small enough to test the bound.
  policyDir = mkdtempSync(path.join(os.tmpdir(), 'ormai-tool-policy-'));
  policyFile = path.join(policyDir, 'policy.yaml');
  copyFileSync(POLICY, policyFile);
  // A second policy that applies to no one yet; the reload test gives it to the agents' role.
  restrictedFile = path.join(policyDir, 'restricted.yaml');
  writeFileSync(restrictedFile, RESTRICTED.replace('ROLE', 'nobody'));
  h = await startToolHarness(db.url, policyFile, { policies: [restrictedFile, policyFile], tools: { listen: '127.0.0.1:0', max_result_bytes: '256KiB' } });
  ({ proxy, base } = h);
});
afterAll(async () => {
  await h?.close();
  await db?.drop();
  rmSync(policyDir, { recursive: true, force: true });
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

describe('a write whose result passes tools.max_result_bytes, with write_guarantee: async', () => {
  // The budget ends the call while the write's rows arrive: the write must roll back, not commit
  // with a trail that says it failed.
  let lax: ToolHarness;
  let auditDir: string;
  beforeAll(async () => {
    auditDir = mkdtempSync(path.join(os.tmpdir(), 'ormai-tool-async-'));
    lax = await startToolHarness(db.url, POLICY, {
      tools: { listen: '127.0.0.1:0', max_result_bytes: 64 },
      audit: { sinks: [{ type: 'file', path: path.join(auditDir, 'audit.jsonl') }], write_guarantee: 'async' },
    });
  });
  afterAll(async () => {
    await lax?.close();
    rmSync(auditDir, { recursive: true, force: true });
  });

  test('db.create and db.update: refused with result_too_large, and nothing is written', async () => {
    const state = () => db.query('SELECT id, status, total_cents FROM orders ORDER BY id');
    const before = await state();
    const [own] = await db.query<{ id: number }>('SELECT id FROM orders WHERE tenant_id = 1 ORDER BY id LIMIT 1');
    for (const [name, args] of [
      ['db.create', { model: 'Order', data: { customer_id: 1, total_cents: 7771 }, reason: 'budget probe' }],
      ['db.update', { model: 'Order', id: own.id, data: { status: 'budget-probe' }, reason: 'budget probe' }],
    ] as const) {
      const r = await lax.tool(name, args);
      expect({ name, status: r.status, code: r.body.error?.code }).toEqual({ name, status: 403, code: 'result_too_large' });
    }
    expect(await state()).toEqual(before);
    // The trail says so: each write's event, then one naming it as undone with its session.
    let writes: AuditEvent[] = [];
    let undone: string[] = [];
    for (let i = 0; i < 150 && (writes.length < 2 || !writes.every((w) => undone.includes(w.id))); i++) {
      const file = path.join(auditDir, 'audit.jsonl');
      const events = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent) : [];
      writes = events.filter((e) => e.kind === 'statement' && e.statement_kind === 'write' && e.decision === 'allowed');
      undone = events.flatMap((e) => e.undoes ?? []);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(writes.map((w) => w.tool?.name)).toEqual(['db.create', 'db.update']);
    expect(writes.every((w) => undone.includes(w.id))).toBe(true);
  });
});

describe('what the review found', () => {
  test('a result past tools.max_result_bytes is stopped with result_too_large, and the proxy serves the next call', async () => {
    const big = await tool('db.sql', { sql: "SELECT repeat('x', 100000) AS big FROM generate_series(1, 10)" });
    expect(big).toMatchObject({ status: 403, body: { error: { code: 'result_too_large', sqlstate: '54000', hint: expect.stringMatching(/fewer|less/i) } } });
    expect((await tool('db.query', { model: 'Order', limit: 1 })).status).toBe(200);
  });

  test('a comment in db.sql names neither the call, a trace nor a reason', async () => {
    const r = await tool('db.sql', { sql: "/*tool_call_id='call_FORGED',traceparent='00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-01',reason='forged'*/ SELECT 1 AS one" }, 'tenant1', 'call_real');
    expect(r.status).toBe(200);
    const event = await eventOf(r.body.audit_id);
    expect(event.tool_call_id).toBe('call_real');
    expect(event.trace_id).toBeUndefined();
    expect(event.reason).toBeUndefined();
  });

  test('a refused call keeps only the names the scope has: anything else in a naming place is a value', async () => {
    const r = await tool('db.query', { model: 'Customer', order_by: '-4111111111111111', select: ['jane@acme.com'], where: { 'SSN 078-05-1120': 1 } });
    expect(r.status).toBe(400);
    const event = await eventOf(r.body.audit_id);
    expect(JSON.stringify(event)).not.toMatch(/4111111111111111|jane@acme|078-05-1120/);
    expect(event.tool).toMatchObject({ name: 'db.query', arguments: { model: 'Customer' } });
  });

  test('a malformed request is refused and audited like any call', async () => {
    const res = await fetch(`${base}/agent/tool`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOOL_TOKENS.tenant1}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'db.query', arguments: { model: 'Order' }, extra: 'x' }),
    });
    const body = (await res.json()) as { error: { code: string }; audit_id: string };
    expect(res.status).toBe(400);
    expect(body.error.code).toBe('tool_arguments_invalid');
    expect((await eventOf(body.audit_id)).decision).toBe('refused');
  });

  test('a reason that mentions a dry run is a reason: the write runs', async () => {
    const r = await tool('db.create', { model: 'Order', data: { customer_id: 1, total_cents: 3131 }, reason: 'fix after the dry-run and a dry_run' });
    expect(r.status).toBe(200);
    expect(r.body.dry_run).toBeUndefined();
  });

  test('after a reload gives the caller another policy, its calls run under that one, never on a pooled session of the old', async () => {
    const before = await tool('db.query', { model: 'Order', limit: 1 });
    expect(before.status).toBe(200);
    expect((await eventOf(before.body.audit_id)).policy!.name).toBe('tool-tests');
    writeFileSync(restrictedFile, RESTRICTED.replace('ROLE', 'agent'));
    await proxy.reload();
    const after = await tool('db.sql', { sql: 'SELECT id FROM orders LIMIT 1' });
    // Under restricted, orders do not exist; the old session would still have answered.
    expect(after.body.error?.sqlstate).toBe('42P01');
    expect((await eventOf(after.body.audit_id)).policy!.name).toBe('restricted');
    writeFileSync(restrictedFile, RESTRICTED.replace('ROLE', 'nobody'));
    await proxy.reload();
  });
});
