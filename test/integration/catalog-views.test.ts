// The pg_catalog relations served through the policy (pg_type, pg_namespace, pg_range) and the session's identity: what drivers
// read at connect works, and no schema, type or role beyond what the policy shows is named. Every case under both protocols.
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { modes } from '../support/modes';
import { startTestProxy, type TestProxy } from '../support/proxy';

let db: TestDatabase;
let proxy: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  // Objects the agent must never see named: another schema with a table, a role.
  await db.query('CREATE SCHEMA internal_secrets; CREATE TABLE internal_secrets.keys (k text)');
  proxy = await startTestProxy(db.url);
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

describe.each(modes)('$protocol protocol', ({ extended }) => {
  const query = async (sql: string, values: unknown[] = []) => {
    const c = new Client({ connectionString: proxy.url() });
    await c.connect();
    try {
      return (await c.query(extended ? ({ text: sql, values, queryMode: 'extended' } as never) : { text: sql, values })).rows;
    } finally {
      await c.end();
    }
  };

  test('pg_namespace lists pg_catalog, information_schema and the schemas of visible tables only, without ACLs', async () => {
    const rows = await query('SELECT nspname, nspacl FROM pg_namespace ORDER BY nspname');
    expect(rows).toEqual([
      { nspname: 'information_schema', nspacl: null },
      { nspname: 'pg_catalog', nspacl: null },
      { nspname: 'public', nspacl: null },
    ]);
    expect(await query("SELECT count(*)::int AS n FROM pg_catalog.pg_namespace WHERE nspname = 'internal_secrets'")).toEqual([{ n: 0 }]);
  });

  test("SQLAlchemy's type lookup at connect (pg_type joined to pg_namespace) runs", async () => {
    const rows = await query("SELECT t.oid, typarray FROM pg_type t JOIN pg_namespace ns ON typnamespace = ns.oid WHERE typname = 'int4'");
    expect(rows).toHaveLength(1);
    expect(await query("SELECT t.typname FROM pg_type t JOIN pg_namespace ns ON t.typnamespace = ns.oid WHERE ns.nspname = 'internal_secrets'")).toEqual([]);
  });

  test("Sequelize's type lookup at connect (pg_type with pg_range) runs", async () => {
    const rows = await query("SELECT t.typname, r.rngsubtype FROM pg_type t JOIN pg_range r ON r.rngtypid = t.oid WHERE t.typname = 'int4range'");
    expect(rows).toHaveLength(1);
  });

  test("the session's identity is the agent's own user name, never the upstream role", async () => {
    expect(await query('SELECT current_user, session_user, current_role, user')).toEqual([
      { current_user: 'tenant1-agent', session_user: 'tenant1-agent', current_role: 'tenant1-agent', user: 'tenant1-agent' },
    ]);
    expect(await query('SELECT count(*)::int AS n FROM orders WHERE current_user = $1', ['postgres'])).toEqual([{ n: 0 }]);
  });

  test('a hidden schema reads as missing through pg_namespace, whatever the predicate', async () => {
    expect(await query("SELECT oid FROM pg_namespace WHERE nspname LIKE 'internal%' OR nspname ~ 'secret'")).toEqual([]);
  });
});
