// Compatibility workload for postgres.js (`postgres`): named prepared statements by default, cursors over portals.
'use strict';
const postgres = require('postgres');
const h = require('../harness');

async function main() {
  const t = h.harness('postgres', h.moduleVersion('postgres'));
  const { SQL, env } = h;
  const notices = [];
  const sql = postgres(env.url, { max: 1, onnotice: (n) => notices.push(n.message), connect_timeout: 10 });
  try {
    if (!(await t.check('connect', async () => ((await sql.unsafe(SQL.good))[0].one === 1 ? 'SELECT 1' : 'no row')))) return;
    await t.check('session.info', async () => JSON.stringify((await sql.unsafe(SQL.sessionInfo))[0]));
    let tables = null;
    await t.check('introspect.tables', async () => {
      tables = (await sql`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`).map((r) => r.table_name);
      return h.checkTables(tables);
    });
    await t.check('leak.tables', async () => h.checkLeakTables(tables ?? []));
    let columns = null;
    await t.check('introspect.columns', async () => {
      columns = (await sql`SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = ${'customers'} ORDER BY ordinal_position`).map((r) => r.column_name);
      return h.checkColumns(columns);
    });
    await t.check('leak.columns', async () => h.checkLeakColumns(columns ?? []));
    await t.check('params', async () => {
      const r = await sql.unsafe(SQL.params, [1, 'x']);
      h.assert(r.length === 1, `${r.length} rows`);
      const ty = await sql.unsafe(SQL.typed, [41, 'a', new Date('2024-01-02T03:04:05Z'), true, '1.50']);
      h.assert(ty[0].n === 42 && ty[0].b === true && ty[0].ts instanceof Date, JSON.stringify(ty[0]));
      return JSON.stringify(ty[0]);
    });
    await t.check('prepared', async () => {
      const a = await sql.unsafe(SQL.prepared, [1], { prepare: true });
      const b = await sql.unsafe(SQL.prepared, [2], { prepare: true });
      return `n=${a[0].n}, ${b[0].n}`;
    });
    await t.check('tx.commit', async () => {
      const id = await sql.begin(async (tx) => (await tx.unsafe(SQL.insert))[0].id);
      const n = (await sql.unsafe(SQL.countById, [id]))[0].n;
      h.assert(Number(n) === 1, `committed row not found (${n})`);
      return `order ${id} committed`;
    });
    await t.check('tx.rollback', async () => {
      let id = null;
      await sql
        .begin(async (tx) => {
          id = (await tx.unsafe(SQL.insert))[0].id;
          throw new Error('roll back');
        })
        .catch((e) => {
          if (e.message !== 'roll back') throw e;
        });
      const n = (await sql.unsafe(SQL.countById, [id]))[0].n;
      h.assert(Number(n) === 0, `rolled-back row still there (${n})`);
      return `order ${id} rolled back`;
    });
    await t.check('error.recover', async () => {
      let failed = null;
      await sql.unsafe(SQL.bad).catch((e) => (failed = e));
      h.assert(failed, 'the bad statement succeeded');
      const r = await sql.unsafe(SQL.good);
      h.assert(r[0].one === 1, 'no row after the error');
      return `${h.errorDetail(failed)}; then SELECT 1 ok`;
    });
    await t.check('cancel', async () => {
      const started = Date.now();
      const q = sql.unsafe(SQL.long);
      const p = q.then(() => null, (e) => e);
      await new Promise((r) => setTimeout(r, 500));
      await q.cancel();
      return h.checkCancelled(await p, started);
    });
    await t.check('rowcap', async () => {
      notices.length = 0;
      const r = await sql.unsafe(SQL.rowcap);
      return h.checkRowcap(r.length, notices);
    });
    await t.check('write.reason', async () => {
      const r = await sql.unsafe(SQL.writeReason);
      h.assert(r.count === 1, `${r.count} rows updated`);
      return 'UPDATE 1';
    });
    await t.check('write.noreason', async () => `UPDATE ${(await sql.unsafe(SQL.writeNoReason)).count}`);
    await t.check('cursor', async () => {
      // postgres.js reads in batches from one portal (Execute with a row limit) inside a transaction.
      let n = 0;
      let batches = 0;
      for await (const rows of sql.unsafe(SQL.cursor).cursor(20)) {
        n += rows.length;
        batches++;
      }
      h.assert(n === 50, `${n} rows`);
      return `${n} rows in ${batches} batches`;
    });
    await t.check('pool', async () => {
      const pool = postgres(env.url, { max: 2 });
      try {
        const [a, b] = await Promise.all([pool.unsafe(SQL.pool), pool.unsafe(SQL.pool)]);
        return `2 connections, n=${a[0].n}/${b[0].n}`;
      } finally {
        await pool.end({ timeout: 1 });
      }
    });
  } finally {
    await sql.end({ timeout: 1 }).catch(() => undefined);
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
