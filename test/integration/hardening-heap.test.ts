// Distinct large statements do not accumulate: the caches are sized by what their entries hold,
// and an answered statement's audit hook lets go of its trees.
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { heapUsed, MB, newSessionRunsNewStatement } from '../support/hardening';
import { startTestProxy, type TestProxy } from '../support/proxy';

let db: TestDatabase;
let proxy: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url, { analysis: { cache_size: '8MiB' } });
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

const orList = (i: number, terms: number): string =>
  'SELECT id FROM orders WHERE ' + Array.from({ length: terms }, (_, k) => `id = ${i * 100_000 + k}`).join(' OR ');

test('30 distinct allowed 2,000-term OR lists in one session: the heap stays within the cache size and a margin', async () => {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  // Warm-up: first-use allocations (the policy scope, JIT) are not what this measures.
  await c.query(orList(99, 2000));
  const base = heapUsed();
  let peak = 0;
  for (let i = 0; i < 30; i++) {
    await c.query(orList(i, 2000));
    if (i % 10 === 9) peak = Math.max(peak, heapUsed() - base);
  }
  const stats = proxy.server.cache.stats();
  expect(stats.misses).toBeGreaterThanOrEqual(31);
  expect(stats.bytes).toBeLessThanOrEqual(8 * MB);
  // Was ~1.6 MB kept per statement (its trees, held by the session's answered queue through the
  // audit hook, and the redaction and planner caches keyed by whole texts): ~48 MB here.
  expect(peak).toBeLessThan(8 * MB + 16 * MB);
  // A repeated statement is still a cache hit.
  const again = orList(29, 2000);
  const hits = proxy.server.cache.stats().hits;
  await c.query(again);
  expect(proxy.server.cache.stats().hits).toBe(hits + 1);
  await c.end();
  await newSessionRunsNewStatement(proxy);
});

test('a 20,000-term OR list (300 kB) is refused by the tree bound instead of costing seconds and megabytes', async () => {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  await expect(c.query(orList(7, 20_000))).rejects.toMatchObject({ code: '54001', message: expect.stringMatching(/tree has more than 100000 nodes/) });
  await c.end();
  await newSessionRunsNewStatement(proxy);
});

// The session's queue of answered requests lets go of each answered item (its texts and trees) at once.
test('30 distinct allowed statements of 300 kB (a long literal) in one session: their texts are not kept', async () => {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  await c.query(`SELECT id FROM orders WHERE status <> '${'y'.repeat(300_000)}' LIMIT 1`);
  const base = heapUsed();
  for (let i = 0; i < 30; i++) await c.query(`SELECT id FROM orders WHERE status <> '${String(i).padStart(6, '0')}${'x'.repeat(300_000)}' LIMIT 1`);
  const grown = heapUsed() - base;
  await c.end();
  expect(grown).toBeLessThan(8 * MB);
});
