// Writes under the policy end to end (I1, I2, I3, I5): reasons, the tenant on every target row, writable and hidden
// columns, masked values, RETURNING, ON CONFLICT, errors — under the simple and the extended protocol, checked in the database.
import path from 'node:path';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { startRelay, type Relay } from '../support/relay';
import { expectNoCrossTenantReferences } from '../support/tenant-integrity';

const POLICY = path.resolve(__dirname, '..', 'fixtures', 'write-policy.yaml');
const R = "/*reason='integration test'*/ ";

let db: TestDatabase;
let proxy: TestProxy;
let relay: Relay;
let received: Buffer[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url, { policies: [POLICY] });
  relay = await startRelay('127.0.0.1', proxy.port, (chunk) => received.push(Buffer.from(chunk)));
});
afterAll(async () => {
  await relay?.close();
  await proxy?.close();
  await db?.drop();
});
// After every test: no row of one tenant references a row of another.
afterEach(() => expectNoCrossTenantReferences(db));

/** Tenant 2's data and every hidden or raw masked value: none of it may reach tenant 1's agent. */
const FORBIDDEN = ['Globex', 'hank@globex.com', '990000', '123400', 'sk_live_', 'DO_NOT_LEAK', 'jane@acme.com', 'joe@acmelabs.com', '555-0100'];

type Mode = { protocol: string; extended: boolean };
const modes: Mode[] = [
  { protocol: 'simple', extended: false },
  { protocol: 'extended', extended: true },
];

interface Outcome {
  rows?: Array<Record<string, unknown>>;
  rowCount?: number | null;
  error?: Error & { code?: string; routine?: string; detail?: string; hint?: string };
  bytes: Buffer;
}

async function run(sql: string, mode: Mode, values: unknown[] = []): Promise<Outcome> {
  received = [];
  const c = new Client({ connectionString: `postgres://tenant1-agent:tenant1-password@127.0.0.1:${relay.port}/app` });
  await c.connect();
  try {
    const r = await c.query(mode.extended ? ({ text: sql, values, queryMode: 'extended' } as never) : sql);
    return { rows: r.rows, rowCount: r.rowCount, bytes: Buffer.concat(received) };
  } catch (error) {
    return { error: error as Outcome['error'], bytes: Buffer.concat(received) };
  } finally {
    await c.end();
  }
}

function expectNothingForbidden(outcome: Outcome, sql: string): void {
  const text = outcome.bytes.toString('latin1');
  for (const f of FORBIDDEN) if (!sql.includes(f) && text.includes(f)) throw new Error(`"${f}" reached the client for: ${sql}`);
}

const tenant2 = () => db.query('SELECT id, customer_id, total_cents, status FROM orders WHERE tenant_id = 2 ORDER BY id');
const customers2 = () => db.query('SELECT * FROM customers WHERE tenant_id = 2 ORDER BY id');

describe.each(modes)('writes under the $protocol protocol', (mode) => {
  let before: Array<Record<string, unknown>>;
  let beforeCustomers: Array<Record<string, unknown>>;
  beforeEach(async () => {
    before = await tenant2();
    beforeCustomers = await customers2();
  });
  afterEach(async () => {
    // Whatever a case did, tenant 2's rows are exactly as they were.
    expect(await tenant2()).toEqual(before);
    expect(await customers2()).toEqual(beforeCustomers);
  });

  test('a write without a reason is refused and changes nothing', async () => {
    const count = await db.query('SELECT count(*)::int AS n FROM orders');
    const { error } = await run('INSERT INTO orders (customer_id, total_cents) VALUES (1, 1)', mode);
    expect(error?.routine).toBe('ormai.reason_required');
    expect(error?.hint).toContain("/*reason='");
    expect(await db.query('SELECT count(*)::int AS n FROM orders')).toEqual(count);
  });

  test('INSERT gets the principal’s tenant; another tenant is refused', async () => {
    const ok = await run(`${R}INSERT INTO orders (customer_id, total_cents, status) VALUES (1, 4242, 'new-${mode.protocol}') RETURNING tenant_id, total_cents`, mode);
    expect(ok.rows).toEqual([{ tenant_id: 1, total_cents: 4242 }]);
    expect(await db.query(`SELECT tenant_id FROM orders WHERE status = 'new-${mode.protocol}'`)).toEqual([{ tenant_id: 1 }]);
    const forged = await run(`${R}INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (4, 1, 2)`, mode);
    expect(forged.error?.routine).toBe('ormai.tenant_forged');
    const copied = await run(`${R}INSERT INTO orders (customer_id, total_cents) SELECT customer_id, total_cents FROM orders WHERE total_cents = 990000`, mode);
    expect(copied.rowCount).toBe(0);
  });

  test('UPDATE and DELETE reach only the principal’s rows, however they are written', async () => {
    const mine = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders WHERE tenant_id = 1');
    const all = await run(`${R}UPDATE orders SET status = status`, mode);
    expect(all.rowCount).toBe(mine[0].n);
    for (const sql of [
      `${R}UPDATE orders SET status = 'hijacked' WHERE tenant_id = 2`,
      `${R}UPDATE orders SET status = 'hijacked' WHERE id IN (SELECT id FROM orders WHERE total_cents = 990000)`,
      `${R}UPDATE orders o SET total_cents = 0 WHERE o.total_cents = 990000 OR true AND o.status = 'paid' AND o.tenant_id = 2`,
      `${R}DELETE FROM orders WHERE total_cents = 123400`,
      `${R}DELETE FROM orders WHERE tenant_id <> 1`,
    ]) {
      const outcome = await run(sql, mode);
      expect(outcome.error).toBeUndefined();
      expect(outcome.rowCount).toBe(0);
    }
  });

  test('ON CONFLICT DO UPDATE leaves another tenant’s conflicting row alone', async () => {
    const [{ id }] = await db.query<{ id: number }>('SELECT id FROM orders WHERE tenant_id = 2 ORDER BY id LIMIT 1');
    const sql = `${R}INSERT INTO orders (id, customer_id, total_cents) VALUES (${id}, 1, 1) ON CONFLICT (id) DO UPDATE SET status = 'hijacked' RETURNING id, status`;
    const outcome = await run(sql, mode);
    expect(outcome.error).toBeUndefined();
    expect(outcome.rows).toEqual([]);
    expectNothingForbidden(outcome, sql);
  });

  test('hidden columns read as missing ones, indistinguishably', async () => {
    const hidden = await run(`${R}UPDATE customers SET name = 'x' WHERE api_secret = 'k'`, mode);
    const missing = await run(`${R}UPDATE customers SET name = 'x' WHERE no_such_column = 'k'`, mode);
    expect(hidden.error?.code).toBe('42703');
    expect(missing.error?.code).toBe('42703');
    expect(hidden.error?.routine).toBe(missing.error?.routine);
    expect(hidden.error?.hint).toBe(missing.error?.hint);
    expect(hidden.error?.message.replace('api_secret', 'X')).toBe(missing.error?.message.replace('no_such_column', 'X'));
    const assign = await run(`${R}UPDATE customers SET api_secret = 'x' WHERE id = 1`, mode);
    const assignMissing = await run(`${R}UPDATE customers SET no_such_column = 'x' WHERE id = 1`, mode);
    expect(assign.error?.routine).toBe(assignMissing.error?.routine);
    expect(assign.error?.message.replace('api_secret', 'X')).toBe(assignMissing.error?.message.replace('no_such_column', 'X'));
    // A near miss gets no "Perhaps you meant" naming a hidden column.
    const near = await run(`${R}UPDATE customers SET name = 'x' WHERE api_secre = 'k'`, mode);
    expect(near.error?.code).toBe('42703');
    expect(near.bytes.toString('latin1')).not.toContain('api_secret');
  });

  test('masked values are never copied or compared; RETURNING shows them masked', async () => {
    for (const sql of [
      `${R}UPDATE customers SET name = email WHERE id = 1`,
      `${R}UPDATE customers SET name = 'x' WHERE email LIKE 'jane%'`,
      `${R}UPDATE customers SET name = name WHERE id = 1 RETURNING upper(email)`,
    ]) {
      const outcome = await run(sql, mode);
      expect(outcome.error?.routine).toBe('ormai.field_masked');
      expectNothingForbidden(outcome, sql);
    }
    const sql = `${R}UPDATE customers SET name = name WHERE id = 1 RETURNING *`;
    const outcome = await run(sql, mode);
    expect(outcome.rows).toEqual([{ id: 1, tenant_id: 1, name: 'Acme Corp', email: 'j***@acme.com', phone: '55****00' }]);
    expectNothingForbidden(outcome, sql);
  });

  test('a constraint error does not print the row', async () => {
    const sql = `${R}UPDATE customers SET name = NULL WHERE id = 1`;
    const outcome = await run(sql, mode);
    expect(outcome.error?.code).toBe('23502');
    expect(outcome.error?.detail).toBeUndefined();
    expectNothingForbidden(outcome, sql);
  });

  test('writable fields, the tenant column and ungranted operations', async () => {
    expect((await run(`${R}UPDATE customers SET id = 99 WHERE id = 1`, mode)).error?.routine).toBe('ormai.field_not_writable');
    expect((await run(`${R}UPDATE orders SET tenant_id = 2 WHERE id = 1`, mode)).error?.routine).toBe('ormai.field_not_writable');
    expect((await run(`${R}DELETE FROM customers WHERE id = 1`, mode)).error?.routine).toBe('ormai.model_writes_disabled');
    // A dry run is checked like the write it previews.
    expect((await run(`/*dry_run='true'*/ DELETE FROM customers WHERE id = 1`, mode)).error?.routine).toBe('ormai.model_writes_disabled');
    expect((await run(`/*dry_run='yes please'*/ ${R}DELETE FROM orders WHERE id = 1`, mode)).error?.routine).toBe('ormai.statement_not_allowed');
    const preview = await run(`/*dry_run='true'*/ DELETE FROM orders WHERE id = 1`, mode);
    expect(preview.rows?.map((r) => r.id)).toEqual([1]);
    expect(await db.query('SELECT count(*)::int AS n FROM orders WHERE id = 1')).toEqual([{ n: 1 }]);
  });

  test('a dry run shows what would change, writes nothing, and needs no reason', async () => {
    const sql = mode.extended
      ? "/*dry_run='true'*/ UPDATE orders SET status = $1 WHERE customer_id = $2"
      : "/*dry_run='true'*/ UPDATE orders SET status = 'dry' WHERE customer_id = 1";
    const before = await db.query('SELECT id, status FROM orders WHERE tenant_id = 1 AND customer_id = 1 ORDER BY id');
    const outcome = await run(sql, mode, ['dry', 1]);
    expect(outcome.error).toBeUndefined();
    expect(outcome.rows).toEqual(before.map((r) => ({ affected_rows: String(before.length), id: r.id, status_before: r.status, status_after: 'dry' })));
    expect(await db.query('SELECT id, status FROM orders WHERE tenant_id = 1 AND customer_id = 1 ORDER BY id')).toEqual(before);
    const masked = await run(`/*dry_run='true'*/ UPDATE customers SET email = 'new@acme.com' WHERE id = 1`, mode);
    expect(masked.rows).toEqual([{ affected_rows: '1', id: 1, email_before: 'j***@acme.com', email_after: 'new@acme.com' }]);
    expectNothingForbidden(masked, '');
    const foreign = await run("/*dry_run='true'*/ DELETE FROM orders WHERE total_cents = 990000", mode);
    expect(foreign.rows).toEqual([]);
  });

  test('a reference to another tenant’s row reads like one to a missing row', async () => {
    const foreign = await run(`${R}UPDATE orders SET customer_id = 4 WHERE id = 1`, mode);
    const missing = await run(`${R}UPDATE orders SET customer_id = 99 WHERE id = 1`, mode);
    expect(foreign.error).toMatchObject({ code: '23503', routine: 'ormai.reference_not_found' });
    expect(missing.error?.message).toBe(foreign.error?.message);
    const inserted = await run(`${R}INSERT INTO orders (customer_id, total_cents) VALUES (5, 1)`, mode);
    expect(inserted.error?.routine).toBe('ormai.reference_not_found');
    expect((await run(`${R}UPDATE orders SET customer_id = 2 WHERE id = 1 RETURNING customer_id`, mode)).rows).toEqual([{ customer_id: 2 }]);
    expect((await run(`${R}UPDATE orders SET customer_id = 1 WHERE id = 1`, mode)).rowCount).toBe(1);
  });

  test('a write in the WITH of a SELECT meets the write rules first, then is refused: the trail could record neither its rows nor their number', async () => {
    const before = await db.query('SELECT id, status FROM orders ORDER BY id');
    const mine = await run(`${R}WITH u AS (UPDATE orders SET status = 'in-with' WHERE id IN (1, 2) RETURNING id) SELECT count(*)::int AS n FROM u`, mode);
    expect(mine.error).toMatchObject({ routine: 'ormai.statement_not_allowed', message: expect.stringContaining('cannot be audited with the rows it changes') });
    expect(mine.error?.hint).toMatch(/its own statement/);
    expect(await db.query('SELECT id, status FROM orders ORDER BY id')).toEqual(before);
    expect((await run(`WITH u AS (UPDATE orders SET status = 'in-with' WHERE id = 1 RETURNING id) SELECT * FROM u`, mode)).error?.routine).toBe('ormai.reason_required');
    expect((await run(`${R}WITH u AS (UPDATE customers SET name = api_secret RETURNING id) SELECT * FROM u`, mode)).error?.code).toBe('42703');
  });

  test('parameters work in writes', async () => {
    if (!mode.extended) return;
    const outcome = await run(`${R}UPDATE orders SET status = $1 WHERE id = $2 RETURNING status`, mode, ['param-set', 1]);
    expect(outcome.rows).toEqual([{ status: 'param-set' }]);
    const foreign = await run(`${R}UPDATE orders SET status = $1 WHERE total_cents = $2`, mode, ['param-set', 990000]);
    expect(foreign.rowCount).toBe(0);
  });
});

describe('max_writes_per_minute', () => {
  let budgeted: TestProxy;
  beforeAll(async () => {
    budgeted = await startTestProxy(db.url, { policies: [path.resolve(__dirname, '..', 'fixtures', 'write-budget-policy.yaml')] });
  });
  afterAll(async () => {
    await budgeted?.close();
  });

  test('writes beyond the budget are refused, across sessions and protocols; reads go on', async () => {
    const outcomes: Array<string | undefined> = [];
    // Dry runs write nothing, so they spend nothing.
    const c0 = new Client({ connectionString: budgeted.url() });
    await c0.connect();
    for (let i = 0; i < 5; i++) await c0.query("/*dry_run='true'*/ UPDATE orders SET status = 'x' WHERE id = 1");
    await c0.end();
    for (const extended of [false, true, false, true]) {
      const c = new Client({ connectionString: budgeted.url() });
      await c.connect();
      try {
        const sql = `${R}UPDATE orders SET status = status WHERE id = 1`;
        await c.query(extended ? ({ text: sql, values: [], queryMode: 'extended' } as never) : sql);
        outcomes.push(undefined);
      } catch (error) {
        outcomes.push((error as { routine?: string }).routine);
      } finally {
        await c.end();
      }
    }
    expect(outcomes).toEqual([undefined, undefined, undefined, 'ormai.write_rate_limited']);
    const c = new Client({ connectionString: budgeted.url() });
    await c.connect();
    try {
      expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBeGreaterThan(0);
      const refused = await c.query(`${R}DELETE FROM orders WHERE id = -1`).catch((e: { message: string; detail?: string }) => e);
      expect(refused).toMatchObject({ message: expect.stringContaining('writes per minute'), detail: expect.stringMatching(/^retry after \d+ s$/) });
    } finally {
      await c.end();
    }
  });
});

describe.each(modes)('max_affected_rows under the $protocol protocol', (mode) => {
  let capped: TestProxy;
  beforeAll(async () => {
    capped = await startTestProxy(db.url, { policies: [path.resolve(__dirname, '..', 'fixtures', 'write-cap-policy.yaml')] });
  });
  afterAll(async () => {
    await capped?.close();
  });

  async function withClient<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const c = new Client({ connectionString: capped.url() });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  }
  const q = (c: Client, sql: string) => c.query(mode.extended ? ({ text: sql, values: [], queryMode: 'extended' } as never) : sql);

  test('a write over the cap is refused before anything is written', async () => {
    const mine = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders WHERE tenant_id = 1');
    expect(mine[0].n).toBeGreaterThan(2);
    const error = await withClient((c) => q(c, `${R}UPDATE orders SET status = 'capped-${mode.protocol}'`).catch((e: unknown) => e));
    expect(error).toMatchObject({ code: '54000', routine: 'ormai.max_affected_rows_exceeded', message: `max_affected_rows_exceeded: the write would change ${mine[0].n} rows; the policy allows at most 2` });
    expect(await db.query(`SELECT count(*)::int AS n FROM orders WHERE status = 'capped-${mode.protocol}'`)).toEqual([{ n: 0 }]);
    const deleted = await withClient((c) => q(c, `${R}DELETE FROM orders WHERE tenant_id = 1`).catch((e: { routine?: string }) => e.routine));
    expect(deleted).toBe('ormai.max_affected_rows_exceeded');
    expect(await db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders WHERE tenant_id = 1')).toEqual(mine);
  });

  test('a write within the cap runs; a refused one aborts its transaction', async () => {
    const r = await withClient((c) => q(c, `${R}UPDATE orders SET status = status WHERE id IN (1, 2)`));
    expect(r.rowCount).toBe(2);
    await withClient(async (c) => {
      await c.query('BEGIN');
      await q(c, `${R}UPDATE orders SET status = 'in-tx' WHERE id = 1`);
      await expect(q(c, `${R}UPDATE orders SET status = 'in-tx'`)).rejects.toMatchObject({ routine: 'ormai.max_affected_rows_exceeded' });
      await expect(c.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
      await c.query('ROLLBACK');
    });
    expect(await db.query(`SELECT count(*)::int AS n FROM orders WHERE status = 'in-tx'`)).toEqual([{ n: 0 }]);
    const inserted = await withClient((c) => q(c, `${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, 1), (1, 2), (1, 3)`).catch((e: { routine?: string }) => e.routine));
    expect(inserted).toBe('ormai.max_affected_rows_exceeded');
  });

  test("rows chosen by a volatile function (PostgreSQL's own list), in the WHERE or a WITH, are refused: the cap's count and the write would each choose", async () => {
    const [{ v }] = await db.query<{ v: number }>("SELECT current_setting('server_version_num')::int AS v");
    const ids = (await db.query<{ id: number }>('SELECT id FROM orders WHERE tenant_id = 1 ORDER BY id LIMIT 3')).map((r) => r.id);
    const refused = [
      `${R}UPDATE orders SET status = 'sampled' WHERE id IN (SELECT id FROM s) AND false`.replace('UPDATE', 'WITH s AS (SELECT id FROM orders WHERE random() < 0.5) UPDATE'),
      // array_sample and array_shuffle (PostgreSQL 16 and later) were missing from a hand-written list.
      ...(v >= 160000 ? [`${R}UPDATE orders SET status = 'sampled' WHERE id = ANY (array_sample(ARRAY[${ids.join(', ')}], 1))`, `${R}UPDATE orders SET status = 'sampled' WHERE id = (array_shuffle(ARRAY[${ids.join(', ')}]))[1]`] : []),
    ];
    for (const sql of refused) {
      const error = await withClient((c) => q(c, sql).catch((e: { routine?: string; message?: string }) => e));
      expect([sql, (error as { routine?: string }).routine, (error as { message?: string }).message]).toEqual([sql, 'ormai.statement_not_allowed', expect.stringMatching(/cannot choose the rows of a write under max_affected_rows/)]);
    }
    expect(await db.query("SELECT count(*)::int AS n FROM orders WHERE status = 'sampled'")).toEqual([{ n: 0 }]);
  });
});
