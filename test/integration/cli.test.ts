// The ormai-proxy command (compiled; `npm test` builds first): demo, serve, check — started and stopped as a user would.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { freePort } from '../../src/demo/embedded';
import { createTestDatabase, type TestDatabase } from '../support/db';

const CLI = path.resolve(__dirname, '../../dist/cli.js');

function start(args: string[], env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [...nodeArgs, CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function waitForOutput(output: () => string, pattern: RegExp, ms: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const m = pattern.exec(output());
    if (m) return m;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${pattern}; output so far:\n${output()}`);
}

async function processes(): Promise<Array<{ pid: number; ppid: number; args: string }>> {
  const ps = spawn('ps', ['-eo', 'pid=,ppid=,args=']);
  let list = '';
  ps.stdout.on('data', (d) => (list += d));
  await new Promise((r) => ps.once('exit', r));
  return list
    .split('\n')
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), args: m[3] }));
}

test('demo: prints working connection strings for both tenants, reloads on SIGHUP and stops cleanly on SIGTERM', async () => {
  const port = await freePort();
  // Ports of its own for each listener: the defaults (9090 for admin) may be taken on a shared machine.
  const demo = start(['demo', '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${await freePort()}`, '--tools-listen', `127.0.0.1:${await freePort()}`]);
  try {
    await waitForOutput(demo.output, /Press Ctrl-C to stop/, 60_000);
    const urls = [...demo.output().matchAll(/psql "(postgres:\/\/[^"]+)"/g)].map((m) => m[1]);
    expect(urls).toHaveLength(2);
    const names: string[][] = [];
    for (const url of urls) {
      const c = new Client({ connectionString: url });
      await c.connect();
      names.push((await c.query('SELECT name FROM customers ORDER BY id')).rows.map((r: { name: string }) => r.name));
      await c.end();
    }
    // Tenant scoping arrives with the read policy (#3); here both agents reach the seeded data.
    expect(names[0]).toContain('Acme Corp');
    expect(names[1]).toContain('Globex Inc');
    // The approval the demo prints: the UPDATE is held, the printed token sees and approves it.
    const pending = /pending: +curl -s -H 'Authorization: Bearer (\S+)' (http:\/\/\S+)\/approvals\?state=pending/.exec(demo.output());
    expect(pending).not.toBeNull();
    const [, token, adminUrl] = pending!;
    const agent = new Client({ connectionString: urls[0] });
    await agent.connect();
    const held = await agent.query("/*reason='customer asked'*/ UPDATE orders SET status = 'cancelled' WHERE id = 1").catch((e: { detail?: string; message: string }) => e);
    await agent.end();
    const id = /approval_id=(appr_[0-9A-Z]+)/.exec((held as { detail?: string }).detail ?? '')?.[1];
    expect(id).toBeDefined();
    const auth = { authorization: `Bearer ${token}` };
    const list = (await (await fetch(`${adminUrl}/approvals?state=pending`, { headers: auth })).json()) as { approvals: Array<{ id: string }> };
    expect(list.approvals.map((a) => a.id)).toEqual([id]);
    const approved = (await (await fetch(`${adminUrl}/approvals/${id}/approve`, { method: 'POST', headers: auth })).json()) as { approval: { state: string; approvals: Array<{ approver: string }> } };
    expect(approved.approval).toMatchObject({ state: 'executed', approvals: [{ approver: 'demo-approver' }] });
    // The tool call the demo prints: tenant 1's orders only.
    const curl = /curl -s -H 'Authorization: Bearer (\S+)' -H 'content-type: application\/json' -d '(\{.*\})' (http:\/\/\S+\/agent\/tool)/.exec(demo.output());
    expect(curl).not.toBeNull();
    const [, toolToken, body, toolUrl] = curl!;
    const answer = await fetch(toolUrl, { method: 'POST', headers: { authorization: `Bearer ${toolToken}`, 'content-type': 'application/json' }, body });
    expect(answer.status).toBe(200);
    const { data, audit_id } = (await answer.json()) as { data: Array<{ tenant_id: number }>; audit_id: string };
    expect(data.length).toBeGreaterThan(0);
    expect(data.every((o) => o.tenant_id === 1)).toBe(true);
    expect(audit_id).toMatch(/^[0-9A-Z]{26}$/);
    // The MCP stdio command the demo prints works as printed, and nothing printed carries the
    // embedded server's superuser URL (the proxy's own credentials).
    const mcp = /MCP over stdio: +(\S+) (\S+) mcp --config (\S+) --user (\S+)/.exec(demo.output());
    expect(mcp).not.toBeNull();
    expect(demo.output()).not.toMatch(/postgres:\/\/postgres|ORMAI_UPSTREAM_URL/);
    const mcpChild = spawn(mcp![1], [mcp![2], 'mcp', '--config', mcp![3], '--user', mcp![4]], { env: { ...process.env, ORMAI_UPSTREAM_URL: '' }, stdio: ['pipe', 'pipe', 'ignore'] });
    let mcpOut = '';
    mcpChild.stdout!.on('data', (d: Buffer) => (mcpOut += d.toString()));
    mcpChild.stdin!.end(
      [
        { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'demo', version: '1' } } },
        { jsonrpc: '2.0', method: 'notifications/initialized' },
        { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'db_query', arguments: { model: 'orders', limit: 2 } } },
      ]
        .map((m) => JSON.stringify(m))
        .join('\n') + '\n',
    );
    expect(await new Promise((resolve) => mcpChild.once('exit', resolve))).toBe(0);
    const mcpAnswers = mcpOut.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: number; result?: { isError?: boolean } });
    expect(mcpAnswers.map((a) => a.id)).toEqual([1, 2]);
    expect(mcpAnswers[1].result?.isError).toBeFalsy();
    // The embedded PostgreSQL is the demo's child process; it and its data directory must go with the demo.
    const [server] = (await processes()).filter((p) => p.ppid === demo.child.pid && / -D /.test(p.args));
    expect(server).toBeDefined();
    const dataDir = / -D (\S+)/.exec(server.args)![1];
    expect(existsSync(dataDir)).toBe(true);

    // SIGHUP (a closed terminal sends it) reloads, as for serve: the demo keeps serving.
    demo.child.kill('SIGHUP');
    await waitForOutput(demo.output, /SIGHUP: reloading the policy and users files/, 10_000);
    const after = new Client({ connectionString: urls[0] });
    await after.connect();
    expect((await after.query('SELECT count(*)::int AS n FROM customers')).rows[0].n).toBeGreaterThan(0);
    await after.end();

    demo.child.kill('SIGTERM');
    expect(await demo.exited).toBe(0);
    expect((await processes()).some((p) => p.pid === server.pid)).toBe(false);
    expect(existsSync(dataDir)).toBe(false);
  } finally {
    demo.child.kill('SIGKILL');
  }
}, 90_000);

test('demo: a port in use stops it (exit 1) with a hint naming both port flags', async () => {
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  const port = (busy.address() as net.AddressInfo).port;
  try {
    const demo = start(['demo', '--listen', `127.0.0.1:${port}`, '--admin-listen', '127.0.0.1:0', '--tools-listen', '127.0.0.1:0']);
    try {
      expect(await demo.exited).toBe(1);
      expect(demo.output()).toMatch(new RegExp(`127\\.0\\.0\\.1:${port} is already in use`));
      expect(demo.output()).toMatch(/--listen 127\.0\.0\.1:\d+ --admin-listen 127\.0\.0\.1:\d+/);
    } finally {
      demo.child.kill('SIGKILL');
    }
  } finally {
    await new Promise((r) => busy.close(r));
  }
}, 90_000);

describe('serve and check', () => {
  let db: TestDatabase;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-cli-'));
    const quickstart = path.resolve(__dirname, '../../config/quickstart');
    for (const f of ['policy.yaml', 'users.yaml']) writeFileSync(path.join(dir, f), readFileSync(path.join(quickstart, f)));
    writeFileSync(path.join(dir, 'ormai.yaml'), 'database: app\nauth: { users_file: users.yaml }\npolicies: [policy.yaml]\nlog_level: warn\n');
    writeFileSync(path.join(dir, 'bad.yaml'), 'database: app\npolicies: [policy.yaml]\nlisten_adress: 1.2.3.4:5\n');
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await db?.drop();
  });

  test('serve runs the proxy from a config file and exits 0 on SIGTERM; without a Redis store or tools.listen it loads neither ioredis nor the MCP SDK', async () => {
    // What a sidecar keeps resident for nothing otherwise: about 13 MB of RSS at startup (README: Benchmarks).
    const probe = path.join(dir, 'modules-probe.js');
    writeFileSync(
      probe,
      `process.on('exit', () => {
        const ids = Object.keys(require.cache);
        const loaded = (name) => ids.some((id) => id.includes('/node_modules/' + name + '/'));
        process.stderr.write('optional-modules: ' + JSON.stringify({ ioredis: loaded('ioredis'), mcp: loaded('@modelcontextprotocol/sdk'), pg: loaded('pg') }) + '\\n');
      });\n`,
    );
    const port = await freePort();
    const serve = start(['serve', '--config', path.join(dir, 'ormai.yaml')], { ORMAI_UPSTREAM_URL: db.url, ORMAI_LISTEN: `127.0.0.1:${port}`, ORMAI_ADMIN_LISTEN: `127.0.0.1:${await freePort()}` }, ['--require', probe]);
    try {
      let connected = false;
      for (let i = 0; i < 100 && !connected; i++) {
        const c = new Client({ connectionString: `postgres://tenant2-agent:tenant2-password@127.0.0.1:${port}/app` });
        try {
          await c.connect();
          expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
          await c.end();
          connected = true;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      expect(connected).toBe(true);
      serve.child.kill('SIGTERM');
      expect(await serve.exited).toBe(0);
      // pg is loaded either way: the probe would be vacuous if it saw no modules at all.
      expect(JSON.parse(/optional-modules: (.*)/.exec(serve.output())![1])).toEqual({ ioredis: false, mcp: false, pg: true });
    } finally {
      serve.child.kill('SIGKILL');
    }
  });

  test('check validates and prints the policy hash; a bad config names the bad key', async () => {
    const ok = start(['check', '--config', path.join(dir, 'ormai.yaml')], { ORMAI_UPSTREAM_URL: db.url });
    expect(await ok.exited).toBe(0);
    expect(ok.output()).toMatch(/policy quickstart .* sha256:[0-9a-f]{64}/);
    const bad = start(['check', '--config', path.join(dir, 'bad.yaml')], { ORMAI_UPSTREAM_URL: db.url });
    expect(await bad.exited).toBe(1);
    expect(bad.output()).toMatch(/listen_adress/);
    const unknown = start(['frobnicate']);
    expect(await unknown.exited).toBe(2);
  });

  test('rls prints the row-level security SQL, and fails naming the reason when the role can never be confined', async () => {
    // The test database's URL is a superuser's: the SQL is printed, and the exit says it would not apply.
    const run = start(['rls', '--config', path.join(dir, 'ormai.yaml')], { ORMAI_UPSTREAM_URL: db.url });
    expect(await run.exited).toBe(1);
    expect(run.output()).toMatch(/CREATE POLICY ormai_tenant ON "public"\."orders" AS RESTRICTIVE FOR ALL TO/);
    expect(run.output()).toMatch(/is a superuser: row-level security never applies to it/);
    expect(await start(['rls']).exited).toBe(2);
    expect(await start(['rls', '--help']).exited).toBe(0);
  });
});

describe('usage', () => {
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const cli = (args: string[], input = '') => spawnSync(process.execPath, [CLI, ...args], { input, encoding: 'utf8' });

  test('--help, -h and help print the usage and exit 0; no command exits 2', () => {
    for (const flag of ['--help', '-h', 'help']) {
      const r = cli([flag]);
      expect({ flag, status: r.status, out: r.stdout.startsWith('Usage:') }).toEqual({ flag, status: 0, out: true });
    }
    expect(cli([]).status).toBe(2);
  });

  test('hash-password refuses an empty password and hashes a real one', () => {
    const empty = cli(['hash-password'], '\n');
    expect(empty.status).toBe(2);
    expect(empty.stderr).toMatch(/empty/);
    const ok = cli(['hash-password'], 'correct horse\n');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/^SCRAM-SHA-256\$4096:/);
  });

  test("the parser's WebAssembly stays on V8's baseline compiler (memory), unless ORMAI_WASM_TIERUP=1", () => {
    // A module compiled after the command line started, run hot until V8 tiers it up (within
    // milliseconds by default) or for 2 s; V8's own natives say which compiler's code runs.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-tier-'));
    try {
      const probe = path.join(dir, 'probe.js');
      writeFileSync(
        probe,
        `process.on('exit', () => {
          // (module (func (export "f") (param i32) (result i32) local.get 0 i32.const 1 i32.add))
          const bytes = new Uint8Array([0,97,115,109,1,0,0,0,1,6,1,96,1,127,1,127,3,2,1,0,7,5,1,1,102,0,0,10,9,1,7,0,32,0,65,1,106,11]);
          const f = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports.f;
          let x = 0;
          const until = Date.now() + 2000;
          while (Date.now() < until && !%IsTurboFanFunction(f)) for (let i = 0; i < 1e5; i++) x = f(x);
          process.stderr.write('wasm-tier: ' + (%IsTurboFanFunction(f) ? 'turbofan' : 'liftoff') + '\\n');
        });\n`,
      );
      const tier = (env: NodeJS.ProcessEnv) => {
        const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--require', probe, CLI, '--help'], { encoding: 'utf8', env: { ...process.env, ...env } });
        expect(r.status).toBe(0);
        return /wasm-tier: (\w+)/.exec(r.stderr)?.[1];
      };
      expect(tier({ ORMAI_WASM_TIERUP: '' })).toBe('liftoff');
      expect(tier({ ORMAI_WASM_TIERUP: '1' })).toBe('turbofan');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
