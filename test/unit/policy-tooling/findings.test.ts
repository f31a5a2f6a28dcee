// Secret-looking column names, and the one-line form, order, --strict and counts of lint findings.
import { applyStrict, countFindings, formatCounts, formatFinding, LINT_RULES, sortFindings, type Finding } from '../../../src/policy/tooling/findings';
import { secretKind } from '../../../src/policy/tooling/lint-rules';

describe('secretKind', () => {
  test.each([
    ['password', 'password'],
    ['user_passwd', 'password'],
    ['api_key', 'api key'],
    ['stripeApiKey', 'api key'],
    ['apikey', 'api key'],
    ['aws_secret_access_key', 'access key'],
    ['private_key_pem', 'private key'],
    ['ssn', 'social security number'],
    ['customer_SSN', 'social security number'],
    ['credit_card', 'credit card number'],
    ['creditcardnumber', 'credit card number'],
    ['card_number_last4', 'card number'],
    ['cvv', 'card security code'],
    ['pin_code', 'PIN'],
    ['iban', 'bank account number'],
    ['bank_account_number', 'bank account number'],
    ['tax_id', 'tax id'],
    ['refresh_token', 'token'],
    ['password_salt', 'password'],
    ['totp_seed', 'one-time password'],
  ])('%s looks like a %s', (column, kind) => {
    expect(secretKind(column)).toBe(kind);
  });

  test.each(['id', 'email', 'name', 'pinned_at', 'lesson', 'spinner', 'status', 'account_id', 'card_brand', 'passage', 'keyword'])(
    '%s looks harmless',
    (column) => {
      expect(secretKind(column)).toBeUndefined();
    },
  );
});

const f = (severity: Finding['severity'], policy: string, rule: Finding['rule'], subject?: string): Finding => ({
  severity,
  policy,
  rule,
  ...(subject ? { subject } : {}),
  message: `${rule} message`,
});

test('one line per finding: severity, policy, rule, subject, message', () => {
  expect(formatFinding(f('warning', 'quickstart', 'max_scan_rows_missing'))).toBe('warning quickstart max_scan_rows_missing: max_scan_rows_missing message');
  expect(formatFinding(f('error', 'p', 'secret_column_visible', 'people.ssn'))).toBe('error   p secret_column_visible people.ssn: secret_column_visible message');
  expect(formatFinding(f('info', 'p', 'global_table', 'countries'))).toBe('info    p global_table countries: global_table message');
});

test('sorted by policy (file order), severity, rule, subject', () => {
  const sorted = sortFindings(
    [f('info', 'b', 'global_table', 'x'), f('warning', 'a', 'write_reason_optional', 'z'), f('error', 'b', 'catalog_mismatch'), f('warning', 'a', 'write_reason_optional', 'a'), f('error', 'a', 'tenant_column_type', 't')],
    ['b', 'a'],
  );
  expect(sorted.map((x) => `${x.policy} ${x.severity} ${x.subject ?? ''}`)).toEqual(['b error ', 'b info x', 'a error t', 'a warning a', 'a warning z']);
});

test('--strict turns warnings into errors, never info', () => {
  const findings = [f('warning', 'p', 'max_scan_rows_missing'), f('info', 'p', 'global_table', 'c'), f('error', 'p', 'catalog_mismatch')];
  expect(countFindings(findings)).toEqual({ errors: 1, warnings: 1, info: 1 });
  expect(countFindings(applyStrict(findings, true))).toEqual({ errors: 2, warnings: 0, info: 1 });
  expect(applyStrict(findings, false)).toEqual(findings);
  expect(formatCounts({ errors: 1, warnings: 2, info: 0 })).toBe('1 error, 2 warnings, 0 info');
});

test('every rule is documented', () => {
  for (const [rule, doc] of Object.entries(LINT_RULES)) {
    expect(rule).toMatch(/^[a-z_]+$/);
    expect(doc.length).toBeGreaterThan(10);
  }
});
