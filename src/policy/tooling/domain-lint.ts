// `ormai-proxy check` for domain tools: each statement compiles with its parameters and passes the proxy's analysis under the policy.
//
// Without the database: the statement parses as one statement, its parameters match, and the
// analysis that needs no catalog passes (no DDL or session command, writes granted, functions
// allowed). With it: the full analysis against the live schema, as a call is analysed in an
// agent's session (unknown tables, everything the rewrite refuses), and then PostgreSQL's own
// PREPARE of the text that session would send (hidden columns, types).
import { analyze } from '../../analysis/pipeline';
import type { AnalysisContext } from '../../analysis/types';
import type { Principal } from '../../auth/principal';
import { DomainToolError, domainToolTemplate, type DomainToolTemplate } from '../domain-tools';
import type { PolicySnapshot } from '../load';
import type { TenantType } from '../schema';
import type { ReadScope } from '../scope';
import type { Finding } from './findings';

/** A tenant id of each type, for analysing as some principal of the policy (nothing runs). */
const SAMPLE_TENANT: Record<TenantType, string> = { integer: '1', bigint: '1', text: 'ormai-check', uuid: '00000000-0000-0000-0000-000000000001' };

/** The subject of a finding: the tool, by its index and name. */
const subject = (i: number, name: string) => `tools[${i}] ${name}`;

/** Each tool whose statement does not compile (parse, one statement, parameters): domain_tool_invalid. Needs the parser. */
export function domainTemplateFindings(policy: PolicySnapshot): Finding[] {
  const out: Finding[] = [];
  policy.raw.tools.forEach((tool, i) => {
    try {
      domainToolTemplate(tool);
    } catch (err) {
      if (!(err instanceof DomainToolError)) throw err;
      out.push({ severity: 'error', policy: policy.name, rule: 'domain_tool_invalid', subject: subject(i, tool.name), message: err.message.replace(`tool ${tool.name}: `, '') });
    }
    const tenant = policy.raw.tenant_scope?.column.toLowerCase();
    if (tenant !== undefined && Object.keys(tool.params).includes(tenant)) {
      out.push({
        severity: 'warning',
        policy: policy.name,
        rule: 'domain_tool_tenant_param',
        subject: subject(i, tool.name),
        message: `takes the tenant column ${tenant} as a parameter: the proxy scopes the statement to the caller's tenant whatever the agent passes, so the parameter can only narrow it to nothing; drop it`,
      });
    }
  });
  return out;
}

/**
 * Each compiling tool the proxy's analysis refuses: domain_tool_refused, with the refusal's code
 * and message. `scope`: the policy compiled against the live catalog; without one, only what
 * needs no catalog is checked.
 */
export function domainAnalysisFindings(policy: PolicySnapshot, scope: ReadScope | undefined): Finding[] {
  const out: Finding[] = [];
  policy.raw.tools.forEach((tool, i) => {
    let template: DomainToolTemplate;
    try {
      template = domainToolTemplate(tool);
    } catch (err) {
      if (err instanceof DomainToolError) return; // domain_tool_invalid already says why
      throw err;
    }
    const analysis = analyze(checkedText(template), context(policy, scope));
    if (analysis.ok) return;
    const { code, message } = analysis.error;
    out.push({
      severity: 'error',
      policy: policy.name,
      rule: 'domain_tool_refused',
      subject: subject(i, tool.name),
      message: `the proxy refuses its statement (${code}: ${message})${scope ? '' : ' [checked without the database]'}`,
    });
  });
  return out;
}

/** A write is analysed with a reason, as a call with one is: giving it is the agent's part, not the tool's. */
function checkedText(template: DomainToolTemplate): string {
  return template.writes.length > 0 ? `/*reason='ormai-proxy%20check'*/ ${template.sql}` : template.sql;
}

function context(policy: PolicySnapshot, scope: ReadScope | undefined): AnalysisContext {
  const base: AnalysisContext = { protocol: 'extended', statementTimeoutMaxMs: policy.statementTimeoutMs, writeGate: (target) => policy.isWriteAllowed(target) };
  if (!scope) return base;
  const role = policy.raw.require_principal_role;
  const principal: Principal = {
    user: 'ormai-proxy-check',
    subject: 'ormai-proxy-check',
    tenantId: SAMPLE_TENANT[policy.raw.tenant_scope?.type ?? 'integer'],
    roles: role ? [role] : [],
    authMethod: 'password',
    database: scope.catalog.database,
  };
  return { ...base, scope, principal };
}

/** PostgreSQL's verdict on a statement it does not run (check.ts: PREPARE upstream); undefined when it accepts it. */
export type Preparer = (sql: string) => Promise<string | undefined>;

/**
 * The statement each tool the analysis allows would forward, checked by PostgreSQL itself: the
 * analysis leaves column names to the database (a hidden column reads as "does not exist" only
 * there), so a tool naming one fails here with the agent's own error.
 */
export async function domainPrepareFindings(policy: PolicySnapshot, scope: ReadScope, prepare: Preparer): Promise<Finding[]> {
  const out: Finding[] = [];
  for (const [i, tool] of policy.raw.tools.entries()) {
    let template: DomainToolTemplate;
    try {
      template = domainToolTemplate(tool);
    } catch (err) {
      if (err instanceof DomainToolError) continue;
      throw err;
    }
    const analysis = analyze(checkedText(template), context(policy, scope));
    if (!analysis.ok) continue; // domain_tool_refused already says why
    const refusal = await prepare(analysis.sql);
    if (refusal === undefined) continue;
    out.push({ severity: 'error', policy: policy.name, rule: 'domain_tool_refused', subject: subject(i, tool.name), message: `the database refuses its statement as the agent's session would send it (${refusal})` });
  }
  return out;
}
