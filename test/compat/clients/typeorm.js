// Compatibility workload for TypeORM (postgres driver over pg): an entity, the query runner's catalog introspection, transactions, streaming.
'use strict';
const { DataSource, EntitySchema } = require('typeorm');
const h = require('../harness');

const Customer = new EntitySchema({
  name: 'Customer',
  tableName: 'customers',
  columns: { id: { type: Number, primary: true, generated: true }, name: { type: String }, email: { type: String } },
});

async function main() {
  const t = h.harness('typeorm', h.moduleVersion('typeorm'));
  const { SQL, env } = h;
  const ds = new DataSource({ type: 'postgres', url: env.url, entities: [Customer], synchronize: false, logging: false, poolSize: 2 });
  try {
    if (!(await t.check('connect', async () => (await ds.initialize(), 'DataSource.initialize()')))) return;
    const qr = ds.createQueryRunner();
    let tables = null;
    await t.check('introspect.tables', async () => {
      tables = (await qr.getTables()).map((x) => x.name.split('.').pop());
      return h.checkTables(tables);
    });
    await t.check('leak.tables', async () => h.checkLeakTables(tables));
    let table = null;
    await t.check('introspect.columns', async () => {
      table = await qr.getTable('customers');
      h.assert(table, 'getTable(customers) returned nothing');
      return h.checkColumns(table.columns.map((c) => c.name));
    });
    await t.check('leak.columns', async () => h.checkLeakColumns(table?.columns.map((c) => c.name)));
    await t.check('introspect.fks', async () => {
      const orders = await qr.getTable('orders');
      h.assert(orders?.foreignKeys.some((f) => f.referencedTableName.endsWith('customers')), 'no foreign key to customers');
      return orders.foreignKeys.map((f) => `${f.columnNames} → ${f.referencedTableName}`).join(', ');
    });
    await t.check('params', async () => {
      const rows = await ds.getRepository('Customer').find({ where: { id: 1 }, select: { id: true, name: true } });
      h.assert(rows.length === 1, `${rows.length} rows`);
      const r = await ds.query(SQL.params, [1, 'x']);
      h.assert(r.length === 1, `${r.length} rows with parameters`);
      return JSON.stringify(rows[0]);
    });
    await t.check('tx.commit', async () => {
      const id = await ds.transaction(async (m) => (await m.query(SQL.insert))[0].id);
      const n = (await ds.query(SQL.countById, [id]))[0].n;
      h.assert(Number(n) === 1, `committed row not found (${n})`);
      return `order ${id} committed`;
    });
    await t.check('tx.rollback', async () => {
      const r = ds.createQueryRunner();
      await r.startTransaction();
      let id;
      try {
        id = (await r.query(SQL.insert))[0].id;
      } finally {
        await r.rollbackTransaction();
        await r.release();
      }
      const n = (await ds.query(SQL.countById, [id]))[0].n;
      h.assert(Number(n) === 0, `rolled-back row still there (${n})`);
      return `order ${id} rolled back`;
    });
    await t.check('error.recover', async () => {
      let failed = null;
      await ds.query(SQL.bad).catch((e) => (failed = e));
      h.assert(failed, 'the bad statement succeeded');
      h.assert((await ds.query(SQL.good))[0].one === 1, 'no row after the error');
      return `${h.errorDetail(failed.driverError ?? failed)}; then SELECT 1 ok`;
    });
    await t.check('rowcap', async () => h.checkRowcap((await ds.query(SQL.rowcap)).length));
    await t.check('write.reason', async () => {
      const r = await qr.query(SQL.writeReason, [], true);
      h.assert(r.affected === 1, `${r.affected} rows updated`);
      return 'UPDATE 1';
    });
    await t.check('write.noreason', async () => `UPDATE ${(await qr.query(SQL.writeNoReason, [], true)).affected}`);
    await t.check('pool', async () => {
      const [a, b] = await Promise.all([ds.query(SQL.pool), ds.query(SQL.pool)]);
      return `n=${a[0].n}/${b[0].n}`;
    });
    await qr.release();
  } finally {
    if (ds.isInitialized) await ds.destroy().catch(() => undefined);
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
