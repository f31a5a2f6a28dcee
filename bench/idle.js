// The idle-connections scenario (issue #12: "1,000 idle agent connections: ≤ 150 MB RSS for the
// proxy"). The proxy runs in a child process (bench/idle-child.js), so that its RSS, read from
// /proc/<pid>/status, is not the bench's own (pgbench, drivers, the other proxies). Agents log in
// in batches, each runs one statement and stays connected; RSS is sampled before, after the
// logins, after a short idle wait and after a forced GC. Every agent session holds one upstream
// connection: against a server with too few max_connections the scenario runs with as many as
// fit and says so.
const fs = require('node:fs');
const path = require('node:path');
const { fork } = require('node:child_process');
const { Client } = require('pg');
const { messages } = require('./child-messages');

const TARGET = Number(process.env.BENCH_IDLE_CONNECTIONS || 1000);
/** Logins at once; the child's startup.max_connections is twice this. */
const BATCH = 50;
/** Connections left to the rest of the bench (and the proxy's own catalog and planner connections). */
const MARGIN = 20;
const SETTLE_MS = Number(process.env.BENCH_IDLE_SETTLE_MS || 5000);
/** A directory to write the proxy's heap snapshots to (after the warm-up, and idle), to see where the memory goes. */
const SNAPSHOTS = process.env.BENCH_IDLE_SNAPSHOTS;
/** Issue #12's goal: this many idle agent connections in at most GOAL_MB of RSS. */
const GOAL_CONNECTIONS = 1000;
const GOAL_MB = 150;
const USER = 'bench-tenant';
const STATEMENT = 'SELECT id, status, total_cents FROM orders ORDER BY id LIMIT 1';
const WARM_STATEMENTS = 500;

const MB = 1024 * 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** VmRSS of a process and its anonymous part (the rest is mapped files: the node binary, libraries), in bytes. */
function procRss(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon') };
}

/** How many agent sessions the server can take: its max_connections less what is reserved, in use, and the margin. */
async function room(url) {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    const max = Number((await c.query('SHOW max_connections')).rows[0].max_connections);
    const reserved = Number((await c.query('SHOW superuser_reserved_connections')).rows[0].superuser_reserved_connections);
    const inUse = Number((await c.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend'")).rows[0].n);
    return { max, reserved, inUse, fit: Math.max(0, max - reserved - inUse - MARGIN) };
  } finally {
    await c.end();
  }
}


/**
 * Runs the scenario against `url` (the bench database); returns what to print, or undefined
 * when the server has no room at all.
 */
async function idleConnections(url, log) {
  const space = await room(url);
  const count = Math.min(TARGET, space.fit);
  if (count < 1) {
    log(`bench: SKIPPED idle connections (max_connections=${space.max}, ${space.inUse} in use: no room left)`);
    return undefined;
  }
  fs.mkdirSync(path.join(__dirname, '..', '.tmp'), { recursive: true });
  fs.rmSync(path.join(__dirname, '..', '.tmp', 'bench-idle-audit.jsonl'), { force: true });
  const child = fork(path.join(__dirname, 'idle-child.js'), [], {
    // BENCH_IDLE_NODE_FLAGS: V8 and Node flags for the proxy's process, to compare settings (e.g. --max-semi-space-size=2).
    execArgv: ['--expose-gc', ...(process.env.BENCH_IDLE_NODE_FLAGS ?? '').split(' ').filter(Boolean)],
    env: { ...process.env, ORMAI_UPSTREAM_URL: url, BENCH_IDLE_MAX: String(count + 10), BENCH_IDLE_STARTUP: String(2 * BATCH) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = messages(child, "the proxy's process");
  const clients = [];
  const samples = [];
  try {
    const ready = await next();
    const via = `postgres://${USER}:bench@127.0.0.1:${ready.port}/ormai_bench`;
    const sample = async (kind, label, gc = false) => {
      child.send({ type: 'sample', gc });
      const inside = await next();
      samples.push({ kind, label, ...procRss(child.pid), ...inside });
    };
    const login = async () => {
      const c = new Client({ connectionString: via });
      c.on('error', () => undefined);
      clients.push(c);
      await c.connect();
      await c.query(STATEMENT);
      return c;
    };
    await sample('start', 'proxy started');
    // One session first: what the first login loads once (the catalog, the compiled policy, the statement's analysis) is not per connection,
    // nor what a proxy that has served statements has made (V8 optimises the parser's hot WebAssembly functions in the background).
    const warm = await login();
    for (let i = 0; i < WARM_STATEMENTS; i++) await warm.query(`${STATEMENT} OFFSET ${i}`);
    await warm.end();
    clients.pop();
    await sleep(2000);
    await sample('base', `after a warm-up session (${WARM_STATEMENTS + 1} statements), GC`, true);
    const snapshot = async (name) => {
      if (!SNAPSHOTS) return;
      child.send({ type: 'snapshot', file: path.resolve(SNAPSHOTS, name) });
      log(`bench: heap snapshot ${(await next()).file}`);
    };
    await snapshot('idle-before.heapsnapshot');
    const started = Date.now();
    const half = Math.ceil(count / 2 / BATCH) * BATCH;
    for (let i = 0; i < count; i += BATCH) {
      if (i === half) await sample('half', `${half} sessions logged in`);
      await Promise.all(Array.from({ length: Math.min(BATCH, count - i) }, login));
    }
    const loginSeconds = (Date.now() - started) / 1000;
    await sample('full', `${count} sessions logged in`);
    await sleep(SETTLE_MS);
    await sample('idle', `idle ${SETTLE_MS / 1000} s`);
    await sample('gc', 'after a forced GC', true);
    await snapshot(`idle-${count}.heapsnapshot`);
    return { count, target: TARGET, space, samples, loginSeconds };
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      if (child.connected) child.send({ type: 'close' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    }
  }
}

/** Prints the scenario's table (the shape of the bench's other tables). */
function printIdle(result) {
  const { count, target, space, samples, loginSeconds } = result;
  const at = (kind) => samples.find((s) => s.kind === kind);
  const [base, halfway, full, idle] = ['base', 'half', 'full', 'idle'].map(at);
  const w = [46, 9, 8, 8, 15, 12, 12];
  const line = (cols) => cols.map((c, i) => String(c).padEnd(w[i])).join(' ');
  const mb = (b) => (b / MB).toFixed(1);
  const kb = (b) => (b / 1024).toFixed(1);
  console.log(`\nIdle agent connections: ${count} sessions of ${USER} (SCRAM login, one statement each, then idle), the proxy alone in a child process`);
  console.log(line(['state', 'sessions', 'RSS MB', 'anon MB', 'heap used/total', 'RSS/conn KB', 'heap/conn KB']));
  for (const s of samples) {
    const n = s.sessions;
    const perConn = s.kind === 'start' || s.kind === 'base' || n === 0 ? ['', ''] : [kb((s.rss - base.rss) / n), kb((s.memory.heapUsed - base.memory.heapUsed) / n)];
    console.log(line([s.label, n, mb(s.rss), mb(s.anon), `${mb(s.memory.heapUsed)} / ${mb(s.memory.heapTotal)}`, ...perConn]));
  }
  const perConn = (idle.rss - base.rss) / count;
  console.log(`per connection = (RSS − RSS after the warm-up) / sessions; logins: ${count} in ${loginSeconds.toFixed(1)} s (batches of ${BATCH})`);
  if (halfway && full.sessions > halfway.sessions) {
    const n = full.sessions - halfway.sessions;
    console.log(`marginal, from ${halfway.sessions} to ${full.sessions} sessions: ${kb((full.rss - halfway.rss) / n)} KB RSS, ${kb((full.memory.heapUsed - halfway.memory.heapUsed) / n)} KB heap per connection`);
  }
  if (count < target) {
    console.log(
      `SCALED DOWN to ${count} of ${target} connections: the database has max_connections=${space.max} ` +
        `(${space.reserved} reserved, ${space.inUse} in use, ${MARGIN} left for the rest of the bench), and every agent session holds one upstream connection`,
    );
  }
  if (count < GOAL_CONNECTIONS) {
    // From few sessions the RSS difference is rough (the warm-up's freed memory is reused): at least the live heap a session adds.
    const collected = at('gc');
    const per = Math.max(perConn, (collected.memory.heapUsed - base.memory.heapUsed) / count);
    const extrapolated = base.rss + GOAL_CONNECTIONS * per;
    console.log(
      `EXTRAPOLATED to ${GOAL_CONNECTIONS} connections (not measured): ${mb(extrapolated)} MB RSS = ${mb(base.rss)} MB + ${GOAL_CONNECTIONS} × ${kb(per)} KB ` +
        `(the larger of RSS and live heap after GC per connection)`,
    );
    console.log(`goal (issue #12): ≤ ${GOAL_MB} MB RSS at ${GOAL_CONNECTIONS} connections: ${extrapolated / MB <= GOAL_MB ? 'met' : 'NOT met'} (extrapolated)`);
  } else {
    console.log(`goal (issue #12): ≤ ${GOAL_MB} MB RSS at ${GOAL_CONNECTIONS} connections: ${idle.rss / MB <= GOAL_MB ? 'met' : 'NOT met'} (${mb(idle.rss)} MB with ${count} idle)`);
  }
  console.log(`PostgreSQL's side (one backend process per agent session) is not counted.`);
}

module.exports = { idleConnections, printIdle, IDLE_TARGET: TARGET, IDLE_MARGIN: MARGIN };
