// Compatibility workload for Drizzle: `drizzle-kit pull` (catalog introspection into a schema file), then drizzle-orm over node-postgres.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Pool } = require('pg');
const { drizzle } = require('drizzle-orm/node-postgres');
const { sql } = require('drizzle-orm');
const h = require('../harness');

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** Runs drizzle-kit pull into a temporary folder and returns the generated schema.ts text. */
function pull() {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'ormai-drizzle-'));
  try {
    const r = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'drizzle-kit'), ['pull', '--dialect', 'postgresql', '--url', h.env.url, '--out', out, '--introspect-casing', 'preserve'], {
      cwd: out,
      encoding: 'utf8',
      timeout: 60000,
    });
    const file = path.join(out, 'schema.ts');
    if (!fs.existsSync(file)) {
      const text = `${r.stdout}\n${r.stderr}`.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
      const line = text.split('\n').find((l) => /error|not allowed|does not exist/i.test(l)) ?? text.trim().split('\n').slice(-2).join(' ');
      throw new Error(`drizzle-kit pull wrote no schema (exit ${r.status}; it prints no error, see the refusals below): ${line.trim()}`);
    }
    return fs.readFileSync(file, 'utf8');
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

async function main() {
  const t = h.harness('drizzle', `drizzle-orm ${h.moduleVersion('drizzle-orm')}, drizzle-kit ${h.moduleVersion('drizzle-kit')}`);
  const { SQL, env } = h;
  const pool = new Pool({ connectionString: env.url, max: 2 });
  const db = drizzle(pool);
  try {
    if (!(await t.check('connect', async () => ((await db.execute(sql.raw(SQL.good))).rows[0].one === 1 ? 'SELECT 1' : 'no row')))) return;
    let schema = null;
    await t.check('introspect.pull', async () => {
      schema = pull();
      return `${schema.length} characters of schema.ts`;
    });
    // pgTable("name", { col: type("col") ... }) in the generated file.
    const tables = schema ? [...schema.matchAll(/pgTable\("([^"]+)"/g)].map((m) => m[1]) : null;
    await t.check('introspect.tables', async () => h.checkTables(tables ?? []));
    await t.check('leak.tables', async () => h.checkLeakTables(tables));
    const customerBlock = schema?.match(/pgTable\("customers", \{([\s\S]*?)\n\}/)?.[1] ?? '';
    // With --introspect-casing preserve each property is named as its column.
    const columns = [...customerBlock.matchAll(/^\s+(\w+):/gm)].map((m) => m[1]);
    await t.check('introspect.columns', async () => h.checkColumns(columns));
    await t.check('leak.columns', async () => h.checkLeakColumns(columns));
    await t.check('introspect.fks', async () => {
      h.assert(/foreignKey\(|references\(/.test(schema ?? ''), 'no foreign key in the pulled schema');
      return 'orders.customer_id → customers.id';
    });
    await t.check('params', async () => {
      const r = await db.execute(sql`SELECT id, name FROM customers WHERE id = ${1} AND name <> ${'x'}`);
      h.assert(r.rows.length === 1, `${r.rows.length} rows`);
      return JSON.stringify(r.rows[0]);
    });
    await t.check('tx.commit', async () => {
      const id = await db.transaction(async (tx) => (await tx.execute(sql.raw(SQL.insert))).rows[0].id);
      const n = (await db.execute(sql`SELECT count(*) AS n FROM orders WHERE id = ${id}`)).rows[0].n;
      h.assert(Number(n) === 1, `committed row not found (${n})`);
      return `order ${id} committed`;
    });
    await t.check('tx.rollback', async () => {
      let id = null;
      await db
        .transaction(async (tx) => {
          id = (await tx.execute(sql.raw(SQL.insert))).rows[0].id;
          tx.rollback();
        })
        .catch((e) => {
          if (!/rollback/i.test(e.message)) throw e;
        });
      const n = (await db.execute(sql`SELECT count(*) AS n FROM orders WHERE id = ${id}`)).rows[0].n;
      h.assert(Number(n) === 0, `rolled-back row still there (${n})`);
      return `order ${id} rolled back`;
    });
    await t.check('error.recover', async () => {
      let failed = null;
      await db.execute(sql.raw(SQL.bad)).catch((e) => (failed = e));
      h.assert(failed, 'the bad statement succeeded');
      h.assert((await db.execute(sql.raw(SQL.good))).rows[0].one === 1, 'no row after the error');
      return `${h.errorDetail(failed)}; then SELECT 1 ok`;
    });
    await t.check('rowcap', async () => h.checkRowcap((await db.execute(sql.raw(SQL.rowcap))).rows.length));
    await t.check('write.reason', async () => {
      const r = await db.execute(sql.raw(SQL.writeReason));
      h.assert(r.rowCount === 1, `${r.rowCount} rows updated`);
      return 'UPDATE 1';
    });
    await t.check('write.noreason', async () => `UPDATE ${(await db.execute(sql.raw(SQL.writeNoReason))).rowCount}`);
    await t.check('pool', async () => {
      const [a, b] = await Promise.all([db.execute(sql.raw(SQL.pool)), db.execute(sql.raw(SQL.pool))]);
      return `n=${a.rows[0].n}/${b.rows[0].n}`;
    });
  } finally {
    await pool.end().catch(() => undefined);
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
