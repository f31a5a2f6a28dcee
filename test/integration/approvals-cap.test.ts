// A write a rule would hold, over max_affected_rows: refused at once with the cap's own code, never held (it could only
// fail once approved); one under the cap is held, and if its rows have grown past the cap when it runs, the approval
// records max_affected_rows_exceeded, never the guard's internal marker. Both protocols.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { api, writeAdminSecrets } from '../support/admin';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { modes, send } from '../support/modes';
import { startTestProxy, type TestProxy } from '../support/proxy';

const R = "/*reason='cap test'*/ ";
let db: TestDatabase;
let proxy: TestProxy;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-cap-'));
  writeAdminSecrets(dir);
  writeFileSync(
    path.join(dir, 'policy.yaml'),
    [
      'name: cap-tests',
      'models: [customers, orders]',
      'tenant_scope: { column: tenant_id, type: integer }',
      'enable_writes:',
      '  - { models: [orders], operations: [update], require_reason: true, max_affected_rows: 2 }',
      'require_approval:',
      '  - { operation: update, model: orders, approvers: 1, expires_in_s: 600 }',
      '',
    ].join('\n'),
  );
  db = await createTestDatabase();
  // Denied by the patterns every policy has (*secret*).
  await db.query('ALTER TABLE orders ADD COLUMN secret_code text');
  proxy = await startTestProxy(db.url, { policies: [path.join(dir, 'policy.yaml')], admin: { token_file: path.join(dir, 'admin-token'), identities_file: path.join(dir, 'admin-identities.yaml') } });
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

const admin = () => ({ url: `http://127.0.0.1:${proxy.admin.port}` });

describe.each(modes)('$protocol protocol', (mode) => {
  test('over the cap: refused with max_affected_rows_exceeded, and nothing is held', async () => {
    const [{ n }] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders WHERE tenant_id = 1');
    expect(n).toBeGreaterThan(2);
    const before = (await api(admin(), 'GET', '/approvals')).body.approvals.length;
    const c = new Client({ connectionString: proxy.url() });
    await c.connect();
    try {
      const out = await send(c, mode, `${R}UPDATE orders SET status = status`);
      expect(out.error?.routine).toBe('ormai.max_affected_rows_exceeded');
      expect(out.error?.message).toMatch(new RegExp(`would change ${n} rows; the policy allows at most 2`));
    } finally {
      await c.end();
    }
    expect((await api(admin(), 'GET', '/approvals')).body.approvals.length).toBe(before);
  });

  test('held under the cap; past it when approved, the approval records the cap, not an internal marker', async () => {
    const status = `cap-${mode.protocol}`;
    const ids = (await db.query<{ id: number }>('SELECT id FROM orders WHERE tenant_id = 1 ORDER BY id LIMIT 3')).map((r) => r.id);
    await db.query('UPDATE orders SET status = $1 WHERE id = ANY($2)', [status, ids.slice(0, 2)]);
    const c = new Client({ connectionString: proxy.url() });
    await c.connect();
    let id: string;
    try {
      const out = await send(c, mode, `${R}UPDATE orders SET total_cents = total_cents + 1 WHERE status = '${status}'`);
      expect(out.error?.routine).toBe('ormai.pending_approval');
      id = /approval_id=(\S+)/.exec(out.error?.detail ?? '')![1];
    } finally {
      await c.end();
    }
    // A third row matches by the time it is approved.
    await db.query('UPDATE orders SET status = $1 WHERE id = $2', [status, ids[2]]);
    const approved = await api(admin(), 'POST', `/approvals/${id}/approve`, { body: { approver: 'alice' } });
    expect(approved.body.approval.state).toBe('failed');
    expect(approved.body.approval.result.error).toEqual({ code: 'max_affected_rows_exceeded', message: 'the write would change 3 rows; the policy allows at most 2' });
  });

  /** Holds `UPDATE orders SET total_cents = total_cents + 1 WHERE status = <status>` and returns the approval's id and preview. */
  async function hold(status: string): Promise<{ id: string; preview: unknown }> {
    const c = new Client({ connectionString: proxy.url() });
    await c.connect();
    try {
      const out = await send(c, mode, `${R}UPDATE orders SET total_cents = total_cents + 1 WHERE status = '${status}'`);
      expect(out.error?.routine).toBe('ormai.pending_approval');
      const id = /approval_id=(\S+)/.exec(out.error?.detail ?? '')![1];
      return { id, preview: (await api(admin(), 'GET', `/approvals/${id}`)).body.approval.preview };
    } finally {
      await c.end();
    }
  }

  test('a write naming a column the table lacks is refused as one naming a hidden column is, and nothing is held', async () => {
    const before = (await api(admin(), 'GET', '/approvals')).body.approvals.length;
    const c = new Client({ connectionString: proxy.url() });
    await c.connect();
    try {
      const hidden = await send(c, mode, `${R}UPDATE orders SET status = 'x' WHERE id = 1 AND secret_code = 'x'`);
      const missing = await send(c, mode, `${R}UPDATE orders SET status = 'x' WHERE id = 1 AND no_such_code = 'x'`);
      expect([hidden.error?.routine, hidden.error?.code, missing.error?.routine, missing.error?.code]).toEqual(['ormai.column_not_found', '42703', 'ormai.column_not_found', '42703']);
      expect(missing.error?.message).toBe('column_not_found: column "no_such_code" does not exist');
      expect(hidden.error?.message).toBe('column_not_found: column "secret_code" does not exist');
    } finally {
      await c.end();
    }
    expect((await api(admin(), 'GET', '/approvals')).body.approvals.length).toBe(before);
  });

  test('rows that match only after the approvers saw the preview: the write does not commit, and the approval says why', async () => {
    const ids = (await db.query<{ id: number }>('SELECT id FROM orders WHERE tenant_id = 1 ORDER BY id LIMIT 2')).map((r) => r.id);
    const totals = async () => (await db.query<{ t: number }>('SELECT total_cents AS t FROM orders WHERE id = ANY($1) ORDER BY id', [ids])).map((r) => r.t);
    const before = await totals();
    // Nothing matches when it is held: the approvers see an empty preview. One row matches when it is approved.
    const none = `pin-none-${mode.protocol}`;
    const empty = await hold(none);
    expect(empty.preview).toEqual([]);
    await db.query('UPDATE orders SET status = $1 WHERE id = $2', [none, ids[0]]);
    const first = await api(admin(), 'POST', `/approvals/${empty.id}/approve`, { body: { approver: 'alice' } });
    expect(first.body.approval.state).toBe('failed');
    expect(first.body.approval.result.error).toEqual({
      code: 'approved_rows_changed',
      message: 'the write would now change 1 rows; the approvers saw 0: nothing was changed; ask the agent to send the write again, for a new approval',
    });
    // As many rows, but another one: the approvers saw ids[0], ids[1] matches instead.
    const swap = `pin-swap-${mode.protocol}`;
    await db.query('UPDATE orders SET status = $1 WHERE id = $2', [swap, ids[0]]);
    const one = await hold(swap);
    expect(one.preview).toMatchObject([{ affected_rows: 1, id: ids[0] }]);
    await db.query('UPDATE orders SET status = (CASE WHEN id = $2 THEN $1 ELSE $3 END) WHERE id = ANY($4)', [swap, ids[1], 'pending', ids]);
    const second = await api(admin(), 'POST', `/approvals/${one.id}/approve`, { body: { approver: 'alice' } });
    expect(second.body.approval.state).toBe('failed');
    expect(second.body.approval.result.error).toMatchObject({ code: 'approved_rows_changed', message: expect.stringContaining(`a row the approvers did not see (["${ids[1]}"])`) });
    expect(await totals()).toEqual(before);
    // The rows the approvers saw, still the ones that match: it runs.
    const same = await hold(swap);
    const third = await api(admin(), 'POST', `/approvals/${same.id}/approve`, { body: { approver: 'alice' } });
    expect(third.body.approval).toMatchObject({ state: 'executed', result: { rows_affected: 1 } });
    expect(await totals()).toEqual([before[0], before[1] + 1]);
  });
});

describe.each(modes)('write budget, $protocol protocol', (mode) => {
  test('held writes spend no write budget while they wait; an executed one counts', async () => {
    const policy = path.join(dir, `budget-${mode.protocol}.yaml`);
    writeFileSync(
      policy,
      [
        `name: budget-${mode.protocol}`,
        'models: [customers, orders]',
        'tenant_scope: { column: tenant_id, type: integer }',
        'max_writes_per_minute: 2',
        'enable_writes:',
        '  - { models: [orders], operations: [update, delete], require_reason: true }',
        'require_approval:',
        '  - { operation: delete, model: orders, approvers: 1, expires_in_s: 600 }',
        '',
      ].join('\n'),
    );
    const p = await startTestProxy(db.url, { policies: [policy], admin: { token_file: path.join(dir, 'admin-token'), identities_file: path.join(dir, 'admin-identities.yaml') } });
    const c = new Client({ connectionString: p.url() });
    await c.connect();
    try {
      const [first, second] = (await db.query<{ id: number }>('SELECT id FROM orders WHERE tenant_id = 1 ORDER BY id LIMIT 2')).map((r) => r.id);
      // Three deletes held: more than the budget, none refused for it.
      const held: string[] = [];
      for (let i = 0; i < 3; i++) {
        const out = await send(c, mode, `${R}DELETE FROM orders WHERE id = ${i === 0 ? first : -i}`);
        expect(out.error?.routine).toBe('ormai.pending_approval');
        held.push(/approval_id=(\S+)/.exec(out.error?.detail ?? '')![1]);
      }
      // The first runs once approved, and counts: one more write fits, the next does not.
      const approved = await api({ url: `http://127.0.0.1:${p.admin.port}` }, 'POST', `/approvals/${held[0]}/approve`, { body: { approver: 'alice' } });
      expect(approved.body.approval.state).toBe('executed');
      expect((await send(c, mode, `${R}UPDATE orders SET status = status WHERE id = ${second}`)).rowCount).toBe(1);
      expect((await send(c, mode, `${R}UPDATE orders SET status = status WHERE id = ${second}`)).error?.routine).toBe('ormai.write_rate_limited');
    } finally {
      await c.end();
      await p.close();
    }
  });
});

test('parameters: the count of an UPDATE whose SET value is a parameter the count never names still runs (refused over the cap, not held)', async () => {
  await db.query("INSERT INTO orders (tenant_id, customer_id, total_cents, status) SELECT 1, 1, 1, 'param-count' FROM generate_series(1, 3)");
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  try {
    // $1 is only in SET: PostgreSQL could infer no type for it in the count, which then failed and the write was held.
    const err = await c.query({ text: `${R}UPDATE orders SET status = $1 WHERE customer_id > $2`, values: ['x', 0] }).catch((e: { routine?: string }) => e);
    expect((err as { routine?: string }).routine).toBe('ormai.max_affected_rows_exceeded');
  } finally {
    await c.end();
  }
});

test("a tenant's writes waiting for approval are bounded (approvals.max_pending_per_tenant); other tenants are not held back", async () => {
  const p = await startTestProxy(db.url, {
    policies: [path.join(dir, 'policy.yaml')],
    admin: { token_file: path.join(dir, 'admin-token'), identities_file: path.join(dir, 'admin-identities.yaml') },
    approvals: { max_pending_per_tenant: 2 },
  });
  // Under the simple protocol, or the extended one (a parameter).
  const hold = async (user: string, id: number, extended = false) => {
    const c = new Client({ connectionString: p.url(user, user.replace('agent', 'password')) });
    await c.connect();
    try {
      const sql = `${R}UPDATE orders SET total_cents = total_cents WHERE id = `;
      return await c.query(extended ? { text: `${sql}$1`, values: [id] } : `${sql}${id}`).catch((e: { code?: string; routine?: string; detail?: string }) => e);
    } finally {
      await c.end();
    }
  };
  try {
    const [own] = (await db.query<{ id: number }>('SELECT id FROM orders WHERE tenant_id = 1 ORDER BY id LIMIT 1')).map((r) => r.id);
    const [other] = (await db.query<{ id: number }>('SELECT id FROM orders WHERE tenant_id = 2 ORDER BY id LIMIT 1')).map((r) => r.id);
    const first = (await hold('tenant1-agent', own)) as { routine?: string; detail?: string };
    expect(first.routine).toBe('ormai.pending_approval');
    expect(((await hold('tenant1-agent', own, true)) as { routine?: string }).routine).toBe('ormai.pending_approval');
    expect(await hold('tenant1-agent', own)).toMatchObject({ code: '53400', routine: 'ormai.approval_limit_reached' });
    expect(await hold('tenant1-agent', own, true)).toMatchObject({ code: '53400', routine: 'ormai.approval_limit_reached' });
    expect(((await hold('tenant2-agent', other)) as { routine?: string }).routine).toBe('ormai.pending_approval');
    // Once one is decided there is room again.
    const id = /approval_id=(\S+)/.exec(first.detail ?? '')![1];
    expect((await api({ url: `http://127.0.0.1:${p.admin.port}` }, 'POST', `/approvals/${id}/deny`, { body: { approver: 'alice' } })).status).toBe(200);
    expect(((await hold('tenant1-agent', own)) as { routine?: string }).routine).toBe('ormai.pending_approval');
  } finally {
    await p.close();
  }
});
