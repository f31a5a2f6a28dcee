// require_approval rules in the policy's order: a rule whose condition fails at run time hands the write to the next one,
// and a field assigned from a parameter is judged by its bound value (both protocols; the parameter cases are extended only).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { api, writeAdminSecrets } from '../support/admin';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { modes, send } from '../support/modes';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { RawClient } from '../support/raw-client';
import { serialize } from 'pg-protocol';

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
      '  - { models: [orders], operations: [create, update, delete], require_reason: true }',
      'require_approval:',
      '  - { operation: update, model: orders, when: { affected_rows_gt: 10 }, approvers: 1, expires_in_s: 600 }',
      "  - { operation: update, model: orders, when: { field: status, in: [refunded] }, approvers: 1, expires_in_s: 600 }",
      '  - { operation: update, model: orders, when: { field: total_cents, equals: 0 }, approvers: 1, expires_in_s: 600 }',
      '  - { operation: create, model: orders, when: { field: status, equals: voided }, approvers: 1, expires_in_s: 600 }',
      '  - { operation: delete, model: orders, approvers: 1, expires_in_s: 600 }',
      '',
    ].join('\n'),
  );
  db = await createTestDatabase();
  // More of tenant 1's orders than the rule on affected rows lets through.
  await db.query("INSERT INTO orders (tenant_id, customer_id, total_cents, status) SELECT 1, (SELECT min(id) FROM customers WHERE tenant_id = 1), 100 + g, 'pending' FROM generate_series(1, 12) g");
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

describe.each(modes)('what PostgreSQL would store and count decides, under the $protocol protocol', (mode) => {
  test('a value that names a rule\'s only once converted to the column type is held: a rounded number, a padded char, a cast that cuts', async () => {
    const id = await firstOrder();
    const cases = [
      `${R}UPDATE orders SET total_cents = 0.4 WHERE id = ${id}`,
      `${R}UPDATE orders SET status = 'refunded   '::char(12) WHERE id = ${id}`,
      `${R}UPDATE orders SET status = 'refundedX'::varchar(8) WHERE id = ${id}`,
    ];
    for (const sql of cases) {
      const out = await withAgent((c) => send(c, mode, sql));
      expect([sql, out.error?.routine]).toEqual([sql, 'ormai.pending_approval']);
    }
    if (mode.extended) {
      // A parameter, with the cast the statement writes or the type the client declares.
      const cut = await withAgent((c) => send(c, mode, `${R}UPDATE orders SET status = $1::varchar(8) WHERE id = $2`, ['refundedX', id]));
      expect(cut.error?.routine).toBe('ormai.pending_approval');
      // Declared numeric by the client (Parse), '0.3' is stored in the integer column as 0.
      const raw = await RawClient.connect(proxy.port, 'tenant1-agent', 'tenant1-password');
      try {
        raw.send(serialize.parse({ text: `${R}UPDATE orders SET total_cents = $1 WHERE id = $2`, types: [1700, 23] }), serialize.bind({ values: ['0.3', String(id)] }), serialize.execute({}), serialize.sync());
        const answer = await raw.untilReady();
        expect(answer.find((m) => m.name === 'error')).toMatchObject({ routine: 'ormai.pending_approval' });
      } finally {
        raw.end();
      }
    }
    expect(await db.query('SELECT total_cents, status FROM orders WHERE id = $1', [id])).not.toEqual([{ total_cents: 0, status: 'refunded' }]);
    expect((await db.query<{ n: number }>("SELECT count(*)::int AS n FROM orders WHERE status = 'refunded' OR total_cents = 0"))[0].n).toBe(0);
  });

  test("rows counted under the agent's own settings: a WHERE that depends on TimeZone matches none on the proxy's connection and all as it runs; the write's guard refuses it", async () => {
    const mine = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders WHERE tenant_id = 1');
    expect(mine[0].n).toBeGreaterThan(10);
    const out = await withAgent(async (c) => {
      await c.query("SET TIME ZONE 'Pacific/Kiritimati'");
      return send(c, mode, `${R}UPDATE orders SET status = 'tz-${mode.protocol}' WHERE to_char(now(), 'TZH') = '+14'`);
    });
    expect(out.error?.routine).toBe('ormai.approval_required');
    expect(out.error?.message).toMatch(/it matches \d+ rows/);
    expect(await db.query(`SELECT count(*)::int AS n FROM orders WHERE status = 'tz-${mode.protocol}'`)).toEqual([{ n: 0 }]);
  });

  test('inside a transaction block: a write no rule holds runs, one a rule would hold is refused (it could not wait there)', async () => {
    const id = await firstOrder();
    await withAgent(async (c) => {
      await c.query('BEGIN');
      const ran = await send(c, mode, `${R}UPDATE orders SET status = 'in-block-${mode.protocol}' WHERE id = ${id}`);
      expect(ran.error).toBeUndefined();
      const refused = await send(c, mode, `${R}UPDATE orders SET status = 'refunded' WHERE id = ${id}`);
      expect(refused.error?.message).toMatch(/needs approval cannot be sent inside a transaction block/);
      await c.query('ROLLBACK');
    });
  });
});

describe.each(modes)('an approved write does what its approvers saw, under the $protocol protocol', (mode) => {
  const admin = () => ({ url: `http://127.0.0.1:${proxy.admin.port}` });
  const approvalId = (message: string | undefined) => /approval (appr_\S+)/.exec(message ?? '')?.[1];

  test("a value read from another row that changed after the preview: the approval fails, nothing is written", async () => {
    const id = await firstOrder();
    const [{ customer, name }] = await db.query<{ customer: number; name: string }>('SELECT id AS customer, name FROM customers WHERE tenant_id = 1 ORDER BY id LIMIT 1');
    const held = await withAgent((c) => send(c, mode, `${R}UPDATE orders SET status = (SELECT left(name, 20) FROM customers WHERE id = ${customer}) WHERE id = ${id}`));
    const approval = approvalId(held.error?.message);
    expect(approval).toBeDefined();
    const shown = await api(admin(), 'GET', `/approvals/${approval}`);
    expect(shown.body.approval.preview).toMatchObject([{ id, status_after: name.slice(0, 20) }]);
    const [{ status }] = await db.query<{ status: string }>('SELECT status FROM orders WHERE id = $1', [id]);
    await db.query('UPDATE customers SET name = $1 WHERE id = $2', [`swapped-${mode.protocol}`, customer]);
    try {
      const decided = await api(admin(), 'POST', `/approvals/${approval}/approve`, { body: { approver: 'alice' } });
      expect(decided.body.approval).toMatchObject({ state: 'failed', result: { error: { code: 'approved_rows_changed' } } });
      expect(decided.body.approval.result.error.message).toMatch(/set status of row .* to a value the approvers did not see/);
      expect(await db.query('SELECT status FROM orders WHERE id = $1', [id])).toEqual([{ status }]);
    } finally {
      await db.query('UPDATE customers SET name = $1 WHERE id = $2', [name, customer]);
    }
  });

  test('an approved INSERT whose rows changed since the preview (a value from a sub-select): not run, even when the count stays', async () => {
    const c1 = (await db.query<{ id: number }>('SELECT min(id) AS id FROM customers WHERE tenant_id = 1'))[0].id;
    const held = await withAgent((c) =>
      send(c, mode, `${R}INSERT INTO orders (customer_id, total_cents, status) VALUES (${c1}, (SELECT count(*) FROM orders WHERE total_cents = 77)::int + 5, 'voided'), (${c1}, 10, 'voided')`),
    );
    const approval = approvalId(held.error?.message);
    expect(approval).toBeDefined();
    await db.query(`INSERT INTO orders (tenant_id, customer_id, total_cents, status) SELECT 1, $1, 77, 'x-${mode.protocol}' FROM generate_series(1, 5)`, [c1]);
    try {
      const decided = await api(admin(), 'POST', `/approvals/${approval}/approve`, { body: { approver: 'alice' } });
      expect(decided.body.approval).toMatchObject({ state: 'failed', result: { error: { code: 'approved_rows_changed' } } });
      expect(await db.query("SELECT count(*)::int AS n FROM orders WHERE status = 'voided'")).toEqual([{ n: 0 }]);
    } finally {
      await db.query(`DELETE FROM orders WHERE status = 'x-${mode.protocol}'`);
    }
  });

  test('an approved DELETE of a row changed since the preview (by a write no rule holds): not run', async () => {
    const [{ id }] = await db.query<{ id: number }>("INSERT INTO orders (tenant_id, customer_id, total_cents, status) SELECT 1, min(id), 1, 'pending' FROM customers WHERE tenant_id = 1 RETURNING id");
    const held = await withAgent((c) => send(c, mode, `${R}DELETE FROM orders WHERE id = ${id}`));
    const approval = approvalId(held.error?.message);
    expect(approval).toBeDefined();
    expect((await api(admin(), 'GET', `/approvals/${approval}`)).body.approval.preview).toMatchObject([{ id, total_cents: 1, status: 'pending' }]);
    const edited = await withAgent((c) => send(c, mode, `${R}UPDATE orders SET total_cents = 990000, status = 'paid' WHERE id = ${id}`));
    expect(edited.error).toBeUndefined();
    const decided = await api(admin(), 'POST', `/approvals/${approval}/approve`, { body: { approver: 'alice' } });
    expect(decided.body.approval).toMatchObject({ state: 'failed', result: { error: { code: 'approved_rows_changed' } } });
    expect(decided.body.approval.result.error.message).toMatch(/changed since the approvers saw/);
    expect(await db.query('SELECT total_cents, status FROM orders WHERE id = $1', [id])).toEqual([{ total_cents: 990000, status: 'paid' }]);
  });

  test("an approved UPDATE of a row whose values changed since the preview (its before values): not run", async () => {
    const [{ id }] = await db.query<{ id: number }>("INSERT INTO orders (tenant_id, customer_id, total_cents, status) SELECT 1, min(id), 1, 'pending' FROM customers WHERE tenant_id = 1 RETURNING id");
    const held = await withAgent((c) => send(c, mode, `${R}UPDATE orders SET total_cents = 0 WHERE id = ${id}`));
    const approval = approvalId(held.error?.message);
    expect(approval).toBeDefined();
    expect((await api(admin(), 'GET', `/approvals/${approval}`)).body.approval.preview).toMatchObject([{ id, total_cents_before: 1 }]);
    expect((await withAgent((c) => send(c, mode, `${R}UPDATE orders SET total_cents = 500000 WHERE id = ${id}`))).error).toBeUndefined();
    const decided = await api(admin(), 'POST', `/approvals/${approval}/approve`, { body: { approver: 'alice' } });
    expect(decided.body.approval).toMatchObject({ state: 'failed', result: { error: { code: 'approved_rows_changed' } } });
    expect(await db.query('SELECT total_cents FROM orders WHERE id = $1', [id])).toEqual([{ total_cents: 500000 }]);
  });

  test('an approved UPDATE whose rows did not change runs, though its new value is computed again (now())', async () => {
    const [{ id }] = await db.query<{ id: number }>("INSERT INTO orders (tenant_id, customer_id, total_cents, status) SELECT 1, min(id), 1, 'pending' FROM customers WHERE tenant_id = 1 RETURNING id");
    const held = await withAgent((c) => send(c, mode, `${R}UPDATE orders SET total_cents = 0, created_at = now() WHERE id = ${id}`));
    const approval = approvalId(held.error?.message);
    expect(approval).toBeDefined();
    const decided = await api(admin(), 'POST', `/approvals/${approval}/approve`, { body: { approver: 'alice' } });
    expect(decided.body.approval).toMatchObject({ state: 'executed' });
    expect(await db.query('SELECT total_cents FROM orders WHERE id = $1', [id])).toEqual([{ total_cents: 0 }]);
  });

  test("an approved UPDATE whose value after would now differ from the one shown (the statement's own clock moved): not run", async () => {
    const [{ id }] = await db.query<{ id: number }>("INSERT INTO orders (tenant_id, customer_id, total_cents, status) SELECT 1, min(id), 1, 'pending' FROM customers WHERE tenant_id = 1 RETURNING id");
    const [{ soon }] = await db.query<{ soon: string }>("SELECT (clock_timestamp() + interval '1 second')::text AS soon");
    const held = await withAgent((c) => send(c, mode, `${R}UPDATE orders SET status = CASE WHEN clock_timestamp() > '${soon}'::timestamptz THEN 'refunded' ELSE 'kept' END WHERE id = ${id}`));
    const approval = approvalId(held.error?.message);
    expect(approval).toBeDefined();
    expect((await api(admin(), 'GET', `/approvals/${approval}`)).body.approval.preview).toMatchObject([{ id, status_after: 'kept' }]);
    await new Promise((r) => setTimeout(r, 1500));
    const decided = await api(admin(), 'POST', `/approvals/${approval}/approve`, { body: { approver: 'alice' } });
    expect(decided.body.approval).toMatchObject({ state: 'failed', result: { error: { code: 'approved_rows_changed' } } });
    expect(await db.query('SELECT status FROM orders WHERE id = $1', [id])).toEqual([{ status: 'pending' }]);
  });

  /** 150 of tenant 1's orders with this status, and one more of another status with a higher id than all of them. */
  async function bulk(status: string): Promise<{ ids: number[]; outsider: number }> {
    const rows = await db.query<{ id: number }>(`INSERT INTO orders (tenant_id, customer_id, total_cents, status) SELECT 1, (SELECT min(id) FROM customers WHERE tenant_id = 1), g, $1 FROM generate_series(1, 150) g RETURNING id`, [status]);
    const [{ id: outsider }] = await db.query<{ id: number }>("INSERT INTO orders (tenant_id, customer_id, total_cents, status) SELECT 1, min(id), 7, 'outside' FROM customers WHERE tenant_id = 1 RETURNING id");
    return { ids: rows.map((r) => r.id).sort((a, b) => a - b), outsider };
  }

  test('an approved UPDATE of 150 rows whose rows past the 100 the preview lists changed (as many as before): not run', async () => {
    const status = `bulk-${mode.protocol}`;
    const { ids, outsider } = await bulk(status);
    try {
      const held = await withAgent((c) => send(c, mode, `${R}UPDATE orders SET status = 'done-${mode.protocol}' WHERE status = '${status}'`));
      const approval = approvalId(held.error?.message);
      expect(approval).toBeDefined();
      const preview = (await api(admin(), 'GET', `/approvals/${approval}`)).body.approval.preview as Array<{ id: number; affected_rows: number }>;
      expect(preview).toHaveLength(100);
      expect(preview[0].affected_rows).toBe(150);
      // The last of the 150 leaves, the outsider comes in: still 150 rows, the first 100 the same.
      await db.query("UPDATE orders SET status = 'left' WHERE id = $1", [ids[149]]);
      await db.query('UPDATE orders SET status = $1 WHERE id = $2', [status, outsider]);
      const decided = await api(admin(), 'POST', `/approvals/${approval}/approve`, { body: { approver: 'alice' } });
      expect(decided.body.approval).toMatchObject({ state: 'failed', result: { error: { code: 'approved_rows_changed' } } });
      expect(await db.query('SELECT status FROM orders WHERE id = $1', [outsider])).toEqual([{ status }]);
    } finally {
      await db.query("DELETE FROM orders WHERE status IN ($1, 'left', 'outside')", [status]);
    }
  });

  test('an approved UPDATE of 150 rows that did not change runs', async () => {
    const status = `bulk-ok-${mode.protocol}`;
    await bulk(status);
    try {
      const held = await withAgent((c) => send(c, mode, `${R}UPDATE orders SET status = 'done-ok-${mode.protocol}', created_at = now() WHERE status = '${status}'`));
      const approval = approvalId(held.error?.message);
      expect(approval).toBeDefined();
      const decided = await api(admin(), 'POST', `/approvals/${approval}/approve`, { body: { approver: 'alice' } });
      expect(decided.body.approval).toMatchObject({ state: 'executed', result: { rows_affected: 150 } });
    } finally {
      await db.query("DELETE FROM orders WHERE status IN ($1, $2, 'outside')", [status, `done-ok-${mode.protocol}`]);
    }
  });

  test('a write whose dry run fails is refused, not held without a preview', async () => {
    const id = await firstOrder();
    const out = await withAgent((c) => send(c, mode, `${R}UPDATE orders SET status = 'refunded' WHERE id = ${id} OR 1 / (SELECT count(*) FROM orders WHERE status = 'magic-${mode.protocol}') = 1`));
    expect(out.error?.routine).toBe('ormai.statement_not_allowed');
    expect(out.error?.message).toMatch(/its dry run could not be read: approvers would see nothing, so it is not held/);
  });
});

describe('writes a rule may hold, in the forms that escaped it', () => {
  const customer = async () => (await db.query<{ id: number }>('SELECT min(id) AS id FROM customers WHERE tenant_id = 1'))[0].id;
  const voided = async () => (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM orders WHERE status = 'voided'"))[0].n;

  test('a multi-statement text with a write a rule may hold is refused whole, whatever comes first', async () => {
    const [a, b] = (await db.query<{ id: number }>('SELECT id FROM orders WHERE tenant_id = 1 ORDER BY id LIMIT 2')).map((r) => r.id);
    const out = await withAgent((c) => send(c, modes[0], `${R}UPDATE orders SET status = 'shipped' WHERE id = ${a}; ${R}DELETE FROM orders WHERE id = ${b}`));
    expect(out.error?.message).toMatch(/may need approval must be sent on its own/);
    expect(await db.query('SELECT count(*)::int AS n FROM orders WHERE id = $1', [b])).toEqual([{ n: 1 }]);
    const two = await withAgent((c) => send(c, modes[0], `${R}INSERT INTO orders (customer_id, total_cents, status) VALUES (1, 1, 'pending'); ${R}INSERT INTO orders (customer_id, total_cents, status) VALUES (1, 1, 'voided')`));
    expect(two.error?.routine).toBe('ormai.statement_not_allowed');
    expect(await voided()).toBe(0);
  });

  test("an INSERT's parameter typed by its other use (bpchar) stores a rule's value: its guard refuses it as it runs", async () => {
    const out = await withAgent((c) => send(c, modes[1], `${R}INSERT INTO orders (customer_id, total_cents, status) VALUES ($1, length($2::bpchar), $2)`, [1, 'voided    ']));
    expect(out.error?.routine).toBe('ormai.approval_required');
    expect(out.error?.message).toMatch(/a value it assigns/);
    expect(await voided()).toBe(0);
    // Plainly written, the same value is held.
    const held = await withAgent((c) => send(c, modes[1], `${R}INSERT INTO orders (customer_id, total_cents, status) VALUES ($1, 1, $2)`, [1, 'voided']));
    expect(held.error?.routine).toBe('ormai.pending_approval');
    expect(await voided()).toBe(0);
  });

  test('SQL EXECUTE with a cast argument: never stored unheld', async () => {
    const c1 = await customer();
    const out = await withAgent(async (c) => {
      await c.query(`PREPARE pi (int, int, text) AS ${R}INSERT INTO orders (customer_id, total_cents, status) VALUES ($1, $2, $3)`);
      return send(c, modes[0], `EXECUTE pi(${c1}, 91, 'voided    '::char(10))`);
    });
    expect(['ormai.pending_approval', 'ormai.approval_required']).toContain(out.error?.routine);
    expect(await voided()).toBe(0);
  });

  test.each(modes)('a NULL of a type is judged like any value ($protocol)', async (mode) => {
    const id = await firstOrder();
    // status is NOT NULL: PostgreSQL's own error, not the proxy's failure to print the statement.
    const out = await withAgent((c) => send(c, mode, `${R}UPDATE orders SET status = NULL::text WHERE id = ${id}`));
    expect(out.error?.code).toBe('23502');
  });
});
