// Malformed and oversized wire messages, connection caps, forged cancel keys: clear errors, never a crash.
import net from 'node:net';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { activeStatements, loginError, SLOW_QUERY, waitFor } from '../support/clients';

let db: TestDatabase;
let proxy: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url, { max_message_size: '1MiB' });
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

async function stillServes(): Promise<void> {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  try {
    expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
  } finally {
    await c.end();
  }
}

/** Logs in with pg, then writes raw bytes on its socket and returns the error the proxy answers with. */
async function afterLoginSend(bytes: Buffer): Promise<Error & { code?: string }> {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  const failed = new Promise<Error & { code?: string }>((resolve) => {
    c.on('error', (e) => resolve(e as Error & { code?: string }));
    c.on('end', () => resolve(Object.assign(new Error('ended without an error'), { code: 'none' })));
  });
  (c as unknown as { connection: { stream: net.Socket } }).connection.stream.write(bytes);
  const err = await failed;
  await c.end().catch(() => undefined);
  return err;
}

function frame(type: string, body: Buffer, lengthOverride?: number): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(lengthOverride ?? body.length + 4, 1);
  return Buffer.concat([head, body]);
}

test('a message over max_message_size ends that connection with 08P01, and only that one', async () => {
  const err = await afterLoginSend(frame('Q', Buffer.alloc(0), 512 * 1024 * 1024));
  expect(err.code).toBe('08P01');
  expect(err.message).toMatch(/message_too_large/);
  await stillServes();
});

test('a row from the database over max_message_size ends that session with the reason, never held whole, under both protocols; the statement has its event and the proxy keeps serving', async () => {
  // A value of 2 MB from the table (nothing the planner folds): over the 1 MiB limit.
  const sql = (n: string) => `SELECT id, repeat(name, ${n}) AS big FROM customers ORDER BY id LIMIT 1`;
  const [{ name }] = await db.query<{ name: string }>('SELECT name FROM customers WHERE tenant_id = 1 ORDER BY id LIMIT 1');
  const times = Math.ceil(2_000_000 / name.length);
  const rowBytes = 1 + 4 + 2 + (4 + 1) + 4 + name.length * times;
  const before = proxy.auditEvents().length;
  for (const extended of [false, true]) {
    const c = new Client({ connectionString: proxy.url() });
    await c.connect();
    const ended = new Promise<void>((resolve) => c.on('end', () => resolve()));
    c.on('error', () => undefined);
    const err = (await c.query(extended ? { text: sql('$1::int'), values: [times] } : sql(String(times))).catch((e: unknown) => e)) as Error & { code?: string; severity?: string; hint?: string };
    expect({ code: err.code, severity: err.severity, message: err.message }).toEqual({
      code: '54000',
      severity: 'FATAL',
      message: `result_too_large: a row of the result is ${rowBytes} bytes; one message from the database may be at most 1048576 bytes`,
    });
    expect(err.hint).toMatch(/left\(col, 1000\)/);
    await ended;
    await c.end().catch(() => undefined);
  }
  // Each statement's event says what PostgreSQL did with it (its rows, or the cancel), with the rows the client got: none.
  // This test's statements only: an earlier test's last event may be written after `before` was read.
  const ours = () => proxy.auditEvents().slice(before).filter((e) => e.kind === 'statement' && (e.sql ?? '').includes('AS big'));
  await waitFor(async () => ours().length >= 2, 5000);
  const events = ours();
  expect(events.map((e) => [e.protocol, e.rows])).toEqual([['simple', 0], ['extended', 0]]);
  // Each session's disconnect event says why the proxy ended it.
  const endsOf = () => proxy.auditEvents().slice(before).filter((e) => e.kind === 'connection' && e.decision === 'disconnect' && events.some((s) => s.session_id === e.session_id));
  await waitFor(async () => endsOf().length >= 2, 5000);
  const ends = endsOf();
  expect(ends.map((e) => e.code)).toEqual(['result_too_large', 'result_too_large']);
  await stillServes();
  // Below the limit, the same statement answers as PostgreSQL does.
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  try {
    expect((await c.query(sql('100'))).rows[0].big).toBe(name.repeat(100));
  } finally {
    await c.end();
  }
});

test('an error message from the database over max_message_size ends that session with the reason, and the statement\'s event says it failed, under both protocols', async () => {
  // PostgreSQL quotes the 2 MB value it cannot cast in its error message.
  const sql = (n: string) => `SELECT (name || repeat('x', ${n} + id))::int AS n FROM customers ORDER BY id LIMIT 1`;
  const before = proxy.auditEvents().length;
  for (const extended of [false, true]) {
    const c = new Client({ connectionString: proxy.url() });
    await c.connect();
    c.on('error', () => undefined);
    const err = (await c.query(extended ? { text: sql('$1::int'), values: [2_000_000] } : sql('2000000')).catch((e: unknown) => e)) as Error & { code?: string; severity?: string };
    expect({ code: err.code, severity: err.severity }).toEqual({ code: '54000', severity: 'FATAL' });
    expect(err.message).toMatch(/^result_too_large: a message from the database is \d+ bytes; one message may be at most 1048576 bytes$/);
    await c.end().catch(() => undefined);
  }
  // This test's statements only: an earlier test's last event may be written after `before` was read.
  const ours = () => proxy.auditEvents().slice(before).filter((e) => e.kind === 'statement' && (e.sql ?? '').includes('::int AS n'));
  await waitFor(async () => ours().length >= 2, 5000);
  const events = ours();
  expect(events.map((e) => [e.protocol, e.decision, e.code])).toEqual([
    ['simple', 'error', '54000'],
    ['extended', 'error', '54000'],
  ]);
  await stillServes();
});

test.each([
  ['unknown message type', frame('!', Buffer.from('x'))],
  ['length shorter than its own header', frame('Q', Buffer.alloc(0), 2)],
  ['Query without a terminating NUL', frame('Q', Buffer.from('SELECT 1'))],
  ['Bind with a parameter count larger than the body', frame('B', Buffer.concat([Buffer.from('\0\0'), Buffer.from([0, 0, 0, 9])]))],
  ['Describe of an unknown target', frame('D', Buffer.from('X\0'))],
])('%s gives a protocol violation, and the proxy keeps serving', async (_name, bytes) => {
  const err = await afterLoginSend(bytes);
  expect(err.code).toBe('08P01');
  await stillServes();
});

test('random garbage before and after login never crashes the proxy', async () => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  for (let i = 0; i < 40; i++) {
    const junk = Buffer.from(Array.from({ length: 1 + (rand() % 64) }, () => rand() & 0xff));
    await new Promise<void>((resolve) => {
      const s = net.connect(proxy.port, '127.0.0.1', () => s.end(junk));
      s.on('data', () => undefined);
      s.on('close', () => resolve());
      s.on('error', () => resolve());
      setTimeout(() => {
        s.destroy();
        resolve();
      }, 1000);
    });
  }
  for (let i = 0; i < 20; i++) {
    const junk = Buffer.from(Array.from({ length: 5 + (rand() % 64) }, () => rand() & 0xff));
    await afterLoginSend(junk);
  }
  await stillServes();
});

function cancelPacket(pid: number, key: number): Buffer {
  const packet = Buffer.alloc(16);
  packet.writeInt32BE(16, 0);
  packet.writeInt32BE(80877102, 4);
  packet.writeInt32BE(pid, 8);
  packet.writeInt32BE(key, 12);
  return packet;
}

/** Starts the slow statement, sends `packets` as CancelRequests, and reports whether it is still running after. */
async function survivesCancels(c: Client, packets: Buffer[]): Promise<boolean> {
  const running = c.query(SLOW_QUERY).catch((e: { code?: string }) => e);
  const slow = () => activeStatements(db.url, 'generate_series(1, 200000)');
  expect(await waitFor(async () => (await slow()) === 1, 3000)).toBe(true);
  for (const packet of packets) await rawExchange(packet, 100);
  await new Promise((r) => setTimeout(r, 400));
  const survived = (await slow()) === 1;
  // Now cancel it for real, with the session's own key.
  const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
  await rawExchange(cancelPacket(processID, secretKey), 100);
  expect(await running).toMatchObject({ code: '57014' });
  return survived;
}

test('a forged cancel key cancels nothing; the real one cancels', async () => {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  try {
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    expect(await survivesCancels(c, [cancelPacket(processID, (secretKey + 1) | 0), cancelPacket(processID + 1, secretKey)])).toBe(true);
  } finally {
    await c.end();
  }
});

test('the agent sees its own name as session_authorization, and no superuser flag', async () => {
  const c = new Client({ connectionString: proxy.url() });
  const seen: Record<string, string> = {};
  (c as unknown as { connection: NodeJS.EventEmitter }).connection.on('parameterStatus', (m: { parameterName: string; parameterValue: string }) => {
    seen[m.parameterName] = m.parameterValue;
  });
  await c.connect();
  await c.end();
  expect(seen.session_authorization).toBe('tenant1-agent');
  expect(seen.is_superuser).toBe('off');
  expect(seen.server_version).toMatch(/^\d+/);
});

test('client connections beyond max_client_connections get a clear 53300', async () => {
  const small = await startTestProxy(db.url, { max_client_connections: 2 });
  const clients: Client[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const c = new Client({ connectionString: small.url() });
      await c.connect();
      clients.push(c);
    }
    expect(await loginError(small.url())).toMatchObject({ code: '53300' });
    await clients.pop()!.end();
    // Capacity is back once a client leaves.
    await new Promise((r) => setTimeout(r, 100));
    const again = new Client({ connectionString: small.url() });
    await again.connect();
    clients.push(again);
  } finally {
    for (const c of clients) await c.end().catch(() => undefined);
    await small.close();
  }
});

/** Opens a raw connection, sends `bytes`, and collects what the proxy answers within `ms`. */
function rawExchange(bytes: Buffer, ms = 500): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect(proxy.port, '127.0.0.1', () => s.write(bytes));
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => undefined);
    const done = () => {
      s.destroy();
      resolve(Buffer.concat(chunks));
    };
    s.on('close', done);
    setTimeout(done, ms);
  });
}

function startup(major: number, minor: number, params: Record<string, string>): Buffer {
  const body = Buffer.concat([...Object.entries(params).flatMap(([k, v]) => [Buffer.from(`${k}\0${v}\0`)]), Buffer.from([0])]);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt16BE(major, 4);
  head.writeInt16BE(minor, 6);
  return Buffer.concat([head, body]);
}

test('a client asking for protocol 3.2 is answered with NegotiateProtocolVersion, then authenticated on 3.0', async () => {
  const answer = await rawExchange(startup(3, 2, { user: 'tenant1-agent', database: 'app', '_pq_.test_option': 'x' }));
  expect(String.fromCharCode(answer[0])).toBe('v');
  const length = answer.readInt32BE(1);
  expect(answer.readInt32BE(5)).toBe(0); // newest minor version supported
  expect(answer.readInt32BE(9)).toBe(1); // one unrecognised option
  expect(answer.toString('utf8', 13, 1 + length - 1)).toBe('_pq_.test_option');
  expect(String.fromCharCode(answer[1 + length])).toBe('R'); // authentication request follows
});

test('protocol 2 is refused with a clear FATAL', async () => {
  const answer = await rawExchange(startup(2, 0, { user: 'tenant1-agent' }));
  expect(String.fromCharCode(answer[0])).toBe('E');
  expect(answer.toString('utf8')).toMatch(/unsupported_protocol/);
});

test('a second SSLRequest or GSSENCRequest is refused as PostgreSQL refuses it, after one answer each', async () => {
  const request = (code: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeInt32BE(8, 0);
    b.writeInt32BE(code, 4);
    return b;
  };
  const ssl = request(80877103);
  const gss = request(80877104);
  const twice = await rawExchange(Buffer.concat([ssl, ssl]));
  expect(twice.toString('latin1', 0, 2)).toBe('NE');
  expect(twice.toString('utf8')).toMatch(/unsupported frontend protocol 1234\.5679/);
  const gssTwice = await rawExchange(Buffer.concat([gss, ssl, gss]));
  expect(gssTwice.toString('latin1', 0, 3)).toBe('NNE');
  expect(gssTwice.toString('utf8')).toMatch(/unsupported frontend protocol 1234\.5680/);
  // One of each is still answered and the startup behind them proceeds.
  const once = await rawExchange(Buffer.concat([ssl, gss, startup(3, 0, { user: 'tenant1-agent', database: 'app' })]));
  expect(once.toString('latin1', 0, 3)).toBe('NNR');
});

test('GSSENCRequest is answered N', async () => {
  const req = Buffer.alloc(8);
  req.writeInt32BE(8, 0);
  req.writeInt32BE(80877104, 4);
  expect((await rawExchange(req, 200)).toString('latin1')).toBe('N');
});

test('a stale cancel key (from a closed session) cancels nothing in a new session', async () => {
  const old = new Client({ connectionString: proxy.url() });
  await old.connect();
  const { processID, secretKey } = old as unknown as { processID: number; secretKey: number };
  await old.end();
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  try {
    expect(await survivesCancels(c, [cancelPacket(processID, secretKey)])).toBe(true);
  } finally {
    await c.end();
  }
});

test('an SSLRequest without TLS configured is answered N, and a startup sent right behind it proceeds', async () => {
  const ssl = Buffer.alloc(8);
  ssl.writeInt32BE(8, 0);
  ssl.writeInt32BE(80877103, 4);
  const answer = await rawExchange(Buffer.concat([ssl, startup(3, 0, { user: 'tenant1-agent', database: 'app' })]));
  expect(answer.toString('latin1', 0, 2)).toBe('NR');
});

test('a 12.8 MB result arrives whole under both protocols, read from the upstream a turn of the event loop at a time', async () => {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  try {
    const sql = 'SELECT g, repeat(md5(g::text), 20000) AS v FROM generate_series(1, 20) g ORDER BY g';
    const direct = await db.query<{ v: string }>(sql);
    expect(direct.reduce((n, r) => n + r.v.length, 0)).toBe(12_800_000);
    for (const extended of [false, true]) {
      const { rows } = await c.query(extended ? { text: sql.replace('1, 20)', '1, $1::int)'), values: [20] } : sql);
      expect(rows.map((r: { v: string }) => r.v)).toEqual(direct.map((r) => r.v));
    }
  } finally {
    await c.end();
  }
});
