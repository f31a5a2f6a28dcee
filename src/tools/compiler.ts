// The policy's tool compiler for the engine: db.* and domain tool calls to statements, and the two tools that run none (describe_schema, approvals.status).
import type { Principal } from '../auth/principal';
import type { Approval, ApprovalStore } from '../approvals/types';
import type { PolicySnapshot } from '../policy/load';
import type { ScopeProvider } from '../policy/provider';
import { parseToolArguments } from './arguments';
import { compileCall, unknownTool } from './compile';
import { describeSchema } from './describe';
import { toolNamesOf } from './domain';
import type { ToolCompiler } from './engine';
import { canonicalToolName } from './names';
import { redactArguments } from './redact';
import type { CompiledCall, ToolCall } from './types';

/** What the agent sees of one of its approvals: the fields of `SELECT * FROM ormai.approvals`. */
function approvalView(a: Approval): Record<string, unknown> {
  return {
    approval_id: a.id,
    state: a.state,
    operation: a.operation,
    model: a.model,
    rule: a.rule,
    ...(a.reason !== undefined ? { reason: a.reason } : {}),
    created_at: a.createdAt,
    expires_at: a.expiresAt,
    approvals_received: a.approvals.length,
    approvals_required: a.approvers,
    ...(a.result?.rowsAffected !== undefined ? { rows_affected: a.result.rowsAffected } : {}),
    ...(a.result?.error ? { error: a.result.error.code } : {}),
  };
}

/** The principal's own approvals only: its user in its tenant, as ormai.approvals shows them. */
const owns = (principal: Principal, a: Approval | undefined): a is Approval => a !== undefined && a.requester.user === principal.user && a.requester.tenantId === principal.tenantId;

export const policyCompiler: ToolCompiler = {
  async compile(call: ToolCall, policy: PolicySnapshot, _principal: Principal, scopes: ScopeProvider): Promise<CompiledCall> {
    const name = canonicalToolName(call.name, toolNamesOf(policy));
    if (name === undefined) throw unknownTool(call.name, policy);
    const view = await scopes.get(policy);
    return compileCall({ ...call, name }, { scope: view.scope });
  },

  async answer(call, policy, principal, scopes, approvals: ApprovalStore | undefined): Promise<unknown | undefined> {
    const name = canonicalToolName(typeof call.name === 'string' ? call.name : '', toolNamesOf(policy));
    if (name === 'db.describe_schema') {
      const args = parseToolArguments('db.describe_schema', call.arguments ?? {});
      return describeSchema((await scopes.get(policy)).scope, args.model !== undefined ? { model: args.model } : {});
    }
    if (name === 'approvals.status') {
      const args = parseToolArguments('approvals.status', call.arguments ?? {});
      if (!approvals) return { approvals: [] };
      if (args.approval_id !== undefined) {
        const one = await approvals.get(args.approval_id);
        // Another principal's approval reads as no approval at all.
        return { approvals: owns(principal, one) ? [approvalView(one)] : [] };
      }
      const mine = await approvals.list({ user: principal.user, tenantId: principal.tenantId });
      return { approvals: mine.filter((a) => owns(principal, a)).map(approvalView) };
    }
    return undefined;
  },

  async redact(args, policy, scopes) {
    if (!policy) return redactArguments(args, () => false);
    let names: Set<string>;
    try {
      const { scope } = await scopes.get(policy);
      names = new Set<string>();
      for (const t of scope.tables.values()) {
        for (const name of [t.model, t.name, `${t.schema}.${t.name}`]) names.add(name.toLowerCase());
        for (const c of t.columns) names.add(c.name.toLowerCase());
      }
    } catch {
      return redactArguments(args, () => false);
    }
    return redactArguments(args, (name) => names.has(name.toLowerCase()));
  },
};
