// `npm run bench`: pgbench select-only and a multi-tenant analytic query, direct vs through the proxy, in one run.
// Uses DATABASE_URL when set, otherwise an embedded PostgreSQL. Prints ratios (proxy / direct).
const fs = require('node:fs');
const { execFile, spawnSync } = require('node:child_process');
const path = require('node:path');
const { promisify } = require('node:util');
const { Client } = require('pg');
const { startProxy } = require('../dist/app');
const { loadConfig } = require('../dist/config/load');
const { createLogger } = require('../dist/log');
const { startEmbeddedPostgres } = require('../dist/demo/embedded');
const { seedDatabase } = require('../dist/demo/demo');

const run = promisify(execFile);
const DURATION_S = Number(process.env.BENCH_SECONDS || 10);
const ANALYTIC_ITERATIONS = Number(process.env.BENCH_ITERATIONS || 2000);
const TENANTS = 50;
const ORDERS_PER_TENANT = 2000;

async function seedTenants(url) {
  const c = new Client({ connectionString: url });
  await c.connect();
  await c.query(`
    INSERT INTO customers (tenant_id, name, email, phone, api_secret)
      SELECT t, 'Customer ' || t || '-' || i, 'user' || i || '@tenant' || t || '.example', '555-' || lpad(i::text, 4, '0'), 'sk_' || md5(t || '-' || i)
      FROM generate_series(1, ${TENANTS}) t, generate_series(1, 20) i;
    INSERT INTO orders (tenant_id, customer_id, total_cents, status, created_at)
      SELECT c.tenant_id, c.id, (random() * 100000)::int, (ARRAY['pending','paid','cancelled','refunded'])[1 + (random() * 3)::int],
             now() - random() * interval '365 days'
      FROM customers c, generate_series(1, ${ORDERS_PER_TENANT / 20});
    ANALYZE;`);
  await c.end();
}

function pgbenchTps(stdout) {
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout) || /tps = ([\d.]+)/.exec(stdout);
  return m ? Number(m[1]) : NaN;
}

async function pgbench(url, mode) {
  const script = path.join(__dirname, 'pgbench-select-only.sql');
  const { stdout } = await run('pgbench', ['-n', '-f', script, '-D', 'scale=2', '-M', mode, '-c', '4', '-j', '2', '-T', String(DURATION_S), url], { maxBuffer: 1 << 24 });
  return pgbenchTps(stdout);
}

const ANALYTIC = `SELECT date_trunc('month', o.created_at) AS month, o.status, count(*) AS orders, sum(o.total_cents) AS cents, count(DISTINCT o.customer_id) AS buyers
  FROM orders o JOIN customers c ON c.id = o.customer_id
  WHERE o.created_at > now() - interval '180 days'
  GROUP BY 1, 2 ORDER BY 1, 2`;
// Direct PostgreSQL gets the tenant predicate written by hand, as an application would.
const ANALYTIC_DIRECT = ANALYTIC.replace('WHERE o.created_at', 'WHERE o.tenant_id = 7 AND c.tenant_id = 7 AND o.created_at');

async function analytic(url, text) {
  const c = new Client({ connectionString: url });
  await c.connect();
  for (let i = 0; i < 50; i++) await c.query({ name: 'a', text }); // warm-up (and the proxy's statement cache)
  const times = [];
  const started = process.hrtime.bigint();
  for (let i = 0; i < ANALYTIC_ITERATIONS; i++) {
    const t = process.hrtime.bigint();
    await c.query({ name: 'a', text });
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  const total = Number(process.hrtime.bigint() - started) / 1e9;
  await c.end();
  times.sort((a, b) => a - b);
  return { qps: ANALYTIC_ITERATIONS / total, p50: times[Math.floor(times.length * 0.5)], p95: times[Math.floor(times.length * 0.95)] };
}

async function main() {
  let embedded;
  let serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    process.stderr.write('bench: starting an embedded PostgreSQL…\n');
    embedded = await startEmbeddedPostgres();
    serverUrl = embedded.url;
  }
  const admin = new Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query('DROP DATABASE IF EXISTS ormai_bench WITH (FORCE)');
  await admin.end();
  let proxy;
  try {
    const url = await seedDatabase(serverUrl, 'ormai_bench');
    await seedTenants(url);
    const hasPgbench = spawnSync('pgbench', ['--version']).status === 0;
    if (hasPgbench) await run('pgbench', ['-i', '-q', '-s', '2', url], { maxBuffer: 1 << 24 });
    fs.mkdirSync(path.join(__dirname, '..', '.tmp'), { recursive: true });
    fs.rmSync(path.join(__dirname, '..', '.tmp', 'bench-audit.jsonl'), { force: true });
    const config = loadConfig(path.join(__dirname, 'ormai.yaml'), { ...process.env, ORMAI_UPSTREAM_URL: url, ORMAI_LISTEN: '127.0.0.1:0', ORMAI_ADMIN_LISTEN: '127.0.0.1:0' });
    proxy = await startProxy(config, createLogger('warn'));
    const via = (user) => `postgres://${user}:bench@127.0.0.1:${proxy.port}/ormai_bench`;
    const rows = [];
    if (hasPgbench) {
      for (const mode of ['simple', 'prepared']) {
        const direct = await pgbench(url, mode);
        const proxied = await pgbench(via('bench-pgbench'), mode);
        rows.push([`pgbench select-only (-M ${mode}), tps`, direct.toFixed(0), proxied.toFixed(0), (proxied / direct).toFixed(3)]);
      }
    } else {
      process.stderr.write('bench: SKIPPED pgbench (not installed)\n');
    }
    const d = await analytic(url, ANALYTIC_DIRECT);
    const p = await analytic(via('bench-tenant'), ANALYTIC);
    rows.push(['analytic query (tenant 7 of 50), queries/s', d.qps.toFixed(0), p.qps.toFixed(0), (p.qps / d.qps).toFixed(3)]);
    rows.push(['analytic query p50 latency, ms', d.p50.toFixed(2), p.p50.toFixed(2), (p.p50 / d.p50).toFixed(3)]);
    rows.push(['analytic query p95 latency, ms', d.p95.toFixed(2), p.p95.toFixed(2), (p.p95 / d.p95).toFixed(3)]);
    const stats = proxy.server.cache.stats();
    const width = [46, 12, 12, 8];
    const line = (cols) => cols.map((c, i) => String(c).padEnd(width[i])).join(' ');
    console.log(`\nOrmAI Proxy benchmark (${DURATION_S} s per pgbench run, ${ANALYTIC_ITERATIONS} analytic queries)`);
    console.log(line(['measure', 'direct', 'proxy', 'ratio']));
    for (const r of rows) console.log(line(r));
    console.log(`statement cache: ${stats.hits} hits, ${stats.misses} misses`);
  } finally {
    await proxy?.close();
    const a = new Client({ connectionString: serverUrl });
    await a.connect();
    await a.query('DROP DATABASE IF EXISTS ormai_bench WITH (FORCE)');
    await a.end();
    await embedded?.stop();
  }
}

main().catch((err) => {
  console.error(`bench failed: ${err.stack || err.message}`);
  process.exit(1);
});
