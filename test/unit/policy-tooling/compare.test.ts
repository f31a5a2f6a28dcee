// Comparing a regression case with what the proxy did: one readable difference, or none.
import { parseCaseFile } from '../../../src/policy/tooling/case-file';
import { compareOutcome, valueEquals, type Outcome } from '../../../src/policy/tooling/outcome';

const testCase = (c: Record<string, unknown>) =>
  parseCaseFile({ cases: [{ name: 'c', user: 'u', password: 'p', sql: 'SELECT 1', ...c }] }, 'cases.yaml').cases[0];
const allowed = (fields: string[], rows: unknown[][], rowCount = rows.length): Outcome => ({ kind: 'allowed', fields, rows, rowCount });
const refused = (code: string | undefined, sqlstate: string, message: string): Outcome => ({ kind: 'refused', ...(code ? { code } : {}), sqlstate, message });

const customers = allowed(['id', 'email'], [
  [1, 'j***@acme.com'],
  [2, 'j***@acmelabs.com'],
]);

test('values: a number in the file matches int8/numeric text; objects and arrays deeply', () => {
  expect(valueEquals(4, '4')).toBe(true);
  expect(valueEquals(4, '4.0')).toBe(false);
  expect(valueEquals('4', 4)).toBe(false);
  expect(valueEquals(null, null)).toBe(true);
  expect(valueEquals({ a: [1, { b: null }] }, { a: [1, { b: null }] })).toBe(true);
  expect(valueEquals({ a: 1 }, { a: 1, b: 2 })).toBe(false);
  expect(valueEquals([1], { 0: 1 })).toBe(false);
});

test('allowed with the expected rows passes; objects by name, arrays by position', () => {
  expect(compareOutcome(testCase({ expect: 'allowed', rows: [{ id: 1, email: 'j***@acme.com' }, { email: 'j***@acmelabs.com', id: 2 }] }), customers)).toBeUndefined();
  expect(compareOutcome(testCase({ expect: 'allowed', rows: [[1, 'j***@acme.com'], [2, 'j***@acmelabs.com']] }), customers)).toBeUndefined();
  expect(compareOutcome(testCase({ expect: 'allowed', row_count: 2, contains: '@acme.com', not_contains: 'jane' }), customers)).toBeUndefined();
});

test('row differences name the row and both values', () => {
  expect(compareOutcome(testCase({ expect: 'allowed', rows: [{ id: 1, email: 'jane@acme.com' }, { id: 2, email: 'j***@acmelabs.com' }] }), customers)).toBe(
    'row 1: expected {"id":1,"email":"jane@acme.com"}, got {"id":1,"email":"j***@acme.com"}',
  );
  expect(compareOutcome(testCase({ expect: 'allowed', rows: [[1, 'j***@acme.com']] }), customers)).toBe('expected 1 row, got 2, first extra {"id":2,"email":"j***@acmelabs.com"}');
  expect(compareOutcome(testCase({ expect: 'allowed', rows: [] }), allowed(['id'], [], 0))).toBeUndefined();
  expect(compareOutcome(testCase({ expect: 'allowed', row_count: 3 }), customers)).toBe('expected row_count 3, got 2');
  expect(compareOutcome(testCase({ expect: 'allowed', contains: ['acme', 'globex'] }), customers)).toMatch(/^the rows do not contain "globex"/);
  expect(compareOutcome(testCase({ expect: 'allowed', not_contains: 'acmelabs' }), customers)).toBe('the rows contain "acmelabs"');
});

test('refusals: the policy code or the SQLSTATE, and a message substring', () => {
  const forged = refused('tenant_forged', '42501', 'tenant_forged: "tenant_id" must be your own tenant');
  expect(compareOutcome(testCase({ expect: 'refused' }), forged)).toBeUndefined();
  expect(compareOutcome(testCase({ expect: 'refused', code: 'tenant_forged' }), forged)).toBeUndefined();
  expect(compareOutcome(testCase({ expect: 'refused', code: '42501', message: 'your own tenant' }), forged)).toBeUndefined();
  expect(compareOutcome(testCase({ expect: 'refused', code: 'reason_required' }), forged)).toBe(
    'expected code reason_required, got tenant_forged, SQLSTATE 42501: tenant_forged: "tenant_id" must be your own tenant',
  );
  const missing = refused(undefined, '42703', 'column "api_secret" does not exist');
  expect(compareOutcome(testCase({ expect: 'refused', code: '42703' }), missing)).toBeUndefined();
  expect(compareOutcome(testCase({ expect: 'refused', message: 'permission' }), missing)).toBe('expected a message containing "permission", got SQLSTATE 42703: column "api_secret" does not exist');
});

test('the wrong outcome altogether', () => {
  expect(compareOutcome(testCase({ expect: 'allowed' }), refused('reason_required', '42501', 'needs a reason'))).toBe('expected allowed, got refused (reason_required, SQLSTATE 42501: needs a reason)');
  expect(compareOutcome(testCase({ expect: 'refused', code: 'x' }), customers)).toBe('expected refused (x), got allowed with 2 rows: [{"id":1,"email":"j***@acme.com"},{"id":2,"email":"j***@acmelabs.com"}]');
  expect(compareOutcome(testCase({ expect: 'refused' }), allowed([], [], 1))).toBe('expected refused, got allowed with 1 row');
  expect(compareOutcome(testCase({ expect: 'allowed' }), { kind: 'failed', message: 'Query read timeout' })).toBe('could not run: Query read timeout');
});
