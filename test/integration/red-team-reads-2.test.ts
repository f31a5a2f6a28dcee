// Red-team reads, second round (as tenant 1 under the quickstart-like policy): attribute notation as a function call,
// session facts (upstream database name, system columns, debug notices), and forms that were refused but are fine
// (WITH TIES, schema.table.column, information_schema's standard columns). Every case runs under both protocols and
// checks every byte the client receives.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  direct,
  expectNothingForbidden,
  modes,
  QUICKSTART_FORBIDDEN,
  run,
  startTarget,
  stopTarget,
  type Outcome,
  type Target,
} from '../support/red-team';

const FIXTURES = path.resolve(__dirname, '..', 'fixtures');

let main: Target;
let optIn: Target;
/** Forbidden in every byte: the quickstart's secrets and other tenant's rows, and the upstream database's name. */
let forbidden: string[];

beforeAll(async () => {
  main = await startTarget(path.join(FIXTURES, 'red-team-policy.yaml'));
  optIn = await startTarget(path.join(FIXTURES, 'red-team-reads-policy.yaml'));
  // The agents connect to "app"; the upstream databases have generated names (ormai_t_…).
  forbidden = [...QUICKSTART_FORBIDDEN, main.db.name, optIn.db.name, 'ormai_t_'];
});
afterAll(async () => {
  await stopTarget(main);
  await stopTarget(optIn);
});

/** A target of the red-team policy with `setup` run first: started before the enclosing block's tests, stopped after. */
function targetFor(setup: string[]): () => Target {
  let target: Target | undefined;
  beforeAll(async () => {
    target = await startTarget(path.join(FIXTURES, 'red-team-policy.yaml'), setup);
  });
  afterAll(async () => {
    await stopTarget(target);
  });
  return () => target!;
}

function expectRefused(o: Outcome, routine: string, code?: string): void {
  expect(o.rows).toBeUndefined();
  expect(o.error?.routine).toBe(routine);
  if (code) expect(o.error?.code).toBe(code);
}

// ---------------------------------------------------------------------------------------------------------------
// A. Attribute notation: `q.f` / `(expr).f` naming no column is f(q) / f(expr) in PostgreSQL.
// ---------------------------------------------------------------------------------------------------------------

const ATTRIBUTE_REFUSALS: Array<[string, string]> = [
  ['SELECT c.pg_column_size FROM customers c', 'ormai.column_not_found'],
  ['SELECT c.hash_record FROM customers c', 'ormai.column_not_found'],
  ['SELECT count(*) FROM customers c WHERE c.pg_column_size > 0', 'ormai.column_not_found'],
  ['SELECT public.customers.pg_column_size FROM public.customers', 'ormai.column_not_found'],
  ['SELECT s.pg_column_size FROM (SELECT * FROM customers) s', 'ormai.column_not_found'],
  ['WITH x AS (SELECT * FROM orders) SELECT x.hash_record FROM x', 'ormai.column_not_found'],
  ['SELECT x.pg_get_userbyid FROM generate_series(10, 10) x', 'ormai.column_not_found'],
  ['SELECT generate_series.pg_column_size FROM ROWS FROM (generate_series(1, 2), generate_series(1, 3))', 'ormai.column_not_found'],
  ["SELECT x.current_setting FROM unnest(ARRAY['search_path']) x", 'ormai.statement_not_understood'],
  ["SELECT x.pg_ls_dir FROM unnest(ARRAY['.']) x", 'ormai.statement_not_understood'],
  ['SELECT (10).pg_get_userbyid', 'ormai.statement_not_understood'],
  ["SELECT ('search_path').current_setting", 'ormai.statement_not_understood'],
  ['SELECT (c.email).pg_column_size FROM customers c', 'ormai.statement_not_understood'],
  ['SELECT (c).pg_column_size FROM customers c', 'ormai.statement_not_understood'],
  // On a write target the row is the real table's (hidden columns included): not even an allowed function of it.
  ["/*reason='probe'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 1) RETURNING orders.to_jsonb", 'ormai.column_not_found'],
];

describe.each(modes)('attribute notation under the $protocol protocol', (mode) => {
  test.each(ATTRIBUTE_REFUSALS)('%s → %s', async (sql, routine) => {
    const o = await run(main, sql, mode);
    expectRefused(o, routine);
    expectNothingForbidden(o.bytes, sql, forbidden);
  });

  test('visible columns and allowed functions still work in attribute notation', async () => {
    const names = await run(main, 'SELECT c.name FROM customers c ORDER BY c.id', mode);
    expect(names.rows).toEqual([{ name: 'Acme Corp' }, { name: 'Acme Labs' }, { name: 'Acme Retail' }]);
    // to_jsonb(c) over the policy view: visible columns only, masked.
    const row = await run(main, 'SELECT c.to_jsonb AS j FROM customers c WHERE c.id = 1', mode);
    expect(row.rows).toEqual([{ j: { id: 1, tenant_id: 1, name: 'Acme Corp', email: 'j***@acme.com', phone: '55****00' } }]);
    const keys = await run(main, 'SELECT e.key FROM customers c, LATERAL jsonb_each(to_jsonb(c)) e WHERE c.id = 1 ORDER BY e.key', mode);
    expect(keys.rows!.map((r) => r.key)).toEqual(['email', 'id', 'name', 'phone', 'tenant_id']);
    const unnested = await run(main, 'SELECT t.id, c.name FROM unnest(ARRAY[3, 1]) AS t(id) JOIN customers c ON c.id = t.id ORDER BY t.id', mode);
    expect(unnested.rows).toEqual([{ id: 1, name: 'Acme Corp' }, { id: 3, name: 'Acme Retail' }]);
    for (const o of [names, row, keys, unnested]) expectNothingForbidden(o.bytes, '', forbidden);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// B. Session facts: the upstream database name, system columns, debug notices.
// ---------------------------------------------------------------------------------------------------------------

describe('comparisons without a collation', () => {
  // Two implicit non-default collations make a text comparison raise "could not determine which
  // collation to use" at run time, from a function PostgreSQL calls leakproof: run on every
  // tenant's rows before the policy's conditions, its error told whether another tenant had a
  // matching row. The outcome for tenant 2's id and for an id nobody has must be the same.
  // Without an index on the tenant column the tenant condition is one filter among the agent's,
  // which PostgreSQL may order after them.
  let bare: Target;
  /** customers has a column of a collation of its own: compared with a name (collation "C"), neither wins. */
  let collated: Target;
  /** customers has a column of collation "C"; the policy admits a function whose result is of a domain with a collation of its own. */
  let admitted: Target;
  /** customers has a composite column whose field has a collation of its own, and a circle (its comparisons overflow). */
  let composite: Target;
  beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ormai-rt-'));
    const admitting = path.join(dir, 'policy.yaml');
    fs.writeFileSync(admitting, `${fs.readFileSync(path.join(FIXTURES, 'red-team-policy.yaml'), 'utf8')}\nallow_functions: [public.rt_label, rt_label]\n`);
    admitted = await startTarget(admitting, [
      'DROP INDEX customers_tenant_id_idx',
      `ALTER TABLE customers ADD COLUMN code text COLLATE "C" DEFAULT 'k'`,
      `CREATE DOMAIN rt_posix AS text COLLATE "POSIX"`,
      `CREATE FUNCTION public.rt_label() RETURNS rt_posix LANGUAGE sql IMMUTABLE AS $$ SELECT 'x'::rt_posix $$`,
    ]);
    fs.rmSync(dir, { recursive: true, force: true });
    bare = await startTarget(path.join(FIXTURES, 'red-team-policy.yaml'), ['DROP INDEX customers_tenant_id_idx']);
    collated = await startTarget(path.join(FIXTURES, 'red-team-policy.yaml'), ['DROP INDEX customers_tenant_id_idx', `ALTER TABLE customers ADD COLUMN region text COLLATE "POSIX" DEFAULT 'eu'`]);
    composite = await startTarget(path.join(FIXTURES, 'red-team-policy.yaml'), [
      'DROP INDEX customers_tenant_id_idx',
      'CREATE TYPE rt_address AS (city text COLLATE "POSIX", street text)',
      "ALTER TABLE customers ADD COLUMN addr rt_address DEFAULT ROW('x', 'y'), ADD COLUMN zone circle DEFAULT '<(0,0),1>'",
    ]);
  });
  afterAll(async () => {
    await stopTarget(bare);
    await stopTarget(collated);
    await stopTarget(composite);
    await stopTarget(admitted);
  });
  const probes: Array<(id: number) => string> = [
    (id) => `SELECT 1 FROM (SELECT id, name COLLATE "POSIX" AS n FROM customers) t, (SELECT 'x' COLLATE "C" AS v) s WHERE t.id >= ${id} AND t.id <= ${id} AND t.n <> s.v`,
    (id) => `WITH t AS (SELECT id, name COLLATE "POSIX" AS n FROM customers), s AS (SELECT 'x' COLLATE "C" AS v) SELECT count(*) FROM t, s WHERE t.id >= ${id} AND t.id <= ${id} AND t.n <> s.v`,
    (id) => `SELECT 1 FROM customers c, (VALUES ('x' COLLATE "C", 'y' COLLATE "POSIX")) s(a, b) WHERE c.id >= ${id} AND c.id <= ${id} AND c.name || s.a <> c.name || s.b`,
    (id) => `SELECT 1 FROM (SELECT id, name COLLATE "POSIX" AS n FROM customers UNION ALL SELECT 0, 'x') t, (SELECT 'x' COLLATE "C" AS v) s WHERE t.id >= ${id} AND t.id <= ${id} AND t.n <> s.v`,
  ];
  describe.each(modes)('under the $protocol protocol', (mode) => {
    test.each(probes.map((p, i) => [i, p] as const))("probe %i: the same answer for tenant 2's id and for an id nobody has", async (_i, probe) => {
      const [{ id, top }] = await direct<{ id: number; top: number }>(bare, 'SELECT min(id) FILTER (WHERE tenant_id = 2) AS id, max(id) AS top FROM customers');
      const theirs = await run(bare, probe(id), mode);
      const nobodys = await run(bare, probe(top + 1000), mode);
      expect({ code: theirs.error?.code, rows: theirs.rows }).toEqual({ code: nobodys.error?.code, rows: nobodys.rows });
    });

    test.each([
      ["a composite column's field with a collation of its own", (id: number) => `SELECT 1 FROM (SELECT (addr).*, id FROM customers) s WHERE s.id >= ${id} AND s.id <= ${id} AND city <> 'x'::name::text`],
      ['a circle compared with a constant whose area overflows', (id: number) => `SELECT id FROM customers WHERE id >= ${id} AND id <= ${id} AND zone = '<(0,0),1e200>'`],
    ])("%s: the same answer for tenant 2's id and for an id nobody has", async (_what, probe) => {
      const [{ id, top }] = await direct<{ id: number; top: number }>(composite, 'SELECT min(id) FILTER (WHERE tenant_id = 2) AS id, max(id) AS top FROM customers');
      const theirs = await run(composite, probe(id), mode);
      const nobodys = await run(composite, probe(top + 1000), mode);
      expect({ code: theirs.error?.code, rows: theirs.rows }).toEqual({ code: nobodys.error?.code, rows: nobodys.rows });
    });

    test.each([
      ['qualified', (id: number) => `SELECT 1 FROM customers c WHERE c.id >= ${id} AND c.id <= ${id} AND c.code <> (SELECT public.rt_label())`],
      ['unqualified, in a CTE', (id: number) => `WITH l AS MATERIALIZED (SELECT rt_label() AS v) SELECT 1 FROM customers c WHERE c.id >= ${id} AND c.id <= ${id} AND c.code <> (SELECT v FROM l)`],
    ])("an admitted function's result of a collation of its own, compared with a column of \"C\" (%s): the same answer for tenant 2's id and for an id nobody has", async (_how, probe) => {
      const [{ id, top }] = await direct<{ id: number; top: number }>(admitted, 'SELECT min(id) FILTER (WHERE tenant_id = 2) AS id, max(id) AS top FROM customers');
      const theirs = await run(admitted, probe(id), mode);
      const nobodys = await run(admitted, probe(top + 1000), mode);
      expect({ code: theirs.error?.code, rows: theirs.rows }).toEqual({ code: nobodys.error?.code, rows: nobodys.rows });
      // And the agent's own rows still answer.
      const mine = await run(admitted, probe(1), mode);
      expect(mine.error?.message).toMatch(/could not determine which collation/);
    });

    test("a column declared with a collation of its own, compared with a name: the same answer for tenant 2's id and for an id nobody has", async () => {
      const probe = (id: number) => `SELECT 1 FROM customers c WHERE c.id >= ${id} AND c.id <= ${id} AND c.region <> 'x'::name::text`;
      const [{ id, top }] = await direct<{ id: number; top: number }>(collated, 'SELECT min(id) FILTER (WHERE tenant_id = 2) AS id, max(id) AS top FROM customers');
      const theirs = await run(collated, probe(id), mode);
      const nobodys = await run(collated, probe(top + 1000), mode);
      expect({ code: theirs.error?.code, rows: theirs.rows }).toEqual({ code: nobodys.error?.code, rows: nobodys.rows });
    });
  });
});

describe('generated columns computed from denied or masked columns', () => {
  // A stored (or, from PostgreSQL 18, virtual) generated column serves what it is computed from:
  // the length of a denied secret, a lower-case copy of a masked email. Hidden with its sources.
  const target = targetFor([
    'ALTER TABLE customers ADD COLUMN secret_len int GENERATED ALWAYS AS (length(api_secret)) STORED',
    'ALTER TABLE customers ADD COLUMN email_lc text GENERATED ALWAYS AS (lower(email)) STORED',
    'ALTER TABLE customers ADD COLUMN name_lc text GENERATED ALWAYS AS (lower(name)) STORED',
  ]);

  test.each(modes)('under the $protocol protocol: they do not exist for the agent; one computed from visible columns does', async (mode) => {
    const generated = target();
    for (const sql of ['SELECT secret_len FROM customers', 'SELECT email_lc FROM customers', 'SELECT id FROM customers WHERE email_lc LIKE \'%@%\'']) {
      const o = await run(generated, sql, mode);
      expect([sql, o.error?.code]).toEqual([sql, '42703']);
    }
    const star = await run(generated, 'SELECT * FROM customers WHERE id = 1', mode);
    expect(Object.keys(star.rows![0])).not.toEqual(expect.arrayContaining(['secret_len']));
    expect(Object.keys(star.rows![0])).not.toContain('email_lc');
    expect(star.rows![0]).toMatchObject({ name_lc: 'acme corp' });
    const columns = await run(generated, "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'", mode);
    expect(columns.rows!.map((r) => r.column_name)).toEqual(expect.arrayContaining(['name_lc']));
    expect(columns.rows!.map((r) => r.column_name)).not.toEqual(expect.arrayContaining(['secret_len']));
    expect(columns.rows!.map((r) => r.column_name)).not.toEqual(expect.arrayContaining(['email_lc']));
    expectNothingForbidden(star.bytes, '', forbidden);
  });
});

describe("EXPLAIN names no index the agent cannot see", () => {
  // An index on a hidden column serves reads of visible ones (its leading tenant column): the
  // plan would name it, and its name names the column.
  const target = targetFor([
    'DROP INDEX customers_tenant_id_idx',
    'CREATE INDEX customers_tenant_api_secret_idx ON customers (tenant_id, api_secret)',
    "INSERT INTO customers (tenant_id, name, email, api_secret) SELECT 2, 'n' || g, 'e' || g || '@x.test', 'sk_' || g FROM generate_series(1, 20000) g",
    'ANALYZE customers',
  ]);

  test.each(modes)('under the $protocol protocol, in text and JSON', async (mode) => {
    const indexed = target();
    const direct_ = await direct<{ 'QUERY PLAN': string }>(indexed, 'EXPLAIN SELECT count(*) FROM customers WHERE tenant_id = 1');
    expect(JSON.stringify(direct_)).toContain('customers_tenant_api_secret_idx');
    for (const sql of ['EXPLAIN SELECT count(*) FROM customers', 'EXPLAIN (FORMAT JSON) SELECT count(*) FROM customers', 'EXPLAIN SELECT id FROM customers WHERE tenant_id = 1']) {
      const o = await run(indexed, sql, mode);
      expect(o.error).toBeUndefined();
      const text = JSON.stringify(o.rows);
      expect([sql, text]).toEqual([sql, expect.stringContaining('hidden index')]);
      expectNothingForbidden(o.bytes, sql, [...forbidden, 'api_secret']);
    }
    // A guess in the agent's own text comes back as written, right or wrong: no oracle, also
    // where the statement computes a line break that would start a text plan's row of its own.
    for (const guess of ['customers_tenant_api_secret_idx', 'customers_tenant_nothing_idx']) {
      const o = await run(indexed, `EXPLAIN SELECT id FROM customers WHERE name = '${guess}'`, mode);
      expect(JSON.stringify(o.rows)).toContain(guess);
      const forged = await run(indexed, `EXPLAIN SELECT id FROM customers WHERE name = 'x' || chr(10) || 'Index Scan using ${guess} on customers'`, mode);
      expect(JSON.stringify(forged.rows)).toContain(guess);
    }
    // The plan lists arbiter indexes, hidden ones too: not explained.
    const upsert = await run(indexed, "EXPLAIN INSERT INTO orders (customer_id, total_cents) VALUES (1, 1) ON CONFLICT DO NOTHING", mode);
    expect(upsert.error?.message).toMatch(/EXPLAIN of INSERT … ON CONFLICT is not allowed/);
  });

  test.each(modes)('where no index is hidden, a text EXPLAIN stays text ($protocol)', async (mode) => {
    const o = await run(main, 'EXPLAIN SELECT count(*) FROM customers', mode);
    expect(typeof o.rows![0]['QUERY PLAN']).toBe('string');
    expect(String(o.rows![0]['QUERY PLAN'])).toMatch(/Aggregate/);
  });
});

describe.each(modes)('session facts under the $protocol protocol', (mode) => {
  test('information_schema names the database the agent connected to', async () => {
    const tables = await run(main, 'SELECT DISTINCT table_catalog FROM information_schema.tables', mode);
    expect(tables.rows).toEqual([{ table_catalog: 'app' }]);
    const columns = await run(main, 'SELECT DISTINCT table_catalog, udt_catalog FROM information_schema.columns', mode);
    expect(columns.rows).toEqual([{ table_catalog: 'app', udt_catalog: 'app' }]);
    const all = await run(main, 'SELECT * FROM information_schema.columns', mode);
    const star = await run(main, 'SELECT * FROM information_schema.tables', mode);
    for (const o of [tables, columns, all, star]) expectNothingForbidden(o.bytes, '', forbidden);
  });

  test('current_database() answers the connected name, by default and where the policy lists it', async () => {
    expectRefused(await run(main, 'SELECT CURRENT_CATALOG', mode), 'ormai.function_not_allowed');
    for (const target of [main, optIn]) {
      const allowed = await run(target, 'SELECT current_database() AS db', mode);
      expect(allowed.rows).toEqual([{ db: 'app' }]);
      expectNothingForbidden(allowed.bytes, '', forbidden);
    }
  });

  test('a database-qualified column is refused whatever the database name', async () => {
    const named = await run(main, 'SELECT app.public.customers.name FROM customers', mode);
    const other = await run(main, 'SELECT nosuchdb.public.customers.name FROM customers', mode);
    const upstream = await run(main, `SELECT ${main.db.name}.public.customers.name FROM customers`, mode);
    expect(named.error?.routine).toBe('ormai.statement_not_understood');
    expect(other.error?.routine).toBe(named.error?.routine);
    expect(other.error?.message).toBe(named.error?.message);
    expect(upstream.error?.routine).toMatch(/^ormai\./);
    for (const o of [named, other]) expectNothingForbidden(o.bytes, '', forbidden);
  });

  test('system columns read as "does not exist", like hidden columns, in every shape', async () => {
    const hidden = await run(main, 'SELECT api_secret FROM customers', mode);
    expect(hidden.error?.code).toBe('42703');
    for (const sql of [
      'SELECT ctid FROM customers',
      'SELECT xmin, xmax, cmin, cmax FROM orders',
      'SELECT tableoid::int FROM orders',
      'SELECT o.ctid FROM orders o',
      'SELECT c.xmin FROM orders o JOIN customers c ON c.id = o.customer_id',
      'SELECT s.ctid FROM (SELECT * FROM orders) s',
      'SELECT * FROM (SELECT ctid FROM orders) s',
      'WITH x AS (SELECT xmin FROM orders) SELECT * FROM x',
      'SELECT count(*) FROM orders WHERE xmin IS NOT NULL',
      'SELECT * FROM orders o ORDER BY o.ctid',
    ]) {
      const o = await run(main, sql, mode);
      expect([sql, o.error?.code]).toEqual([sql, '42703']);
      expect(o.error?.message).toMatch(/column .* does not exist/);
      expectNothingForbidden(o.bytes, sql, forbidden);
    }
    // tableoid is no column of the policy view, in a cast too; whole rows carry no system column.
    const cast = await run(main, 'SELECT tableoid::regclass FROM customers', mode);
    expect([cast.rows, cast.error?.code]).toEqual([undefined, '42703']);
    const keys = await run(main, 'SELECT DISTINCT k FROM orders o, jsonb_object_keys(to_jsonb(o)) k ORDER BY k', mode);
    expect(keys.rows!.map((r) => r.k)).toEqual(['created_at', 'customer_id', 'id', 'status', 'tenant_id', 'total_cents']);
  });

  test('a model with system_columns: true reads them; other models still do not', async () => {
    const [real] = await direct<{ xmin: string; ctid: string }>(optIn, 'SELECT xmin::text, ctid::text FROM customers WHERE id = 1');
    const o = await run(optIn, 'SELECT c.xmin::text AS xmin, ctid::text AS ctid, c.name FROM customers c WHERE c.id = 1', mode);
    expect(o.rows).toEqual([{ xmin: real.xmin, ctid: real.ctid, name: 'Acme Corp' }]);
    // Tenant scope still holds: tenant 2's rows have no xmin to show.
    const count = await run(optIn, 'SELECT count(xmin)::int AS n FROM customers', mode);
    expect(count.rows).toEqual([{ n: 3 }]);
    expect((await run(optIn, 'SELECT o.xmin FROM orders o', mode)).error?.code).toBe('42703');
    expect((await run(optIn, 'SELECT xmin FROM orders', mode)).error?.code).toBe('42703');
    expectNothingForbidden(o.bytes, '', forbidden);
  });

  test('client_min_messages cannot go below notice', async () => {
    for (const level of ['debug5', 'DEBUG1', 'debug', 'log']) {
      const o = await run(main, `SET client_min_messages = ${level}`, mode);
      expectRefused(o, 'ormai.setting_not_allowed', '42501');
      expect(o.error?.hint).toMatch(/notice.*warning.*error/);
    }
    const quiet = await run(main, ['SET client_min_messages = warning', 'SELECT count(*)::int AS n FROM orders'], mode);
    expect(quiet.rows).toEqual([{ n: 4 }]);
    // A refused SET changes nothing: no DEBUG or LOG message follows.
    const after = await run(main, ['SET client_min_messages = notice', 'SELECT count(*)::int AS n FROM customers'], mode);
    expect(after.notices.filter((n) => /^(DEBUG|LOG)/.test(n.severity))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// C. Forms that were refused and now work, with the results PostgreSQL gives over tenant 1's rows.
// ---------------------------------------------------------------------------------------------------------------

describe.each(modes)('false refusals fixed, under the $protocol protocol', (mode) => {
  test('FETCH FIRST … WITH TIES returns what PostgreSQL returns inside the tenant', async () => {
    for (const [agent, scoped] of [
      ['SELECT id, status FROM orders ORDER BY status FETCH FIRST 1 ROWS WITH TIES', 'SELECT id, status FROM orders WHERE tenant_id = 1 ORDER BY status FETCH FIRST 1 ROWS WITH TIES'],
      ['SELECT id, status FROM orders ORDER BY status DESC OFFSET 1 ROWS FETCH NEXT 1 ROW WITH TIES', 'SELECT id, status FROM orders WHERE tenant_id = 1 ORDER BY status DESC OFFSET 1 ROWS FETCH NEXT 1 ROW WITH TIES'],
      ['SELECT id, status FROM orders ORDER BY status DESC FETCH FIRST 2 ROWS WITH TIES', 'SELECT id, status FROM orders WHERE tenant_id = 1 ORDER BY status DESC FETCH FIRST 2 ROWS WITH TIES'],
      ['SELECT id FROM orders ORDER BY status OFFSET 1 ROWS FETCH NEXT 1 ROW WITH TIES', 'SELECT id FROM orders WHERE tenant_id = 1 ORDER BY status OFFSET 1 ROWS FETCH NEXT 1 ROW WITH TIES'],
      ['SELECT customer_id FROM orders ORDER BY customer_id FETCH FIRST 1 ROW WITH TIES', 'SELECT customer_id FROM orders WHERE tenant_id = 1 ORDER BY customer_id FETCH FIRST 1 ROW WITH TIES'],
    ]) {
      const o = await run(main, agent, mode);
      const expected = await direct(main, scoped);
      expect(o.error).toBeUndefined();
      // Ties come back in an unspecified order among themselves: compare as sets, and the count.
      const key = (rows: Array<Record<string, unknown>>) => rows.map((r) => JSON.stringify(r)).sort();
      expect(key(o.rows!)).toEqual(key(expected));
      expect(expected.length).toBeGreaterThan(0);
      expectNothingForbidden(o.bytes, agent, forbidden);
    }
    // Ties do come back: customer 1 has two orders, both tied for first.
    const ties = await run(main, 'SELECT customer_id FROM orders ORDER BY customer_id FETCH FIRST 1 ROW WITH TIES', mode);
    expect(ties.rows).toEqual([{ customer_id: 1 }, { customer_id: 1 }]);
  });

  test('WITH TIES is still capped at max_rows', async () => {
    // Every row ties with the first: 1000 rows would come back.
    const o = await run(main, 'SELECT g FROM generate_series(1, 1000) g ORDER BY g % 1 FETCH FIRST 1 ROW WITH TIES', mode);
    expect(o.rows).toHaveLength(200);
    expect(o.notices.map((n) => n.message).join('\n')).toMatch(/truncated to 200 rows/);
  });

  test('WITH TIES with a parameter', async () => {
    if (!mode.extended) return;
    const o = await run(main, 'SELECT id FROM orders ORDER BY status FETCH FIRST $1 ROWS WITH TIES', mode, { values: [1] });
    const expected = await direct(main, 'SELECT id FROM orders WHERE tenant_id = 1 ORDER BY status FETCH FIRST 1 ROWS WITH TIES');
    expect(o.rows!.map((r) => r.id).sort()).toEqual(expected.map((r) => r.id).sort());
  });

  test('schema.table.column references resolve', async () => {
    const o = await run(main, 'SELECT public.customers.name FROM public.customers WHERE public.customers.id < 10 ORDER BY public.customers.id', mode);
    expect(o.rows).toEqual([{ name: 'Acme Corp' }, { name: 'Acme Labs' }, { name: 'Acme Retail' }]);
    const join = await run(
      main,
      'SELECT public.orders.total_cents, public.customers.name FROM public.orders JOIN public.customers ON public.customers.id = public.orders.customer_id ORDER BY public.orders.id',
      mode,
    );
    const expected = await direct(main, 'SELECT o.total_cents, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.tenant_id = 1 AND c.tenant_id = 1 ORDER BY o.id');
    expect(join.rows).toEqual(expected);
    expectNothingForbidden(Buffer.concat([o.bytes, join.bytes]), '', forbidden);
  });

  test('information_schema.columns and .tables have the standard columns, with PostgreSQL’s values', async () => {
    const [columnsStar, tablesStar] = [
      await run(main, "SELECT * FROM information_schema.columns WHERE table_name = 'orders'", mode),
      await run(main, "SELECT * FROM information_schema.tables WHERE table_name = 'orders'", mode),
    ];
    const directColumns = await direct(main, "SELECT * FROM information_schema.columns WHERE table_name = 'orders' LIMIT 1");
    const directTables = await direct(main, "SELECT * FROM information_schema.tables WHERE table_name = 'orders' LIMIT 1");
    expect(columnsStar.fields).toEqual([...Object.keys(directColumns[0]), 'ormai_mask']);
    expect(tablesStar.fields).toEqual(Object.keys(directTables[0]));

    const facts =
      'column_name::text, ordinal_position::int, is_nullable::text, data_type::text, character_maximum_length::int, ' +
      'character_octet_length::int, numeric_precision::int, numeric_precision_radix::int, numeric_scale::int, datetime_precision::int, ' +
      'interval_type::text, udt_schema::text, udt_name::text, dtd_identifier::text, is_identity::text, identity_generation::text, ' +
      'is_generated::text, is_updatable::text';
    const o = await run(main, `SELECT ${facts} FROM information_schema.columns WHERE table_name = 'orders' ORDER BY ordinal_position`, mode);
    expect(o.rows).toEqual(await direct(main, `SELECT ${facts} FROM information_schema.columns WHERE table_name = 'orders' ORDER BY ordinal_position`));
    // Defaults name sequences (nextval('orders_id_seq'::regclass)) and may hold data: always NULL here.
    const defaults = await run(main, "SELECT count(*)::int AS n FROM information_schema.columns WHERE column_default IS NOT NULL", mode);
    expect(defaults.rows).toEqual([{ n: 0 }]);
    const tables = await run(main, "SELECT table_type::text, is_insertable_into::text, is_typed::text FROM information_schema.tables WHERE table_name = 'orders'", mode);
    expect(tables.rows).toEqual(await direct(main, "SELECT table_type::text, is_insertable_into::text, is_typed::text FROM information_schema.tables WHERE table_name = 'orders'"));
    for (const x of [columnsStar, tablesStar, o, tables]) expectNothingForbidden(x.bytes, '', [...forbidden, '_seq']);
  });

  test('a masked column is described as the agent sees it; a hidden one not at all', async () => {
    const o = await run(main, "SELECT column_name, data_type, ormai_mask FROM information_schema.columns WHERE table_name = 'customers' ORDER BY ordinal_position", mode);
    expect(o.rows).toEqual([
      { column_name: 'id', data_type: 'integer', ormai_mask: null },
      { column_name: 'tenant_id', data_type: 'integer', ormai_mask: null },
      { column_name: 'name', data_type: 'character varying', ormai_mask: null },
      { column_name: 'email', data_type: 'character varying', ormai_mask: 'email' },
      { column_name: 'phone', data_type: 'character varying', ormai_mask: 'phone' },
    ]);
    expectNothingForbidden(o.bytes, '', forbidden);
  });
});
