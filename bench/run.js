// `npm run bench`: pgbench select-only and a multi-tenant analytic query, direct vs through the proxy, in one run,
// the index scenarios, writes with a reason, the proxy's CPU for first-seen statements, and the proxy's memory with 1,000 idle agent connections.
// Uses DATABASE_URL when set, otherwise an embedded PostgreSQL. Prints ratios (proxy / direct).
// `node bench/run.js [pgbench] [analytic] [lookups] [writes] [firstseen] [idle]` runs only the scenarios named (default: all).
const fs = require('node:fs');
const { execFile, spawnSync } = require('node:child_process');
const path = require('node:path');
const { promisify } = require('node:util');
const { Client } = require('pg');
// The proxies run in this process: with the command line's V8 setting (ORMAI_WASM_TIERUP=1 to compare).
require('../dist/analysis/wasm-tiering').keepParserOnBaselineCompiler();
const { startProxy } = require('../dist/app');
const { loadConfig } = require('../dist/config/load');
const { createLogger } = require('../dist/log');
const { seedDatabase } = require('../dist/demo/demo');
const { startPassThrough, startPgbouncer } = require('./baselines');
const { startEmbeddedPostgres } = require('../dist/demo/embedded');
const { idleConnections, printIdle, IDLE_TARGET, IDLE_MARGIN } = require('./idle');
const { firstSeen, printFirstSeen, startProfiler, selfTimes } = require('./first-seen');
const { rowSecurityScript } = require('../dist/policy/tooling/rls');

/** The role the read_scope: rls proxy logs in as: not a superuser, not the tables' owner (row-level security would not apply). */
const RLS_ROLE = 'ormai_bench_rls';

/**
 * A proxy with upstream.read_scope: rls on `url`'s database: the role, its privileges, and the
 * policies `ormai-proxy rls` prints, applied as the superuser.
 */
/**
 * Each in-process proxy writes its own audit file: two writers of one hash-chained file would
 * interleave their chains (`ormai-proxy audit verify` then finds it broken).
 */
function ownAuditFile(config, name) {
  config.raw.audit = { ...config.raw.audit, sinks: [{ type: 'file', path: `../.tmp/bench-audit-${name}.jsonl` }] };
}

async function startRowSecurityProxy(url) {
  const admin = new Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`DROP ROLE IF EXISTS ${RLS_ROLE}`);
    await admin.query(`CREATE ROLE ${RLS_ROLE} LOGIN PASSWORD 'bench'`);
    await admin.query(`GRANT TEMP, CONNECT ON DATABASE ormai_bench TO ${RLS_ROLE}`);
    await admin.query(`GRANT USAGE ON SCHEMA public TO ${RLS_ROLE}`);
    await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${RLS_ROLE}`);
    await admin.query(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${RLS_ROLE}`);
    const roleUrl = new URL(url);
    roleUrl.username = RLS_ROLE;
    roleUrl.password = 'bench';
    const config = loadConfig(path.join(__dirname, 'ormai.yaml'), { ...process.env, ORMAI_UPSTREAM_URL: roleUrl.toString(), ORMAI_LISTEN: '127.0.0.1:0', ORMAI_ADMIN_LISTEN: '127.0.0.1:0' });
    config.upstream.readScope = 'rls';
    ownAuditFile(config, 'rls');
    await admin.query((await rowSecurityScript(config)).sql);
    return await startProxy(config, createLogger('warn'));
  } finally {
    await admin.end();
  }
}

const SCENARIOS = ['pgbench', 'analytic', 'lookups', 'writes', 'firstseen', 'idle'];
const selected = process.argv.slice(2);
for (const name of selected) {
  if (!SCENARIOS.includes(name)) {
    console.error(`bench: unknown scenario "${name}"; usage: node bench/run.js [${SCENARIOS.join('] [')}] (default: all)`);
    process.exit(2);
  }
}
const runs = (name) => selected.length === 0 || selected.includes(name);

const run = promisify(execFile);
const DURATION_S = Number(process.env.BENCH_SECONDS || 10);
/**
 * Set: after each mode's measured runs, one more pgbench run through the proxy under the
 * inspector's CPU profiler (the figures above stay unprofiled); its top self-time functions are
 * printed, and with a value ending in .cpuprofile the profile is also written there
 * (name-simple.cpuprofile, name-prepared.cpuprofile).
 */
const PGBENCH_PROFILE = process.env.BENCH_PGBENCH_PROFILE;
/** pgbench's clients: issue #12 sets its throughput goal at 16. */
const CLIENTS = Number(process.env.BENCH_CLIENTS || 16);
/**
 * Rounds of the pgbench paths per mode, each round running direct, pgbouncer, the pass-through and
 * the proxy in turn; each path's ratio is taken against the direct run of its own round and the
 * medians are printed (with the range when there is more than one round).
 */
const ROUNDS = Math.max(1, Math.floor(Number(process.env.BENCH_ROUNDS) || 1));
/** Issue #12's goals for the pgbench paths: proxy CPU per statement, and the proxy's ratio to direct as a share of pgbouncer's. */
const GOAL_CPU_US = { prepared: 80, simple: 150 };
const GOAL_OF_PGBOUNCER = 0.75;
const ANALYTIC_ITERATIONS = Number(process.env.BENCH_ITERATIONS || 2000);
const TENANTS = 50;
const ORDERS_PER_TENANT = 2000;
// Large tenants for the index scenarios: 200,000 orders and 10,000 customers each.
const BIG_TENANTS = [101, 102, 103];
const BIG_ORDERS = Number(process.env.BENCH_BIG_ORDERS || 200_000);
const LOOKUPS = Number(process.env.BENCH_LOOKUPS || 500);

const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** One path over the rounds: median tps, ratio to its round's direct run and CPU per statement, with their texts (ranges when more than one round). */
function overRounds(rounds, path) {
  const ratios = rounds.map((r) => r[path].tps / r.direct.tps);
  const cpus = rounds.map((r) => r[path].cpuUs);
  const range = (xs, digits) => (xs.length > 1 ? ` (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})` : '');
  const ratio = median(ratios);
  const cpuUs = median(cpus);
  return { tps: median(rounds.map((r) => r[path].tps)), ratio, cpuUs, ratioText: `${ratio.toFixed(3)}${range(ratios, 3)}`, cpuText: `${cpuUs.toFixed(0)}${range(cpus, 0)}` };
}

/**
 * Issue #12's verdicts for one pgbench mode: the proxy's CPU per statement (prepared: the cached
 * path; simple: new literals each time), and, for prepared, its ratio to direct against 0.75 of
 * pgbouncer's, next to what the zero-work pass-through reaches in the same run.
 */
function goalLines(mode, bouncer, pass, proxied) {
  const verdict = (ok) => (ok ? 'met' : 'NOT met');
  const cpu = GOAL_CPU_US[mode];
  const out = [`goal (issue #12), -M ${mode}: proxy CPU ≤ ${cpu} µs a statement: ${verdict(proxied.cpuUs <= cpu)} (${proxied.cpuUs.toFixed(0)} µs; the pass-through ${pass.cpuUs.toFixed(0)} µs)`];
  if (mode === 'prepared' && bouncer) {
    const goal = GOAL_OF_PGBOUNCER * bouncer.ratio;
    out.push(
      `goal (issue #12), -M prepared, ${CLIENTS} clients: ratio to direct ≥ ${GOAL_OF_PGBOUNCER} × pgbouncer's = ${goal.toFixed(3)}: ${verdict(proxied.ratio >= goal)} (${proxied.ratio.toFixed(3)}; ` +
        `the zero-work Node pass-through reaches ${pass.ratio.toFixed(3)}, ${((pass.ratio / goal) * 100).toFixed(0)}% of the goal)`,
    );
  }
  return out;
}

/** The 50 tenants of 2,000 orders; with `big`, also the large tenants of the index scenarios. */
async function seedTenants(url, big = true) {
  const c = new Client({ connectionString: url });
  await c.connect();
  const large = `
    INSERT INTO customers (tenant_id, name, email, phone, api_secret)
      SELECT t, 'Big ' || t || '-' || i, 'big' || i || '@tenant' || t || '.example', NULL, NULL
      FROM unnest(ARRAY[${BIG_TENANTS.join(',')}]) t, generate_series(1, ${BIG_ORDERS / 20}) i;
    INSERT INTO orders (tenant_id, customer_id, total_cents, status, created_at)
      SELECT c.tenant_id, c.id, (random() * 100000)::int, 'paid', now() - random() * interval '365 days'
      FROM customers c, generate_series(1, 20) WHERE c.tenant_id = ANY (ARRAY[${BIG_TENANTS.join(',')}]);`;
  await c.query(`
    INSERT INTO customers (tenant_id, name, email, phone, api_secret)
      SELECT t, 'Customer ' || t || '-' || i, 'user' || i || '@tenant' || t || '.example', '555-' || lpad(i::text, 4, '0'), 'sk_' || md5(t || '-' || i)
      FROM generate_series(1, ${TENANTS}) t, generate_series(1, 20) i;
    INSERT INTO orders (tenant_id, customer_id, total_cents, status, created_at)
      SELECT c.tenant_id, c.id, (random() * 100000)::int, (ARRAY['pending','paid','cancelled','refunded'])[1 + (random() * 3)::int],
             now() - random() * interval '365 days'
      FROM customers c, generate_series(1, ${ORDERS_PER_TENANT / 20});${big ? large : ''}
    CREATE INDEX orders_customer_id_idx ON orders (customer_id);
    ANALYZE;`);
  await c.end();
}

/** Ids of tenant 101's orders and customers, to look up at random. */
async function bigIds(url) {
  const c = new Client({ connectionString: url });
  await c.connect();
  const ids = (sql) => c.query(sql).then((r) => r.rows.map((row) => Number(row.id)));
  const out = {
    orders: await ids(`SELECT id FROM orders WHERE tenant_id = ${BIG_TENANTS[0]} ORDER BY random() LIMIT ${LOOKUPS}`),
    customers: await ids(`SELECT id FROM customers WHERE tenant_id = ${BIG_TENANTS[0]} ORDER BY random() LIMIT ${LOOKUPS}`),
  };
  await c.end();
  return out;
}

/**
 * A scenario of LOOKUP_SCENARIOS on tenant 101 (200k orders): median and p95 latency of a prepared
 * statement, ms. `kind`: its parameter's values, ids of tenant 101's orders or customers, 'days'
 * (1–30) or 'none'.
 */
async function lookups(url, text, ids, kind, n) {
  const values = kind === 'none' ? () => [] : kind === 'days' ? (i) => [1 + (i % 30)] : (i) => [ids[kind][i % ids[kind].length]];
  return latencies(url, text, values, n ?? (kind in ids ? ids[kind].length : LOOKUPS));
}

/**
 * Median and p95 latency of `text` as a prepared statement on one connection, ms: 20 warm-up
 * runs, then `n` runs with `values(i)`. `rowCount`: what each run must report (a write's rows).
 */
async function latencies(url, text, values, n, rowCount) {
  const c = new Client({ connectionString: url });
  await c.connect();
  for (let i = 0; i < 20; i++) await c.query({ name: 'l', text, values: values(i) });
  const times = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    const r = await c.query({ name: 'l', text, values: values(i) });
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (rowCount !== undefined && r.rowCount !== rowCount) throw new Error(`bench: ${text} with ${values(i).join(', ')} changed ${r.rowCount} rows`);
  }
  await c.end();
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(times.length * 0.5)], p95: times[Math.floor(times.length * 0.95)] };
}

/**
 * The index scenarios on tenant 101: name, the agent's text, the same statement as an application
 * would write it for tenant 101 (the tenant condition by hand), the ids its parameter is drawn
 * from (or a fixed value), and how many runs (those that read the tenant's every row run fewer).
 */
const T = BIG_TENANTS[0];
const LOOKUP_SCENARIOS = [
  ['point lookup by id', 'SELECT * FROM orders WHERE id = $1', `SELECT * FROM orders WHERE id = $1 AND tenant_id = ${T}`, 'orders'],
  [
    'FK join, customer to its orders',
    'SELECT c.name, o.id, o.total_cents FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = $1',
    `SELECT c.name, o.id, o.total_cents FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = $1 AND o.tenant_id = ${T} AND c.tenant_id = ${T}`,
    'customers',
  ],
  [
    'FK join, order to its customer',
    'SELECT o.id, o.total_cents, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = $1',
    `SELECT o.id, o.total_cents, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = $1 AND o.tenant_id = ${T} AND c.tenant_id = ${T}`,
    'orders',
  ],
  [
    "aggregate, one customer's orders",
    'SELECT count(*), sum(total_cents), max(created_at) FROM orders WHERE customer_id = $1',
    `SELECT count(*), sum(total_cents), max(created_at) FROM orders WHERE customer_id = $1 AND tenant_id = ${T}`,
    'customers',
  ],
  [
    'aggregate, last N days by status',
    "SELECT status, count(*), sum(total_cents) FROM orders WHERE created_at > now() - $1 * interval '1 day' GROUP BY status",
    `SELECT status, count(*), sum(total_cents) FROM orders WHERE created_at > now() - $1 * interval '1 day' AND tenant_id = ${T} GROUP BY status`,
    'days',
    100,
  ],
  [
    'aggregate, the whole tenant by status',
    'SELECT status, count(*), avg(total_cents) FROM orders GROUP BY status',
    `SELECT status, count(*), avg(total_cents) FROM orders WHERE tenant_id = ${T} GROUP BY status`,
    'none',
    40,
  ],
  [
    'join aggregate, top customers of a week',
    "SELECT c.name, sum(o.total_cents) AS spent FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.created_at > now() - interval '7 days' GROUP BY c.name ORDER BY spent DESC LIMIT 10",
    `SELECT c.name, sum(o.total_cents) AS spent FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.created_at > now() - interval '7 days' AND o.tenant_id = ${T} AND c.tenant_id = ${T} GROUP BY c.name ORDER BY spent DESC LIMIT 10`,
    'none',
    100,
  ],
];
/**
 * The writes scenario: an agent's writes with their reason (the policy's require_reason),
 * prepared, each in its own implicit transaction, so every one waits for its audit event under
 * write_guarantee: durable (the default): its event is written and fsynced before PostgreSQL
 * commits. Per write: its name, the agent's text, the direct text (the tenant by hand), the
 * parameters of the i-th run over tenant 101's ids.
 */
const WRITE_SCENARIOS = [
  [
    'UPDATE by id',
    "/*reason='bench: order status'*/ UPDATE orders SET status = $1 WHERE id = $2",
    `/*reason='bench: order status'*/ UPDATE orders SET status = $1 WHERE id = $2 AND tenant_id = ${BIG_TENANTS[0]}`,
    (ids, i) => [i % 2 === 0 ? 'shipped' : 'paid', ids.orders[i % ids.orders.length]],
  ],
  [
    'INSERT, foreign key',
    "/*reason='bench: new order'*/ INSERT INTO orders (customer_id, total_cents, status) VALUES ($1, $2, 'new')",
    `/*reason='bench: new order'*/ INSERT INTO orders (tenant_id, customer_id, total_cents, status) VALUES (${BIG_TENANTS[0]}, $1, $2, 'new')`,
    (ids, i) => [ids.customers[i % ids.customers.length], 100 + i],
  ],
];

/** Median and p95 latency of a write (prepared), LOOKUPS runs with `values(ids, i)`, each changing one row, ms. */
async function writes(url, text, values, ids) {
  return latencies(url, text, (i) => values(ids, i), LOOKUPS, 1);
}

function pgbenchTps(stdout) {
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout) || /tps = ([\d.]+)/.exec(stdout);
  return m ? Number(m[1]) : NaN;
}

/** One more pgbench run through the proxy, under the CPU profiler (BENCH_PGBENCH_PROFILE). */
async function profiledPgbench(url, mode) {
  const stop = await startProfiler();
  let r;
  let profile;
  try {
    r = await pgbench(url, mode);
  } finally {
    profile = await stop();
  }
  if (PGBENCH_PROFILE.endsWith('.cpuprofile')) {
    const file = PGBENCH_PROFILE.replace(/\.cpuprofile$/, `-${mode}.cpuprofile`);
    fs.writeFileSync(file, JSON.stringify(profile));
    process.stderr.write(`bench: pgbench -M ${mode} CPU profile written to ${file}\n`);
  }
  return { ...selfTimes(profile), cpuUs: r.cpuUs, tps: r.tps };
}

/**
 * TPS of pgbench's select-only script (one statement per transaction), and this process's CPU
 * per statement over the run: pgbench is a process of its own, so through the proxy (which runs
 * in this process) that is the proxy's CPU per statement.
 */
async function pgbench(url, mode, cpuSeconds) {
  const script = path.join(__dirname, 'pgbench-select-only.sql');
  const cpu = process.cpuUsage();
  const before = cpuSeconds?.();
  const { stdout } = await run('pgbench', ['-n', '-f', script, '-D', 'scale=2', '-M', mode, '-c', String(CLIENTS), '-j', '2', '-T', String(DURATION_S), url], { maxBuffer: 1 << 24 });
  const used = process.cpuUsage(cpu);
  const tps = pgbenchTps(stdout);
  // Another process (pgbouncer): its own CPU time; else this process's, which hosts the proxy and the pass-through.
  const seconds = cpuSeconds ? cpuSeconds() - before : (used.user + used.system) / 1e6;
  return { tps, cpuUs: (seconds * 1e6) / (tps * DURATION_S) };
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
    // Every idle agent session holds an upstream connection.
    embedded = await startEmbeddedPostgres(runs('idle') ? { maxConnections: IDLE_TARGET + IDLE_MARGIN + 80 } : {});
    serverUrl = embedded.url;
  }
  const admin = new Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query('DROP DATABASE IF EXISTS ormai_bench WITH (FORCE)');
  await admin.end();
  let proxy;
  let fenced;
  let rls;
  let asyncWrites;
  try {
    const url = await seedDatabase(serverUrl, 'ormai_bench');
    // The first-seen scenario reads tenant 7 only: the large tenants only for the index scenarios.
    if (runs('analytic') || runs('lookups') || runs('writes') || runs('firstseen')) await seedTenants(url, runs('lookups') || runs('writes'));
    // The in-process proxies (bench/ormai.yaml's policies need pgbench's tables); the idle scenario starts its own.
    const inProcess = runs('pgbench') || runs('analytic') || runs('lookups') || runs('writes') || runs('firstseen');
    const hasPgbench = inProcess && spawnSync('pgbench', ['--version']).status === 0;
    if (hasPgbench) await run('pgbench', ['-i', '-q', '-s', '2', url], { maxBuffer: 1 << 24 });
    fs.mkdirSync(path.join(__dirname, '..', '.tmp'), { recursive: true });
    for (const f of ['bench-audit.jsonl', 'bench-audit-fence.jsonl', 'bench-audit-rls.jsonl', 'bench-audit-async.jsonl']) fs.rmSync(path.join(__dirname, '..', '.tmp', f), { force: true });
    if (inProcess) {
      const config = loadConfig(path.join(__dirname, 'ormai.yaml'), { ...process.env, ORMAI_UPSTREAM_URL: url, ORMAI_LISTEN: '127.0.0.1:0', ORMAI_ADMIN_LISTEN: '127.0.0.1:0' });
      proxy = await startProxy(config, createLogger('warn'));
      // The same proxy with the fenced read scope (upstream.read_scope: fence), for the index scenarios.
      const fenceConfig = loadConfig(path.join(__dirname, 'ormai.yaml'), { ...process.env, ORMAI_UPSTREAM_URL: url, ORMAI_LISTEN: '127.0.0.1:0', ORMAI_ADMIN_LISTEN: '127.0.0.1:0' });
      fenceConfig.upstream.readScope = 'fence';
      ownAuditFile(fenceConfig, 'fence');
      fenced = await startProxy(fenceConfig, createLogger('warn'));
      // And over PostgreSQL's row-level security (upstream.read_scope: rls).
      if (runs('lookups')) rls = await startRowSecurityProxy(url);
      // And one that acknowledges a write once its event is queued (audit.write_guarantee: async), to its own file.
      if (runs('writes')) {
        const asyncConfig = loadConfig(path.join(__dirname, 'ormai.yaml'), { ...process.env, ORMAI_UPSTREAM_URL: url, ORMAI_LISTEN: '127.0.0.1:0', ORMAI_ADMIN_LISTEN: '127.0.0.1:0' });
        asyncConfig.raw.audit = { ...asyncConfig.raw.audit, write_guarantee: 'async' };
        ownAuditFile(asyncConfig, 'async');
        asyncWrites = await startProxy(asyncConfig, createLogger('warn'));
      }
    }
    const via = (user, through = proxy) => `postgres://${user}:bench@127.0.0.1:${through.port}/ormai_bench`;
    const rows = [];
    const paths = [];
    const goals = [];
    const profiles = [];
    if (hasPgbench && runs('pgbench')) {
      const target = new URL(url);
      const pass = await startPassThrough(target.hostname, Number(target.port || 5432));
      const passUrl = new URL(url);
      passUrl.hostname = '127.0.0.1';
      passUrl.port = String(pass.port);
      const bouncer = await startPgbouncer(url, (m) => process.stderr.write(`${m}\n`));
      if (!bouncer) process.stderr.write('bench: SKIPPED pgbouncer (not installed, and not installable here)\n');
      try {
        for (const mode of ['simple', 'prepared']) {
          const rounds = [];
          for (let i = 0; i < ROUNDS; i++) {
            rounds.push({
              direct: await pgbench(url, mode),
              bouncer: bouncer && (await pgbench(bouncer.url, mode, bouncer.cpuSeconds)),
              pass: await pgbench(passUrl.toString(), mode),
              proxy: await pgbench(via('bench-pgbench'), mode),
            });
          }
          const direct = overRounds(rounds, 'direct');
          const measured = [
            ['pgbouncer (session mode)', bouncer && overRounds(rounds, 'bouncer')],
            ['zero-work Node pass-through', overRounds(rounds, 'pass')],
            ['OrmAI Proxy', overRounds(rounds, 'proxy')],
          ];
          paths.push([`-M ${mode}: direct PostgreSQL`, direct.tps.toFixed(0), '1.000', '']);
          for (const [name, r] of measured) if (r) paths.push([`-M ${mode}: ${name}`, r.tps.toFixed(0), r.ratioText, r.cpuText]);
          const proxied = measured[2][1];
          goals.push(goalLines(mode, measured[0][1], measured[1][1], proxied));
          rows.push([`pgbench select-only (-M ${mode}), tps`, direct.tps.toFixed(0), proxied.tps.toFixed(0), proxied.ratio.toFixed(3)]);
          rows.push([`  proxy CPU per statement (-M ${mode}), µs`, '', proxied.cpuUs.toFixed(0), '']);
          if (PGBENCH_PROFILE) profiles.push({ mode, ...(await profiledPgbench(via('bench-pgbench'), mode)) });
        }
      } finally {
        await pass.close();
        await bouncer?.close();
      }
    } else if (runs('pgbench')) {
      process.stderr.write('bench: SKIPPED pgbench (not installed)\n');
    }
    if (runs('analytic')) {
      const d = await analytic(url, ANALYTIC_DIRECT);
      const p = await analytic(via('bench-tenant'), ANALYTIC);
      rows.push(['analytic query (tenant 7 of 50), queries/s', d.qps.toFixed(0), p.qps.toFixed(0), (p.qps / d.qps).toFixed(3)]);
      rows.push(['analytic query p50 latency, ms', d.p50.toFixed(2), p.p50.toFixed(2), (p.p50 / d.p50).toFixed(3)]);
      rows.push(['analytic query p95 latency, ms', d.p95.toFixed(2), p.p95.toFixed(2), (p.p95 / d.p95).toFixed(3)]);
    }
    const ids = runs('lookups') || runs('writes') ? await bigIds(url) : undefined;
    const lookupRows = [];
    for (const [name, text, direct, kind, n] of ids && runs('lookups') ? LOOKUP_SCENARIOS : []) {
      const d = await lookups(url, direct, ids, kind, n);
      const v = await lookups(via('bench-big'), text, ids, kind, n);
      // The fenced form scans the tenant's 200k rows for each: fewer runs.
      const f = await lookups(via('bench-big', fenced), text, ids, kind, Math.min(40, n ?? LOOKUPS));
      const r = await lookups(via('bench-big', rls), text, ids, kind, n);
      lookupRows.push([name, d.p50.toFixed(2), v.p50.toFixed(2), (v.p50 / d.p50).toFixed(2), r.p50.toFixed(2), (r.p50 / d.p50).toFixed(2), f.p50.toFixed(2), (f.p50 / d.p50).toFixed(1)]);
    }
    const writeRows = [];
    for (const [name, text, direct, values] of ids && runs('writes') ? WRITE_SCENARIOS : []) {
      const d = await writes(url, direct, values, ids);
      const durable = await writes(via('bench-big'), text, values, ids);
      const queued = await writes(via('bench-big', asyncWrites), text, values, ids);
      for (const key of ['p50', 'p95']) {
        writeRows.push([`${name}, ${key}`, d[key].toFixed(2), durable[key].toFixed(2), (durable[key] / d[key]).toFixed(2), queued[key].toFixed(2), (queued[key] / d[key]).toFixed(2)]);
      }
    }
    // The proxy's CPU for statements it has not seen (its client in a process of its own).
    const first = runs('firstseen') ? await firstSeen(url, proxy, (m) => process.stderr.write(`${m}\n`)) : undefined;
    // Last: its proxy runs in a process of its own, with the in-process proxies idle.
    const idle = runs('idle') ? await idleConnections(url, (m) => process.stderr.write(`${m}\n`)) : undefined;
    const stats = proxy?.server.cache.stats();
    const width = [46, 12, 12, 8];
    const line = (cols) => cols.map((c, i) => String(c).padEnd(width[i])).join(' ');
    if (rows.length > 0) {
      console.log(`\nOrmAI Proxy benchmark (${DURATION_S} s per pgbench run, ${CLIENTS} clients, ${ANALYTIC_ITERATIONS} analytic queries)`);
      console.log(line(['measure', 'direct', 'proxy', 'ratio']));
      for (const r of rows) console.log(line(r));
    }
    if (paths.length > 0) {
      const pw = [46, 10, ROUNDS > 1 ? 22 : 8, 14];
      const pline = (cols) => cols.map((c, i) => String(c).padEnd(pw[i])).join(' ');
      const over = ROUNDS > 1 ? `; medians of ${ROUNDS} rounds, each ratio against its own round's direct run, ranges in parentheses` : '';
      console.log(`\npgbench select-only through each path (${CLIENTS} clients): tps, ratio to direct, CPU of the path per statement${over}`);
      console.log(pline(['path', 'tps', 'ratio', 'CPU/stmt, µs']));
      for (const r of paths) console.log(pline(r));
      for (const g of goals.flat()) console.log(g);
    }
    for (const p of profiles) {
      console.log(`\nCPU profile, pgbench -M ${p.mode} through the proxy once more (${p.cpuUs.toFixed(0)} µs/stmt, ${p.tps.toFixed(0)} tps under the profiler; main thread busy ${p.totalMs.toFixed(0)} ms): top self time`);
      for (const t of p.top) console.log(`  ${(t.share * 100).toFixed(1).padStart(5)}%  ${t.ms.toFixed(0).padStart(6)} ms  ${t.fn}`);
    }
    if (lookupRows.length > 0) {
      const lw = [40, 10, 14, 7, 10, 7, 10, 7];
      const lline = (cols) => cols.map((c, i) => String(c).padEnd(lw[i])).join(' ');
      console.log(`\nTenant ${BIG_TENANTS[0]} (one of ${BIG_TENANTS.length} with ${BIG_ORDERS} orders each): p50 latency, ms (prepared; read_scope barrier_views, rls and fence)`);
      console.log(lline(['scenario', 'direct', 'barrier views', 'ratio', 'rls', 'ratio', 'fence', 'ratio']));
      for (const r of lookupRows) console.log(lline(r));
    }
    if (writeRows.length > 0) {
      const ww = [26, 10, 16, 7, 16, 7];
      const wline = (cols) => cols.map((c, i) => String(c).padEnd(ww[i])).join(' ');
      console.log(`\nWrites with a reason, ${LOOKUPS} of each on tenant ${BIG_TENANTS[0]} (${BIG_ORDERS} orders, ${BIG_ORDERS / 20} customers), prepared, each its own transaction; latency, ms`);
      console.log(wline(['write', 'direct', 'proxy, durable', 'ratio', 'proxy, async', 'ratio']));
      for (const r of writeRows) console.log(wline(r));
      console.log('durable (the default): the write commits once its audit event is written and fsynced; async: once it is queued');
    }
    if (first) printFirstSeen(first);
    if (idle) printIdle(idle);
    if (rows.length > 0 || lookupRows.length > 0) console.log(`statement cache: ${stats.hits} hits, ${stats.misses} misses, ${stats.shapeHits ?? 0} answered from a shape's template`);
  } finally {
    await proxy?.close();
    await fenced?.close();
    await rls?.close();
    await asyncWrites?.close();
    const a = new Client({ connectionString: serverUrl });
    await a.connect();
    await a.query('DROP DATABASE IF EXISTS ormai_bench WITH (FORCE)');
    await a.query(`DROP ROLE IF EXISTS ${RLS_ROLE}`);
    await a.end();
    await embedded?.stop();
  }
}

main().catch((err) => {
  console.error(`bench failed: ${err.stack || err.message}`);
  process.exit(1);
});
