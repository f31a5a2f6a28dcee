#!/usr/bin/env node
// `npm run fuzz`: concurrent agents send mutated protocol messages and pathological SQL to an in-process proxy; the run then checks it survived intact.
//
//   node --expose-gc test/fuzz/run.js [--seconds N] [--messages N] [--seed S] [--clients C]
//        [--pathological F] [--max-rss-mb M] [--max-heap-growth-mb M] [--out DIR] [--replay FINDING.json]
//
// PostgreSQL: DATABASE_URL (a superuser URL; the run creates and drops its own database), else
// an embedded one. Exit 0 when every check holds, 1 otherwise, 2 on bad arguments.
const { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Client } = require('pg');
const pino = require('pino');
const { startProxy } = require('../../dist/app');
const { resolveConfig } = require('../../dist/config/load');
const { createLogger } = require('../../dist/log');
const { parserStats } = require('../../dist/analysis/parser-host');
const { parseStructuredFile } = require('../../dist/policy/load');
const { startEmbeddedPostgres } = require('../../dist/demo/embedded');
const { seedDatabase, QUICKSTART_DIR } = require('../../dist/demo/demo');
const checks = require('./checks');
const { runClient, USERS } = require('./client');
const { FuzzSession } = require('./wire');

const USAGE = 'usage: node --expose-gc test/fuzz/run.js [--seconds N] [--messages N] [--seed S] [--clients C] [--pathological F] [--max-rss-mb M] [--max-heap-growth-mb M] [--out DIR] [--replay FILE]';

function parseArgs(argv) {
  const opts = { seconds: 60, messages: Infinity, seed: String(Math.floor(Math.random() * 1e9)), clients: 4, pathological: 0.03, maxRssMb: 1024, maxHeapGrowthMb: 160, out: path.resolve('.tmp', 'fuzz') };
  const numeric = { '--seconds': 'seconds', '--messages': 'messages', '--clients': 'clients', '--pathological': 'pathological', '--max-rss-mb': 'maxRssMb', '--max-heap-growth-mb': 'maxHeapGrowthMb' };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    i++;
    if (numeric[flag]) {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0) throw new Error(`${flag} takes a number`);
      opts[numeric[flag]] = n;
    } else if (flag === '--seed') opts.seed = value;
    else if (flag === '--out') opts.out = path.resolve(value);
    else if (flag === '--replay') opts.replay = path.resolve(value);
    else throw new Error(`unknown flag ${flag}`);
  }
  if (opts.clients < 1 || opts.clients > 16) throw new Error('--clients takes 1 to 16');
  if (opts.pathological > 1) throw new Error('--pathological is a fraction of steps, 0 to 1');
  return opts;
}

/** A GC before each memory reading when the flag is there (or can be turned on). */
function gcFunction() {
  if (typeof global.gc === 'function') return global.gc;
  try {
    require('node:v8').setFlagsFromString('--expose_gc');
    return require('node:vm').runInNewContext('gc');
  } catch {
    return undefined;
  }
}

function memory(gc) {
  if (gc) gc(), gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed };
}
const mb = (n) => `${(n / 1048576).toFixed(1)} MB`;

async function startDatabase() {
  const server = process.env.DATABASE_URL ? { url: process.env.DATABASE_URL, stop: async () => undefined } : await startEmbeddedPostgres();
  const name = `ormai_fuzz_${process.pid}_${Date.now() % 1e6}`;
  const url = await seedDatabase(server.url, name);
  return {
    url,
    async stop() {
      const admin = new Client({ connectionString: server.url });
      await admin.connect().then(() => admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).catch(() => undefined);
      await admin.end().catch(() => undefined);
      await server.stop();
    },
  };
}

async function startFuzzProxy(dbUrl, dir) {
  const file = path.join(QUICKSTART_DIR, 'ormai.yaml');
  const auditFile = path.join(dir, 'audit.jsonl');
  const logFile = path.join(dir, 'proxy.log');
  const doc = { ...parseStructuredFile(readFileSync(file, 'utf8'), file), audit: { sinks: [{ type: 'file', path: auditFile }] } };
  const config = resolveConfig(doc, file, { ORMAI_UPSTREAM_URL: dbUrl, ORMAI_LISTEN: '127.0.0.1:0', ORMAI_ADMIN_LISTEN: '127.0.0.1:0' });
  const log = createLogger('warn', pino.destination({ dest: logFile, sync: true }));
  const proxy = await startProxy(config, log);
  return { proxy, auditFile, logFile };
}

/** Warning and error lines of the proxy's log, grouped by message; the first few errors whole. */
function logErrors(logFile) {
  const counts = {};
  const warnings = {};
  const samples = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n').filter(Boolean)) {
    const entry = JSON.parse(line);
    if (entry.level < 50) {
      warnings[entry.msg] = (warnings[entry.msg] ?? 0) + 1;
      continue;
    }
    counts[entry.msg] = (counts[entry.msg] ?? 0) + 1;
    if (samples.length < 5) samples.push(entry);
  }
  return { counts, warnings, samples };
}

async function replay(opts) {
  const finding = JSON.parse(readFileSync(opts.replay, 'utf8'));
  const db = await startDatabase();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-fuzz-'));
  const { proxy, logFile } = await startFuzzProxy(db.url, dir);
  try {
    const [user, password] = USERS[finding.tenant ?? 1];
    const session = await FuzzSession.connect(proxy.port, user, password, 10_000);
    for (const step of finding.recent ?? []) {
      process.stdout.write(`-- step ${step.step} (${step.kind}), ${step.hex.length / 2} bytes\n`);
      await session.send(Buffer.from(step.hex, 'hex'));
      for (let m = await session.next(Date.now() + 3000); m; m = await session.next(Date.now() + 300)) {
        process.stdout.write(`   ${m.name}${m.code ? ` ${m.severity} ${m.code} ${m.message}` : ''}\n`);
      }
      if (session.closed) process.stdout.write('   (connection closed by the proxy)\n');
    }
    session.close();
    process.stdout.write(`proxy log (errors):\n${JSON.stringify(logErrors(logFile), null, 2)}\n`);
  } finally {
    await proxy.close();
    await db.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.replay) {
    await replay(opts);
    return 0;
  }
  mkdirSync(opts.out, { recursive: true });
  const findings = [];
  const finding = (f) => {
    const record = { seed: opts.seed, ...f, time: new Date().toISOString() };
    findings.push(record);
    const file = path.join(opts.out, `finding-${opts.seed}-${findings.length}.json`);
    writeFileSync(file, JSON.stringify(record, null, 2));
    process.stderr.write(`fuzz: FINDING ${f.kind} (client ${f.client ?? '-'}, step ${f.step ?? '-'}): ${f.message}\n  saved to ${file}\n`);
  };
  const notes = [];
  const note = (n) => {
    notes.push(n.kind);
    if (notes.length <= 20) writeFileSync(path.join(opts.out, `note-${opts.seed}-${notes.length}.json`), JSON.stringify({ seed: opts.seed, ...n, time: new Date().toISOString() }, null, 2));
  };
  process.on('uncaughtException', (err) => finding({ kind: 'uncaught_exception', message: err.stack ?? String(err) }));
  process.on('unhandledRejection', (err) => finding({ kind: 'unhandled_rejection', message: err?.stack ?? String(err) }));

  const gc = gcFunction();
  const started = Date.now();
  process.stdout.write(`fuzz: seed ${opts.seed}, ${opts.clients} clients, ${opts.seconds} s${Number.isFinite(opts.messages) ? ` or ${opts.messages} messages` : ''}, PostgreSQL ${process.env.DATABASE_URL ? 'from DATABASE_URL' : 'embedded'}\n`);
  const db = await startDatabase();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-fuzz-'));
  const { proxy, auditFile, logFile } = await startFuzzProxy(db.url, dir);
  const results = [];
  const check = (name, ok, detail) => results.push({ name, ok, detail });
  let closed = false;
  try {
    const before = await checks.snapshot(db.url);
    const warm = await checks.freshSession(proxy, db.url); // loads the catalog and the parser before memory is read
    check('proxy answers before the run', warm.ok, warm.detail);
    const memStart = memory(gc);
    const stats = { steps: 0, messages: 0, bytes: 0, connections: 0, loginFailures: 0, proxyClosed: 0, abandoned: 0, leftAfterDamage: 0, byKind: {}, errorsByCode: {}, fatalByCode: {} };
    const deadline = Date.now() + opts.seconds * 1000;
    const shared = { stats, finding, note, stop: () => Date.now() >= deadline || stats.messages >= opts.messages };
    let peak = memStart;
    const sampler = setInterval(() => {
      const m = memory(gc);
      if (m.rss > peak.rss) peak = { ...peak, rss: m.rss };
      if (m.heapUsed > peak.heapUsed) peak = { ...peak, heapUsed: m.heapUsed };
    }, 10_000);
    await Promise.all(Array.from({ length: opts.clients }, (_, i) => runClient(i, { port: proxy.port, seed: opts.seed, pathological: opts.pathological }, shared)));
    clearInterval(sampler);
    const fuzzSeconds = (Date.now() - deadline + opts.seconds * 1000) / 1000;

    // Sessions end asynchronously after their sockets close.
    for (let i = 0; i < 50 && proxy.server.activeSessions > 0; i++) await new Promise((r) => setTimeout(r, 100));
    check('no session left open', proxy.server.activeSessions === 0, `${proxy.server.activeSessions} active sessions after every client left`);
    const fresh = await checks.freshSession(proxy, db.url).catch((e) => ({ ok: false, detail: e.message }));
    check('a new session answers correctly', fresh.ok, fresh.detail);
    const healthz = await checks.get(proxy.admin.port, '/healthz');
    const readyz = await checks.get(proxy.admin.port, '/readyz');
    check('/healthz and /readyz answer 200', healthz === 200 && readyz === 200, `/healthz ${healthz}, /readyz ${readyz}`);
    const memEnd = memory(gc);
    // What the bounded caches hold explains heap growth that is not a leak.
    const metricsText = await proxy.metrics.text();
    const cacheBytes = Number(/^ormai_statement_cache_bytes (\S+)$/m.exec(metricsText)?.[1] ?? NaN);
    const growth = memEnd.heapUsed - memStart.heapUsed;
    check(`memory within bounds (RSS ≤ ${opts.maxRssMb} MB, heap growth ≤ ${opts.maxHeapGrowthMb} MB)`, memEnd.rss <= opts.maxRssMb * 1048576 && growth <= opts.maxHeapGrowthMb * 1048576, `RSS ${mb(memStart.rss)} → ${mb(memEnd.rss)} (peak ${mb(peak.rss)}), heap ${mb(memStart.heapUsed)} → ${mb(memEnd.heapUsed)} (peak ${mb(peak.heapUsed)})${gc ? '' : ', no GC available'}`);

    await proxy.close(); // drains the audit queue
    closed = true;
    const after = await checks.snapshot(db.url);
    const audit = await checks.auditTrail(auditFile, proxy.audit.stats(), before, after);
    check('audit trail complete and chained', audit.ok, `${audit.events} events (${audit.sessions} sessions; statements ${JSON.stringify(audit.decisions)}), ${audit.rowsAdded} rows added, last hash ${audit.lastHash.slice(0, 16)}…${audit.problems.length ? '; ' + audit.problems.join('; ') : ''}`);
    const integrity = await checks.tenantIntegrity(db.url, before, after);
    check('tenant integrity', integrity.ok, integrity.ok ? 'rows present before the run unchanged; no cross-tenant reference' : integrity.problems.join('; '));
    const crashes = findings.filter((f) => ['uncaught_exception', 'unhandled_rejection'].includes(f.kind)).length;
    check('no crash (uncaught exception, unhandled rejection)', crashes === 0, `${crashes} crashes`);
    const internal = findings.filter((f) => f.kind === 'internal_error' || f.kind === 'XX000').length;
    check('no XX000 reached a client', internal === 0, `${internal} XX000 errors`);
    const other = findings.length - crashes - internal;
    check('no hang, unreadable answer or failed login', other === 0, `${other} findings`);

    const logs = logErrors(logFile);
    const parser = parserStats();
    const classes = {};
    for (const [code, n] of Object.entries(stats.errorsByCode)) classes[code.slice(0, 2)] = (classes[code.slice(0, 2)] ?? 0) + n;
    const lines = [
      '',
      `== fuzz summary (seed ${opts.seed}) ==`,
      `duration: ${fuzzSeconds.toFixed(1)} s of traffic, ${((Date.now() - started) / 1000).toFixed(1)} s in all`,
      `sent: ${stats.messages} messages in ${stats.steps} steps (${JSON.stringify(stats.byKind)}), ${mb(stats.bytes)}`,
      `connections: ${stats.connections} logged in, ${stats.proxyClosed} closed by the proxy (FATAL ${JSON.stringify(stats.fatalByCode)}), ${stats.abandoned} given up by the client while the proxy waited for bytes, ${stats.leftAfterDamage} closed by the client after damaged framing was answered, ${stats.loginFailures} failed logins`,
      `errors by SQLSTATE class: ${JSON.stringify(classes)}`,
      `errors by SQLSTATE: ${JSON.stringify(Object.fromEntries(Object.entries(stats.errorsByCode).sort((a, b) => b[1] - a[1])))}`,
      `crashes: ${crashes}; findings: ${findings.length}${findings.length ? ` (saved under ${opts.out})` : ''}`,
      `RSS: start ${mb(memStart.rss)}, end ${mb(memEnd.rss)}; heapUsed: start ${mb(memStart.heapUsed)}, end ${mb(memEnd.heapUsed)}, of which the statement cache ${mb(cacheBytes)} (bounded by analysis.cache_size)`,
      `parser: ${parser.recycled.failure} instances retired after a failure, ${parser.recycled.memory} for memory, ${parser.unavailable} statements refused while none was loaded; notes: ${notes.length}${notes.length ? ` (first 20 under ${opts.out})` : ''}`,
      `proxy log: errors ${JSON.stringify(logs.counts)}, warnings ${JSON.stringify(logs.warnings)}`,
      ...results.map((r) => `${r.ok ? 'ok  ' : 'FAIL'} ${r.name}: ${r.detail}`),
    ];
    process.stdout.write(lines.join('\n') + '\n');
    if (!results.every((r) => r.ok)) {
      process.stdout.write(`proxy log and audit file kept in ${opts.out} (proxy-${opts.seed}.log, audit-${opts.seed}.jsonl)\n`);
      writeFileSync(path.join(opts.out, `proxy-${opts.seed}.log`), readFileSync(logFile));
      writeFileSync(path.join(opts.out, `audit-${opts.seed}.jsonl`), readFileSync(auditFile));
    }
  } finally {
    if (!closed) await proxy.close().catch(() => undefined);
    await db.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return results.length > 0 && results.every((r) => r.ok) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`fuzz: ${err.message}\n${/needs a value|takes|unknown flag/.test(err.message) ? USAGE + '\n' : err.stack + '\n'}`);
    process.exit(/needs a value|takes|unknown flag/.test(err.message) ? 2 : 1);
  },
);
