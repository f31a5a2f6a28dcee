// The function allow-list: safe built-ins in every position, refused families wherever they hide, policy additions, name forms.
import type { Node } from '@pgsql/types';
import { analyze, initAnalysis } from '../../../src/analysis/pipeline';
import { checkExpressions } from '../../../src/analysis/expressions';
import { BUILTIN_FUNCTIONS, NEVER_ALLOWED, REFUSED_BY_DEFAULT } from '../../../src/analysis/function-allowlist';
import { isFunctionAllowed } from '../../../src/analysis/functions';
import { globToRegExp } from '../../../src/policy/scope';
import { catalogue } from '../../../src/errors/catalogue';
import { contextFor, runExpressionCases, scopeFor, type ExprCase } from './expression-cases';

const fn = (sql: string, name: string, extra: Partial<ExprCase> = {}): ExprCase => ({
  sql,
  err: 'function_not_allowed',
  message: `function ${name}() is not allowed`,
  ...extra,
});
const refused = (sql: string, message: string): ExprCase => ({ sql, err: 'function_not_allowed', message });

describe('allowed built-ins in every position', () => {
  runExpressionCases([
    { sql: 'SELECT lower(name), upper(name), length(name), initcap(name), md5(name), left(name, 2) FROM customers' },
    { sql: 'SELECT round(total::numeric, 2), abs(total::numeric), floor(1.5), power(2, 3), width_bucket(5, 0, 10, 5), random() FROM orders' },
    { sql: "SELECT id FROM orders WHERE date_trunc('day', created_at::timestamptz) = current_date AND strpos(status, 'x') > 0" },
    { sql: 'SELECT n FROM generate_series(1, 3) AS g(n)' },
    { sql: 'SELECT * FROM unnest(ARRAY[1, 2]) WITH ORDINALITY AS u(x, i)' },
    { sql: "SELECT * FROM ROWS FROM (generate_series(1, 2), unnest(ARRAY['a', 'b'])) AS r(a, b)" },
    { sql: 'SELECT key FROM orders, jsonb_each(tags::jsonb)' },
    { sql: 'SELECT id FROM customers ORDER BY lower(name), length(name) DESC' },
    { sql: "SELECT date_trunc('month', created_at::timestamp), sum(total::numeric) FROM orders GROUP BY 1 HAVING count(*) > 1" },
    { sql: 'SELECT id, row_number() OVER (PARTITION BY customer_id ORDER BY created_at), lag(total) OVER w, ntile(4) OVER w FROM orders WINDOW w AS (ORDER BY id)' },
    { sql: "SELECT count(*) FILTER (WHERE total::int > 0), percentile_cont(0.5) WITHIN GROUP (ORDER BY total::float8), string_agg(status, ',' ORDER BY id), mode() WITHIN GROUP (ORDER BY status) FROM orders" },
    { sql: 'SELECT bool_and(true), array_agg(id), jsonb_agg(status), stddev_samp(total::float8), regr_slope(1, 2) FROM orders' },
    { sql: 'WITH t AS (SELECT customer_id, sum(total::numeric) AS s FROM orders GROUP BY 1) SELECT max(s), avg(s) FROM t' },
    { sql: 'SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE abs(total::int) > 10)' },
    { sql: "VALUES (lower('A'), now(), gen_random_uuid())" },
    { sql: "SELECT jsonb_build_object('id', id, 'total', total), to_jsonb(o), jsonb_typeof(tags::jsonb), jsonb_path_query_array(tags::jsonb, '$.a') FROM orders o" },
    { sql: "SELECT array_length(ARRAY[1], 1), cardinality(ARRAY[1]), array_to_string(ARRAY['a'], ','), string_to_array('a,b', ',')" },
    // SQL-syntax forms that parse into pg_catalog.* calls.
    { sql: "SELECT extract(year FROM created_at::date), substring(status FROM 1 FOR 2), trim(both ' ' FROM status), position('a' IN status), overlay(status PLACING 'x' FROM 1) FROM orders" },
    { sql: "SELECT created_at::timestamptz AT TIME ZONE 'UTC', normalize(status), status IS NORMALIZED FROM orders" },
    { sql: "SELECT id FROM customers WHERE name LIKE 'a!%' ESCAPE '!' OR name SIMILAR TO 'b%' OR name ILIKE 'c%'" },
    { sql: "SELECT (date '2024-01-01', date '2024-02-01') OVERLAPS (date '2024-01-15', date '2024-03-01')" },
    // Not calls at all: COALESCE, NULLIF, GREATEST, LEAST, CASE, and the clock's value functions.
    { sql: "SELECT coalesce(status, 'x'), nullif(status, ''), greatest(total, '0'), least(total, '1'), CASE WHEN total > '0' THEN 1 END FROM orders" },
    { sql: 'SELECT current_date, current_timestamp, current_time, localtime, localtimestamp(3), current_timestamp(0)' },
    { sql: "SELECT total::numeric(10, 2), created_at::date, CAST(id AS text), '1 day'::interval, int4 '1' FROM orders" },
    { sql: 'SELECT pg_catalog.lower(name), PG_CATALOG.UPPER(name), "lower"(name) FROM customers' },
    { sql: 'SELECT num_nulls(1, NULL), num_nonnulls(1), pg_typeof(1), version()' },
    { sql: 'SELECT id FROM orders TABLESAMPLE BERNOULLI (10)' },
    { sql: 'SELECT id FROM orders TABLESAMPLE SYSTEM (10) REPEATABLE (1)' },
    // Writes and EXPLAIN: every clause.
    { sql: "INSERT INTO orders (id, status, created_at) VALUES (1, lower('X'), now()) RETURNING upper(status)" },
    { sql: 'UPDATE orders SET status = lower(status) WHERE id = 1 RETURNING round(total::numeric)' },
    { sql: "INSERT INTO orders (id, status) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET status = upper(excluded.status) WHERE length(orders.status) > 0" },
    { sql: 'DELETE FROM orders WHERE created_at::timestamptz < now() - make_interval(days => 30)' },
    { sql: 'EXPLAIN SELECT lower(name) FROM customers' },
    { sql: 'INSERT INTO audit_log (id, event) SELECT id, concat_ws(\':\', status, to_char(now(), \'YYYY\')) FROM orders' },
  ]);
});

describe('refused functions, by family', () => {
  runExpressionCases([
    fn("SELECT query_to_xml('select * from customers', true, true, '')", 'query_to_xml'),
    fn("SELECT table_to_xml('customers', true, true, '')", 'table_to_xml'),
    fn("SELECT cursor_to_xml('c', 1, true, true, '')", 'cursor_to_xml'),
    fn("SELECT schema_to_xml('public', true, true, '')", 'schema_to_xml'),
    fn("SELECT database_to_xml(true, true, '')", 'database_to_xml'),
    fn("SELECT query_to_xml_and_xmlschema('select 1', true, true, '')", 'query_to_xml_and_xmlschema'),
    fn("SELECT * FROM ts_stat('select to_tsvector(name) from customers')", 'ts_stat'),
    fn("SELECT set_config('statement_timeout', '0', false)", 'set_config'),
    fn("SELECT current_setting('app.tenant_id')", 'current_setting'),
    fn('SELECT pg_sleep(1)', 'pg_sleep'),
    fn("SELECT pg_sleep_for('1 second')", 'pg_sleep_for'),
    fn("SELECT * FROM pg_ls_dir('.')", 'pg_ls_dir'),
    fn("SELECT pg_read_file('/etc/passwd')", 'pg_read_file'),
    fn("SELECT pg_read_binary_file('/etc/passwd')", 'pg_read_binary_file'),
    fn("SELECT lo_import('/etc/passwd')", 'lo_import'),
    fn("SELECT lo_export(1, '/tmp/x')", 'lo_export'),
    fn("SELECT dblink('x', 'y')", 'dblink'),
    fn("SELECT dblink_exec('x', 'drop table t')", 'dblink_exec'),
    fn('SELECT pg_advisory_lock(1)', 'pg_advisory_lock'),
    fn('SELECT pg_try_advisory_xact_lock(1)', 'pg_try_advisory_xact_lock'),
    fn('SELECT pg_terminate_backend(1)', 'pg_terminate_backend'),
    fn('SELECT pg_cancel_backend(1)', 'pg_cancel_backend'),
    fn('SELECT pg_reload_conf()', 'pg_reload_conf'),
    fn('SELECT pg_rotate_logfile()', 'pg_rotate_logfile'),
    fn('SELECT * FROM pg_stat_get_activity(NULL)', 'pg_stat_get_activity'),
    fn('SELECT txid_current()', 'txid_current'),
    fn('SELECT pg_current_xact_id()', 'pg_current_xact_id'),
    fn('SELECT pg_export_snapshot()', 'pg_export_snapshot'),
    fn("SELECT pg_notify('c', 'x')", 'pg_notify'),
    fn("SELECT nextval('orders_id_seq')", 'nextval'),
    fn("SELECT setval('orders_id_seq', 1)", 'setval'),
    fn("SELECT has_table_privilege('customers', 'select')", 'has_table_privilege'),
    fn("SELECT pg_get_viewdef('v')", 'pg_get_viewdef'),
    fn('SELECT pg_advisory_unlock(1)', 'pg_advisory_unlock'),
    fn('SELECT pg_advisory_unlock_shared(1)', 'pg_advisory_unlock_shared'),
    fn('SELECT pg_advisory_lock_shared(1)', 'pg_advisory_lock_shared'),
    fn('SELECT pg_advisory_xact_lock(1)', 'pg_advisory_xact_lock'),
    fn('SELECT pg_try_advisory_lock(1)', 'pg_try_advisory_lock'),
    fn('SELECT inet_server_addr()', 'inet_server_addr'),
    fn('SELECT pg_postmaster_start_time()', 'pg_postmaster_start_time'),
    fn('SELECT pg_backend_pid()', 'pg_backend_pid'),
    fn("SELECT to_regclass('customers')", 'to_regclass'),
    refused('SELECT system_user', 'SYSTEM_USER is not allowed'),
    refused("SELECT xmlexists('//a' PASSING '<a/>')", 'XMLEXISTS is not allowed'),
    // Not built-in: every schema but pg_catalog, and unknown names.
    fn('SELECT public.my_func()', 'public.my_func'),
    fn("SELECT evil.lower('x')", 'evil.lower'),
    fn('SELECT my_func()', 'my_func'),
    fn('SELECT app.public.lower(1)', 'app.public.lower'),
    // Name forms: quoted, upper-case (folded), qualified, Unicode-escaped.
    fn('SELECT "pg_sleep"(1)', 'pg_sleep'),
    fn('SELECT PG_SLEEP(1)', 'pg_sleep'),
    fn('SELECT pg_catalog.pg_sleep(1)', 'pg_catalog.pg_sleep'),
    fn('SELECT PG_CATALOG."pg_sleep"(1)', 'pg_catalog.pg_sleep'),
    fn('SELECT "PG_SLEEP"(1)', '"PG_SLEEP"'),
    fn(String.raw`SELECT U&"pg\005fsleep"(1)`, 'pg_sleep'),
    fn('SELECT "LOWER"(\'x\')', '"LOWER"'),
  ]);
});

describe('refused functions wherever they hide', () => {
  runExpressionCases([
    fn('SELECT (SELECT pg_sleep(1))', 'pg_sleep'),
    fn('SELECT id FROM customers WHERE id IN (SELECT pg_backend_pid())', 'pg_backend_pid'),
    fn('SELECT id FROM customers WHERE EXISTS (SELECT 1 FROM orders WHERE pg_sleep(1) IS NULL)', 'pg_sleep'),
    fn("WITH x AS (SELECT set_config('a', 'b', false)) SELECT * FROM x", 'set_config'),
    fn('WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + pg_backend_pid() FROM r) SELECT * FROM r', 'pg_backend_pid'),
    fn("SELECT id FROM orders ORDER BY current_setting('x')", 'current_setting'),
    fn('SELECT id FROM orders GROUP BY id, txid_current()', 'txid_current'),
    fn('SELECT id FROM orders GROUP BY id HAVING pg_backend_pid() > 0', 'pg_backend_pid'),
    fn('SELECT row_number() OVER (ORDER BY pg_backend_pid()) FROM orders', 'pg_backend_pid'),
    fn('SELECT sum(1) OVER w FROM orders WINDOW w AS (PARTITION BY pg_backend_pid())', 'pg_backend_pid'),
    fn('SELECT sum(1) OVER (ORDER BY id ROWS BETWEEN pg_backend_pid() PRECEDING AND CURRENT ROW) FROM orders', 'pg_backend_pid'),
    fn('SELECT count(*) FILTER (WHERE pg_sleep(1) IS NULL) FROM orders', 'pg_sleep'),
    fn('SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY txid_current()) FROM orders', 'txid_current'),
    fn("SELECT string_agg(status, current_setting('x')) FROM orders", 'current_setting'),
    fn("VALUES (1, current_setting('app.tenant_id'))", 'current_setting'),
    fn('SELECT * FROM (VALUES (pg_backend_pid())) AS v(p)', 'pg_backend_pid'),
    fn("SELECT lower(current_setting('x'))", 'current_setting'),
    fn("SELECT coalesce(current_setting('x'), '')", 'current_setting'),
    fn('SELECT CASE WHEN pg_backend_pid() > 0 THEN 1 END', 'pg_backend_pid'),
    fn('SELECT 1 LIMIT pg_backend_pid()', 'pg_backend_pid'),
    fn('SELECT 1 UNION SELECT pg_backend_pid()', 'pg_backend_pid'),
    fn('SELECT * FROM orders o, LATERAL (SELECT pg_sleep(1)) s', 'pg_sleep'),
    fn('SELECT 1 FROM orders o JOIN customers c ON c.id = o.customer_id AND pg_sleep(0) IS NOT NULL', 'pg_sleep'),
    fn("SELECT * FROM ROWS FROM (generate_series(1, 2), pg_ls_dir('.')) AS r(a, b)", 'pg_ls_dir'),
    fn("SELECT ARRAY[pg_read_file('x')]", 'pg_read_file'),
    fn("SELECT jsonb_build_object('k', current_setting('x'))", 'current_setting'),
    fn("SELECT ROW(1, current_setting('x'))", 'current_setting'),
    fn("SELECT 'x'::text COLLATE \"C\" || current_setting('x')", 'current_setting'),
    fn("SELECT status FROM orders WHERE status = ANY(string_to_array(current_setting('x'), ','))", 'current_setting'),
    fn('UPDATE orders SET status = \'x\' RETURNING pg_backend_pid()', 'pg_backend_pid'),
    fn("UPDATE orders SET status = current_setting('x')", 'current_setting'),
    fn("UPDATE orders SET status = 'x' FROM pg_ls_dir('.') AS d WHERE true", 'pg_ls_dir'),
    fn("DELETE FROM orders USING pg_ls_dir('.') AS d WHERE true", 'pg_ls_dir'),
    fn('DELETE FROM orders WHERE id = pg_backend_pid()', 'pg_backend_pid'),
    fn("INSERT INTO orders (id, status) VALUES (1, current_setting('x'))", 'current_setting'),
    fn("INSERT INTO orders (id, status) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET status = current_setting('x')", 'current_setting'),
    fn("INSERT INTO orders (id, status) VALUES (1, 'x') ON CONFLICT (id) DO NOTHING RETURNING pg_backend_pid()", 'pg_backend_pid'),
    fn("INSERT INTO orders (id) SELECT pg_backend_pid()", 'pg_backend_pid'),
    fn("WITH d AS (DELETE FROM orders WHERE true RETURNING pg_backend_pid()) SELECT * FROM d", 'pg_backend_pid'),
    fn('EXPLAIN SELECT pg_sleep(1)', 'pg_sleep'),
    fn("EXPLAIN UPDATE orders SET status = current_setting('x')", 'current_setting'),
    fn('SELECT 1; SELECT pg_sleep(1)', 'pg_sleep', { multi: true }),
    fn("SELECT id FROM orders TABLESAMPLE BERNOULLI (pg_backend_pid())", 'pg_backend_pid'),
  ]);
});

describe('casts to reg* types and session value functions', () => {
  const reg = 'Casts to reg* types look names up in the system catalogs';
  runExpressionCases([
    refused("SELECT 'customers'::regclass", 'cast to regclass is not allowed'),
    refused("SELECT 'customers'::pg_catalog.regclass", 'cast to regclass is not allowed'),
    refused("SELECT 'customers'::REGCLASS::oid", 'cast to regclass is not allowed'),
    refused("SELECT CAST('int4' AS regtype)", 'cast to regtype is not allowed'),
    refused("SELECT regclass 'customers'", 'cast to regclass is not allowed'),
    refused('SELECT \'{a,b}\'::regclass[]', 'cast to regclass[] is not allowed'),
    refused("SELECT '{a,b}'::_regclass", 'cast to regclass[] is not allowed'),
    refused("SELECT 'pg_sleep'::\"regproc\"", 'cast to regproc is not allowed'),
    refused("SELECT 'pg_sleep(double precision)'::regprocedure", 'cast to regprocedure'),
    refused("SELECT '+'::regoper, '+(int,int)'::regoperator", 'cast to regoper'),
    refused("SELECT 'admin'::regrole", 'cast to regrole'),
    refused("SELECT 'public'::regnamespace", 'cast to regnamespace'),
    refused("SELECT 'english'::regconfig", 'cast to regconfig'),
    refused("SELECT 'simple'::regdictionary", 'cast to regdictionary'),
    refused("SELECT '\"C\"'::regcollation", 'cast to regcollation'),
    refused("SELECT id FROM orders WHERE 'secret_table'::regclass IS NOT NULL", 'cast to regclass'),
    refused("SELECT * FROM orders WHERE id IN (SELECT 'x'::regclass::oid::int)", 'cast to regclass'),
    fn("SELECT treat('customers' AS regclass)", 'pg_catalog.regclass'),
    // The session's identity is the agent's own name, answered by the read rewrite (never the upstream role).
    { sql: 'SELECT current_user, session_user, user, current_role' },
    { sql: 'SELECT id FROM orders WHERE status = current_user' },
    refused('SELECT current_catalog', 'CURRENT_CATALOG is not allowed'),
    refused('SELECT id FROM orders TABLESAMPLE system_rows (10)', 'TABLESAMPLE method system_rows is not allowed'),
  ]);

  beforeAll(() => initAnalysis());
  test('each refusal carries 42501 and a hint the agent can act on', () => {
    const scope = scopeFor();
    const call = analyze('SELECT pg_sleep(1)', contextFor('simple', scope));
    const cast = analyze("SELECT 'x'::regclass", contextFor('simple', scope));
    const user = analyze('SELECT current_catalog', contextFor('simple', scope));
    if (call.ok || cast.ok || user.ok) throw new Error('expected refusals');
    expect(call.error.toFields()).toMatchObject({
      code: '42501',
      message: 'function_not_allowed: function pg_sleep() is not allowed',
      hint: catalogue.function_not_allowed.hint,
      routine: 'ormai.function_not_allowed',
    });
    expect(cast.error.hint).toContain(reg);
    expect(cast.error.hint).toContain('information_schema');
    expect(user.error.hint).toContain('CURRENT_DATE');
  });
});

describe('allow_functions in the policy', () => {
  runExpressionCases([
    { sql: 'SELECT public.my_func()', policy: { allow_functions: ['public.my_func'] } },
    fn('SELECT my_func()', 'my_func', { policy: { allow_functions: ['public.my_func'] } }),
    fn('SELECT other.my_func()', 'other.my_func', { policy: { allow_functions: ['public.my_func'] } }),
    { sql: 'SELECT my_func(1), MY_FUNC(2)', policy: { allow_functions: ['my_func'] } },
    fn('SELECT public.my_func()', 'public.my_func', { policy: { allow_functions: ['my_func'] } }),
    { sql: 'SELECT App.Score(total) FROM orders', policy: { allow_functions: ['APP.score'] } },
    { sql: "SELECT evil.lower('x')", policy: { allow_functions: ['evil.lower'] } },
    { sql: 'SELECT pg_sleep(0.1), pg_catalog.pg_sleep(0.1)', policy: { allow_functions: ['pg_sleep'] } },
    { sql: 'SELECT pg_backend_pid()', policy: { allow_functions: ['pg_catalog.pg_backend_pid'] } },
    { sql: "SELECT current_setting('TimeZone')", policy: { allow_functions: ['current_setting'] } },
    { sql: 'SELECT id FROM orders TABLESAMPLE system_rows (10)', policy: { allow_functions: ['system_rows'] } },
    // What would undo the proxy's guarantees cannot be enabled by a policy.
    fn("SELECT set_config('statement_timeout', '0', false)", 'set_config', { policy: { allow_functions: ['set_config'] } }),
    fn("SELECT pg_catalog.set_config('a', 'b', false)", 'pg_catalog.set_config', { policy: { allow_functions: ['pg_catalog.set_config'] } }),
    fn("SELECT query_to_xml('select 1', true, true, '')", 'query_to_xml', { policy: { allow_functions: ['query_to_xml'] } }),
    fn("SELECT lo_import('/etc/passwd')", 'lo_import', { policy: { allow_functions: ['lo_import'] } }),
    fn('SELECT pg_advisory_lock(1)', 'pg_advisory_lock', { policy: { allow_functions: ['pg_advisory_lock'] } }),
    fn("SELECT dblink('x', 'y')", 'dblink', { policy: { allow_functions: ['dblink'] } }),
    // ...but an operator's own function that happens to share a name is theirs to list.
    { sql: "SELECT app.set_config('x')", policy: { allow_functions: ['app.set_config'] } },
    // Listing a function enables exactly that function, not its neighbours.
    fn("SELECT pg_sleep_for('1 s')", 'pg_sleep_for', { policy: { allow_functions: ['pg_sleep'] } }),
  ]);
});

describe('without a policy (fail closed)', () => {
  runExpressionCases([
    { sql: "SELECT lower('x'), count(*), now()", noScope: true },
    fn('SELECT pg_sleep(1)', 'pg_sleep', { noScope: true }),
    fn('SELECT my_func()', 'my_func', { noScope: true }),
    fn('SELECT public.lower(1)', 'public.lower', { noScope: true }),
    refused("SELECT 'customers'::regclass", 'cast to regclass'),
    { sql: "SELECT 'customers'::regclass", err: 'function_not_allowed', noScope: true },
    { sql: 'SELECT current_user', err: 'function_not_allowed', noScope: true },
    // Answered by the read rewrite, which needs a policy: never the upstream name.
    fn('SELECT current_database()', 'current_database', { noScope: true }),
  ]);
});

describe('the lists', () => {
  const builtins = Object.values(BUILTIN_FUNCTIONS).flat();
  const matches = (globs: readonly string[], name: string) => globs.some((g) => globToRegExp(g).test(name));

  test('no built-in is also refused (the lists do not contradict each other)', () => {
    expect(builtins.filter((n) => matches(NEVER_ALLOWED, n) || matches(REFUSED_BY_DEFAULT, n))).toEqual([]);
    expect(new Set(builtins).size).toBe(builtins.length);
  });

  test.each([
    'set_config', 'current_setting', 'query_to_xml', 'table_to_xmlschema', 'ts_stat', 'ts_rewrite', 'dblink_connect',
    'lo_unlink', 'loread', 'pg_read_file', 'pg_ls_waldir', 'pg_stat_file', 'pg_sleep_until', 'pg_advisory_unlock',
    'pg_terminate_backend', 'pg_cancel_backend', 'pg_reload_conf', 'txid_current_snapshot', 'pg_current_wal_lsn',
    'pg_export_snapshot', 'nextval', 'currval', 'lastval', 'setval', 'has_column_privilege', 'pg_get_functiondef',
    'pg_advisory_lock', 'current_user', 'session_user', 'inet_client_addr', 'inet_server_port',
    'pg_postmaster_start_time', 'pg_backend_pid', 'pg_relation_size', 'pg_table_is_visible', 'setseed', 'format_type',
  ])('%s is refused without a policy listing it', (name) => {
    expect(isFunctionAllowed([name], undefined)).toBe(false);
    expect(isFunctionAllowed(['pg_catalog', name], undefined)).toBe(false);
  });

  test('deep trees are walked without recursion', () => {
    let node: Node = { A_Const: { ival: { ival: 1 } } } as Node;
    for (let i = 0; i < 100_000; i++) {
      node = { FuncCall: { funcname: [{ String: { sval: 'abs' } }], args: [node] } } as Node;
    }
    const stmt = { SelectStmt: { targetList: [{ ResTarget: { val: node } }] } } as Node;
    expect(() => checkExpressions({ kind: 'read', nodeType: 'SelectStmt', stmt, writes: [], sql: '' }, { protocol: 'simple' })).not.toThrow();
    const bad = { FuncCall: { funcname: [{ String: { sval: 'pg_sleep' } }], args: [node] } } as Node;
    const stmt2 = { SelectStmt: { targetList: [{ ResTarget: { val: bad } }] } } as Node;
    expect(() => checkExpressions({ kind: 'read', nodeType: 'SelectStmt', stmt: stmt2, writes: [], sql: '' }, { protocol: 'simple' })).toThrow('pg_sleep');
  });
});
