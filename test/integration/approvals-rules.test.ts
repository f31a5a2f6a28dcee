// require_approval rules in the policy's order: a rule whose condition fails at run time hands the write to the next one,
// and a field assigned from a parameter is judged by its bound value (both protocols; the parameter cases are extended only).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { writeAdminSecrets } from '../support/admin';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { modes, send } from '../support/modes';
import { startTestProxy, type TestProxy } from '../support/proxy';

const R = "/*reason='rules test'*/ ";
let db: TestDatabase;
let proxy: TestProxy;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-approval-rules-'));
  writeFileSync(
    path.join(dir, 'policy.yaml'),
    [
      'name: rule-order',
      'models: [customers, orders]',
      'tenant_scope: { column: tenant_id, type: integer }',
      'enable_writes:',
      '  - { models: [orders], operations: [update], require_reason: true }',
      'require_approval:',
      '  - { operation: update, model: orders, when: { affected_rows_gt: 10 }, approvers: 1, expires_in_s: 600 }',
      "  - { operation: update, model: orders, when: { field: status, in: [refunded] }, approvers: 1, expires_in_s: 600 }",
      '',
    ].join('\n'),
  );
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url, { policies: [path.join(dir, 'policy.yaml')], admin: writeAdminSecrets(dir) });
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

async function withAgent<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const firstOrder = async () => (await db.query<{ id: number }>('SELECT id FROM orders WHERE tenant_id = 1 ORDER BY id LIMIT 1'))[0].id;

describe.each(modes)('$protocol protocol', (mode) => {
  test('a one-row refund is not let through by the rule before it (few rows): the refund rule holds it', async () => {
    const id = await firstOrder();
    const out = await withAgent((c) => send(c, mode, `${R}UPDATE orders SET status = 'refunded' WHERE id = ${id}`));
    expect(out.error?.routine).toBe('ormai.pending_approval');
    expect(out.error?.message).toMatch(/status in \["refunded"\]/);
    expect((await db.query<{ status: string }>(`SELECT status FROM orders WHERE id = ${id}`))[0].status).not.toBe('refunded');
  });

  test('a one-row update to another status runs: no rule holds it', async () => {
    const id = await firstOrder();
    const out = await withAgent((c) => send(c, mode, `${R}UPDATE orders SET status = 'shipped-${mode.protocol}' WHERE id = ${id}`));
    expect(out.error).toBeUndefined();
    expect((await db.query<{ status: string }>(`SELECT status FROM orders WHERE id = ${id}`))[0].status).toBe(`shipped-${mode.protocol}`);
  });
});

describe('a status assigned from a parameter is judged by its bound value', () => {
  test('refunded: held; paid: runs', async () => {
    const id = await firstOrder();
    const held = await withAgent((c) => send(c, modes[1], `${R}UPDATE orders SET status = $1 WHERE id = $2`, ['refunded', id]));
    expect(held.error?.routine).toBe('ormai.pending_approval');
    const ran = await withAgent((c) => send(c, modes[1], `${R}UPDATE orders SET status = $1::text WHERE id = $2`, ['paid-by-param', id]));
    expect(ran.error).toBeUndefined();
    expect((await db.query<{ status: string }>(`SELECT status FROM orders WHERE id = ${id}`))[0].status).toBe('paid-by-param');
  });
});
