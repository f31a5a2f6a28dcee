// The generated JSON Schemas: the committed files are current, and every example file passes both them and the zod loaders.
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { configJsonSchema, jsonSchemaFiles, policyJsonSchema, type JsonSchema } from '../../../src/config/json-schema';
import { loadConfig } from '../../../src/config/load';
import { jwtConfigSchema } from '../../../src/auth/jwt';
import { loadPolicyFile, parseStructuredFile, PolicyFileError } from '../../../src/policy/load';

const root = path.resolve(__dirname, '../../..');
const env = { ORMAI_UPSTREAM_URL: 'postgres://proxy:pw@127.0.0.1:5432/app' };

const matching = (dir: string, re: RegExp) =>
  readdirSync(path.join(root, dir))
    .filter((f) => re.test(f))
    .map((f) => path.join(dir, f));

const POLICY_EXAMPLES = ['config/quickstart/policy.yaml', ...matching('test/fixtures', /policy.*\.ya?ml$/), ...matching('bench', /policy.*\.ya?ml$/)];
const CONFIG_EXAMPLES = ['config/quickstart/ormai.yaml', 'bench/ormai.yaml'];

function readDoc(file: string): unknown {
  return parseStructuredFile(readFileSync(path.join(root, file), 'utf8'), file);
}

/**
 * No JSON Schema validator is installed, so this checks the keywords the generated schemas
 * use (the next test fails if they start using another one). Returns the violations.
 */
const ANNOTATIONS = new Set(['$schema', '$id', 'title', 'description', 'default']);
const CHECKED = new Set(['type', 'properties', 'required', 'additionalProperties', 'items', 'anyOf', 'enum', 'minItems', 'minLength', 'pattern', 'minimum', 'maximum', 'exclusiveMinimum', 'propertyNames']);

function violations(schema: JsonSchema, value: unknown, at = '(root)'): string[] {
  const out: string[] = [];
  const s = schema as Record<string, any>;
  if (s.anyOf && !(s.anyOf as JsonSchema[]).some((b) => violations(b, value, at).length === 0)) out.push(`${at}: matches no alternative`);
  if (s.enum && !s.enum.includes(value)) out.push(`${at}: not one of ${s.enum.join(', ')}`);
  const isObject = value !== null && typeof value === 'object' && !Array.isArray(value);
  switch (s.type) {
    case 'object':
      if (!isObject) return [...out, `${at}: expected an object`];
      break;
    case 'array':
      if (!Array.isArray(value)) return [...out, `${at}: expected an array`];
      break;
    case 'integer':
      if (!Number.isInteger(value)) return [...out, `${at}: expected an integer`];
      break;
    case 'string':
    case 'boolean':
    case 'number':
      if (typeof value !== s.type) return [...out, `${at}: expected a ${s.type}`];
      break;
  }
  if (typeof value === 'string') {
    if (s.minLength !== undefined && value.length < s.minLength) out.push(`${at}: shorter than ${s.minLength}`);
    if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(value)) out.push(`${at}: does not match ${s.pattern}`);
  }
  if (typeof value === 'number') {
    if (s.minimum !== undefined && value < s.minimum) out.push(`${at}: below ${s.minimum}`);
    if (s.exclusiveMinimum !== undefined && value <= s.exclusiveMinimum) out.push(`${at}: not above ${s.exclusiveMinimum}`);
    if (s.maximum !== undefined && value > s.maximum) out.push(`${at}: above ${s.maximum}`);
  }
  if (Array.isArray(value)) {
    if (s.minItems !== undefined && value.length < s.minItems) out.push(`${at}: fewer than ${s.minItems} items`);
    if (s.items) value.forEach((v, i) => out.push(...violations(s.items, v, `${at}[${i}]`)));
  }
  if (isObject) {
    const obj = value as Record<string, unknown>;
    for (const key of s.required ?? []) if (!(key in obj)) out.push(`${at}: missing ${key}`);
    for (const [key, v] of Object.entries(obj)) {
      const where = at === '(root)' ? key : `${at}.${key}`;
      if (s.properties && key in s.properties) out.push(...violations(s.properties[key], v, where));
      else if (s.additionalProperties === false) out.push(`${where}: unknown key`);
      else if (s.additionalProperties && typeof s.additionalProperties === 'object') out.push(...violations(s.additionalProperties, v, where));
    }
  }
  return out;
}

/** Every schema node, with its location. */
function* nodes(schema: JsonSchema, at = '#'): Generator<[string, Record<string, any>]> {
  yield [at, schema];
  const s = schema as Record<string, any>;
  for (const [key, child] of Object.entries(s.properties ?? {})) yield* nodes(child as JsonSchema, `${at}/properties/${key}`);
  for (const [i, b] of (s.anyOf ?? []).entries()) yield* nodes(b, `${at}/anyOf/${i}`);
  if (s.items) yield* nodes(s.items, `${at}/items`);
  if (s.additionalProperties && typeof s.additionalProperties === 'object') yield* nodes(s.additionalProperties, `${at}/additionalProperties`);
  if (s.propertyNames) yield* nodes(s.propertyNames, `${at}/propertyNames`);
}

describe('the committed JSON Schemas', () => {
  test.each(Object.entries(jsonSchemaFiles()))('config/%s is what the code generates', (name, generated) => {
    const committed = readFileSync(path.join(root, 'config', name), 'utf8');
    if (committed !== generated) throw new Error(`config/${name} is out of date: run \`npm run schema\` and commit the result`);
  });

  test.each([
    ['policy', policyJsonSchema()],
    ['ormai.yaml', configJsonSchema()],
  ])('the %s schema forbids unknown keys everywhere, describes every key, and uses only checked keywords', (_name, schema) => {
    expect(schema).toMatchObject({ $id: expect.any(String), title: expect.any(String), description: expect.any(String) });
    for (const [at, node] of nodes(schema)) {
      for (const keyword of Object.keys(node)) {
        if (!ANNOTATIONS.has(keyword) && !CHECKED.has(keyword)) throw new Error(`${at}: keyword ${keyword} is not checked by this test`);
      }
      if (node.type === 'object' && node.properties) expect({ at, additionalProperties: node.additionalProperties }).toEqual({ at, additionalProperties: false });
      for (const [key, child] of Object.entries(node.properties ?? {})) {
        expect({ at: `${at}/${key}`, description: typeof (child as JsonSchema).description }).toEqual({ at: `${at}/${key}`, description: 'string' });
      }
    }
  });

  test('the policy schema requires name and models; the config schema requires policies', () => {
    expect(policyJsonSchema().required).toEqual(['name', 'models']);
    expect(configJsonSchema().required).toEqual(['policies']);
  });

  test('auth.jwt in the config schema is the JWT module\'s schema', () => {
    const jwt = (configJsonSchema() as any).properties.auth.properties.jwt;
    expect(jwt).toMatchObject({ type: 'object', required: ['algorithms'], additionalProperties: false });
    expect(Object.keys(jwt.properties)).toEqual(Object.keys(jwtConfigSchema.shape));
  });
});

describe('the example files', () => {
  test('are found', () => {
    expect(POLICY_EXAMPLES.length).toBeGreaterThanOrEqual(6);
  });

  test.each(POLICY_EXAMPLES)('%s passes the JSON Schema and the policy loader', (file) => {
    expect(violations(policyJsonSchema(), readDoc(file))).toEqual([]);
    expect(loadPolicyFile(path.join(root, file)).hash).toMatch(/^[0-9a-f]{64}$/);
  });

  test.each(CONFIG_EXAMPLES)('%s passes the JSON Schema and the config loader', (file) => {
    expect(violations(configJsonSchema(), readDoc(file))).toEqual([]);
    expect(loadConfig(path.join(root, file), env).policies.length).toBeGreaterThan(0);
  });

  test('the quickstart files point editors at the schemas', () => {
    expect(readFileSync(path.join(root, 'config/quickstart/policy.yaml'), 'utf8')).toMatch(/^# yaml-language-server: \$schema=\.\.\/policy\.schema\.json\n/);
    expect(readFileSync(path.join(root, 'config/quickstart/ormai.yaml'), 'utf8')).toMatch(/^# yaml-language-server: \$schema=\.\.\/ormai\.schema\.json\n/);
  });
});

describe('both validators agree on bad files', () => {
  const base = readDoc('config/quickstart/policy.yaml') as Record<string, any>;
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['an unknown top-level key', { ...base, max_rowz: 5 }, /max_rowz/],
    ['an unknown nested key', { ...base, tenant_scope: { ...base.tenant_scope, colum: 'x' } }, /colum/],
    ['a missing required key', { name: 'x' }, /models/],
    ['a wrong enum value', { ...base, profile: 'staging' }, /profile/],
    ['a bad field reference', { ...base, mask_fields: ['email'] }, /mask_fields/],
  ];

  test.each(cases)('%s is rejected by both', (_what, doc, named) => {
    expect(violations(policyJsonSchema(), doc).join('\n')).toMatch(named);
    const file = path.join(os.tmpdir(), `ormai-json-schema-${process.pid}-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(doc));
    try {
      expect(() => loadPolicyFile(file)).toThrow(PolicyFileError);
      expect(() => loadPolicyFile(file)).toThrow(named);
    } finally {
      rmSync(file, { force: true });
    }
  });

  test('a config with auth.jwt passes both; an unknown JWT key fails the JSON Schema and the JWT schema', () => {
    const jwt = { algorithms: ['RS256'], public_key_file: 'jwt.pub.pem', issuer: 'https://issuer.example', claims: { tenant: 'tenant_id' } };
    expect(violations(configJsonSchema(), { policies: ['p.yaml'], auth: { jwt } })).toEqual([]);
    expect(jwtConfigSchema.safeParse(jwt).success).toBe(true);
    const bad = { ...jwt, algorithm: 'RS256' };
    expect(violations(configJsonSchema(), { policies: ['p.yaml'], auth: { jwt: bad } }).join('\n')).toMatch(/auth\.jwt\.algorithm: unknown key/);
    expect(jwtConfigSchema.safeParse(bad).success).toBe(false);
  });
});
