// Tool calls compiled to SQL: golden statements for each tool, parameters, tenant arguments dropped and flagged, redacted arguments, and the pipeline accepting what is compiled.
import { analyze, initAnalysis } from '../../../src/analysis/pipeline';
import { parseStatements } from '../../../src/analysis/parser';
import { nodeTypeOf } from '../../../src/analysis/types';
import type { CompiledCall } from '../../../src/tools/types';
import { compile, extendedScope, principal, quickstart, refusal, scope } from './tool-scope';

beforeAll(() => initAnalysis());

interface Golden {
  tool: string;
  args: Record<string, unknown>;
  sql: string;
  params?: Array<string | null>;
  flags?: string[];
  shape?: CompiledCall['shape'];
  redacted?: unknown;
}

const ORDERS = '"public"."orders"';
const CUSTOMERS = '"public"."customers"';
const IGNORED = '(ignored: tenant column)';
const REASON = '(reason: in the audit event)';

const goldens: Golden[] = [
  // db.query
  { tool: 'db.query', args: { model: 'orders' }, sql: `SELECT * FROM ${ORDERS}`, params: [], redacted: { model: 'orders' } },
  {
    tool: 'db.query',
    args: { model: 'orders', where: { status: 'pending' }, limit: 10 },
    sql: `SELECT * FROM ${ORDERS} WHERE "status" = $1 LIMIT $2`,
    params: ['pending', '10'],
    redacted: { model: 'orders', where: { status: '$1' }, limit: '$2' },
  },
  {
    tool: 'db.query',
    args: {
      model: 'orders',
      select: ['id', 'status', 'id'],
      where: { total_cents: { gte: 1000, lt: 5000.5 }, status: { in: ['paid', 'pending'] }, customer_id: { not_in: [1, 2] }, created_at: null },
      order_by: ['-created_at', { field: 'id', direction: 'asc' }],
      limit: 20,
      offset: 40,
    },
    sql: `SELECT "id", "status" FROM ${ORDERS} WHERE "total_cents" >= $1 AND "total_cents" < $2 AND "status" IN ($3, $4) AND "customer_id" NOT IN ($5, $6) AND "created_at" IS NULL ORDER BY "created_at" DESC, "id" LIMIT $7 OFFSET $8`,
    params: ['1000', '5000.5', 'paid', 'pending', '1', '2', '20', '40'],
    redacted: {
      model: 'orders',
      select: ['id', 'status', 'id'],
      where: { total_cents: { gte: '$1', lt: '$2' }, status: { in: ['$3', '$4'] }, customer_id: { not_in: ['$5', '$6'] }, created_at: null },
      order_by: ['-created_at', { field: 'id', direction: 'asc' }],
      limit: '$7',
      offset: '$8',
    },
  },
  {
    tool: 'db.query',
    args: { model: 'customers', where: { name: { ilike: 'ac%', like: '%e' }, phone: { is_null: false }, email: { ne: null }, id: { eq: true } }, order_by: 'name' },
    // Operators of one field come in a fixed order (the schema's), so one shape of call is one statement text.
    sql: `SELECT * FROM ${CUSTOMERS} WHERE "name" LIKE $1 AND "name" ILIKE $2 AND "phone" IS NOT NULL AND "email" IS NOT NULL AND "id" = $3 ORDER BY "name"`,
    params: ['%e', 'ac%', 'true'],
  },
  // The tenant column is dropped from filters and flagged; the pipeline adds the principal's.
  {
    tool: 'db.query',
    args: { model: 'orders', where: { status: 'pending', tenant_id: 2 } },
    sql: `SELECT * FROM ${ORDERS} WHERE "status" = $1`,
    params: ['pending'],
    flags: ['tenant_argument_ignored'],
    redacted: { model: 'orders', where: { status: '$1', tenant_id: IGNORED } },
  },
  { tool: 'db.query', args: { model: 'orders', where: { tenant_id: { in: [1, 2] } } }, sql: `SELECT * FROM ${ORDERS}`, params: [], flags: ['tenant_argument_ignored'] },
  // Model by table name and schema.table; fields folded as PostgreSQL folds unquoted names.
  { tool: 'db_query', args: { model: 'public.orders', select: ['Status'] }, sql: `SELECT "status" FROM ${ORDERS}`, params: [] },
  { tool: 'db.query', args: { model: 'countries', where: { code: 'FR' } }, sql: 'SELECT * FROM "public"."countries" WHERE "code" = $1', params: ['FR'] },

  // db.get
  { tool: 'db.get', args: { model: 'customers', id: 1 }, sql: `SELECT * FROM ${CUSTOMERS} WHERE "id" = $1`, params: ['1'], shape: 'one', redacted: { model: 'customers', id: '$1' } },
  { tool: 'db.get', args: { model: 'orders', id: '7', select: ['status'] }, sql: `SELECT "status" FROM ${ORDERS} WHERE "id" = $1`, params: ['7'], shape: 'one' },
  { tool: 'db.get', args: { model: 'orders', id: { id: 7, tenant_id: 2 } }, sql: `SELECT * FROM ${ORDERS} WHERE "id" = $1`, params: ['7'], shape: 'one', flags: ['tenant_argument_ignored'], redacted: { model: 'orders', id: { id: '$1', tenant_id: IGNORED } } },

  // db.aggregate
  { tool: 'db.aggregate', args: { model: 'orders' }, sql: `SELECT count(*) AS "count" FROM ${ORDERS}`, params: [] },
  {
    tool: 'db.aggregate',
    args: { model: 'orders', where: { status: { ne: 'void' }, tenant_id: 9 }, group_by: ['status'], aggregates: [{ fn: 'sum', field: 'total_cents' }, { fn: 'count' }, { fn: 'avg', field: 'total_cents' }, { fn: 'max', field: 'created_at' }, { fn: 'count', field: 'customer_id' }], order_by: ['-sum_total_cents', 'status'], limit: 5 },
    sql: `SELECT "status", sum("total_cents") AS "sum_total_cents", count(*) AS "count", avg("total_cents") AS "avg_total_cents", max("created_at") AS "max_created_at", count("customer_id") AS "count_customer_id" FROM ${ORDERS} WHERE "status" <> $1 GROUP BY "status" ORDER BY sum("total_cents") DESC, "status" LIMIT $2`,
    params: ['void', '5'],
    flags: ['tenant_argument_ignored'],
  },
  { tool: 'db.aggregate', args: { model: 'orders', group_by: ['tenant_id'], aggregates: [{ fn: 'min', field: 'total_cents' }] }, sql: `SELECT "tenant_id", min("total_cents") AS "min_total_cents" FROM ${ORDERS} GROUP BY "tenant_id"`, params: [] },

  // db.create: RETURNING *, the tenant dropped, reason and dry_run as sqlcommenter tags.
  {
    tool: 'db.create',
    args: { model: 'orders', data: { customer_id: 1, total_cents: 5000, status: 'pending', tenant_id: 2 } },
    sql: `INSERT INTO ${ORDERS} ("customer_id", "total_cents", "status") VALUES ($1, $2, $3) RETURNING *`,
    params: ['1', '5000', 'pending'],
    shape: 'write',
    flags: ['tenant_argument_ignored'],
    redacted: { model: 'orders', data: { customer_id: '$1', total_cents: '$2', status: '$3', tenant_id: IGNORED } },
  },
  {
    tool: 'db.create',
    args: { model: 'customers', data: { name: 'Acme', email: null }, reason: 'User asked, in chat 7c2d', dry_run: true },
    sql: `/*dry_run='true',reason='User%20asked%2C%20in%20chat%207c2d'*/ INSERT INTO ${CUSTOMERS} ("name", "email") VALUES ($1, $2) RETURNING *`,
    params: ['Acme', null],
    shape: 'write',
    redacted: { model: 'customers', data: { name: '$1', email: '$2' }, reason: REASON, dry_run: true },
  },
  // A blank reason is no reason: the pipeline decides whether one was needed.
  { tool: 'db.create', args: { model: 'orders', data: { status: 'x' }, reason: '  ', dry_run: false }, sql: `INSERT INTO ${ORDERS} ("status") VALUES ($1) RETURNING *`, params: ['x'], shape: 'write' },

  // db.update
  {
    tool: 'db.update',
    args: { model: 'orders', id: 7, data: { status: 'paid' }, reason: 'paid by phone' },
    sql: `/*reason='paid%20by%20phone'*/ UPDATE ${ORDERS} SET "status" = $1 WHERE "id" = $2 RETURNING *`,
    params: ['paid', '7'],
    shape: 'write',
    redacted: { model: 'orders', id: '$2', data: { status: '$1' }, reason: REASON },
  },
  {
    tool: 'db.update',
    args: { model: 'orders', where: { status: 'pending', created_at: { lt: '2026-01-01' }, tenant_id: 3 }, data: { status: 'cancelled', total_cents: 0 }, dry_run: true },
    sql: `/*dry_run='true'*/ UPDATE ${ORDERS} SET "status" = $1, "total_cents" = $2 WHERE "status" = $3 AND "created_at" < $4 RETURNING *`,
    params: ['cancelled', '0', 'pending', '2026-01-01'],
    shape: 'write',
    flags: ['tenant_argument_ignored'],
  },

  // db.delete
  { tool: 'db.delete', args: { model: 'orders', id: 1, reason: 'duplicate' }, sql: `/*reason='duplicate'*/ DELETE FROM ${ORDERS} WHERE "id" = $1 RETURNING *`, params: ['1'], shape: 'write' },
  { tool: 'db.delete', args: { model: 'orders', where: { status: { in: ['void'] } } }, sql: `DELETE FROM ${ORDERS} WHERE "status" IN ($1) RETURNING *`, params: ['void'], shape: 'write' },

  // db.sql: the agent's text, params as text.
  { tool: 'db.sql', args: { sql: 'SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total_cents > $1', params: [100] }, sql: 'SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total_cents > $1', params: ['100'] },
  { tool: 'db.sql', args: { sql: "EXPLAIN SELECT * FROM orders WHERE status = 'paid'" }, sql: "EXPLAIN SELECT * FROM orders WHERE status = 'paid'", params: [], redacted: { sql: 'EXPLAIN SELECT * FROM orders WHERE status = $1' } },
];

const EXPECTED_TYPE: Record<string, string> = { 'db.create': 'InsertStmt', 'db.update': 'UpdateStmt', 'db.delete': 'DeleteStmt', 'db.sql': '' };

describe.each(goldens.map((g) => [`${g.tool} ${JSON.stringify(g.args)}`, g] as const))('%s', (_label, g) => {
  const compiled = () => compile(g.tool, g.args);

  test('compiles to the golden statement', () => {
    const c = compiled();
    expect(c.sql).toBe(g.sql);
    if (g.params) expect(c.params).toEqual(g.params);
    expect(c.flags).toEqual(g.flags ?? []);
    expect(c.shape).toBe(g.shape ?? 'rows');
    if (g.redacted) expect(c.redactedArguments).toEqual(g.redacted);
  });

  test('parses as exactly one statement, with one placeholder per parameter', () => {
    const c = compiled();
    const stmts = parseStatements(c.sql);
    expect(stmts).toHaveLength(1);
    const type = EXPECTED_TYPE[g.tool.replace('_', '.')] ?? 'SelectStmt';
    if (type) expect(nodeTypeOf(stmts[0])).toBe(type);
    const used = new Set([...c.sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
    expect(used).toEqual(new Set(c.params.map((_, i) => i + 1)));
  });

  test('the redacted arguments hold none of the values', () => {
    const c = compiled();
    const text = JSON.stringify(c.redactedArguments);
    for (const p of c.params) if (p !== null && p.length > 2) expect(text).not.toContain(JSON.stringify(p));
    expect(text).not.toContain('"tenant_id":2');
    if ('reason' in g.args && typeof g.args.reason === 'string' && g.args.reason.trim()) expect(text).not.toContain(g.args.reason);
  });

  test('the pipeline accepts it under the policy, with the tenant of the credential', () => {
    const c = compiled();
    const result = analyze(c.sql, { protocol: 'extended', scope, principal: principal('1'), writeGate: (t) => scope.policy.isWriteAllowed(t), captureWrites: false });
    if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
    if (g.tool !== 'db.sql' && g.args.model !== 'countries') expect(result.sql).toMatch(/tenant_id = '1'::int|, '1'::int\)/);
    expect(result.sql).not.toMatch(/tenant_id = '?[239]/);
    if (c.dryRun) expect(result.statements[0].write?.dryRun).toBe(true);
  });
});

describe('the pipeline, not the compiler, applies the write rules', () => {
  const run = (tool: string, args: Record<string, unknown>) => {
    const c = compile(tool, args);
    const result = analyze(c.sql, { protocol: 'extended', scope, principal: principal('1'), writeGate: (t) => scope.policy.isWriteAllowed(t), captureWrites: false });
    return result.ok ? 'ok' : result.error.code;
  };
  test.each<[string, Record<string, unknown>, string]>([
    ['db.create', { model: 'customers', data: { name: 'x' } }, 'reason_required'],
    ['db.create', { model: 'customers', data: { name: 'x' }, reason: 'asked' }, 'ok'],
    ['db.create', { model: 'customers', data: { name: 'x' }, dry_run: true }, 'ok'],
    ['db.update', { model: 'customers', id: 1, data: { id: 2 }, reason: 'r' }, 'field_not_writable'],
    ['db.update', { model: 'customers', where: { email: 'a@b.c' }, data: { name: 'n' }, reason: 'r' }, 'field_masked'],
    ['db.delete', { model: 'customers', id: 1, reason: 'r' }, 'model_writes_disabled'],
    ['db.create', { model: 'countries', data: { code: 'FR' } }, 'model_writes_disabled'],
    ['db.create', { model: 'orders', data: { id: 5, status: 'x' } }, 'field_not_writable'],
  ])('%s %j → %s', (tool, args, outcome) => {
    expect(run(tool, args)).toBe(outcome);
  });

  test('a reason survives the trip through the tags exactly, however hostile', () => {
    for (const reason of ["*/ DROP TABLE x; --", "it's 'quoted' \\' \\", '/* nested */ */ /*', "a,b='c'", '%41%2', 'ligne\nneuve\ttab', '😀 naïve', 'x'.repeat(2000)]) {
      const c = compile('db.create', { model: 'customers', data: { name: 'x' }, reason });
      expect(parseStatements(c.sql)).toHaveLength(1);
      const result = analyze(c.sql, { protocol: 'extended', scope, principal: principal('1'), writeGate: (t) => scope.policy.isWriteAllowed(t), captureWrites: false });
      if (!result.ok) throw new Error(`${reason}: ${result.error.code}`);
      expect(result.tags.reason).toBe(reason);
      expect(result.statements[0].write?.reason).toBe(reason.trim());
      expect(c.sql).toMatch(/^\/\*reason='[A-Za-z0-9%._-]*'\*\/ INSERT INTO /);
    }
  });
});

describe('refusals', () => {
  test.each<[string, string, unknown, string, RegExp?]>([
    ['unknown tool', 'db.drop', { model: 'orders' }, 'tool_unknown', /db\.query/],
    ['unknown tool, wire spelling', 'db_nope', {}, 'tool_unknown'],
    ['not a tool name', 'DROP TABLE x', {}, 'tool_unknown'],
    ['unknown model', 'db.query', { model: 'payments' }, 'model_not_allowed', /customers, orders, countries/],
    ['model injection', 'db.query', { model: 'orders"; DROP TABLE orders; --' }, 'model_not_allowed'],
    ['unregistered table', 'db.query', { model: 'internal_notes' }, 'model_not_allowed'],
    ['unknown field', 'db.query', { model: 'orders', where: { nope: 1 } }, 'column_not_found', /Fields of orders: id, tenant_id, customer_id/],
    ['field injection in where', 'db.query', { model: 'orders', where: { 'status" = status OR 1=1 --': 1 } }, 'column_not_found'],
    ['field injection in select', 'db.query', { model: 'orders', select: ['id", (SELECT api_secret FROM customers) AS "x'] }, 'column_not_found'],
    ['field injection in order_by', 'db.query', { model: 'orders', order_by: '-id" DESC; DROP TABLE x; --' }, 'column_not_found'],
    ['django-style operator', 'db.update', { model: 'orders', where: { created_at__lt: '2026-01-01' }, data: { status: 'x' } }, 'column_not_found', /\{"created_at": \{"lt": …\}\}/],
    ['unknown operator', 'db.query', { model: 'orders', where: { status: { regex: '.*' } } }, 'tool_arguments_invalid', /unknown operator "regex"; allowed: eq, ne/],
    ['empty operator object', 'db.query', { model: 'orders', where: { status: {} } }, 'tool_arguments_invalid', /at least one operator/],
    ['nested where', 'db.query', { model: 'orders', where: { status: { eq: { eq: 'x' } } } }, 'tool_arguments_invalid', /where\.status\.eq/],
    ['or is not an operator', 'db.query', { model: 'orders', where: { or: [{ status: 'a' }, { status: 'b' }] } }, 'tool_arguments_invalid'],
    ['array as a value', 'db.query', { model: 'orders', where: { status: ['a', 'b'] } }, 'tool_arguments_invalid', /\{"in": \[1, 2\]\}/],
    ['too many fields in where', 'db.query', { model: 'orders', where: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`f${i}`, i])) }, 'tool_arguments_invalid', /at most 64/],
    ['too long an in list', 'db.query', { model: 'orders', where: { id: { in: Array.from({ length: 1001 }, (_, i) => i) } } }, 'tool_arguments_invalid'],
    ['too many values in one call', 'db.query', { model: 'orders', where: Object.fromEntries(['id', 'customer_id', 'total_cents', 'status', 'created_at', 'Id'].map((f) => [f, { in: Array.from({ length: 1000 }, (_, i) => i), not_in: [1] }])) }, 'tool_arguments_invalid', /more than 5000 values/],
    ['empty in list', 'db.query', { model: 'orders', where: { id: { in: [] } } }, 'tool_arguments_invalid'],
    ['null in an in list', 'db.query', { model: 'orders', where: { id: { in: [1, null] } } }, 'tool_arguments_invalid'],
    ['limit as text', 'db.query', { model: 'orders', limit: '10' }, 'tool_arguments_invalid', /limit/],
    ['negative limit', 'db.query', { model: 'orders', limit: -1 }, 'tool_arguments_invalid'],
    ['fractional offset', 'db.query', { model: 'orders', offset: 1.5 }, 'tool_arguments_invalid'],
    ['model as a number', 'db.query', { model: 5 }, 'tool_arguments_invalid', /model/],
    ['no model', 'db.query', {}, 'tool_arguments_invalid', /model/],
    ['arguments as text', 'db.query', 'SELECT 1', 'tool_arguments_invalid', /JSON object/],
    ['arguments as a list', 'db.query', [], 'tool_arguments_invalid', /JSON object/],
    ['unknown argument', 'db.query', { model: 'orders', include: ['customer'] }, 'tool_arguments_invalid', /joins are not available/],
    ['the brief\'s aggregations', 'db.aggregate', { model: 'orders', aggregations: { total_cents: 'sum' } }, 'tool_arguments_invalid', /use "aggregates"/],
    ['sum without a field', 'db.aggregate', { model: 'orders', aggregates: [{ fn: 'sum' }] }, 'tool_arguments_invalid', /need a field/],
    ['unknown aggregate', 'db.aggregate', { model: 'orders', aggregates: [{ fn: 'string_agg', field: 'status' }] }, 'tool_arguments_invalid'],
    ['two columns of one name', 'db.aggregate', { model: 'orders', group_by: ['status'], aggregates: [{ fn: 'count' }, { fn: 'count' }] }, 'tool_arguments_invalid', /named "count"/],
    ['order by what is not grouped', 'db.aggregate', { model: 'orders', group_by: ['status'], order_by: 'total_cents' }, 'tool_arguments_invalid', /sort by one of: status, count/],
    ['a __proto__ filter (it would vanish into the prototype)', 'db.query', JSON.parse('{"model":"orders","where":{"__proto__":{"eq":1}}}'), 'tool_arguments_invalid', /__proto__/],
    ['a __proto__ key', 'db.get', JSON.parse('{"model":"orders","id":{"__proto__":1,"id":2}}'), 'tool_arguments_invalid', /__proto__/],
    ['a zero byte in a value', 'db.query', { model: 'orders', where: { status: 'a\u0000b' } }, 'tool_arguments_invalid', /zero byte/],
    ['a zero byte in data', 'db.create', { model: 'orders', data: { status: 'a\u0000b' } }, 'tool_arguments_invalid', /zero byte/],
    ['a reason that is not Unicode text', 'db.create', { model: 'orders', data: { status: 'x' }, reason: 'a\ud800b' }, 'tool_arguments_invalid', /Unicode/],
    ['an over-long reason', 'db.create', { model: 'orders', data: { status: 'x' }, reason: 'x'.repeat(2001) }, 'tool_arguments_invalid', /reason/],
    ['empty data', 'db.create', { model: 'orders', data: {} }, 'tool_arguments_invalid', /at least one field/],
    ['data of the tenant only', 'db.create', { model: 'orders', data: { tenant_id: 2 } }, 'tool_arguments_invalid', /only the tenant column/],
    ['an object for a text column', 'db.create', { model: 'orders', data: { status: { a: 1 } } }, 'tool_arguments_invalid', /character varying\(20\)/],
    ['a field named twice', 'db.create', { model: 'orders', data: { status: 'a', Status: 'b' } }, 'tool_arguments_invalid', /twice/],
    ['update with neither id nor where', 'db.update', { model: 'orders', data: { status: 'x' } }, 'tool_arguments_invalid', /exactly one of id/],
    ['update with both', 'db.update', { model: 'orders', id: 1, where: { status: 'a' }, data: { status: 'x' } }, 'tool_arguments_invalid', /exactly one of id/],
    ['update of every row', 'db.update', { model: 'orders', where: {}, data: { status: 'x' } }, 'tool_arguments_invalid', /never changes every row/],
    ['update of every row of the tenant', 'db.update', { model: 'orders', where: { tenant_id: 1 }, data: { status: 'x' } }, 'tool_arguments_invalid', /besides the tenant column/],
    ['delete of every row', 'db.delete', { model: 'orders', where: { tenant_id: { eq: 1 } } }, 'tool_arguments_invalid', /never changes every row/],
    ['delete with neither', 'db.delete', { model: 'orders', reason: 'x' }, 'tool_arguments_invalid'],
    ['update of the tenant only', 'db.update', { model: 'orders', id: 1, data: { tenant_id: 2 } }, 'tool_arguments_invalid', /never changes/],
    ['get without a key', 'db.get', { model: 'countries', id: 'FR' }, 'tool_arguments_invalid', /no primary key/],
    ['get with a key object of other fields', 'db.get', { model: 'orders', id: { status: 'x' } }, 'tool_arguments_invalid', /not a primary key field/],
    ['db.sql write', 'db.sql', { sql: "INSERT INTO orders (status) VALUES ('x')" }, 'statement_not_allowed', /db\.sql runs one read/],
    ['db.sql writable CTE', 'db.sql', { sql: 'WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d' }, 'statement_not_allowed', /data-modifying/],
    ['db.sql explain of a write', 'db.sql', { sql: 'EXPLAIN UPDATE orders SET status = 1' }, 'statement_not_allowed'],
    ['db.sql two statements', 'db.sql', { sql: 'SELECT 1; SELECT 2' }, 'statement_not_allowed', /several statements/],
    ['db.sql no statement', 'db.sql', { sql: '-- nothing' }, 'statement_not_allowed'],
    ['db.sql session command', 'db.sql', { sql: 'SET search_path = x' }, 'statement_not_allowed'],
    ['db.sql syntax error', 'db.sql', { sql: 'SELEC 1' }, 'syntax_error'],
  ])('%s', (...[, tool, args, code, message]) => {
    const r = refusal(tool, args);
    expect(r.code).toBe(code);
    if (message) expect(`${r.message} ${r.hint}`).toMatch(message);
  });

  test('a denied field is as absent as one that does not exist, and never listed', () => {
    for (const args of [
      { model: 'customers', where: { api_secret: 'x' } },
      { model: 'customers', select: ['api_secret'] },
      { model: 'customers', order_by: '-api_secret' },
    ]) {
      const denied = refusal('db.query', args);
      const missing = refusal('db.query', JSON.parse(JSON.stringify(args).replace('api_secret', 'no_such_field')));
      expect(denied.code).toBe('column_not_found');
      expect(denied.hint).toBe(missing.hint);
      expect(denied.hint).not.toContain('secret');
    }
    expect(refusal('db.create', { model: 'customers', data: { api_secret: 'x' }, reason: 'r' }).code).toBe('column_not_found');
    expect(refusal('db.aggregate', { model: 'customers', aggregates: [{ fn: 'max', field: 'api_secret' }] }).code).toBe('column_not_found');
  });

  test('the compiler is not the place for tools the engine answers', () => {
    expect(() => compile('db.describe_schema', {})).toThrow('not compiled to SQL');
    expect(() => compile('approvals.status', {})).toThrow('not compiled to SQL');
  });

  test('messages quote hostile names escaped and bounded', () => {
    const r = refusal('db.query', { model: `x"${'y'.repeat(100)}` });
    expect(r.message.length).toBeLessThan(120);
    expect(r.message).toContain('x\\"y');
    expect(refusal('db.query', { model: 'y'.repeat(500) }).message).toMatch(/model: Too big/);
  });
});

describe('composite keys, json and array columns, models named apart from their table', () => {
  const ext = extendedScope();
  const LINES = '"sales"."order_lines"';

  test.each<[string, Record<string, unknown>, string, Array<string | null>, string[]?]>([
    ['db.get', { model: 'OrderLine', id: { order_id: 7, line_no: 2 } }, `SELECT * FROM ${LINES} WHERE "order_id" = $1 AND "line_no" = $2`, ['7', '2']],
    ['db.get', { model: 'OrderLine', id: { line_no: 2, order_id: 7, tenant_id: 5 } }, `SELECT * FROM ${LINES} WHERE "order_id" = $1 AND "line_no" = $2`, ['7', '2'], ['tenant_argument_ignored']],
    ['db.get', { model: 'orderline', id: { order_id: 1, line_no: 1 } }, `SELECT * FROM ${LINES} WHERE "order_id" = $1 AND "line_no" = $2`, ['1', '1']],
    ['db.get', { model: 'sales.order_lines', id: { order_id: 1, line_no: 1 } }, `SELECT * FROM ${LINES} WHERE "order_id" = $1 AND "line_no" = $2`, ['1', '1']],
    ['db.get', { model: 'Country', id: 'FR' }, 'SELECT * FROM "public"."countries" WHERE "code" = $1', ['FR']],
    [
      'db.create',
      { model: 'OrderLine', data: { order_id: 1, line_no: 1, tags: ['a', 'b"c', null, 'd\\e', ['n']], meta: { gift: true, note: "it's" } } },
      `INSERT INTO ${LINES} ("order_id", "line_no", "tags", "meta") VALUES ($1, $2, $3, $4) RETURNING *`,
      ['1', '1', '{"a","b\\"c",NULL,"d\\\\e",{"n"}}', '{"gift":true,"note":"it\'s"}'],
    ],
    ['db.update', { model: 'OrderLine', id: { order_id: 1, line_no: 1 }, data: { meta: [1, 2] } }, `UPDATE ${LINES} SET "meta" = $1 WHERE "order_id" = $2 AND "line_no" = $3 RETURNING *`, ['[1,2]', '1', '1']],
  ])('%s %j', (tool, args, sql, params, flags = []) => {
    const c = compile(tool, args, ext);
    expect(c.sql).toBe(sql);
    expect(c.params).toEqual(params);
    expect(c.flags).toEqual(flags);
    const result = analyze(c.sql, { protocol: 'extended', scope: ext, principal: principal('1'), writeGate: (t) => ext.policy.isWriteAllowed(t), captureWrites: false });
    if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
  });

  test.each<[string, Record<string, unknown>, string, RegExp]>([
    ['db.get', { model: 'OrderLine', id: 7 }, 'tool_arguments_invalid', /several fields \(order_id, line_no\)/],
    ['db.get', { model: 'OrderLine', id: { order_id: 7 } }, 'tool_arguments_invalid', /missing line_no/],
    ['db.query', { model: 'OrderLine', where: { secret_note: 'x' } }, 'column_not_found', /Fields of OrderLine: tenant_id, order_id, line_no, sku, tags, meta\.$/],
    ['db.create', { model: 'OrderLine', data: { sku: ['a'] } }, 'tool_arguments_invalid', /sku: OrderLine\.sku is text/],
    ['db.create', { model: 'OrderLine', data: { meta: JSON.parse(`${'['.repeat(40)}${']'.repeat(40)}`) } }, 'tool_arguments_invalid', /nested deeper than 32/],
    ['db.create', { model: 'OrderLine', data: { tags: [{ a: 1 }] } }, 'tool_arguments_invalid', /array elements/],
  ])('%s %j is refused', (tool, args, code, message) => {
    const r = refusal(tool, args, ext);
    expect(r.code).toBe(code);
    expect(`${r.message} ${r.hint}`).toMatch(message);
  });

  test('a deeply nested value is refused without exhausting the stack', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(refusal('db.create', { model: 'OrderLine', data: { meta: deep } }, ext).message).toMatch(/nested deeper/);
  });
});

test('the quickstart policy: orders can be created with a reason, nothing else is written', () => {
  const c = compile('db.create', { model: 'orders', data: { customer_id: 1, total_cents: 5000 }, reason: 'User requested order placement during chat session 7c2d.' }, quickstart);
  const ctx = { protocol: 'extended' as const, scope: quickstart, principal: principal('1'), writeGate: (t: { name: string; op: 'insert' | 'update' | 'delete' }) => quickstart.policy.isWriteAllowed(t), captureWrites: false };
  const ok = analyze(c.sql, ctx);
  expect(ok.ok).toBe(true);
  const noReason = analyze(compile('db.create', { model: 'orders', data: { customer_id: 1, total_cents: 5000 } }, quickstart).sql, ctx);
  expect(noReason.ok ? 'ok' : noReason.error.code).toBe('reason_required');
  const del = analyze(compile('db.delete', { model: 'orders', id: 1, reason: 'oops' }, quickstart).sql, ctx);
  expect(del.ok ? 'ok' : del.error.code).toBe('model_writes_disabled');
});
