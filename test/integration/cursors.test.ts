// Cursors (DECLARE … CURSOR, FETCH, MOVE, CLOSE), as psql's FETCH_COUNT, psycopg's named cursors and SQLAlchemy's
// stream_results use them: the cursor's query is read through the policy (tenant, hidden and masked columns), and
// the rows of every FETCH from one cursor count against one max_rows cap. Each case runs under the simple and the
// extended protocol; psql runs with FETCH_COUNT when installed.
import { execFile, spawnSync } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { modes } from '../support/modes';
import { startTestProxy, type TestProxy } from '../support/proxy';

const FIXTURES = path.resolve(__dirname, '..', 'fixtures');
const run = promisify(execFile);
const hasPsql = spawnSync('psql', ['--version']).status === 0;
if (!hasPsql) process.stderr.write('SKIPPED: psql FETCH_COUNT test (psql not installed; CI installs postgresql-client)\n');

let db: TestDatabase;
let capped: TestProxy; // max_rows 2
let open: TestProxy; // max_rows 200

beforeAll(async () => {
  db = await createTestDatabase();
  capped = await startTestProxy(db.url, { policies: [path.join(FIXTURES, 'session-state-policy.yaml')] });
  open = await startTestProxy(db.url);
});
afterAll(async () => {
  await capped?.close();
  await open?.close();
  await db?.drop();
});


async function session<T>(p: TestProxy, fn: (q: (sql: string) => Promise<{ rows: Array<Record<string, unknown>>; rowCount: number | null }>, notices: string[]) => Promise<T>, extended: boolean): Promise<T> {
  const c = new Client({ connectionString: p.url() });
  const notices: string[] = [];
  c.on('notice', (n) => notices.push(n.message ?? ''));
  await c.connect();
  try {
    return await fn((sql) => c.query(extended ? ({ text: sql, values: [], queryMode: 'extended' } as never) : sql), notices);
  } finally {
    await c.end();
  }
}

describe.each(modes)('$protocol protocol', ({ extended }) => {
  test("a cursor reads the tenant's rows only, hidden columns missing and masked ones masked", async () => {
    const rows = await session(open, async (q) => {
      await q('BEGIN');
      await q('DECLARE c NO SCROLL CURSOR FOR SELECT * FROM customers ORDER BY id');
      const first = await q('FETCH 2 FROM c');
      const rest = await q('FETCH ALL FROM c');
      await q('CLOSE c');
      await q('COMMIT');
      return [...first.rows, ...rest.rows];
    }, extended);
    const direct = await db.query<{ id: number }>('SELECT id FROM customers WHERE tenant_id = 1 ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual(direct.map((r) => r.id));
    expect(rows.every((r) => !('api_secret' in r) && String(r.email).includes('***'))).toBe(true);
  });

  test('FETCHes from one cursor share the max_rows cap (2): the third row is cut, with a notice', async () => {
    const { fetched, notices } = await session(capped, async (q, notices) => {
      await q('BEGIN');
      await q('DECLARE c CURSOR FOR SELECT id FROM orders ORDER BY id');
      const fetched = [(await q('FETCH 1 FROM c')).rows.length, (await q('FETCH 1 FROM c')).rows.length, (await q('FETCH ALL FROM c')).rows.length];
      await q('MOVE ABSOLUTE 0 IN c').catch(() => undefined);
      await q('ROLLBACK');
      return { fetched, notices };
    }, extended);
    expect(fetched).toEqual([1, 1, 0]);
    expect(notices.join('\n')).toMatch(/at most 2 rows per cursor/);
  });

  test("a read's audit event counts the rows the agent received, not the one more the database sent past max_rows", async () => {
    const marker = `m${Date.now()}${extended ? 'x' : 's'}`;
    await session(capped, async (q) => {
      await q(`SELECT id, '${marker}' AS m FROM orders ORDER BY id`);
      await q('BEGIN');
      await q(`DECLARE ${marker} CURSOR FOR SELECT id FROM orders ORDER BY id`);
      await q(`FETCH 1 FROM ${marker}`);
      await q(`FETCH ALL FROM ${marker}`);
      await q('ROLLBACK');
    }, extended);
    // The session's events, once its ROLLBACK's is in (the DECLARE names the cursor, and so the session).
    const ofSession = () => {
      const all = capped.auditEvents().filter((e) => e.kind === 'statement');
      const declared = all.find((e) => e.sql?.includes(`DECLARE ${marker}`));
      return declared ? all.filter((e) => e.session_id === declared.session_id) : [];
    };
    let events = ofSession();
    for (let i = 0; i < 150 && !events.some((e) => e.sql === 'ROLLBACK'); i++) {
      await new Promise((r) => setTimeout(r, 20));
      events = ofSession();
    }
    // Three rows of tenant 1; max_rows 2: the database sends 3 (LIMIT 3), the agent gets 2.
    expect(events.find((e) => e.sql?.startsWith('SELECT id, $1 AS m'))?.rows).toBe(2);
    const fetches = events.filter((e) => e.sql?.startsWith('FETCH'));
    expect(fetches.map((e) => e.rows)).toEqual([1, 1]);
  });

  test('a cursor over a hidden column, a catalog or a refused function is refused, or fails as PostgreSQL fails', async () => {
    await session(open, async (q) => {
      await q('BEGIN');
      await expect(q('DECLARE c CURSOR FOR SELECT api_secret FROM customers')).rejects.toMatchObject({ code: '42703' });
      await q('ROLLBACK');
      await q('BEGIN');
      await expect(q('DECLARE c CURSOR FOR SELECT * FROM pg_authid')).rejects.toMatchObject({ routine: 'ormai.catalog_not_allowed' });
      await q('ROLLBACK');
      await q('BEGIN');
      await expect(q('DECLARE c CURSOR FOR SELECT pg_sleep(1)')).rejects.toMatchObject({ routine: 'ormai.function_not_allowed' });
      await q('ROLLBACK');
      await expect(q('DECLARE c CURSOR WITH HOLD FOR SELECT id FROM orders')).rejects.toMatchObject({ routine: 'ormai.statement_not_allowed' });
    }, extended);
  });

  test('FETCH from a cursor that does not exist is refused by the proxy', async () => {
    await session(open, async (q) => {
      await q('BEGIN');
      await expect(q('FETCH 1 FROM nope')).rejects.toMatchObject({ code: '34000', routine: 'ormai.portal_not_found' });
      await q('ROLLBACK');
    }, extended);
  });
});

test('a cursor declared and fetched in one simple Query string', async () => {
  const c = new Client({ connectionString: capped.url() });
  await c.connect();
  try {
    const results = (await c.query('BEGIN; DECLARE c CURSOR FOR SELECT id FROM orders ORDER BY id; FETCH ALL FROM c; COMMIT')) as unknown as Array<{ rows: unknown[] }>;
    expect(results[2].rows).toHaveLength(2);
  } finally {
    await c.end();
  }
});

(hasPsql ? test : test.skip)('psql with FETCH_COUNT reads through a cursor', async () => {
  const env = { ...process.env, PGCONNECT_TIMEOUT: '5' };
  const out = await run('psql', [open.url(), '-X', '-At', '-v', 'FETCH_COUNT=1', '-c', 'SELECT name FROM customers ORDER BY id'], { env });
  expect(out.stdout.trim().split('\n')).toEqual((await db.query<{ name: string }>('SELECT name FROM customers WHERE tenant_id = 1 ORDER BY id')).map((r) => r.name));
});
