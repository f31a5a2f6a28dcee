// The postgres audit sink against a real database: the table, batches, an INSERT-only role, an outage through a relay, and the proxy's wiring.
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { monotonicFactory } from 'ulid';
import type { AuditEvent } from '../../src/audit/event';
import { AuditLog } from '../../src/audit/log';
import { auditTableDdl, PostgresSink } from '../../src/audit/sinks/postgres';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy } from '../support/proxy';
import { startRelay, type Relay } from '../support/relay';
import { until } from '../support/audit-sinks';
import { readFileSync } from 'node:fs';
import { findUndoingEvent } from '../../src/audit/rollback-command';
import { resolveConfig } from '../../src/config/load';
import { parseStructuredFile } from '../../src/policy/load';
import { QUICKSTART } from '../support/proxy';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

const ulid = monotonicFactory();
const event = (n: number, extra: Partial<AuditEvent> = {}): AuditEvent => ({
  id: ulid(),
  time: new Date(Date.UTC(2025, 0, 1, 0, 0, n % 60)).toISOString(),
  kind: 'statement',
  decision: 'allowed',
  session_id: 's1',
  principal: { user: 'agent', tenant_id: '7', roles: ['support'] },
  policy: { name: 'quickstart', hash: 'ab'.repeat(32) },
  statement_kind: 'read',
  sql: 'SELECT * FROM orders WHERE id = $1',
  rows: n,
  duration_ms: 1.5,
  trace_id: 'trace',
  tool_call_id: 'call_1',
  ...extra,
});

const withUrl = (url: string, change: (u: URL) => void) => {
  const u = new URL(url);
  change(u);
  return u.toString();
};

test('creates its table when missing, and writes batches with the main columns and the whole event', async () => {
  const sink = new PostgresSink({ client: { connectionString: db.url }, table: 'audit_a.events' });
  await db.query('CREATE SCHEMA audit_a');
  try {
    await sink.open();
    await sink.write([event(1), event(2, { decision: 'refused', code: 'model_not_allowed', reason: 'nul \0 byte' })]);
    // A retry of a batch whose COMMIT went through but whose answer was lost inserts nothing twice.
    const again = [event(3)];
    await sink.write(again);
    await sink.write(again);
    const rows = await db.query<Record<string, unknown>>('SELECT * FROM audit_a.events ORDER BY "rows"');
    expect(rows).toHaveLength(3);
    expect(rows[1]).toMatchObject({
      kind: 'statement',
      decision: 'refused',
      code: 'model_not_allowed',
      session_id: 's1',
      principal_user: 'agent',
      tenant_id: '7',
      policy_name: 'quickstart',
      statement_kind: 'read',
      rows: '2',
      duration_ms: 1.5,
      trace_id: 'trace',
      tool_call_id: 'call_1',
    });
    expect((rows[1].time as Date).toISOString()).toBe('2025-01-01T00:00:02.000Z');
    expect(rows[1].event).toMatchObject({ sql: 'SELECT * FROM orders WHERE id = $1', reason: 'nul \ufffd byte', principal: { roles: ['support'] } });
  } finally {
    await sink.close();
  }
});

test('an INSERT-only role writes into a table an operator made, and can do nothing else with it', async () => {
  const role = `ormai_auditor_${randomBytes(4).toString('hex')}`;
  await db.query('CREATE SCHEMA audit_ro');
  for (const ddl of auditTableDdl('audit_ro.events')) await db.query(ddl);
  await db.query(`CREATE ROLE ${role} LOGIN PASSWORD 'auditor-pw'`);
  await db.query(`GRANT USAGE ON SCHEMA audit_ro TO ${role}`);
  await db.query(`GRANT INSERT ON audit_ro.events TO ${role}`);
  const url = withUrl(db.url, (u) => {
    u.username = role;
    u.password = 'auditor-pw';
  });
  const sink = new PostgresSink({ client: { connectionString: url }, table: 'audit_ro.events' });
  const missing = new PostgresSink({ client: { connectionString: url }, table: 'audit_ro.absent' });
  const as = new Client({ connectionString: url });
  await as.connect();
  try {
    const batch = [event(1), event(2)];
    await sink.write(batch);
    // The retry of a batch already committed: ON CONFLICT DO NOTHING needs no privilege beyond INSERT.
    await sink.write(batch);
    expect(await db.query('SELECT count(*)::int AS n FROM audit_ro.events')).toEqual([{ n: 2 }]);
    for (const sql of ['SELECT * FROM audit_ro.events', 'UPDATE audit_ro.events SET decision = $$x$$', 'DELETE FROM audit_ro.events', 'TRUNCATE audit_ro.events']) {
      await expect(as.query(sql)).rejects.toMatchObject({ code: '42501' });
    }
    await expect(missing.open()).rejects.toThrow(/does not exist and this role may not create it/);
  } finally {
    await as.end();
    await sink.close();
    await missing.close();
    await db.query(`DROP OWNED BY ${role}`);
    await db.query(`DROP ROLE ${role}`);
  }
});

describe('an outage between the sink and its database', () => {
  let relay: Relay;
  let log: AuditLog;
  beforeAll(async () => {
    const u = new URL(db.url);
    relay = await startRelay(u.hostname, Number(u.port || 5432));
    const viaRelay = withUrl(db.url, (r) => {
      r.hostname = '127.0.0.1';
      r.port = String(relay.port);
    });
    const sink = new PostgresSink({ client: { connectionString: viaRelay, connectionTimeoutMillis: 1000 }, table: 'outage_events', queryTimeoutMs: 2000 });
    log = new AuditLog({ sinks: [sink], minRetryMs: 20, maxRetryMs: 200, batchSize: 5, closeTimeoutMs: 5000 });
    await log.ready();
  });
  afterAll(async () => {
    await log.close();
    await relay.close();
  });

  test('writes are refused while it lasts; events queued before and during it arrive after, once each, in order', async () => {
    expect(log.healthy()).toBe(true);
    const first = Array.from({ length: 6 }, (_, i) => log.emit({ kind: 'statement', decision: 'allowed', rows: i }));
    await log.durable(first[5]);
    // Queued just before the cut: some may be in flight when it happens.
    const before = Array.from({ length: 8 }, (_, i) => log.emit({ kind: 'statement', decision: 'allowed', rows: 100 + i }));
    relay.setDown(true);
    relay.cut();
    const during = Array.from({ length: 8 }, (_, i) => log.emit({ kind: 'statement', decision: 'refused', rows: 200 + i }));
    await expect(log.durable(during[7])).rejects.toMatchObject({ name: 'AuditUnavailableError', code: 'audit_unavailable', reason: 'sink_down' });
    expect(log.acceptsWrites()).toBe(false);
    expect(log.acceptsReads()).toBe(true);
    expect(log.stats().sinks[0].failures).toBeGreaterThan(0);
    // Further durable() calls answer at once while the sink is known down.
    await expect(log.durable(during[0])).rejects.toMatchObject({ reason: 'sink_down' });
    // The sink keeps retrying (and failing) while the events wait in the queue.
    await until(() => log.stats().sinks[0].failures >= 3, 10_000);
    expect(log.queueDepth).toBeGreaterThanOrEqual(during.length);
    expect(log.healthy()).toBe(false);

    relay.setDown(false);
    await until(() => log.healthy() && log.queueDepth === 0, 15_000);
    const after = log.emit({ kind: 'statement', decision: 'allowed', rows: 300 });
    await log.durable(after);
    const rows = await db.query<{ id: string; rows: string }>('SELECT id, "rows" FROM outage_events ORDER BY id');
    const expected = [...first, ...before, ...during, after];
    expect(rows.map((r) => r.id)).toEqual(expected.map((e) => e.id));
    expect(rows.map((r) => Number(r.rows))).toEqual(expected.map((e) => e.rows));
    // In arrival order too, not only by id.
    const arrival = await db.query<{ id: string }>('SELECT id FROM outage_events ORDER BY inserted_at, id');
    expect(arrival.map((r) => r.id)).toEqual(expected.map((e) => e.id));
  }, 30_000);
});

test('the proxy creates the audit log from its config, exposes it, and drains it on close', async () => {
  const proxy = await startTestProxy(db.url, { audit: { sinks: [{ type: 'postgres', table: 'proxy_audit' }] } });
  let closed = false;
  try {
    expect(proxy.audit.healthy()).toBe(true);
    const events = Array.from({ length: 20 }, (_, i) => proxy.audit.emit({ kind: 'connection', decision: 'login', client: '127.0.0.1', rows: i }));
    await proxy.close();
    closed = true;
    const rows = await db.query<{ id: string }>('SELECT id FROM proxy_audit ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual(events.map((e) => e.id));
    expect(proxy.audit.healthy()).toBe(false);
  } finally {
    if (!closed) await proxy.close();
  }
});

test("a write's undoing event is found in a postgres sink by its id in undoes, or within undoes_range in the write's own session", async () => {
  const doc = { ...(parseStructuredFile(readFileSync(QUICKSTART, 'utf8'), QUICKSTART) as object), audit: { sinks: [{ type: 'postgres', table: 'undoing_audit' }] } };
  const config = resolveConfig(doc, QUICKSTART, { ORMAI_UPSTREAM_URL: db.url, ORMAI_LISTEN: '127.0.0.1:0', ORMAI_ADMIN_LISTEN: '127.0.0.1:0' });
  const sink = new PostgresSink({ client: { connectionString: db.url }, table: 'undoing_audit' });
  await sink.open();
  try {
    const write = (n: number, session = 's1') => event(n, { statement_kind: 'write', session_id: session });
    // Ids grow: another session's write between the range's ends is not spanned.
    const [listed, first, inside, between, last, after] = [write(0), write(1), write(2), write(5, 's2'), write(3), write(4)];
    const undoing = event(6, { decision: 'rolled_back', statement_kind: 'transaction', sql: 'ROLLBACK', undoes: [listed.id], undoes_more: 3, undoes_range: [first.id, last.id] });
    await sink.write([listed, first, inside, between, last, after, undoing]);
    const found = async (write: AuditEvent) => (await findUndoingEvent(config, write, false))?.id;
    expect(await found(listed)).toBe(undoing.id);
    for (const w of [first, inside, last]) expect(await found(w)).toBe(undoing.id);
    expect(between.id > first.id && between.id < last.id).toBe(true);
    expect(await found(between)).toBeUndefined();
    expect(await found(after)).toBeUndefined();
  } finally {
    await sink.close();
  }
});
