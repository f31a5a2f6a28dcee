// The write target's columns as the agent may see them: references to hidden and masked columns, whole-row references, RETURNING under the read policy.
//
// The target of a write is the real table, not a derived one: every column of it is in scope in
// SET, WHERE, ON CONFLICT and RETURNING, hidden ones included. So each reference that could reach
// a column of the target is resolved here against what the policy shows.
import type { ColumnRef, DeleteStmt, InsertStmt, Node, RangeVar, ResTarget, UpdateStmt } from '@pgsql/types';
import { ProxyError } from '../../errors/catalogue';
import type { WriteRule } from '../../policy/load';
import type { ReadScope, ScopedTable, VisibleColumn } from '../../policy/scope';
import { nodeBody } from '../types';
import { columnSql, isPolicyView } from './derived';
import { parseTemplate } from './nodes';
import { modelNotAllowed } from './refusals';

export type Op = 'insert' | 'update' | 'delete';

export interface Target {
  table: ScopedTable;
  /** The names that denote the target row in expressions: its alias, else its name. */
  refs: Set<string>;
  /** Columns of the real table that the agent cannot see, its system columns included. */
  hidden: Set<string>;
  masked: Map<string, VisibleColumn>;
  visible: Map<string, VisibleColumn>;
}

/**
 * PostgreSQL's system columns, in scope on every real table (ddl.sgml, "System Columns"): a row's
 * physical place, its transaction ids and its table's oid say when and how other rows were
 * written. A derived table has none; the write target would, so they are hidden there like any
 * column the policy does not show.
 */
const SYSTEM_COLUMNS = ['ctid', 'xmin', 'xmax', 'cmin', 'cmax', 'tableoid'];

/** Names that denote target rows in PostgreSQL (ON CONFLICT's excluded, RETURNING's old and new): never an alias. */
const RESERVED_ALIASES = new Set(['excluded', 'old', 'new']);

export function resolveTarget(rv: RangeVar | undefined, scope: ReadScope, op: Op, onConflict: boolean): Target {
  if (!rv) throw new ProxyError('statement_not_understood', { logMessage: 'write without a target' });
  const resolution = scope.resolve(rv.schemaname, rv.relname ?? '');
  if (resolution.kind !== 'table') throw modelNotAllowed(rv);
  const table = resolution.table;
  const real = scope.catalog.relations.get(`${table.schema}.${table.name}`)?.columns ?? [];
  const visible = new Map(table.columns.map((c) => [c.name, c]));
  const alias = rv.alias?.aliasname;
  if (alias !== undefined && RESERVED_ALIASES.has(alias)) {
    throw new ProxyError('statement_not_allowed', { message: `"${alias}" cannot be the alias of the write target`, hint: 'Choose another alias.' });
  }
  const refs = new Set([refName(rv)]);
  // RETURNING old.x / new.x (PostgreSQL 18) and ON CONFLICT's excluded.x denote target rows too.
  if (onConflict) refs.add('excluded');
  refs.add('old').add('new');
  return {
    table,
    refs,
    hidden: new Set([...real.map((c) => c.name).filter((n) => !visible.has(n)), ...SYSTEM_COLUMNS]),
    masked: new Map(table.columns.filter((c) => c.mask).map((c) => [c.name, c])),
    visible,
  };
}

export function refName(rv: RangeVar): string {
  return rv.alias?.aliasname ?? rv.relname ?? '';
}

export function notFound(column: string, table?: string): ProxyError {
  return new ProxyError('column_not_found', { message: table ? `column "${column}" of relation "${table}" does not exist` : `column "${column}" does not exist` });
}

// ---- columns the agent may assign ----

export function checkWritable(name: string, target: Target, rule: WriteRule): void {
  const { table } = target;
  if (!target.visible.has(name)) throw notFound(name, table.name);
  if (name === table.tenantColumn) {
    throw new ProxyError('field_not_writable', {
      message: `the tenant column "${name}" cannot be assigned`,
      hint: 'Leave the tenant column out: the proxy sets it on INSERT, and it never changes.',
    });
  }
  // Keys the database numbers (serial, identity) are not the agent's to choose unless the policy
  // lists them: an explicit key that another tenant's row holds would fail and reveal that row.
  if (!rule.writableFields && target.visible.get(name)?.generated) {
    throw new ProxyError('field_not_writable', {
      message: `column "${name}" of "${table.name}" is set by the database`,
      hint: `Leave "${name}" out: the database assigns it. Read it back with RETURNING ${name}.`,
    });
  }
  if (rule.writableFields && !rule.writableFields.has(name)) {
    throw new ProxyError('field_not_writable', {
      message: `column "${name}" of "${table.name}" is not writable`,
      hint: `Writable columns of ${table.name}: ${[...rule.writableFields].filter((f) => target.visible.has(f)).join(', ') || 'none'}.`,
    });
  }
}

// ---- references ----

export function returningItems(stmt: InsertStmt | UpdateStmt | DeleteStmt): ResTarget[] {
  const clause = stmt.returningClause as { exprs?: Node[]; options?: Node[] } | undefined;
  if (clause?.options?.length) {
    throw new ProxyError('statement_not_allowed', { message: 'RETURNING WITH (OLD/NEW AS …) is not allowed', hint: 'Use RETURNING with the column names.' });
  }
  return (clause?.exprs ?? []).map((e) => (e as { ResTarget: ResTarget }).ResTarget);
}

/**
 * Every ColumnRef of the statement, at any depth (an unqualified name inside a subquery falls
 * back to the target when no inner table has it). A reference that names a hidden column of
 * the target reads as a missing column; one that names a masked column is refused, except a
 * bare RETURNING item, which is returned masked. Over-refusal is possible (an inner table's
 * column with the same name); the hint says to qualify it.
 */
export function checkReferences(tree: Node, target: Target, returning: ResTarget[]): void {
  const bareReturning = new Set<unknown>(returning.map((r) => r.val && 'ColumnRef' in r.val ? r.val.ColumnRef : undefined));
  const stack: unknown[] = [nodeBody(tree)];
  const relation = (nodeBody(tree) as { relation?: unknown }).relation;
  while (stack.length > 0) {
    const value = stack.pop();
    if (value === null || typeof value !== 'object' || value === relation) continue;
    if (Array.isArray(value)) {
      for (const item of value) stack.push(item);
      continue;
    }
    for (const [key, child] of Object.entries(value)) {
      if (key === 'RangeSubselect' && isPolicyView(child)) continue; // a policy view: the proxy's own columns and masks
      if (key === 'ColumnRef') checkColumnRef(child as ColumnRef, target, bareReturning.has(child));
      else if (key === 'IndexElem') checkIndexElem(child as { name?: string }, target);
      stack.push(child);
    }
  }
}

function checkColumnRef(ref: ColumnRef, target: Target, bareReturning: boolean): void {
  const fields = (ref.fields ?? []).map((f) => ('String' in f ? (f.String.sval ?? '') : '*'));
  let column: string;
  if (fields.length === 1) {
    column = fields[0];
    if (column !== '*' && target.refs.has(column) && !target.visible.has(column) && !target.hidden.has(column)) {
      throw new ProxyError('statement_not_allowed', {
        message: `a whole-row reference to "${column}" is not allowed in a write`,
        hint: 'Name the columns instead.',
      });
    }
  } else if (fields.length === 2 && target.refs.has(fields[0])) {
    column = fields[1];
  } else {
    return; // another table's column: a derived table, which shows only what the policy allows
  }
  if (column === '*') {
    // `t.*` as a RETURNING item is expanded to the visible columns; anywhere else it is the whole row.
    if (fields.length === 2 && !bareReturning) {
      throw new ProxyError('statement_not_allowed', { message: `a whole-row reference to "${fields[0]}" is not allowed in a write`, hint: 'Name the columns instead.' });
    }
    return;
  }
  // PostgreSQL's own wording for a missing column, qualified or not (results/write-errors.ts reports those the same way).
  if (target.hidden.has(column)) throw fields.length === 2 ? new ProxyError('column_not_found', { message: `column ${fields[0]}.${column} does not exist` }) : notFound(column);
  // excluded.<column> is the value this INSERT proposes (only INSERT … ON CONFLICT has it in refs).
  if (target.masked.has(column) && !bareReturning && !(fields.length === 2 && fields[0] === 'excluded' && target.refs.has('excluded'))) {
    throw new ProxyError('field_masked', { message: `masked column "${column}" cannot be read in a write` });
  }
}

function checkIndexElem(elem: { name?: string }, target: Target): void {
  if (elem.name && target.hidden.has(elem.name)) throw notFound(elem.name);
  // A conflict on a masked value tells whether that raw value exists.
  if (elem.name && target.masked.has(elem.name)) throw new ProxyError('field_masked', { message: `masked column "${elem.name}" cannot be a conflict target` });
}


// ---- RETURNING: visible columns, masked ones masked ----

export function rewriteReturning(items: ResTarget[], target: Target, op: Op, stmt: UpdateStmt & DeleteStmt): void {
  const ref = refName(stmt.relation!);
  const out: Node[] = [];
  for (const item of items) {
    const col = item.val && 'ColumnRef' in item.val ? (item.val.ColumnRef as ColumnRef) : undefined;
    const fields = (col?.fields ?? []).map((f) => ('String' in f ? (f.String.sval ?? '') : '*'));
    const star = fields.length > 0 && fields[fields.length - 1] === '*';
    if (star && (fields.length === 1 || target.refs.has(fields[0]))) {
      if (fields.length === 1 && ((op === 'update' && stmt.fromClause?.length) || (op === 'delete' && stmt.usingClause?.length))) {
        throw new ProxyError('statement_not_allowed', {
          message: 'RETURNING * is not allowed together with FROM or USING',
          hint: `Name the columns, e.g. RETURNING ${ref}.id.`,
        });
      }
      out.push(...expand(target, fields.length === 1 ? ref : fields[0]));
      continue;
    }
    const column = col && !star ? fields[fields.length - 1] : undefined;
    const masked = column !== undefined && (fields.length === 1 || target.refs.has(fields[0])) ? target.masked.get(column) : undefined;
    if (masked) {
      const expr = returningColumns([columnSql(masked, fields.length === 2 ? fields[0] : ref)])[0] as { ResTarget: ResTarget };
      out.push({ ResTarget: { ...expr.ResTarget, name: item.name ?? masked.name } } as Node);
      continue;
    }
    out.push({ ResTarget: item } as Node);
  }
  (stmt.returningClause as { exprs: Node[] }).exprs = out;
}

function expand(target: Target, qualifier: string): Node[] {
  return returningColumns(target.table.columns.map((c) => columnSql(c, qualifier)));
}

function returningColumns(list: string[]): Node[] {
  return parseTemplate(`SELECT ${list.join(', ')}`, 'RETURNING list').targetList ?? [];
}
