// Approvals end to end (I5): a write a rule holds is stored, not run; two distinct approvers over the admin API make the
// proxy run it once; the requester cannot approve; expiry denies; the agent sees its approvals in ormai.approvals.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { api, writeAdminSecrets } from '../support/admin';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';

const R = "/*reason='customer asked'*/ ";
let db: TestDatabase;
let proxy: TestProxy;
let dir: string;
let admin: { url: string };

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-approvals-'));
  writeAdminSecrets(dir);
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url, {
    policies: [path.resolve(__dirname, '..', 'fixtures', 'approval-policy.yaml')],
    admin: { token_file: path.join(dir, 'admin-token'), identities_file: path.join(dir, 'admin-identities.yaml') },
    approvals: { store: 'postgres', table: 'ormai_approvals_e2e', sweep_interval_ms: 100 },
  });
  admin = { url: `http://127.0.0.1:${proxy.admin.port}` };
});
afterAll(async () => {
  await proxy?.close();
  await db?.query('DROP TABLE IF EXISTS ormai_approvals_e2e');
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

type Mode = { protocol: string; extended: boolean };
const modes: Mode[] = [
  { protocol: 'simple', extended: false },
  { protocol: 'extended', extended: true },
];

async function agent<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

function run(c: Client, sql: string, mode: Mode, values: unknown[] = []) {
  return c.query(mode.extended ? ({ text: sql, values, queryMode: 'extended' } as never) : sql);
}

function approvalId(err: unknown): string {
  const detail = (err as { detail?: string }).detail ?? '';
  const id = /approval_id=(appr_[0-9A-Z]+)/.exec(detail)?.[1];
  if (!id) throw new Error(`no approval id in ${JSON.stringify(err)}`);
  return id;
}

describe.each(modes)('approvals under the $protocol protocol', (mode) => {
  test('a held write runs once, after two distinct approvers, never by its requester', async () => {
    const status = `approved-${mode.protocol}`;
    const current = await db.query<{ id: number; status: string }>('SELECT id, status FROM orders WHERE tenant_id = 1 AND customer_id = 1 ORDER BY id');
    // Extended: the value travels as a parameter, and the approved statement runs with it.
    const sql = `${R}UPDATE orders SET status = ${mode.extended ? '$1' : `'${status}'`} WHERE customer_id = 1`;
    const error = await agent((c) => run(c, sql, mode, mode.extended ? [status] : []).catch((e: unknown) => e));
    expect(error).toMatchObject({ code: '55000', routine: 'ormai.pending_approval' });
    const id = approvalId(error);
    expect(await db.query('SELECT count(*)::int AS n FROM orders WHERE status = $1', [status])).toEqual([{ n: 0 }]);

    const seen = await agent((c) =>
      run(c, `SELECT approval_id, state, operation, model, approvals_received, approvals_required, reason FROM ormai.approvals WHERE approval_id = '${id}'`, mode),
    );
    expect(seen.rows).toEqual([{ approval_id: id, state: 'pending', operation: 'update', model: 'orders', approvals_received: 0, approvals_required: 2, reason: 'customer asked' }]);

    const shown = await api(admin, 'GET', `/approvals/${id}`);
    expect(shown.body.approval).toMatchObject({ state: 'pending', requester: { user: 'tenant1-agent', tenant_id: '1' }, reason: 'customer asked' });
    expect(shown.body.approval.statement_sql).toContain("orders.tenant_id = '1'::int");
    // The approvers see what the write would change.
    expect(shown.body.approval.preview).toEqual(current.map((r) => ({ affected_rows: 2, id: r.id, status_before: r.status, status_after: status })));

    expect((await api(admin, 'POST', `/approvals/${id}/approve`, { body: { approver: 'tenant1-agent' } })).status).toBe(403);
    const first = await api(admin, 'POST', `/approvals/${id}/approve`, { body: { approver: 'alice', note: 'ok' } });
    expect(first.body.approval.state).toBe('pending');
    expect((await api(admin, 'POST', `/approvals/${id}/approve`, { body: { approver: 'alice' } })).status).toBe(409);
    const second = await api(admin, 'POST', `/approvals/${id}/approve`, { body: { approver: 'bob' } });
    expect(second.body.approval).toMatchObject({ state: 'executed', result: { rows_affected: 2 } });

    expect(await db.query('SELECT tenant_id, customer_id FROM orders WHERE status = $1 ORDER BY id', [status])).toEqual([
      { tenant_id: 1, customer_id: 1 },
      { tenant_id: 1, customer_id: 1 },
    ]);
    const after = await agent((c) => run(c, `SELECT state, rows_affected FROM ormai.approvals WHERE approval_id = '${id}'`, mode));
    expect(after.rows).toEqual([{ state: 'executed', rows_affected: 2 }]);
    // Request, approvals and execution are linked in the audit trail by the approval id.
    await new Promise((r) => setTimeout(r, 100));
    const trail = proxy.auditEvents().filter((e) => e.approval_id === id).map((e) => [e.kind, e.decision, e.actor ?? null]);
    expect(trail).toEqual([
      ['statement', 'held', null],
      ['approval', 'approved', 'alice'],
      ['approval', 'approved', 'bob'],
      ['approval', 'executed', null],
    ]);
    // The approver's note is on their step; the execution names everyone who approved.
    const steps = proxy.auditEvents().filter((e) => e.approval_id === id && e.kind === 'approval');
    expect(steps.map((e) => [e.decision, e.note ?? null, e.approvers ?? null])).toEqual([
      ['approved', 'ok', null],
      ['approved', null, null],
      ['executed', null, ['alice', 'bob']],
    ]);
    // Each step is counted (ormai_approvals_total{decision}).
    const metrics = await (await fetch(`${admin.url}/metrics`)).text();
    const count = (decision: string) => Number(new RegExp(`^ormai_approvals_total\\{decision="${decision}"\\} (\\d+)$`, 'm').exec(metrics)?.[1]);
    expect(count('approved')).toBeGreaterThanOrEqual(2);
    expect(count('executed')).toBeGreaterThanOrEqual(1);
  });

  test('a write the rule does not cover runs at once', async () => {
    const r = await agent((c) => run(c, `${R}UPDATE orders SET status = 'single-${mode.protocol}' WHERE id = 1`, mode));
    expect(r.rowCount).toBe(1);
  });

  test('an unanswered approval expires and is denied', async () => {
    const error = await agent((c) => run(c, `${R}DELETE FROM orders WHERE id = 2`, mode).catch((e: unknown) => e));
    const id = approvalId(error);
    await new Promise((r) => setTimeout(r, 1500));
    const late = await api(admin, 'POST', `/approvals/${id}/approve`, { body: { approver: 'alice' } });
    expect([409, 410]).toContain(late.status);
    const seen = await agent((c) => run(c, `SELECT state FROM ormai.approvals WHERE approval_id = '${id}'`, mode));
    expect(seen.rows).toEqual([{ state: 'expired' }]);
    expect(await db.query('SELECT count(*)::int AS n FROM orders WHERE id = 2')).toEqual([{ n: 1 }]);
  });

  test('another tenant sees none of these approvals', async () => {
    const other = new Client({ connectionString: proxy.url('tenant2-agent', 'tenant2-password') });
    await other.connect();
    try {
      const rows = await run(other, 'SELECT count(*)::int AS n FROM ormai.approvals', mode);
      expect(rows.rows).toEqual([{ n: 0 }]);
    } finally {
      await other.end();
    }
  });
});
