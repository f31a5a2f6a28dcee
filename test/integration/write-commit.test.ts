// Writes commit only once their audit events are durable (I7): an autocommit write runs in a block the proxy
// commits after its event is recorded, a COMMIT waits for the events of its transaction's writes, and a write whose
// event cannot be recorded is rolled back and the agent told so. Every case under both protocols; the audit sink is
// a table in the test database reached through a relay the test can stall.
import path from 'node:path';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { modes, send, type Mode } from '../support/modes';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { relayTo, type Relay } from '../support/relay';

const POLICY = path.resolve(__dirname, '..', 'fixtures', 'write-policy.yaml');
const R = "/*reason='commit test'*/ ";
let db: TestDatabase;
let relay: Relay;
let proxy: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  let url: string;
  ({ relay, url } = await relayTo(db.url));
  proxy = await startTestProxy(db.url, {
    policies: [POLICY],
    audit: { sinks: [{ type: 'postgres', url, table: 'commit_audit' }], durable_timeout_ms: 400 },
  });
});
afterAll(async () => {
  await proxy?.close();
  await relay?.close();
  await db?.drop();
});

afterEach(() => relay.stall(false));

async function connect(): Promise<Client> {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  return c;
}

/** Rows of tenant 1's orders with this total, read directly (committed data only). */
async function committed(total: number): Promise<number> {
  const [{ n }] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders WHERE total_cents = $1', [total]);
  return n;
}

/** Waits until the audit table holds an event matching `where` (the sink writes in batches). */
async function event(where: string, params: unknown[]): Promise<Array<Record<string, unknown>>> {
  for (let i = 0; i < 200; i++) {
    const rows = await db.query(`SELECT decision, statement_kind, code, event->>'sql' AS sql FROM commit_audit WHERE ${where} ORDER BY id`, params).catch(() => []);
    if (rows.length > 0) return rows;
    await new Promise((r) => setTimeout(r, 25));
  }
  return [];
}

let next = 70_000;
const total = () => ++next;

describe.each(modes)('$protocol protocol', (mode: Mode) => {
  const insert = (n: number) => (mode.extended ? `${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, $1)` : `${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, ${n})`);
  const args = (n: number) => (mode.extended ? [n] : []);

  test('an autocommit write is committed before the agent hears of it, its event recorded first', async () => {
    const c = await connect();
    try {
      const n = total();
      const out = await send(c, mode, insert(n), args(n));
      expect(out.error).toBeUndefined();
      expect(out.rowCount).toBe(1);
      // Committed when acknowledged: another connection sees it at once.
      expect(await committed(n)).toBe(1);
      expect((await event("decision = 'allowed' AND statement_kind = 'write' AND event->>'sql' LIKE '%INSERT%' AND rows = 1", [])).length).toBeGreaterThan(0);
      // The session is idle again: a block opens and closes as usual.
      expect((await send(c, mode, 'BEGIN')).error).toBeUndefined();
      expect((await send(c, mode, 'SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      expect((await send(c, mode, 'COMMIT')).error).toBeUndefined();
    } finally {
      await c.end();
    }
  });

  test('with the audit sink hanging, an autocommit write is rolled back and the agent gets audit_unavailable', async () => {
    const c = await connect();
    try {
      const n = total();
      relay.stall(true);
      const out = await send(c, mode, insert(n), args(n));
      expect(out.error?.routine).toBe('ormai.audit_unavailable');
      expect(out.error?.message).toMatch(/not committed/);
      expect(await committed(n)).toBe(0);
      relay.stall(false);
      // The session goes on, idle, and the trail says the transaction was rolled back.
      expect((await send(c, mode, 'SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      expect(await event("decision = 'error' AND statement_kind = 'transaction' AND code = 'audit_unavailable'", [])).not.toEqual([]);
      // Once the sink keeps up, writes commit again.
      const m = total();
      expect((await send(c, mode, insert(m), args(m))).rowCount).toBe(1);
      expect(await committed(m)).toBe(1);
    } finally {
      await c.end();
    }
  });

  test("a COMMIT waits for the events of its block's writes; one not recorded fails the COMMIT and the block rolls back", async () => {
    const c = await connect();
    try {
      const kept = total();
      expect((await send(c, mode, 'BEGIN')).error).toBeUndefined();
      expect((await send(c, mode, insert(kept), args(kept))).rowCount).toBe(1);
      expect((await send(c, mode, 'COMMIT')).error).toBeUndefined();
      expect(await committed(kept)).toBe(1);

      const lost = total();
      expect((await send(c, mode, 'BEGIN')).error).toBeUndefined();
      relay.stall(true);
      // The write itself runs; its acknowledgement waited for the event and went on without it.
      expect((await send(c, mode, insert(lost), args(lost))).rowCount).toBe(1);
      const commit = await send(c, mode, 'COMMIT');
      expect(commit.error?.routine).toBe('ormai.audit_unavailable');
      relay.stall(false);
      // As a COMMIT that fails in PostgreSQL: the transaction is rolled back and the session idle.
      expect(await committed(lost)).toBe(0);
      expect((await send(c, mode, 'SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      expect((await send(c, mode, 'BEGIN')).error).toBeUndefined();
      expect((await send(c, mode, 'ROLLBACK')).error).toBeUndefined();
    } finally {
      await c.end();
    }
  });

  test('a write that fails leaves nothing behind and the session idle', async () => {
    const c = await connect();
    try {
      const bad = mode.extended ? `${R}INSERT INTO orders (customer_id, total_cents) VALUES (999999, $1)` : `${R}INSERT INTO orders (customer_id, total_cents) VALUES (999999, 5)`;
      expect((await send(c, mode, bad, mode.extended ? [5] : [])).error).toBeDefined();
      expect((await send(c, mode, 'BEGIN')).error).toBeUndefined();
      expect((await send(c, mode, 'ROLLBACK')).error).toBeUndefined();
    } finally {
      await c.end();
    }
  });
});

describe('simple protocol: texts that write and commit', () => {
  test('BEGIN; INSERT; COMMIT and INSERT; COMMIT commit once the events are recorded, as one text', async () => {
    const c = await connect();
    try {
      const a = total();
      const b = total();
      const r = await c.query(`BEGIN; ${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, ${a}); COMMIT`);
      expect((r as unknown as Array<{ command: string }>).map((x) => x.command)).toEqual(['BEGIN', 'INSERT', 'COMMIT']);
      expect(await committed(a)).toBe(1);
      const s = await c.query(`${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, ${b}); COMMIT`);
      expect((s as unknown as Array<{ command: string }>).map((x) => x.command)).toEqual(['INSERT', 'COMMIT']);
      expect(await committed(b)).toBe(1);
      // The COMMIT's own event.
      expect(await event("statement_kind = 'transaction' AND decision = 'allowed' AND event->>'sql' = 'COMMIT'", [])).not.toEqual([]);
    } finally {
      await c.end();
    }
  });

  test('with the sink hanging, BEGIN; INSERT; COMMIT is rolled back and refused', async () => {
    const c = await connect();
    try {
      const a = total();
      relay.stall(true);
      await expect(c.query(`BEGIN; ${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, ${a}); COMMIT`)).rejects.toMatchObject({ routine: 'ormai.audit_unavailable' });
      relay.stall(false);
      expect(await committed(a)).toBe(0);
      expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await c.end();
    }
  });

  test('a failure inside a text that writes undoes the whole text, as its implicit transaction would', async () => {
    const c = await connect();
    try {
      const a = total();
      await expect(c.query(`${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, ${a}); ${R}INSERT INTO orders (customer_id, total_cents) VALUES (999999, 1)`)).rejects.toMatchObject({ code: '23503' });
      expect(await committed(a)).toBe(0);
      // Idle, not in a failed block.
      expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await c.end();
    }
  });

  test('a COMMIT in the middle of a text that writes is refused with what to do instead', async () => {
    const c = await connect();
    try {
      const a = total();
      await expect(c.query(`BEGIN; ${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, ${a}); COMMIT; SELECT 1`)).rejects.toMatchObject({ routine: 'ormai.statement_not_allowed' });
      expect(await committed(a)).toBe(0);
    } finally {
      await c.end();
    }
  });
});
