// Both tool doors end to end on a real PostgreSQL, through the proxy's engine: POST /agent/tool, and MCP driven by the
// SDK's own Client over Streamable HTTP (bearer token) and over stdio (`node dist/cli.js mcp --user`, built by `npm test`).
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { AuditEvent } from '../../src/audit/event';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';

const CLI = path.resolve(__dirname, '../../dist/cli.js');

const TOKEN = 'tools-door-token-tenant1-0123456789';
const TOKEN2 = 'tools-door-token-tenant2-0123456789';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** The quickstart policy with every write on orders (a reason required), and deletes held for one approver. */
const POLICY = `
name: tools-doors
profile: prod
models: [customers, orders]
tenant_scope: { column: tenant_id, type: integer }
deny_fields: ["*secret*"]
mask_fields: [{ field: customers.email, strategy: email }]
enable_writes:
  - models: [orders]
    require_reason: true
require_approval:
  - { operation: delete, model: orders }
max_rows: 200
statement_timeout_ms: 3000
`;
const USERS = `
users:
  - { name: tenant1-agent, password: tenant1-password, tenant_id: 1, roles: [agent], token_sha256: ${sha256(TOKEN)} }
  - { name: tenant2-agent, password: tenant2-password, tenant_id: 2, roles: [agent], token_sha256: ${sha256(TOKEN2)} }
`;

let db: TestDatabase;
let proxy: TestProxy;
let dir: string;
let base: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-tools-'));
  writeFileSync(path.join(dir, 'policy.yaml'), POLICY);
  writeFileSync(path.join(dir, 'users.yaml'), USERS);
  proxy = await startTestProxy(db.url, {
    policies: [path.join(dir, 'policy.yaml')],
    auth: { method: 'scram-sha-256', users_file: path.join(dir, 'users.yaml') },
    tools: { listen: '127.0.0.1:0' },
  });
  base = `http://127.0.0.1:${proxy.tools.http!.port}`;
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: { data?: unknown; rows?: number; audit_id?: string; dry_run?: boolean; error?: { code: string; sqlstate: string; message: string; hint?: string; approval_id?: string } };
}

async function call(name: string, args: unknown, token = TOKEN, toolCallId?: string): Promise<Answer> {
  const res = await fetch(`${base}/agent/tool`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name, arguments: args, ...(toolCallId ? { tool_call_id: toolCallId } : {}) }),
  });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

const rowsOf = (a: Answer) => a.body.data as Array<Record<string, unknown>>;

async function eventFor(auditId: string | undefined, events: () => AuditEvent[]): Promise<AuditEvent> {
  expect(auditId).toBeDefined();
  for (let i = 0; i < 50; i++) {
    const event = events().find((e) => e.id === auditId);
    if (event) return event;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no audit event ${auditId}`);
}

describe('HTTP: POST /agent/tool and GET /agent/tools', () => {
  test('db.query answers the token\'s tenant only, masked, and its event carries the tool and tool_call_id', async () => {
    const answer = await call('db.query', { model: 'customers', where: { tenant_id: 2 }, order_by: 'id' }, TOKEN, 'toolu_http_1');
    expect(answer.status).toBe(200);
    const rows = rowsOf(answer);
    expect(rows.map((r) => r.name)).toEqual(['Acme Corp', 'Acme Labs', 'Acme Retail']);
    expect(rows.every((r) => r.tenant_id === 1 && !('api_secret' in r))).toBe(true);
    expect(rows[0].email).toBe('j***@acme.com');
    const event = await eventFor(answer.body.audit_id, proxy.auditEvents);
    expect(event.tool?.name).toBe('db.query');
    expect(event.tool_call_id).toBe('toolu_http_1');
    expect(JSON.stringify(event)).not.toContain('Acme Corp');
  });

  test('refusals carry the catalogue\'s code with their status: 400 hidden field, 403 no reason, 404 unknown tool, 401 no token', async () => {
    const hidden = await call('db.query', { model: 'customers', select: ['name', 'api_secret'] });
    expect(hidden.status).toBe(400);
    expect(hidden.body.error).toMatchObject({ sqlstate: '42703' });
    expect(JSON.stringify(hidden.body)).not.toContain('DO_NOT_LEAK');
    const noReason = await call('db.create', { model: 'orders', data: { customer_id: 1, total_cents: 100 } });
    expect(noReason.status).toBe(403);
    expect(noReason.body.error?.code).toBe('reason_required');
    expect(noReason.body.audit_id).toBeDefined();
    const unknown = await call('db.drop_everything', {});
    expect(unknown.status).toBe(404);
    expect(unknown.body.error?.code).toBe('tool_unknown');
    const res = await fetch(`${base}/agent/tool`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"db.query","arguments":{"model":"orders"}}' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
  });

  test('a write with a reason lands in the caller\'s tenant; a held delete is 409 with its approval id', async () => {
    const created = await call('db.create', { model: 'orders', data: { customer_id: 1, total_cents: 4242, tenant_id: 2 }, reason: 'tools door test' });
    expect(created.status).toBe(200);
    expect(rowsOf(created)[0]).toMatchObject({ tenant_id: 1, total_cents: 4242 });
    const id = rowsOf(created)[0].id;
    expect((await db.query('SELECT tenant_id FROM orders WHERE id = $1', [id]))[0]).toEqual({ tenant_id: 1 });
    const held = await call('db.delete', { model: 'orders', id, reason: 'tools door test' });
    expect(held.status).toBe(409);
    expect(held.body.error?.code).toBe('pending_approval');
    expect(held.body.error?.approval_id).toMatch(/^appr_/);
    expect(await db.query('SELECT id FROM orders WHERE id = $1', [id])).toHaveLength(1);
  });

  test('GET /agent/tools lists this policy\'s tools; ?format=openai in that SDK\'s shape', async () => {
    const res = await fetch(`${base}/agent/tools`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const { tools } = (await res.json()) as { tools: Array<{ name: string }> };
    expect(tools.map((t) => t.name)).toEqual(['db.describe_schema', 'db.query', 'db.get', 'db.aggregate', 'db.create', 'db.update', 'db.delete', 'db.sql', 'approvals.status']);
    const openai = await fetch(`${base}/agent/tools?format=openai`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(((await openai.json()) as { tools: Array<{ type: string; function: { name: string } }> }).tools[1]).toMatchObject({ type: 'function', function: { name: 'db_query' } });
  });
});

type Content = Array<{ type: string; text: string }>;
const textOf = (result: Record<string, unknown>) => JSON.parse((result.content as Content)[0].text) as Record<string, unknown>;

/** Calls every tool the server lists and checks each answer; the same for both transports. */
async function exerciseEveryTool(client: Client): Promise<void> {
  const { tools } = await client.listTools();
  expect(tools.map((t) => t.name)).toEqual(['db_describe_schema', 'db_query', 'db_get', 'db_aggregate', 'db_create', 'db_update', 'db_delete', 'db_sql', 'approvals_status']);
  expect(tools.find((t) => t.name === 'db_delete')?.annotations).toMatchObject({ readOnlyHint: false, destructiveHint: true });

  const schema = await client.callTool({ name: 'db_describe_schema', arguments: {} });
  expect(schema.isError).toBeFalsy();
  expect(JSON.stringify(schema.structuredContent)).toContain('orders');
  expect(JSON.stringify(schema.structuredContent)).not.toContain('api_secret');

  const query = await client.callTool({ name: 'db_query', arguments: { model: 'orders', where: { status: 'paid' }, order_by: 'id' } });
  const orders = (query.structuredContent as { data: Array<{ id: number; tenant_id: number }> }).data;
  expect(orders.length).toBeGreaterThan(0);
  expect(orders.every((o) => o.tenant_id === 1)).toBe(true);
  expect(textOf(query)).toEqual(query.structuredContent);

  const get = await client.callTool({ name: 'db_get', arguments: { model: 'orders', id: orders[0].id } });
  expect((get.structuredContent as { data: { id: number } }).data.id).toBe(orders[0].id);

  const aggregate = await client.callTool({ name: 'db_aggregate', arguments: { model: 'orders', group_by: ['status'], aggregates: [{ fn: 'count' }] } });
  expect(aggregate.isError).toBeFalsy();
  expect((aggregate.structuredContent as { data: unknown[] }).data.length).toBeGreaterThan(0);

  const dryRun = await client.callTool({ name: 'db_create', arguments: { model: 'orders', data: { customer_id: 1, total_cents: 1 }, reason: 'mcp test', dry_run: true } });
  expect(dryRun.isError).toBeFalsy();
  expect((dryRun.structuredContent as { dry_run?: boolean }).dry_run).toBe(true);
  const created = await client.callTool({ name: 'db_create', arguments: { model: 'orders', data: { customer_id: 1, total_cents: 777 }, reason: 'mcp test' } });
  const row = (created.structuredContent as { data: Array<{ id: number; tenant_id: number }> }).data[0];
  expect(row.tenant_id).toBe(1);

  const updated = await client.callTool({ name: 'db_update', arguments: { model: 'orders', id: row.id, data: { status: 'paid' }, reason: 'mcp test' } });
  expect((updated.structuredContent as { data: Array<{ status: string }> }).data[0].status).toBe('paid');

  const held = await client.callTool({ name: 'db_delete', arguments: { model: 'orders', id: row.id, reason: 'mcp test' } });
  expect(held.isError).toBe(true);
  const refusal = textOf(held);
  expect(refusal).toMatchObject({ code: 'pending_approval', sqlstate: '55000' });
  expect(refusal.hint).toEqual(expect.any(String));

  const status = await client.callTool({ name: 'approvals_status', arguments: { approval_id: refusal.approval_id } });
  expect(status.isError).toBeFalsy();
  expect(JSON.stringify(status.structuredContent)).toContain('pending');

  const sql = await client.callTool({ name: 'db_sql', arguments: { sql: 'SELECT count(*)::int AS n FROM orders WHERE tenant_id = $1', params: ['2'] } });
  expect(sql.isError).toBeFalsy();
  expect((sql.structuredContent as { data: Array<{ n: number }> }).data[0].n).toBe(0);

  // Errors as tool errors: a write through db.sql, a hidden field, a tool that does not exist.
  const write = await client.callTool({ name: 'db_sql', arguments: { sql: 'DELETE FROM orders' } });
  expect(write.isError).toBe(true);
  expect(textOf(write).code).toBe('statement_not_allowed');
  const hidden = await client.callTool({ name: 'db_query', arguments: { model: 'customers', where: { api_secret: 'x' } } });
  expect(hidden.isError).toBe(true);
  expect(textOf(hidden).sqlstate).toBe('42703');
  const unknown = await client.callTool({ name: 'db_nothing', arguments: {} });
  expect(unknown.isError).toBe(true);
  expect(textOf(unknown).code).toBe('tool_unknown');
}

describe('MCP over Streamable HTTP (the SDK\'s client, a bearer token)', () => {
  test('initialize, list tools, call each tool, receive errors', async () => {
    const client = new Client({ name: 'tools-doors-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { authorization: `Bearer ${TOKEN}` } } }));
    try {
      expect(client.getServerVersion()?.name).toBe('ormai-proxy');
      await exerciseEveryTool(client);
    } finally {
      await client.close();
    }
  });

  test('the other tenant\'s token sees its own rows; a wrong token cannot connect', async () => {
    const client = new Client({ name: 'tools-doors-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { authorization: `Bearer ${TOKEN2}` } } }));
    try {
      const result = await client.callTool({ name: 'db_query', arguments: { model: 'customers', select: ['name'] } });
      expect((result.structuredContent as { data: Array<{ name: string }> }).data.map((r) => r.name).sort()).toEqual(['Globex Inc', 'Globex Shipping']);
    } finally {
      await client.close();
    }
    const intruder = new Client({ name: 'tools-doors-test', version: '1.0.0' });
    await expect(intruder.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { authorization: 'Bearer not-a-token-0123456789' } } }))).rejects.toThrow();
  });
});

describe('MCP over stdio (`ormai-proxy mcp --user`)', () => {
  test('initialize, list tools, call each tool, receive errors; stdout carries MCP only, the audit lands in its own file', async () => {
    const auditFile = path.join(dir, 'stdio-audit.jsonl');
    writeFileSync(
      path.join(dir, 'ormai.yaml'),
      [
        'database: app',
        'auth: { method: scram-sha-256, users_file: users.yaml }',
        'policies: [policy.yaml]',
        // A stdout sink too: it must go to stderr, not into the MCP channel.
        `audit: { sinks: [{ type: stdout }, { type: file, path: ${JSON.stringify(auditFile)} }] }`,
        'log_level: info',
      ].join('\n'),
    );
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, 'mcp', '--config', path.join(dir, 'ormai.yaml'), '--user', 'tenant1-agent'],
      env: { ...(process.env as Record<string, string>), ORMAI_UPSTREAM_URL: db.url },
      stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const client = new Client({ name: 'tools-doors-stdio', version: '1.0.0' });
    try {
      await client.connect(transport);
      expect(client.getServerVersion()?.name).toBe('ormai-proxy');
      await exerciseEveryTool(client);
    } finally {
      await client.close();
    }
    // The server's logs and the stdout sink's events went to stderr; the end of stdin stopped it (no signal needed).
    expect(stderr).toContain('mcp: serving tools on stdio');
    expect(stderr).toContain('"why":"stdin ended"');
    expect(stderr).toContain('"tool_call_id"');
    expect(existsSync(auditFile)).toBe(true);
    const events = readFileSync(auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent);
    const tools = events.filter((e) => e.tool).map((e) => e.tool!.name);
    expect(tools).toEqual(expect.arrayContaining(['db.describe_schema', 'db.query', 'db.get', 'db.aggregate', 'db.create', 'db.update', 'db.delete', 'db.sql', 'approvals.status']));
    expect(events.every((e) => e.principal?.tenant_id === undefined || e.principal.tenant_id === '1')).toBe(true);

    // A client that writes its requests and closes stdin at once still gets every answer.
    const child = spawn(process.execPath, [CLI, 'mcp', '--config', path.join(dir, 'ormai.yaml'), '--user', 'tenant1-agent'], { env: { ...process.env, ORMAI_UPSTREAM_URL: db.url }, stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stdin!.end(
      [
        { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'batch', version: '1' } } },
        { jsonrpc: '2.0', method: 'notifications/initialized' },
        { jsonrpc: '2.0', id: 2, method: 'tools/list' },
        { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'db_query', arguments: { model: 'orders', limit: 1 } } },
      ]
        .map((m) => JSON.stringify(m))
        .join('\n') + '\n',
    );
    expect(await new Promise((resolve) => child.once('exit', resolve))).toBe(0);
    const answers = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: number; result?: { isError?: boolean } });
    expect(answers.map((a) => a.id)).toEqual([1, 2, 3]);
    expect(answers[2].result?.isError).toBeFalsy();
  }, 60_000);
});

describe('`ormai-proxy tools`: the specs of a principal\'s policy', () => {
  const run = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, 'tools', '--config', path.join(dir, 'ormai.yaml'), ...args], { env: { ...process.env, ORMAI_UPSTREAM_URL: '' } });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };

  beforeAll(() => {
    // No upstream URL at all: the command reads only the policy and users files.
    writeFileSync(path.join(dir, 'ormai.yaml'), 'auth: { users_file: users.yaml }\npolicies: [policy.yaml]\n');
    writeFileSync(path.join(dir, 'token'), `${TOKEN2}\n`);
  });

  test('each format, by --user or by --token-file; exit 1 for an unknown user, 2 for a bad flag', async () => {
    const anthropic = await run('--user', 'tenant1-agent', '--format', 'anthropic');
    expect(anthropic.code).toBe(0);
    const tools = JSON.parse(anthropic.stdout) as Array<{ name: string; input_schema: { type: string } }>;
    expect(tools.map((t) => t.name)).toContain('db_delete');
    expect(tools.every((t) => t.input_schema.type === 'object')).toBe(true);
    const openai = JSON.parse((await run('--token-file', path.join(dir, 'token'), '--format', 'openai')).stdout) as Array<{ type: string; function: { name: string; parameters: unknown } }>;
    expect(openai[0]).toMatchObject({ type: 'function', function: { name: 'db_describe_schema' } });
    const mcp = JSON.parse((await run('--user', 'tenant1-agent', '--format', 'mcp')).stdout) as Array<{ name: string; title: string; inputSchema: unknown }>;
    expect(mcp[1]).toMatchObject({ name: 'db_query', title: 'db.query' });
    const schemas = JSON.parse((await run('--user', 'tenant1-agent')).stdout) as Record<string, { $schema: string }>;
    expect(Object.keys(schemas)).toContain('db.query');
    const unknown = await run('--user', 'nobody');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no user "nobody"');
    expect((await run('--user', 'tenant1-agent', '--format', 'yaml')).code).toBe(2);
    expect((await run()).code).toBe(2);
    const badToken = path.join(dir, 'bad-token');
    writeFileSync(badToken, 'not-a-known-token-0123456789');
    const refused = await run('--token-file', badToken);
    expect(refused.code).toBe(1);
    expect(refused.stderr).not.toContain('not-a-known-token');
  });
});
