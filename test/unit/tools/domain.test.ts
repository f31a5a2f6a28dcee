// Domain tools (docs/domain-tools.md): `:name` compiled to $n with the scanner, declarations refused at load, calls compiled with their values as parameters, names mapped with the policy's list, and specs.
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { analyze, initAnalysis } from '../../../src/analysis/pipeline';
import { DomainToolError, domainToolTemplate, type DomainToolDecl } from '../../../src/policy/domain-tools';
import { buildPolicy, checkDomainTools, loadPolicyFile, parsePolicyText, PolicyFileError } from '../../../src/policy/load';
import { policySchema } from '../../../src/policy/schema';
import { compileScope } from '../../../src/policy/scope';
import { compileCall } from '../../../src/tools/compile';
import { mcpTool } from '../../../src/tools/mcp';
import { canonicalToolName, wireToolName } from '../../../src/tools/names';
import { toolSpecs, toolSpecsAs } from '../../../src/tools/schemas';
import { principal, quickstartCatalog } from '../analysis/rewrite-scope';

const FIXTURE = path.resolve(__dirname, '../../fixtures/domain-tools-policy.yaml');
const REASON = '(reason: in the audit event)';

/** Loaded before the parser is (module scope runs before beforeAll): only the checks that need no parser ran. */
const fixture = loadPolicyFile(FIXTURE);
const loadedBeforeParser = buildPolicy(
  policySchema.parse({ ...fixture.raw, tools: [{ name: 'a.b', description: 'x', sql: 'SELECT :y', params: { x: { type: 'integer', description: 'x' } } }] }),
  'early.yaml',
);

beforeAll(() => initAnalysis());

const scope = () => compileScope(fixture, quickstartCatalog());
const param = (type: string, required = true) => ({ type, description: 'a value', required });
const decl = (sql: string, params: Record<string, ReturnType<typeof param>> = {}): DomainToolDecl => ({ name: 'test.tool', description: 'A test tool.', sql, params }) as DomainToolDecl;

/** The policy file's keys over the fixture's, validated like a loaded file. */
function policyWith(change: Record<string, unknown>) {
  return buildPolicy(policySchema.parse({ ...fixture.raw, ...change }), 'domain.yaml');
}

function refusal(name: string, args: unknown): { code: string; message: string; hint: string } {
  try {
    const compiled = compileCall({ name, arguments: args }, { scope: scope() });
    throw new Error(`expected a refusal, got ${compiled.sql}`);
  } catch (err) {
    const e = err as { code?: string; message: string; hint?: string };
    if (e.code === undefined) throw err;
    return { code: e.code, message: e.message, hint: e.hint ?? '' };
  }
}

describe(':name parameters, found by the scanner', () => {
  const int = { x: param('integer') };
  test.each([
    ['one parameter, cast to its type', 'SELECT 1 WHERE a = :x', int, 'SELECT 1 WHERE a = CAST($1 AS bigint)'],
    ['used twice: one $n', 'SELECT :x, :x + 1', int, 'SELECT CAST($1 AS bigint), CAST($1 AS bigint) + 1'],
    ['numbered by first use', 'SELECT :b, :a, :b', { a: param('text'), b: param('date') }, 'SELECT CAST($1 AS date), CAST($2 AS text), CAST($1 AS date)'],
    ["inside a string literal: text", "SELECT ':x', E'\\':x', $$:x$$, $q$ :x $q$, U&':x', :x", int, "SELECT ':x', E'\\':x', $$:x$$, $q$ :x $q$, U&':x', CAST($1 AS bigint)"],
    ['inside a quoted identifier or a comment: untouched', 'SELECT "a:x" /* :x */, :x -- :x\n', int, 'SELECT "a:x" /* :x */, CAST($1 AS bigint) -- :x\n'],
    ['casts stay casts', 'SELECT :x::text, a::int, CAST(:x AS int)', int, 'SELECT CAST($1 AS bigint)::text, a::int, CAST(CAST($1 AS bigint) AS int)'],
    ['array slices stay slices', 'SELECT a[1:2], a[lo:hi], a[:hi], a[1: :x]', int, 'SELECT a[1:2], a[lo:hi], a[:hi], a[1: CAST($1 AS bigint)]'],
    ['named function arguments stay', 'SELECT f(a := :x), f(b => :x)', int, 'SELECT f(a := CAST($1 AS bigint)), f(b => CAST($1 AS bigint))'],
    ['a keyword as a name', 'SELECT 1 LIMIT :limit', { limit: param('integer') }, 'SELECT 1 LIMIT CAST($1 AS bigint)'],
    ['after multi-byte text (byte offsets)', "SELECT 'héllo ✓', :x", int, "SELECT 'héllo ✓', CAST($1 AS bigint)"],
    ['every type', 'SELECT :i, :n, :t, :b, :d, :ts, :u', { i: param('integer'), n: param('number'), t: param('text'), b: param('boolean'), d: param('date'), ts: param('timestamp'), u: param('uuid') },
      'SELECT CAST($1 AS bigint), CAST($2 AS numeric), CAST($3 AS text), CAST($4 AS boolean), CAST($5 AS date), CAST($6 AS timestamptz), CAST($7 AS uuid)'],
  ])('%s', (_what, sql, params, expected) => {
    expect(domainToolTemplate(decl(sql, params)).sql).toBe(expected);
  });

  test.each([
    ['a parameter not declared', 'SELECT :x, :y', { x: param('integer') }, /uses :y, not declared/],
    ['an upper-case name (names are lower case)', 'SELECT :X', { x: param('integer') }, /uses :X, not declared/],
    ['a declared parameter the sql does not use', "SELECT ':x'", { x: param('integer') }, /declares x, which the sql does not use/],
    ['$n parameters', 'SELECT $1', {}, /uses \$1: write parameters as :name/],
    ['a syntax error', 'SELEC 1', {}, /does not parse: syntax error at or near "SELEC"/],
    ['two statements', 'SELECT 1; SELECT 2', {}, /holds 2 statements; a tool runs one/],
    ['no statement', '/* nothing */', {}, /holds no statement/],
  ])('refused: %s', (_what, sql, params, message) => {
    expect(() => domainToolTemplate(decl(sql, params))).toThrow(DomainToolError);
    expect(() => domainToolTemplate(decl(sql, params))).toThrow(message);
  });

  test('writes are found at the top level and in WITH', () => {
    expect(domainToolTemplate(decl('UPDATE sales.orders SET a = 1')).writes).toEqual([{ schema: 'sales', name: 'orders', op: 'update' }]);
    expect(domainToolTemplate(decl('WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d')).writes).toEqual([{ name: 't', op: 'delete' }]);
    expect(domainToolTemplate(decl('SELECT 1')).writes).toEqual([]);
  });
});

describe('the policy file', () => {
  const tool = (name: string, params: Record<string, unknown> = {}) => ({ name, description: 'x', sql: 'SELECT 1', params });
  test.each([
    ['a name without a namespace', [tool('weekly_revenue')], /tools\.0\.name: expected namespace\.name/],
    ['an upper-case name', [tool('Analytics.weekly')], /tools\.0\.name/],
    ['two dots', [tool('a.b.c')], /tools\.0\.name/],
    ['the db namespace', [tool('db.query')], /tools\[0\] db\.query: the namespaces db, approvals, ormai/],
    ['the approvals namespace', [tool('approvals.list')], /the namespaces db, approvals, ormai/],
    ['a name that reads as a built-in without its dot', [tool('db_describe.schema')], /tools\[0\] db_describe\.schema: the namespaces/],
    ['a duplicate', [tool('a.b'), tool('a.b')], /tools\[1\] a\.b: declared twice/],
    ['two names with one wire name', [tool('a_b.c'), tool('a.b_c')], /tools\[1\] a\.b_c: a_b\.c has the same name without its dot \(a_b_c\)/],
    ['a name over 64 characters', [tool(`a.${'b'.repeat(63)}`)], /longer than 64/],
    ['a reserved parameter name', [tool('a.b', { reason: param('text') })], /the parameter name "reason" is reserved/],
    ['a parameter name that is not lower case', [tool('a.b', { X: param('text') })], /tools\.0\.params\.X/],
    ['an unknown parameter type', [tool('a.b', { x: param('int') })], /tools\.0\.params\.x\.type/],
    ['a parameter without a description', [tool('a.b', { x: { type: 'text' } })], /tools\.0\.params\.x\.description/],
    ['an unknown key', [{ ...tool('a.b'), returns: 'rows' }], /returns/],
  ])('refuses %s', (_what, tools, message) => {
    const load = () => parsePolicyText(JSON.stringify({ ...fixture.raw, tools }), 'domain.json');
    expect(load).toThrow(PolicyFileError);
    expect(load).toThrow(message);
  });

  test('with the parser loaded, a statement whose parameters do not match is refused at load; checkDomainTools does it for files loaded before', () => {
    const bad = { name: 'a.b', description: 'x', sql: 'SELECT :y', params: { x: param('integer') } };
    expect(() => policyWith({ tools: [bad] })).toThrow(/invalid policy file domain\.yaml: tool a\.b: the sql uses :y, not declared/);
    expect(() => checkDomainTools([fixture])).not.toThrow();
    expect(() => checkDomainTools([fixture, loadedBeforeParser])).toThrow(/invalid policy file early\.yaml: tool a\.b: the sql uses :y/);
  });

  test('the tools are part of the policy hash', () => {
    expect(policyWith({ tools: [] }).hash).not.toBe(fixture.hash);
  });
});

describe('calls', () => {
  test('analytics.weekly_revenue: the value is a parameter, cast in the statement; the arguments are redacted', () => {
    const compiled = compileCall({ name: 'analytics.weekly_revenue', arguments: { customer_id: 4 } }, { scope: scope() });
    expect(compiled).toEqual({
      sql: "SELECT sum(total_cents) AS cents FROM orders WHERE status = 'paid' AND created_at > now() - interval '7 days' AND customer_id = CAST($1 AS bigint)",
      params: ['4'],
      shape: 'rows',
      redactedArguments: { customer_id: '$1' },
      flags: [],
    });
  });

  test('hostile values stay parameters: the statement text never changes', () => {
    const sqlOf = (status: unknown) => compileCall({ name: 'sales_ops.revenue_by_status', arguments: { status } }, { scope: scope() });
    const plain = sqlOf('paid');
    for (const hostile of ["x' OR '1'='1", "'; DROP TABLE orders; --", '$1', ':status', '*/ SELECT 1 /*', '$$ $$']) {
      const compiled = sqlOf(hostile);
      expect(compiled.sql).toBe(plain.sql);
      expect(compiled.params).toEqual([hostile]);
      expect(compiled.redactedArguments).toEqual({ status: '$1' });
    }
  });

  test('an optional parameter left out or null is NULL', () => {
    expect(compileCall({ name: 'sales_ops.revenue_by_status', arguments: {} }, { scope: scope() })).toMatchObject({ params: [null], redactedArguments: {} });
    expect(compileCall({ name: 'sales_ops.revenue_by_status', arguments: { status: null } }, { scope: scope() })).toMatchObject({ params: [null], redactedArguments: { status: null } });
  });

  test('a write tool takes reason and dry_run as sqlcommenter tags, encoded', () => {
    const compiled = compileCall({ name: 'orders.mark_shipped', arguments: { order_id: 3, reason: "it's */ shipped", dry_run: true } }, { scope: scope() });
    expect(compiled).toEqual({
      sql: "/*dry_run='true',reason='it%27s%20%2A%2F%20shipped'*/ UPDATE orders SET status = 'shipped' WHERE id = CAST($1 AS bigint) RETURNING id, status",
      params: ['3'],
      shape: 'write',
      redactedArguments: { order_id: '$1', reason: REASON, dry_run: true },
      flags: [],
      dryRun: true,
    });
    // No reason: compiled without one; the pipeline refuses it (reason_required), as for SQL.
    expect(compileCall({ name: 'orders.mark_shipped', arguments: { order_id: 3 } }, { scope: scope() }).sql).toMatch(/^UPDATE orders/);
  });

  test.each([
    ['a wrong type', 'analytics.weekly_revenue', { customer_id: '4' }, /customer_id: expected a whole number/],
    ['a fraction for an integer', 'analytics.weekly_revenue', { customer_id: 4.5 }, /customer_id: expected a whole number/],
    ['a missing required parameter', 'analytics.weekly_revenue', {}, /customer_id: missing \(required\)/],
    ['null for a required parameter', 'analytics.weekly_revenue', { customer_id: null }, /customer_id: expected a whole number/],
    ['an unknown argument', 'analytics.weekly_revenue', { customer_id: 4, tenant_id: 2 }, /unknown argument "tenant_id"; allowed: customer_id/],
    ['reason on a read tool', 'analytics.weekly_revenue', { customer_id: 4, reason: 'x' }, /unknown argument "reason"/],
    ['an array', 'analytics.weekly_revenue', [4], /arguments must be a JSON object, not an array/],
    ['a zero byte in text', 'sales_ops.revenue_by_status', { status: 'pa\0id' }, /zero byte/],
    ['__proto__', 'analytics.weekly_revenue', JSON.parse('{"__proto__": {"customer_id": 1}}'), /"__proto__" is not an argument name/],
  ])('refused: %s', (_what, name, args, message) => {
    const r = refusal(name, args);
    expect(r.code).toBe('tool_arguments_invalid');
    expect(r.message).toMatch(message);
    expect(r.message).toContain(`invalid arguments for ${name}`);
  });

  test('the types: values are checked, then bound as the text PostgreSQL reads', () => {
    const tool = { name: 'x.types', description: 'Types.', sql: 'SELECT :n, :b, :d, :ts, :u', params: { n: param('number'), b: param('boolean'), d: param('date'), ts: param('timestamp'), u: param('uuid') } };
    const s = compileScope(policyWith({ tools: [tool] }), quickstartCatalog());
    const args = { n: 12.5, b: false, d: '2024-05-01', ts: '2024-05-01T09:30:00+02:00', u: '00000000-0000-0000-0000-00000000000a' };
    expect(compileCall({ name: 'x.types', arguments: args }, { scope: s }).params).toEqual(['12.5', 'false', '2024-05-01', '2024-05-01T09:30:00+02:00', '00000000-0000-0000-0000-00000000000a']);
    for (const [key, bad] of [['d', '05/01/2024'], ['ts', 'yesterday'], ['u', 'not-a-uuid'], ['b', 'false'], ['n', '12.5']] as const) {
      expect(() => compileCall({ name: 'x.types', arguments: { ...args, [key]: bad } }, { scope: s })).toThrow(new RegExp(`${key}: expected`));
    }
  });

  test('what is compiled passes the pipeline for a principal, with the tenant added', () => {
    const compiled = compileCall({ name: 'analytics.weekly_revenue', arguments: { customer_id: 4 } }, { scope: scope() });
    const analysis = analyze(compiled.sql, { protocol: 'extended', scope: scope(), principal: principal('2'), writeGate: () => false });
    expect(analysis.ok).toBe(true);
    if (analysis.ok) expect(analysis.sql).toMatch(/tenant_id = '2'::int/);
  });

  test('an unknown tool lists the policy\'s domain tools in its hint', () => {
    const r = refusal('analytics.monthly_revenue', {});
    expect(r.code).toBe('tool_unknown');
    expect(r.hint).toContain('analytics.weekly_revenue, sales_ops.revenue_by_status, orders.mark_shipped');
  });
});

describe('names', () => {
  const known = fixture.raw.tools.map((t) => t.name);

  test.each(known)('%s maps to its wire name and back against the policy\'s list', (name) => {
    const wire = wireToolName(name);
    expect(wire).toMatch(/^[a-zA-Z0-9_-]{1,64}$/);
    expect(canonicalToolName(wire, known)).toBe(name);
    expect(canonicalToolName(name, known)).toBe(name);
  });

  test('an underscore in the namespace needs the list: the first underscore is not where the dot was', () => {
    expect(wireToolName('sales_ops.revenue_by_status')).toBe('sales_ops_revenue_by_status');
    expect(canonicalToolName('sales_ops_revenue_by_status')).toBe('sales.ops_revenue_by_status');
    expect(canonicalToolName('sales_ops_revenue_by_status', known)).toBe('sales_ops.revenue_by_status');
    // The built-ins still map without a list.
    expect(canonicalToolName('db_describe_schema', known)).toBe('db.describe_schema');
  });

  test('a call by wire name compiles against the policy\'s tools', () => {
    expect(compileCall({ name: 'sales_ops_revenue_by_status', arguments: {} }, { scope: scope() }).sql).toMatch(/^SELECT status/);
  });
});

describe('specs', () => {
  let specs: ReturnType<typeof toolSpecs>;
  let byName: Record<string, ReturnType<typeof toolSpecs>[number]>;
  beforeAll(() => {
    specs = toolSpecs(fixture);
    byName = Object.fromEntries(specs.map((s) => [s.name, s]));
  });

  test('domain tools follow the db.* tools, with the policy\'s description and a JSON Schema of their parameters', () => {
    expect(specs.map((s) => s.name)).toEqual(['db.describe_schema', 'db.query', 'db.get', 'db.aggregate', 'db.update', 'db.sql', 'analytics.weekly_revenue', 'sales_ops.revenue_by_status', 'orders.mark_shipped']);
    expect(byName['analytics.weekly_revenue']).toEqual({
      name: 'analytics.weekly_revenue',
      description: "Sum of one customer's paid orders over the last 7 days, in cents. It works on your tenant's rows only.",
      input_schema: {
        type: 'object',
        properties: { customer_id: { type: 'integer', minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER, description: "The customer's id (Customer.id)." } },
        required: ['customer_id'],
        additionalProperties: false,
      },
    });
    expect(byName['sales_ops.revenue_by_status'].input_schema.required).toBeUndefined();
  });

  test('a write tool takes reason (required under this grant) and dry_run, and MCP marks it destructive', () => {
    const spec = byName['orders.mark_shipped'];
    expect(spec.input_schema.required).toEqual(['order_id', 'reason']);
    expect(Object.keys(spec.input_schema.properties)).toEqual(['order_id', 'reason', 'dry_run']);
    expect(spec.description).toContain('a reason (one sentence: why, for whom) is required');
    expect(mcpTool(spec).annotations).toMatchObject({ readOnlyHint: false, destructiveHint: true });
    expect(mcpTool(byName['analytics.weekly_revenue']).annotations).toMatchObject({ readOnlyHint: true });
  });

  test('a write tool no grant allows is not offered', () => {
    const names = toolSpecs(policyWith({ enable_writes: [] })).map((s) => s.name);
    expect(names).toContain('analytics.weekly_revenue');
    expect(names).not.toContain('orders.mark_shipped');
  });

  test('the schemas are valid JSON Schema and agree with the validation', () => {
    const ajv = new Ajv2020({ strict: false });
    for (const spec of specs.slice(-3)) expect(ajv.validateSchema(spec.input_schema)).toBe(true);
    const validate = ajv.compile(byName['analytics.weekly_revenue'].input_schema);
    expect(validate({ customer_id: 4 })).toBe(true);
    expect(validate({ customer_id: '4' })).toBe(false);
    expect(validate({ customer_id: 4, tenant_id: 2 })).toBe(false);
  });

  test('the SDK shapes use the wire names', () => {
    expect(toolSpecsAs(specs, 'anthropic').map((s) => s.name).slice(-3)).toEqual(['analytics_weekly_revenue', 'sales_ops_revenue_by_status', 'orders_mark_shipped']);
    expect(toolSpecsAs(specs, 'mcp').slice(-1)[0]).toMatchObject({ name: 'orders_mark_shipped', title: 'orders.mark_shipped' });
  });
});
