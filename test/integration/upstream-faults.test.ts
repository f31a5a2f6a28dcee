// Upstream loss and client loss: clear errors, no hangs, no orphaned queries upstream.
import net from 'node:net';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { startRelay, type Relay } from '../support/relay';
import { activeStatements, loginError, SLOW_QUERY, waitFor } from '../support/clients';

let db: TestDatabase;
let relay: Relay;
let proxy: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  const target = new URL(db.url);
  relay = await startRelay(target.hostname, Number(target.port || 5432));
  const viaRelay = new URL(db.url);
  viaRelay.hostname = '127.0.0.1';
  viaRelay.port = String(relay.port);
  proxy = await startTestProxy(viaRelay.toString(), { upstream: { connect_timeout_ms: 2000 } });
});
afterAll(async () => {
  await proxy?.close();
  await relay?.close();
  await db?.drop();
});

const runningSlow = () => activeStatements(db.url, 'generate_series(1, 200000)');

test('losing the upstream mid-query gives connected clients an error, and the proxy serves again once it is back', async () => {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  const errors: Error[] = [];
  c.on('error', (e) => errors.push(e));
  const running = c.query(SLOW_QUERY).then(
    () => undefined,
    (e: Error & { code?: string }) => e,
  );
  await new Promise((r) => setTimeout(r, 300));
  relay.cut();
  const err = await running;
  expect(err).toBeDefined();
  expect(err!.message).toMatch(/upstream_lost|Connection terminated/);
  await c.end().catch(() => undefined);

  relay.setDown(true);
  const loginErr = await loginError(proxy.url());
  expect(loginErr).toMatchObject({ code: '08006' });
  expect(loginErr!.message).toMatch(/^upstream_unavailable/);

  relay.setDown(false);
  const again = new Client({ connectionString: proxy.url() });
  await again.connect();
  try {
    expect((await again.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
  } finally {
    await again.end();
  }
});

test('a client that disconnects mid-query leaves no running query upstream', async () => {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  c.on('error', () => undefined);
  const running = c.query(SLOW_QUERY).catch(() => undefined);
  expect(await waitFor(async () => (await runningSlow()) === 1, 2000)).toBe(true);
  (c as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
  await running;
  expect(await waitFor(async () => (await runningSlow()) === 0, 1500)).toBe(true);
});

test('an upstream that accepts but never answers does not hang the client', async () => {
  // Reads (and ignores) what the proxy sends, so it notices when the proxy gives up.
  const silent = net.createServer((s) => s.resume());
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const url = new URL(db.url);
  url.port = String((silent.address() as net.AddressInfo).port);
  const p = await startTestProxy(url.toString(), { upstream: { connect_timeout_ms: 500 } });
  try {
    const started = Date.now();
    expect(await loginError(p.url())).toMatchObject({ code: '08006' });
    expect(Date.now() - started).toBeLessThan(5000);
  } finally {
    await p.close();
    await new Promise<void>((r) => silent.close(() => r()));
  }
});
