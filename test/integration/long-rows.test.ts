// Rows of many megabytes: relayed in pieces as they arrive (backend/framer.ts streamRowsAbove),
// their bytes exact and under the row cap, held whole only where a capture cuts their columns;
// several sessions reading them at once cost the proxy no more than a chunk each.
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { Client } from 'pg';
import { withClient } from '../support/clients';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';

let db: TestDatabase;
let proxy: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url);
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

const connected = <T>(fn: (c: Client) => Promise<T>): Promise<T> => withClient(proxy.url(), fn);

test('long rows arrive whole and exact, under both protocols', async () => {
  const direct = await db.query<{ id: number; name: string }>('SELECT id, name FROM customers WHERE tenant_id = 1 ORDER BY id');
  // 600 kB a row: a few chunks each.
  const times = 60_000;
  const sql = (n: string) => `SELECT id, repeat(name, ${n}) AS big, md5(repeat(name, ${n})) AS h FROM customers ORDER BY id`;
  await connected(async (c) => {
    for (const { rows } of [await c.query(sql(String(times))), await c.query({ text: sql('$1::int'), values: [times] })]) {
      expect(rows.map((r) => r.id)).toEqual(direct.map((r) => r.id));
      for (const [i, r] of rows.entries()) {
        expect(r.big).toBe(direct[i].name.repeat(times));
        expect(r.h).toMatch(/^[0-9a-f]{32}$/);
      }
    }
    // The session goes on as usual.
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  });
});

test('long rows count against max_rows like any other: the cap cuts the 201st and says so', async () => {
  await connected(async (c) => {
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    const sql = 'SELECT g, repeat(name, 30000) AS big FROM customers, generate_series(1, 250) g ORDER BY g, customers.id';
    const simple = await c.query(sql);
    const extended = await c.query({ text: sql.replace('250', '$1::int'), values: [250] });
    for (const { rows } of [simple, extended]) {
      expect(rows).toHaveLength(200);
      expect(rows.every((r) => typeof r.big === 'string' && r.big.length >= 30000)).toBe(true);
    }
    expect(notices.filter((n) => /200/.test(n)).length).toBeGreaterThanOrEqual(2);
  });
});

test('a long row whose columns are cut for a write capture is held whole and cut as before', async () => {
  await connected(async (c) => {
    const [{ id: customer }] = await db.query<{ id: number }>('SELECT id FROM customers WHERE tenant_id = 1 ORDER BY id LIMIT 1');
    const sql = `/*reason='long returning'*/ INSERT INTO orders (customer_id, total_cents, status) VALUES ($1, 1, 'long') RETURNING id, repeat(status, 200000) AS big`;
    const { rows, fields } = await c.query({ text: sql, values: [customer] });
    expect(fields.map((f) => f.name)).toEqual(['id', 'big']);
    expect(rows).toHaveLength(1);
    expect(rows[0].big).toBe('long'.repeat(200000));
    const [written] = await db.query<{ tenant_id: number; status: string }>('SELECT tenant_id, status FROM orders WHERE id = $1', [rows[0].id]);
    expect(written).toEqual({ tenant_id: 1, status: 'long' });
  });
});

/** A client in a process of its own (its memory is not this process's): the length of the value it read. */
function readInChild(url: string, sql: string): Promise<number> {
  const code = `const { Client } = require('pg'); const c = new Client({ connectionString: process.argv[1] });
    c.connect().then(() => c.query(process.argv[2])).then((r) => { process.stdout.write(String(r.rows[0].big.length)); return c.end(); })
      .catch((e) => { process.stdout.write('error ' + e.message); process.exit(1); });`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code, url, sql], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => (status === 0 ? resolve(Number(out)) : reject(new Error(out))));
  });
}

test('four sessions reading 30 MB rows at once cost the proxy a few chunks each, not the rows', async () => {
  const [{ name }] = await db.query<{ name: string }>('SELECT name FROM customers WHERE tenant_id = 1 ORDER BY id LIMIT 1');
  const times = Math.ceil(30_000_000 / name.length);
  const sql = `SELECT repeat(name, ${times}) AS big FROM customers ORDER BY id LIMIT 1`;
  // Buffers live outside the JavaScript heap: arrayBuffers is what rows held whole would show in.
  const held = () => process.memoryUsage().arrayBuffers;
  const before = held();
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, held())), 2);
  try {
    const lengths = await Promise.all([0, 1, 2, 3].map(() => readInChild(proxy.url(), sql)));
    expect(lengths).toEqual([0, 1, 2, 3].map(() => name.length * times));
  } finally {
    clearInterval(sampler);
  }
  // Held whole, the four rows alone would be 120 MB (and their buffers grow by doubling).
  expect((peak - before) / 1024 / 1024).toBeLessThan(40);
});

/** A frontend message: type letter, length, body. */
function message(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const out = Buffer.alloc(5 + body.length);
  out.write(type, 0);
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

const cstring = (s: string): Buffer => Buffer.from(`${s}\0`);

/**
 * A session logged in by the driver whose socket is then read as raw bytes; `send` runs a
 * statement on it as a simple Query, or as Parse, Bind, Execute and Sync of the unnamed statement.
 */
async function rawSession(): Promise<{ socket: Socket; send(sql: string, protocol: 'simple' | 'extended'): void }> {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  const socket = (c as unknown as { connection: { stream: Socket } }).connection.stream;
  for (const event of ['data', 'end', 'close', 'error']) socket.removeAllListeners(event);
  c.removeAllListeners('error');
  c.on('error', () => undefined);
  socket.on('error', () => undefined);
  const none = Buffer.alloc(2);
  return {
    socket,
    send: (sql, protocol) =>
      socket.write(
        protocol === 'simple'
          ? message('Q', cstring(sql))
          : Buffer.concat([message('P', cstring(''), cstring(sql), none), message('B', cstring(''), cstring(''), none, none, none), message('E', cstring(''), Buffer.alloc(4)), message('S')]),
      ),
  };
}

/** The whole messages at the start of `bytes` (their type letters) and where the first incomplete one starts. */
function wholeMessages(bytes: Buffer): { codes: string[]; end: number } {
  let at = 0;
  const codes: string[] = [];
  while (at + 5 <= bytes.length && at + 1 + bytes.readInt32BE(at + 1) <= bytes.length) {
    codes.push(String.fromCharCode(bytes[at]));
    at += 1 + bytes.readInt32BE(at + 1);
  }
  return { codes, end: at };
}

/** The event of the statement whose text holds `marker` (an earlier test's last event may be written after `before` was read). */
async function statementEvent(before: number, marker: string) {
  const ours = () => proxy.auditEvents().slice(before).filter((e) => e.kind === 'statement' && (e.sql ?? '').includes(marker));
  for (let i = 0; i < 50 && ours().length === 0; i++) await new Promise((r) => setTimeout(r, 100));
  return ours()[0];
}

test.each([
  ['simple', ['T']],
  ['extended', ['1', '2']],
] as const)('under the %s protocol, a session that ends while a row is half relayed closes without writing an error into the row; the event counts only whole rows', async (protocol, beforeRow) => {
  const { socket, send } = await rawSession();
  const chunks: Buffer[] = [];
  let received = 0;
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  let first!: () => void;
  const started = new Promise<void>((resolve) => (first = resolve));
  socket.on('data', (d: Buffer) => {
    chunks.push(d);
    received += d.length;
    if (received > 1_000_000) first();
  });
  const before = proxy.auditEvents().length;
  send('SELECT repeat(name, 3000000) AS half_row_marker FROM customers ORDER BY id LIMIT 1', protocol);
  await started;
  socket.pause();
  // The database ends the session's connection while the client holds part of the row.
  const [{ n }] = await db.query<{ n: number }>("SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT repeat(name, 3000000) AS half_row_marker%' AND pid <> pg_backend_pid()");
  expect(n).toBe(1);
  await new Promise((r) => setTimeout(r, 300));
  socket.resume();
  await closed;
  const bytes = Buffer.concat(chunks);
  // Whole messages up to a DataRow, then that row's bytes only: no ErrorResponse inside it.
  const { codes, end } = wholeMessages(bytes);
  expect(codes).toEqual(beforeRow);
  expect(String.fromCharCode(bytes[end])).toBe('D');
  const value = bytes.subarray(end + 11);
  expect(value.includes('SFATAL')).toBe(false);
  expect(value.includes('upstream_lost')).toBe(false);
  expect((await statementEvent(before, 'half_row_marker')).rows).toBe(0);
});

test.each(['simple', 'extended'] as const)('under the %s protocol, a client that leaves in the middle of a result: the rows routed after it left are not counted as received', async (protocol) => {
  const { socket, send } = await rawSession();
  let received = Buffer.alloc(0);
  let left!: () => void;
  const gone = new Promise<void>((resolve) => (left = resolve));
  socket.on('data', (d: Buffer) => {
    received = Buffer.concat([received, d]);
    if (received.length > 2_500_000) {
      socket.destroy();
      left();
    }
  });
  const before = proxy.auditEvents().length;
  send('SELECT g, repeat(name, 100000) AS leaving_marker FROM customers, generate_series(1, 50) g ORDER BY g, customers.id', protocol);
  await gone;
  // Whole rows the client had when it left.
  const rows = wholeMessages(received).codes.filter((c) => c === 'D').length;
  expect(rows).toBeGreaterThanOrEqual(1);
  // What the socket took before the proxy saw it close may count (the kernel's buffers hold a few rows of 1 MB); not the rest.
  expect((await statementEvent(before, 'leaving_marker')).rows).toBeLessThanOrEqual(rows + 4);
});
