// Compatibility workload for node-postgres (`pg`): the driver the proxy's own tests use.
'use strict';
const { Client, Pool } = require('pg');
const Cursor = require('pg-cursor');
const h = require('../harness');

async function main() {
  const t = h.harness('pg', h.moduleVersion('pg'));
  const { SQL, env } = h;
  const notices = [];
  const c = new Client({ connectionString: env.url });
  c.on('notice', (n) => notices.push(n.message));
  if (!(await t.check('connect', async () => (await c.connect(), (await c.query(SQL.good)).rows[0].one === 1 ? 'SELECT 1' : 'no row')))) return c.end().catch(() => undefined);
  try {
    await workload(t, c, notices);
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function workload(t, c, notices) {
  const { SQL, env } = h;
  await t.check('session.info', async () => JSON.stringify((await c.query(SQL.sessionInfo)).rows[0]));

  let tables = null;
  await t.check('introspect.tables', async () => {
    const r = await c.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'");
    tables = r.rows.map((x) => x.table_name);
    return h.checkTables(tables);
  });
  await t.check('leak.tables', async () => h.checkLeakTables(tables ?? []));
  let columns = null;
  await t.check('introspect.columns', async () => {
    const r = await c.query("SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position", ['customers']);
    columns = r.rows.map((x) => x.column_name);
    return h.checkColumns(columns);
  });
  await t.check('leak.columns', async () => h.checkLeakColumns(columns ?? []));
  await t.check('params', async () => {
    const r = await c.query(SQL.params, [1, 'x']);
    h.assert(r.rows.length === 1, `${r.rows.length} rows`);
    const ty = await c.query(SQL.typed, [41, 'a', new Date('2024-01-02T03:04:05Z'), true, '1.50']);
    h.assert(ty.rows[0].n === 42 && ty.rows[0].b === true && ty.rows[0].ts instanceof Date, JSON.stringify(ty.rows[0]));
    return JSON.stringify(ty.rows[0]);
  });
  await t.check('prepared', async () => {
    const a = await c.query({ name: 'compat_count', text: SQL.prepared, values: [1] });
    const b = await c.query({ name: 'compat_count', text: SQL.prepared, values: [2] });
    return `n=${a.rows[0].n}, ${b.rows[0].n}`;
  });
  await t.check('tx.commit', async () => {
    const id = await inTx(c, async () => (await c.query(SQL.insert)).rows[0].id, 'COMMIT');
    const n = (await c.query(SQL.countById, [id])).rows[0].n;
    h.assert(Number(n) === 1, `committed row not found (${n})`);
    return `order ${id} committed`;
  });
  await t.check('tx.rollback', async () => {
    const id = await inTx(c, async () => (await c.query(SQL.insert)).rows[0].id, 'ROLLBACK');
    const n = (await c.query(SQL.countById, [id])).rows[0].n;
    h.assert(Number(n) === 0, `rolled-back row still there (${n})`);
    return `order ${id} rolled back`;
  });
  await t.check('error.recover', async () => {
    let failed = null;
    await c.query(SQL.bad).catch((e) => (failed = e));
    h.assert(failed, 'the bad statement succeeded');
    await c.query('BEGIN');
    await c.query(SQL.bad).catch(() => undefined);
    await c.query('ROLLBACK');
    const r = await c.query(SQL.good);
    h.assert(r.rows[0].one === 1, 'no row after the error');
    return `${h.errorDetail(failed)}; then SELECT 1 ok`;
  });
  await t.check('cancel', async () => {
    const started = Date.now();
    const p = c.query(SQL.long).then(() => null, (e) => e);
    await new Promise((r) => setTimeout(r, 500));
    // pg cancels through a second connection carrying the backend key (CancelRequest).
    new Client({ connectionString: env.url }).cancel(c, c.activeQuery);
    const err = await p;
    return h.checkCancelled(err, started);
  });
  await t.check('rowcap', async () => {
    notices.length = 0;
    const r = await c.query(SQL.rowcap);
    return h.checkRowcap(r.rows.length, notices);
  });
  await t.check('write.reason', async () => {
    const r = await c.query(SQL.writeReason);
    h.assert(r.rowCount === 1, `${r.rowCount} rows updated`);
    return 'UPDATE 1';
  });
  await t.check('write.noreason', async () => {
    const r = await c.query(SQL.writeNoReason);
    return `UPDATE ${r.rowCount}`;
  });
  await t.check('cursor', async () => {
    // pg-cursor: one portal read in batches (Execute with a row limit, PortalSuspended in between).
    const cursor = c.query(new Cursor(SQL.cursor));
    const read = (n) => new Promise((resolve, reject) => cursor.read(n, (err, rows) => (err ? reject(err) : resolve(rows))));
    let n = 0;
    let batches = 0;
    for (let rows = await read(20); rows.length > 0; rows = await read(20)) {
      n += rows.length;
      batches++;
    }
    await new Promise((resolve) => cursor.close(resolve));
    h.assert(n === 50, `${n} rows`);
    return `${n} rows in ${batches} batches`;
  });
  await t.check('cursor.sql', async () => {
    const [a, b] = await inTx(
      c,
      async () => {
        await c.query(`DECLARE compat_cur CURSOR FOR ${SQL.cursor}`);
        const rows = [await c.query('FETCH 20 FROM compat_cur'), await c.query('FETCH ALL FROM compat_cur')];
        await c.query('CLOSE compat_cur');
        return rows;
      },
      'COMMIT',
    );
    h.assert(a.rows.length === 20 && b.rows.length === 30, `${a.rows.length}+${b.rows.length} rows`);
    return 'DECLARE/FETCH 20+30';
  });
  await t.check('insert.default', async () => {
    const r = await c.query("/*reason='compat'*/ INSERT INTO orders (customer_id, total_cents, status) VALUES (1, 100, DEFAULT) RETURNING status");
    h.assert(r.rows[0]?.status === 'pending', JSON.stringify(r.rows));
    return 'VALUES (…, DEFAULT) took the column default';
  });
  // What pools and frameworks send on their own between borrowers (pgbouncer, Rails, asyncpg's pool, Django).
  await t.check('sql.prepare', async () => {
    await c.query('PREPARE compat_q (int) AS SELECT count(*) AS n FROM orders WHERE customer_id = $1');
    const n = (await c.query('EXECUTE compat_q (1)')).rows[0].n;
    await c.query('DEALLOCATE compat_q');
    return `PREPARE/EXECUTE/DEALLOCATE, n=${n}`;
  });
  for (const [id, sql] of [
    ['reset.deallocate_all', 'DEALLOCATE ALL'],
    ['reset.discard_all', 'DISCARD ALL'],
    ['reset.reset_all', 'RESET ALL'],
    ['reset.close_all', 'CLOSE ALL'],
    ['reset.unlisten', 'UNLISTEN *'],
    ['set.timezone', "SET TIME ZONE 'UTC'"],
    ['set.application_name', "SET application_name = 'compat'"],
  ]) {
    await t.check(id, async () => (await c.query(sql)).command ?? sql);
  }
  await t.check('pool', async () => {
    const pool = new Pool({ connectionString: env.url, max: 2 });
    try {
      const [a, b] = await Promise.all([pool.query(SQL.pool), pool.query(SQL.pool)]);
      h.assert(pool.totalCount === 2, `${pool.totalCount} connections`);
      return `2 connections, n=${a.rows[0].n}/${b.rows[0].n}`;
    } finally {
      await pool.end();
    }
  });
}

/** BEGIN, `fn`, then `end` (COMMIT or ROLLBACK); a failure rolls back so the next check starts clean. */
async function inTx(c, fn, end) {
  await c.query('BEGIN');
  try {
    const out = await fn();
    await c.query(end);
    return out;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
