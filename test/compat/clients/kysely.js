// Compatibility workload for Kysely over node-postgres: its own catalog introspection, typed queries, transactions, streaming.
'use strict';
const { Kysely, PostgresDialect, sql } = require('kysely');
const { Pool } = require('pg');
const Cursor = require('pg-cursor');
const h = require('../harness');

async function main() {
  const t = h.harness('kysely', h.moduleVersion('kysely'));
  const { SQL, env } = h;
  const db = new Kysely({ dialect: new PostgresDialect({ pool: new Pool({ connectionString: env.url, max: 2 }), cursor: Cursor }) });
  try {
    if (!(await t.check('connect', async () => ((await sql`SELECT 1 AS one`.execute(db)).rows[0].one === 1 ? 'SELECT 1' : 'no row')))) return;
    let tables = null;
    await t.check('introspect.tables', async () => {
      tables = await db.introspection.getTables();
      return h.checkTables(tables.map((x) => x.name));
    });
    await t.check('leak.tables', async () => h.checkLeakTables((tables ?? []).map((x) => x.name)));
    const customers = () => (tables ?? []).find((x) => x.name === 'customers');
    await t.check('introspect.columns', async () => {
      h.assert(customers(), 'no customers table from introspection');
      return h.checkColumns(customers().columns.map((c) => c.name));
    });
    await t.check('leak.columns', async () => h.checkLeakColumns(customers()?.columns.map((c) => c.name) ?? []));
    await t.check('introspect.schemas', async () => `${(await db.introspection.getSchemas()).map((s) => s.name).join(', ')}`);
    await t.check('params', async () => {
      const r = await db.selectFrom('customers').select(['id', 'name']).where('id', '=', 1).where('name', '<>', 'x').execute();
      h.assert(r.length === 1, `${r.length} rows`);
      return JSON.stringify(r[0]);
    });
    await t.check('tx.commit', async () => {
      const id = await db.transaction().execute(async (tx) => (await sql.raw(SQL.insert).execute(tx)).rows[0].id);
      const n = (await db.selectFrom('orders').select((eb) => eb.fn.countAll().as('n')).where('id', '=', id).executeTakeFirst()).n;
      h.assert(Number(n) === 1, `committed row not found (${n})`);
      return `order ${id} committed`;
    });
    await t.check('tx.rollback', async () => {
      let id = null;
      await db
        .transaction()
        .execute(async (tx) => {
          id = (await sql.raw(SQL.insert).execute(tx)).rows[0].id;
          throw new Error('roll back');
        })
        .catch((e) => {
          if (e.message !== 'roll back') throw e;
        });
      const n = (await db.selectFrom('orders').select((eb) => eb.fn.countAll().as('n')).where('id', '=', id).executeTakeFirst()).n;
      h.assert(Number(n) === 0, `rolled-back row still there (${n})`);
      return `order ${id} rolled back`;
    });
    await t.check('error.recover', async () => {
      let failed = null;
      await sql.raw(SQL.bad).execute(db).catch((e) => (failed = e));
      h.assert(failed, 'the bad statement succeeded');
      h.assert((await sql.raw(SQL.good).execute(db)).rows[0].one === 1, 'no row after the error');
      return `${h.errorDetail(failed)}; then SELECT 1 ok`;
    });
    await t.check('rowcap', async () => h.checkRowcap((await sql.raw(SQL.rowcap).execute(db)).rows.length));
    await t.check('write.reason', async () => {
      const r = await sql.raw(SQL.writeReason).execute(db);
      h.assert(Number(r.numAffectedRows) === 1, `${r.numAffectedRows} rows updated`);
      return 'UPDATE 1';
    });
    await t.check('write.noreason', async () => `UPDATE ${(await sql.raw(SQL.writeNoReason).execute(db)).numAffectedRows}`);
    await t.check('cursor', async () => {
      let n = 0;
      for await (const _row of db.selectFrom(sql`generate_series(1, 50)`.as('g')).selectAll().stream(20)) n++;
      h.assert(n === 50, `${n} rows`);
      return `${n} rows streamed (pg-cursor)`;
    });
    await t.check('pool', async () => {
      const [a, b] = await Promise.all([sql.raw(SQL.pool).execute(db), sql.raw(SQL.pool).execute(db)]);
      return `n=${a.rows[0].n}/${b.rows[0].n}`;
    });
  } finally {
    await db.destroy().catch(() => undefined);
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
