// The audit trail grows with what agents send, not its square, and one session's burst cannot
// push other sessions' events out of the queue.
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { heapUsed, MB, metric, newSessionRunsNewStatement, outcome, readyz } from '../support/hardening';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { relayTo, type Relay } from '../support/relay';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('a multi-statement Query', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startTestProxy(db.url);
  });
  afterAll(async () => {
    await proxy?.close();
  });

  test('1,000 statements give 1,000 events, each carrying its own statement', async () => {
    const heap = heapUsed();
    const c = new Client({ connectionString: proxy.url() });
    await c.connect();
    const sql = Array.from({ length: 1000 }, (_, i) => `SELECT ${i} AS n${i % 7}`).join('; ');
    await c.query(sql);
    await c.end();
    for (let i = 0; i < 100 && proxy.audit.queueDepth > 0; i++) await new Promise((r) => setTimeout(r, 20));
    const events = proxy.auditEvents().filter((e) => e.kind === 'statement');
    expect(events).toHaveLength(1000);
    const texts = events.map((e) => e.sql);
    expect(texts[0]).toBe('SELECT $1 AS n0');
    expect(texts[999]).toBe('SELECT $1 AS n5');
    expect(new Set(events.map((e) => e.sql_hmac)).size).toBe(1000);
    // Linear: each event holds one short statement (was the whole 20 kB text in every event: 20 MB).
    const bytes = events.reduce((n, e) => n + JSON.stringify(e).length, 0);
    expect(bytes).toBeLessThan(1000 * 1024);
    await newSessionRunsNewStatement(proxy);
    expect(heapUsed() - heap).toBeLessThan(32 * MB);
  });

  test('4,000 statements in one message are refused whole with one event', async () => {
    for (let i = 0; i < 100 && proxy.audit.queueDepth > 0; i++) await new Promise((r) => setTimeout(r, 20));
    const before = proxy.auditEvents().length;
    const c = new Client({ connectionString: proxy.url() });
    await c.connect();
    expect(await outcome(c, 'SELECT 1;'.repeat(4000))).toMatch(/^54001 statement_too_complex: the message holds 4000 statements/);
    await c.end();
    for (let i = 0; i < 100 && proxy.audit.queueDepth > 0; i++) await new Promise((r) => setTimeout(r, 20));
    const events = proxy.auditEvents().slice(before).filter((e) => e.kind === 'statement' && (e.sql ?? '').startsWith('SELECT $1'));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ decision: 'refused', code: 'statement_too_complex' });
    await newSessionRunsNewStatement(proxy);
  });
});

describe('a queue that cannot drain', () => {
  let proxy: TestProxy;
  let relay: Relay;
  beforeAll(async () => {
    let url: string;
    ({ relay, url } = await relayTo(db.url));
    relay.setDown(true);
    // The sink's database is unreachable: every event waits in the queue (400 events, 100 per session).
    proxy = await startTestProxy(db.url, {
      audit: { sinks: [{ type: 'postgres', url, table: 'hardening_audit' }], queue_size: 400, reads_when_unavailable: 'allow' },
    });
  });
  afterAll(async () => {
    relay.setDown(false);
    await proxy?.close();
    await relay?.close();
  });

  test("one session's burst fills only its own share; other sessions' events keep their room", async () => {
    const burst = new Client({ connectionString: proxy.url() });
    const other = new Client({ connectionString: proxy.url() });
    await burst.connect();
    await other.connect();
    const queued = proxy.audit.queueDepth;
    await burst.query(Array.from({ length: 300 }, (_, i) => `SELECT ${i}`).join('; '));
    // The burst's session holds its share (100 events, its login included); the rest of its burst is counted as lost.
    expect(proxy.audit.queueDepth - queued).toBeLessThanOrEqual(100);
    expect(proxy.audit.stats().droppedOverShare).toBeGreaterThanOrEqual(200);
    // Back-pressure: the bursting session waits (57P03) while its events are unwritten; the other goes on.
    expect(await outcome(burst, 'SELECT 1')).toMatch(/^57P03 audit_unavailable/);
    const before = proxy.audit.stats().dropped;
    for (let i = 0; i < 10; i++) expect(await outcome(other, `SELECT ${i + 7000}`)).toBe('ok');
    expect(proxy.audit.stats().dropped).toBe(before);
    expect(await metric(proxy, 'ormai_audit_dropped_session_share_total')).toBeGreaterThanOrEqual(200);
    await burst.end();
    await other.end();
  });

  test('a full queue turns /readyz not ready, with the reason', async () => {
    // Four sessions of 100 events each fill the 400-event queue.
    const clients = await Promise.all(Array.from({ length: 4 }, async () => {
      const c = new Client({ connectionString: proxy.url() });
      await c.connect();
      return c;
    }));
    for (const [k, c] of clients.entries()) await c.query(Array.from({ length: 99 }, (_, i) => `SELECT ${k * 1000 + i}`).join('; ')).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 1100));
    const ready = await readyz(proxy);
    expect(ready.status).toBe(503);
    expect(ready.body.checks.audit).toMatchObject({ ok: false, error: 'queue full' });
    for (const c of clients) await c.end();
  });
});
