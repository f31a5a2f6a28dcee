// /readyz, /version and /metrics on a running proxy's admin listener, against a real database and a relay that goes down.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { api, TOKEN } from '../support/admin';
import { approvalRequest } from '../support/approvals';
import { waitFor } from '../support/clients';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { parseExposition } from '../support/monitoring';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { relayTo, startRelay, type Relay } from '../support/relay';

const PACKAGE_VERSION = (JSON.parse(readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
const METRIC_NAMES = [
  'ormai_statements_total',
  'ormai_budget_refusals_total',
  'ormai_rewrite_duration_seconds',
  'ormai_upstream_duration_seconds',
  'ormai_sessions_active',
  'ormai_statement_cache_hits_total',
  'ormai_statement_cache_misses_total',
  'ormai_audit_queue_depth',
  'ormai_audit_failures_total',
  'ormai_audit_chain_head_timestamp_seconds',
  'ormai_rate_limit_store_up',
  'ormai_approvals_pending',
  'ormai_approvals_oldest_pending_seconds',
  'ormai_policy_reloads_total',
  'ormai_policy_reload_failures_total',
  'ormai_logins_total',
  'ormai_policy_info',
  'ormai_approvals_total',
  'process_cpu_seconds_total',
];

let db: TestDatabase;
let dir: string;
beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-health-'));
  writeFileSync(path.join(dir, 'admin-token'), `${TOKEN}\n`);
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await db?.drop();
});

const adminOf = (p: TestProxy) => ({ url: `http://127.0.0.1:${p.admin.port}` });

async function scrape(p: TestProxy, token?: string): Promise<Response> {
  return fetch(`${adminOf(p).url}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
}

async function metricValue(p: TestProxy, sample: string): Promise<number | undefined> {
  return parseExposition(await (await scrape(p)).text()).get(sample);
}

describe('a proxy with its database up', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startTestProxy(db.url);
  });
  afterAll(() => proxy?.close());

  test('/readyz answers 200 with every check passing, without a token', async () => {
    const reply = await api(adminOf(proxy), 'GET', '/readyz', { token: null });
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({
      status: 'ready',
      checks: { upstream: { ok: true }, policy: { ok: true, loaded: 1 }, catalog: { ok: true }, audit: { ok: true, status: 'ok' } },
    });
    expect(reply.headers.get('cache-control')).toBe('no-store');
  });

  test('/readyz reports the heap against its limit; past admin.memory_high_water it is not ready, with the reason', async () => {
    expect((await api(adminOf(proxy), 'GET', '/readyz', { token: null })).body).toMatchObject({ checks: { memory: { ok: true, heap_used_mb: expect.any(Number), heap_limit_mb: expect.any(Number) } } });
    // A high-water mark below what any running process uses: the proxy reports itself full.
    const full = await startTestProxy(db.url, { admin: { memory_high_water: 0.0001 } });
    try {
      const reply = await api(adminOf(full), 'GET', '/readyz', { token: null });
      expect(reply.status).toBe(503);
      expect(reply.body).toMatchObject({ status: 'not ready', checks: { memory: { ok: false, error: 'memory high-water mark' }, upstream: { ok: true } } });
    } finally {
      await full.close();
    }
  });

  test('/version gives the version, Node, policy names and hashes, and which stores, without a token', async () => {
    const reply = await api(adminOf(proxy), 'GET', '/version', { token: null });
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({
      version: PACKAGE_VERSION,
      node: process.version,
      policies: [{ name: expect.any(String), hash: expect.stringMatching(/^[0-9a-f]{64}$/) }],
      audit: { status: 'ok', sinks: [{ name: expect.any(String), status: 'up' }] },
      rate_limit_store: { kind: 'memory', status: 'up' },
      approvals_store: 'memory',
    });
    expect(JSON.stringify(reply.body)).not.toMatch(/postgres:|password|127\.0\.0\.1/);
  });

  test('/metrics is Prometheus text with every metric, open by default; the proxy records into RunningProxy.metrics', async () => {
    proxy.metrics.statement({ kind: 'read', decision: 'refused', code: 'scan_budget_exceeded', analysisSeconds: 0.001 });
    await proxy.approvals.create(approvalRequest());
    const res = await scrape(proxy);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (const name of METRIC_NAMES) expect(text).toContain(`# TYPE ${name} `);
    const samples = parseExposition(text);
    expect(samples.get('ormai_statements_total{kind="read",decision="refused",code="scan_budget_exceeded"}')).toBe(1);
    expect(samples.get('ormai_budget_refusals_total{code="scan_budget_exceeded"}')).toBe(1);
    expect(samples.get('ormai_approvals_pending')).toBe(1);
    expect(samples.get('ormai_rate_limit_store_up')).toBe(1);
    expect(samples.get(`ormai_build_info{version="${PACKAGE_VERSION}",node="${process.version}"}`)).toBe(1);
  });

  test('statements are counted by their real kind and code, analysis time is observed, and refusals never count as upstream time', async () => {
    const upstream = async () => (await metricValue(proxy, 'ormai_upstream_duration_seconds_count')) ?? 0;
    const client = new Client({ connectionString: proxy.url() });
    await client.connect();
    try {
      await client.query('SELECT 1');
      const before = await upstream();
      // A refused write never reaches PostgreSQL.
      await client.query('UPDATE orders SET status = status WHERE id = 1').catch(() => undefined);
      expect(await upstream()).toBe(before);
      // A denied column does not exist for the agent: PostgreSQL answers 42703, as for any missing column.
      await client.query('SELECT api_secret FROM customers').catch(() => undefined);
      // A statement PostgreSQL cancels at the policy's timeout.
      await client.query('SELECT count(*) FROM generate_series(1, 400000000)').catch(() => undefined);
      expect(await upstream()).toBe(before + 2);
      const samples = parseExposition(await (await scrape(proxy)).text());
      // The quickstart policy enables no write for this test database's policy: refused as such, counted as a write.
      expect(samples.get('ormai_statements_total{kind="write",decision="refused",code="model_writes_disabled"}')).toBe(1);
      expect(samples.get('ormai_statements_total{kind="read",decision="error",code="42703"}')).toBe(1);
      expect(samples.get('ormai_statements_total{kind="read",decision="error",code="57014"}')).toBe(1);
      expect([...samples.keys()].filter((k) => k.startsWith('ormai_statements_total') && k.includes('code="other"'))).toEqual([]);
      expect(samples.get('ormai_rewrite_duration_seconds_count')).toBeGreaterThanOrEqual(5);
    } finally {
      await client.end();
    }
    expect(await waitFor(async () => (await metricValue(proxy, 'ormai_sessions_active')) === 0, 5000)).toBe(true);
  });

  test('a failed login is counted under the method it was asked for', async () => {
    const bad = new Client({ connectionString: proxy.url('tenant1-agent', 'wrong-password') });
    await expect(bad.connect()).rejects.toBeDefined();
    expect(await metricValue(proxy, 'ormai_logins_total{method="scram-sha-256",outcome="failure"}')).toBe(1);
    expect(await metricValue(proxy, 'ormai_logins_total{method="other",outcome="failure"}')).toBeUndefined();
  });

  test('the active sessions gauge follows a pg client connecting and disconnecting; the statement cache counts', async () => {
    expect(await metricValue(proxy, 'ormai_sessions_active')).toBe(0);
    const client = new Client({ connectionString: proxy.url() });
    await client.connect();
    try {
      await client.query('SELECT id FROM orders LIMIT 1');
      await client.query('SELECT id FROM orders LIMIT 1');
      expect(await metricValue(proxy, 'ormai_sessions_active')).toBe(1);
      expect(await metricValue(proxy, 'ormai_statement_cache_hits_total')).toBeGreaterThanOrEqual(1);
      expect(await metricValue(proxy, 'ormai_statement_cache_misses_total')).toBeGreaterThanOrEqual(1);
    } finally {
      await client.end();
    }
    expect(await waitFor(async () => (await metricValue(proxy, 'ormai_sessions_active')) === 0, 5000)).toBe(true);
  });
});

describe('admin.metrics_auth', () => {
  test('requires the bearer token for /metrics only', async () => {
    const proxy = await startTestProxy(db.url, { admin: { token_file: path.join(dir, 'admin-token'), metrics_auth: true } });
    try {
      expect((await scrape(proxy)).status).toBe(401);
      expect((await scrape(proxy, 'wrong-token-wrong-token')).status).toBe(401);
      expect((await scrape(proxy, TOKEN)).status).toBe(200);
      expect((await api(adminOf(proxy), 'GET', '/readyz', { token: null })).status).toBe(200);
      expect((await api(adminOf(proxy), 'GET', '/version', { token: null })).status).toBe(200);
    } finally {
      await proxy.close();
    }
  });

  test('a metrics-role identity scrapes /metrics and nothing else', async () => {
    const scraper = 'prometheus-scrape-token-0123456789';
    const sha = createHash('sha256').update(scraper).digest('hex');
    writeFileSync(path.join(dir, 'scraper-identities.yaml'), `identities:\n  - { name: prometheus, token_sha256: ${sha}, role: metrics }\n`);
    const proxy = await startTestProxy(db.url, { admin: { identities_file: path.join(dir, 'scraper-identities.yaml'), metrics_auth: true } });
    try {
      expect((await scrape(proxy, scraper)).status).toBe(200);
      const list = await api(adminOf(proxy), 'GET', '/approvals', { token: scraper });
      expect(list).toMatchObject({ status: 403, body: { error: { code: 'forbidden', message: expect.stringMatching(/prometheus.*may only read \/metrics/) } } });
      expect((await api(adminOf(proxy), 'POST', '/approvals/appr_x/approve', { token: scraper, body: {} })).status).toBe(403);
      expect((await api(adminOf(proxy), 'POST', '/audit/01J00000000000000000000000/rollback', { token: scraper, body: {} })).status).toBe(403);
    } finally {
      await proxy.close();
    }
  });

  test('without a token file, /metrics under metrics_auth answers 503 like the other token routes', async () => {
    const proxy = await startTestProxy(db.url, { admin: { metrics_auth: true } });
    try {
      expect((await scrape(proxy)).status).toBe(503);
    } finally {
      await proxy.close();
    }
  });
});

describe('readiness when the upstream goes away', () => {
  let relay: Relay;
  const viaRelay = () => {
    const url = new URL(db.url);
    url.hostname = '127.0.0.1';
    url.port = String(relay.port);
    return url.toString();
  };
  beforeEach(async () => {
    const target = new URL(db.url);
    relay = await startRelay(target.hostname, Number(target.port || 5432));
  });
  afterEach(() => relay.close());

  const readyz = (p: TestProxy) => api(adminOf(p), 'GET', '/readyz', { token: null });

  test('503 with the failing check while the upstream is unreachable, 200 again once it is back; no addresses leak', async () => {
    const proxy = await startTestProxy(viaRelay(), { upstream: { connect_timeout_ms: 500 } });
    try {
      expect((await readyz(proxy)).status).toBe(200);
      relay.setDown(true);
      relay.cut();
      expect(await waitFor(async () => (await readyz(proxy)).status === 503, 5000)).toBe(true);
      const down = await readyz(proxy);
      expect(down.body).toMatchObject({ status: 'not ready', checks: { upstream: { ok: false, error: 'unreachable' }, policy: { ok: true }, catalog: { ok: true } } });
      expect(JSON.stringify(down.body)).not.toContain(String(relay.port));
      // /version and /metrics keep answering while the database is down.
      expect((await api(adminOf(proxy), 'GET', '/version', { token: null })).status).toBe(200);
      expect((await scrape(proxy)).status).toBe(200);
      relay.setDown(false);
      expect(await waitFor(async () => (await readyz(proxy)).status === 200, 5000)).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  test('a proxy started before its database is not ready (catalog not loaded) until the database answers, and /readyz loads the catalog', async () => {
    relay.setDown(true);
    const proxy = await startTestProxy(viaRelay(), { upstream: { connect_timeout_ms: 500 } });
    try {
      const down = await readyz(proxy);
      expect(down.status).toBe(503);
      expect(down.body.checks).toMatchObject({ upstream: { ok: false }, catalog: { ok: false, error: 'not loaded' } });
      relay.setDown(false);
      expect(await waitFor(async () => (await readyz(proxy)).status === 200, 5000)).toBe(true);
      expect((await readyz(proxy)).body.checks.catalog).toMatchObject({ ok: true, version: 1 });
    } finally {
      await proxy.close();
    }
  });

  test('a closed relay (connection refused) is a 503 too', async () => {
    const proxy = await startTestProxy(viaRelay(), { upstream: { connect_timeout_ms: 500 } });
    try {
      await relay.close();
      relay.cut();
      expect(await waitFor(async () => (await readyz(proxy)).status === 503, 5000)).toBe(true);
    } finally {
      await proxy.close();
    }
  });
});

describe('the rate-limit store in /version and /metrics', () => {
  test('an unreachable Redis reads as kind redis, status down, and ormai_rate_limit_store_up 0', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((r) => server.close(r));
    const proxy = await startTestProxy(db.url, { store: { redis_url: `redis://127.0.0.1:${port}`, command_timeout_ms: 200 } });
    try {
      expect((await api(adminOf(proxy), 'GET', '/version', { token: null })).body.rate_limit_store).toEqual({ kind: 'redis', status: 'down' });
      expect(await metricValue(proxy, 'ormai_rate_limit_store_up')).toBe(0);
      // Reads are refused while the store is down (store.reads_when_unavailable: refuse): not ready, and why.
      const ready = await api(adminOf(proxy), 'GET', '/readyz', { token: null });
      expect(ready.status).toBe(503);
      expect(ready.body.checks.store).toEqual({ ok: false, kind: 'redis', status: 'down', error: 'store unavailable' });
    } finally {
      await proxy.close();
    }
  });

  test('with reads allowed while Redis is down, the proxy stays ready and /readyz says writes are refused', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((r) => server.close(r));
    const proxy = await startTestProxy(db.url, { store: { redis_url: `redis://127.0.0.1:${port}`, command_timeout_ms: 200, reads_when_unavailable: 'allow' } });
    try {
      const ready = await api(adminOf(proxy), 'GET', '/readyz', { token: null });
      expect(ready.status).toBe(200);
      expect(ready.body.checks.store).toEqual({ ok: true, kind: 'redis', status: 'down', writes: 'refused' });
    } finally {
      await proxy.close();
    }
  });
});

describe('readiness and metrics when the audit sink goes down', () => {
  test('within seconds /readyz is 503 naming the audit trail, the failures and the queue show in /metrics, writes are refused; back when the sink is', async () => {
    const { relay, url: sinkUrl } = await relayTo(db.url);
    const proxy = await startTestProxy(db.url, {
      policies: [path.resolve(__dirname, '..', 'fixtures', 'write-policy.yaml')],
      audit: { sinks: [{ type: 'postgres', url: sinkUrl, table: 'ormai_audit_health' }], durable_timeout_ms: 1000 },
    });
    const client = new Client({ connectionString: proxy.url() });
    await client.connect();
    try {
      await client.query('SELECT id FROM orders LIMIT 1');
      expect((await api(adminOf(proxy), 'GET', '/readyz', { token: null })).status).toBe(200);
      relay.cut();
      relay.setDown(true);
      const downAt = Date.now();
      // A read still runs (reads_when_unavailable: allow) and its event finds the sink gone.
      await client.query('SELECT id FROM orders LIMIT 1');
      expect(await waitFor(async () => (await api(adminOf(proxy), 'GET', '/readyz', { token: null })).status === 503, 5000)).toBe(true);
      const seconds = (Date.now() - downAt) / 1000;
      expect(seconds).toBeLessThan(5);
      const ready = await api(adminOf(proxy), 'GET', '/readyz', { token: null });
      expect(ready.body.checks.audit).toMatchObject({ ok: false, status: 'degraded', error: 'sink down', writes: 'refused' });
      expect(await waitFor(async () => ((await metricValue(proxy, 'ormai_audit_failures_total')) ?? 0) > 0, 5000)).toBe(true);
      expect(await metricValue(proxy, 'ormai_audit_queue_depth')).toBeGreaterThan(0);
      const version = await api(adminOf(proxy), 'GET', '/version', { token: null });
      expect(version.body.audit).toMatchObject({ status: 'degraded', sinks: [{ status: 'down' }] });
      await expect(client.query("/*reason='health test'*/ INSERT INTO orders (tenant_id, customer_id, total_cents, status) VALUES (1, 1, 5, 'new')")).rejects.toMatchObject({ code: '57P03' });
      relay.setDown(false);
      expect(await waitFor(async () => (await api(adminOf(proxy), 'GET', '/readyz', { token: null })).status === 200, 15_000)).toBe(true);
      expect(await waitFor(async () => (await metricValue(proxy, 'ormai_audit_queue_depth')) === 0, 15_000)).toBe(true);
    } finally {
      await client.end().catch(() => undefined);
      await proxy.close();
      await relay.close();
    }
  }, 60_000);
});
