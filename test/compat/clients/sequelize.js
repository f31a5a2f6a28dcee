// Compatibility workload for Sequelize (postgres dialect): describeTable/showAllTables/getForeignKeyReferencesForTable, models, transactions.
'use strict';
const { Sequelize, DataTypes, QueryTypes } = require('sequelize');
const h = require('../harness');

async function main() {
  const t = h.harness('sequelize', h.moduleVersion('sequelize'));
  const { SQL, env } = h;
  const notices = [];
  // Sequelize's defaults: it sets the session time zone on connect (SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE).
  const seq = new Sequelize(env.url, { logging: false, pool: { max: 2, min: 0 } });
  const Customer = seq.define('customer', { id: { type: DataTypes.INTEGER, primaryKey: true }, name: DataTypes.STRING, email: DataTypes.STRING }, { tableName: 'customers', timestamps: false });
  const qi = seq.getQueryInterface();
  try {
    if (!(await t.check('connect', async () => (await seq.authenticate(), 'authenticate()')))) return;
    let tables = null;
    await t.check('introspect.tables', async () => {
      tables = (await qi.showAllTables()).map((x) => (typeof x === 'string' ? x : x.tableName));
      return h.checkTables(tables);
    });
    await t.check('leak.tables', async () => h.checkLeakTables(tables));
    let columns = null;
    await t.check('introspect.columns', async () => {
      columns = Object.keys(await qi.describeTable('customers'));
      return h.checkColumns(columns);
    });
    await t.check('leak.columns', async () => h.checkLeakColumns(columns));
    await t.check('introspect.fks', async () => {
      const fks = await qi.getForeignKeyReferencesForTable('orders');
      h.assert(fks.some((f) => f.referencedTableName === 'customers'), `no foreign key to customers: ${JSON.stringify(fks)}`);
      return fks.map((f) => `${f.columnName} → ${f.referencedTableName}.${f.referencedColumnName}`).join(', ');
    });
    await t.check('introspect.indexes', async () => `${(await qi.showIndex('orders')).map((i) => i.name).join(', ')}`);
    await t.check('params', async () => {
      const rows = await Customer.findAll({ where: { id: 1 }, attributes: ['id', 'name'] });
      h.assert(rows.length === 1, `${rows.length} rows`);
      const r = await seq.query(SQL.params, { bind: [1, 'x'], type: QueryTypes.SELECT });
      h.assert(r.length === 1, `${r.length} rows with bind`);
      return JSON.stringify(rows[0].toJSON());
    });
    await t.check('tx.commit', async () => {
      const id = await seq.transaction(async (tx) => (await seq.query(SQL.insert, { transaction: tx, type: QueryTypes.SELECT }))[0].id);
      const [{ n }] = await seq.query(SQL.countById, { bind: [id], type: QueryTypes.SELECT });
      h.assert(Number(n) === 1, `committed row not found (${n})`);
      return `order ${id} committed`;
    });
    await t.check('tx.rollback', async () => {
      const tx = await seq.transaction();
      let id;
      try {
        id = (await seq.query(SQL.insert, { transaction: tx, type: QueryTypes.SELECT }))[0].id;
      } finally {
        await tx.rollback();
      }
      const [{ n }] = await seq.query(SQL.countById, { bind: [id], type: QueryTypes.SELECT });
      h.assert(Number(n) === 0, `rolled-back row still there (${n})`);
      return `order ${id} rolled back`;
    });
    await t.check('error.recover', async () => {
      let failed = null;
      await seq.query(SQL.bad).catch((e) => (failed = e));
      h.assert(failed, 'the bad statement succeeded');
      h.assert((await seq.query(SQL.good, { type: QueryTypes.SELECT }))[0].one === 1, 'no row after the error');
      return `${h.errorDetail(failed.parent ?? failed)}; then SELECT 1 ok`;
    });
    await t.check('rowcap', async () => h.checkRowcap((await seq.query(SQL.rowcap, { type: QueryTypes.SELECT })).length));
    await t.check('write.reason', async () => {
      const [, meta] = await seq.query(SQL.writeReason);
      h.assert(meta.rowCount === 1, `${meta.rowCount} rows updated`);
      return 'UPDATE 1';
    });
    await t.check('write.noreason', async () => `UPDATE ${(await seq.query(SQL.writeNoReason))[1].rowCount}`);
    await t.check('pool', async () => {
      const [a, b] = await Promise.all([seq.query(SQL.pool, { type: QueryTypes.SELECT }), seq.query(SQL.pool, { type: QueryTypes.SELECT })]);
      return `n=${a[0].n}/${b[0].n}`;
    });
    void notices;
  } finally {
    await seq.close().catch(() => undefined);
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
