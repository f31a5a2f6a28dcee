// Approved writes are audited like direct writes (I7): the execution's event carries the changed rows before and
// after, so POST /audit/:id/rollback undoes it, and the write commits only once that event is durable; a trail that
// cannot take it leaves the write uncommitted and the approval failed with audit_unavailable. The audit sink is a
// table in the test database reached through a relay the test can stall.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { api, writeAdminSecrets } from '../support/admin';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { waitFor } from '../support/clients';
import { modes, send, type Mode } from '../support/modes';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { relayTo, type Relay } from '../support/relay';

const POLICY = path.resolve(__dirname, '..', 'fixtures', 'approval-audit-policy.yaml');
const R = "/*reason='approved write audit test'*/ ";
let db: TestDatabase;
let relay: Relay;
let sinkUrl: string;
let proxy: TestProxy;
let dir: string;
let admin: { url: string };

function proxyWith(table: string, audit: Record<string, unknown> = {}): Promise<TestProxy> {
  return startTestProxy(db.url, {
    policies: [POLICY],
    admin: writeAdminSecrets(dir),
    approvals: { store: 'postgres', table: `ormai_approvals_${table}` },
    audit: { sinks: [{ type: 'postgres', url: sinkUrl, table }], durable_timeout_ms: 400, ...audit },
  });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-approvals-audit-'));
  db = await createTestDatabase();
  ({ relay, url: sinkUrl } = await relayTo(db.url));
  proxy = await proxyWith('approval_audit');
  admin = { url: `http://127.0.0.1:${proxy.admin.port}` };
});
afterAll(async () => {
  await proxy?.close();
  await relay?.close();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => relay.stall(false));

interface Row {
  id: string;
  kind: string;
  decision: string;
  code: string | null;
  rows: string | null;
  event: { changes?: unknown; rolls_back?: string; message?: string };
}

/** The approval's events in the audit table, oldest first, once `done` holds (the sink writes in batches). */
async function trail(id: string, done: (rows: Row[]) => boolean, table = 'approval_audit'): Promise<Row[]> {
  let rows: Row[] = [];
  for (let i = 0; i < 200; i++) {
    rows = await db.query<Row & Record<string, unknown>>(`SELECT id, kind, decision, code, "rows", event FROM ${table} WHERE approval_id = $1 ORDER BY id`, [id]).catch(() => []);
    if (done(rows)) return rows;
    await new Promise((r) => setTimeout(r, 25));
  }
  return rows;
}

/** The events recording rollbacks of the event `of`, oldest first, once there are `n` of them (the sink writes in batches). */
async function rollbacksOf(of: string, n: number, table = 'approval_audit'): Promise<Array<{ decision: string; code: string | null; actor: string }>> {
  let rows: Array<{ decision: string; code: string | null; actor: string }> = [];
  await waitFor(async () => (rows = await db.query(`SELECT decision, code, event->>'actor' AS actor FROM ${table} WHERE event->>'rolls_back' = $1 ORDER BY id`, [of])).length >= n, 5000);
  return rows;
}

/** Tenant 1 orders of the test's own, inserted directly; their ids. */
async function orders(n: number, status: string): Promise<number[]> {
  const rows = await db.query<{ id: number }>(
    `INSERT INTO orders (tenant_id, customer_id, total_cents, status) SELECT 1, 3, 1000 + g, $1 FROM generate_series(1, $2::int) AS g RETURNING id`,
    [status, n],
  );
  return rows.map((r) => r.id).sort((a, b) => a - b);
}

const current = (ids: number[]) => db.query('SELECT id, tenant_id, customer_id, total_cents, status, created_at FROM orders WHERE id = ANY($1::int[]) ORDER BY id', [ids]);

/** Sends a write the policy holds (through `via`, the suite's proxy by default); the approval id from its pending_approval error. */
async function hold(mode: Mode, sql: string, values: unknown[] = [], via: TestProxy = proxy): Promise<string> {
  const c = new Client({ connectionString: via.url() });
  await c.connect();
  try {
    const out = await send(c, mode, sql, values);
    expect(out.error?.routine).toBe('ormai.pending_approval');
    const id = /approval_id=(appr_[0-9A-Z]+)/.exec(out.error?.detail ?? '')?.[1];
    if (!id) throw new Error(`no approval id in ${out.error?.detail}`);
    return id;
  } finally {
    await c.end();
  }
}

const byKey = (a: { key: { id: string } }, b: { key: { id: string } }) => Number(a.key.id) - Number(b.key.id);

describe.each(modes)('$protocol protocol', (mode: Mode) => {
  test('an approved UPDATE records the rows before and after, and its rollback restores them', async () => {
    const ids = await orders(2, 'new');
    const status = `approved-${mode.protocol}`;
    // The agent asks for RETURNING too: the capture columns come after its own and are the ones recorded.
    const id = await hold(
      mode,
      `${R}UPDATE orders SET status = ${mode.extended ? '$1' : `'${status}'`} WHERE id IN (${ids.join(', ')}) RETURNING id, status`,
      mode.extended ? [status] : [],
    );
    const held = await api(admin, 'GET', `/approvals/${id}`);
    expect(held.body.approval.statement_sql).toContain('ormai_capture_0');

    const reply = await api(admin, 'POST', `/approvals/${id}/approve`, { body: { approver: 'alice' } });
    expect(reply.body.approval).toMatchObject({ state: 'executed', result: { rows_affected: 2 } });
    expect((await current(ids)).map((r) => r.status)).toEqual([status, status]);

    const steps = await trail(id, (rows) => rows.some((r) => r.decision === 'executed'));
    expect(steps.map((r) => [r.kind, r.decision])).toEqual([
      ['statement', 'held'],
      ['approval', 'approved'],
      ['approval', 'executed'],
    ]);
    const executed = steps[2];
    expect(executed.rows).toBe('2');
    const changes = executed.event.changes as { table: string; operation: string; rows: Array<{ key: { id: string } }> };
    expect({ ...changes, rows: [...changes.rows].sort(byKey) }).toEqual({
      table: 'public.orders',
      tenant_column: 'tenant_id',
      operation: 'update',
      rows: ids.map((i) => ({ key: { id: String(i) }, before: { status: 'new' }, after: { status } })),
    });

    const undo = await api(admin, 'POST', `/audit/${executed.id}/rollback`, { body: { by: 'bob' } });
    expect(undo).toMatchObject({ status: 200, body: { event: executed.id, rows: 2, reverted: 2, skipped: 0 } });
    expect((await current(ids)).map((r) => r.status)).toEqual(['new', 'new']);
    const [undone] = await db.query<{ decision: string; actor: string }>(
      "SELECT decision, event->>'actor' AS actor FROM approval_audit WHERE event->>'rolls_back' = $1",
      [executed.id],
    );
    expect(undone).toEqual({ decision: 'rolled_back', actor: 'bob' });
  });

  test('an approved DELETE records the deleted row, and its rollback puts it back as it was', async () => {
    const ids = await orders(1, 'to-delete');
    const before = await current(ids);
    const id = await hold(mode, `${R}DELETE FROM orders WHERE id = ${mode.extended ? '$1' : ids[0]}`, mode.extended ? [ids[0]] : []);

    const reply = await api(admin, 'POST', `/approvals/${id}/approve`, { body: { approver: 'carol' } });
    expect(reply.body.approval).toMatchObject({ state: 'executed', result: { rows_affected: 1 } });
    expect(await current(ids)).toEqual([]);

    const steps = await trail(id, (rows) => rows.some((r) => r.decision === 'executed'));
    const executed = steps.find((r) => r.decision === 'executed')!;
    expect(executed.event.changes).toMatchObject({
      table: 'public.orders',
      operation: 'delete',
      rows: [{ key: { id: String(ids[0]) }, before: { tenant_id: '1', customer_id: '3', total_cents: '1001', status: 'to-delete' } }],
    });

    const undo = await api(admin, 'POST', `/audit/${executed.id}/rollback`, { body: { by: 'bob' } });
    expect(undo).toMatchObject({ status: 200, body: { reverted: 1, skipped: 0 } });
    expect(await current(ids)).toEqual(before);
  });
});

test('with the audit sink hanging, an approved write does not commit and the approval fails with audit_unavailable', async () => {
  const ids = await orders(1, 'kept');
  const id = await hold(modes[0], `${R}UPDATE orders SET status = 'lost' WHERE id = ${ids[0]}`);
  relay.stall(true);
  const reply = await api(admin, 'POST', `/approvals/${id}/approve`, { body: { approver: 'alice' } });
  expect(reply.body.approval).toMatchObject({ state: 'failed', result: { error: { code: 'audit_unavailable' } } });
  expect(reply.body.approval.result.rows_affected).toBeUndefined();
  // Not committed: the row is as it was.
  expect((await current(ids)).map((r) => r.status)).toEqual(['kept']);
  relay.stall(false);

  // Once the trail is back it holds both: the execution it could not confirm, then that it was rolled back.
  const steps = await trail(id, (rows) => rows.some((r) => r.decision === 'failed'));
  expect(steps.map((r) => [r.kind, r.decision, r.code])).toEqual([
    ['statement', 'held', 'pending_approval'],
    ['approval', 'approved', null],
    ['approval', 'executed', null],
    ['approval', 'failed', 'audit_unavailable'],
  ]);
  expect(steps[3].event.message).toMatch(/rolled back/);
  // Run once, never retried.
  expect((await api(admin, 'POST', `/approvals/${id}/approve`, { body: { approver: 'bob' } })).status).toBe(409);
  expect((await api(admin, 'GET', `/approvals/${id}`)).body.approval.state).toBe('failed');
  expect((await current(ids)).map((r) => r.status)).toEqual(['kept']);
});

test('with an audit sink hanging, a rollback does not commit and answers 503 audit_unavailable; the trail then says so', async () => {
  // The write's event is found in the file sink (the postgres sink's relay will be stalled); every sink must take the rollback's.
  const table = 'approval_audit_rollback';
  const both = await proxyWith(table, { sinks: [{ type: 'file', path: path.join(dir, 'rollback.jsonl') }, { type: 'postgres', url: sinkUrl, table }] });
  const via = { url: `http://127.0.0.1:${both.admin.port}` };
  try {
    const ids = await orders(1, 'before');
    const id = await hold(modes[0], `${R}UPDATE orders SET status = 'after' WHERE id = ${ids[0]}`, [], both);
    expect((await api(via, 'POST', `/approvals/${id}/approve`, { body: { approver: 'alice' } })).body.approval.state).toBe('executed');
    const executed = (await trail(id, (rows) => rows.some((r) => r.decision === 'executed'), table)).find((r) => r.decision === 'executed')!;
    relay.stall(true);
    const undo = await api(via, 'POST', `/audit/${executed.id}/rollback`, { body: { by: 'bob' } });
    expect(undo).toMatchObject({ status: 503, body: { error: { code: 'audit_unavailable' } } });
    // Not committed: the row keeps the approved write's value.
    expect((await current(ids)).map((r) => r.status)).toEqual(['after']);
    relay.stall(false);
    // Once the trail is back it holds both: the rollback it could not confirm, then that it was not committed.
    expect(await rollbacksOf(executed.id, 2, table)).toEqual([
      { decision: 'rolled_back', code: null, actor: 'bob' },
      { decision: 'error', code: 'audit_unavailable', actor: 'bob' },
    ]);
    // The trail is back: the same rollback now runs, and is recorded before it answers.
    const again = await api(via, 'POST', `/audit/${executed.id}/rollback`, { body: { by: 'bob' } });
    expect(again).toMatchObject({ status: 200, body: { reverted: 1, skipped: 0 } });
    expect((await current(ids)).map((r) => r.status)).toEqual(['before']);
    expect((await rollbacksOf(executed.id, 3, table)).map((r) => r.decision)).toEqual(['rolled_back', 'error', 'rolled_back']);
  } finally {
    relay.stall(false);
    await both.close();
  }
});

test('a rollback whose COMMIT PostgreSQL refuses answers 409 rollback_not_committed, and the trail says nothing changed', async () => {
  // A deferred constraint trigger refuses, at COMMIT, an order set back to the status 'refuse-commit'.
  await db.query(
    "CREATE FUNCTION ormai_test_refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.status = 'refuse-commit' THEN RAISE EXCEPTION 'refused at commit'; END IF; RETURN NEW; END $$",
  );
  await db.query('CREATE CONSTRAINT TRIGGER ormai_test_refuse_commit AFTER UPDATE ON orders DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ormai_test_refuse_commit()');
  try {
    const ids = await orders(1, 'refuse-commit');
    const id = await hold(modes[0], `${R}UPDATE orders SET status = 'after' WHERE id = ${ids[0]}`);
    expect((await api(admin, 'POST', `/approvals/${id}/approve`, { body: { approver: 'alice' } })).body.approval.state).toBe('executed');
    const executed = (await trail(id, (rows) => rows.some((r) => r.decision === 'executed'))).find((r) => r.decision === 'executed')!;
    const undo = await api(admin, 'POST', `/audit/${executed.id}/rollback`, { body: { by: 'bob' } });
    expect(undo).toMatchObject({ status: 409, body: { error: { code: 'rollback_not_committed' } } });
    expect(undo.body.error.message).toMatch(/refused the COMMIT \(P0001\): nothing changed/);
    expect((await current(ids)).map((r) => r.status)).toEqual(['after']);
    expect(await rollbacksOf(executed.id, 2)).toEqual([
      { decision: 'rolled_back', code: null, actor: 'bob' },
      { decision: 'error', code: 'rollback_not_committed', actor: 'bob' },
    ]);
  } finally {
    await db.query('DROP TRIGGER ormai_test_refuse_commit ON orders');
    await db.query('DROP FUNCTION ormai_test_refuse_commit()');
  }
});

test('a connection lost during COMMIT: the approval and the rollback say the outcome is not known, and the rows tell', async () => {
  // The proxy reaches PostgreSQL through a relay the test cuts while a deferred trigger holds the COMMIT.
  const { relay: upstream, url: upstreamUrl } = await relayTo(db.url);
  const table = 'approval_audit_unknown';
  const cut = await startTestProxy(upstreamUrl, {
    policies: [POLICY],
    admin: writeAdminSecrets(dir),
    approvals: { store: 'postgres', table: `ormai_approvals_${table}` },
    audit: { sinks: [{ type: 'postgres', url: sinkUrl, table }], durable_timeout_ms: 2000 },
  });
  const via = { url: `http://127.0.0.1:${cut.admin.port}` };
  await db.query(
    // The server must not notice the client is gone while it sleeps (client_connection_check_interval), so that it commits.
    "CREATE FUNCTION ormai_test_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.status = 'slow-commit' THEN PERFORM set_config('client_connection_check_interval', '0', true); PERFORM pg_sleep(3); END IF; RETURN NEW; END $$",
  );
  await db.query('CREATE CONSTRAINT TRIGGER ormai_test_slow_commit AFTER UPDATE ON orders DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ormai_test_slow_commit()');
  /** The row's status once the abandoned COMMIT is over (PostgreSQL finishes it without the client). */
  const settled = async (id: number, expected: string): Promise<string> => {
    let status = '';
    await waitFor(async () => ([{ status }] = await db.query<{ status: string }>('SELECT status FROM orders WHERE id = $1', [id]))[0].status === expected, 10_000);
    return status;
  };
  /** Runs `call` and cuts the relayed connections once its COMMIT waits in the trigger. */
  const cutDuringCommit = async <T>(call: () => Promise<T>): Promise<T> => {
    const pending = call();
    pending.catch(() => undefined);
    const sleeping = async () =>
      (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query = 'COMMIT' AND wait_event = 'PgSleep'"))[0].n === 1;
    expect(await waitFor(sleeping, 5000)).toBe(true);
    upstream.cut();
    return pending;
  };
  try {
    // An approved write whose COMMIT goes on without the proxy: recorded as not known, and it did commit.
    const [first] = await orders(1, 'before');
    const held = await hold(modes[0], `${R}UPDATE orders SET status = 'slow-commit' WHERE id = ${first}`, [], cut);
    const reply = await cutDuringCommit(() => api(via, 'POST', `/approvals/${held}/approve`, { body: { approver: 'alice' } }));
    expect(reply.body.approval).toMatchObject({ state: 'failed', result: { error: { code: 'commit_outcome_unknown' } } });
    expect(reply.body.approval.result.error.message).toMatch(/whether it committed is not known/);
    expect(await settled(first, 'slow-commit')).toBe('slow-commit');

    // A rollback back to a value the trigger holds: 502, and the trail says the outcome is not known.
    const [second] = await orders(1, 'slow-commit');
    const approved = await hold(modes[0], `${R}UPDATE orders SET status = 'after' WHERE id = ${second}`, [], cut);
    expect((await api(via, 'POST', `/approvals/${approved}/approve`, { body: { approver: 'alice' } })).body.approval.state).toBe('executed');
    const executed = (await trail(approved, (rows) => rows.some((r) => r.decision === 'executed'), table)).find((r) => r.decision === 'executed')!;
    const undo = await cutDuringCommit(() => api(via, 'POST', `/audit/${executed.id}/rollback`, { body: { by: 'bob' } }));
    expect(undo).toMatchObject({ status: 502, body: { error: { code: 'rollback_outcome_unknown' } } });
    expect(await settled(second, 'slow-commit')).toBe('slow-commit');
    expect(await rollbacksOf(executed.id, 2, table)).toEqual([
      { decision: 'rolled_back', code: null, actor: 'bob' },
      { decision: 'error', code: 'rollback_outcome_unknown', actor: 'bob' },
    ]);
  } finally {
    await cut.close();
    await upstream.close();
    await db.query('DROP TRIGGER ormai_test_slow_commit ON orders');
    await db.query('DROP FUNCTION ormai_test_slow_commit()');
  }
});

test('write_guarantee: async: the approved write commits without waiting for the trail', async () => {
  const lax = await proxyWith('approval_audit_async', { write_guarantee: 'async' });
  try {
    const ids = await orders(1, 'async-before');
    const id = await hold(modes[0], `${R}UPDATE orders SET status = 'async-after' WHERE id = ${ids[0]}`, [], lax);
    relay.stall(true);
    const reply = await api({ url: `http://127.0.0.1:${lax.admin.port}` }, 'POST', `/approvals/${id}/approve`, { body: { approver: 'alice' } });
    expect(reply.body.approval).toMatchObject({ state: 'executed', result: { rows_affected: 1 } });
    expect((await current(ids)).map((r) => r.status)).toEqual(['async-after']);
    relay.stall(false);
    const steps = await trail(id, (rows) => rows.some((r) => r.decision === 'executed'), 'approval_audit_async');
    expect(steps.find((r) => r.decision === 'executed')?.event.changes).toMatchObject({ operation: 'update', rows: [{ key: { id: String(ids[0]) }, before: { status: 'async-before' }, after: { status: 'async-after' } }] });
  } finally {
    await lax.close();
  }
});
