// Answers a caller does not read, on a real PostgreSQL: a call keeps its caller's session (one of 4) until its answer
// is out, an unread answer is abandoned after tools.response_timeout_ms and its session comes back, a client that
// goes away gives its session back at once, and /mcp refuses JSON-RPC batches. Every call that ran keeps its audit event.
import net from 'node:net';
import path from 'node:path';
import type { AuditEvent } from '../../src/audit/event';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startToolHarness, TOOL_TOKENS, type ToolHarness } from '../support/tools';

const POLICY = path.resolve(__dirname, '..', 'fixtures', 'tool-policy.yaml');

/** ~16 MB of rows (under the default tools.max_result_bytes): far more than the socket buffers of a client that does not read take. */
const BIG = { sql: 'select repeat($1, 80000) as a from generate_series(1, 200)', params: ['x'] };
const BIG_BYTES = 200 * 80000;
const SMALL = { sql: 'select 1 as one', params: [] };

/** A connection that sends one request and never reads its answer: the adversary's client. */
interface Unread {
  socket: net.Socket;
  /** Resumes reading and resolves with the bytes received once the proxy has closed the connection. */
  drain(): Promise<number>;
}

function sendUnread(port: number, route: '/agent/tool' | '/mcp', body: unknown): Unread {
  const text = JSON.stringify(body);
  const headers: Record<string, string | number> = {
    host: '127.0.0.1',
    authorization: `Bearer ${TOOL_TOKENS.tenant1}`,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...(route === '/mcp' ? { accept: 'application/json, text/event-stream' } : {}),
  };
  const socket = net.connect(port, '127.0.0.1');
  socket.pause();
  let received = 0;
  socket.on('data', (chunk: Buffer) => (received += chunk.length));
  // A dropped connection may read as a reset.
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(`POST ${route} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${text}`);
  return {
    socket,
    drain: async () => {
      socket.resume();
      await closed;
      return received;
    },
  };
}

const agentCall = (id: string, args: unknown) => ({ name: 'db.sql', arguments: args, tool_call_id: id });
const mcpCall = (id: string, args: unknown, rpcId: number | string = id) => ({
  jsonrpc: '2.0',
  id: rpcId,
  method: 'tools/call',
  params: { name: 'db_sql', arguments: args, _meta: { tool_call_id: id } },
});

async function post(h: ToolHarness, route: '/agent/tool' | '/mcp', body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.base}${route}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOOL_TOKENS.tenant1}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** The audit events of these tool_call_ids, once each is in the file. */
async function eventsOf(h: ToolHarness, ids: string[]): Promise<AuditEvent[]> {
  for (let i = 0; i < 250; i++) {
    const events = h.proxy.auditEvents().filter((e) => e.tool_call_id !== undefined && ids.includes(e.tool_call_id));
    if (ids.every((id) => events.some((e) => e.tool_call_id === id))) return events;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no audit events for ${ids.join(', ')}`);
}

/** Four unread calls of tenant1 with big answers, two through each door; resolves once their statements have run. */
async function holdAllSessions(h: ToolHarness, tag: string): Promise<Unread[]> {
  const port = h.proxy.tools.http!.port;
  const ids = [1, 2, 3, 4].map((n) => `${tag}-${n}`);
  const unread = ids.map((id, n) => (n % 2 === 0 ? sendUnread(port, '/agent/tool', agentCall(id, BIG)) : sendUnread(port, '/mcp', mcpCall(id, BIG))));
  const events = await eventsOf(h, ids);
  // One event per call, written when its statement ran: dropping the answer later loses none.
  expect(events).toHaveLength(4);
  expect(events.every((e) => e.decision === 'allowed' && e.tool?.name === 'db.sql')).toBe(true);
  return unread;
}

/**
 * Polls until all four sessions of tenant1 are free: with max_queued_calls: 1, five calls at once all succeed only
 * then (four run and one waits); while a session is held, one of them is refused.
 */
async function untilAllSessionsFree(h: ToolHarness): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const all = await Promise.all([1, 2, 3, 4, 5].map((n) => post(h, '/agent/tool', agentCall(`probe-${i}-${n}`, SMALL))));
    if (all.every((r) => r.status === 200)) return;
    expect(all.filter((r) => r.status !== 200).every((r) => r.body.error?.code === 'too_many_connections')).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the sessions held by unread answers did not come back');
}

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('a client that does not read its answers (tools.response_timeout_ms: 3000, max_queued_calls: 1)', () => {
  let h: ToolHarness;
  const open: Unread[] = [];

  beforeAll(async () => {
    h = await startToolHarness(db.url, POLICY, { tools: { listen: '127.0.0.1:0', max_queued_calls: 1, response_timeout_ms: 3000 } });
  });
  afterAll(async () => {
    for (const u of open) u.socket.destroy();
    await h?.close();
  });

  test('its unread answers keep its 4 sessions: one more call waits, the next is refused; after the timeout the connections are dropped and the sessions come back', async () => {
    const unread = await holdAllSessions(h, 'unread');
    open.push(...unread);

    // The four statements are done, so only their unsent answers hold the sessions: of two more calls, one waits
    // in the queue (max_queued_calls: 1) and the other is refused.
    const [a, b] = await Promise.allSettled([post(h, '/agent/tool', agentCall('waits-a', SMALL)), post(h, '/agent/tool', agentCall('waits-b', SMALL))]).then((all) =>
      all.map((r) => (r.status === 'fulfilled' ? r.value : { status: 0, body: { error: String(r.reason) } })),
    );
    const statuses = [a.status, b.status].sort();
    expect(statuses).toEqual([200, 503]);
    const refused = a.status === 503 ? a : b;
    expect(refused.body.error).toMatchObject({ code: 'too_many_connections', sqlstate: '53300' });
    expect(refused.body.audit_id).toEqual(expect.any(String));
    // The queued one ran only once an unread answer was abandoned and its session given back.
    expect((a.status === 200 ? a : b).body.data).toEqual([{ one: 1 }]);

    // The other three answers are abandoned in turn (each 3 s after its call), and their sessions come back.
    await untilAllSessionsFree(h);
    // Each unread connection was dropped with most of its answer unsent (what it gets is what the kernel buffered).
    for (const u of unread) expect(await u.drain()).toBeLessThan(BIG_BYTES);
  });

  test('an answer the client reads arrives whole, through both doors', async () => {
    const viaTool = await post(h, '/agent/tool', agentCall('read-tool', BIG));
    expect(viaTool.status).toBe(200);
    expect(viaTool.body.rows).toBe(200);
    expect(viaTool.body.data[0].a).toHaveLength(80000);
    const viaMcp = await post(h, '/mcp', mcpCall('read-mcp', BIG, 7));
    expect(viaMcp.status).toBe(200);
    expect(viaMcp.body).toMatchObject({ jsonrpc: '2.0', id: 7, result: { structuredContent: { rows: 200 } } });
  });
});

describe('a client that goes away (tools.response_timeout_ms: 600000)', () => {
  let h: ToolHarness;

  beforeAll(async () => {
    h = await startToolHarness(db.url, POLICY, { tools: { listen: '127.0.0.1:0', response_timeout_ms: 600_000 } });
  });
  afterAll(async () => {
    await h?.close();
  });

  test('closing the connections gives the sessions back at once, long before the timeout', async () => {
    const unread = await holdAllSessions(h, 'gone');
    for (const u of unread) u.socket.destroy();
    // Five calls: four run and one waits. Were a session kept by a closed connection, they would wait for the
    // 10-minute timeout, and this test would fail on Jest's.
    const after = await Promise.all([1, 2, 3, 4, 5].map((n) => post(h, '/agent/tool', agentCall(`back-${n}`, SMALL))));
    expect(after.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
  });

  test('a call whose client leaves while it waits for a session never runs, through both doors; its event says so', async () => {
    const unread = await holdAllSessions(h, 'busy');
    const port = h.proxy.tools.http!.port;
    // Both wait: the caller's four sessions are held by unread answers.
    const waiting = [sendUnread(port, '/agent/tool', agentCall('left-tool', SMALL)), sendUnread(port, '/mcp', mcpCall('left-mcp', SMALL))];
    await new Promise((r) => setTimeout(r, 300));
    expect(h.proxy.auditEvents().filter((e) => e.tool_call_id?.startsWith('left-'))).toEqual([]);
    for (const w of waiting) w.socket.destroy();
    const events = await eventsOf(h, ['left-tool', 'left-mcp']);
    expect(events.map((e) => [e.tool_call_id, e.decision, e.code]).sort()).toEqual([
      ['left-mcp', 'refused', 'call_abandoned'],
      ['left-tool', 'refused', 'call_abandoned'],
    ]);
    // The sessions come back; the calls of the callers that left do not run then.
    for (const u of unread) u.socket.destroy();
    const after = await Promise.all([1, 2, 3, 4].map((n) => post(h, '/agent/tool', agentCall(`after-left-${n}`, SMALL))));
    expect(after.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    await new Promise((r) => setTimeout(r, 300));
    const left = h.proxy.auditEvents().filter((e) => e.tool_call_id?.startsWith('left-'));
    expect(left).toHaveLength(2);
    expect(h.proxy.auditEvents().filter((e) => e.kind === 'statement' && e.tool_call_id?.startsWith('left-'))).toEqual([]);
  });

  test('/mcp refuses a JSON-RPC batch with Invalid Request and runs none of it; one message per POST still works', async () => {
    const batch = await post(h, '/mcp', [mcpCall('batch-1', SMALL, 1), mcpCall('batch-2', SMALL, 2)]);
    expect(batch.status).toBe(400);
    expect(batch.body).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32600, message: expect.stringMatching(/batch/) } });

    const single = await post(h, '/mcp', mcpCall('single', SMALL, 3));
    expect(single).toMatchObject({ status: 200, body: { jsonrpc: '2.0', id: 3, result: { structuredContent: { data: [{ one: 1 }] } } } });
    // The single call's event is in the file, and the batch's calls (sent before it) have none.
    await eventsOf(h, ['single']);
    expect(h.proxy.auditEvents().filter((e) => e.tool_call_id?.startsWith('batch-'))).toEqual([]);
  });
});
