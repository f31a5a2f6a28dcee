// Compatibility workload for psql: the backslash commands an engineer (or an agent with a shell) uses, FETCH_COUNT, \x, cancel.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const h = require('../harness');

/** Runs psql (no ~/.psqlrc, stop at the first error) on a script; throws with psql's stderr when it fails. */
function psql(script, extra = []) {
  const r = spawnSync('psql', ['-X', '-v', 'ON_ERROR_STOP=1', ...extra, '-f', '-'], { input: script, encoding: 'utf8', env: process.env, timeout: 30000 });
  if (r.status !== 0) throw new Error((r.stderr || `exit ${r.status}`).trim().split('\n').slice(0, 2).join(' '));
  return r;
}

const words = (text) => new Set(text.match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? []);

function tablesIn(text) {
  return ['customers', 'orders', 'internal_notes'].filter((n) => words(text).has(n));
}

async function main() {
  const version = spawnSync('psql', ['--version'], { encoding: 'utf8' }).stdout.trim().replace(/^psql \(PostgreSQL\) /, '');
  const t = h.harness('psql', version);
  const { SQL } = h;
  if (!(await t.check('connect', async () => psql(`${SQL.good};`, ['-At']).stdout.trim()))) return;
  await t.check('session.info', async () => psql(`${SQL.sessionInfo};`, ['-At']).stdout.trim().slice(0, 120));
  let dt = null;
  await t.check('psql.dt', async () => {
    dt = psql('\\dt').stdout;
    return h.checkTables(tablesIn(dt));
  });
  await t.check('leak.tables', async () => h.checkLeakTables(dt && tablesIn(dt)));
  let d = null;
  await t.check('psql.d_table', async () => {
    d = psql('\\d customers').stdout;
    return h.checkColumns([...words(d)]).replace(/^customers: .*/, 'columns, indexes and referencing keys listed');
  });
  await t.check('leak.columns', async () => h.checkLeakColumns(d && [...words(d)]));
  await t.check('psql.d_plus', async () => {
    const out = psql('\\d+ customers\n\\d+ orders').stdout;
    h.assert(/Contact email/.test(out), 'column comment missing from \\d+');
    return 'columns with storage and comments';
  });
  await t.check('psql.d', async () => `${tablesIn(psql('\\d').stdout).join(', ')}`);
  let databases = null;
  await t.check('psql.l', async () => {
    databases = psql('\\l', ['-At', '-F', ' ']).stdout.trim().split('\n').map((l) => l.split(' ')[0]).filter((n) => n && !n.includes('='));
    return `${databases.length} databases`;
  });
  await t.check('leak.databases', async () => {
    h.assert(databases && databases.length > 0, 'the listing gave no databases to check');
    if (h.env.target === 'proxy') {
      const others = databases.filter((n) => n !== h.env.database);
      h.assert(others.length === 0, `other databases visible: ${others.join(', ')}`);
      return `only ${h.env.database}`;
    }
    h.assert(databases.includes('template1'), 'template1 should be visible directly');
    return 'other databases visible directly (the probe is meaningful)';
  });
  await t.check('psql.dn', async () => {
    const out = psql('\\dn').stdout;
    h.assert(/public/.test(out), 'schema public not listed');
    return 'public listed';
  });
  await t.check('psql.df', async () => `${psql('\\df').stdout.split('\n').length} lines`);
  for (const cmd of ['\\dt+', '\\di', '\\dv', '\\ds', '\\dT', '\\dT+', '\\dx', '\\dp', '\\dL', '\\conninfo']) {
    await t.check(`psql.${cmd.slice(1).replace('+', '_plus')}`, async () => `${psql(cmd).stdout.trim().split('\n').length} lines`);
  }
  await t.check('psql.x', async () => {
    const out = psql(`\\x\n${SQL.params.replace('$1', '1').replace('$2', "'x'")};`).stdout;
    h.assert(/-\[ RECORD 1 \]/.test(out), 'no expanded record');
    return 'expanded output';
  });
  await t.check('cursor', async () => {
    // FETCH_COUNT makes psql read through DECLARE … CURSOR / FETCH inside a transaction.
    const out = psql(`\\set FETCH_COUNT 20\n${SQL.cursor};`, ['-At']).stdout.trim().split('\n');
    h.assert(out.length === 50, `${out.length} rows`);
    return 'FETCH_COUNT 20: 50 rows';
  });
  await t.check('rowcap', async () => {
    const r = psql(`${SQL.rowcap};`, ['-At']);
    const notices = r.stderr.split('\n').filter((l) => /NOTICE/.test(l));
    return h.checkRowcap(r.stdout.trim().split('\n').length, notices);
  });
  await t.check('error.recover', async () => {
    const r = spawnSync('psql', ['-X', '-At', '-f', '-'], { input: `${SQL.bad};\n${SQL.good};\n`, encoding: 'utf8', env: process.env });
    h.assert(/ERROR/.test(r.stderr), 'the bad statement succeeded');
    h.assert(r.stdout.trim() === '1', `after the error: ${r.stdout.trim()}`);
    return `${r.stderr.split('\n')[0].slice(0, 120)}; then SELECT 1 ok`;
  });
  await t.check('tx.commit', async () => {
    const id = psql(`BEGIN;\n${SQL.insert};\nCOMMIT;`, ['-At', '-q']).stdout.trim();
    const n = psql(`SELECT count(*) FROM orders WHERE id = ${Number(id)};`, ['-At']).stdout.trim();
    h.assert(n === '1', `committed row not found (${n})`);
    return `order ${id} committed`;
  });
  await t.check('tx.rollback', async () => {
    const id = psql(`BEGIN;\n${SQL.insert};\nROLLBACK;`, ['-At', '-q']).stdout.trim();
    const n = psql(`SELECT count(*) FROM orders WHERE id = ${Number(id)};`, ['-At']).stdout.trim();
    h.assert(n === '0', `rolled-back row still there (${n})`);
    return `order ${id} rolled back`;
  });
  await t.check('write.reason', async () => psql(`${SQL.writeReason};`).stdout.trim());
  await t.check('write.noreason', async () => psql(`${SQL.writeNoReason};`).stdout.trim());
  await t.check('cancel', async () => {
    // psql sends a CancelRequest on SIGINT.
    const started = Date.now();
    const child = spawn('psql', ['-X', '-c', SQL.long], { env: process.env });
    let stderr = '';
    child.stderr.on('data', (x) => (stderr += x));
    await new Promise((r) => setTimeout(r, 800));
    child.kill('SIGINT');
    const code = await new Promise((r) => child.on('close', r));
    return h.checkCancelled(code === 0 ? null : new Error(stderr.trim().split('\n')[0] || `exit ${code}`), started);
  });
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
