// A held write's own statements (its dry run, its count, its check) run on the proxy's connections: under the policy's
// statement_timeout, as the agent's statements do, and on connections of their own, so that no tenant's reads queue behind them.
// The scan budget's EXPLAIN is bounded likewise: a connection that does not answer in time is dropped, not waited for.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { writeAdminSecrets } from '../support/admin';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { modes, send, type Outcome } from '../support/modes';
import { startTestProxy, type TestProxy } from '../support/proxy';

const R = "/*reason='planner test'*/ ";
let db: TestDatabase;
let dir: string;
let short: TestProxy;
let long: TestProxy;

/** A policy that holds every UPDATE of orders for one approver, with this statement_timeout. */
function policy(name: string, timeoutMs: number): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    [
      `name: ${name}`,
      'models: [customers, orders]',
      'tenant_scope: { column: tenant_id, type: integer }',
      'enable_writes:',
      '  - { models: [orders], operations: [update], require_reason: true }',
      'require_approval:',
      '  - { operation: update, model: orders, approvers: 1, expires_in_s: 600 }',
      'max_scan_rows: 10000000',
      `statement_timeout_ms: ${timeoutMs}`,
      '',
    ].join('\n'),
  );
  return file;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-approval-planner-'));
  db = await createTestDatabase();
  // The proxy's bound on the statement as PostgreSQL expands it (analysis.max_expanded_nodes) refuses slowToPlan's
  // reads before they reach the planner; the planner's own bounds, tested here, stay for plans slow in other ways.
  const analysis = { max_expanded_nodes: 1_000_000_000 };
  short = await startTestProxy(db.url, { policies: [policy('short-timeout', 400)], admin: writeAdminSecrets(dir), analysis });
  long = await startTestProxy(db.url, { policies: [policy('long-timeout', 60_000)], admin: writeAdminSecrets(dir), analysis });
});
afterAll(async () => {
  await short?.close();
  await long?.close();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

async function agent(proxy: TestProxy, user: string, password: string): Promise<Client> {
  const c = new Client({ connectionString: proxy.url(user, password) });
  await c.connect();
  return c;
}

/** An UPDATE of one order whose WHERE takes about `millions` × 0.13 s to run (a count over generate_series). */
const slowUpdate = (id: number, millions: number) =>
  `${R}UPDATE orders SET status = 'slow' WHERE id = ${id} AND (SELECT count(*) FROM generate_series(1, ${millions * 1_000_000})) > 0`;

const firstOrder = async () => (await db.query<{ id: number }>('SELECT id FROM orders WHERE tenant_id = 1 ORDER BY id LIMIT 1'))[0].id;

/** A read whose plan takes seconds to make: each level doubles the expression the planner flattens (2^21 terms). */
function slowToPlan(levels: number): string {
  let q = 'SELECT total_cents AS x FROM orders';
  for (let i = 0; i < levels; i++) q = `SELECT x + x AS x FROM (${q}) s${i}`;
  return `${q} LIMIT 1`;
}

/** PostgreSQL plans on after the proxy dropped the connection: wait for those backends before the next test. */
async function plannersIdle(): Promise<void> {
  for (let i = 0; i < 120; i++) {
    const [{ n }] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%x + x AS x%' AND pid <> pg_backend_pid()");
    if (n === 0) return;
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe.each(modes)('a read under the $protocol protocol whose plan outlasts the policy\'s statement_timeout', (mode) => {
  test('its scan-budget EXPLAIN is dropped once past that timeout (and a margin), and the read refused as unbudgeted', async () => {
    const c = await agent(short, 'tenant1-agent', 'tenant1-password');
    try {
      const out = await send(c, mode, slowToPlan(21));
      expect(out.error?.routine).toBe('ormai.budget_unavailable');
      // Not "retry": the same statement ends the same way.
      expect(out.error?.message).toMatch(/(stopped planning the statement after \d+ ms|did not finish planning the statement within \d+ ms), so its scans could not be checked/);
      expect(out.error?.hint).toMatch(/cheaper to plan/);
      // The planner's connections are whole again: a read of another shape is budgeted and answered.
      expect((await send(c, mode, `SELECT id FROM orders WHERE total_cents > 7 AND status <> 'planner-${mode.protocol}'`)).error).toBeUndefined();
    } finally {
      await c.end();
      await plannersIdle();
    }
  });

  test("one tenant's reads that take long to plan hold one planner connection at most: another tenant's read is answered first", async () => {
    const slow = await Promise.all([0, 1].map(() => agent(short, 'tenant2-agent', 'tenant2-password')));
    const reader = await agent(short, 'tenant1-agent', 'tenant1-password');
    const order: string[] = [];
    try {
      const held = slow.map((c, i) => send(c, mode, `${slowToPlan(21)} OFFSET ${i}`).then((o: Outcome) => (order.push(`slow ${i}`), o)));
      await new Promise((r) => setTimeout(r, 200));
      const read = await send(reader, mode, `SELECT id FROM orders WHERE total_cents > 3 AND status <> 'fair-${mode.protocol}'`);
      order.push('read');
      expect(read.error).toBeUndefined();
      for (const o of await Promise.all(held)) expect(o.error?.routine).toBe('ormai.budget_unavailable');
      expect(order[0]).toBe('read');
    } finally {
      await Promise.all([...slow, reader].map((c) => c.end()));
      await plannersIdle();
    }
  });
});

describe.each(modes)('a held write under the $protocol protocol', (mode) => {
  test("its dry run runs under the policy's statement_timeout (400 ms), not the planner's 5 s: one that takes about a second is not held", async () => {
    const id = await firstOrder();
    const c = await agent(short, 'tenant1-agent', 'tenant1-password');
    try {
      // Quick enough for a dry run to be read: held.
      const quick = await send(c, mode, `${R}UPDATE orders SET status = 'quick' WHERE id = ${id}`);
      expect(quick.error?.routine).toBe('ormai.pending_approval');
      const slow = await send(c, mode, slowUpdate(id, 8));
      expect(slow.error?.routine).toBe('ormai.statement_not_allowed');
      expect(slow.error?.message).toMatch(/its dry run could not be read/);
    } finally {
      await c.end();
    }
  });

  test("reads of another tenant do not queue behind held writes' dry runs (the scan budget's EXPLAIN has connections of its own)", async () => {
    const id = await firstOrder();
    const writers = await Promise.all([0, 1, 2].map(() => agent(long, 'tenant1-agent', 'tenant1-password')));
    const reader = await agent(long, 'tenant2-agent', 'tenant2-password');
    const order: string[] = [];
    try {
      // Three dry runs of about 2.5 s each: two occupy the held writes' connections, the third waits for one.
      const held = writers.map((w, i) => send(w, mode, slowUpdate(id, 20)).then((o: Outcome) => (order.push(`write ${i}`), o)));
      await new Promise((r) => setTimeout(r, 300));
      // A statement of a shape the planner has not estimated: its EXPLAIN runs now.
      const read = await send(reader, mode, `SELECT id, name FROM customers WHERE name <> 'planner-${mode.protocol}' ORDER BY id`);
      order.push('read');
      expect(read.error).toBeUndefined();
      for (const o of await Promise.all(held)) expect(o.error?.routine).toBe('ormai.pending_approval');
      expect(order[0]).toBe('read');
    } finally {
      await Promise.all([...writers, reader].map((c) => c.end()));
    }
  });
});
