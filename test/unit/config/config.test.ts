// Config and policy files: the shipped examples load; unknown keys, bad values and broken files give clear errors.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig, resolveConfig } from '../../../src/config/load';
import { loadPolicyFile, PolicyFileError, selectPolicy } from '../../../src/policy/load';

const QUICKSTART = path.resolve(__dirname, '../../../config/quickstart/ormai.yaml');
const env = { ORMAI_UPSTREAM_URL: 'postgres://proxy:pw@db.internal:6543/appdb?sslmode=verify-full' };

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-cfg-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

test('the quickstart configuration loads', () => {
  const config = loadConfig(QUICKSTART, env);
  expect(config.listen).toEqual({ host: '127.0.0.1', port: 6432 });
  expect(config.database).toBe('app');
  expect(config.maxMessageSize).toBe(64 * 1024 * 1024);
  expect(config.upstream).toMatchObject({ host: 'db.internal', port: 6543, user: 'proxy', database: 'appdb', tls: { mode: 'verify-full' } });
  expect(config.upstream.password).toBe('pw');
  expect(JSON.stringify(config.upstream)).not.toContain('pw"');
  expect(Object.keys(config.upstream)).not.toContain('password');
  // The agent's sessions run without JIT unless the file says otherwise (upstream.jit).
  expect(config.upstream).toMatchObject({ readScope: 'barrier_views', jit: false });
  const [policy] = config.policies;
  expect(policy.name).toBe('quickstart');
  expect(policy.maxRows).toBe(200);
  expect(policy.statementTimeoutMs).toBe(3000);
  expect(policy.hash).toMatch(/^[0-9a-f]{64}$/);
  expect(policy.isWriteAllowed({ name: 'orders', op: 'insert' })).toBe(true);
  expect(policy.isWriteAllowed({ name: 'ORDERS', op: 'insert' })).toBe(true);
  expect(policy.isWriteAllowed({ name: 'orders', op: 'delete' })).toBe(false);
  expect(policy.isWriteAllowed({ name: 'customers', op: 'insert' })).toBe(false);
});

test('env overrides listen addresses and the upstream URL', () => {
  const config = loadConfig(QUICKSTART, { ...env, ORMAI_LISTEN: '0.0.0.0:7000', ORMAI_ADMIN_LISTEN: '127.0.0.1:7001' });
  expect(config.listen).toEqual({ host: '0.0.0.0', port: 7000 });
  expect(config.adminListen).toEqual({ host: '127.0.0.1', port: 7001 });
});

test('upstream.jit: true leaves the database its own JIT setting; a non-boolean is explained', () => {
  write('p.yaml', 'name: p\nmodels:\n  - table: t\n');
  const on = write('on.yaml', 'policies: [p.yaml]\nupstream:\n  url: postgres://u@h/d\n  jit: true\n');
  expect(loadConfig(on, {}).upstream.jit).toBe(true);
  const bad = write('bad.yaml', 'policies: [p.yaml]\nupstream:\n  url: postgres://u@h/d\n  jit: sometimes\n');
  expect(() => loadConfig(bad, {})).toThrow(/upstream\.jit/);
});

test('unknown config keys are errors that name the key', () => {
  const file = write('ormai.yaml', 'policies: [p.yaml]\nlisten_port: 5\n');
  expect(() => loadConfig(file, env)).toThrow(ConfigError);
  expect(() => loadConfig(file, env)).toThrow(/listen_port/);
});

test('bad values are explained', () => {
  expect(() => resolveConfig({ policies: ['x'], listen: 'nonsense' }, 'c.yaml', env)).toThrow(/listen: expected host:port/);
  expect(() => resolveConfig({ policies: ['x'], max_message_size: '12 parsecs' }, 'c.yaml', env)).toThrow(/not a size/);
  expect(() => resolveConfig({ policies: [] }, 'c.yaml', env)).toThrow(/policies/);
  expect(() => resolveConfig({ policies: ['x'] }, 'c.yaml', {})).toThrow(/no upstream database/);
  expect(() => resolveConfig({ policies: ['x'] }, 'c.yaml', { ORMAI_UPSTREAM_URL: 'http://[::zz' })).toThrow(ConfigError);
});

test('unparseable YAML gives a clear error', () => {
  const file = write('ormai.yaml', 'policies: [p.yaml\n  listen: :\n');
  expect(() => loadConfig(file, env)).toThrow(/not valid YAML/);
});

test('the upstream URL can come from a mounted secret file', () => {
  write('upstream-url', 'postgres://u:secret@10.0.0.9:5432/prod\n');
  write('p.yaml', 'name: p\nmodels: [t]\n');
  const file = write('ormai.yaml', 'policies: [p.yaml]\nupstream:\n  url_file: upstream-url\n');
  const config = loadConfig(file, {});
  expect(config.upstream).toMatchObject({ host: '10.0.0.9', user: 'u', database: 'prod' });
  expect(config.database).toBe('prod');
});

describe('policy files', () => {
  test('profile defaults apply where the file is silent', () => {
    const policy = loadPolicyFile(write('p.yaml', 'name: p\nmodels: [t]\n'));
    expect(policy.maxRows).toBe(100);
    expect(policy.statementTimeoutMs).toBe(2000);
    const dev = loadPolicyFile(write('d.yaml', 'name: d\nprofile: dev\nmodels: [t]\n'));
    expect(dev.maxRows).toBe(10000);
  });

  test('unknown keys, wrong types and dangling references are errors', () => {
    expect(() => loadPolicyFile(write('a.yaml', 'name: a\nmodels: [t]\ndeny_feilds: [x]\n'))).toThrow(/deny_feilds/);
    expect(() => loadPolicyFile(write('b.yaml', 'name: b\nmodels: [t]\nmax_rows: lots\n'))).toThrow(/max_rows/);
    expect(() => loadPolicyFile(write('c.yaml', 'name: c\nmodels: [t]\nenable_writes: [{models: [u]}]\n'))).toThrow(/not in models/);
    expect(() => loadPolicyFile(write('d.yaml', 'name: d\nmodels: [t]\nmask_fields: [email]\n'))).toThrow(/table.column/);
    expect(() => loadPolicyFile(write('e.yaml', 'name: e\nmodels: [t]\nname: again\n'))).toThrow(PolicyFileError);
  });

  test('the content hash changes with the content, not with formatting', () => {
    const a = loadPolicyFile(write('a.yaml', 'name: p\nmodels: [t]\nmax_rows: 5\n'));
    const b = loadPolicyFile(write('b.yaml', '# comment\nmax_rows: 5\nmodels:\n  - t\nname: p\n'));
    const c = loadPolicyFile(write('c.yaml', 'name: p\nmodels: [t]\nmax_rows: 6\n'));
    expect(a.hash).toBe(b.hash);
    expect(a.hash).not.toBe(c.hash);
  });

  test('the principal role selects the policy', () => {
    const admin = loadPolicyFile(write('admin.yaml', 'name: admin\nrequire_principal_role: platform_admin\nmodels: [t]\n'));
    const agent = loadPolicyFile(write('agent.yaml', 'name: agent\nrequire_principal_role: agent\nmodels: [t]\n'));
    const base = { user: 'u', subject: 'u', tenantId: '1', authMethod: 'password' as const };
    expect(selectPolicy([admin, agent], { ...base, roles: ['agent'] })?.name).toBe('agent');
    expect(selectPolicy([admin, agent], { ...base, roles: ['platform_admin'] })?.name).toBe('admin');
    expect(selectPolicy([admin, agent], { ...base, roles: [] })).toBeUndefined();
  });
});
