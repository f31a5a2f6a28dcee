// Hot reload of policy and users files mounted like a Kubernetes ConfigMap: symlink swaps, watch and poll, bad files kept out.
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { ProxyMetrics } from '../../../src/admin/metrics';
import type { UsersSnapshot } from '../../../src/auth/users';
import type { UpstreamTarget } from '../../../src/config/load';
import { createLogger } from '../../../src/log';
import { loadPolicyFile } from '../../../src/policy/load';
import { ScopeProvider, type CatalogLoader } from '../../../src/policy/provider';
import { HotReload, type HotReloadOptions } from '../../../src/policy/reload';
import { quickstartCatalog, QUICKSTART } from '../analysis/rewrite-scope';

const POLICY = readFileSync(QUICKSTART, 'utf8');
const USERS = 'users:\n  - name: a-agent\n    password: "first s3cret"\n    tenant_id: 1\n';
const TARGET = { host: '127.0.0.1', port: 1 } as UpstreamTarget;

/** Mounts files as the kubelet does: dir/<name> → ..data/<name>, and ..data → ..<version>, swapped by a rename. */
class ConfigMapDir {
  private version = 0;
  private current?: string;
  constructor(readonly dir: string) {}

  publish(files: Record<string, string>): void {
    const next = `..2025_01_01_00_00_${String(this.version++).padStart(2, '0')}`;
    mkdirSync(path.join(this.dir, next));
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(this.dir, next, name), text);
    symlinkSync(next, path.join(this.dir, '..data_tmp'));
    renameSync(path.join(this.dir, '..data_tmp'), path.join(this.dir, '..data'));
    for (const name of Object.keys(files)) {
      if (!exists(path.join(this.dir, name))) symlinkSync(path.join('..data', name), path.join(this.dir, name));
    }
    if (this.current) rmSync(path.join(this.dir, this.current), { recursive: true });
    this.current = next;
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the reload');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function counter(text: string, name: string): number {
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
}

let dir: string;
let mount: ConfigMapDir;
let catalog: CatalogLoader;
let scopes: ScopeProvider;
let metrics: ProxyMetrics;
let users: UsersSnapshot[];
let logs: string[];
let reloader: HotReload | undefined;

beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'ormai-reload-'));
  mount = new ConfigMapDir(dir);
  mount.publish({ 'policy.yaml': POLICY, 'users.yaml': USERS });
  catalog = async () => quickstartCatalog();
  scopes = new ScopeProvider(TARGET, [loadPolicyFile(mount.file('policy.yaml'))], (t, p) => catalog(t, p), createLogger('silent'));
  await scopes.refresh();
  metrics = new ProxyMetrics({ defaultMetrics: false });
  users = [];
  logs = [];
});

afterEach(async () => {
  await reloader?.close();
  reloader = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function start(options: Partial<HotReloadOptions> = {}): Promise<HotReload> {
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (logs.push(chunk.toString()), done()) });
  reloader = new HotReload({
    policyFiles: [mount.file('policy.yaml')],
    usersFile: mount.file('users.yaml'),
    scopes,
    onUsers: (u) => users.push(u),
    metrics,
    log: createLogger('debug', sink),
    watch: false,
    pollMs: 0,
    ...options,
  });
  await reloader.start();
  return reloader;
}

async function reloads(): Promise<{ ok: number; failed: number }> {
  const text = await metrics.text();
  return { ok: counter(text, 'ormai_policy_reloads_total'), failed: counter(text, 'ormai_policy_reload_failures_total') };
}

const maxRows = () => scopes.current('quickstart')?.policy.maxRows;

describe('policies', () => {
  test('a symlink swap replaces the snapshot: new hash, new scope key, same name', async () => {
    const before = scopes.current('quickstart')!;
    const hot = await start();
    mount.publish({ 'policy.yaml': POLICY.replace('max_rows: 200', 'max_rows: 2'), 'users.yaml': USERS });
    expect(await hot.reload()).toEqual({ policies: 'reloaded', users: 'unchanged' });
    const after = scopes.current('quickstart')!;
    expect(after.policy.maxRows).toBe(2);
    expect(after.policy.hash).not.toBe(before.policy.hash);
    expect(after.scopeKey).not.toBe(before.scopeKey);
    expect(scopes.policies).toEqual([after.policy]);
    expect(await reloads()).toEqual({ ok: 1, failed: 0 });
    expect(logs.join('')).toContain(after.policy.hash);
  });

  test('the directory watch sees the swap (debounced)', async () => {
    await start({ watch: true, debounceMs: 20 });
    mount.publish({ 'policy.yaml': POLICY.replace('max_rows: 200', 'max_rows: 3'), 'users.yaml': USERS });
    await until(() => maxRows() === 3);
    expect((await reloads()).ok).toBe(1);
  });

  test('polling finds a swap that no event announced', async () => {
    await start({ pollMs: 30 });
    mount.publish({ 'policy.yaml': POLICY.replace('max_rows: 200', 'max_rows: 4'), 'users.yaml': USERS });
    await until(() => maxRows() === 4);
  });

  test('a change of comments only is no reload', async () => {
    const version = scopes.version;
    await start({ pollMs: 20 });
    mount.publish({ 'policy.yaml': `# reviewed\n${POLICY}`, 'users.yaml': USERS });
    await new Promise((r) => setTimeout(r, 200));
    expect(scopes.version).toBe(version);
    expect(await reloads()).toEqual({ ok: 0, failed: 0 });
  });

  test.each([
    ['a YAML error', POLICY.replace('max_rows: 200', 'max_rows: [200'), /not valid YAML/],
    ['an unknown key (zod)', `${POLICY}max_rowz: 2\n`, /max_rowz|unrecognized/i],
    ['a table that does not exist', POLICY.replace('  - orders\n', '  - orders\n  - invoices\n'), /invoices.*does not exist/],
  ])('%s keeps the last good snapshot and is counted once', async (_what, text, error) => {
    const before = scopes.current('quickstart');
    await start({ pollMs: 20 });
    mount.publish({ 'policy.yaml': text, 'users.yaml': USERS });
    await until(() => logs.some((l) => l.includes('policy reload refused')));
    await new Promise((r) => setTimeout(r, 150)); // several more polls of the same bad content
    expect(scopes.current('quickstart')).toBe(before);
    expect(await reloads()).toEqual({ ok: 0, failed: 1 });
    expect(logs.find((l) => l.includes('policy reload refused'))).toMatch(error);
    // Fixed: the next check takes it.
    mount.publish({ 'policy.yaml': POLICY.replace('max_rows: 200', 'max_rows: 5'), 'users.yaml': USERS });
    await until(() => maxRows() === 5);
  });

  test('two policies with the same name are refused', async () => {
    writeFileSync(path.join(dir, 'other.yaml'), POLICY.replace('max_rows: 200', 'max_rows: 7'));
    const hot = await start({ policyFiles: [mount.file('policy.yaml'), path.join(dir, 'other.yaml')] });
    expect((await hot.reload()).policies).toBe('failed');
    expect(logs.join('')).toContain('two policies are named \\"quickstart\\"');
    expect(maxRows()).toBe(200);
  });

  test('a catalog that cannot load keeps the old snapshot and is retried until it loads', async () => {
    let down = true;
    catalog = async () => {
      if (down) throw new Error('connect ECONNREFUSED');
      return quickstartCatalog();
    };
    await start({ pollMs: 20 });
    mount.publish({ 'policy.yaml': POLICY.replace('max_rows: 200', 'max_rows: 6'), 'users.yaml': USERS });
    await until(() => logs.some((l) => l.includes('could not load the catalog')));
    await new Promise((r) => setTimeout(r, 100));
    expect(maxRows()).toBe(200);
    expect(await reloads()).toEqual({ ok: 0, failed: 1 });
    down = false;
    await until(() => maxRows() === 6);
    expect(await reloads()).toEqual({ ok: 1, failed: 1 });
  });

  test('a renamed policy is gone by its old name: its sessions are refused, new logins select the new one', async () => {
    const hot = await start();
    mount.publish({ 'policy.yaml': POLICY.replace('name: quickstart', 'name: quickstart-v2'), 'users.yaml': USERS });
    await hot.reload();
    expect(scopes.current('quickstart')).toBeUndefined();
    expect(scopes.current('quickstart-v2')?.policy.name).toBe('quickstart-v2');
    expect(scopes.policies.map((p) => p.name)).toEqual(['quickstart-v2']);
  });
});

describe('users', () => {
  test('a new users file reaches new logins; a broken one keeps the last good users and logs no password', async () => {
    const hot = await start();
    mount.publish({ 'policy.yaml': POLICY, 'users.yaml': `${USERS}  - name: b-agent\n    password: "second s3cret"\n    tenant_id: 2\n` });
    expect(await hot.reload()).toEqual({ policies: 'reloaded', users: 'reloaded' });
    expect(users.at(-1)?.names()).toEqual(['a-agent', 'b-agent']);
    mount.publish({ 'policy.yaml': POLICY, 'users.yaml': `${USERS}  - name: c-agent\n    password: "third s3cret"\n    tenant_id: [\n` });
    expect((await hot.reload()).users).toBe('failed');
    expect(users).toHaveLength(1);
    expect(logs.join('')).toContain('users file reload refused');
    expect(logs.join('')).not.toMatch(/s3cret/);
  });
});

describe('ScopeProvider', () => {
  test('a refresh with new policies waits for a load in flight and wins over it', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    catalog = async () => {
      await gate;
      return quickstartCatalog();
    };
    const old = scopes.policies;
    const first = scopes.refresh();
    const next = [loadPolicyFile(mount.file('policy.yaml'))];
    const second = scopes.refresh(next);
    release();
    await Promise.all([first, second]);
    expect(scopes.policies).toBe(next);
    expect(scopes.policies).not.toBe(old);
    expect(scopes.current('quickstart')?.policy).toBe(next[0]);
  });
});
