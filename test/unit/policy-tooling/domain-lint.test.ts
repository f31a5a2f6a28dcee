// `ormai-proxy check` on domain tools: statements that do not compile, and statements the proxy's analysis refuses, without and with the catalog; each finding names the tool.
import { initAnalysis } from '../../../src/analysis/pipeline';
import { buildPolicy, loadPolicyFile } from '../../../src/policy/load';
import { policySchema } from '../../../src/policy/schema';
import type { Finding } from '../../../src/policy/tooling/findings';
import { lintPolicy } from '../../../src/policy/tooling/lint-rules';
import path from 'node:path';
import { quickstartCatalog } from '../analysis/rewrite-scope';

const FIXTURE = path.resolve(__dirname, '../../fixtures/domain-tools-policy.yaml');
const int = { type: 'integer', description: 'x' };
const tool = (name: string, sql: string, params: Record<string, unknown> = {}) => ({ name, description: 'A tool.', sql, params });

/**
 * Built at module scope, before beforeAll loads the parser: a policy loaded with the parser
 * refuses a tool that does not compile, and `check` loads the files before it too.
 */
const policy = buildPolicy(
  policySchema.parse({
    ...loadPolicyFile(FIXTURE).raw,
    tools: [
      tool('bad.ddl', 'DROP TABLE orders'),
      tool('bad.unknown_table', 'SELECT * FROM invoices'),
      tool('bad.unregistered', 'SELECT * FROM internal_notes'),
      tool('bad.delete', 'DELETE FROM orders WHERE id = :id', { id: int }),
      tool('bad.function', "SELECT pg_read_file('/etc/passwd')"),
      tool('bad.session', 'SET statement_timeout = 0'),
      tool('bad.syntax', 'SELEC 1'),
      tool('bad.undeclared', 'SELECT :a, :b', { a: int }),
      tool('bad.tenant', 'SELECT count(*) FROM orders WHERE tenant_id = :tenant_id', { tenant_id: int }),
      tool('ok.read', 'SELECT email FROM customers WHERE id = :id', { id: int }),
      tool('ok.write', "UPDATE orders SET status = 'shipped' WHERE id = :id", { id: int }),
    ],
  }),
  'domain-lint.yaml',
);

beforeAll(() => initAnalysis());

const brief = (findings: Finding[]) => findings.filter((f) => f.rule.startsWith('domain_tool')).map((f) => `${f.severity} ${f.rule} ${f.subject}`);

test('the fixture lints clean, with and without the catalog', () => {
  const fixture = loadPolicyFile(FIXTURE);
  expect(lintPolicy(fixture, undefined)).toEqual([]);
  expect(lintPolicy(fixture, quickstartCatalog())).toEqual([]);
});

test('without the database: parse, parameters, and what the analysis refuses without a catalog', () => {
  const findings = lintPolicy(policy, undefined);
  expect(brief(findings)).toEqual([
    'error domain_tool_invalid tools[6] bad.syntax',
    'error domain_tool_invalid tools[7] bad.undeclared',
    'warning domain_tool_tenant_param tools[8] bad.tenant',
    'error domain_tool_refused tools[0] bad.ddl',
    'error domain_tool_refused tools[3] bad.delete',
    'error domain_tool_refused tools[4] bad.function',
    'error domain_tool_refused tools[5] bad.session',
  ]);
  const by = (name: string) => findings.find((f) => f.subject?.endsWith(name))!;
  expect(by('bad.ddl')).toMatchObject({ policy: 'domain-tools', message: expect.stringMatching(/^the proxy refuses its statement \(statement_not_allowed: DROP TABLE is not allowed\) \[checked without the database\]$/) });
  expect(by('bad.delete').message).toMatch(/model_writes_disabled: DELETE on orders is not allowed/);
  expect(by('bad.syntax').message).toBe('the sql does not parse: syntax error at or near "SELEC"');
  expect(by('bad.undeclared').message).toMatch(/^the sql uses :b, not declared under params/);
});

test('with the catalog: the full analysis, as in an agent\'s session', () => {
  const refused = brief(lintPolicy(policy, quickstartCatalog())).filter((f) => f.includes('refused'));
  expect(refused).toEqual([
    'error domain_tool_refused tools[0] bad.ddl',
    'error domain_tool_refused tools[1] bad.unknown_table',
    'error domain_tool_refused tools[2] bad.unregistered',
    'error domain_tool_refused tools[3] bad.delete',
    'error domain_tool_refused tools[4] bad.function',
    'error domain_tool_refused tools[5] bad.session',
  ]);
  const unknown = lintPolicy(policy, quickstartCatalog()).find((f) => f.subject === 'tools[1] bad.unknown_table')!;
  expect(unknown.message).toBe('the proxy refuses its statement (model_not_allowed: relation "invoices" does not exist)');
});
