// Foreign keys into tenant-scoped tables, checked through the parent's policy view: another tenant's row reads like a missing one.
//
// PostgreSQL checks a foreign key against the real parent table, so an INSERT or UPDATE that
// points at another tenant's customer would succeed where a missing id fails: an existence
// oracle, and a row that links two tenants. So each value assigned to such a column becomes
//   COALESCE((SELECT p.ormai_key FROM (SELECT id AS ormai_key FROM <parent> WHERE <tenant>) AS p
//             WHERE p.ormai_key = <value>),
//            CASE WHEN <value> IS NULL THEN NULL ELSE CAST((SELECT '<marker>') AS <type>) END)
// The parent's key is renamed so that no name in the agent's value can mean the parent's row
// (`SET customer_id = id` means the order's id, as the agent wrote it): the value is the same
// for every parent row the lookup meets, so nothing it computes or fails on depends on them.
// The parent's row is found only when the principal may see it; otherwise the marker's cast
// fails (results/write-errors.ts reports it) — or, for a text key, the marker itself fails the
// foreign key — the same way for a foreign parent as for a missing one. The marker is a
// subquery so that the planner cannot fold the cast into an error before the statement runs.
import type { Node, RangeVar, ResTarget, SelectStmt } from '@pgsql/types';
import type { Principal } from '../../auth/principal';
import { ProxyError } from '../../errors/catalogue';
import type { ReadScope, ScopedTable } from '../../policy/scope';
import { parentKeys } from './derived';
import { cloneTree, parseTemplate } from './nodes';

export const NO_PARENT_MARKER = 'ormai:no_parent:';

type Reference = NonNullable<ScopedTable['foreignKeys']>[number];

/** The foreign keys of `table` whose parent is a tenant-scoped table of the policy, by column. */
export function checkedReferences(table: ScopedTable, scope: ReadScope): Map<string, { fk: Reference; parent: ScopedTable }> {
  const out = new Map<string, { fk: Reference; parent: ScopedTable }>();
  for (const fk of table.foreignKeys ?? []) {
    const parent = scope.tables.get(fk.parent);
    if (parent?.tenantColumn) out.set(fk.column, { fk, parent });
  }
  return out;
}

/** `value`, checked against the parent's rows the principal may see. */
export function checkedValue(value: Node, column: string, type: string, ref: { fk: Reference; parent: ScopedTable }, scope: ReadScope, principal: Principal): Node {
  const select = parseTemplate(
    `SELECT COALESCE((SELECT ormai_parent.ormai_key FROM ormai_placeholder AS ormai_parent WHERE ormai_parent.ormai_key = NULL), ` +
      `CASE WHEN NULL IS NULL THEN NULL ELSE CAST((SELECT '${NO_PARENT_MARKER}${column.replace(/'/g, "''")}') AS ${type}) END)`,
    'foreign key check',
  );
  const coalesce = (select.targetList![0] as { ResTarget: ResTarget }).ResTarget.val as { CoalesceExpr: { args: Node[] } };
  const [lookup, fallback] = coalesce.CoalesceExpr.args as [
    { SubLink: { subselect: { SelectStmt: SelectStmt } } },
    { CaseExpr: { args: Array<{ CaseWhen: { expr: { NullTest: { arg: Node } } } }> } },
  ];
  const sub = lookup.SubLink.subselect.SelectStmt;
  const rv: RangeVar = { schemaname: ref.parent.schema, relname: ref.parent.name, inh: true, relpersistence: 'p', alias: { aliasname: 'ormai_parent' } };
  // The parent's rows reduced to the key column: the check needs nothing else, and an aliased
  // (masked) column in a subquery of an UPDATE's SET is what the deparser prints wrongly.
  const key = ref.parent.columns.filter((c) => c.name === ref.fk.parentColumn && !c.mask);
  if (key.length === 0) throw new ProxyError('statement_not_allowed', { message: `"${column}" refers to a column the policy masks or hides`, hint: 'Ask the operator to make the referenced key visible.' });
  sub.fromClause = [parentKeys(ref.parent, rv, scope, principal, key)];
  (sub.whereClause as { A_Expr: { rexpr: Node } }).A_Expr.rexpr = cloneTree(value);
  fallback.CaseExpr.args[0].CaseWhen.expr.NullTest.arg = cloneTree(value);
  return coalesce as unknown as Node;
}
