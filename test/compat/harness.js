// The Node side of the compatibility workload: one JSON line per check, the shared SQL, the expectations.
'use strict';

const target = process.env.COMPAT_TARGET || 'direct';
const env = {
  target,
  url: process.env.COMPAT_URL,
  host: process.env.COMPAT_HOST,
  port: Number(process.env.COMPAT_PORT),
  user: process.env.COMPAT_USER,
  password: process.env.COMPAT_PASSWORD,
  database: process.env.COMPAT_DATABASE,
  /** The policy's max_rows through the proxy; 0 directly (no cap). */
  maxRows: Number(process.env.COMPAT_MAX_ROWS || 0),
};

/** The statements every client sends, as close as its API allows. */
const SQL = {
  params: 'SELECT id, name FROM customers WHERE id = $1 AND name <> $2',
  typed: 'SELECT $1::int + 1 AS n, $2::text AS t, $3::timestamptz AS ts, $4::boolean AS b, $5::numeric AS d',
  prepared: 'SELECT count(*) AS n FROM orders WHERE customer_id = $1',
  insert: "/*reason='compat'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 100) RETURNING id",
  countById: 'SELECT count(*) AS n FROM orders WHERE id = $1',
  bad: 'SELECT * FROM no_such_table',
  good: 'SELECT 1 AS one',
  // What an agent asks first about where it is.
  sessionInfo: 'SELECT current_database() AS db, current_schema() AS schema, current_user AS usr, version() AS version',
  // Long enough to still be running when the cancel arrives, short of the proxy's statement timeout.
  long: 'SELECT count(*) FROM generate_series(1, 200000000) AS g',
  rowcap: 'SELECT g FROM generate_series(1, 1000) AS g',
  writeReason: "/*reason='compat'*/ UPDATE orders SET status = 'paid' WHERE id = 2",
  writeNoReason: "UPDATE orders SET status = 'paid' WHERE id = 2",
  pool: 'SELECT count(*) AS n FROM orders',
  cursor: 'SELECT g FROM generate_series(1, 50) AS g',
};

const CHECK_TIMEOUT_MS = 20000;

function errorDetail(err) {
  if (!err) return 'error';
  // ORMs wrap the driver's error (drizzle: "Failed query: …" with the DatabaseError as cause).
  if (err.cause && err.cause.message && !err.code) err = err.cause;
  const code = err.code || err.sqlState || (err.original && err.original.code) || (err.cause && err.cause.code) || '';
  const msg = (err.message || String(err)).split('\n')[0];
  return `${code ? code + ' ' : ''}${msg}`.slice(0, 300);
}

function harness(client, version) {
  const emit = (check, ok, detail) =>
    process.stdout.write(JSON.stringify({ client, version, target, check, ok, detail: String(detail ?? '').slice(0, 400) }) + '\n');
  return {
    env,
    SQL,
    emit,
    /** Runs one check: `fn` returns a detail string (pass) or throws (fail). */
    async check(id, fn) {
      let timer;
      try {
        const detail = await Promise.race([
          fn(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`timed out after ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
          }),
        ]);
        emit(id, true, detail);
        return true;
      } catch (err) {
        emit(id, false, errorDetail(err));
        return false;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

/** Tables seen by an introspection: the models must be there; through the proxy nothing else, directly the unlisted table too. */
function checkTables(names) {
  const set = new Set(names.map((n) => String(n).toLowerCase()));
  assert(set.has('customers') && set.has('orders'), `models missing from [${[...set].join(', ')}]`);
  return `${set.size} tables: ${[...set].sort().join(', ')}`;
}

function checkLeakTables(names) {
  assert(names && names.length > 0, 'the introspection gave no tables to check');
  const set = new Set(names.map((n) => String(n).toLowerCase()));
  if (target === 'proxy') {
    const extra = [...set].filter((n) => n !== 'customers' && n !== 'orders');
    assert(extra.length === 0, `tables outside the policy visible: ${extra.join(', ')}`);
    return 'only customers and orders';
  }
  assert(set.has('internal_notes'), 'the unlisted table internal_notes should be visible directly');
  return 'internal_notes visible directly (the probe is meaningful)';
}

function checkColumns(names) {
  const set = new Set(names.map((n) => String(n).toLowerCase()));
  assert(['id', 'tenant_id', 'name', 'email'].every((c) => set.has(c)), `customers columns incomplete: [${[...set].join(', ')}]`);
  return `customers: ${[...set].join(', ')}`;
}

function checkLeakColumns(names) {
  assert(names && names.length > 0, 'the introspection gave no columns to check');
  const set = new Set(names.map((n) => String(n).toLowerCase()));
  if (target === 'proxy') {
    assert(!set.has('api_secret'), 'denied column api_secret visible');
    return 'api_secret absent';
  }
  assert(set.has('api_secret'), 'api_secret should be visible directly');
  return 'api_secret visible directly (the probe is meaningful)';
}

/** The row cap: directly every row; through the proxy at most max_rows (and a NOTICE when the client exposes notices). */
function checkRowcap(count, notices) {
  if (env.maxRows > 0) {
    assert(count <= env.maxRows, `${count} rows, more than max_rows ${env.maxRows}`);
    if (notices !== undefined) assert(notices.some((n) => /max_rows|truncat/i.test(n)), `${count} rows but no truncation NOTICE (${notices.join(' | ')})`);
    return `${count} rows${notices ? `, NOTICE: ${notices.find((n) => /max_rows|truncat/i.test(n))}` : ''}`;
  }
  assert(count === 1000, `${count} rows, expected 1000`);
  return '1000 rows';
}

function checkCancelled(err, startedAt) {
  const ms = Date.now() - startedAt;
  assert(err, `the long query finished after ${ms} ms instead of being cancelled`);
  const detail = errorDetail(err);
  assert(/57014|cancel/i.test(detail), `failed otherwise: ${detail}`);
  assert(!/timeout/i.test(detail), `ended by the statement timeout, not the cancel: ${detail}`);
  return `${detail} after ${ms} ms`;
}

function moduleVersion(name) {
  // Read from node_modules: some packages do not export their package.json.
  const file = require('node:path').join(__dirname, '..', '..', 'node_modules', name, 'package.json');
  return JSON.parse(require('node:fs').readFileSync(file, 'utf8')).version;
}

module.exports = { harness, assert, env, SQL, errorDetail, checkTables, checkLeakTables, checkColumns, checkLeakColumns, checkRowcap, checkCancelled, moduleVersion };
