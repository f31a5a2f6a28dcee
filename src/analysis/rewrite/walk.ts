// Finds every relation a statement reads, with PostgreSQL's CTE scoping, and puts a replacement in its place.
import type { ColumnRef, CommonTableExpr, Node, RangeTableSample, RangeVar, WithClause } from '@pgsql/types';
import { schemaQualifiedColumnRefused, tooDeep } from './refusals';

/**
 * Called for each RangeVar that names a relation rather than a CTE; returns the node that
 * takes its place. `sampled` when the reference carries TABLESAMPLE.
 */
export type ReplaceRelation = (rv: RangeVar, sampled: boolean) => Node;

type Obj = Record<string, unknown>;
type Ctes = ReadonlySet<string>;

const MODIFY = ['InsertStmt', 'UpdateStmt', 'DeleteStmt'] as const;

/**
 * Rewrites a statement tree IN PLACE (the caller owns a private copy). Walks every field of
 * every node, so a relation is found wherever the grammar allows one — FROM, JOIN trees,
 * sublinks in any expression, CTE bodies, LATERAL, set-operation arms, the SELECT of an
 * INSERT, UPDATE ... FROM, DELETE ... USING, RETURNING — except the write target of
 * INSERT/UPDATE/DELETE, which the write rules own. Replacement nodes are not walked again.
 */
export function replaceRelations(stmt: Node, replace: ReplaceRelation): Node {
  try {
    return new Walker(replace).visit(stmt, new Set()) as Node;
  } catch (err) {
    if (err instanceof RangeError) throw tooDeep();
    throw err;
  }
}

class Walker {
  constructor(private readonly replace: ReplaceRelation) {}

  /** Visits a value; returns what should be stored in its place (itself unless it is a relation reference). */
  visit(value: unknown, ctes: Ctes): unknown {
    if (value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i];
        if (item !== null && typeof item === 'object') value[i] = this.visit(item, ctes);
      }
      return value;
    }
    const node = value as Obj;
    if ('RangeVar' in node) return this.relation(node.RangeVar as RangeVar, ctes, false) ?? value;
    if ('SelectStmt' in node) {
      this.select(node.SelectStmt as Obj, ctes);
      return value;
    }
    for (const type of MODIFY) {
      if (type in node) {
        this.modify(node[type] as Obj, ctes);
        return value;
      }
    }
    if ('RangeTableSample' in node) {
      const sample = node.RangeTableSample as RangeTableSample;
      const rv = sample.relation && 'RangeVar' in sample.relation ? sample.relation.RangeVar : undefined;
      // Resolving refuses the sample on a policy table; on a CTE PostgreSQL refuses it itself.
      if (rv) this.relation(rv, ctes, true);
      this.fields(sample as Obj, ctes, ['relation']);
      return value;
    }
    if ('ColumnRef' in node) {
      // schema.table.column: the schema-qualified name no longer exists once the table is a derived table.
      if (((node.ColumnRef as ColumnRef).fields?.length ?? 0) >= 3) throw schemaQualifiedColumnRefused();
      return value;
    }
    this.fields(node, ctes, []);
    return value;
  }

  private fields(body: Obj, ctes: Ctes, skip: readonly string[]): void {
    // Only objects can hold a relation; the rest of a node's values are left where they are.
    for (const key in body) {
      const child = body[key];
      if (child !== null && typeof child === 'object' && (skip.length === 0 || !skip.includes(key))) body[key] = this.visit(child, ctes);
    }
  }

  /** A CTE reference stays as it is; anything else is handed to the replacer. */
  private relation(rv: RangeVar, ctes: Ctes, sampled: boolean): Node | undefined {
    if (rv.schemaname === undefined && rv.catalogname === undefined && ctes.has(rv.relname ?? '')) return undefined;
    return this.replace(rv, sampled);
  }

  /** A SELECT body; set-operation arms (larg/rarg) are bare bodies and see the CTEs of the node above them. */
  private select(body: Obj, ctes: Ctes): void {
    const inner = this.with(body.withClause as WithClause | undefined, ctes);
    for (const key in body) {
      const child = body[key];
      if (key === 'withClause' || child === null || typeof child !== 'object') continue;
      if (key === 'larg' || key === 'rarg') this.select(child as Obj, inner);
      else body[key] = this.visit(child, inner);
    }
  }

  /** INSERT/UPDATE/DELETE: everything but the target relation. */
  private modify(body: Obj, ctes: Ctes): void {
    const inner = this.with(body.withClause as WithClause | undefined, ctes);
    this.fields(body, inner, ['relation', 'withClause']);
  }

  /**
   * Walks the CTE bodies of a WITH and returns the names visible to the query it belongs to.
   * As in PostgreSQL: a non-recursive CTE sees only the CTEs before it in the same WITH (its
   * own name, inside its body, is the real table or an outer CTE); under WITH RECURSIVE every
   * CTE of the list sees itself and all its siblings.
   */
  private with(clause: WithClause | undefined, ctes: Ctes): Ctes {
    if (!clause?.ctes?.length) return ctes;
    const entries = clause.ctes.map((c) => (c as { CommonTableExpr: CommonTableExpr }).CommonTableExpr);
    const all = new Set([...ctes, ...entries.map((e) => e.ctename ?? '')]);
    const visible = new Set(ctes);
    for (const entry of entries) {
      this.fields(entry as Obj, clause.recursive ? all : visible, []);
      visible.add(entry.ctename ?? '');
    }
    return all;
  }
}
