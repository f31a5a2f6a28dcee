// The normalised statement cache through a running proxy: simple-protocol reads that differ only in their literals
// are answered from one analysis, return what a fresh analysis returns (tenant scope included), and their audit
// events carry each statement's own hash with the shape's redacted texts.
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';

let db: TestDatabase;
let proxy: TestProxy;
const events: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url, { audit: { sinks: [{ type: 'postgres', url: db.url, table: 'shape_audit' }] } });
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

test('reads of one shape with new literals are answered from its template, with the rows a fresh analysis gives', async () => {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  try {
    const before = proxy.server.cache.stats().shapeHits ?? 0;
    // Tenant 1's orders by id, and ids of tenant 2's rows (which read as missing).
    const [{ own }] = (await db.query<{ own: number[] }>('SELECT array_agg(id ORDER BY id) AS own FROM orders WHERE tenant_id = 1'));
    const [{ other }] = (await db.query<{ other: number[] }>('SELECT array_agg(id ORDER BY id) AS other FROM orders WHERE tenant_id <> 1'));
    for (const id of [...own, ...other]) {
      const r = await c.query(`SELECT id, status FROM orders WHERE id = ${id} AND status <> 'x''y'`);
      expect(r.rows.map((x) => x.id)).toEqual(own.includes(id) ? [id] : []);
    }
    expect((proxy.server.cache.stats().shapeHits ?? 0) - before).toBe(own.length + other.length - 2);
    // The same text with a mask and a cap keeps both.
    const masked = await c.query("SELECT email FROM customers WHERE id = 1 AND name <> 'a'");
    await c.query("SELECT email FROM customers WHERE id = 2 AND name <> 'b'");
    const third = await c.query("SELECT email FROM customers WHERE id = 3 AND name <> 'c'");
    for (const r of [...masked.rows, ...third.rows]) expect(String(r.email)).toContain('***');
  } finally {
    await c.end();
  }
  for (let i = 0; i < 100 && events.length === 0; i++) {
    const rows = await db.query("SELECT event FROM shape_audit WHERE event->>'sql' LIKE 'SELECT id, status FROM orders%'").catch(() => []);
    if (rows.length >= 4) events.push(...rows.map((r) => r.event as Record<string, unknown>));
    else await new Promise((r) => setTimeout(r, 50));
  }
  // One redacted text and one rewritten text for the shape; a hash per statement.
  expect(new Set(events.map((e) => e.sql)).size).toBe(1);
  expect(new Set(events.map((e) => e.rewritten_sql)).size).toBe(1);
  expect(String(events[0].sql)).toMatch(/id = \$1 AND status <> \$2/);
  expect(new Set(events.map((e) => e.sql_hmac)).size).toBe(events.length);
});
