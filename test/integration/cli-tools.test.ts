// psql and pgbench (when installed) against the proxy.
import { execFile, spawnSync } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';

const run = promisify(execFile);
const SELECT_ONLY = path.resolve(__dirname, '../../bench/pgbench-select-only.sql');
const has = (bin: string) => spawnSync(bin, ['--version']).status === 0;
const hasPsql = has('psql');
const hasPgbench = has('pgbench');
if (!hasPsql) process.stderr.write('SKIPPED: psql tests (psql not installed; CI installs postgresql-client)\n');
if (!hasPgbench) process.stderr.write('SKIPPED: pgbench tests (pgbench not installed; CI installs postgresql-contrib)\n');

let db: TestDatabase;
let proxy: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url);
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

const env = { ...process.env, PGCONNECT_TIMEOUT: '5', PGSSLMODE: 'prefer' };

(hasPsql ? test : test.skip)('psql runs queries and shows structured refusals', async () => {
  const ok = await run('psql', [proxy.url('tenant2-agent', 'tenant2-password'), '-X', '-At', '-c', 'SELECT name FROM customers ORDER BY id'], { env });
  expect(ok.stdout.trim().split('\n')).toEqual(['Globex Inc', 'Globex Shipping']);
  // psql's \dt reads pg_catalog, served through the policy: the visible tables only.
  const tables = await run('psql', [proxy.url(), '-X', '-At', '-c', '\\dt'], { env });
  expect(tables.stdout.trim().split('\n').map((l) => l.split('|')[1])).toEqual(['customers', 'orders']);
  // A catalog the proxy does not serve is refused, with a hint towards information_schema.
  const stats = await run('psql', [proxy.url(), '-X', '-c', 'SELECT * FROM pg_stats'], { env }).then(
    () => undefined,
    (e: { stderr: string }) => e,
  );
  expect(stats?.stderr).toMatch(/catalog_not_allowed/);
  expect(stats?.stderr).toMatch(/information_schema/);
  // The proxy runs in this process: psql must run asynchronously.
  const refused = await run('psql', [proxy.url(), '-X', '-v', 'VERBOSITY=verbose', '-c', 'DROP TABLE orders'], { env }).then(
    () => undefined,
    (e: { code?: number; stderr: string }) => e,
  );
  expect(refused).toBeDefined();
  expect(refused!.code).not.toBe(0);
  expect(refused!.stderr).toMatch(/statement_not_allowed/);
  expect(refused!.stderr).toMatch(/HINT:/);
});

(hasPgbench ? test : test.skip)('pgbench select-only runs through the proxy: simple, extended and prepared', async () => {
  await run('pgbench', ['-i', '-s', '1', '-q', db.url], { env });
  const bench = await startTestProxy(db.url, { policies: [path.resolve(__dirname, '../fixtures/pgbench-policy.yaml')] });
  try {
    for (const mode of ['simple', 'extended', 'prepared']) {
      const out = await run('pgbench', ['-n', '-f', SELECT_ONLY, '-D', 'scale=1', '-M', mode, '-c', '2', '-t', '200', bench.url()], { env });
      expect(out.stdout).toMatch(/number of transactions actually processed: 400\/400/);
      expect(out.stdout).toMatch(/number of failed transactions: 0/);
    }
  } finally {
    await bench.close();
  }
});
