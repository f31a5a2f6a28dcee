// Write targets under the policy (I1, I2, I3, I5): grants, reasons, writable columns, the tenant on every target row; references and RETURNING in write-target.ts, row caps and approvals in write-limits.ts.
//
// Reads inside a write (FROM, USING, subqueries, CTEs) are already derived tables. The target
// itself cannot be: PostgreSQL writes to the real table, and every column of it is in scope
// in SET, WHERE, ON CONFLICT and RETURNING, hidden ones included. So the target gets
// explicit checks: its tenant predicate (and row filter) is ANDed into the statement, every
// column reference that could reach a hidden or masked column of it is resolved
// (write-target.ts), and an INSERT's rows get the proxy's tenant (insert-rows.ts), which
// tenant-binding.ts checks again on the tree that is forwarded.
import type { ColumnRef, DeleteStmt, InsertStmt, Node, OnConflictClause, ResTarget, SelectStmt, UpdateStmt } from '@pgsql/types';
import type { Principal } from '../../auth/principal';
import { ProxyError } from '../../errors/catalogue';
import type { WriteRule } from '../../policy/load';
import { UNREADABLE_DRY_RUN } from '../comments';
import type { ReadScope } from '../../policy/scope';
import { nodeBody, nodeTypeOf } from '../types';
import { deparseVerified } from '../deparse';
import { addCapture, type CapturePlan } from './capture';
import { checkedReferences, checkedValue } from './foreign-keys';
import { guardedWhere } from './guard-order';
import { previewDelete, previewInsert, previewUpdate } from './dry-run';
import { bindTenant, checkInsert, checkRowReferences } from './insert-rows';
import { andExpr, cloneTree, parseTemplate, quoteIdent, walk } from './nodes';
import { NO_CTES, type CteScope } from './source-arity';
import { tenantLiteral } from './tenant';
import { affectedRowsCount, approvalGuard, approvalNeed, capAffectedRows, guardInsertValues, judgesInsertValues, type ApprovalNeed } from './write-limits';
import { checkReferences, checkWritable, refName, resolveTarget, returningItems, rewriteReturning, type Op, type Target } from './write-target';

export { AFFECTED_ROWS_MARKER, tooManyRows, type ApprovalNeed } from './write-limits';

/** What the session and the audit trail need to know about a write. */
export interface WriteInfo {
  op: Op;
  /** `schema.table` of the target. */
  table: string;
  model: string;
  /** Columns the statement assigns (INSERT column list, SET targets, ON CONFLICT DO UPDATE SET). */
  assigned: string[];
  reason?: string;
  /** Set when a require_approval rule matches (or may match, see `affectedRowsGt`): the session holds the write. */
  approval?: ApprovalNeed;
  /** A dry run: `preview` replaces the write, which is never sent. */
  dryRun?: boolean;
  /** The capture columns appended to RETURNING (undefined: nothing captured, e.g. no primary key). */
  capture?: CapturePlan;
  /** The target's columns the agent cannot see: the database's errors must not name them. */
  hidden: string[];
}

/** What guardWrite made of a write: its description, and for a dry run the SELECT that replaces it. */
export interface GuardedWrite {
  info: WriteInfo;
  preview?: SelectStmt;
}

const OP_NAMES: Record<Op, string> = { insert: 'INSERT', update: 'UPDATE', delete: 'DELETE' };

/**
 * Checks and rewrites, in place, a top-level INSERT, UPDATE or DELETE (the caller has refused
 * writes nested in WITH). Returns undefined for any other statement.
 */
export function guardWrite(
  tree: Node,
  scope: ReadScope,
  principal: Principal,
  tags: Record<string, string>,
  explain = false,
  captureWrites = true,
  ctes: CteScope = NO_CTES,
): GuardedWrite | undefined {
  const type = nodeTypeOf(tree);
  const op: Op | undefined = type === 'InsertStmt' ? 'insert' : type === 'UpdateStmt' ? 'update' : type === 'DeleteStmt' ? 'delete' : undefined;
  if (!op) return undefined;
  const stmt = nodeBody<InsertStmt & UpdateStmt & DeleteStmt>(tree);
  const target = resolveTarget(stmt.relation, scope, op, stmt.onConflictClause !== undefined);
  const rule = scope.policy.writeRule({ ...(target.table.schema ? { schema: target.table.schema } : {}), name: target.table.name, op });
  // classify's write gate has refused what no grant covers; a rule is always there.
  if (!rule) throw new ProxyError('model_writes_disabled', { message: `${OP_NAMES[op]} on ${target.table.name} is not allowed` });

  const reason = tags.reason?.trim();
  const dryRun = !explain && isDryRun(tags);
  // EXPLAIN and dry runs write nothing: they need no reason.
  if (rule.requireReason && !reason && !explain && !dryRun) {
    throw new ProxyError('reason_required', { message: `${OP_NAMES[op]} on ${target.table.name} needs a reason` });
  }

  // 1. Check the agent's tree as written: every reference that could reach the target's columns.
  const returning = returningItems(stmt);
  checkReferences(tree, target, returning);
  let assigned: string[];
  if (op === 'insert') assigned = checkInsert(stmt, target, rule, scope, principal, ctes);
  else if (op === 'update') assigned = checkAssignments(stmt.targetList ?? [], target, rule);
  else assigned = [];
  if (stmt.onConflictClause?.action === 'ONCONFLICT_UPDATE') {
    // DO UPDATE changes existing rows: it needs the update grant, and that grant's writable fields.
    const update = scope.policy.writeRule({ schema: target.table.schema, name: target.table.name, op: 'update' });
    if (!update) throw new ProxyError('model_writes_disabled', { message: `INSERT … ON CONFLICT DO UPDATE on ${target.table.name} needs the update grant` });
    assigned = [...assigned, ...checkOnConflict(stmt.onConflictClause, target, update)];
  }

  // 2. Then add what the policy adds: references checked through their parent's policy view, …
  applyReferenceChecks(stmt, op, target, scope, principal);
  // … the proxy's tenant in every inserted row (after the checks above, which map the agent's columns by position), …
  if (op === 'insert') bindTenant(stmt, target.table, scope, principal);
  // … the tenant predicate on the target rows, …
  if (op !== 'insert') stmt.whereClause = guardedWhere(targetPredicate(target, scope, principal, refName(stmt.relation!)), stmt.whereClause);
  if (stmt.onConflictClause?.action === 'ONCONFLICT_UPDATE') {
    // The conflicting row may be another tenant's: it is then left alone, as PostgreSQL does when the WHERE is false.
    stmt.onConflictClause.whereClause = guardedWhere(targetPredicate(target, scope, principal, refName(stmt.relation!)), stmt.onConflictClause.whereClause);
  }
  const ref = refName(stmt.relation!);
  if (dryRun) {
    const preview = op === 'insert' ? previewInsert(stmt, target.table) : op === 'update' ? previewUpdate(stmt, target.table, ref) : previewDelete(stmt, target.table, ref);
    return {
      info: { op, table: `${target.table.schema}.${target.table.name}`, model: target.table.model, assigned, hidden: [...target.hidden], ...(reason ? { reason } : {}), dryRun: true },
      preview,
    };
  }
  if (returning.length > 0) rewriteReturning(returning, target, op, stmt);
  const need = explain ? undefined : approvalNeed(stmt, op, target.table, scope, principal);
  // A held write over the cap could only fail once approved: the session counts it first and refuses it.
  const approval =
    need && rule.maxAffectedRows !== undefined && op !== 'insert'
      ? { ...need, maxAffectedRows: rule.maxAffectedRows, ...(need.countSql !== undefined ? {} : affectedRowsCount(stmt, op, target.table)) }
      : need;
  // Counted on the write's own rows, before the cap's guard and the capture's join join them.
  const guard = approval && op !== 'insert' ? approvalGuard(stmt, op, target.table, approval) : undefined;
  if (rule.maxAffectedRows !== undefined && !explain) capAffectedRows(stmt, op, rule.maxAffectedRows, target.table, scope);
  // Before/after for the audit trail; not for ON CONFLICT DO UPDATE, whose rows may be inserted or updated.
  const capture = explain || !captureWrites || stmt.onConflictClause?.action === 'ONCONFLICT_UPDATE' ? undefined : addCapture(stmt, op, target.table, ref, assigned, scope, principal);
  if (guard && approval) {
    // Held, it runs as it is now; sent unheld, PostgreSQL judges the rules again as it runs.
    approval.statementSql = deparseVerified([{ [op === 'update' ? 'UpdateStmt' : 'DeleteStmt']: stmt } as Node])[0];
    stmt.whereClause = andExpr(stmt.whereClause, guard);
  } else if (approval && op === 'insert' && judgesInsertValues(approval)) {
    approval.statementSql = deparseVerified([{ InsertStmt: stmt } as Node])[0];
    guardInsertValues(stmt, approval);
  }
  // The conditions' trees served the guard; the session needs their SQL only.
  for (let need = approval; need; need = need.otherwise) {
    delete need.fieldCondition;
    delete need.field;
  }

  return {
    info: {
      op,
      table: `${target.table.schema}.${target.table.name}`,
      model: target.table.model,
      assigned,
      hidden: [...target.hidden],
      ...(reason ? { reason } : {}),
      ...(approval ? { approval } : {}),
      ...(capture ? { capture } : {}),
    },
  };
}

/** dry_run='true' (or '1'); 'false' and '0' mean a real write; any other value is refused rather than guessed. */
function isDryRun(tags: Record<string, string>): boolean {
  if (tags[UNREADABLE_DRY_RUN]) {
    throw new ProxyError('statement_not_allowed', { message: 'a dry_run tag could not be read', hint: "Write it exactly as /*dry_run='true'*/ (single quotes, lower case), or leave it out." });
  }
  const value = tags.dry_run?.trim().toLowerCase();
  if (value === undefined || value === 'false' || value === '0') return false;
  if (value === 'true' || value === '1') return true;
  throw new ProxyError('statement_not_allowed', { message: `dry_run='${tags.dry_run}' is not understood`, hint: "Use /*dry_run='true'*/ to preview the write, or leave the tag out." });
}
// ---- assignments ----

function checkAssignments(items: Node[], target: Target, rule: WriteRule): string[] {
  const names: string[] = [];
  for (const item of items) {
    const res = (item as { ResTarget: ResTarget }).ResTarget;
    const name = res.name ?? '';
    checkWritable(name, target, rule);
    names.push(name);
  }
  return names;
}

function checkOnConflict(clause: OnConflictClause, target: Target, rule: WriteRule): string[] {
  if (clause.action !== 'ONCONFLICT_UPDATE') return [];
  return checkAssignments(clause.targetList ?? [], target, rule);
}

// ---- foreign keys into tenant-scoped tables (foreign-keys.ts) ----

function applyReferenceChecks(stmt: InsertStmt & UpdateStmt & DeleteStmt, op: Op, target: Target, scope: ReadScope, principal: Principal): void {
  const refs = checkedReferences(target.table, scope);
  if (refs.size === 0 || op === 'delete') return;
  const check = (value: Node, column: string): Node => {
    const ref = refs.get(column)!;
    return checkedValue(value, column, target.visible.get(column)!.type, ref, scope, principal);
  };
  const assignments = (items: Node[] | undefined) => {
    for (const item of items ?? []) {
      const res = (item as { ResTarget: ResTarget }).ResTarget;
      if (!res.name || !refs.has(res.name) || !res.val || 'SetToDefault' in res.val) continue;
      if ('MultiAssignRef' in res.val) {
        throw new ProxyError('statement_not_allowed', { message: `assign "${res.name}" on its own, not in SET (a, b) = …`, hint: `Write SET ${res.name} = … as its own assignment.` });
      }
      res.val = check(res.val, res.name);
    }
  };
  if (op === 'update') assignments(stmt.targetList);
  assignments(stmt.onConflictClause?.targetList);
  if (op === 'insert') checkRowReferences(stmt, new Set(refs.keys()), target.table.tenantColumn, check);
}

// ---- the target's tenant predicate and row filter ----

function targetPredicate(target: Target, scope: ReadScope, principal: Principal, ref: string): Node | undefined {
  const { table } = target;
  const parts: Node[] = [];
  if (table.tenantColumn) {
    const select = parseTemplate(`SELECT WHERE ${quoteIdent(ref)}.${quoteIdent(table.tenantColumn)} = 0`, 'write tenant predicate');
    const cmp = select.whereClause as { A_Expr: { rexpr: Node } };
    cmp.A_Expr.rexpr = tenantLiteral(scope, principal);
    parts.push(select.whereClause!);
  }
  if (table.rowFilter) parts.push(qualified(parseTemplate(`SELECT WHERE ${table.rowFilter}`, `the row filter of ${table.name}`).whereClause!, ref));
  if (parts.length === 0) return undefined;
  return parts.length === 1 ? parts[0] : { BoolExpr: { boolop: 'AND_EXPR', args: parts } };
}

/** The row filter's own columns, qualified with the target's name: in UPDATE … FROM they would otherwise be ambiguous. */
function qualified(expr: Node, ref: string): Node {
  const copy = cloneTree(expr);
  walk([copy], (node) => {
    const col = (node as { ColumnRef?: ColumnRef }).ColumnRef;
    if (col?.fields?.length === 1) col.fields = [{ String: { sval: ref } }, ...col.fields];
  });
  return copy;
}

