// The audit trail down through the proxy: writes refused with audit_unavailable, reads as configured, and the events
// queued before and during the outage delivered after it.
import path from 'node:path';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { relayTo, type Relay } from '../support/relay';

const POLICY = path.resolve(__dirname, '..', 'fixtures', 'write-policy.yaml');
const R = "/*reason='audit outage test'*/ ";
let db: TestDatabase;
let relay: Relay;
let proxy: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  let url: string;
  ({ relay, url } = await relayTo(db.url));
  // The audit table lives in the test database, reached through a relay the test can cut.
  proxy = await startTestProxy(db.url, {
    policies: [POLICY],
    audit: { sinks: [{ type: 'postgres', url, table: 'outage_audit' }], reads_when_unavailable: 'allow' },
  });
});
afterAll(async () => {
  await proxy?.close();
  await relay?.close();
  await db?.drop();
});

async function events(): Promise<Array<{ decision: string; statement_kind: string | null }>> {
  return db.query("SELECT decision, statement_kind FROM outage_audit WHERE kind = 'statement' ORDER BY id");
}

test('writes are refused while the sink is down, reads go on, and nothing queued is lost', async () => {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  try {
    await c.query(`${R}UPDATE orders SET status = status WHERE id = 1`);
    await c.query('SELECT count(*) FROM orders');
    for (let i = 0; i < 50 && (await events()).length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await events()).toHaveLength(2);

    relay.setDown(true);
    relay.cut();
    // The sink notices on its next batch: the read's event is that batch.
    await c.query('SELECT 1');
    for (let i = 0; i < 100; i++) {
      const refused = await c.query(`${R}UPDATE orders SET status = status WHERE id = 1`).then(() => undefined, (e: { routine?: string }) => e.routine);
      if (refused) {
        expect(refused).toBe('ormai.audit_unavailable');
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await expect(c.query(`${R}UPDATE orders SET status = status WHERE id = 1`)).rejects.toMatchObject({ routine: 'ormai.audit_unavailable', code: '57P03' });
    expect((await c.query('SELECT count(*)::int AS n FROM customers')).rows).toEqual([{ n: 3 }]);

    relay.setDown(false);
    // Every statement sent during the outage is recorded once the sink is back, in order.
    for (let i = 0; i < 200 && !(await events().catch(() => [])).some((e) => e.decision === 'refused'); i++) await new Promise((r) => setTimeout(r, 50));
    const after = await events();
    expect(after.slice(0, 3).map((e) => e.decision)).toEqual(['allowed', 'allowed', 'allowed']);
    expect(after.filter((e) => e.decision === 'refused').length).toBeGreaterThanOrEqual(1);
    expect(after[after.length - 1]).toMatchObject({ decision: 'allowed', statement_kind: 'read' });
  } finally {
    await c.end();
  }
});
