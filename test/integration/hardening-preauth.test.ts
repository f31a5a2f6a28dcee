// Clients that have not logged in cannot grow the proxy's memory or take logged-in agents' places:
// a small message limit applied at the length header, a login deadline, a separate startup cap.
import net from 'node:net';
import { Client } from 'pg';
import { byte, concat, cstr, int32, startupPacket } from '../support/bytes';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { MB, metric, newSessionRunsNewStatement } from '../support/hardening';
import { startTestProxy, type TestProxy } from '../support/proxy';

let db: TestDatabase;
let proxy: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url, { startup: { timeout_ms: 1500, max_connections: 8 } });
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

interface Raw {
  socket: net.Socket;
  received(): Buffer;
  closed: Promise<void>;
}

async function connectRaw(): Promise<Raw> {
  const socket = net.connect(proxy.port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const chunks: Buffer[] = [];
  socket.on('data', (c) => chunks.push(c));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, received: () => Buffer.concat(chunks), closed };
}

/** The SQLSTATE of the FATAL ErrorResponse in what the proxy sent, if any. */
function fatalCode(bytes: Buffer): string | undefined {
  const at = bytes.indexOf(Buffer.from('SFATAL\0'));
  if (at < 0) return undefined;
  const c = bytes.indexOf(Buffer.from('\0C'), at);
  return bytes.subarray(c + 2, c + 7).toString('latin1');
}

/** What the proxy's process holds in JavaScript: heap and buffers (RSS also moves with the allocator's arenas). */
function held(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const waitFor = async (cond: () => boolean, ms = 5000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
};

test('a password or SASL message announced as 60 MB is refused at its length header, before its bytes arrive', async () => {
  const mem = held();
  const before = await metric(proxy, 'ormai_connections_refused_total', { reason: 'startup_message_too_large' });
  const payload = Buffer.alloc(1024 * 1024, 0x61);
  const clients: Raw[] = [];
  // In fours: the startup slots (8 here) are not what this test is about.
  for (let batch = 0; batch < 5; batch++) {
    const four = await Promise.all(Array.from({ length: 4 }, () => connectRaw()));
    clients.push(...four);
    await Promise.all(four.map(async (c, j) => {
      const i = batch * 4 + j;
      c.socket.write(startupPacket({ user: 'tenant1-agent', database: 'app' }));
      await waitFor(() => c.received().length > 0);
      // 'p' is the password, SASLInitialResponse and SASLResponse message alike.
      const body = i % 2 === 0 ? concat(cstr('SCRAM-SHA-256'), int32(60 * MB)) : Buffer.alloc(0);
      c.socket.write(concat(byte(0x70), int32(60 * MB + 4), body));
      // Keep sending: the refusal must not wait for the announced bytes.
      for (let k = 0; k < 3 && !c.socket.destroyed; k++) c.socket.write(payload);
      await c.closed;
    }));
  }
  for (const c of clients) expect(fatalCode(c.received())).toBe('08P01');
  expect(await metric(proxy, 'ormai_connections_refused_total', { reason: 'startup_message_too_large' })).toBe(before + 20);
  await newSessionRunsNewStatement(proxy);
  // 20 clients × up to 3 MB sent: nothing of it was kept (was +322 MB for 20 × 60 MB).
  expect(held() - mem).toBeLessThan(40 * MB);
});

test('a client that does not finish logging in gets FATAL 08006 at the deadline', async () => {
  const c = await connectRaw();
  c.socket.write(startupPacket({ user: 'tenant1-agent', database: 'app' }));
  const started = Date.now();
  await c.closed;
  expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  expect(fatalCode(c.received())).toBe('08006');
  expect(await metric(proxy, 'ormai_connections_refused_total', { reason: 'startup_timeout' })).toBeGreaterThanOrEqual(1);
});

test('30 clients trickling one byte at a time take no logged-in place, and real logins still succeed', async () => {
  const mem = held();
  const agent = new Client({ connectionString: proxy.url() });
  await agent.connect();
  const slow = await Promise.all(Array.from({ length: 30 }, () => connectRaw()));
  const startup = startupPacket({ user: 'tenant1-agent', database: 'app' });
  let sent = 0;
  const trickle = setInterval(() => {
    sent++;
    for (const c of slow) if (!c.socket.destroyed && sent < startup.length) c.socket.write(startup.subarray(sent - 1, sent));
  }, 100);
  try {
    await new Promise((r) => setTimeout(r, 300));
    // A real login while the startup slots are contested: the oldest stalling client gives way.
    for (let i = 0; i < 5; i++) await newSessionRunsNewStatement(proxy);
    expect((await agent.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
  } finally {
    clearInterval(trickle);
  }
  await Promise.all(slow.map((c) => c.closed));
  const codes = slow.map((c) => fatalCode(c.received()));
  expect(codes.every((code) => code === '53300' || code === '08006')).toBe(true);
  expect(await metric(proxy, 'ormai_connections_refused_total', { reason: 'startup_connections' })).toBeGreaterThanOrEqual(22);
  await agent.end();
  expect(held() - mem).toBeLessThan(40 * MB);
});

test('max_client_connections counts logged-in sessions only', async () => {
  const other = await startTestProxy(db.url, { max_client_connections: 2, startup: { max_connections: 4 } });
  const pending = await Promise.all(Array.from({ length: 3 }, () => new Promise<net.Socket>((resolve) => {
    const s = net.connect(other.port, '127.0.0.1', () => resolve(s));
    s.on('error', () => undefined);
  })));
  const a = new Client({ connectionString: other.url() });
  const b = new Client({ connectionString: other.url() });
  try {
    await a.connect();
    await b.connect();
    const c = new Client({ connectionString: other.url() });
    await expect(c.connect()).rejects.toMatchObject({ code: '53300' });
  } finally {
    for (const s of pending) s.destroy();
    await a.end();
    await b.end();
    await other.close();
  }
});

test('max_connections_per_tenant: one tenant cannot take every connection; another still logs in', async () => {
  const other = await startTestProxy(db.url, { max_connections_per_tenant: 2 });
  const open: Client[] = [];
  const connect = async (user: string, password: string) => {
    const c = new Client({ connectionString: other.url(user, password) });
    c.on('error', () => undefined);
    await c.connect();
    open.push(c);
    return c;
  };
  try {
    const first = await connect('tenant1-agent', 'tenant1-password');
    await connect('tenant1-agent', 'tenant1-password');
    await expect(connect('tenant1-agent', 'tenant1-password')).rejects.toMatchObject({ code: '53300', message: expect.stringMatching(/this tenant already has 2 sessions/) });
    // Another tenant's agent is not held back by tenant 1's sessions.
    expect((await (await connect('tenant2-agent', 'tenant2-password')).query('SELECT 1 AS n')).rows[0].n).toBe(1);
    // A session of tenant 1 ends: its place is free again (once the proxy has seen it close).
    await first.end();
    open.splice(open.indexOf(first), 1);
    let again: Client | undefined;
    for (let i = 0; i < 50 && !again; i++) again = await connect('tenant1-agent', 'tenant1-password').catch(() => new Promise<undefined>((r) => setTimeout(() => r(undefined), 20)));
    expect(again).toBeDefined();
    expect(await metric(other, 'ormai_connections_refused_total', { reason: 'too_many_connections' })).toBeGreaterThanOrEqual(1);
  } finally {
    await Promise.all(open.map((c) => c.end().catch(() => undefined)));
    await other.close();
  }
});
