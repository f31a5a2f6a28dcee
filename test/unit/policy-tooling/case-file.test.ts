// The CASES.yaml schema of `ormai-proxy test`: defaults, strictness, principals, and the shipped quickstart suite.
import path from 'node:path';
import { CaseFileError, credentialsFor, loadCaseFile, parseCaseFile, protocolsOf } from '../../../src/policy/tooling/case-file';

const QUICKSTART_SUITE = path.resolve(__dirname, '../../../config/quickstart/policy-tests.yaml');
const principals = { acme: { user: 'tenant1-agent', password: 'tenant1-password' } };
const parse = (doc: unknown) => parseCaseFile(doc, 'cases.yaml');
const one = (c: Record<string, unknown>) => parse({ principals, cases: [{ name: 'c', principal: 'acme', sql: 'SELECT 1', expect: 'allowed', ...c }] }).cases[0];
const issues = (doc: unknown): string => {
  try {
    parse(doc);
  } catch (err) {
    expect(err).toBeInstanceOf(CaseFileError);
    return (err as Error).message;
  }
  throw new Error('expected the case file to be refused');
};

test('defaults: simple protocol, extended with params, timeout 10 s, no principals needed for inline users', () => {
  const file = parse({ cases: [{ name: 'inline', user: 'tenant1-agent', password: 'pw', sql: 'SELECT 1', expect: 'allowed' }] });
  expect(file.timeout_ms).toBe(10000);
  expect(file.principals).toEqual({});
  expect(file.cases[0].protocol).toBe('simple');
  expect(protocolsOf(one({ params: [1] }))).toEqual(['extended']);
  expect(protocolsOf(one({ protocol: 'both' }))).toEqual(['simple', 'extended']);
  expect(credentialsFor(file, file.cases[0])).toEqual({ user: 'tenant1-agent', password: 'pw' });
});

test('a single contains string becomes a list; rows may be objects or arrays', () => {
  const c = one({ contains: 'x', not_contains: ['a', 'b'], rows: [{ id: 1, doc: { a: [1, null] } }, [1, 'x']] });
  expect(c.contains).toEqual(['x']);
  expect(c.not_contains).toEqual(['a', 'b']);
  expect(c.rows).toHaveLength(2);
});

test('unknown keys are errors, at the top and in cases and principals', () => {
  expect(issues({ principals, cases: [], setpu: 'x' })).toMatch(/setpu/);
  expect(issues({ principals, cases: [{ name: 'c', principal: 'acme', sql: 'SELECT 1', expect: 'allowed', expected_rows: [] }] })).toMatch(/cases\.0: Unrecognized key: "expected_rows"/);
  expect(issues({ principals: { a: { user: 'u', password: 'p', tenant: 1 } }, cases: [] })).toMatch(/principals\.a/);
  expect(issues({ principals, cases: [] })).toMatch(/cases: .*(>=1|at least)/i);
});

test('expectations must fit the outcome they describe', () => {
  const base = { name: 'c', principal: 'acme', sql: 'SELECT 1' };
  expect(issues({ principals, cases: [{ ...base, expect: 'allowed', code: 'x' }] })).toMatch(/cases\.0\.code: code and message describe a refusal/);
  expect(issues({ principals, cases: [{ ...base, expect: 'refused', row_count: 0 }] })).toMatch(/cases\.0\.row_count: row_count describes a result/);
  expect(issues({ principals, cases: [{ ...base, expect: 'denied' }] })).toMatch(/cases\.0\.expect/);
  expect(issues({ principals, cases: [{ ...base, expect: 'allowed', params: [1], protocol: 'both' }] })).toMatch(/params need the extended protocol/);
});

test('principals: one of principal or user, known names, one of password or password_env', () => {
  const base = { name: 'c', sql: 'SELECT 1', expect: 'allowed' };
  expect(issues({ principals, cases: [base] })).toMatch(/give either principal or user/);
  expect(issues({ principals, cases: [{ ...base, principal: 'acme', user: 'x', password: 'y' }] })).toMatch(/give either principal or user/);
  expect(issues({ principals, cases: [{ ...base, user: 'x' }] })).toMatch(/user needs password/);
  expect(issues({ principals, cases: [{ ...base, principal: 'globex' }] })).toMatch(/cases\.0\.principal: "globex" is not one of principals \(acme\)/);
  expect(issues({ principals: { a: { user: 'u' } }, cases: [] })).toMatch(/exactly one of password or password_env/);
  expect(issues({ principals, cases: [{ ...base, principal: 'acme' }, { ...base, principal: 'acme' }] })).toMatch(/duplicate case name "c"/);
});

test('password_env reads the environment when the suite runs; unset, a usage error', () => {
  const file = parse({ principals: { ci: { user: 'tenant1-agent', password_env: 'CI_AGENT_PASSWORD' } }, cases: [{ name: 'c', principal: 'ci', sql: 'SELECT 1', expect: 'allowed' }] });
  expect(credentialsFor(file, file.cases[0], { CI_AGENT_PASSWORD: 'from-env' })).toEqual({ user: 'tenant1-agent', password: 'from-env' });
  expect(() => credentialsFor(file, file.cases[0], {})).toThrow(/CI_AGENT_PASSWORD is not set/);
});

test('the shipped quickstart suite is valid and covers the pre-launch probes', () => {
  const suite = loadCaseFile(QUICKSTART_SUITE);
  expect(suite.setup).toBeUndefined();
  const codes = new Set(suite.cases.map((c) => c.code).filter(Boolean));
  for (const code of ['reason_required', 'tenant_forged', 'function_not_allowed', 'catalog_not_allowed', '42703']) expect(codes).toContain(code);
  expect(suite.cases.filter((c) => c.expect === 'allowed' && c.rows).length).toBeGreaterThan(0);
  expect(suite.cases.some((c) => c.contains?.includes('j***@acme.com'))).toBe(true);
});

test('a missing or malformed file is a CaseFileError', () => {
  expect(() => loadCaseFile('/nonexistent/cases.yaml')).toThrow(/cannot read case file .*ENOENT/);
});
