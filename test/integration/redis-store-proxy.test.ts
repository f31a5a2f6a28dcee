// Shared budgets through the proxy: two proxies counting in one Redis (REDIS_URL), and fail-closed when Redis is gone.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import Redis from 'ioredis';
import { Client } from 'pg';
import type { PgError } from '../support/clients';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';

const REDIS_URL = process.env.REDIS_URL;
if (!REDIS_URL) console.warn('REDIS_URL is not set: skipping the shared-budget proxy tests (test/integration/redis-store-proxy.test.ts)');
const describeRedis = REDIS_URL ? describe : describe.skip;

const POLICY = path.resolve(__dirname, '../fixtures/shared-budget-policy.yaml');

async function deadRedisUrl(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return `redis://127.0.0.1:${port}`;
}

async function connect(proxy: TestProxy, user = 'tenant1-agent'): Promise<Client> {
  const c = new Client({ connectionString: proxy.url(user, user.replace('agent', 'password')) });
  await c.connect();
  return c;
}

/** Runs `sql` under the simple or the extended protocol; resolves with the error, or undefined on success. */
function attempt(c: Client, sql: string, extended: boolean): Promise<PgError | undefined> {
  const query = extended ? c.query({ text: sql, values: [] } as never) : c.query(sql);
  return query.then(
    () => undefined,
    (e: PgError) => e,
  );
}

describeRedis('budgets shared through Redis', () => {
  const prefix = `ormai-test:${randomBytes(6).toString('hex')}:`;
  let db: TestDatabase;
  let admin: Redis;
  const proxies: TestProxy[] = [];
  const clients: Client[] = [];

  const start = async (store: Record<string, unknown>) => {
    // Two proxies in one process: each needs its own admin port too.
    const proxy = await startTestProxy(db.url, { policies: [POLICY], store, admin_listen: '127.0.0.1:0' });
    proxies.push(proxy);
    return proxy;
  };
  const client = async (proxy: TestProxy, user?: string) => {
    const c = await connect(proxy, user);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    admin = new Redis(REDIS_URL!, { lazyConnect: true });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await Promise.all(proxies.map((p) => p.close()));
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    await admin.quit();
    await db?.drop();
  });

  test('two proxies enforce one combined write budget; Redis gone refuses writes', async () => {
    // Its own prefix (cleaned up with the rest): the per-tenant test below checks which keys exist.
    const store = { redis_url: REDIS_URL, key_prefix: `${prefix}writes:` };
    const policies = [path.resolve(__dirname, '../fixtures/shared-write-budget-policy.yaml')];
    const a = await startTestProxy(db.url, { policies, store, admin_listen: '127.0.0.1:0' });
    const b = await startTestProxy(db.url, { policies, store, admin_listen: '127.0.0.1:0' });
    proxies.push(a, b);
    const viaA = await client(a);
    const viaB = await client(b);
    const write = 'UPDATE orders SET status = status WHERE id = 1';
    // The budget is 3 writes a minute for the agent, counted in one place: 2 through A, 1 through B, then B refuses.
    expect(await attempt(viaA, write, false)).toBeUndefined();
    expect(await attempt(viaA, write, true)).toBeUndefined();
    expect(await attempt(viaB, write, false)).toBeUndefined();
    expect((await attempt(viaB, write, true))?.routine).toBe('ormai.write_rate_limited');
    expect((await attempt(viaA, write, false))?.routine).toBe('ormai.write_rate_limited');
    // Reads do not spend the write budget.
    expect(await attempt(viaA, 'SELECT count(*) FROM orders', false)).toBeUndefined();
    const dead = await startTestProxy(db.url, { policies, store: { redis_url: await deadRedisUrl(), reads_when_unavailable: 'allow' }, admin_listen: '127.0.0.1:0' });
    proxies.push(dead);
    const viaDead = await client(dead);
    expect((await attempt(viaDead, write, false))?.routine).toBe('ormai.rate_store_unavailable');
    expect(await attempt(viaDead, 'SELECT count(*) FROM orders', true)).toBeUndefined();
  });

  test('two proxies enforce one combined per-tenant budget', async () => {
    const store = { redis_url: REDIS_URL, key_prefix: prefix };
    const a = await start(store);
    const b = await start(store);
    const viaA = await client(a);
    const viaB = await client(b);
    // The budget is 5: 3 statements through A (simple protocol), then 3 through B (extended).
    for (let i = 0; i < 3; i++) expect(await attempt(viaA, 'SELECT count(*) FROM customers', false)).toBeUndefined();
    for (let i = 0; i < 2; i++) expect(await attempt(viaB, 'SELECT count(*) FROM orders', true)).toBeUndefined();
    const refused = await attempt(viaB, 'SELECT count(*) FROM orders', true);
    expect(refused).toMatchObject({ code: '53400', routine: 'ormai.query_rate_limited' });
    // Now A is out of budget too, and its session stays usable (the refusal is an ordinary error).
    expect(await attempt(viaA, 'SELECT 1', false)).toMatchObject({ routine: 'ormai.query_rate_limited' });
    // Both proxies counted in the same key, under the configured prefix.
    expect(await admin.keys(`${prefix}rl:*`)).toEqual([`${prefix}rl:q:shared-budgets:1`]);
    // Another tenant has its own budget.
    const other = await client(b, 'tenant2-agent');
    expect(await attempt(other, 'SELECT count(*) FROM customers', false)).toBeUndefined();
  });

  describe.each([
    { protocol: 'simple', extended: false },
    { protocol: 'extended', extended: true },
  ])('with Redis unreachable, under the $protocol protocol', ({ extended }) => {
    test('statements are refused with rate_store_unavailable by default, quickly', async () => {
      const proxy = await start({ redis_url: await deadRedisUrl(), command_timeout_ms: 300 });
      const c = await client(proxy);
      for (let i = 0; i < 2; i++) {
        const started = Date.now();
        const err = await attempt(c, 'SELECT count(*) FROM customers', extended);
        expect(Date.now() - started).toBeLessThan(1000);
        expect(err).toMatchObject({ code: '57P03', routine: 'ormai.rate_store_unavailable' });
        expect(err!.message).toMatch(/^rate_store_unavailable: the shared rate-limit store is not reachable/);
        expect(err!.hint).toMatch(/Retry in a few seconds/);
      }
    });

    test('with reads_when_unavailable: allow, reads go through and writes are still refused', async () => {
      const proxy = await start({ redis_url: await deadRedisUrl(), reads_when_unavailable: 'allow' });
      const c = await client(proxy);
      expect(await attempt(c, 'BEGIN', extended)).toBeUndefined();
      expect(await attempt(c, 'SELECT count(*) FROM customers', extended)).toBeUndefined();
      expect(await attempt(c, 'COMMIT', extended)).toBeUndefined();
      const before = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders');
      const err = await attempt(c, 'INSERT INTO orders (customer_id, total_cents) VALUES (1, 100)', extended);
      expect(err).toMatchObject({ code: '57P03', routine: 'ormai.rate_store_unavailable' });
      expect(await db.query('SELECT count(*)::int AS n FROM orders')).toEqual(before);
      // The session goes on after the refusal.
      expect(await attempt(c, 'SELECT 1', extended)).toBeUndefined();
    });
  });
});
