// Shutdown (SIGTERM): the proxy stops accepting, idle sessions end at once, busy ones finish what they run and may
// commit their transaction within session.shutdown_grace_ms, and what still runs after it is cancelled. Every
// statement gets its event, and no write is left committed without its event in the trail, with the audit sink up
// or going down at the same moment, under both protocols. Proven by counting committed rows against the events naming them.
import path from 'node:path';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { relayTo, type Relay } from '../support/relay';

const POLICY = path.resolve(__dirname, '..', 'fixtures', 'write-policy.yaml');
const R = "/*reason='shutdown test'*/ ";
let db: TestDatabase;
let relay: Relay;
let relayed: string;
let table = 0;

beforeAll(async () => {
  db = await createTestDatabase();
  ({ relay, url: relayed } = await relayTo(db.url));
});
afterAll(async () => {
  await relay?.close();
  await db?.drop();
});

/** A proxy whose audit table (its own per test) is reached through the relay. */
async function proxyWith(graceMs: number): Promise<{ proxy: TestProxy; audit: string }> {
  const audit = `shutdown_audit_${++table}`;
  relay.setDown(false);
  const proxy = await startTestProxy(db.url, {
    policies: [POLICY],
    session: { shutdown_grace_ms: graceMs, deadline_margin_ms: 500 },
    audit: { sinks: [{ type: 'postgres', url: relayed, table: audit }], durable_timeout_ms: 1000 },
  });
  return { proxy, audit };
}

async function connect(proxy: TestProxy): Promise<Client> {
  const c = new Client({ connectionString: proxy.url() });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

const settle = <T>(p: Promise<T>) => p.then((value) => ({ value }), (error: { routine?: string; code?: string; message: string }) => ({ error }));

test('a statement running at shutdown finishes and is answered; then its session ends, and both have their events', async () => {
  const { proxy, audit } = await proxyWith(5000);
  const c = await connect(proxy);
  const idle = await connect(proxy);
  const running = settle(c.query('SELECT count(*)::int AS n FROM generate_series(1, 2000000)'));
  await new Promise((r) => setTimeout(r, 50));
  const closing = proxy.close();
  const result = await running;
  expect(result).toEqual({ value: expect.objectContaining({ rows: [{ n: 2000000 }] }) });
  // Idle, it was sent away at once; the busy one ends now that it is idle.
  expect(await settle(idle.query('SELECT 1'))).toMatchObject({ error: expect.anything() });
  expect(await settle(c.query('SELECT 1'))).toMatchObject({ error: expect.anything() });
  await closing;
  const events = await db.query<{ decision: string; n: number }>(`SELECT decision, count(*)::int AS n FROM ${audit} WHERE kind = 'statement' GROUP BY 1`);
  expect(events).toEqual([{ decision: 'allowed', n: 1 }]);
  await Promise.all([c.end().catch(() => undefined), idle.end().catch(() => undefined)]);
});

test('an open transaction may commit within the grace period; one still open after it is rolled back and recorded so', async () => {
  const { proxy, audit } = await proxyWith(800);
  const quick = await connect(proxy);
  const slow = await connect(proxy);
  await quick.query('BEGIN');
  await quick.query(`${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, 81001)`);
  await slow.query('BEGIN');
  await slow.query(`${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, 81002)`);
  const closing = proxy.close();
  await new Promise((r) => setTimeout(r, 100));
  // Within the grace period the transaction goes on and commits.
  await quick.query(`${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, 81003)`);
  await quick.query('COMMIT');
  await closing;
  // The other never committed: rolled back when the grace period ended.
  expect(await settle(slow.query('COMMIT'))).toMatchObject({ error: expect.anything() });
  const rows = await db.query<{ t: number }>('SELECT total_cents AS t FROM orders WHERE total_cents BETWEEN 81001 AND 81003 ORDER BY 1');
  expect(rows.map((r) => r.t)).toEqual([81001, 81003]);
  const rolledBack = await db.query(`SELECT 1 FROM ${audit} WHERE statement_kind = 'transaction' AND code = 'session_ended' AND event->>'message' LIKE '%session ended%'`);
  expect(rolledBack).toHaveLength(1);
  await Promise.all([quick.end().catch(() => undefined), slow.end().catch(() => undefined)]);
});

describe.each([
  { sink: 'up', down: false },
  { sink: 'going down at the same moment', down: true },
])('20 agents writing at shutdown, the audit sink $sink', ({ down }) => {
  test('no committed write is without its event', async () => {
    const { proxy, audit } = await proxyWith(1500);
    const base = down ? 90_000_000 : 80_000_000;
    let stop = false;
    let n = base;
    const agents = await Promise.all(Array.from({ length: 20 }, () => connect(proxy)));
    const work = agents.map(async (c, i) => {
      // Half the agents of each kind send Parse/Bind/Execute/Sync, the other half simple Queries.
      const extended = i % 4 >= 2;
      const q = (sql: string, value?: number) =>
        extended
          ? c.query({ text: sql.replace('$V', '$1'), values: value === undefined ? [] : [value], queryMode: 'extended' } as never)
          : c.query(sql.replace('$V', String(value)));
      try {
        while (!stop) {
          if (i % 2 === 0) {
            await q(`${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, $V)`, ++n);
          } else {
            await q('BEGIN');
            const mine = ++n;
            await q(`${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, $V)`, mine);
            await q(`${R}UPDATE orders SET status = 'shipped' WHERE total_cents = $V`, mine);
            await q('COMMIT');
          }
        }
      } catch {
        // Refused, rolled back or sent away: counted below from what PostgreSQL holds.
      }
    });
    await new Promise((r) => setTimeout(r, 700));
    if (down) {
      relay.setDown(true);
      relay.cut();
    }
    const started = Date.now();
    await proxy.close();
    const took = Date.now() - started;
    stop = true;
    await Promise.all(work);
    await Promise.all(agents.map((c) => c.end().catch(() => undefined)));
    const committed = await db.query<{ id: number }>('SELECT id FROM orders WHERE total_cents > $1 AND total_cents < $2 ORDER BY id', [base, base + 1_000_000]);
    expect(committed.length).toBeGreaterThan(20);
    // Every committed row is named by an executed write's event in the trail.
    const named = await db.query<{ id: number }>(
      `SELECT DISTINCT (r->'key'->>'id')::int AS id FROM ${audit}, jsonb_array_elements(event->'changes'->'rows') r
        WHERE decision = 'allowed' AND event->'changes'->>'operation' = 'insert'`,
    );
    const ids = new Set(named.map((r) => r.id));
    const missing = committed.filter((r) => !ids.has(r.id));
    expect({ missing, took }).toEqual({ missing: [], took: expect.any(Number) });
    process.stderr.write(`shutdown with the sink ${down ? 'going down' : 'up'}: ${committed.length} committed writes, all with their events; close took ${took} ms\n`);
    relay.setDown(false);
  }, 60_000);
});
