// Untyped strings and parameters beside reg* values: refused wherever PostgreSQL would read them as a name; everything else passes.
import { analyze, initAnalysis } from '../../../src/analysis/pipeline';
import { scopeFor } from './expression-cases';
import { principal } from './rewrite-scope';
import { parseStatements } from '../../../src/analysis/parser';
import { checkRegCoercions } from '../../../src/analysis/reg-coercion';
import { ProxyError } from '../../../src/errors/catalogue';

beforeAll(() => initAnalysis());

function outcome(sql: string): string {
  try {
    for (const node of parseStatements(sql)) checkRegCoercions(node);
    return 'allowed';
  } catch (err) {
    if (err instanceof ProxyError) return err.code;
    throw err;
  }
}

const REFUSED = [
  // Expression groups PostgreSQL brings to one type.
  "SELECT coalesce(NULL::regclass, 'payroll')::oid",
  "SELECT coalesce(NULL::regproc, 'secret_fn')",
  "SELECT coalesce(NULL::pg_catalog.regnamespace, 'hidden_schema')",
  "SELECT coalesce('customers'::regclass, 'payroll')",
  "SELECT CASE WHEN false THEN typinput ELSE 'secret_fn' END FROM pg_type WHERE typname = 'int4'",
  "SELECT greatest(NULL::regtype, 'hidden_schema.merger_status')",
  "SELECT ARRAY[NULL::regclass, 'payroll']",
  "SELECT unnest(array[NULL::regclass, '16384', '16385'])",
  // A COLLATE clause or a cast to unknown leaves the string untyped.
  "SELECT coalesce(NULL::regclass, 'payroll' COLLATE \"C\")",
  "SELECT coalesce(NULL::regclass, 'payroll'::unknown)",
  "SELECT coalesce(NULL::regclass, CAST('payroll' AS pg_catalog.unknown) COLLATE \"C\")",
  "SELECT (ARRAY[NULL::regclass])[1:1] || '{payroll}'",
  "SELECT array_cat(ARRAY[NULL::regclass], '{payroll}')",
  // Operators on reg* arrays read an untyped array as names.
  "SELECT ARRAY[NULL::regclass] @> '{payroll}'",
  "SELECT ARRAY[NULL::regclass] || '{payroll}'",
  "SELECT '{pg_class}'::regclass[] = '{payroll}'",
  "SELECT ARRAY(SELECT NULL::regclass) && $1",
  "SELECT parameter_types @> '{hidden_schema.merger_status}' FROM pg_prepared_statements",
  "SELECT a @> '{payroll}' FROM (SELECT array_agg(c.oid::regclass) AS a FROM pg_class c) s",
  // Parameters the client leaves unspecified are typed the same way.
  'SELECT coalesce(NULL::regclass, $1)::oid',
  // Set operations and VALUES.
  "SELECT x FROM (SELECT data_type AS x FROM pg_sequences UNION ALL SELECT 'hidden_schema.vault') s",
  "SELECT NULL::regclass UNION SELECT 'payroll'",
  "VALUES (NULL::regclass), ('payroll')",
  // Polymorphic functions.
  "SELECT array_append(ARRAY[NULL::regclass], 'payroll')",
  "SELECT array_position(ARRAY[NULL::regclass], 'payroll')",
  "SELECT lag(NULL::regclass, 1, 'payroll') OVER ()",
  // Names that carry a reg* value out of a sub-select, a CTE, VALUES or a FROM function.
  "SELECT coalesce(x, 'payroll') FROM (SELECT NULL::regclass AS x) s",
  "SELECT coalesce(s.r, 'payroll') FROM (SELECT NULL::regclass) s (r)",
  "WITH t (r) AS (SELECT NULL::regclass) SELECT coalesce(r, 'payroll') FROM t",
  "WITH t AS (SELECT NULL::regclass AS r) SELECT coalesce(u.r, 'payroll') FROM t u",
  "SELECT coalesce(column1, 'payroll') FROM (VALUES (NULL::regclass)) v",
  "SELECT coalesce(r, 'payroll') FROM unnest(ARRAY[NULL::regclass]) AS u(r)",
  "SELECT coalesce(regclass, 'payroll') FROM (SELECT NULL::regclass) s",
  "SELECT coalesce(m, 'payroll') FROM (SELECT max(NULL::regclass) AS m) s",
  // Two or more constants in an IN list become one array of the left side's type.
  "SELECT 1 FROM pg_type t WHERE t.typoutput IN ('a', 'secret_fn')",
  "SELECT 1 FROM pg_type t WHERE t.typinput NOT IN ('int4in', $1)",
  "SELECT NULL::regclass IN ('customers', 'hidden.payroll')",
  // A sub-select's own columns do not make an item a column of this level; rows pair column by column.
  "SELECT n FROM generate_series(16000, 17000) n WHERE n IN ('payroll', (SELECT r FROM (SELECT 'customers'::regclass AS r) s))",
  "SELECT ROW(ARRAY['customers'::regclass]) IN (ROW('{payroll}'))",
  "SELECT (ARRAY['customers'::regclass], 1) IN (('{payroll}', 1), ('{x}', 2))",
  // A set operation's column is named by its first branch; a join's alias carries its inputs' columns.
  "SELECT coalesce(s.a, 'hidden.fn') FROM (SELECT NULL AS a UNION ALL SELECT typinput FROM pg_type) s",
  "WITH s AS (SELECT NULL AS a UNION ALL SELECT typinput FROM pg_type) SELECT coalesce(a, 'hidden.fn') FROM s",
  "SELECT coalesce(j.typinput, 'hidden.fn') FROM (pg_type t CROSS JOIN (SELECT 1 AS z) z) AS j",
  // More levels of renaming than are followed.
  `SELECT coalesce(r16, 'hidden.fn') FROM ${Array.from({ length: 16 }, (_, i) => `(SELECT r${i} AS r${i + 1} FROM `).join('')}(SELECT typinput AS r0 FROM pg_type) s0${Array.from({ length: 16 }, (_, i) => `) s${i + 1}`).join('')}`,
  // A * passes reg* columns on: through a sub-select, a CTE, a set operation's leaf.
  "SELECT coalesce(y.r, 'payroll')::oid FROM (SELECT * FROM (SELECT NULL::regclass AS r) x) y",
  'SELECT coalesce(y.r, $1)::oid FROM (SELECT x.* FROM (SELECT NULL::regclass AS r) x) y',
  "WITH c AS (SELECT * FROM (SELECT NULL::regclass AS r) x) SELECT coalesce(c.r, 'payroll')::oid FROM c",
  "SELECT r::oid FROM (SELECT * FROM (SELECT NULL::regclass AS r) a UNION ALL SELECT 'payroll') u",
  "SELECT * FROM (SELECT 1 AS a, NULL::regclass AS r) x UNION ALL SELECT 1, 'payroll'",
  // A whole row of a catalog with reg* columns read from text.
  "SELECT t = '(x,secret_fn)' FROM pg_type t",
];

const ALLOWED = [
  // Explicit casts are checked elsewhere; typed values are not looked up.
  "SELECT 'customers'::regclass",
  "SELECT coalesce(NULL::regclass, 'customers'::regclass)",
  "SELECT c.oid::regclass FROM pg_class c WHERE c.relname = 'customers' AND c.relkind IN ('r', 'p')",
  "SELECT attname FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attnum > 0",
  "SELECT o::regclass::text AS r FROM generate_series(1, 10) o WHERE o::regclass::text NOT LIKE 'pg\\_%'",
  "SELECT typname FROM pg_type WHERE typname = 'int4' AND typinput = 'int4in'::regproc",
  "SELECT typinput::text = 'int4in' FROM pg_type",
  'SELECT a.attrelid = $1::regclass FROM pg_attribute a',
  "SELECT obj_description('customers'::regclass, 'pg_class')",
  "SELECT format('%s', c.oid::regclass) FROM pg_class c",
  "SELECT pg_typeof(1)::text = 'integer'",
  "SELECT CASE c.relkind WHEN 'r' THEN 'table' ELSE 'other' END FROM pg_class c",
  "SELECT coalesce(name, 'none') FROM customers WHERE status IN ('a', 'b')",
  // Operators on scalar reg* values read the text as an oid (reg* types have no operators of their own).
  "SELECT 1 FROM pg_type WHERE typinput = 'secret_fn'",
  "SELECT NULL::regclass = ANY('{payroll}')",
  "SELECT NULL::regclass BETWEEN 'a' AND 'payroll'",
  "SELECT (NULL::regclass, 1) = ('payroll', 1)",
  "SELECT 'payroll' IN (SELECT NULL::regclass)",
  "SELECT 1 FROM pg_type t WHERE t.typoutput IN ('secret_fn')",
  "SELECT 1 FROM pg_type t WHERE t.typoutput IN ('a', t.typinput)",
  "SELECT 'secret_fn' = ANY (SELECT typinput FROM pg_type)",
  "SELECT (SELECT NULL::regclass) = 'payroll'",
  "SELECT CASE NULL::regclass WHEN 'payroll' THEN 1 END",
  "SELECT nullif(NULL::regclass, 'payroll')",
  'SELECT pg_typeof(1) = $1',
  "WITH t AS (SELECT typinput AS f FROM pg_type) SELECT 1 FROM t WHERE f = 'secret_fn'",
  // || with a scalar reg* value is text concatenation (drizzle-kit's introspection).
  "SELECT 'nextval(''' || pg_get_serial_sequence('customers', 'id')::regclass || '''::regclass)'",
  // information_schema's data_type is text: only pg_sequences' is a regtype.
  "SELECT column_name FROM information_schema.columns WHERE data_type = 'USER-DEFINED'",
  // A policy table's column named like a reg* output elsewhere in the statement is its own.
  "SELECT o.status FROM orders o, (SELECT NULL::regclass AS r) s WHERE o.status = 'paid'",
];

/** The whole analysis under a policy over the expression cases' catalog: 'allowed' or the refusal's code. */
function analyzed(sql: string, extra: Record<string, unknown> = {}, catalogExtra: Parameters<typeof scopeFor>[1] = {}): string {
  // No rewrite given: the read rewrite runs, which is what allows reg* casts (it guards them).
  const a = analyze(sql, { protocol: 'simple', scope: scopeFor(extra, catalogExtra), principal: principal('1'), writeGate: () => false });
  return a.ok ? 'allowed' : a.error.code;
}
const code = (sql: string) => analyzed(sql);

describe('other ways into the catalogs by name', () => {
  test.each([
    // The system catalogs' row types have reg* and aclitem fields, read from the agent's text.
    ["SELECT json_populate_record(NULL::pg_sequences, '{\"data_type\": \"payroll\"}')", 'type_not_allowed'],
    ["SELECT '(,,,payroll,,,,,,,)'::pg_catalog.pg_sequences", 'type_not_allowed'],
    ["SELECT a FROM jsonb_to_record('{}') AS x(a pg_type)", 'type_not_allowed'],
    ["SELECT NULL::pg_class[]", 'type_not_allowed'],
    // An operator of another schema runs a function the allow-list never saw.
    ['SELECT 1 OPERATOR(hidden_schema.###) 2', 'function_not_allowed'],
    ['SELECT id FROM customers WHERE id OPERATOR(public.=) 1', 'function_not_allowed'],
    ['SELECT 1 WHERE 1 OPERATOR(hidden_schema.=) ANY (SELECT 1)', 'function_not_allowed'],
    // An integer is a text search configuration by oid.
    ["SELECT to_tsvector(16437, 'hello')", 'function_not_allowed'],
    ["SELECT ts_headline(16437::oid, 'hello', 'a'::tsquery)", 'function_not_allowed'],
    ["SELECT to_tsvector(n, 'x') FROM (SELECT 16437 AS n) s", 'function_not_allowed'],
    ["SELECT to_tsvector(16437 + 0, 'x')", 'function_not_allowed'],
    // A signature's argument types are looked up wherever they are named: built-in ones only.
    ["SELECT 'lower(hidden_schema.henum)'::regprocedure", 'type_not_allowed'],
    ["SELECT 'lower(text, payroll)'::regprocedure", 'type_not_allowed'],
  ])('refused: %s', (sql, expected) => expect(code(sql)).toBe(expected));
  test.each([
    'SELECT 1 OPERATOR(pg_catalog.+) 2',
    "SELECT 'lower(text)'::regprocedure, 'pg_catalog.btrim(text, text)'::regprocedure, 'now()'::regprocedure",
    "SELECT ts_headline(name, 'a'::tsquery), ts_headline(name, 'a'::tsquery, 'MaxWords=5') FROM customers",
    "SELECT NULL::pg_lsn, NULL::int4range",
  ])('allowed: %s', (sql) => expect(code(sql)).toBe('allowed'));
});

describe("operators only an extension's schema defines", () => {
  const userOperators = new Map([['<=>', [['public', 'cosine_distance'] as const]]]);
  const code = (sql: string, extra: Record<string, unknown> = {}) => analyzed(sql, extra, { userOperators });
  test('every form of expression PostgreSQL writes with an operator name passes with a loaded catalog (BETWEEN carries a keyword)', () => {
    const builtinOperators = new Set(['=', '<>', '<', '>', '<=', '>=', '~~', '~~*', '!~~', '!~~*', '~', '+', '-', '*', '/', '%', '||']);
    const sql =
      "SELECT id FROM customers WHERE id BETWEEN 1 AND 3 AND id NOT BETWEEN 5 AND 6 AND id BETWEEN SYMMETRIC 3 AND 1 AND id NOT BETWEEN SYMMETRIC 9 AND 8 " +
      "AND name LIKE 'a%' AND name ILIKE 'a%' AND name NOT LIKE 'b%' AND name SIMILAR TO 'a%' AND id IN (1, 2) AND id NOT IN (3) " +
      "AND id IS DISTINCT FROM 4 AND id IS NOT DISTINCT FROM id AND nullif(id, 0) > 0 AND id = ANY(ARRAY[1, 2]) AND id + 1 * 2 - 3 / 1 % 2 < 9 AND name || 'x' <> ''";
    expect(analyzed(sql, {}, { builtinOperators })).toBe('allowed');
    expect(analyzed('SELECT 1 ### 2', {}, { builtinOperators })).toBe('function_not_allowed');
  });

  test('refused unless the policy allows the function behind them; built-in names are PostgreSQL to resolve', () => {
    expect(code("SELECT id FROM customers ORDER BY name <=> 'x'")).toBe('function_not_allowed');
    expect(code("SELECT id FROM customers ORDER BY name <=> 'x'", { allow_functions: ['cosine_distance'] })).toBe('allowed');
    expect(code("SELECT id FROM customers ORDER BY name <=> 'x'", { allow_functions: ['public.cosine_distance'] })).toBe('allowed');
    expect(code("SELECT id FROM customers WHERE name = 'x'")).toBe('allowed');
  });
});

describe('text search configurations and collations named in a hidden schema', () => {
  test.each([
    ["SELECT to_tsvector('hidden_schema.cfg', name) FROM customers", 'function_not_allowed'],
    ["SELECT to_tsquery('\"hidden_schema\".cfg', 'a')", 'function_not_allowed'],
    ['SELECT plainto_tsquery($1, $2)', 'function_not_allowed'],
    ['SELECT name COLLATE hidden_schema.secret_coll FROM customers', 'type_not_allowed'],
    // Quoted parts keep their case; three parts are refused.
    ["SELECT to_tsvector('\"PUBLIC\".cfg', name) FROM customers", 'function_not_allowed'],
    ["SELECT to_tsvector('app.hidden.cfg', name) FROM customers", 'function_not_allowed'],
  ])('refused: %s', (sql, expected) => expect(code(sql)).toBe(expected));
  test.each([
    "SELECT to_tsvector('english', name) FROM customers",
    "SELECT to_tsvector('pg_catalog.english', name), to_tsvector(name) FROM customers",
    'SELECT to_tsquery($1)',
    'SELECT name COLLATE "C", name COLLATE pg_catalog."default" FROM customers',
    "SELECT to_tsvector('Public.english', name) FROM customers",
    // ts_headline(document, query, options): no configuration there.
    "SELECT ts_headline('Hello. world', to_tsquery('x'), 'MaxWords=5')",
  ])('allowed: %s', (sql) => expect(code(sql)).toBe('allowed'));
});

describe('untyped text beside a reg* value', () => {
  test.each(REFUSED)('refused: %s', (sql) => {
    expect(outcome(sql)).toBe('function_not_allowed');
  });
  test.each(ALLOWED)('allowed: %s', (sql) => {
    expect(outcome(sql)).toBe('allowed');
  });
  test('the refusal tells the agent to write the checked cast', () => {
    let error: ProxyError | undefined;
    try {
      for (const node of parseStatements("SELECT coalesce(NULL::regclass, 'payroll')")) checkRegCoercions(node);
    } catch (err) {
      error = err as ProxyError;
    }
    expect(error?.message).toMatch(/untyped string or parameter beside a reg\* value/);
    expect(error?.hint).toMatch(/'customers'::regclass/);
  });
});
