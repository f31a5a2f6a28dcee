// Compatibility workload for Knex (pg client): hasTable/columnInfo introspection, query builder, transactions.
'use strict';
const knexFactory = require('knex');
const h = require('../harness');

async function main() {
  const t = h.harness('knex', h.moduleVersion('knex'));
  const { SQL, env } = h;
  const knex = knexFactory({ client: 'pg', connection: env.url, pool: { min: 0, max: 2 } });
  try {
    if (!(await t.check('connect', async () => ((await knex.raw(SQL.good)).rows[0].one === 1 ? 'SELECT 1' : 'no row')))) return;
    let tables = null;
    await t.check('introspect.tables', async () => {
      const found = [];
      for (const name of ['customers', 'orders', 'internal_notes']) if (await knex.schema.hasTable(name)) found.push(name);
      tables = found;
      return h.checkTables(found);
    });
    await t.check('leak.tables', async () => h.checkLeakTables(tables));
    let columns = null;
    await t.check('introspect.columns', async () => {
      columns = Object.keys(await knex('customers').columnInfo());
      return h.checkColumns(columns);
    });
    await t.check('leak.columns', async () => h.checkLeakColumns(columns));
    await t.check('introspect.hasColumn', async () => {
      h.assert(await knex.schema.hasColumn('orders', 'status'), 'orders.status not found');
      return 'orders.status';
    });
    await t.check('params', async () => {
      const r = await knex('customers').select('id', 'name').where('id', 1).andWhereNot('name', 'x');
      h.assert(r.length === 1, `${r.length} rows`);
      const ty = await knex.raw('SELECT ?::int + 1 AS n, ?::text AS t, ?::timestamptz AS ts, ?::boolean AS b', [41, 'a', new Date('2024-01-02T03:04:05Z'), true]);
      h.assert(ty.rows[0].n === 42 && ty.rows[0].b === true, JSON.stringify(ty.rows[0]));
      return JSON.stringify(r[0]);
    });
    await t.check('tx.commit', async () => {
      const id = await knex.transaction(async (trx) => (await trx.raw(SQL.insert)).rows[0].id);
      const [{ n }] = await knex('orders').count({ n: '*' }).where('id', id);
      h.assert(Number(n) === 1, `committed row not found (${n})`);
      return `order ${id} committed`;
    });
    await t.check('tx.rollback', async () => {
      const trx = await knex.transaction();
      let id;
      try {
        id = (await trx.raw(SQL.insert)).rows[0].id;
      } finally {
        await trx.rollback();
      }
      const [{ n }] = await knex('orders').count({ n: '*' }).where('id', id);
      h.assert(Number(n) === 0, `rolled-back row still there (${n})`);
      return `order ${id} rolled back`;
    });
    await t.check('error.recover', async () => {
      let failed = null;
      await knex.raw(SQL.bad).catch((e) => (failed = e));
      h.assert(failed, 'the bad statement succeeded');
      h.assert((await knex.raw(SQL.good)).rows[0].one === 1, 'no row after the error');
      return `${h.errorDetail(failed)}; then SELECT 1 ok`;
    });
    await t.check('rowcap', async () => h.checkRowcap((await knex.raw(SQL.rowcap)).rows.length));
    await t.check('write.reason', async () => {
      const r = await knex.raw(SQL.writeReason);
      h.assert(r.rowCount === 1, `${r.rowCount} rows updated`);
      return 'UPDATE 1';
    });
    await t.check('write.noreason', async () => `UPDATE ${(await knex.raw(SQL.writeNoReason)).rowCount}`);
    await t.check('cursor', async () => {
      // knex streams through pg-query-stream (a pg-cursor portal read in batches).
      let n = 0;
      for await (const _row of knex.raw(SQL.cursor).stream({ batchSize: 20 })) n++;
      h.assert(n === 50, `${n} rows`);
      return `${n} rows streamed`;
    });
    await t.check('pool', async () => {
      const [a, b] = await Promise.all([knex.raw(SQL.pool), knex.raw(SQL.pool)]);
      return `n=${a.rows[0].n}/${b.rows[0].n}`;
    });
  } finally {
    await knex.destroy().catch(() => undefined);
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
