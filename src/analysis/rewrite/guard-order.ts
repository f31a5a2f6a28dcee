// The agent's conditions on a write target run only on the principal's rows: PostgreSQL may evaluate them in any order.
//
// A read's policy table is a fenced derived table, so the agent's conditions sit above the
// tenant filter. A write's target cannot be fenced: its tenant predicate and the agent's WHERE
// are one list of conditions on the same scan, and the planner orders them by cost — an
// equivalence class such as `tenant_id = 1` may even be checked last. A condition that raises
// an error (make_date(2000, 1, total_cents), to_date(name, …)) would then run on other
// tenants' rows and print their values. So the agent's WHERE becomes
// `CASE WHEN <policy predicate> THEN <agent's conditions> ELSE false END`: CASE evaluates its
// branches only when chosen. Conditions that cannot raise an error for any row — a column
// compared with a constant, a parameter or another column, IN lists of those, IS [NOT] NULL —
// stay outside, where indexes and joins can use them.
import type { A_Expr, Node } from '@pgsql/types';
import { comparisonsMayRaise } from './derived';
import { andExpr, cloneTree, parseTemplate } from './nodes';

const COMPARISONS = new Set(['=', '<>', '!=', '<', '>', '<=', '>=']);

function isColumn(node: Node | undefined): boolean {
  return node !== undefined && 'ColumnRef' in node && (node.ColumnRef.fields ?? []).every((f) => 'String' in f);
}

function isValue(node: Node | undefined): boolean {
  if (!node) return false;
  if ('A_Const' in node) return !node.A_Const.isnull;
  return 'ParamRef' in node;
}

/** A condition that reads columns and compares them, and can fail for no row. */
export function cannotRaise(node: Node): boolean {
  if ('NullTest' in node) return isColumn(node.NullTest.arg as Node | undefined);
  if (!('A_Expr' in node)) return false;
  const e: A_Expr = node.A_Expr;
  const op = e.name?.length === 1 && 'String' in e.name[0] ? e.name[0].String.sval ?? '' : '';
  if (!COMPARISONS.has(op)) return false;
  const lexpr = e.lexpr as Node | undefined;
  const rexpr = e.rexpr as Node | undefined;
  // A statement whose comparisons may raise (collations, composite and geometric columns:
  // collations.ts) keeps every one behind the policy.
  if (comparisonsMayRaise()) return false;
  if (e.kind === 'AEXPR_OP') return (isColumn(lexpr) && (isValue(rexpr) || isColumn(rexpr))) || (isValue(lexpr) && isColumn(rexpr));
  if (e.kind === 'AEXPR_IN' && op === '=') {
    const items = rexpr && 'List' in rexpr ? (rexpr.List.items ?? []) : [];
    return isColumn(lexpr) && items.length > 0 && items.every((i) => isValue(i as Node));
  }
  return false;
}

function conjuncts(node: Node): Node[] {
  const bool = 'BoolExpr' in node ? node.BoolExpr : undefined;
  return bool?.boolop === 'AND_EXPR' ? (bool.args ?? []).flatMap((a) => conjuncts(a as Node)) : [node];
}

let caseTemplate: Node | undefined;

/**
 * `<policy> AND <safe conditions> AND CASE WHEN <policy> THEN <other conditions> ELSE false END`
 * for a write target (or the policy predicate alone, or the agent's WHERE alone when there is
 * no policy predicate: a global table has no other tenant to protect).
 */
export function guardedWhere(policy: Node | undefined, agent: Node | undefined): Node | undefined {
  if (!policy || !agent) return andExpr(policy, agent);
  const parts = conjuncts(agent);
  const safe = parts.filter(cannotRaise);
  const rest = parts.filter((p) => !cannotRaise(p));
  let where = policy;
  for (const s of safe) where = andExpr(where, s)!;
  if (rest.length === 0) return where;
  caseTemplate ??= parseTemplate('SELECT WHERE CASE WHEN true THEN true ELSE false END', 'write guard').whereClause!;
  const guard = cloneTree(caseTemplate) as { CaseExpr: { args: Array<{ CaseWhen: { expr: Node; result: Node } }> } };
  guard.CaseExpr.args[0].CaseWhen.expr = cloneTree(policy);
  guard.CaseExpr.args[0].CaseWhen.result = rest.length === 1 ? rest[0] : { BoolExpr: { boolop: 'AND_EXPR', args: rest } };
  return andExpr(where, guard as unknown as Node);
}
