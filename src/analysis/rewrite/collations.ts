// Statements whose leakproof comparisons may raise: they read policy tables through the fence.
//
// A barrier view (and a table under row-level security) lets PostgreSQL run the agent's leakproof
// conditions before the policy's, on every tenant's rows, so that indexes serve. Text comparison
// is leakproof, yet it raises "could not determine which collation to use" at run time when its
// two sides carry different implicit collations, neither of them the default: that error, or its
// absence, tells whether another tenant has a matching row, and with more conditions what it holds.
// Such a comparison needs two non-default collations. The built-in types the agent may name give
// none but "C" (name), so the other one comes from a COLLATE clause (made implicit by a
// sub-select, a CTE, VALUES or a set operation) or from a column: one declared with a collation
// of its own, or a composite one whose fields carry one (`(addr).*` in a sub-select). One
// nondeterministic collation is enough for starts_with to raise. Geometric comparisons, also
// leakproof, overflow on an agent's constant (circle and lseg compare areas and lengths). A
// function the policy's allow_functions admits can bring such a collation or type along too (a
// domain `text COLLATE "POSIX"` as its result, met by a "C" column through an initplan's value):
// the catalog lists those (CatalogSnapshot.raisingFunctions), and the operators that run them. So
// a statement with a COLLATE clause, a call of such a function, or that reads a table with such a
// column (ScopedTable.comparisonsMayRaise), reads every policy table through the fenced form instead
// (OFFSET 0 keeps every condition of the agent's above the policy's), and in a write's WHERE every
// comparison is guarded like any condition that can raise (guard-order.ts). The rewrite carries the
// answer with its relation form (derived.ts, withRelationForm).
import type { Node, RangeVar } from '@pgsql/types';
import type { ReadScope } from '../../policy/scope';
import { callsOneOf } from '../functions';
import { walk } from './nodes';

/** Could a leakproof comparison in `tree` raise: two different non-default collations meet, or a column of a kind whose comparisons raise? */
export function comparisonsMayRaiseIn(tree: Node, scope: ReadScope): boolean {
  const { raisingFunctions, userOperators } = scope.catalog;
  return walk([tree], (node) => {
    if ('CollateClause' in node) return true;
    if (raisingFunctions?.size && callsOneOf(node, raisingFunctions, userOperators) !== undefined) return true;
    // Wrapped in a FROM list; bare as a write's target (InsertStmt.relation and the like).
    const rv = (node as { RangeVar?: RangeVar }).RangeVar ?? (typeof node.relname === 'string' ? (node as RangeVar) : undefined);
    if (!rv) return false;
    const resolution = scope.resolve(rv.schemaname, rv.relname ?? '');
    return resolution.kind === 'table' && resolution.table.comparisonsMayRaise === true;
  });
}
