// `ormai-proxy check` (lint against the live schema) and `ormai-proxy test` (policy regression suites), run as the built CLI against a real database.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '../support/db';

const CLI = path.resolve(__dirname, '../../dist/cli.js');
const QUICKSTART_DIR = path.resolve(__dirname, '../../config/quickstart');
const QUICKSTART_CONFIG = path.join(QUICKSTART_DIR, 'ormai.yaml');
const QUICKSTART_SUITE = path.join(QUICKSTART_DIR, 'policy-tests.yaml');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

let db: TestDatabase;
let dir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { ORMAI_UPSTREAM_URL: db.url };
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-tooling-'));
  writeFileSync(path.join(dir, 'users.yaml'), readFileSync(path.join(QUICKSTART_DIR, 'users.yaml')));
});
afterAll(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  await db?.drop();
});

describe('ormai-proxy test', () => {
  test('the shipped quickstart suite passes against the demo seed', async () => {
    const run = await cli(['test', '--config', QUICKSTART_CONFIG, QUICKSTART_SUITE], env);
    expect(run.stderr).toBe('');
    const lines = run.stdout.trim().split('\n');
    const summary = lines.pop()!;
    expect(lines.length).toBeGreaterThanOrEqual(15);
    for (const line of lines) expect(line).toMatch(/^ok {3}\S/);
    expect(summary).toBe(`${lines.length} cases: ${lines.length} passed, 0 failed`);
    expect(run.code).toBe(0);
    // Nothing was written: the dry run and the refused writes left the seed alone.
    expect(await db.query('SELECT count(*)::int AS n FROM orders')).toEqual([{ n: 7 }]);
  });

  test('failures are reported one line each, with the difference, and exit 1', async () => {
    const cases = path.join(dir, 'failing.yaml');
    writeFileSync(
      cases,
      [
        'principals:',
        '  acme: { user: tenant1-agent, password: tenant1-password }',
        'cases:',
        '  - { name: passes, principal: acme, sql: "SELECT count(*) AS n FROM customers", expect: allowed, rows: [{ n: 3 }] }',
        '  - { name: sees the clear email, principal: acme, sql: "SELECT email FROM customers WHERE id = 1", expect: allowed, rows: [{ email: jane@acme.com }] }',
        '  - { name: drop is allowed, principal: acme, sql: "DROP TABLE orders", expect: allowed, protocol: both }',
        '  - { name: wrong code, principal: acme, sql: "INSERT INTO orders (customer_id, total_cents) VALUES (1, 1)", expect: refused, code: tenant_forged }',
        '  - { name: other tenant, user: tenant2-agent, password: tenant2-password, sql: "SELECT name FROM customers ORDER BY id", expect: allowed, contains: Acme }',
        '  - { name: wrong password, user: tenant1-agent, password: nope, sql: "SELECT 1", expect: allowed }',
      ].join('\n'),
    );
    const run = await cli(['test', '--config', QUICKSTART_CONFIG, cases], env);
    expect(run.stdout.trim().split('\n')).toEqual([
      'ok   passes',
      'FAIL sees the clear email: row 1: expected {"email":"jane@acme.com"}, got {"email":"j***@acme.com"}',
      expect.stringMatching(/^FAIL drop is allowed: \[simple\] expected allowed, got refused \(statement_not_allowed, SQLSTATE 42501: .*\); \[extended\] expected allowed, got refused/),
      expect.stringMatching(/^FAIL wrong code: expected code tenant_forged, got reason_required, SQLSTATE 42501: /),
      expect.stringMatching(/^FAIL other tenant: the rows do not contain "Acme": \[\{"name":"Globex Inc"\}/),
      expect.stringMatching(/^FAIL wrong password: expected allowed, got refused \(authentication_failed, SQLSTATE 28P01/),
      '6 cases: 1 passed, 5 failed',
    ]);
    expect(run.code).toBe(1);
  });

  test('setup runs with the upstream credentials before the proxy starts, teardown after the cases', async () => {
    const cases = path.join(dir, 'setup.yaml');
    writeFileSync(
      cases,
      [
        'setup: |',
        "  INSERT INTO customers (id, tenant_id, name, email) VALUES (100, 1, 'Fixture Ltd', 'fix@fixture.test');",
        'teardown: DELETE FROM customers WHERE id = 100',
        'principals:',
        '  acme: { user: tenant1-agent, password_env: ACME_PASSWORD }',
        'cases:',
        '  - name: the fixture row is visible, masked',
        '    principal: acme',
        '    sql: SELECT name, email FROM customers WHERE id = $1',
        '    params: [100]',
        '    expect: allowed',
        '    rows: [[Fixture Ltd, f***@fixture.test]]',
      ].join('\n'),
    );
    // The quickstart config audits to stdout; the suite's report keeps stdout, the events go to the file.
    const auditFile = path.join(dir, 'audit.jsonl');
    const run = await cli(['test', '--config', QUICKSTART_CONFIG, '--audit-file', auditFile, cases], { ...env, ACME_PASSWORD: 'tenant1-password' });
    expect(run.stdout).toBe('ok   the fixture row is visible, masked\n1 case: 1 passed, 0 failed\n');
    expect(existsSync(auditFile)).toBe(true);
    expect(run.code).toBe(0);
    expect(await db.query('SELECT count(*)::int AS n FROM customers WHERE id = 100')).toEqual([{ n: 0 }]);
  });

  test('usage errors exit 2: no case file, an invalid one, an unknown user, an unset password variable', async () => {
    const noFile = await cli(['test', '--config', QUICKSTART_CONFIG], env);
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toMatch(/Usage: ormai-proxy test/);
    const invalid = path.join(dir, 'invalid.yaml');
    writeFileSync(invalid, 'cases:\n  - { name: a, user: u, password: p, sql: SELECT 1, expect: allowed, cdoe: x }\n');
    const bad = await cli(['test', '--config', QUICKSTART_CONFIG, invalid], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid case file .*invalid\.yaml:\n {2}- cases\.0: Unrecognized key: "cdoe"/);
    expect(bad.stderr).not.toMatch(/Usage:/);
    writeFileSync(invalid, 'cases:\n  - { name: a, user: nobody, password: p, sql: SELECT 1, expect: allowed }\n');
    const unknown = await cli(['test', '--config', QUICKSTART_CONFIG, invalid], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/not in the users file users\.yaml: nobody/);
    writeFileSync(invalid, 'principals: { a: { user: tenant1-agent, password_env: ORMAI_UNSET_FOR_TEST } }\ncases:\n  - { name: a, principal: a, sql: SELECT 1, expect: allowed }\n');
    const unset = await cli(['test', '--config', QUICKSTART_CONFIG, invalid], env);
    expect(unset.code).toBe(2);
    expect(unset.stderr).toMatch(/ORMAI_UNSET_FOR_TEST is not set/);
  });

  test('an unreachable database exits 1 before any case runs', async () => {
    const run = await cli(['test', '--config', QUICKSTART_CONFIG, QUICKSTART_SUITE], { ORMAI_UPSTREAM_URL: 'postgres://postgres:x@127.0.0.1:1/app' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/database not reachable: .*ECONNREFUSED/);
    expect(run.stdout).toBe('');
  });
});

describe('ormai-proxy check', () => {
  test('the quickstart policy lints clean, also under --strict', async () => {
    const run = await cli(['check', '--config', QUICKSTART_CONFIG], env);
    expect(run.stdout).toMatch(/^ok: .*ormai\.yaml\n {2}policy quickstart \(.*policy\.yaml\) sha256:[0-9a-f]{64}\nlint: against database \S+ on 127\.0\.0\.1:\d+\nlint: 0 errors, 0 warnings, 0 info\n$/);
    expect(run.code).toBe(0);
    const strict = await cli(['check', '--config', QUICKSTART_CONFIG, '--strict'], env);
    expect(strict.stdout).toMatch(/\nlint: 0 errors, 0 warnings, 0 info \(--strict: warnings count as errors\)\n$/);
    expect(strict.code).toBe(0);
  });

  test('against a schema with a forgotten tenant table, a visible secret and a nullable tenant column: errors, --json', async () => {
    await db.query(`
      CREATE TABLE invoices (id serial PRIMARY KEY, tenant_id integer NOT NULL, total_cents integer);
      CREATE TABLE people (id serial PRIMARY KEY, tenant_id integer, name text, ssn text, email text);
      CREATE TABLE countries (code char(2) PRIMARY KEY, name text);
      CREATE TABLE ormai_approvals (id text PRIMARY KEY, tenant_id text NOT NULL);`);
    writeFileSync(
      path.join(dir, 'lax-policy.yaml'),
      [
        'name: lax',
        'models: [customers, orders, people, countries]',
        'tenant_scope: { column: tenant_id }',
        'mask_fields: [customers.email, people.email]',
        'enable_writes:',
        '  - { models: [people], require_reason: false }',
        'require_approval:',
        '  - { operation: delete, model: orders }',
      ].join('\n'),
    );
    // The approvals table has a tenant column too, but it is the proxy's own: not reported.
    writeFileSync(path.join(dir, 'lax.yaml'), 'database: app\nauth: { users_file: users.yaml }\npolicies: [lax-policy.yaml]\napprovals: { store: postgres }\n');
    const run = await cli(['check', '--config', path.join(dir, 'lax.yaml')], env);
    const lines = run.stdout.split('\n').filter((l) => /^(error|warning|info) /.test(l));
    expect(lines.map((l) => l.replace(/:.*/, '').replace(/ +/g, ' '))).toEqual([
      'error lax approval_rule_unreachable require_approval[0]',
      'error lax secret_column_visible people.ssn',
      'warning lax masked_column_writable people.email',
      'warning lax max_scan_rows_missing',
      'warning lax max_writes_per_minute_missing',
      'warning lax tenant_column_nullable people.tenant_id',
      'warning lax tenant_table_unregistered invoices',
      'warning lax write_reason_optional people',
      'info lax global_table countries',
    ]);
    expect(run.stdout).toMatch(/lint: 2 errors, 6 warnings, 1 info\n$/);
    expect(run.code).toBe(1);

    const json = await cli(['check', '--config', path.join(dir, 'lax.yaml'), '--json'], env);
    expect(json.code).toBe(1);
    const doc = JSON.parse(json.stdout) as { valid: boolean; database: { linted: boolean }; findings: Array<{ rule: string; subject?: string; severity: string }>; counts: object; exit_code: number };
    expect(doc).toMatchObject({ valid: true, database: { linted: true }, counts: { errors: 2, warnings: 6, info: 1 }, exit_code: 1 });
    expect(doc.findings).toContainEqual(expect.objectContaining({ severity: 'error', rule: 'secret_column_visible', subject: 'people.ssn', policy: 'lax' }));
  });

  test('without the database only the static rules run; invalid files exit 1; bad flags exit 2', async () => {
    const down = await cli(['check', '--config', QUICKSTART_CONFIG, '--json'], { ORMAI_UPSTREAM_URL: 'postgres://postgres:x@127.0.0.1:1/app' });
    expect(down.code).toBe(0);
    const doc = JSON.parse(down.stdout) as { database: { linted: boolean; error: string }; findings: Array<{ rule: string }> };
    expect(doc.database).toMatchObject({ linted: false, error: expect.stringMatching(/ECONNREFUSED/) });
    expect(doc.findings).toEqual([]);
    writeFileSync(path.join(dir, 'typo.yaml'), 'database: app\npolicies: [nope.yaml]\n');
    const invalid = await cli(['check', '--config', path.join(dir, 'typo.yaml')], env);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/nope\.yaml/);
    const flags = await cli(['check', '--config', QUICKSTART_CONFIG, '--stirct'], env);
    expect(flags.code).toBe(2);
    expect(flags.stderr).toMatch(/Usage: ormai-proxy check/);
  });

  test('the files start-up reads besides config and policies are checked too: users, admin token and identities, audit key', async () => {
    writeFileSync(path.join(dir, 'files-policy.yaml'), readFileSync(path.join(QUICKSTART_DIR, 'policy.yaml')));
    writeFileSync(path.join(dir, 'short.token'), 'too-short\n');
    writeFileSync(path.join(dir, 'good.token'), `${'t'.repeat(40)}\n`);
    writeFileSync(path.join(dir, 'identities.yaml'), 'identities: [ { name: ops, token_sha256: nothex } ]\n');
    writeFileSync(path.join(dir, 'short.key'), 'k'.repeat(16));
    writeFileSync(path.join(dir, 'bad-users.yaml'), 'users:\n  - { name: a, password: p, tenant_id: 1, roels: [agent] }\n');
    const cases: Array<[string, string, RegExp]> = [
      ['a missing users file', 'auth: { users_file: missing-users.yaml }', /cannot read users file .*missing-users\.yaml: ENOENT/],
      ['an invalid users file', 'auth: { users_file: bad-users.yaml }', /invalid users file .*bad-users\.yaml/],
      ['a short admin token', 'auth: { users_file: users.yaml }\nadmin: { token_file: short.token }', /admin token must be at least/],
      ['a missing admin token file', 'auth: { users_file: users.yaml }\nadmin: { token_file: none.token }', /cannot read admin token file .*none\.token: ENOENT/],
      ['an invalid identities file', 'auth: { users_file: users.yaml }\nadmin: { token_file: good.token, identities_file: identities.yaml }', /admin identities file .*identities\.yaml: identities\.0\./],
      ['a short audit key', 'auth: { users_file: users.yaml }\naudit: { key_file: short.key }', /audit key file .*short\.key must hold at least 32 bytes/],
    ];
    for (const [what, yaml, message] of cases) {
      writeFileSync(path.join(dir, 'files.yaml'), `database: app\npolicies: [files-policy.yaml]\n${yaml}\n`);
      const run = await cli(['check', '--config', path.join(dir, 'files.yaml')], env);
      expect({ what, code: run.code, stdout: run.stdout }).toEqual({ what, code: 1, stdout: '' });
      expect(run.stderr).toMatch(message);
      const json = await cli(['check', '--config', path.join(dir, 'files.yaml'), '--json'], env);
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout)).toMatchObject({ valid: false, error: expect.stringMatching(message), exit_code: 1 });
    }
    // The same files, valid: the check passes.
    writeFileSync(path.join(dir, 'files.yaml'), 'database: app\npolicies: [files-policy.yaml]\nauth: { users_file: users.yaml }\nadmin: { token_file: good.token }\n');
    const ok = await cli(['check', '--config', path.join(dir, 'files.yaml')], env);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
  });
});
