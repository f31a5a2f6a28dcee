// Writes a require_approval rule holds: counted first when the rule is about affected rows, then stored and answered with pending_approval.
import type { ApprovalNeed, WriteInfo } from '../analysis/rewrite/writes';
import { ApprovalError, type ApprovalStore } from '../approvals/types';
import type { Principal } from '../auth/principal';
import { PlannerStatementError, type PlanParams, type Planner } from '../budgets/planner';
import { tooManyRows } from '../analysis/rewrite/write-limits';
import { ProxyError } from '../errors/catalogue';
import type { Logger } from '../log';
import type { PolicySnapshot } from '../policy/load';

export interface HoldDeps {
  approvals?: ApprovalStore;
  /** approvals.max_pending_per_tenant; absent: no bound. */
  config?: { raw: { approvals: { max_pending_per_tenant?: number } } };
  planner: Planner;
  principal: Principal;
  policy: PolicySnapshot;
  log: Logger;
}

export interface HeldWrite {
  write: WriteInfo & { approval: ApprovalNeed };
  /** The rewritten statement: what the proxy runs once the write is approved. */
  statementSql: string;
  originalSql: string;
  params: PlanParams;
}

const OPERATIONS = { insert: 'create', update: 'update', delete: 'delete' } as const;

const TEXT_OID = 25;

/**
 * A rule's field condition for this write's values, as PostgreSQL judges it (fieldCheckSql: each
 * value converted to the column's type, with the types the client declared for its parameters).
 * A value it cannot judge may be anything: the rule holds.
 */
async function fieldHolds(deps: HoldDeps, need: ApprovalNeed, params: PlanParams): Promise<boolean> {
  if (need.fieldCheckSql === undefined) return true;
  try {
    return (await deps.planner.rows(need.fieldCheckSql, unusedAsText(params, need.fieldCheckParams), deps.principal.tenantId, deps.policy.statementTimeoutMs)) !== 'f';
  } catch (err) {
    deps.log.warn({ err: (err as Error).message }, "could not judge a write's value against an approval rule; holding it");
    return true;
  }
}

/**
 * The write's parameters for its count: those the count does not name are declared text (a
 * type PostgreSQL could not infer from a statement that never uses them); the others keep the
 * type the client declared, or none, for the server to infer.
 */
export function unusedAsText(params: PlanParams, used: readonly number[] | undefined): PlanParams {
  if (used === undefined) return params;
  const named = new Set(used);
  const types = params.values.map((_, i) => (named.has(i + 1) ? params.types[i] ?? 0 : params.types[i] || TEXT_OID));
  return { ...params, types };
}

/**
 * Undefined when the write may run now (no rule holds it: too few rows, values the rules do not
 * name); otherwise the refusal the agent receives: pending_approval with the approval's id, or
 * why the write could not be held (`cannotHold`: where it was sent). Never runs the write itself.
 * A write sent unheld carries a guard that judges the rules again as it runs (approvalGuard).
 */
export async function holdForApproval(deps: HoldDeps, held: HeldWrite, cannotHold?: ProxyError): Promise<ProxyError | undefined> {
  const first = held.write.approval;
  // One count serves the cap and every rule on affected rows: they are all about this write's rows.
  let counting: Promise<number | undefined> | undefined;
  // The same count for every rule of the chain (the first may be a rule on values, which carries none).
  let counter: ApprovalNeed | undefined = first;
  while (counter && counter.countSql === undefined) counter = counter.otherwise;
  const count = (): Promise<number | undefined> =>
    (counting ??= counter?.countSql === undefined
      ? Promise.resolve(undefined)
      : deps.planner.countRows(counter.countSql, unusedAsText(held.params, counter.countParams), deps.principal.tenantId, deps.policy.statementTimeoutMs).catch((err: unknown) => {
          // Rows that cannot be counted may be any number: the rule holds (fail closed); the cap is checked when it runs.
          deps.log.warn({ err: (err as Error).message }, 'could not count the rows of a write; holding it for approval');
          return undefined;
        }));
  // Over the cap it could only fail once approved: refused now, with the cap's own code.
  if (first.maxAffectedRows !== undefined) {
    const rows = await count();
    if (rows !== undefined && rows > first.maxAffectedRows) return tooManyRows(rows, first.maxAffectedRows);
  }
  // The rules in the policy's order: the first whose condition holds for this write's values and rows.
  let approval: ApprovalNeed | undefined = first;
  for (; approval; approval = approval.otherwise) {
    if (!(await fieldHolds(deps, approval, held.params))) continue;
    if (approval.affectedRowsGt !== undefined) {
      const rows = await count();
      if (rows !== undefined && rows <= approval.affectedRowsGt) continue;
    }
    break;
  }
  if (!approval) return undefined;
  // Sent where it cannot wait (inside a transaction block, in a multi-statement text): refused.
  if (cannotHold) return cannotHold;
  if (!deps.approvals) {
    return new ProxyError('statement_not_allowed', { message: 'this write needs an approval, and this proxy has no approval store', hint: 'Ask a human operator to make this change.' });
  }
  // A statement that names a column the table does not have is refused now, as one that names a
  // hidden column is, not held: otherwise holding it would tell a hidden column from a missing one.
  const invalid = await missingColumn(deps, held);
  if (invalid) return invalid;
  // Each held write keeps its statement until it is decided or expires: one tenant's are bounded
  // (the store counts and creates as one step).
  const limit = deps.config?.raw.approvals.max_pending_per_tenant;
  const params = textParams(held.params);
  if (!params) {
    return new ProxyError('statement_not_allowed', {
      message: 'a write held for approval must send its parameters in text format',
      hint: 'Send the parameters as text (most drivers do by default), or put the values in the statement.',
    });
  }
  const { principal, policy } = deps;
  // The approvers approve what they see, and the executor checks the write against it: a write
  // without one is not held.
  const preview = approval.previewSql === undefined ? undefined : await readPreview(deps, approval.previewSql, held.params);
  // Every row the write matches, hashed: what the executor checks past the 100 the preview lists.
  const digest = preview === undefined || approval.previewDigestSql === undefined ? undefined : await readDigest(deps, approval.previewDigestSql, held.params);
  if (preview === undefined || (approval.previewDigestSql !== undefined && digest === undefined)) {
    return new ProxyError('statement_not_allowed', {
      message: `this write needs approval (${approval.rule}), and its dry run ${approval.previewSql === undefined ? 'cannot show its rows' : 'could not be read'}: approvers would see nothing, so it is not held`,
      hint: "Write it so that /*dry_run='true'*/ shows its rows (plain SET col = value, INSERT … VALUES, no ON CONFLICT), then send it again.",
    });
  }
  const request = {
    requester: { user: principal.user, tenantId: principal.tenantId, roles: [...principal.roles] },
    policy: { name: policy.name, hash: policy.hash },
    rule: approval.rule,
    operation: OPERATIONS[held.write.op],
    model: held.write.model,
    ...(held.write.reason ? { reason: held.write.reason } : {}),
    originalSql: held.originalSql,
    // Without the guard it carries when sent unheld (write-limits.ts, approvalGuard): approved, it runs.
    statementSql: held.write.approval.statementSql ?? held.statementSql,
    params,
    // The statement appends the capture columns: the executor names them with this plan, as the session would.
    ...(held.write.capture ? { capture: held.write.capture } : {}),
    preview,
    previewSql: approval.previewSql,
    ...(approval.previewDigestSql !== undefined ? { previewDigestSql: approval.previewDigestSql, previewDigest: digest, timeColumns: approval.timeColumns ?? [] } : {}),
    ...(approval.comparedColumns ? { compared: approval.comparedColumns } : {}),
    approvers: approval.approvers,
    expiresInS: approval.expiresInS,
  };
  let created;
  try {
    created = await deps.approvals.create(request, undefined, limit);
  } catch (err) {
    if (err instanceof ApprovalError && err.code === 'approval_limit_reached') {
      return new ProxyError('approval_limit_reached', { message: `${limit} writes of this tenant already wait for approval, as many as the proxy holds` });
    }
    throw err;
  }
  deps.log.info({ code: 'pending_approval', approval: created.id }, 'write held for approval');
  return new ProxyError('pending_approval', {
    message: `the write is held for approval ${created.id} (${approval.rule}); it expires at ${created.expiresAt}`,
    detail: `approval_id=${created.id} expires_at=${created.expiresAt} approvers=${approval.approvers}`,
  });
}

/** column_not_found, worded as PostgreSQL words it, when PostgreSQL cannot find a column the held write names. */
async function missingColumn(deps: HoldDeps, held: HeldWrite): Promise<ProxyError | undefined> {
  try {
    await deps.planner.check(held.statementSql, held.params, deps.principal.tenantId, deps.policy.statementTimeoutMs);
  } catch (err) {
    // Anything else fails, if it does, when the write runs; the approvers see it held.
    if (err instanceof PlannerStatementError && err.sqlstate === '42703') return new ProxyError('column_not_found', { message: err.message });
  }
  return undefined;
}

/** The dry-run rows the approvers see; a preview that cannot be read is left out, never guessed. */
async function readPreview(deps: HoldDeps, sql: string, params: PlanParams): Promise<unknown> {
  return readHeld(deps, sql, params, 'the preview', (text) => JSON.parse(text) as unknown);
}

/** The hash of the write's rows (ApprovalNeed.previewDigestSql); undefined when it cannot be read. */
async function readDigest(deps: HoldDeps, sql: string, params: PlanParams): Promise<string | undefined> {
  return readHeld(deps, sql, params, 'the rows', (text) => text);
}

/** A held write's statement read on the planner, as `read` takes its text; undefined (with a warning) when it cannot be. */
async function readHeld<T>(deps: HoldDeps, sql: string, params: PlanParams, what: string, read: (text: string) => T): Promise<T | undefined> {
  try {
    return read(await deps.planner.rows(sql, params, deps.principal.tenantId, deps.policy.statementTimeoutMs));
  } catch (err) {
    deps.log.warn({ err: (err as Error).message }, `could not read ${what} of a held write`);
    return undefined;
  }
}

/** Parameter values as text, as the executor sends them; undefined when one is in binary format. */
function textParams(params: PlanParams): Array<string | null> | undefined {
  const out: Array<string | null> = [];
  for (let i = 0; i < params.values.length; i++) {
    const v = params.values[i];
    const format = params.formats.length === 0 ? 0 : params.formats.length === 1 ? params.formats[0] : params.formats[i];
    if (v === null) out.push(null);
    else if (format !== 0) return undefined;
    else out.push(v.toString('utf8'));
  }
  return out;
}
