// The Redis rate-limit store against a real Redis (REDIS_URL): sliding window, shared budgets, atomicity, fast failure.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import Redis from 'ioredis';
import type { RateDecision } from '../../src/budgets/rate-limit';
import { RateStoreUnavailableError, RedisRateLimitStore, type RedisRateLimitStoreOptions } from '../../src/budgets/redis-store';
import { capturingLogger } from '../support/logs';

const REDIS_URL = process.env.REDIS_URL;
if (!REDIS_URL) console.warn('REDIS_URL is not set: skipping the Redis rate-limit store tests (test/integration/redis-store.test.ts)');
const describeRedis = REDIS_URL ? describe : describe.skip;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A port with nothing listening: bound, then released. */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/** A server that accepts connections and never answers: a Redis that hangs. */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

describeRedis('RedisRateLimitStore', () => {
  // Every key this run creates starts with the run's prefix, so cleanup cannot touch anything else.
  const run = `ormai-test:${randomBytes(6).toString('hex')}:`;
  let admin: Redis;
  const stores: RedisRateLimitStore[] = [];

  const store = (options: Partial<RedisRateLimitStoreOptions> = {}) => {
    const s = new RedisRateLimitStore({ url: REDIS_URL!, keyPrefix: run, ...options });
    stores.push(s);
    return s;
  };

  beforeAll(() => {
    admin = new Redis(REDIS_URL!, { lazyConnect: true });
  });
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
    const keys = await admin.keys(`${run}*`);
    if (keys.length > 0) await admin.del(...keys);
    expect(await admin.keys(`${run}*`)).toEqual([]);
    await admin.quit();
  });

  test('allows `limit` events and refuses the next, with the wait until one frees up', async () => {
    const s = store();
    for (let i = 1; i <= 3; i++) expect(await s.hit('limit', 3, 60_000)).toEqual({ allowed: true, retryAfterMs: 0, count: i });
    const refused = await s.hit('limit', 3, 60_000);
    expect(refused).toMatchObject({ allowed: false, count: 3 });
    expect(refused.retryAfterMs).toBeGreaterThan(59_000);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(60_000);
    // The key lives one window, not forever.
    const ttl = await admin.pttl(`${run}limit`);
    expect(ttl).toBeGreaterThan(59_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  test('the window slides: an event frees its slot one window after it happened, not at a boundary', async () => {
    const s = store();
    expect((await s.hit('slide', 2, 300)).allowed).toBe(true);
    await sleep(150);
    expect((await s.hit('slide', 2, 300)).allowed).toBe(true);
    const refused = await s.hit('slide', 2, 300);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(160);
    await sleep(refused.retryAfterMs + 20);
    // The first event left the window; the second is still in it, so only one slot is free.
    expect(await s.hit('slide', 2, 300)).toMatchObject({ allowed: true, count: 2 });
    const again = await s.hit('slide', 2, 300);
    expect(again.allowed).toBe(false);
    expect(again.retryAfterMs).toBeGreaterThan(0);
  });

  test('refused events are not counted', async () => {
    const s = store();
    expect((await s.hit('refused', 1, 300)).allowed).toBe(true);
    let last: RateDecision | undefined;
    for (let i = 0; i < 5; i++) {
      last = await s.hit('refused', 1, 300);
      expect(last).toMatchObject({ allowed: false, count: 1 });
    }
    expect(await admin.zcard(`${run}refused`)).toBe(1);
    await sleep(last!.retryAfterMs + 20);
    expect(await s.hit('refused', 1, 300)).toMatchObject({ allowed: true, count: 1 });
  });

  test('two stores on their own connections (two sidecars) share one budget', async () => {
    const a = store();
    const b = store();
    const decisions = [];
    for (let i = 0; i < 6; i++) decisions.push(await (i % 2 ? b : a).hit('shared', 4, 60_000));
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, true, false, false]);
    expect(decisions.map((d) => d.count)).toEqual([1, 2, 3, 4, 4, 4]);
  });

  test('50 concurrent hits from two stores against a limit of 10 allow exactly 10', async () => {
    const a = store();
    const b = store();
    // Not connected first: the hits that arrive while each store connects share one wait.
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    const decisions = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? b : a).hit('race', 10, 60_000))).finally(() =>
      process.off('warning', onWarning),
    );
    expect(warnings).toEqual([]);
    const allowed = decisions.filter((d) => d.allowed);
    expect(allowed).toHaveLength(10);
    expect(allowed.map((d) => d.count).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(await admin.zcard(`${run}race`)).toBe(10);
  });

  test('keys are isolated by prefix and by key; the default prefix is ormai:rl:', async () => {
    const p1 = store({ keyPrefix: `${run}p1:` });
    const p2 = store({ keyPrefix: `${run}p2:` });
    expect((await p1.hit('k', 1, 60_000)).allowed).toBe(true);
    expect((await p1.hit('k', 1, 60_000)).allowed).toBe(false);
    expect((await p2.hit('k', 1, 60_000)).allowed).toBe(true);
    expect((await p1.hit('other', 1, 60_000)).allowed).toBe(true);
    expect((await admin.keys(`${run}p*`)).sort()).toEqual([`${run}p1:k`, `${run}p1:other`, `${run}p2:k`]);

    const plain = store({ keyPrefix: undefined });
    const key = `${run.replace(/:$/, '')}-default`;
    try {
      expect((await plain.hit(key, 1, 60_000)).allowed).toBe(true);
      expect(await admin.exists(`ormai:rl:${key}`)).toBe(1);
    } finally {
      await admin.del(`ormai:rl:${key}`);
    }
  });

  test('an unreachable Redis rejects with RateStoreUnavailableError at once, and logs no password', async () => {
    const { log, lines } = capturingLogger();
    const s = store({ url: `redis://:sekret-pw@127.0.0.1:${await deadPort()}`, log });
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      await expect(s.hit('down', 5, 60_000)).rejects.toBeInstanceOf(RateStoreUnavailableError);
      expect(Date.now() - started).toBeLessThan(600);
    }
    await expect(s.connect()).rejects.toBeInstanceOf(RateStoreUnavailableError);
    // Reconnect attempts continue in the background; the outage is logged once, without the URL's password.
    await sleep(500);
    const warnings = lines.filter((l) => l.includes('rate-limit store unreachable'));
    expect(warnings).toHaveLength(1);
    expect(lines.join('')).not.toContain('sekret-pw');
  });

  test('a Redis that accepts connections but never answers fails within the command timeout', async () => {
    const hung = await silentServer();
    try {
      const s = store({ url: `redis://127.0.0.1:${hung.port}`, commandTimeoutMs: 200 });
      const started = Date.now();
      await expect(s.hit('hung', 5, 60_000)).rejects.toBeInstanceOf(RateStoreUnavailableError);
      expect(Date.now() - started).toBeLessThan(700);
      await s.close();
    } finally {
      await hung.close();
    }
  });

  test('after close, hits reject instead of hanging', async () => {
    const s = store();
    expect((await s.hit('closed', 5, 60_000)).allowed).toBe(true);
    await s.close();
    await expect(s.hit('closed', 5, 60_000)).rejects.toBeInstanceOf(RateStoreUnavailableError);
    await s.close();
  });
});
