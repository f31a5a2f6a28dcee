// The first-seen scenario (issue #12: "A first-seen 200-character query: ≤ 400 µs" of the proxy's
// CPU). N statements of realistic agent SQL, ~200 characters each, every one a shape of its own
// (they differ in their select lists, aliases, predicate structure, IN-list lengths, ORDER BY,
// LIMIT, joins and grouping, not only in their literals), so neither the analysis cache (keyed by
// text) nor the normalised-shape cache (src/analysis/shapes.ts) can answer them. A forked client
// (bench/first-seen-client.js) sends them with the simple protocol, one at a time, on one
// connection: the proxy runs in the bench's process, so process.cpuUsage() over a pass is the
// proxy's CPU (less an idle baseline of the same length). The same statements run directly
// against PostgreSQL (the tenant condition and the row cap written by hand) for latency, then a
// second time through the proxy (answered from the analysis cache), and the last TAIL of them a
// third time (from the audit trail's cache of redacted texts too). Warm-up: other statements of
// the same kind, distinct shapes too, first. BENCH_FIRSTSEEN_PROFILE: see PROFILE.
const path = require('node:path');
const fs = require('node:fs');
const { fork } = require('node:child_process');
const { normalizeSync, loadModule } = require('libpg-query');
const { messages } = require('./child-messages');

const N = Number(process.env.BENCH_FIRSTSEEN_N || 2000);
/**
 * First-seen statements of other shapes before the measured pass, in rounds of WARMUP_ROUND. V8
 * keeps compiling the analysis (TurboFan, on its worker threads) for thousands of statements:
 * after 400 warm-ups the measured pass still spent 250–300 µs a statement on other threads and
 * its CPU was 1.3–1.8 × that after 6,000 (same day, same machine). The rounds' figures are printed,
 * so a run shows whether its warm-up settled.
 */
const WARMUP = Number(process.env.BENCH_FIRSTSEEN_WARMUP || 6000);
const WARMUP_ROUND = 1000;
/** Direct statements before the direct pass: PostgreSQL's caches warm up in far fewer. */
const DIRECT_WARMUP = 400;
/**
 * Set: a third set of N fresh statements runs twice (first seen, then cached) under the
 * inspector's CPU profiler (the figures above stay unprofiled) and the top self-time functions of
 * each pass are printed; with a value ending in .cpuprofile the profiles are also written there
 * (name-first-seen.cpuprofile, name-cached.cpuprofile; open them in Chrome's DevTools).
 */
const PROFILE = process.env.BENCH_FIRSTSEEN_PROFILE;
/** The last this many of the N again: few enough for every cache (the audit trail's redacted texts included). */
const TAIL = Math.min(N, 500);
const GOAL_US = 400;
const TENANT = 7;
const USER = 'bench-tenant';
/** The policy's max_rows (bench/tenant-policy.yaml): the direct statements get it as their LIMIT when they have none. */
const MAX_ROWS = 200;

/** A small seeded PRNG (mulberry32): the same statements every run. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STATUSES = ['pending', 'paid', 'cancelled', 'refunded'];

/**
 * One generator of statements: each is { proxy, direct }, the agent's text and the same
 * statement as an application would write it for tenant 7.
 */
function generator(seed) {
  const r = prng(seed);
  const int = (lo, hi) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = (xs) => xs[Math.floor(r() * xs.length)];
  const chance = (p) => r() < p;
  const shuffle = (xs) => {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  };
  const some = (xs, lo, hi) => shuffle(xs).slice(0, int(lo, Math.min(hi, xs.length)));
  const distinctInts = (k, lo, hi) => {
    const s = new Set();
    while (s.size < k) s.add(int(lo, hi));
    return [...s];
  };

  const orderCols = (p) => [
    `${p}id`,
    `${p}customer_id`,
    `${p}total_cents`,
    `${p}status`,
    `${p}created_at`,
    `${p}total_cents / 100.0`,
    `round(${p}total_cents / 100.0, 2)`,
    `date_trunc('day', ${p}created_at)`,
    `${p}created_at::date`,
    `upper(${p}status)`,
    `extract(month FROM ${p}created_at)`,
  ];
  const customerCols = (p) => [`${p}id`, `${p}name`, `${p}email`, `${p}phone`, `lower(${p}name)`, `length(${p}name)`];
  /**
   * A select list: some of `cols`, in some order, some of them aliased (a cast always: it is
   * named after its column, and ORDER BY that column would be ambiguous).
   */
  const selectList = (cols, lo, hi) =>
    some(cols, lo, hi).map((c) => (c.includes('::') || chance(0.35) || (/[(/]/.test(c) && chance(0.7)) ? `${c} AS ${alias(['c', 'col', 'v', 'x'])}` : c));
  /** Output names of the statement being made, each used once (ORDER BY one used twice would be ambiguous). */
  let aliases = new Set();
  const alias = (stems) => {
    for (;;) {
      const name = `${pick(stems)}${int(1, 99)}`;
      if (!aliases.has(name)) {
        aliases.add(name);
        return name;
      }
    }
  };

  /** A predicate on orders (p: the alias prefix): { proxy, direct } (a subquery gets the tenant condition in `direct`). */
  const orderAtom = (p) => {
    const same = (text) => ({ proxy: text, direct: text });
    switch (int(0, 10)) {
      case 0:
        return same(`${p}total_cents ${pick(['>', '>=', '<', '<=', '<>'])} ${int(100, 99_000)}`);
      case 1: {
        const a = int(0, 60_000);
        return same(`${p}total_cents BETWEEN ${a} AND ${a + int(1000, 40_000)}`);
      }
      case 2:
        return same(`${p}status ${pick(['=', '<>'])} '${pick(STATUSES)}'`);
      case 3:
        return same(`${p}status ${chance(0.25) ? 'NOT ' : ''}IN (${some(STATUSES, 1, 4).map((s) => `'${s}'`).join(', ')})`);
      case 4:
        return same(`${p}customer_id IN (${distinctInts(int(1, 10), 100, 260).join(', ')})`);
      case 5:
        return same(`${p}created_at > now() - interval '${int(1, 365)} days'`);
      case 6:
        return same(`${p}created_at >= date '2026-0${int(1, 9)}-${String(int(1, 28)).padStart(2, '0')}'`);
      case 7:
        return same(`${p}id ${pick(['>', '<', '>=', '<='])} ${int(1, 100_000)}`);
      case 8: {
        const sub = `${p}customer_id IN (SELECT id FROM customers WHERE name LIKE 'Customer ${TENANT}-${int(1, 20)}%'`;
        return { proxy: `${sub})`, direct: `${sub} AND tenant_id = ${TENANT})` };
      }
      case 9:
        return same(`extract(month FROM ${p}created_at) ${pick(['=', '>=', '<=', '<>'])} ${int(1, 12)}`);
      default:
        return same(`${p}total_cents % ${int(2, 9)} = ${int(0, 1)}`);
    }
  };
  const customerAtom = (p) => {
    const same = (text) => ({ proxy: text, direct: text });
    switch (int(0, 4)) {
      case 0:
        return same(`${p}name LIKE 'Customer ${TENANT}-${int(1, 20)}%'`);
      case 1:
        return same(`${p}id IN (${distinctInts(int(1, 8), 100, 260).join(', ')})`);
      case 2:
        return same(`${p}name ${pick(['<', '>', '>=', '<='])} 'Customer ${TENANT}-${int(1, 20)}'`);
      case 3:
        return same(`${p}id ${pick(['>', '<', '<>'])} ${int(100, 260)}`);
      default:
        return same(`length(${p}name) ${pick(['>', '<', '='])} ${int(10, 14)}`);
    }
  };
  /** Atoms into a predicate: OR groups (parenthesised) of `sizes`, ANDed. */
  const predicate = (atoms, sizes) => {
    const render = (which) => {
      const groups = [];
      let i = 0;
      for (const size of sizes) {
        const parts = atoms.slice(i, i + size).map((a) => a[which]);
        groups.push(size > 1 ? `(${parts.join(' OR ')})` : parts[0]);
        i += size;
      }
      return groups.join(' AND ');
    };
    return { proxy: render('proxy'), direct: render('direct') };
  };
  const orderBy = (items) => {
    if (items.length === 0 || chance(0.2)) return '';
    const keys = some(items, 1, 2).map((k) => `${k}${pick(['', ' ASC', ' DESC', ' DESC NULLS LAST'])}`);
    return ` ORDER BY ${keys.join(', ')}`;
  };
  // Row lists with a small LIMIT (as an agent told of max_rows writes them: the rows relayed cost
  // the proxy CPU too, and are not what this scenario is about), groupings mostly without.
  const limit = (p = 1) => (chance(p) ? ` LIMIT ${int(1, 30)}${chance(0.15) ? ` OFFSET ${int(1, 50)}` : ''}` : '');

  /** A statement of one family, its predicate grown until the text is about `target` characters. */
  const statement = (target) => {
    aliases = new Set();
    const family = pick(['orders', 'orders', 'join', 'join', 'aggregate', 'customers']);
    let head;
    let tail;
    let tenantDirect;
    let atom;
    if (family === 'orders') {
      const cols = selectList(orderCols(''), 2, 5);
      head = `SELECT ${cols.join(', ')} FROM orders`;
      tail = `${orderBy(['id', 'total_cents', 'created_at', 'status', ...cols.map((_, i) => String(i + 1))])}${limit()}`;
      tenantDirect = `tenant_id = ${TENANT}`;
      atom = () => orderAtom('');
    } else if (family === 'customers') {
      const cols = selectList(customerCols(''), 2, 4);
      head = `SELECT ${cols.join(', ')} FROM customers`;
      tail = `${orderBy(['id', 'name', ...cols.map((_, i) => String(i + 1))])}${limit()}`;
      tenantDirect = `tenant_id = ${TENANT}`;
      atom = () => customerAtom('');
    } else if (family === 'join') {
      const [o, c] = chance(0.5) ? ['o', 'c'] : pick([['ord', 'cust'], ['o1', 'c1'], ['x', 'y']]);
      const cols = shuffle([...selectList(orderCols(`${o}.`), 1, 4), ...selectList(customerCols(`${c}.`), 1, 2)]);
      const join = chance(0.7) ? `JOIN customers ${c} ON ${c}.id = ${o}.customer_id` : `LEFT JOIN customers ${c} ON ${o}.customer_id = ${c}.id`;
      head = `SELECT ${cols.join(', ')} FROM orders ${o} ${join}`;
      tail = `${orderBy([`${o}.id`, `${o}.total_cents`, `${o}.created_at`, `${c}.name`, ...cols.map((_, i) => String(i + 1))])}${limit()}`;
      tenantDirect = `${o}.tenant_id = ${TENANT} AND ${c}.tenant_id = ${TENANT}`;
      atom = () => (chance(0.7) ? orderAtom(`${o}.`) : customerAtom(`${c}.`));
    } else {
      const byCustomer = chance(0.5);
      const key = byCustomer ? pick(['customer_id', 'date_trunc(\'month\', created_at)', 'created_at::date']) : pick(['status', 'upper(status)', 'extract(month FROM created_at)']);
      const keyAlias = chance(0.6) ? ` AS ${alias(['k', 'grp', 'bucket'])}` : '';
      const aggs = some(['count(*)', 'sum(total_cents)', 'avg(total_cents)', 'max(total_cents)', 'min(created_at)', 'count(DISTINCT customer_id)'], 1, 4).map((a) => `${a} AS ${alias(['n', 'a', 'm', 's'])}`);
      head = `SELECT ${key}${keyAlias}, ${aggs.join(', ')} FROM orders`;
      const having = chance(0.3) ? ` HAVING count(*) > ${int(1, 40)}` : '';
      tail = ` GROUP BY ${chance(0.5) ? '1' : key}${having}${orderBy(['1', '2', ...aggs.map((a) => a.slice(a.lastIndexOf(' ') + 1))])}${limit(0.3)}`;
      tenantDirect = `tenant_id = ${TENANT}`;
      atom = () => orderAtom('');
    }
    // Atoms in OR groups of 1–3, ANDed, until the text is about `target` characters.
    const atoms = [];
    const sizes = [];
    const length = () => head.length + 7 + predicate(atoms, sizes).proxy.length + tail.length;
    while ((atoms.length === 0 || length() < target) && atoms.length < 12) {
      const size = chance(0.3) ? int(2, 3) : 1;
      for (let i = 0; i < size; i++) atoms.push(atom());
      sizes.push(size);
    }
    const where = predicate(atoms, sizes);
    const proxy = `${head} WHERE ${where.proxy}${tail}`;
    const direct = `${head} WHERE ${tenantDirect} AND (${where.direct})${tail}${/ LIMIT \d+/.test(tail) ? '' : ` LIMIT ${MAX_ROWS}`}`;
    return { proxy, direct, family };
  };
  return () => statement(int(148, 180));
}

/**
 * `count` statements of ~200 characters, each of a normalised shape (libpg-query's normalize,
 * what pg_stat_statements shows and what shapes.ts keys by) no other has.
 */
async function statements(count, seed = 12) {
  await loadModule();
  const next = generator(seed);
  const seen = new Set();
  const out = [];
  let tries = 0;
  while (out.length < count) {
    if (++tries > count * 20) throw new Error(`first-seen: could not make ${count} distinct shapes`);
    const s = next();
    if (s.proxy.length < 150 || s.proxy.length > 250) continue;
    const shape = normalizeSync(s.proxy);
    if (seen.has(shape)) continue;
    seen.add(shape);
    out.push(s);
  }
  return out;
}

/** The client process's answers, in order, each checked to be of the type expected. */
function answers(child) {
  const next = messages(child, 'the first-seen client');
  return async (type) => {
    const m = await next();
    if (m.type === 'failed') throw new Error(`first-seen client: ${m.message}`);
    if (m.type !== type) throw new Error(`first-seen client: expected ${type}, got ${m.type}`);
    return m;
  };
}

/**
 * The main thread's CPU time, µs, from /proc (clock ticks of 10 ms: over a pass of thousands of
 * statements, a few µs each); NaN elsewhere. The rest of process.cpuUsage() is the other threads':
 * libuv's pool (the audit file's writes and fsync), V8's GC and compiler threads.
 */
function mainThreadUs() {
  try {
    const stat = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
  } catch {
    return NaN;
  }
}

/**
 * The main thread's garbage-collection pauses from now until stop(), as V8 reports them to
 * perf_hooks: µs in all, and the scavenges (minor) apart from the rest (major: mark-compact, its
 * incremental marking steps and weak callbacks).
 */
function gcPauses() {
  const { PerformanceObserver, constants } = require('node:perf_hooks');
  const out = { minorUs: 0, majorUs: 0, minor: 0, major: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        out.minorUs += e.duration * 1000;
        out.minor++;
      } else {
        out.majorUs += e.duration * 1000;
        out.major++;
      }
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return {
    // Entries are delivered asynchronously: one turn of the event loop lets the last ones in.
    stop: async () => {
      await new Promise((r) => setImmediate(r));
      observer.disconnect();
      return out;
    },
  };
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
const cpuUs = (u) => u.user + u.system;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The inspector's CPU profiler in this process (the proxy's): start, and a stop that returns the profile. */
function startProfiler() {
  const inspector = require('node:inspector');
  const session = new inspector.Session();
  session.connect();
  const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
  return post('Profiler.enable')
    .then(() => post('Profiler.setSamplingInterval', { interval: 250 }))
    .then(() => post('Profiler.start'))
    .then(() => async () => {
      const { profile } = await post('Profiler.stop');
      session.disconnect();
      return profile;
    });
}

/** Self time per function (name, file, line), the largest first, as shares of the busy samples (not "(idle)"). */
function selfTimes(profile, top = 15) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  // The profiler's own calls (node:inspector: stopping it builds the profile) are left out.
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inspector = (id) => {
    for (let at = id; at !== undefined; at = parent.get(at)) if (byId.get(at).callFrame.url === 'node:inspector') return true;
    return false;
  };
  const self = new Map();
  let total = 0;
  profile.samples.forEach((id, i) => {
    if (inspector(id)) return;
    const dt = profile.timeDeltas[i] ?? 0;
    const f = byId.get(id).callFrame;
    // The main thread waiting (for the client, PostgreSQL, the thread pool) is not the proxy's CPU.
    if (f.functionName === '(idle)') return;
    const file = f.url ? f.url.replace(/^file:\/\//, '').replace(`${path.resolve(__dirname, '..')}/`, '') : '';
    const key = `${f.functionName || '(anonymous)'}  ${file}${file ? `:${f.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  return {
    totalMs: total / 1000,
    top: [...self.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([fn, us]) => ({ fn, ms: us / 1000, share: us / total })),
  };
}

/**
 * Runs the scenario: `url` is the bench database, `proxy` the in-process proxy (bench/ormai.yaml).
 * Returns what printFirstSeen prints.
 */
async function firstSeen(url, proxy, log) {
  const profiled = PROFILE ? N : 0;
  const all = await statements(WARMUP + N + profiled);
  const warm = all.slice(0, WARMUP);
  const measured = all.slice(WARMUP, WARMUP + N);
  const extra = all.slice(WARMUP + N);
  const viaProxy = `postgres://${USER}:bench@127.0.0.1:${proxy.port}/ormai_bench`;
  const child = fork(path.join(__dirname, 'first-seen-client.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = answers(child);
  try {
    await next('started');
    /** One pass over `texts` on a new connection: the client's figures and this process's CPU over it. */
    const pass = async (target, texts) => {
      child.send({ type: 'open', url: target, statements: texts });
      await next('ready');
      const gc = gcPauses();
      const cpu = process.cpuUsage();
      const main = mainThreadUs();
      const t = process.hrtime.bigint();
      child.send({ type: 'go' });
      const done = await next('done');
      const usage = process.cpuUsage(cpu);
      const mainUs = mainThreadUs() - main;
      const wallUs = Number(process.hrtime.bigint() - t) / 1e3;
      const pauses = await gc.stop();
      const used = cpuUs(usage);
      child.send({ type: 'close' });
      await next('closed');
      if (done.errorCount > 0) throw new Error(`first-seen: ${done.errorCount} of ${texts.length} statements failed, e.g. ${done.errors.slice(0, 3).map((e) => `${e.message} [${texts[e.index]}]`).join('; ')}`);
      const times = [...done.times].sort((a, b) => a - b);
      return { cpuUs: used, systemUs: usage.system, otherThreadsUs: used - mainUs, wallUs, p50: quantile(times, 0.5), p95: quantile(times, 0.95), rows: done.rows / texts.length, gc: pauses };
    };
    /** This process's CPU while the proxy idles: µs per ms of wall time. */
    const idleRate = async (ms) => {
      const cpu = process.cpuUsage();
      const t = process.hrtime.bigint();
      await sleep(ms);
      return cpuUs(process.cpuUsage(cpu)) / (Number(process.hrtime.bigint() - t) / 1e6);
    };
    const stats = () => proxy.server.cache.stats();
    log(`bench: first-seen: ${WARMUP} warm-up and ${N} measured statements, each a shape of its own`);
    // Direct: warm PostgreSQL up, then the measured set (latency only: its CPU is PostgreSQL's).
    await pass(url, warm.slice(0, DIRECT_WARMUP).map((s) => s.direct));
    const direct = await pass(url, measured.map((s) => s.direct));
    // Through the proxy: the warm-up set in rounds (first seen), its last round again (cached), then the measured set twice.
    const warmup = [];
    for (let i = 0; i < warm.length; i += WARMUP_ROUND) {
      const round = warm.slice(i, i + WARMUP_ROUND).map((s) => s.proxy);
      const p = await pass(viaProxy, round);
      warmup.push({ n: round.length, cpuUs: p.cpuUs / round.length, otherThreadsUs: p.otherThreadsUs / round.length });
    }
    await pass(viaProxy, warm.slice(-WARMUP_ROUND).map((s) => s.proxy));
    const texts = measured.map((s) => s.proxy);
    const s0 = stats();
    const first = await pass(viaProxy, texts);
    const s1 = stats();
    const cached = await pass(viaProxy, texts);
    const s2 = stats();
    // The audit trail keeps the redacted texts of ~1,000 statements (src/session/auditing.ts: 2,000
    // texts, the agent's and the forwarded one): over N statements the pass above redacts every
    // text again. The last TAIL again: both caches answer.
    const tailTexts = texts.slice(-TAIL);
    const tail = await pass(viaProxy, tailTexts);
    const s3 = stats();
    const idle = await idleRate(Math.max(1000, Math.min(first.wallUs / 1e3, 10_000)));
    const profiles = [];
    for (const kind of extra.length > 0 ? ['first-seen', 'cached'] : []) {
      const stop = await startProfiler();
      let p;
      let profile;
      try {
        p = await pass(viaProxy, extra.map((s) => s.proxy));
      } finally {
        profile = await stop();
      }
      if (PROFILE.endsWith('.cpuprofile')) {
        const file = PROFILE.replace(/\.cpuprofile$/, `-${kind}.cpuprofile`);
        fs.writeFileSync(file, JSON.stringify(profile));
        log(`bench: ${kind} CPU profile written to ${file}`);
      }
      profiles.push({ kind, ...selfTimes(profile), cpuPerStatement: p.cpuUs / extra.length });
    }
    const delta = (a, b) => ({ hits: b.hits - a.hits, misses: b.misses - a.misses, shapeHits: (b.shapeHits ?? 0) - (a.shapeHits ?? 0) });
    const families = {};
    for (const s of measured) families[s.family] = (families[s.family] ?? 0) + 1;
    return {
      n: N,
      warmup: WARMUP,
      warmupRounds: warmup,
      averageLength: texts.reduce((sum, t) => sum + t.length, 0) / N,
      minLength: Math.min(...texts.map((t) => t.length)),
      maxLength: Math.max(...texts.map((t) => t.length)),
      families,
      direct,
      first,
      cached,
      idle,
      firstStats: delta(s0, s1),
      cachedStats: delta(s1, s2),
      tail: { ...tail, n: tailTexts.length },
      tailStats: delta(s2, s3),
      totals: s3,
      example: texts[0],
      profiles,
    };
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      if (child.connected) child.disconnect();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
  }
}

function printFirstSeen(r) {
  const perStmt = (p) => p.cpuUs / (p.n ?? r.n);
  const net = (p) => (p.cpuUs - (r.idle * p.wallUs) / 1e3) / (p.n ?? r.n);
  const w = [46, 10, 10, 12, 12, 13, 13, 30];
  const line = (cols) => cols.map((c, i) => String(c).padEnd(w[i])).join(' ');
  const fam = Object.entries(r.families).map(([k, v]) => `${v} ${k}`).join(', ');
  console.log(
    `\nFirst-seen statements (issue #12: ≤ ${GOAL_US} µs of proxy CPU): ${r.n} statements of ${USER}, each a shape of its own ` +
      `(${fam}), ${r.averageLength.toFixed(0)} characters on average (${r.minLength}–${r.maxLength}), simple protocol, one at a time; ` +
      `after ${r.warmup} warm-up statements of other shapes`,
  );
  console.log(line(['pass', 'p50 ms', 'p95 ms', 'CPU/stmt µs', 'net of idle', 'of it kernel', 'other threads', 'GC pauses']));
  console.log(line(['direct PostgreSQL (tenant condition by hand)', (r.direct.p50 / 1e3).toFixed(3), (r.direct.p95 / 1e3).toFixed(3), '', '', '', '', '']));
  const row = (label, p) => {
    const n = p.n ?? r.n;
    const others = Number.isNaN(p.otherThreadsUs) ? '' : (p.otherThreadsUs / n).toFixed(0);
    const gc = `${((p.gc.minorUs + p.gc.majorUs) / n).toFixed(0)} (${p.gc.minor} minor, ${p.gc.major} major: ${(p.gc.majorUs / n).toFixed(0)})`;
    console.log(line([label, (p.p50 / 1e3).toFixed(3), (p.p95 / 1e3).toFixed(3), perStmt(p).toFixed(0), net(p).toFixed(0), (p.systemUs / n).toFixed(0), others, gc]));
  };
  if (r.warmupRounds.length > 0) {
    const rounds = r.warmupRounds;
    const fmt = (f) => rounds.map((x) => f(x).toFixed(0)).join(' → ');
    console.log(
      `warm-up, ${rounds.length} rounds of first-seen statements (${rounds.map((x) => x.n).join(', ')}): CPU/stmt ${fmt((x) => x.cpuUs)} µs, ` +
        `of it other threads (V8 compiling, GC) ${fmt((x) => x.otherThreadsUs)} µs`,
    );
  }
  row('proxy, first seen', r.first);
  row('proxy, same statements again (cached)', r.cached);
  row(`  the last ${r.tail.n} again (audit texts cached too)`, r.tail);
  console.log(
    `CPU = the bench process's (the proxy's) over the pass / its statements, all threads (kernel time and the threads other than the main one: parts of it); ` +
      `idle baseline ${r.idle.toFixed(2)} ms CPU per s, subtracted in "net"; ` +
      `rows per statement: ${r.direct.rows.toFixed(1)} direct, ${r.first.rows.toFixed(1)} proxy`,
  );
  const ok = r.firstStats.misses === r.n && r.firstStats.shapeHits === 0;
  console.log(
    `statement cache, first-seen pass: ${r.firstStats.misses} misses, ${r.firstStats.hits} hits, ${r.firstStats.shapeHits} shape hits` +
      ` (${ok ? 'every statement analysed afresh' : `NOT all first seen: expected ${r.n} misses and no shape hits`}); ` +
      `cached pass: ${r.cachedStats.hits} hits, ${r.cachedStats.misses} misses, ${r.cachedStats.shapeHits} shape hits; ` +
      `the last ${r.tail.n}: ${r.tailStats.hits} hits, ${r.tailStats.misses} misses`,
  );
  // src/session/auditing.ts keeps 20,000 redacted texts, two per statement.
  if (r.n > 10_000) {
    console.log(
      `the analysis cache answers the second pass, but the audit trail's redacted texts (20,000, two per statement) do not cover ${r.n} statements: ` +
        `there each text is redacted again (normalised and scanned)`,
    );
  }
  console.log(`first seen − the last ${r.tail.n} again: ${(net(r.first) - net(r.tail)).toFixed(0)} µs per statement (what analysing a new statement adds)`);
  const goal = net(r.first);
  console.log(`goal (issue #12): first-seen ≤ ${GOAL_US} µs: ${goal <= GOAL_US ? 'met' : 'NOT met'} (${goal.toFixed(0)} µs net of idle)`);
  console.log(`e.g.: ${r.example}`);
  for (const p of r.profiles) {
    console.log(`\nCPU profile, another ${r.n} statements ${p.kind === 'cached' ? 'again (cached)' : 'first seen'} (${p.cpuPerStatement.toFixed(0)} µs/stmt under the profiler; main thread busy ${p.totalMs.toFixed(0)} ms): top self time`);
    for (const t of p.top) console.log(`  ${(t.share * 100).toFixed(1).padStart(5)}%  ${t.ms.toFixed(0).padStart(6)} ms  ${t.fn}`);
  }
}

module.exports = { firstSeen, printFirstSeen, statements, startProfiler, selfTimes };
