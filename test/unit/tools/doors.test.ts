// The tool doors' plumbing over a stand-in ToolRunner: bearer auth, routes, status codes and error shapes
// of POST /agent/tool and GET /agent/tools, and MCP over Streamable HTTP driven by the SDK's own Client.
// The engine behind them is tested end to end against PostgreSQL in test/integration/tools-doors.test.ts.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Principal } from '../../../src/auth/principal';
import { silentLogger } from '../../../src/log';
import { httpStatusOf } from '../../../src/tools/answers';
import { ToolsHttpServer } from '../../../src/tools/http';
import type { ToolSpec } from '../../../src/tools/schemas';
import type { ToolCall, ToolResult, ToolRunner } from '../../../src/tools/types';

const TOKEN = 'tenant1-token-0123456789abcdef';
const NO_POLICY_TOKEN = 'no-policy-token-0123456789abcdef';
const tenant1: Principal = { user: 'tenant1-agent', subject: 'tenant1-agent', tenantId: '1', roles: ['agent'], authMethod: 'token' };
const stranger: Principal = { user: 'stranger', subject: 'stranger', tenantId: '9', roles: ['nobody'], authMethod: 'token' };

const SPECS: ToolSpec[] = [
  { name: 'db.query', description: 'Read rows of one model.', input_schema: { type: 'object', properties: { model: { type: 'string' } }, required: ['model'], additionalProperties: false } },
  { name: 'db.create', description: 'Insert one row.', input_schema: { type: 'object', properties: { model: { type: 'string' }, data: { type: 'object' }, reason: { type: 'string' } }, required: ['model', 'data'] } },
];

/** Answers by tool name, and remembers what it was asked. */
class StandInRunner implements ToolRunner {
  readonly calls: Array<{ principal: Principal; call: ToolCall }> = [];
  async call(principal: Principal, call: ToolCall): Promise<ToolResult> {
    this.calls.push({ principal, call });
    switch (call.name) {
      case 'db.query':
        return { ok: true, data: [{ id: 1, total: '10.00' }], rows: 1, audit_id: 'A1' };
      case 'db.create':
        return { ok: false, error: { code: 'reason_required', sqlstate: '42501', message: 'this write needs a reason', hint: 'Give a reason.' }, audit_id: 'A2' };
      case 'budget':
        return { ok: false, error: { code: 'write_rate_limited', sqlstate: '53400', message: 'too many writes', hint: 'Wait.', retry_after_s: 12.3 } };
      case 'held':
        return { ok: false, error: { code: 'pending_approval', sqlstate: '55000', message: 'held', hint: 'Wait for approval.', approval_id: 'ap1' }, audit_id: 'A3' };
      case 'down':
        return { ok: false, error: { code: 'audit_unavailable', sqlstate: '57P03', message: 'audit down', hint: 'Retry later.' } };
      case 'bad':
        return { ok: false, error: { code: 'tool_arguments_invalid', sqlstate: '22023', message: 'model is required', hint: 'See the input schema.' } };
      default:
        throw new Error('stand-in runner: secret internals');
    }
  }
}

let runner: StandInRunner;
let server: ToolsHttpServer;
let base: string;

beforeAll(async () => {
  runner = new StandInRunner();
  server = new ToolsHttpServer({
    listen: { host: '127.0.0.1', port: 0 },
    authenticate: async (authorization) => {
      if (authorization === `Bearer ${TOKEN}`) return tenant1;
      if (authorization === `Bearer ${NO_POLICY_TOKEN}`) return stranger;
      return undefined;
    },
    runner,
    specs: (principal) => (principal === tenant1 ? SPECS : undefined),
    log: silentLogger,
    maxBodyBytes: 4096,
  });
  const { port } = await server.listen();
  base = `http://127.0.0.1:${port}`;
});
afterAll(() => server.close());

const auth = (token = TOKEN) => ({ authorization: `Bearer ${token}` });
const post = (path: string, body: unknown, headers: Record<string, string> = auth()) =>
  fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

describe('POST /agent/tool', () => {
  test('runs the call as the token\'s principal and answers { data, audit_id, rows }', async () => {
    const res = await post('/agent/tool', { name: 'db.query', arguments: { model: 'orders' }, tool_call_id: 'toolu_1' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data: [{ id: 1, total: '10.00' }], rows: 1, audit_id: 'A1' });
    expect(runner.calls.at(-1)).toEqual({ principal: tenant1, call: { name: 'db.query', arguments: { model: 'orders' }, toolCallId: 'toolu_1' } });
  });

  test('a refusal is { error, audit_id } with its status: 403 policy, 429 budget with Retry-After, 409 held, 503 unavailable, 400 arguments', async () => {
    const refused = await post('/agent/tool', { name: 'db.create', arguments: { model: 'orders', data: {} } });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toEqual({ error: { code: 'reason_required', sqlstate: '42501', message: 'this write needs a reason', hint: 'Give a reason.' }, audit_id: 'A2' });
    const budget = await post('/agent/tool', { name: 'budget', arguments: {} });
    expect(budget.status).toBe(429);
    expect(budget.headers.get('retry-after')).toBe('13');
    expect(((await budget.json()) as { error: { retry_after_s: number } }).error.retry_after_s).toBe(12.3);
    const held = await post('/agent/tool', { name: 'held', arguments: {} });
    expect(held.status).toBe(409);
    expect(((await held.json()) as { error: { approval_id: string } }).error.approval_id).toBe('ap1');
    expect((await post('/agent/tool', { name: 'down' })).status).toBe(503);
    expect((await post('/agent/tool', { name: 'bad' })).status).toBe(400);
  });

  test('arguments default to {}; a runner exception is a 500 internal_error that leaks nothing', async () => {
    await post('/agent/tool', { name: 'db.query' });
    expect(runner.calls.at(-1)?.call).toEqual({ name: 'db.query', arguments: {} });
    const res = await post('/agent/tool', { name: 'explodes', arguments: {} });
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text).error).toMatchObject({ code: 'internal_error', sqlstate: 'XX000' });
    expect(text).not.toContain('secret internals');
  });

  test('a malformed body is 400, a non-JSON one 415, an oversized one 413', async () => {
    expect((await post('/agent/tool', '{not json')).status).toBe(400);
    const wrongShape = await post('/agent/tool', { tool: 'db.query', args: {} });
    expect(wrongShape.status).toBe(400);
    expect(((await wrongShape.json()) as { error: { code: string } }).error.code).toBe('invalid_request');
    expect((await post('/agent/tool', { name: '' })).status).toBe(400);
    const text = await fetch(`${base}/agent/tool`, { method: 'POST', headers: { ...auth(), 'content-type': 'text/plain' }, body: 'x' });
    expect(text.status).toBe(415);
    expect((await post('/agent/tool', { name: 'db.query', arguments: { sql: 'x'.repeat(5000) } })).status).toBe(413);
  });

  test('without a valid bearer token: 401 with WWW-Authenticate, and the runner is not called', async () => {
    const before = runner.calls.length;
    const none = await post('/agent/tool', { name: 'db.query' }, {});
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="ormai-proxy tools"');
    const wrong = await post('/agent/tool', { name: 'db.query' }, auth('not-the-token-0123456789'));
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
    expect(runner.calls.length).toBe(before);
  });
});

describe('routes', () => {
  test('GET /agent/tools lists the principal\'s specs; no policy is 403', async () => {
    const res = await fetch(`${base}/agent/tools`, { headers: auth() });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ tools: SPECS });
    const openai = await fetch(`${base}/agent/tools?format=openai`, { headers: auth() });
    expect(((await openai.json()) as { tools: Array<{ function: { name: string } }> }).tools.map((t) => t.function.name)).toEqual(['db_query', 'db_create']);
    expect((await fetch(`${base}/agent/tools?format=yaml`, { headers: auth() })).status).toBe(400);
    expect((await fetch(`${base}/agent/tools`, { headers: auth(NO_POLICY_TOKEN) })).status).toBe(403);
    expect((await fetch(`${base}/agent/tools`)).status).toBe(401);
  });

  test('unknown paths are 404, wrong methods 405 with Allow (GET /mcp too: the server is stateless)', async () => {
    expect((await fetch(`${base}/agent/nothing`, { headers: auth() })).status).toBe(404);
    expect((await fetch(`${base}/toString`, { headers: auth() })).status).toBe(404);
    const get = await fetch(`${base}/agent/tool`, { headers: auth() });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    const mcpGet = await fetch(`${base}/mcp`, { headers: { ...auth(), accept: 'text/event-stream' } });
    expect(mcpGet.status).toBe(405);
    expect((await fetch(`${base}/mcp`, { method: 'DELETE', headers: auth() })).status).toBe(405);
  });
});

describe('MCP over Streamable HTTP (the SDK client)', () => {
  const connect = async (token = TOKEN) => {
    const client = new Client({ name: 'doors-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: auth(token) } });
    await client.connect(transport);
    return client;
  };

  test('initialize, list the specs as MCP tools, call one: text is the JSON body, structuredContent the same', async () => {
    const client = await connect();
    try {
      expect(client.getServerVersion()?.name).toBe('ormai-proxy');
      expect(client.getInstructions()).toContain('db_describe_schema');
      const { tools } = await client.listTools();
      // Dotless names (model APIs refuse dots), the canonical one as title; reads and writes told apart for the client.
      expect(tools).toEqual([
        { name: 'db_query', title: 'db.query', description: SPECS[0].description, inputSchema: SPECS[0].input_schema, annotations: { readOnlyHint: true, openWorldHint: false } },
        {
          name: 'db_create',
          title: 'db.create',
          description: SPECS[1].description,
          inputSchema: SPECS[1].input_schema,
          annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
        },
      ]);
      const result = await client.callTool({ name: 'db_query', arguments: { model: 'orders' } });
      expect(result.isError).toBeFalsy();
      const body = { data: [{ id: 1, total: '10.00' }], audit_id: 'A1', rows: 1 };
      expect(result.structuredContent).toEqual(body);
      expect(JSON.parse((result.content as Array<{ text: string }>)[0].text)).toEqual(body);
      expect(runner.calls.at(-1)?.principal).toBe(tenant1);
      expect(runner.calls.at(-1)?.call.name).toBe('db.query');
      expect(runner.calls.at(-1)?.call.toolCallId).toMatch(/^\d+$/);
    } finally {
      await client.close();
    }
  });

  test('a refusal is a tool error whose text is the catalogue\'s object (and audit_id); _meta.tool_call_id reaches the runner', async () => {
    const client = await connect();
    try {
      const result = await client.callTool({ name: 'db_create', arguments: { model: 'orders', data: {} }, _meta: { tool_call_id: 'toolu_42' } });
      expect(result.isError).toBe(true);
      expect(result.structuredContent).toBeUndefined();
      expect(JSON.parse((result.content as Array<{ text: string }>)[0].text)).toEqual({
        code: 'reason_required',
        sqlstate: '42501',
        message: 'this write needs a reason',
        hint: 'Give a reason.',
        audit_id: 'A2',
      });
      expect(runner.calls.at(-1)?.call.toolCallId).toBe('toolu_42');
      const budget = await client.callTool({ name: 'budget', arguments: {} });
      expect(JSON.parse((budget.content as Array<{ text: string }>)[0].text)).toMatchObject({ code: 'write_rate_limited', retry_after_s: 12.3 });
      const failed = await client.callTool({ name: 'explodes', arguments: {} });
      expect(failed.isError).toBe(true);
      expect((failed.content as Array<{ text: string }>)[0].text).not.toContain('secret internals');
    } finally {
      await client.close();
    }
  });

  test('a wrong token cannot initialize (401); a principal without a policy is refused (403)', async () => {
    await expect(connect('wrong-token-0123456789abcdef')).rejects.toThrow(/401|nauthorized/);
    await expect(connect(NO_POLICY_TOKEN)).rejects.toThrow(/403|policy/);
  });
});

describe('httpStatusOf', () => {
  test.each([
    ['field_denied', '42703', 400],
    ['model_not_allowed', '42P01', 403],
    ['model_writes_disabled', '42501', 403],
    ['max_affected_rows_exceeded', '54000', 403],
    ['query_rate_limited', '53400', 429],
    ['pending_approval', '55000', 409],
    ['rate_store_unavailable', '57P03', 503],
    ['upstream_unavailable', '08006', 503],
    ['statement_timeout', '57014', 504],
    ['unique_violation', '23505', 409],
    ['row_not_found', 'P0002', 404],
    ['tool_unknown', '42883', 404],
    ['tool_arguments_invalid', '22023', 400],
    ['a_plpgsql_no_data', 'P0002', 404],
    ['internal_error', 'XX000', 500],
  ])('%s (%s) → %i', (code, sqlstate, status) => {
    expect(httpStatusOf({ code, sqlstate, message: '' })).toBe(status);
  });
});
