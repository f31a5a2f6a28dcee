// The catalog leak family (issue #11): through pg_catalog, information_schema and the catalog helper functions an
// agent (tenant 1, quickstart policy) learns nothing of the denied column, the unlisted table, other tenants'
// statistics, function sources or view definitions. Every case runs under the simple and the extended protocol and
// checks every byte the client receives; positive controls show each probe would see the leak without the proxy.
import path from 'node:path';
import { direct, expectNothingForbidden, modes, run, startTarget, stopTarget, type Mode, type Outcome, type Target } from '../support/red-team';

const POLICY = path.resolve(__dirname, '..', '..', 'config', 'quickstart', 'policy.yaml');

// Objects that read the denied column or belong to the unlisted table, made directly by the superuser before the
// proxy starts (so they are in the catalog it loads). Every name carries api_secret or internal_notes, so a text
// search of the bytes the client receives catches any of them.
const SETUP = [
  'CREATE TABLE internal_notes (id serial PRIMARY KEY, customer_id int, note text)',
  "INSERT INTO internal_notes (customer_id, note) SELECT g, 'note ' || g FROM generate_series(1, 50) g",
  "COMMENT ON TABLE internal_notes IS 'internal_notes: not for agents'",
  "COMMENT ON COLUMN internal_notes.note IS 'internal_notes.note comment'",
  'CREATE VIEW internal_notes_v AS SELECT id, note FROM internal_notes',
  'CREATE INDEX customers_api_secret_idx ON customers (api_secret)',
  'CREATE INDEX customers_lower_api_secret_idx ON customers (lower(api_secret))',
  'CREATE INDEX customers_name_api_secret_part_idx ON customers (name) WHERE api_secret IS NOT NULL',
  "ALTER TABLE customers ADD CONSTRAINT customers_api_secret_check CHECK (api_secret IS NULL OR api_secret LIKE 'sk_%')",
  "ALTER TABLE customers ALTER COLUMN api_secret SET DEFAULT 'sk_live_DEFAULT_api_secret'",
  "COMMENT ON COLUMN customers.api_secret IS 'api_secret: the customer key'",
  "COMMENT ON INDEX customers_api_secret_idx IS 'api_secret index comment'",
  "COMMENT ON CONSTRAINT customers_api_secret_check ON customers IS 'api_secret check comment'",
  // Visible objects of orders whose expression trees read orders' 6th column (created_at): rendered against
  // customers, attnum 6 is api_secret.
  "ALTER TABLE orders ADD CONSTRAINT orders_created_at_check CHECK (created_at > '2000-01-01')",
  'CREATE INDEX orders_created_day_idx ON orders (date(created_at))',
  // Visible expression trees on customers: what lets an expression of orders pass a check that it belongs to customers.
  'ALTER TABLE customers ADD CONSTRAINT customers_tenant_id_check CHECK (tenant_id > 0)',
  'CREATE INDEX customers_lower_name_idx ON customers (lower(name))',
  'CREATE STATISTICS customers_api_secret_stx ON name, api_secret FROM customers',
  `CREATE FUNCTION internal_notes_audit() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN INSERT INTO internal_notes (customer_id, note) VALUES (NEW.id, NEW.api_secret); RETURN NEW; END $$`,
  'CREATE TRIGGER internal_notes_trg AFTER UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION internal_notes_audit()',
  'CREATE POLICY api_secret_rls ON customers USING (api_secret IS NOT NULL)',
  'CREATE RULE internal_notes_rule AS ON DELETE TO internal_notes DO INSTEAD NOTHING',
  // A schema the policy does not list, with types of its own: their names and labels are the schema's business.
  'CREATE SCHEMA internal_notes_schema',
  "CREATE TYPE internal_notes_schema.internal_notes_status AS ENUM ('internal_notes_LABEL')",
  'CREATE TYPE internal_notes_schema.internal_notes_range AS RANGE (subtype = int4)',
  'CREATE DOMAIN internal_notes_schema.internal_notes_domain AS int CHECK (VALUE > 0)',
  "CREATE COLLATION internal_notes_schema.internal_notes_coll (locale = 'C')",
  // An operator of the search_path's schema over a function no allow-list has.
  "CREATE FUNCTION internal_notes_add(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT a + b'",
  'CREATE OPERATOR ### (LEFTARG = int, RIGHTARG = int, FUNCTION = internal_notes_add)',
  // Overloads of a built-in function and a built-in operator: PostgreSQL's resolution picks them for their types.
  "CREATE FUNCTION md5(n int) RETURNS text LANGUAGE sql AS $$SELECT 'internal_notes md5 ' || n$$",
  "CREATE FUNCTION internal_notes_concat(a int, b text) RETURNS text LANGUAGE sql AS $$SELECT 'internal_notes ' || a || b$$",
  'CREATE OPERATOR ## (LEFTARG = int, RIGHTARG = text, FUNCTION = internal_notes_concat)',
  'ANALYZE',
];

/** Never in any byte the client receives: the denied column, the unlisted table (and every object named after them), secrets, tenant 2. */
const FORBIDDEN = ['api_secret', 'internal_notes', 'sk_live_', 'DO_NOT_LEAK', 'Globex', 'globex', 'ormai_t_'];

let t: Target;
/** The newest oid in the database: every object made above is at or below it. */
let lastOid: number;
/** The oldest oid of this database's own objects (the oid counter is cluster-wide: other databases' objects lie between). */
let firstOid: number;

beforeAll(async () => {
  t = await startTarget(POLICY, SETUP);
  [{ lastOid, firstOid }] = await direct<{ lastOid: number; firstOid: number }>(
    t,
    `SELECT max(oid)::int AS "lastOid",
            least(min(oid) FILTER (WHERE oid >= 16384), (SELECT min(oid) FROM pg_type WHERE oid >= 16384))::int AS "firstOid" FROM pg_class`,
  );
});
afterAll(async () => {
  // The database (and every object above) is dropped with it.
  await stopTarget(t);
});

/** Runs through the proxy as tenant 1, expects no error and nothing forbidden (beyond the agent's own words) in any byte. */
async function rows(sql: string, mode: Mode): Promise<Array<Record<string, unknown>>> {
  const o = await run(t, sql, mode);
  if (o.error) throw new Error(`${sql}\n→ ${o.error.code} ${o.error.routine}: ${o.error.message}`);
  expectNothingForbidden(o.bytes, sql, FORBIDDEN);
  return o.rows!;
}

/** Runs through the proxy and expects the refusal `routine` (ormai.<code>), with nothing forbidden in the bytes. */
async function refused(sql: string, mode: Mode, routine: string): Promise<Outcome> {
  const o = await run(t, sql, mode);
  expect({ sql, rows: o.rows, routine: o.error?.routine }).toEqual({ sql, rows: undefined, routine });
  // PostgreSQL folds an unquoted name, so an error may echo the agent's own words in lower case.
  expectNothingForbidden(o.bytes, `${sql}\n${sql.toLowerCase()}`, FORBIDDEN);
  return o;
}

const text = (r: unknown): string => JSON.stringify(r);

// ---------------------------------------------------------------------------------------------------------------
// 5. Positive controls first: the probes see the leak directly, and the proxy does answer for visible objects.
// ---------------------------------------------------------------------------------------------------------------

describe('positive controls', () => {
  test('directly, PostgreSQL names api_secret and internal_notes through the same probes', async () => {
    expect(await direct(t, "SELECT attname FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'api_secret'")).toHaveLength(1);
    expect(text(await direct(t, "SELECT indexdef FROM pg_indexes WHERE tablename = 'customers'"))).toContain('api_secret');
    expect(text(await direct(t, "SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint WHERE conrelid = 'customers'::regclass"))).toContain('api_secret');
    expect(text(await direct(t, "SELECT col_description('customers'::regclass, 6) AS d"))).toContain('api_secret');
    expect(text(await direct(t, "SELECT pg_get_expr(conbin, 'customers'::regclass) AS e FROM pg_constraint WHERE conname = 'orders_created_at_check'"))).toContain('api_secret');
    expect(text(await direct(t, "SELECT pg_get_expr(indexprs, 'customers'::regclass) AS e FROM pg_index WHERE indexrelid = 'orders_created_day_idx'::regclass"))).toContain('api_secret');
    expect(text(await direct(t, 'SELECT relname FROM pg_class'))).toContain('internal_notes');
    // The same oids the agent's scan below covers (the counter is cluster-wide: this database's objects may lie past 100,000).
    expect(text(await direct(t, `SELECT o::regclass::text AS r FROM generate_series(${firstOid}, ${lastOid}) o WHERE o::regclass::text NOT LIKE $1`, ['%pg_%']))).toContain('internal_notes');
    expect(text(await direct(t, 'SELECT format_type(oid, NULL) AS f FROM pg_type'))).toContain('internal_notes');
    expect(text(await direct(t, "SELECT prosrc FROM pg_proc WHERE proname = 'internal_notes_audit'"))).toContain('api_secret');
    expect(text(await direct(t, "SELECT pg_get_triggerdef(oid) AS d FROM pg_trigger WHERE tgname = 'internal_notes_trg'"))).toContain('internal_notes');
    expect(text(await direct(t, "SELECT pg_get_viewdef('internal_notes_v'::regclass) AS d"))).toContain('internal_notes');
    expect(text(await direct(t, 'SELECT polname, pg_get_expr(polqual, polrelid) AS q FROM pg_policy'))).toContain('api_secret');
    const [c] = await direct<{ reltuples: number; relpages: number }>(t, "SELECT reltuples, relpages FROM pg_class WHERE relname = 'customers'");
    expect(c.reltuples).toBe(5);
    expect(c.relpages).toBeGreaterThan(0);
    expect(await direct(t, "SELECT 1 FROM pg_sequences WHERE sequencename = 'internal_notes_id_seq' AND last_value = 50")).toHaveLength(1);
  });

  describe.each(modes)('$protocol protocol', (mode) => {
    test('through the proxy, visible columns, indexes and constraints are listed', async () => {
      const cols = await rows("SELECT attname FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attnum > 0 ORDER BY attnum", mode);
      expect(cols.map((r) => r.attname)).toEqual(['id', 'tenant_id', 'name', 'email', 'phone']);
      const idx = await rows("SELECT indexname FROM pg_indexes WHERE tablename = 'customers' ORDER BY indexname", mode);
      expect(idx.map((r) => r.indexname)).toEqual(['customers_lower_name_idx', 'customers_pkey', 'customers_tenant_id_idx']);
      const checks = await rows("SELECT c.conname, pg_get_constraintdef(c.oid) AS def FROM pg_constraint c WHERE c.conname = 'orders_created_at_check'", mode);
      expect(checks).toHaveLength(1);
      expect(checks[0].def).toMatch(/created_at >/);
      // pg_get_expr paired with the right relation works.
      const e = await rows("SELECT pg_get_expr(c.conbin, c.conrelid) AS e FROM pg_constraint c WHERE c.conname = 'orders_created_at_check'", mode);
      expect(e[0].e).toMatch(/created_at >/);
      const seq = await rows("SELECT pg_get_serial_sequence('customers', 'id') AS s", mode);
      expect(seq).toEqual([{ s: 'public.customers_id_seq' }]);
    });
  });
});

describe.each(modes)('$protocol protocol', (mode) => {
  // -------------------------------------------------------------------------------------------------------------
  // 1. The denied column never appears.
  // -------------------------------------------------------------------------------------------------------------

  test('pg_attribute: no api_secret row for customers, nor for any index', async () => {
    const all = await rows("SELECT attrelid::regclass::text AS rel, attname FROM pg_attribute WHERE attrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)", mode);
    expect(all.length).toBeGreaterThan(5);
    expect(await rows("SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attnum = 6", mode)).toEqual([{ n: 0 }]);
    expect(await rows('SELECT count(*)::int AS n FROM pg_attribute WHERE attname::text LIKE $$%secret%$$', mode)).toEqual([{ n: 0 }]);
  });

  test("JDBC's getIndexInfo form (information_schema._pg_expandarray over indkey) lists only the visible indexes' columns", async () => {
    const sql = `SELECT tmp.index_name, trim(both '"' from pg_catalog.pg_get_indexdef(tmp.ci_oid, tmp.ordinal_position, false)) AS column_name
      FROM (SELECT ci.relname AS index_name, (information_schema._pg_expandarray(i.indkey)).n AS ordinal_position, ci.oid AS ci_oid
            FROM pg_catalog.pg_class ct JOIN pg_catalog.pg_index i ON (ct.oid = i.indrelid) JOIN pg_catalog.pg_class ci ON (ci.oid = i.indexrelid)
            WHERE ct.relname = 'customers') AS tmp ORDER BY 1, 2`;
    // Directly, the same statement names the indexes over api_secret.
    expect(text(await direct(t, sql))).toContain('api_secret');
    const idx = await rows(sql, mode);
    expect([...new Set(idx.map((r) => r.index_name))]).toEqual(['customers_lower_name_idx', 'customers_pkey', 'customers_tenant_id_idx']);
    // getPrimaryKeys: the key's attribute numbers through the composite field (KEYS).x.
    const pk = await rows(`SELECT result.column_name FROM (SELECT a.attname AS column_name, information_schema._pg_expandarray(i.indkey) AS keys, a.attnum AS a_attnum
      FROM pg_catalog.pg_class ct JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid) JOIN pg_catalog.pg_index i ON (a.attrelid = i.indrelid)
      WHERE ct.relname = 'customers' AND i.indisprimary) result WHERE result.a_attnum = (result.keys).x`, mode);
    expect(pk).toEqual([{ column_name: 'id' }]);
  });

  test('pg_index, pg_indexes, pg_get_indexdef: the indexes reading api_secret are absent or NULL', async () => {
    const idx = await rows("SELECT indexrelid::regclass::text AS i, pg_get_indexdef(indexrelid) AS d FROM pg_index WHERE indrelid = 'customers'::regclass ORDER BY 1", mode);
    expect(idx.map((r) => r.i)).toEqual(['customers_lower_name_idx', 'customers_pkey', 'customers_tenant_id_idx']);
    await rows("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'customers'", mode);
    // By oid (the agent guesses oids over the range of every index of both tables, hidden ones included): only the
    // visible indexes answer; the three on api_secret are NULL. The range comes from PostgreSQL directly, since oids
    // need not be consecutive.
    const [range] = await direct<{ lo: number; hi: number; hidden: number }>(
      t,
      "SELECT min(indexrelid)::int AS lo, max(indexrelid)::int AS hi, count(*) FILTER (WHERE pg_get_indexdef(indexrelid) LIKE '%api_secret%')::int AS hidden FROM pg_index WHERE indrelid IN ('customers'::regclass, 'orders'::regclass)",
    );
    expect(range.hidden).toBe(3);
    const visible = await rows("SELECT indexrelid::int AS o FROM pg_index WHERE indrelid IN ('customers'::regclass, 'orders'::regclass) ORDER BY 1", mode);
    expect(visible).toHaveLength(6);
    const near = await rows(`SELECT o, pg_get_indexdef(o) AS d, pg_get_indexdef(o, 1, true) AS k FROM generate_series(${range.lo}, ${range.hi}) o ORDER BY o`, mode);
    expect(near.filter((r) => r.d !== null).map((r) => r.o)).toEqual(visible.map((r) => r.o));
    expect(near.filter((r) => r.k !== null).map((r) => r.o)).toEqual(visible.map((r) => r.o));
    // The visible index on orders over an expression is fine; its expression read against customers gives NULL.
    const day = await rows("SELECT pg_get_indexdef(i.indexrelid) AS d, pg_get_expr(i.indexprs, 'customers'::regclass) AS wrong, pg_get_expr(i.indexprs, i.indrelid) AS right FROM pg_index i WHERE i.indrelid = 'orders'::regclass AND i.indexprs IS NOT NULL", mode);
    expect(day).toHaveLength(1);
    expect(day[0].wrong).toBeNull();
    expect(day[0].right).toMatch(/created_at/);
  });

  test('pg_constraint, pg_get_constraintdef: the check reading api_secret is absent; by oid NULL', async () => {
    const cons = await rows("SELECT conname, pg_get_constraintdef(oid) AS d FROM pg_constraint WHERE conrelid = 'customers'::regclass ORDER BY conname", mode);
    // Every constraint of customers but those reading api_secret (attnum 6); PostgreSQL 18 adds NOT NULL constraints.
    const expected = await direct<{ conname: string }>(t, "SELECT conname FROM pg_constraint WHERE conrelid = 'customers'::regclass AND NOT (6 = ANY(conkey)) ORDER BY conname");
    expect(expected.map((r) => r.conname)).toEqual(expect.arrayContaining(['customers_pkey', 'customers_tenant_id_check']));
    expect(cons.map((r) => r.conname)).toEqual(expected.map((r) => r.conname));
    const near = await rows("SELECT o, pg_get_constraintdef(o) AS d, pg_get_constraintdef(o, true) AS p FROM generate_series(('customers'::regclass)::oid::int - 5, ('customers'::regclass)::oid::int + 60) o", mode);
    expect(near.filter((r) => r.d !== null).length).toBeGreaterThan(0);
  });

  test('col_description, obj_description, pg_description: the comments on api_secret, its index and check are NULL or absent', async () => {
    expect(await rows("SELECT col_description('customers'::regclass, 6) AS d, col_description('customers'::regclass, a) AS e FROM generate_series(1, 10) a WHERE a = 6", mode)).toEqual([{ d: null, e: null }]);
    await rows("SELECT objoid, classoid::regclass::text AS c, objsubid, description FROM pg_description WHERE objoid >= ('customers'::regclass)::oid", mode);
    expect(await rows("SELECT count(*)::int AS n FROM pg_description WHERE description LIKE '%secret%' OR description LIKE '%notes%'", mode)).toEqual([{ n: 0 }]);
    await rows("SELECT o, obj_description(o, 'pg_class') AS c, obj_description(o, 'pg_constraint') AS k, obj_description(o) AS d FROM generate_series(('customers'::regclass)::oid::int - 5, ('customers'::regclass)::oid::int + 60) o", mode);
  });

  test('pg_attrdef and pg_get_expr: the default of api_secret is absent; a tree paired with the wrong relation is NULL', async () => {
    await rows("SELECT adrelid::regclass::text AS r, adnum, pg_get_expr(adbin, adrelid) AS d FROM pg_attrdef WHERE adrelid = 'customers'::regclass", mode);
    expect(await rows("SELECT count(*)::int AS n FROM pg_attrdef WHERE adrelid = 'customers'::regclass AND adnum = 6", mode)).toEqual([{ n: 0 }]);
    const wrong = await rows(
      "SELECT pg_get_expr(d.adbin, 'customers'::regclass) AS a, pg_get_expr(c.conbin, 'customers'::regclass) AS b, pg_get_expr(c.conbin, 'customers'::regclass, true) AS p " +
        "FROM pg_attrdef d, pg_constraint c WHERE d.adrelid = 'orders'::regclass AND d.adnum = 6 AND c.conname = 'orders_created_at_check'",
      mode,
    );
    expect(wrong).toEqual([{ a: null, b: null, p: null }]);
  });

  // Regression (closed): the guard of pg_get_expr checks the tree belongs to the relation with a subquery over the catalog
  // aliased ormai_g; an unqualified argument (conbin, indexprs, adbin) is captured by that alias, so the check compares
  // a row with itself and passes whenever the relation has any visible tree. orders' tree read against customers
  // renders orders' attnum 6 (created_at) as customers' attnum 6: "(api_secret > …)" / "date(api_secret)".
  test('pg_get_expr with unqualified columns: an orders check read against customers is NULL', async () => {
    const sql = "SELECT pg_get_expr(conbin, 'customers'::regclass) AS e FROM pg_constraint WHERE conname = 'orders_created_at_check'";
    expect(await rows(sql, mode)).toEqual([{ e: null }]);
  });

  // Regression (closed): the same capture, through pg_index.indexprs.
  test('pg_get_expr with unqualified columns: an orders index expression read against customers is NULL', async () => {
    const sql = "SELECT pg_get_expr(indexprs, 'customers'::regclass) AS e FROM pg_index WHERE indrelid = 'orders'::regclass AND indexprs IS NOT NULL";
    expect(await rows(sql, mode)).toEqual([{ e: null }]);
  });

  // Regression (an existence oracle, closed): the guard's subquery over pg_attribute (alias ormai_g) captures the unqualified
  // attname, so its check "ormai_g.attname = attname" always holds and PostgreSQL is asked about the agent's column:
  // NULL for api_secret (it exists), an error naming the column for a missing one.
  test('pg_get_serial_sequence with an unqualified column name: a denied column and a missing one answer alike', async () => {
    const sql = "SELECT attname::text AS c, pg_get_serial_sequence('customers', attname) AS s FROM (VALUES ('api_secret'), ('no_such_column')) v(attname)";
    const o = await run(t, sql, mode);
    expectNothingForbidden(o.bytes, sql, FORBIDDEN);
    expect(o.error).toBeUndefined();
    expect(o.rows).toEqual([{ c: 'api_secret', s: null }, { c: 'no_such_column', s: null }]);
  });

  // BUG (open, wrong answers rather than a leak): the same capture in pg_get_constraintdef(oid), format_type(oid, …),
  // pg_get_indexdef(indexrelid): the guard's subquery compares its own row with itself and answers for the first visible
  // object of the catalog (here customers_pkey's "PRIMARY KEY (id)" for orders_created_at_check).
  test('helpers answer for their own row when the argument is an unqualified catalog column', async () => {
    expect(await rows("SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint WHERE conname = 'orders_created_at_check'", mode)).toEqual([{ d: expect.stringMatching(/created_at >/) }]);
    expect(await rows("SELECT format_type(oid, NULL) AS f FROM pg_type WHERE typname = 'int4'", mode)).toEqual([{ f: 'integer' }]);
    expect(await rows("SELECT pg_get_indexdef(indexrelid) AS d FROM pg_index WHERE indexrelid = (SELECT c.oid FROM pg_class c WHERE c.relname = 'orders_created_day_idx')", mode)).toEqual([{ d: expect.stringMatching(/date\(created_at\)/) }]);
  });

  test('information_schema: table_constraints, key_column_usage, constraint_column_usage, check_constraints never name api_secret', async () => {
    const tc = await rows("SELECT constraint_name, constraint_type FROM information_schema.table_constraints WHERE table_name = 'customers' AND constraint_type <> 'CHECK'", mode);
    expect(tc.map((r) => r.constraint_name)).toEqual(['customers_pkey']);
    expect(await rows("SELECT count(*)::int AS n FROM information_schema.table_constraints WHERE constraint_name::text LIKE '%secret%'", mode)).toEqual([{ n: 0 }]);
    await rows("SELECT constraint_name, column_name FROM information_schema.key_column_usage WHERE table_name IN ('customers', 'orders')", mode);
    await rows("SELECT constraint_name, column_name FROM information_schema.constraint_column_usage WHERE table_name IN ('customers', 'orders')", mode);
    await rows('SELECT * FROM information_schema.referential_constraints', mode);
    for (const view of ['check_constraints', 'constraint_table_usage', 'column_privileges', 'triggers', 'routines', 'sequences', 'view_table_usage', 'views']) {
      const o = await run(t, `SELECT * FROM information_schema.${view}`, mode);
      expectNothingForbidden(o.bytes, view, FORBIDDEN);
    }
  });

  test("referential_constraints: a hidden table's foreign key under a visible one's name is not listed", async () => {
    await t.db.query(`CREATE SCHEMA IF NOT EXISTS rc_hidden_${mode.protocol}`);
    await t.db.query(`CREATE TABLE rc_hidden_${mode.protocol}.keys (k text CONSTRAINT hidden_keys_secret_pk PRIMARY KEY)`);
    await t.db.query(`CREATE TABLE rc_payroll_${mode.protocol} (k text CONSTRAINT orders_customer_id_fkey REFERENCES rc_hidden_${mode.protocol}.keys (k) ON DELETE CASCADE)`);
    try {
      const listed = await run(t, "SELECT constraint_name, unique_constraint_schema, unique_constraint_name, delete_rule FROM information_schema.referential_constraints WHERE constraint_name = 'orders_customer_id_fkey'", mode);
      expect(listed.rows).toEqual([{ constraint_name: 'orders_customer_id_fkey', unique_constraint_schema: 'public', unique_constraint_name: 'customers_pkey', delete_rule: 'NO ACTION' }]);
      expectNothingForbidden(listed.bytes, 'referential_constraints', [...FORBIDDEN, 'hidden_keys_secret_pk', `rc_hidden_${mode.protocol}`, 'CASCADE']);
    } finally {
      await t.db.query(`DROP TABLE rc_payroll_${mode.protocol}`);
      await t.db.query(`DROP SCHEMA rc_hidden_${mode.protocol} CASCADE`);
    }
  });

  test('psql \\d customers, query by query, names neither', async () => {
    const [{ oid }] = await rows("SELECT c.oid FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname OPERATOR(pg_catalog.~) '^(customers)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1", mode);
    const cols = await rows(
      `SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef), a.attnotnull, (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation, a.attidentity, a.attgenerated FROM pg_catalog.pg_attribute a WHERE a.attrelid = '${oid}' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
      mode,
    );
    expect(cols.map((r) => r.attname)).toEqual(['id', 'tenant_id', 'name', 'email', 'phone']);
    const idx = await rows(
      `SELECT c2.relname, i.indisprimary, i.indisunique, i.indisclustered, i.indisvalid, pg_catalog.pg_get_indexdef(i.indexrelid, 0, true), pg_catalog.pg_get_constraintdef(con.oid, true), contype, condeferrable, condeferred, i.indisreplident, c2.reltablespace FROM pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_index i LEFT JOIN pg_catalog.pg_constraint con ON (conrelid = i.indrelid AND conindid = i.indexrelid AND contype IN ('p','u','x')) WHERE c.oid = '${oid}' AND c.oid = i.indrelid AND i.indexrelid = c2.oid ORDER BY i.indisprimary DESC, c2.relname`,
      mode,
    );
    expect(idx.map((r) => r.relname)).toEqual(['customers_pkey', 'customers_lower_name_idx', 'customers_tenant_id_idx']);
    expect(await rows(`SELECT r.conname, pg_catalog.pg_get_constraintdef(r.oid, true) AS d FROM pg_catalog.pg_constraint r WHERE r.conrelid = '${oid}' AND r.contype = 'c' ORDER BY 1`, mode)).toEqual([
      { conname: 'customers_tenant_id_check', d: 'CHECK (tenant_id > 0)' },
    ]);
    await rows(`SELECT conname, conrelid::pg_catalog.regclass AS ontable, pg_catalog.pg_get_constraintdef(oid, true) AS condef FROM pg_catalog.pg_constraint c WHERE confrelid IN (SELECT pg_catalog.pg_partition_ancestors('${oid}') UNION ALL VALUES ('${oid}'::pg_catalog.regclass)) AND contype = 'f' AND conparentid = 0 ORDER BY conname`, mode);
    expect(await rows(`SELECT pol.polname, pol.polpermissive, pg_catalog.pg_get_expr(pol.polqual, pol.polrelid), pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid) FROM pg_catalog.pg_policy pol WHERE pol.polrelid = '${oid}' ORDER BY 1`, mode)).toEqual([]);
    expect(await rows(`SELECT oid, stxrelid::pg_catalog.regclass, stxname, pg_catalog.pg_get_statisticsobjdef_columns(oid) AS columns FROM pg_catalog.pg_statistic_ext WHERE stxrelid = '${oid}' ORDER BY stxname`, mode)).toEqual([]);
    expect(await rows(`SELECT t.tgname, pg_catalog.pg_get_triggerdef(t.oid, true), t.tgenabled, t.tgisinternal FROM pg_catalog.pg_trigger t WHERE t.tgrelid = '${oid}' ORDER BY 1`, mode)).toEqual([]);
  });

  test('whole served catalogs, searched as text, hold neither name', async () => {
    for (const rel of [
      'pg_class', 'pg_attribute', 'pg_index', 'pg_constraint', 'pg_attrdef', 'pg_description', 'pg_sequence', 'pg_sequences', 'pg_namespace',
      'pg_type', 'pg_depend', 'pg_inherits', 'pg_tables', 'pg_indexes', 'pg_views', 'pg_stat_user_tables', 'pg_stat_all_tables', 'pg_statio_user_tables',
      'pg_stat_user_indexes', 'pg_stat_all_indexes', 'pg_statio_user_indexes', 'pg_statistic_ext', 'pg_trigger', 'pg_policy', 'pg_policies', 'pg_rewrite', 'pg_rules',
      'pg_roles', 'pg_user', 'pg_database', 'pg_settings', 'pg_stat_activity', 'pg_locks', 'pg_matviews', 'pg_shdescription', 'pg_init_privs', 'pg_seclabels',
      'pg_enum', 'pg_range', 'pg_collation',
    ]) {
      // Row by row as text: nothing is cut by max_rows, and the whole row is searched.
      const sql = `SELECT count(*)::int AS n FROM pg_catalog.${rel} x WHERE x::text ~* 'secret|notes|globex|sk_live'`;
      const o = await run(t, sql, mode);
      expectNothingForbidden(o.bytes, sql, FORBIDDEN);
      if (!o.error) expect({ rel, rows: o.rows }).toEqual({ rel, rows: [{ n: 0 }] });
      const all = await run(t, `SELECT * FROM pg_catalog.${rel}`, mode);
      expectNothingForbidden(all.bytes, rel, FORBIDDEN);
    }
  });

  // -------------------------------------------------------------------------------------------------------------
  // 2. The unlisted table never appears.
  // -------------------------------------------------------------------------------------------------------------

  test('pg_class, pg_tables, pg_views, pg_type: only customers, orders and their indexes and sequences', async () => {
    const cls = await rows("SELECT relname, relkind FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY relname", mode);
    expect(cls.map((r) => r.relname)).toEqual([
      'customers', 'customers_id_seq', 'customers_lower_name_idx', 'customers_pkey', 'customers_tenant_id_idx',
      'orders', 'orders_created_day_idx', 'orders_id_seq', 'orders_pkey', 'orders_tenant_id_idx',
    ]);
    expect(await rows("SELECT count(*)::int AS n FROM pg_class WHERE relname::text LIKE '%notes%' OR relkind = 'v'", mode)).toEqual([{ n: 0 }]);
    expect((await rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", mode)).map((r) => r.tablename)).toEqual(['customers', 'orders']);
    expect(await rows('SELECT viewname, definition FROM pg_views WHERE schemaname NOT IN ($$pg_catalog$$, $$information_schema$$)', mode)).toEqual([]);
    expect(await rows("SELECT count(*)::int AS n FROM pg_type WHERE typname::text LIKE '%notes%'", mode)).toEqual([{ n: 0 }]);
    // The only row types served are the visible tables' (each under its table's name and relation).
    const rowTypes = await rows("SELECT t.typname::text AS name, t.typrelid = c.oid AS own FROM pg_type t LEFT JOIN pg_class c ON c.relname = t.typname WHERE t.typrelid <> 0 ORDER BY 1", mode);
    expect(rowTypes).toEqual([{ name: 'customers', own: true }, { name: 'orders', own: true }]);
  });

  test('obj_description, pg_description, pg_stat_user_tables, pg_sequences: nothing of internal_notes', async () => {
    expect((await rows('SELECT relname FROM pg_stat_user_tables ORDER BY 1', mode)).map((r) => r.relname)).toEqual(['customers', 'orders']);
    expect((await rows('SELECT sequencename FROM pg_sequences ORDER BY 1', mode)).map((r) => r.sequencename)).toEqual(['customers_id_seq', 'orders_id_seq']);
    // Owned, as pg_tables and pg_views say, by the agent's name: not the upstream role's.
    expect(await rows('SELECT DISTINCT sequenceowner FROM pg_sequences', mode)).toEqual([{ sequenceowner: 'tenant1-agent' }]);
    expect(await rows('SELECT count(*)::int AS n FROM pg_sequence', mode)).toEqual([{ n: 2 }]);
    const [{ max }] = await rows("SELECT max(oid)::int AS max FROM pg_class WHERE relnamespace = 'public'::regnamespace", mode);
    // internal_notes and its objects have oids near the visible ones: the agent asks about each.
    const probe = await rows(
      `SELECT o, obj_description(o, 'pg_class') AS d, obj_description(o) AS e, col_description(o, 1) AS c1, col_description(o, 3) AS c3, pg_table_is_visible(o) AS v, has_table_privilege(o, 'select') AS p FROM generate_series(${Number(max) - 200}, ${Number(max) + 200}) o`,
      mode,
    );
    expect(probe.filter((r) => r.d !== null || r.e !== null || r.c1 !== null || r.c3 !== null)).toEqual([]);
  });

  test("'internal_notes'::regclass and its spellings are refused like a missing relation", async () => {
    for (const sql of [
      "SELECT 'internal_notes'::regclass",
      "SELECT 'public.internal_notes'::regclass",
      "SELECT '\"internal_notes\"'::regclass",
      "SELECT ' Internal_Notes '::regclass",
      "SELECT 'internal_notes_v'::regclass",
      "SELECT 'internal_notes_id_seq'::regclass",
      "SELECT 'customers_api_secret_idx'::regclass",
      "SELECT CAST('internal_notes' AS pg_catalog.regclass)",
    ]) {
      // PostgreSQL folds the unquoted name, so the error echoes the agent's own words in lower case.
      const o = await refused(sql, mode, 'ormai.model_not_allowed');
      expect(o.error?.code).toBe('42P01');
    }
    const o = await run(t, "SELECT 'internal_notes'::regtype", mode);
    expect(o.rows).toBeUndefined();
    expect(o.error?.message).not.toMatch(/customers|orders/);
  });

  test('an untyped string or parameter beside a reg* value is refused: PostgreSQL would look it up as a name', async () => {
    const [{ oid }] = await direct<{ oid: number }>(t, "SELECT 'internal_notes'::regclass::oid::int AS oid");
    // Positive controls: directly, each form finds the hidden objects.
    expect(await direct(t, "SELECT coalesce(NULL::regclass, 'internal_notes')::oid::int AS o")).toEqual([{ o: oid }]);
    expect(text(await direct(t, "SELECT CASE WHEN false THEN typinput ELSE 'internal_notes_audit' END AS f FROM pg_type WHERE typname = 'int4'"))).toContain('internal_notes_audit');
    expect(text(await direct(t, `SELECT unnest(ARRAY[NULL::regclass, '${oid}']) AS r`))).toContain('internal_notes');
    expect(await direct(t, 'SELECT coalesce(NULL::regclass, $1)::oid::int AS o', ['internal_notes'])).toEqual([{ o: oid }]);
    expect(await direct(t, "SELECT ARRAY['internal_notes'::regclass] @> '{internal_notes}' AS c")).toEqual([{ c: true }]);
    expect(await direct(t, 'SELECT 1 ### 2 AS s')).toEqual([{ s: 3 }]);
    expect(text(await direct(t, "SELECT md5(1) AS a, 1 ## 'x'::text AS b"))).toContain('internal_notes');
    // An IN list of two constants is one array of the left side's type: each name is looked up.
    await expect(direct(t, "SELECT 1 FROM pg_type WHERE typinput NOT IN ('int4in', 'no_such_fn_x')")).rejects.toThrow(/function "no_such_fn_x" does not exist/);
    for (const sql of [
      "SELECT coalesce(NULL::regclass, 'internal_notes')::oid",
      "SELECT coalesce('customers'::regclass, 'internal_notes')",
      "SELECT coalesce(NULL::regproc, 'internal_notes_audit')",
      "SELECT CASE WHEN false THEN typinput ELSE 'internal_notes_audit' END FROM pg_type WHERE typname = 'int4'",
      "SELECT ARRAY[NULL::regclass] @> '{internal_notes}'",
      `SELECT unnest(ARRAY[NULL::regclass, '${oid}'])`,
      "SELECT x FROM (SELECT NULL::regclass AS x UNION ALL SELECT 'internal_notes') s",
      "WITH h (r) AS (SELECT NULL::regclass) SELECT coalesce(r, 'internal_notes') FROM h",
      "SELECT coalesce(y.r, 'internal_notes')::oid FROM (SELECT * FROM (SELECT NULL::regclass AS r) x) y",
      'SELECT 1 OPERATOR(internal_notes_schema.+) 2',
      'SELECT 1 OPERATOR(public.###) 2',
      'SELECT 1 ### 2',
      'SELECT md5(1)',
      "SELECT 1 ## 'x'::text",
      "SELECT point '(0,0)' ## lseg '((1,1),(2,2))'",
      "SELECT 1 FROM pg_type WHERE typinput NOT IN ('int4in', 'internal_notes_audit')",
      'SELECT 1 WHERE 1 OPERATOR(internal_notes_schema.=) ANY (SELECT 1)',
    ]) {
      await refused(sql, mode, 'ormai.function_not_allowed');
    }
    // A system catalog's row type has reg* fields, read from the agent's text: not a type the agent may name.
    expect(await direct(t, `SELECT json_populate_record(NULL::pg_sequences, '{"data_type": "internal_notes"}') IS NULL AS n`)).toEqual([{ n: false }]);
    await refused(`SELECT json_populate_record(NULL::pg_sequences, '{"data_type": "internal_notes"}') IS NULL AS n`, mode, 'ormai.type_not_allowed');
    const param = await run(t, 'SELECT coalesce(NULL::regclass, $1)::oid AS o', mode, { values: ['internal_notes'] });
    expect(param.error?.routine).toBe('ormai.function_not_allowed');
    expectNothingForbidden(param.bytes, 'SELECT coalesce(NULL::regclass, $1)::oid AS o', FORBIDDEN);
    // The checked forms still answer for visible objects.
    expect(await rows("SELECT coalesce(NULL::regclass, 'customers'::regclass)::text AS r, pg_typeof(1)::text = 'integer' AS t", mode)).toEqual([{ r: 'customers', t: true }]);
    // Expressions PostgreSQL writes with operator names pass with the loaded catalog (BETWEEN names a keyword).
    expect(await rows("SELECT count(*)::int AS n FROM orders WHERE total_cents BETWEEN 0 AND 10000000 AND total_cents NOT BETWEEN -2 AND -1 AND status LIKE '%' AND status ILIKE '%' AND id IN (1, 2, 3, 4) AND status IS DISTINCT FROM 'x'", mode)).toEqual([{ n: expect.any(Number) }]);
    // The built-ins qualified: pg_catalog.md5, OPERATOR(pg_catalog.+).
    expect(await rows("SELECT pg_catalog.md5('a') AS m, 1 OPERATOR(pg_catalog.+) 1 AS s", mode)).toEqual([{ m: '0cc175b9c0f1b6a831c399e269772661', s: 2 }]);
    expect(await rows("SELECT count(*)::int AS n FROM pg_type WHERE typname = 'int4' AND typinput = 'int4in'::regproc", mode)).toEqual([{ n: 1 }]);
  });

  test('non-constant reg* casts over an oid scan give only visible relations and types', async () => {
    // Every oid a relation of this database can have: the built-in range, then this database's own objects.
    const rels = await rows(
      `SELECT o::regclass::text AS r FROM (SELECT generate_series(1, 16383) UNION ALL SELECT generate_series(${firstOid}, ${lastOid})) s (o)
        WHERE o::regclass IS NOT NULL AND o::regclass::text NOT LIKE $$pg\\_%$$ ESCAPE $$\\$$`,
      mode,
    );
    const names = rels.map((r) => String(r.r));
    expect(names).toEqual(expect.arrayContaining(['customers', 'orders', 'customers_pkey']));
    expect(names.filter((n) => !n.startsWith('pg_') && !n.startsWith('information_schema.')).sort()).toEqual([
      'customers', 'customers_id_seq', 'customers_lower_name_idx', 'customers_pkey', 'customers_tenant_id_idx',
      'orders', 'orders_created_day_idx', 'orders_id_seq', 'orders_pkey', 'orders_tenant_id_idx',
    ]);
    // Types of user objects: oids from 16384 to the newest (the statement timeout does not allow 10^5 type lookups).
    // Only the visible tables' own row types can be among them (served when no barrier view stands in; see catalog-views).
    const types = await rows(`SELECT o::regtype::text AS r FROM generate_series(${firstOid}, ${lastOid}) o WHERE o::regtype IS NOT NULL`, mode);
    expect(types.filter((r) => !['customers', 'orders'].includes(String(r.r)))).toEqual([]);
    await rows("SELECT ('internal' || '_notes')::regclass AS r, ('public.' || 'internal_notes')::text::regclass AS s, ('internal' || '_notes')::regtype AS t", mode);
    expect(await rows("SELECT ('internal' || '_notes')::regclass IS NULL AS a, ('customers_api' || '_secret_idx')::regclass IS NULL AS b", mode)).toEqual([{ a: true, b: true }]);
  });

  test("pg_class.relnatts counts up to the last visible column (customers' last, api_secret, is hidden)", async () => {
    expect(await direct(t, "SELECT relnatts FROM pg_class WHERE relname = 'customers'")).toEqual([{ relnatts: 6 }]);
    expect(await rows("SELECT relname, relnatts FROM pg_class WHERE relname IN ('customers', 'orders') ORDER BY relname", mode)).toEqual([
      { relname: 'customers', relnatts: 5 },
      { relname: 'orders', relnatts: 6 },
    ]);
  });

  test("a relation named with another database's name gives NULL, the upstream database's included: its name is not the agent's to learn", async () => {
    const [{ db }] = await direct<{ db: string }>(t, 'SELECT current_database() AS db');
    await expect(direct(t, "SELECT to_regclass('no_such_db.public.customers')")).rejects.toThrow(/cross-database references are not implemented/);
    expect(await direct(t, `SELECT to_regclass('${db}.public.customers')::text AS r`)).toEqual([{ r: 'customers' }]);
    for (const other of ['no_such_db', db]) {
      expect(await rows(`SELECT ('${other}.public.customers'::text)::regclass AS a, has_table_privilege('${other}.public.customers', 'select') AS b`, mode)).toEqual([{ a: null, b: null }]);
    }
  });

  test("a hidden schema's types, enum labels, ranges and collations are not served", async () => {
    const [h] = await direct<{ ns: number; range: number }>(
      t,
      "SELECT 'internal_notes_schema'::regnamespace::oid::int AS ns, 'internal_notes_schema.internal_notes_range'::regtype::oid::int AS range",
    );
    // Positive controls: directly, each catalog has them.
    expect((await direct(t, 'SELECT 1 FROM pg_type WHERE typnamespace = $1', [h.ns])).length).toBeGreaterThanOrEqual(4);
    expect(text(await direct(t, 'SELECT enumlabel FROM pg_enum'))).toContain('internal_notes_LABEL');
    expect(await direct(t, 'SELECT 1 FROM pg_range WHERE rngtypid = $1', [h.range])).toHaveLength(1);
    expect(await direct(t, 'SELECT 1 FROM pg_collation WHERE collnamespace = $1', [h.ns])).toHaveLength(1);
    expect(await rows(`SELECT count(*)::int AS n FROM pg_type WHERE typnamespace = ${h.ns}`, mode)).toEqual([{ n: 0 }]);
    expect(await rows(`SELECT count(*)::int AS n FROM pg_range WHERE rngtypid = ${h.range}`, mode)).toEqual([{ n: 0 }]);
    expect(await rows(`SELECT count(*)::int AS n FROM pg_collation WHERE collnamespace = ${h.ns}`, mode)).toEqual([{ n: 0 }]);
    expect(await rows(`SELECT format_type(${h.range}, NULL) AS f, ${h.range}::regtype AS r`, mode)).toEqual([{ f: null, r: null }]);
    // A type modifier raises an error only for a type that exists: dropped before the lookup.
    await expect(direct(t, "SELECT to_regtype('internal_notes_schema.internal_notes_status(1)')")).rejects.toThrow(/type modifier is not allowed/);
    const typmod = "SELECT ('internal_notes_schema.internal_notes_status(1)'::text)::regtype AS a, ('internal_notes_schema.no_such(1)'::text)::regtype AS b, ('lower(internal_notes_schema.internal_notes_status(1))'::text)::regprocedure AS c";
    expect(await rows(typmod, mode)).toEqual([{ a: null, b: null, c: null }]);
    await refused("SELECT 'lower(internal_notes_schema.internal_notes_status)'::regprocedure", mode, 'ormai.type_not_allowed');
    // Named in that schema, a collation or a text search configuration is refused whether it exists or not.
    for (const name of ['internal_notes_coll', 'no_such_coll']) await refused(`SELECT 'a' COLLATE internal_notes_schema.${name} AS c`, mode, 'ormai.type_not_allowed');
    await refused("SELECT to_tsvector('internal_notes_schema.internal_notes_cfg', 'a') AS v", mode, 'ormai.function_not_allowed');
    expect(await rows(`SELECT 'a' COLLATE "C" AS c, to_tsvector('english', 'cats') AS v`, mode)).toEqual([{ c: 'a', v: "'cat':1" }]);
    // Built-in types, ranges and collations still are.
    expect(await rows("SELECT count(*)::int AS n FROM pg_type WHERE typname IN ('int4', 'int4range', '_int4')", mode)).toEqual([{ n: 3 }]);
    expect(await rows("SELECT count(*)::int AS n FROM pg_range WHERE rngtypid = 'int4range'::regtype", mode)).toEqual([{ n: 1 }]);
    expect(await rows("SELECT count(*)::int AS n FROM pg_collation WHERE collname = 'C'", mode)).toEqual([{ n: 1 }]);
  });

  test('format_type over every pg_type oid, and over the oid range, never names internal_notes', async () => {
    await rows('SELECT string_agg(format_type(oid, NULL), $$,$$) AS f FROM pg_type', mode);
    const user = await rows(`SELECT string_agg(format_type(o, NULL), $$,$$ ORDER BY o) AS f FROM generate_series(${firstOid}, ${lastOid}) o`, mode);
    // None, or the visible tables' own row types (served when no barrier view stands in).
    expect([null, 'customers,orders']).toContain(user[0].f);
  });

  test("has_table_privilege('internal_notes', …) and pg_get_serial_sequence('internal_notes', 'id') are NULL", async () => {
    expect(await rows("SELECT has_table_privilege('internal' || '_notes', 'select') AS p, pg_get_serial_sequence('internal' || '_notes', 'id') AS s", mode)).toEqual([{ p: null, s: null }]);
    const o = await run(t, "SELECT has_table_privilege('internal_notes', 'select') AS p, pg_get_serial_sequence('internal_notes', 'id') AS s", mode);
    if (o.error) expect(o.error.routine).toBe('ormai.model_not_allowed');
    else expect(o.rows).toEqual([{ p: null, s: null }]);
    expect(await rows("SELECT pg_get_serial_sequence('customers', 'api_secret') AS s, has_any_column_privilege('customers_api' || '_secret_idx', 'select') AS p", mode)).toEqual([{ s: null, p: null }]);
  });

  // -------------------------------------------------------------------------------------------------------------
  // 3. Other tenants' statistics.
  // -------------------------------------------------------------------------------------------------------------

  test('pg_class reads as never analysed; pg_stat_* counters and pg_sequences.last_value are NULL', async () => {
    expect(await rows("SELECT relname, reltuples, relpages, relallvisible FROM pg_class WHERE relname IN ('customers', 'orders', 'customers_pkey', 'orders_pkey') ORDER BY 1", mode)).toEqual([
      { relname: 'customers', reltuples: -1, relpages: 0, relallvisible: 0 },
      { relname: 'customers_pkey', reltuples: -1, relpages: 0, relallvisible: 0 },
      { relname: 'orders', reltuples: -1, relpages: 0, relallvisible: 0 },
      { relname: 'orders_pkey', reltuples: -1, relpages: 0, relallvisible: 0 },
    ]);
    // customers has two CHECK constraints, one on api_secret: the agent's count is of the one it sees.
    expect(await direct(t, "SELECT relchecks FROM pg_class WHERE relname = 'customers'")).toEqual([{ relchecks: 2 }]);
    expect(await rows("SELECT relchecks FROM pg_class WHERE relname = 'customers'", mode)).toEqual([{ relchecks: 1 }]);
    // The transaction counters move with every tenant's writes.
    expect(await rows('SELECT datfrozenxid, datminmxid, age(datfrozenxid) AS a FROM pg_database', mode)).toEqual([{ datfrozenxid: null, datminmxid: null, a: null }]);
    // So do a table's: age(relfrozenxid) counted every tenant's write transactions.
    expect(await rows("SELECT relfrozenxid, relminmxid, age(relfrozenxid) AS a FROM pg_class WHERE relname = 'orders'", mode)).toEqual([{ relfrozenxid: null, relminmxid: null, a: null }]);
    const stats = await rows('SELECT * FROM pg_stat_user_tables ORDER BY relname', mode);
    expect(stats).toHaveLength(2);
    for (const s of stats) for (const [k, v] of Object.entries(s)) if (!['relid', 'schemaname', 'relname'].includes(k)) expect({ k, v }).toEqual({ k, v: null });
    for (const rel of ['pg_statio_user_tables', 'pg_stat_user_indexes', 'pg_statio_user_indexes', 'pg_stat_all_tables']) {
      for (const s of await rows(`SELECT * FROM ${rel}`, mode)) {
        for (const [k, v] of Object.entries(s)) if (!['relid', 'indexrelid', 'schemaname', 'relname', 'indexrelname'].includes(k)) expect({ rel, k, v }).toEqual({ rel, k, v: null });
      }
    }
    expect(await rows('SELECT sequencename, last_value FROM pg_sequences ORDER BY 1', mode)).toEqual([
      { sequencename: 'customers_id_seq', last_value: null },
      { sequencename: 'orders_id_seq', last_value: null },
    ]);
  });

  test('size functions, pg_stats, pg_statistic and the pg_stat_get_* functions are refused', async () => {
    for (const fn of ['pg_table_size', 'pg_relation_size', 'pg_total_relation_size', 'pg_indexes_size', 'pg_stat_get_live_tuples', 'pg_stat_get_numscans']) {
      await refused(`SELECT ${fn}('customers'::regclass)`, mode, 'ormai.function_not_allowed');
    }
    await refused("SELECT pg_relation_size('customers'::regclass, 'main')", mode, 'ormai.function_not_allowed');
    await refused('SELECT pg_sequence_last_value($$customers_id_seq$$::regclass)', mode, 'ormai.function_not_allowed');
    for (const rel of ['pg_stats', 'pg_statistic', 'pg_stats_ext', 'pg_statistic_ext_data', 'pg_catalog.pg_stats']) {
      await refused(`SELECT * FROM ${rel}`, mode, 'ormai.catalog_not_allowed');
    }
  });

  // -------------------------------------------------------------------------------------------------------------
  // 4. Function-source and view-definition readers.
  // -------------------------------------------------------------------------------------------------------------

  test('pg_get_viewdef and pg_get_functiondef are refused; pg_get_triggerdef of a real trigger oid is NULL', async () => {
    await refused("SELECT pg_get_viewdef('pg_tables'::regclass)", mode, 'ormai.function_not_allowed');
    await refused("SELECT pg_get_viewdef('pg_tables')", mode, 'ormai.function_not_allowed');
    await refused("SELECT pg_get_functiondef('pg_catalog.now()'::regprocedure)", mode, 'ormai.function_not_allowed');
    await refused('SELECT pg_get_function_sqlbody(1)', mode, 'ormai.function_not_allowed');
    await refused('SELECT pg_get_ruledef(1)', mode, 'ormai.function_not_allowed');
    const [{ tg }] = await direct<{ tg: number }>(t, "SELECT oid::int AS tg FROM pg_trigger WHERE tgname = 'internal_notes_trg'");
    expect(await rows(`SELECT pg_get_triggerdef(${tg}) AS a, pg_get_triggerdef(${tg}, true) AS b`, mode)).toEqual([{ a: null, b: null }]);
    expect(await rows('SELECT count(*)::int AS n FROM pg_trigger', mode)).toEqual([{ n: 0 }]);
  });

  test('pg_proc lists pg_catalog functions only: the public function and its source are absent', async () => {
    expect(await rows("SELECT count(*)::int AS n FROM pg_proc WHERE pronamespace <> 'pg_catalog'::regnamespace OR prosrc LIKE '%notes%' OR proname::text LIKE '%notes%'", mode)).toEqual([{ n: 0 }]);
    expect((await rows("SELECT count(*)::int AS n FROM pg_proc WHERE proname = 'now'", mode))[0].n).toBeGreaterThan(0);
    const [{ fn }] = await direct<{ fn: number }>(t, "SELECT oid::int AS fn FROM pg_proc WHERE proname = 'internal_notes_audit'");
    expect(await rows(`SELECT ${fn}::regproc::text AS a, ${fn}::regprocedure::text AS b, pg_get_function_arguments(${fn}) AS c, pg_get_function_result(${fn}) AS d`, mode)).toEqual([{ a: null, b: null, c: null, d: null }]);
    const o = await run(t, "SELECT 'internal_notes_audit'::regproc", mode);
    expect(o.rows).toBeUndefined();
  });

  test('pg_views.definition is NULL; pg_rewrite, pg_rules, pg_policies, pg_policy are empty', async () => {
    // pg_views lists views among the policy's tables: none here, so internal_notes_v is not there either.
    expect(await rows('SELECT viewname, definition FROM pg_views', mode)).toEqual([]);
    expect(await rows("SELECT count(*)::int AS n FROM pg_views WHERE definition IS NOT NULL OR viewname::text LIKE '%notes%'", mode)).toEqual([{ n: 0 }]);
    for (const rel of ['pg_rewrite', 'pg_rules', 'pg_policies', 'pg_policy']) expect(await rows(`SELECT count(*)::int AS n FROM ${rel}`, mode)).toEqual([{ n: 0 }]);
  });

  test("pg_authid and pg_shadow are refused; pg_roles and pg_user show one row, the agent's own name", async () => {
    await refused('SELECT * FROM pg_authid', mode, 'ormai.catalog_not_allowed');
    await refused('SELECT * FROM pg_shadow', mode, 'ormai.catalog_not_allowed');
    expect(await rows('SELECT rolname, rolsuper FROM pg_roles', mode)).toEqual([{ rolname: 'tenant1-agent', rolsuper: false }]);
    expect(await rows('SELECT usename, usesuper FROM pg_user', mode)).toEqual([{ usename: 'tenant1-agent', usesuper: false }]);
    expect(await rows("SELECT pg_get_userbyid(relowner) AS o FROM pg_class WHERE relname = 'customers'", mode)).toEqual([{ o: 'tenant1-agent' }]);
  });
});
