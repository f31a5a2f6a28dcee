// Tool specs: specialised to the policy, valid JSON Schema that agrees with the zod validation, in the exact shapes the SDKs take; tool names mapped reversibly.
import Ajv2020 from 'ajv/dist/2020';
import { buildPolicy } from '../../../src/policy/load';
import { policySchema } from '../../../src/policy/schema';
import { parseToolArguments, TOOL_NAMES, type ToolName } from '../../../src/tools/arguments';
import { canonicalToolName, wireToolName } from '../../../src/tools/names';
import { toolSpecs, toolSpecsAs, type ToolSpec } from '../../../src/tools/schemas';
import { quickstart, scope } from './tool-scope';

const withApprovals = buildPolicy(
  policySchema.parse({
    ...scope.policy.raw,
    max_writes_per_minute: 10,
    enable_writes: [{ models: ['orders'], require_reason: true, max_affected_rows: 50, writable_fields: { orders: ['status'] } }],
    require_approval: [
      { operation: 'update', model: 'orders', when: { affected_rows_gt: 5 }, approvers: 2 },
      { operation: 'delete', model: 'orders' },
      { operation: 'update', model: 'customers' },
    ],
  }),
  'approvals.yaml',
);

const byName = (specs: ToolSpec[]) => Object.fromEntries(specs.map((s) => [s.name, s]));

describe('tool names', () => {
  test.each([...TOOL_NAMES, 'analytics.weekly_revenue'])('%s maps to an API name and back', (name) => {
    const wire = wireToolName(name);
    expect(wire).toMatch(/^[a-zA-Z0-9_-]{1,64}$/);
    expect(canonicalToolName(wire)).toBe(name);
    expect(canonicalToolName(name)).toBe(name);
  });

  test('names outside the canonical form are refused, not guessed', () => {
    for (const name of ['query', 'db..query', 'db.query.x', 'DB.query', 'a-b.c', '', 'db_', '_query', 'db query']) expect(canonicalToolName(name)).toBeUndefined();
    expect(() => wireToolName('My.tool')).toThrow();
    expect(() => wireToolName(`db.${'x'.repeat(70)}`)).toThrow();
  });
});

describe('specs for a policy', () => {
  test('the quickstart policy: reads, db.sql, and db.create for orders with a reason', () => {
    const specs = toolSpecs(quickstart.policy);
    expect(specs.map((s) => s.name)).toEqual(['db.describe_schema', 'db.query', 'db.get', 'db.aggregate', 'db.create', 'db.sql']);
    const s = byName(specs);
    expect((s['db.query'].input_schema.properties.model as { enum: string[] }).enum).toEqual(['customers', 'orders']);
    expect((s['db.create'].input_schema.properties.model as { enum: string[] }).enum).toEqual(['orders']);
    expect(s['db.create'].input_schema.required).toEqual(['model', 'data', 'reason']);
    expect(s['db.create'].description).toContain('A reason (one sentence: why, for whom) is required.');
    expect(s['db.create'].description).toContain('At most 20 writes per minute.');
    expect(s['db.query'].description).toContain('At most 200 rows');
    expect(s['db.query'].description).toContain('3000 ms');
    expect(s['db.query'].description).toContain('leave tenant_id out');
    // Hidden fields are named nowhere.
    expect(JSON.stringify(specs)).not.toContain('api_secret');
  });

  test('write tools list only the models that write is enabled for, and say where a reason is required', () => {
    const s = byName(toolSpecs(scope.policy));
    expect(Object.keys(s)).toEqual(['db.describe_schema', 'db.query', 'db.get', 'db.aggregate', 'db.create', 'db.update', 'db.delete', 'db.sql']);
    expect((s['db.create'].input_schema.properties.model as { enum: string[] }).enum).toEqual(['customers', 'orders']);
    expect((s['db.delete'].input_schema.properties.model as { enum: string[] }).enum).toEqual(['orders']);
    expect(s['db.create'].input_schema.required).toEqual(['model', 'data']);
    expect(s['db.create'].description).toContain('required for customers');
    expect(s['db.update'].description).toContain('Only these fields may be set: customers: name, email, phone.');
  });

  test('approvals, caps and writable fields are described; approvals.status appears with approval rules', () => {
    const s = byName(toolSpecs(withApprovals));
    expect(Object.keys(s)).toContain('approvals.status');
    expect(s['db.update'].description).toContain('Held for human approval: update orders when more than 5 rows change (2 approvers)');
    expect(s['db.delete'].description).toContain('delete orders (1 approver)');
    expect(s['db.update'].description).toContain('At most this many rows per call: orders 50.');
    expect(s['db.update'].description).toContain('Only these fields may be set: orders: status.');
    // customers is not writable here: its rule is not shown.
    expect(s['db.update'].description).not.toContain('update customers');
  });
});

describe('JSON Schema', () => {
  // Strict: an unknown keyword or a meaningless combination fails compile. Type lists
  // (`"type": ["string", "number"]`) are standard JSON Schema; ajv's strict mode only prefers anyOf.
  const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
  const specs = [...toolSpecs(scope.policy), ...toolSpecs(withApprovals).filter((s) => s.name === 'approvals.status')];

  test.each(specs.map((s) => [s.name, s] as const))('%s is a valid draft 2020-12 object schema without references', (_name, spec) => {
    expect(() => ajv.compile(spec.input_schema)).not.toThrow();
    expect(spec.input_schema.type).toBe('object');
    expect(spec.input_schema.additionalProperties).toBe(false);
    const text = JSON.stringify(spec.input_schema);
    expect(text).not.toContain('$ref');
    expect(text).not.toContain('$schema');
    for (const [key, prop] of Object.entries(spec.input_schema.properties)) expect([key, (prop as { description?: string }).description]).toEqual([key, expect.any(String)]);
    expect(spec.description.length).toBeGreaterThan(80);
  });

  // The same arguments, judged by the JSON Schema an agent is given and by the proxy's own validation.
  const samples: Array<[ToolName, unknown, boolean]> = [
    ['db.query', { model: 'orders', where: { status: 'pending', total_cents: { gte: 10, in: [1, 2] }, created_at: null }, order_by: ['-id', { field: 'status', direction: 'desc' }], limit: 5 }, true],
    ['db.query', { model: 'orders', order_by: '-id' }, true],
    ['db.query', { model: 'orders', where: { status: { regex: 'x' } } }, false],
    ['db.query', { model: 'orders', where: { status: {} } }, false],
    ['db.query', { model: 'orders', where: { status: ['a'] } }, false],
    ['db.query', { model: 'orders', limit: -1 }, false],
    ['db.query', { model: 'orders', limit: 1.5 }, false],
    ['db.query', { model: 'orders', extra: 1 }, false],
    ['db.query', {}, false],
    ['db.get', { model: 'orders', id: 1 }, true],
    ['db.get', { model: 'orders', id: { a: 1, b: 'x' } }, true],
    ['db.get', { model: 'orders', id: [1] }, false],
    ['db.aggregate', { model: 'orders', group_by: ['status'], aggregates: [{ fn: 'count' }, { fn: 'sum', field: 'total_cents' }] }, true],
    ['db.aggregate', { model: 'orders', aggregates: [{ fn: 'median', field: 'x' }] }, false],
    ['db.aggregate', { model: 'orders', aggregates: [] }, false],
    ['db.create', { model: 'orders', data: { status: 'x', meta: { a: [1] } }, dry_run: true }, true],
    ['db.create', { model: 'orders', data: {} }, false],
    ['db.create', { model: 'orders', data: { status: 'x' }, reason: 5 }, false],
    ['db.update', { model: 'orders', id: 1, data: { status: 'x' }, reason: 'r' }, true],
    ['db.delete', { model: 'orders', where: { id: { in: [1, 2] } } }, true],
    ['db.sql', { sql: 'SELECT 1', params: [1, 'a', null, true] }, true],
    ['db.sql', { sql: '' }, false],
    ['db.sql', { sql: 'SELECT 1', params: [{ a: 1 }] }, false],
    ['approvals.status', { approval_id: 'appr_1' }, true],
    ['approvals.status', {}, true],
    ['db.describe_schema', { model: 'orders' }, true],
  ];
  test.each(samples)('%s %j valid: %s, by both', (tool, args, valid) => {
    const spec = specs.find((s) => s.name === tool)!;
    const validate = ajv.compile(spec.input_schema);
    expect(validate(args)).toBe(valid);
    let zodValid = true;
    try {
      parseToolArguments(tool, args);
    } catch {
      zodValid = false;
    }
    expect(zodValid).toBe(valid);
  });

  test('the model enum refuses what the policy does not register', () => {
    const validate = ajv.compile(specs.find((s) => s.name === 'db.delete')!.input_schema);
    expect(validate({ model: 'customers', id: 1 })).toBe(false);
    expect(validate({ model: 'orders', id: 1 })).toBe(true);
  });
});

describe('formats', () => {
  const specs = toolSpecs(scope.policy);
  const NAME = /^[a-zA-Z0-9_-]{1,64}$/;

  test('anthropic: Messages API tools[] (name, description, input_schema)', () => {
    const tools = toolSpecsAs(specs, 'anthropic');
    for (const t of tools) {
      expect(Object.keys(t).sort()).toEqual(['description', 'input_schema', 'name']);
      expect(t.name).toMatch(NAME);
      expect(t.input_schema.type).toBe('object');
    }
    expect(tools[1].name).toBe('db_query');
  });

  test('openai: Chat Completions tools[] ({type: function, function: {name, description, parameters}})', () => {
    const tools = toolSpecsAs(specs, 'openai');
    for (const t of tools) {
      expect(Object.keys(t).sort()).toEqual(['function', 'type']);
      expect(t.type).toBe('function');
      expect(Object.keys(t.function).sort()).toEqual(['description', 'name', 'parameters']);
      expect(t.function.name).toMatch(NAME);
      expect(t.function.parameters.type).toBe('object');
    }
  });

  test('mcp: tools/list entries (name, title, description, inputSchema)', () => {
    const tools = toolSpecsAs(specs, 'mcp');
    for (const t of tools) {
      expect(Object.keys(t).sort()).toEqual(['description', 'inputSchema', 'name', 'title']);
      expect(t.name).toMatch(/^[A-Za-z0-9_.-]{1,128}$/);
      expect(canonicalToolName(t.name)).toBe(t.title);
      expect(t.inputSchema.type).toBe('object');
    }
  });

  test('json-schema: one standalone schema per canonical tool name', () => {
    const map = toolSpecsAs(specs, 'json-schema');
    expect(Object.keys(map)).toEqual(specs.map((s) => s.name));
    const ajv = new Ajv2020({ strict: true, allowUnionTypes: true });
    for (const [name, schema] of Object.entries(map)) {
      expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
      expect(schema.title).toBe(name);
      expect(() => ajv.compile(schema)).not.toThrow();
    }
  });

  test('specs are plain JSON (what the CLI prints)', () => {
    for (const format of ['anthropic', 'openai', 'mcp', 'json-schema'] as const) {
      const value = toolSpecsAs(specs, format);
      expect(JSON.parse(JSON.stringify(value))).toEqual(value);
    }
  });
});
