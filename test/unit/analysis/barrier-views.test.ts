// The barrier-view form of the read rewrite (docs/read-scope.md): a policy table becomes the session's view in pg_temp,
// except where a view cannot say what the reference means (ONLY, system columns); the view's definition is the fenced
// derived table's query without the fence, and its name a hash of that definition.
import { analyze, initAnalysis, type Analysis } from '../../../src/analysis/pipeline';
import { barrierViewsOf } from '../../../src/analysis/rewrite/derived';
import { gate } from './golden';
import { CUSTOMERS, principal, quickstartCatalog, scopeFromFile, scopeVariant, WITH_COUNTRIES } from './rewrite-scope';
import { compileScope } from '../../../src/policy/scope';
import { buildPolicy, loadPolicyFile } from '../../../src/policy/load';
import { policySchema } from '../../../src/policy/schema';

const scope = scopeFromFile(WITH_COUNTRIES);
const base = { scope, principal: principal('1'), captureWrites: false, writeGate: gate('insert:orders', 'update:orders', 'delete:orders'), protocol: 'simple' as const };

let views: ReturnType<typeof barrierViewsOf>;
beforeAll(async () => {
  await initAnalysis();
  views = barrierViewsOf(scope, principal('1'));
});

function sql(a: Analysis): string {
  if (!a.ok) throw new Error(`${a.error.code}: ${a.error.message}`);
  return a.sql;
}

const view = (table: string) => views.find((v) => v.name.startsWith(`ormai_${table}_`))!.name;

test('each filtered table has one view per tenant, named by a hash of its definition', () => {
  expect(views.map((v) => v.name.replace(/_[0-9a-f]{16}$/, '')).sort()).toEqual(['ormai_customers', 'ormai_orders']);
  const customers = views.find((v) => v.name.startsWith('ormai_customers_'))!;
  // The fenced form's query, without the fence.
  const inner = CUSTOMERS.replace(/^\( /, '').replace(/ OFFSET 0 \)$/, '');
  expect(customers.sql).toBe(`CREATE OR REPLACE TEMP VIEW ${customers.name} WITH (security_barrier) AS ${inner}`);
  const other = barrierViewsOf(scope, principal('2'));
  expect(other.map((v) => v.name)).not.toEqual(views.map((v) => v.name));
  expect(other[0].sql).toContain("'2'");
  // The same scope and tenant: the same objects, so a session's check is an identity test.
  expect(barrierViewsOf(scope, principal('1'))[0]).toBe(views[0]);
});

test.each([
  ['SELECT * FROM customers', () => `SELECT * FROM pg_temp.${view('customers')} AS customers LIMIT 201`],
  ['SELECT c.id FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.id = 5', () => `SELECT c.id FROM pg_temp.${view('customers')} AS c JOIN pg_temp.${view('orders')} AS o ON o.customer_id = c.id WHERE o.id = 5 LIMIT 201`],
  ['SELECT * FROM countries', () => 'SELECT * FROM ( SELECT code, name FROM public.countries ) AS countries LIMIT 201'],
])('%s reads the views (a table without a filter needs none)', (text, out) => {
  expect(sql(analyze(text, { ...base, barrierViews: true }))).toBe(out());
});

test('ONLY keeps the fenced form: a view always includes inheritance children', () => {
  expect(sql(analyze('SELECT * FROM ONLY customers', { ...base, barrierViews: true }))).toBe(
    `SELECT * FROM ${CUSTOMERS.replace('FROM public', 'FROM ONLY public')} AS customers LIMIT 201`,
  );
});

test('a COLLATE clause anywhere keeps every table fenced: two non-default collations raise at run time from a leakproof comparison', () => {
  for (const text of [
    `SELECT 1 FROM (SELECT name COLLATE "POSIX" AS n FROM customers) t, (SELECT 'x' COLLATE "C" AS v) s WHERE t.n <> s.v`,
    `SELECT c.id FROM customers c JOIN orders o ON o.customer_id = c.id ORDER BY c.name COLLATE "C"`,
  ]) {
    const out = sql(analyze(text, { ...base, barrierViews: true }));
    expect(out).not.toContain('pg_temp.');
    expect(out).toContain('OFFSET 0');
  }
  // Without one, the views.
  expect(sql(analyze('SELECT c.id FROM customers c ORDER BY c.name', { ...base, barrierViews: true }))).toContain('pg_temp.');
});

test("a table with a column of a collation of its own is read fenced, with every other table of the statement; a write's column comparisons are guarded", () => {
  const catalog = quickstartCatalog();
  catalog.relations.get('public.customers')!.columns.find((c) => c.name === 'name')!.comparisonsMayRaise = true;
  const collated = compileScope(loadPolicyFile(WITH_COUNTRIES), catalog);
  expect(collated.tables.get('public.customers')?.comparisonsMayRaise).toBe(true);
  const joined = sql(analyze('SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id', { ...base, scope: collated, barrierViews: true }));
  expect(joined).not.toContain('pg_temp.');
  expect(sql(analyze('SELECT id FROM orders', { ...base, scope: collated, barrierViews: true }))).toContain('pg_temp.');
  // A write: a comparison of two columns runs only on the tenant's rows (inside the guard's CASE), unlike without the risk.
  const update = (text: string) => sql(analyze(`/*reason='r'*/ ${text}`, { ...base, barrierViews: true }));
  expect(update(`UPDATE orders SET status = 'x' FROM (SELECT 'a' COLLATE "C" AS v) s WHERE orders.status <> s.v`)).toMatch(/CASE WHEN .* THEN orders\.status <> s\.v ELSE false END/);
  expect(update(`UPDATE orders SET status = 'x' FROM (SELECT 'a' AS v) s WHERE orders.status <> s.v`)).not.toMatch(/THEN orders\.status <> s\.v/);
});

test("a call of a function whose result may raise in a leakproof comparison (allow_functions admits it) keeps every table fenced, and a foreign key's parent check too", () => {
  const catalog = { ...quickstartCatalog(), raisingFunctions: new Set(['public.posix_label', 'posix_label']) };
  catalog.relations.get('public.orders')!.foreignKeys = [{ column: 'customer_id', parent: 'public.customers', parentColumn: 'id' }];
  const policy = loadPolicyFile(WITH_COUNTRIES);
  const allowing = buildPolicy(policySchema.parse({ ...policy.raw, allow_functions: ['public.posix_label', 'posix_label', 'public.plain_label'] }), WITH_COUNTRIES);
  const admitting = { ...base, scope: compileScope(allowing, catalog) };
  for (const text of ['SELECT id FROM customers WHERE name <> (SELECT public.posix_label())', 'SELECT id FROM customers WHERE name <> (SELECT posix_label())']) {
    const out = sql(analyze(text, { ...admitting, barrierViews: true }));
    expect(out).not.toContain('pg_temp.');
    expect(out).toContain('OFFSET 0');
  }
  expect(sql(analyze('SELECT id FROM customers WHERE name <> (SELECT public.plain_label())', { ...admitting, barrierViews: true }))).toContain('pg_temp.');
  // The parent's key meets the agent's value below the tenant's condition unless fenced.
  const insert = sql(analyze(`/*reason='r'*/ INSERT INTO orders (customer_id, status) VALUES (length((SELECT public.posix_label())), 'x')`, { ...admitting, barrierViews: true }));
  expect(insert).toMatch(/SELECT id AS ormai_key FROM public\.customers WHERE tenant_id = '1'::int OFFSET 0 \)/);
  const plain = sql(analyze(`/*reason='r'*/ INSERT INTO orders (customer_id, status) VALUES (length((SELECT public.plain_label())), 'x')`, { ...admitting, barrierViews: true }));
  expect(plain).not.toMatch(/ormai_key FROM public\.customers WHERE [^)]*OFFSET 0/);
});

test('without barrierViews the fenced form is used', () => {
  expect(sql(analyze('SELECT * FROM customers', base))).toBe(`SELECT * FROM ${CUSTOMERS} AS customers LIMIT 201`);
});

test('current_schemas answers without the temporary schema, under its own column name', () => {
  expect(sql(analyze('SELECT current_schemas(true)', { ...base, barrierViews: true }))).toBe(
    'SELECT pg_catalog.array_remove(pg_catalog.current_schemas(true), CAST(CAST(CAST(pg_catalog.pg_my_temp_schema() AS regnamespace) AS text) AS name)) AS current_schemas LIMIT 201',
  );
});

test("the session's own values in one statement: database, user and schemas each answered, each under its column name", () => {
  const allowing = { ...base, scope: scopeVariant(WITH_COUNTRIES, { allow_functions: ['current_database'] }), principal: { ...principal('1'), database: 'agentdb' } };
  const out = sql(analyze('SELECT current_database(), current_user, (current_schemas(true))[1] AS first, current_schemas(false)::text[] FROM countries WHERE name <> current_user', { ...allowing, barrierViews: true }));
  expect(out).toBe(
    "SELECT CAST('agentdb' AS name) AS current_database, CAST('agent' AS name) AS \"current_user\", " +
      '(pg_catalog.array_remove(pg_catalog.current_schemas(true), CAST(CAST(CAST(pg_catalog.pg_my_temp_schema() AS regnamespace) AS text) AS name)))[1] AS first, ' +
      'CAST(pg_catalog.array_remove(pg_catalog.current_schemas(false), CAST(CAST(CAST(pg_catalog.pg_my_temp_schema() AS regnamespace) AS text) AS name)) AS text[]) AS current_schemas ' +
      "FROM ( SELECT code, name FROM public.countries ) AS countries WHERE name <> CAST('agent' AS name) LIMIT 201",
  );
});

test.each([
  [
    "SELECT current_schemas(current_user = 'x')",
    "SELECT pg_catalog.array_remove(pg_catalog.current_schemas(CAST('agent' AS name) = 'x'), CAST(CAST(CAST(pg_catalog.pg_my_temp_schema() AS regnamespace) AS text) AS name)) AS current_schemas LIMIT 201",
  ],
  ['SELECT * FROM current_database()', "SELECT * FROM CAST('agentdb' AS name) AS current_database LIMIT 201"],
])('%s: a session value inside another, and one in FROM', (text, out) => {
  const allowing = { ...base, scope: scopeVariant(WITH_COUNTRIES, { allow_functions: ['current_database'] }), principal: { ...principal('1'), database: 'agentdb' } };
  expect(sql(analyze(text, { ...allowing, barrierViews: true }))).toBe(out);
});
