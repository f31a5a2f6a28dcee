// What drivers, ORMs and pools send on their own, against a real PostgreSQL through the proxy, under both
// protocols: connect-time functions, SHOW of what they read, RESET ALL back to the policy's values, every
// spelling of SET TIME ZONE, isolation levels; and that none of it moves what the proxy pins.
import path from 'node:path';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { modes, send, type Mode } from '../support/modes';
import { startTestProxy, type TestProxy } from '../support/proxy';

let db: TestDatabase;
let proxy: TestProxy;
let readOnly: TestProxy;
let idle: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  // Database defaults that differ from what the proxy pins: RESET ALL must come back to the proxy's
  // startup values, never to these.
  await db.query(`ALTER DATABASE "${db.name}" SET statement_timeout = 0`);
  await db.query(`ALTER DATABASE "${db.name}" SET search_path = pg_catalog`);
  await db.query(`ALTER DATABASE "${db.name}" SET default_transaction_read_only = off`);
  proxy = await startTestProxy(db.url);
  readOnly = await startTestProxy(db.url, { policies: [path.resolve(__dirname, '..', 'fixtures', 'read-only-policy.yaml')] });
  idle = await startTestProxy(db.url, { policies: [path.resolve(__dirname, '..', 'fixtures', 'idle-policy.yaml')] });
});
afterAll(async () => {
  await proxy?.close();
  await readOnly?.close();
  await idle?.close();
  await db?.drop();
});

async function connect(p: TestProxy = proxy): Promise<Client> {
  const c = new Client({ connectionString: p.url() });
  await c.connect();
  return c;
}

/** Runs one statement and returns its rows; fails the test with the error otherwise. */
async function rows(c: Client, mode: Mode, sql: string): Promise<Array<Record<string, unknown>>> {
  const o = await send(c, mode, sql);
  if (o.error) throw new Error(`${sql}: ${o.error.message}`);
  return o.rows ?? [];
}

async function show(c: Client, mode: Mode, name: string): Promise<unknown> {
  const [row] = await rows(c, mode, `SHOW ${name}`);
  return Object.values(row)[0];
}

async function refusedAs(c: Client, mode: Mode, sql: string): Promise<string | undefined> {
  const o = await send(c, mode, sql);
  expect(o.rows).toBeUndefined();
  return o.error?.routine;
}

/** The session's UTC offset in seconds, as PostgreSQL computes it under the current TimeZone. */
async function offset(c: Client, mode: Mode): Promise<number> {
  const [row] = await rows(c, mode, "SELECT extract(timezone FROM '2024-01-15 12:00:00+00'::timestamptz)::int AS off");
  return row.off as number;
}

describe.each(modes)('driver statements under the $protocol protocol', (mode) => {
  test('connect-time functions answer as PostgreSQL would, with the connected database name', async () => {
    const c = await connect();
    try {
      expect(await rows(c, mode, 'select current_schema()')).toEqual([{ current_schema: 'public' }]);
      expect(await rows(c, mode, 'SELECT CURRENT_SCHEMA AS s')).toEqual([{ s: 'public' }]);
      expect(await rows(c, mode, 'SELECT current_schemas(true)::text AS s, current_schemas(false)::text AS p')).toEqual([
        { s: '{pg_catalog,public}', p: '{public}' },
      ]);
      // The agent connected to "app"; the upstream database has another name.
      expect(await rows(c, mode, 'SELECT current_database() AS db, pg_catalog.current_database() AS db2')).toEqual([{ db: 'app', db2: 'app' }]);
      // Under the column names PostgreSQL gives them (TypeORM reads the answer by name).
      expect(await rows(c, mode, 'SELECT current_database()')).toEqual([{ current_database: 'app' }]);
      expect(await rows(c, mode, 'SELECT * FROM current_database()')).toEqual([{ current_database: 'app' }]);
      expect(await rows(c, mode, 'SELECT * FROM current_schema()')).toEqual([{ current_schema: 'public' }]);
      expect(await rows(c, mode, 'SELECT current_database()::text')).toEqual([{ current_database: 'app' }]);
      // Attribute notation is a call with one argument: current_database(c) does not exist, so nothing is called.
      const attribute = await send(c, mode, 'SELECT c.current_database FROM customers c');
      expect(attribute.error?.code).toBe('42703');
      expect(attribute.error?.message).not.toContain(db.name);
      const [{ version }] = await rows(c, mode, 'SELECT version()');
      const [{ server_version }] = (await db.query('SHOW server_version')) as Array<{ server_version: string }>;
      expect(version).toMatch(/^PostgreSQL /);
      expect(String(version)).toContain(server_version.split(' ')[0]);
      expect(await show(c, mode, 'server_version')).toBe(server_version);
      expect(await rows(c, mode, 'SELECT pg_advisory_unlock_all() AS r')).toEqual([{ r: '' }]);
      // Other advisory functions stay refused, and so do settings functions.
      expect(await refusedAs(c, mode, 'SELECT pg_advisory_lock(1)')).toBe('ormai.function_not_allowed');
      expect(await refusedAs(c, mode, 'SELECT pg_advisory_unlock(1)')).toBe('ormai.function_not_allowed');
      expect(await refusedAs(c, mode, "SELECT set_config('search_path', 'pg_catalog', false)")).toBe('ormai.function_not_allowed');
      expect(await refusedAs(c, mode, 'SHOW ALL')).toBe('ormai.setting_not_allowed');
    } finally {
      await c.end();
    }
  });

  test('SHOW answers what drivers read; search_path is the pinned one and stays so', async () => {
    const c = await connect();
    try {
      expect(await show(c, mode, 'search_path')).toBe('public');
      expect(await show(c, mode, 'standard_conforming_strings')).toBe('on');
      expect(await show(c, mode, 'transaction_isolation')).toBe('read committed');
      expect(await show(c, mode, 'TRANSACTION ISOLATION LEVEL')).toBe('read committed');
      expect(await show(c, mode, 'client_encoding')).toBe('UTF8');
      expect(await show(c, mode, 'integer_datetimes')).toBe('on');
      expect(await show(c, mode, 'max_identifier_length')).toBe('63');
      expect(await show(c, mode, 'DateStyle')).toMatch(/^ISO/);
      expect(await show(c, mode, 'TimeZone')).toBe(await show(c, mode, '"TimeZone"'));
      // Every way to move search_path is refused, so what SHOW answers is what the analyser resolves against.
      expect(await refusedAs(c, mode, 'SET search_path = pg_catalog')).toBe('ormai.setting_not_allowed');
      expect(await refusedAs(c, mode, "SET SCHEMA 'pg_catalog'")).toBe('ormai.setting_not_allowed');
      expect(await refusedAs(c, mode, 'RESET search_path')).toBe('ormai.setting_not_allowed');
      expect(await refusedAs(c, mode, 'SET search_path TO DEFAULT')).toBe('ormai.setting_not_allowed');
      expect(await rows(c, mode, 'RESET ALL')).toEqual([]);
      expect(await show(c, mode, 'search_path')).toBe('public');
      expect(await rows(c, mode, 'SELECT current_schema() AS s')).toEqual([{ s: 'public' }]);
    } finally {
      await c.end();
    }
  });

  test("idle_in_transaction_session_timeout: the database's unless the policy bounds it, then lower only; a transaction left idle past it ends the session", async () => {
    const [{ dbValue }] = await db.query<{ dbValue: string }>('SHOW idle_in_transaction_session_timeout').then((r) => r.map((x) => ({ dbValue: Object.values(x)[0] as string })));
    const c = await connect();
    try {
      expect(await refusedAs(c, mode, 'SET idle_in_transaction_session_timeout = 0')).toBe('ormai.setting_not_allowed');
      expect(await refusedAs(c, mode, 'SET idle_in_transaction_session_timeout = 60000')).toBe('ormai.setting_not_allowed');
      expect(await show(c, mode, 'idle_in_transaction_session_timeout')).toBe(dbValue);
    } finally {
      await c.end();
    }
    const b = await connect(idle);
    const ended: Array<{ code?: string }> = [];
    b.on('error', (e: Error & { code?: string }) => ended.push(e));
    try {
      expect(await show(b, mode, 'idle_in_transaction_session_timeout')).toBe('1500ms');
      expect(await refusedAs(b, mode, 'SET idle_in_transaction_session_timeout = 0')).toBe('ormai.setting_not_allowed');
      expect(await refusedAs(b, mode, "SET idle_in_transaction_session_timeout = '2s'")).toBe('ormai.setting_not_allowed');
      expect(await rows(b, mode, "SET idle_in_transaction_session_timeout = '1s'")).toEqual([]);
      expect(await show(b, mode, 'idle_in_transaction_session_timeout')).toBe('1s');
      expect(await rows(b, mode, 'RESET ALL')).toEqual([]);
      expect(await show(b, mode, 'idle_in_transaction_session_timeout')).toBe('1500ms');
      // PostgreSQL ends a session that holds its transaction idle longer than that.
      await rows(b, mode, 'BEGIN');
      await rows(b, mode, 'SELECT 1 AS one');
      for (let i = 0; i < 50 && ended.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      expect(ended.map((e) => e.code)[0]).toBe('25P03');
      expect((await send(b, mode, 'SELECT 1 AS one')).error).toBeDefined();
    } finally {
      await b.end().catch(() => undefined);
    }
  });

  test("RESET ALL returns every setting to the policy's startup value, not the database's default", async () => {
    const c = await connect();
    try {
      expect(await show(c, mode, 'statement_timeout')).toBe('3s');
      await rows(c, mode, 'SET statement_timeout = 1000');
      await rows(c, mode, "SET application_name = 'pool'");
      await rows(c, mode, "SET TIME ZONE 'Asia/Kolkata'");
      await rows(c, mode, "SET default_transaction_isolation = 'serializable'");
      expect(await show(c, mode, 'statement_timeout')).toBe('1s');
      expect(await rows(c, mode, 'RESET ALL')).toEqual([]);
      // The database says 0 and pg_catalog; the proxy's startup parameters say 3 s and public.
      expect(await show(c, mode, 'statement_timeout')).toBe('3s');
      expect(await show(c, mode, 'search_path')).toBe('public');
      expect(await show(c, mode, 'standard_conforming_strings')).toBe('on');
      expect(await show(c, mode, 'default_transaction_isolation')).toBe('read committed');
      expect(await show(c, mode, 'application_name')).not.toBe('pool');
      await rows(c, mode, "SET application_name = 'O''Brien''s pool'");
      expect(await show(c, mode, 'application_name')).toBe("O'Brien's pool");
      expect(await offset(c, mode)).not.toBe(19800);
      // The timeout that came back is enforced by PostgreSQL: lowering it again still works, raising it does not.
      expect(await refusedAs(c, mode, 'SET statement_timeout = 0')).toBe('ormai.statement_timeout_raise');
      await rows(c, mode, 'SET LOCAL statement_timeout = 500');
      await rows(c, mode, 'RESET statement_timeout');
      expect(await show(c, mode, 'statement_timeout')).toBe('3s');
    } finally {
      await c.end();
    }
  });

  test("asyncpg's pool reset runs whole", async () => {
    const c = await connect();
    try {
      await rows(c, mode, 'SET statement_timeout = 1500');
      if (mode.extended) {
        for (const sql of ['SELECT pg_advisory_unlock_all()', 'CLOSE ALL', 'UNLISTEN *', 'RESET ALL']) await rows(c, mode, sql);
      } else {
        await rows(c, mode, 'SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL');
      }
      expect(await show(c, mode, 'statement_timeout')).toBe('3s');
    } finally {
      await c.end();
    }
  });

  test('RESET ALL keeps a read-only policy read-only', async () => {
    const c = await connect(readOnly);
    try {
      expect(await show(c, mode, 'statement_timeout')).toBe('4s');
      expect(await show(c, mode, 'transaction_read_only')).toBe('on');
      await rows(c, mode, 'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      expect(await refusedAs(c, mode, 'SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE')).toBe('ormai.setting_not_allowed');
      expect(await refusedAs(c, mode, 'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE')).toBe('ormai.setting_not_allowed');
      expect(await refusedAs(c, mode, 'SET default_transaction_read_only = off')).toBe('ormai.setting_not_allowed');
      expect(await rows(c, mode, 'RESET ALL')).toEqual([]);
      // The database says off; the proxy's startup parameter says on.
      expect(await show(c, mode, 'transaction_read_only')).toBe('on');
      expect(await show(c, mode, 'default_transaction_isolation')).toBe('read committed');
      expect(await show(c, mode, 'statement_timeout')).toBe('4s');
      // DISCARD ALL runs RESET ALL too.
      await rows(c, mode, 'DISCARD ALL');
      expect(await show(c, mode, 'transaction_read_only')).toBe('on');
    } finally {
      await c.end();
    }
  });

  test('isolation levels take effect; READ WRITE never', async () => {
    const c = await connect();
    try {
      await rows(c, mode, 'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE');
      expect(await show(c, mode, 'default_transaction_isolation')).toBe('serializable');
      await rows(c, mode, 'BEGIN');
      expect(await show(c, mode, 'transaction_isolation')).toBe('serializable');
      await rows(c, mode, 'COMMIT');
      await rows(c, mode, "SET default_transaction_isolation TO 'repeatable read'");
      expect(await show(c, mode, 'default_transaction_isolation')).toBe('repeatable read');
      await rows(c, mode, 'BEGIN');
      await rows(c, mode, 'SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
      expect(await show(c, mode, 'transaction_isolation')).toBe('read committed');
      expect(await refusedAs(c, mode, 'SET TRANSACTION READ WRITE')).toBe('ormai.setting_not_allowed');
      await rows(c, mode, 'ROLLBACK');
      expect(await refusedAs(c, mode, "SET default_transaction_isolation = 'snapshot'")).toBe('ormai.setting_not_allowed');
      await rows(c, mode, 'RESET default_transaction_isolation');
      expect(await show(c, mode, 'default_transaction_isolation')).toBe('read committed');
    } finally {
      await c.end();
    }
  });

  // [statement, UTC offset in seconds it gives]; null = the session's default zone.
  const ZONES: Array<[string, number | null]> = [
    ["SET TIME ZONE 'UTC'", 0],
    ["SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE", 0],
    ["SET TIME ZONE INTERVAL '+05:30' HOUR TO MINUTE", 19800],
    ["SET TIME ZONE INTERVAL '-08:00' HOUR TO MINUTE", -28800],
    ["SET TIME ZONE INTERVAL '3' HOUR", 10800],
    ["SET TIME ZONE INTERVAL '-02:00'", -7200],
    ["SET TIME ZONE INTERVAL(0) '+01:00'", 3600],
    ['SET TIME ZONE -7', -25200],
    ['SET TIME ZONE 3.5', 12600],
    ["SET timezone TO 'Asia/Kolkata'", 19800],
    ["SET \"TimeZone\" = 'Etc/GMT+3'", -10800],
    ["SET SESSION TIME ZONE 'America/New_York'", -18000],
    ['SET TIME ZONE LOCAL', null],
    ['SET TIME ZONE DEFAULT', null],
    ['SET timezone TO DEFAULT', null],
    ['RESET TIME ZONE', null],
  ];

  test.each(ZONES)('%s changes the session time zone', async (sql, expected) => {
    const c = await connect();
    try {
      const initial = await offset(c, mode);
      await rows(c, mode, "SET TIME ZONE 'Asia/Tokyo'");
      expect(await offset(c, mode)).toBe(32400);
      await rows(c, mode, sql);
      expect(await offset(c, mode)).toBe(expected ?? initial);
    } finally {
      await c.end();
    }
  });

  test('SET LOCAL TIME ZONE lasts for the transaction', async () => {
    const c = await connect();
    try {
      await rows(c, mode, "SET TIME ZONE 'UTC'");
      await rows(c, mode, 'BEGIN');
      await rows(c, mode, "SET LOCAL TIME ZONE INTERVAL '+02:00' HOUR TO MINUTE");
      expect(await offset(c, mode)).toBe(7200);
      await rows(c, mode, "SET LOCAL TIME ZONE 'Asia/Tokyo'");
      expect(await offset(c, mode)).toBe(32400);
      await rows(c, mode, 'COMMIT');
      expect(await offset(c, mode)).toBe(0);
    } finally {
      await c.end();
    }
  });

  test('SET TIME ZONE carries nothing along: a smuggled statement is part of the interval text', async () => {
    const c = await connect();
    try {
      const o = await send(c, mode, "SET TIME ZONE INTERVAL '1''; SET search_path = pg_catalog; --' HOUR");
      // PostgreSQL's own error for a bad interval: the text never ran as SQL.
      expect(o.error?.code).toBe('22007');
      expect(o.error?.routine).not.toMatch(/^ormai\./);
      expect(await show(c, mode, 'search_path')).toBe('public');
      const multi = await send(c, mode, "SET TIME ZONE INTERVAL '1' HOUR; SET search_path = pg_catalog");
      // Simple: one refused part refuses the whole text; extended: one statement per Parse, as in PostgreSQL.
      expect(multi.error?.routine).toBe(mode.extended ? 'ormai.syntax_error' : 'ormai.setting_not_allowed');
      expect(multi.error?.code).toBe(mode.extended ? '42601' : '42501');
      expect(await show(c, mode, 'search_path')).toBe('public');
    } finally {
      await c.end();
    }
  });
});
