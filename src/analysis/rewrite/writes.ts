// Write targets under the policy (I1, I2, I3, I5): writable columns, the tenant on every target row, references to hidden and masked columns, RETURNING as the read policy shows it.
//
// Reads inside a write (FROM, USING, subqueries, CTEs) are already derived tables. The target
// itself cannot be: PostgreSQL writes to the real table, and every column of it is in scope
// in SET, WHERE, ON CONFLICT and RETURNING, hidden ones included. So the target gets
// explicit checks: its tenant predicate (and row filter) is ANDed into the statement, and
// every column reference that could reach a hidden or masked column of it is resolved here.
import type { ColumnRef, DeleteStmt, InsertStmt, Node, OnConflictClause, RangeVar, ResTarget, SelectStmt, UpdateStmt } from '@pgsql/types';
import type { Principal } from '../../auth/principal';
import { ProxyError } from '../../errors/catalogue';
import type { WriteRule } from '../../policy/load';
import type { RawPolicy } from '../../policy/schema';
import { UNREADABLE_DRY_RUN } from '../comments';
import { deparseVerified } from '../deparse';
import type { ReadScope, ScopedTable, VisibleColumn } from '../../policy/scope';
import { nodeBody, nodeTypeOf } from '../types';
import { columnSql, isPolicyView } from './derived';
import { addCapture, type CapturePlan } from './capture';
import { checkedReferences, checkedValue } from './foreign-keys';
import { guardedWhere } from './guard-order';
import { previewDelete, previewInsert, previewUpdate, targetOf } from './dry-run';
import { andExpr, bareConstantText, cloneTree, parseTemplate, quoteIdent, walk } from './nodes';
import { modelNotAllowed } from './refusals';
import { isPrincipalTenant, tenantLiteral, tenantType } from './tenant';

type Op = 'insert' | 'update' | 'delete';

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

export interface ApprovalNeed {
  /** The rule, for humans: "update orders when affected_rows > 50". */
  rule: string;
  approvers: number;
  expiresInS: number;
  /** The rule holds only when more rows than this would change: the session counts first, with `countSql`. */
  affectedRowsGt?: number;
  /** `SELECT count(*) …` over the same rows as the write (its parameters are the write's). */
  countSql?: string;
  /** One JSON array of the write's dry-run rows (at most 100), for the approvers to see. */
  previewSql?: string;
}

interface Target {
  table: ScopedTable;
  /** The names that denote the target row in expressions: its alias, else its name. */
  refs: Set<string>;
  /** Columns of the real table that the agent cannot see. */
  hidden: Set<string>;
  masked: Map<string, VisibleColumn>;
  visible: Map<string, VisibleColumn>;
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
  if (op === 'insert') assigned = checkInsert(stmt, target, rule, scope, principal);
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
  // … the tenant predicate on the target rows, …
  if (op !== 'insert') stmt.whereClause = guardedWhere(targetPredicate(target, scope, principal, refName(stmt.relation!)), stmt.whereClause);
  if (stmt.onConflictClause?.action === 'ONCONFLICT_UPDATE') {
    // The conflicting row may be another tenant's: it is then left alone, as PostgreSQL does when the WHERE is false.
    stmt.onConflictClause.whereClause = guardedWhere(targetPredicate(target, scope, principal, refName(stmt.relation!)), stmt.onConflictClause.whereClause);
  }
  const ref = refName(stmt.relation!);
  if (dryRun) {
    const preview = op === 'insert' ? previewInsert(stmt) : op === 'update' ? previewUpdate(stmt, target.table, ref) : previewDelete(stmt, target.table, ref);
    return {
      info: { op, table: `${target.table.schema}.${target.table.name}`, model: target.table.model, assigned, hidden: [...target.hidden], ...(reason ? { reason } : {}), dryRun: true },
      preview,
    };
  }
  if (returning.length > 0) rewriteReturning(returning, target, op, stmt);
  const approval = explain ? undefined : approvalNeed(stmt, op, target.table, scope);
  if (rule.maxAffectedRows !== undefined && !explain) capAffectedRows(stmt, op, rule.maxAffectedRows, target.table);
  // Before/after for the audit trail; not for ON CONFLICT DO UPDATE, whose rows may be inserted or updated.
  const capture = explain || !captureWrites || stmt.onConflictClause?.action === 'ONCONFLICT_UPDATE' ? undefined : addCapture(stmt, op, target.table, ref, assigned, scope, principal);

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

/** Names that denote target rows in PostgreSQL (ON CONFLICT's excluded, RETURNING's old and new): never an alias. */
const RESERVED_ALIASES = new Set(['excluded', 'old', 'new']);

function resolveTarget(rv: RangeVar | undefined, scope: ReadScope, op: Op, onConflict: boolean): Target {
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
    hidden: new Set(real.map((c) => c.name).filter((n) => !visible.has(n))),
    masked: new Map(table.columns.filter((c) => c.mask).map((c) => [c.name, c])),
    visible,
  };
}

function refName(rv: RangeVar): string {
  return rv.alias?.aliasname ?? rv.relname ?? '';
}

function notFound(column: string, table?: string): ProxyError {
  return new ProxyError('column_not_found', { message: table ? `column "${column}" of relation "${table}" does not exist` : `column "${column}" does not exist` });
}

// ---- references ----

function returningItems(stmt: InsertStmt | UpdateStmt | DeleteStmt): ResTarget[] {
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
function checkReferences(tree: Node, target: Target, returning: ResTarget[]): void {
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

function checkWritable(name: string, target: Target, rule: WriteRule): void {
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

function checkOnConflict(clause: OnConflictClause, target: Target, rule: WriteRule): string[] {
  if (clause.action !== 'ONCONFLICT_UPDATE') return [];
  return checkAssignments(clause.targetList ?? [], target, rule);
}

// ---- INSERT: the column list, and the tenant from the principal ----

function checkInsert(insert: InsertStmt, target: Target, rule: WriteRule, scope: ReadScope, principal: Principal): string[] {
  const { table } = target;
  const cols = (insert.cols ?? []).map((c) => (c as { ResTarget: ResTarget }).ResTarget);
  if (cols.length === 0) {
    throw new ProxyError('statement_not_allowed', { message: 'INSERT without a column list is not allowed', hint: 'Name the columns: INSERT INTO t (a, b) VALUES (…).' });
  }
  const tenantColumn = table.tenantColumn;
  const names: string[] = [];
  for (const col of cols) {
    const name = col.name ?? '';
    if (tenantColumn && name === tenantColumn && !col.indirection?.length) continue; // checked against the principal below
    checkWritable(name, target, rule);
    names.push(name);
  }
  if (!tenantColumn) return names;
  const at = cols.findIndex((c) => c.name === tenantColumn);
  const select = insert.selectStmt ? nodeBody<SelectStmt>(insert.selectStmt) : undefined;
  const rows = select && select.op === 'SETOP_NONE' && !select.withClause ? select.valuesLists?.map((l) => (l as { List: { items: Node[] } }).List.items) : undefined;
  if (rows) {
    if (at < 0) {
      insert.cols = [...(insert.cols ?? []), { ResTarget: { name: tenantColumn } } as Node];
      for (const row of rows) row.push(tenantLiteral(scope, principal));
      return names;
    }
    for (const row of rows) {
      // Only a plain constant can be judged; whatever it says, the proxy's own literal is what is written.
      const text = bareConstantText(row[at]);
      if (text === undefined || !isPrincipalTenant(text, tenantType(scope), principal.tenantId)) throw forged(tenantColumn);
      row[at] = tenantLiteral(scope, principal);
    }
    return names;
  }
  // INSERT … SELECT: the rows come from a query, so the tenant is appended to each of them.
  if (at >= 0) throw forged(tenantColumn);
  if (!insert.selectStmt) throw new ProxyError('statement_not_allowed', { message: 'INSERT … DEFAULT VALUES is not allowed', hint: 'Name the columns and give VALUES.' });
  insert.cols = [...(insert.cols ?? []), { ResTarget: { name: tenantColumn } } as Node];
  insert.selectStmt = withTenant(insert.selectStmt, scope, principal);
  return names;
}

function forged(column: string): ProxyError {
  return new ProxyError('tenant_forged', { message: `"${column}" must be your own tenant; leave it out and the proxy sets it` });
}

const SOURCE = 'ormai_source';

/** `SELECT ormai_source.*, <tenant> FROM (<the agent's query>) AS ormai_source` */
function withTenant(query: Node, scope: ReadScope, principal: Principal): Node {
  const outer = parseTemplate(`SELECT ${SOURCE}.*, 0 FROM (SELECT) AS ${SOURCE}`, 'INSERT … SELECT wrapper');
  (outer.targetList![1] as { ResTarget: ResTarget }).ResTarget.val = tenantLiteral(scope, principal);
  (outer.fromClause![0] as { RangeSubselect: { subquery: Node } }).RangeSubselect.subquery = query;
  return { SelectStmt: outer };
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
  if (op !== 'insert' || !stmt.selectStmt) return;
  const names = (stmt.cols ?? []).map((c) => (c as { ResTarget: ResTarget }).ResTarget.name ?? '');
  if (!names.some((n) => refs.has(n))) return;
  const select = nodeBody<SelectStmt>(stmt.selectStmt);
  const rows = select.op === 'SETOP_NONE' && !select.withClause ? select.valuesLists?.map((l) => (l as { List: { items: Node[] } }).List.items) : undefined;
  if (rows) {
    for (const row of rows) names.forEach((n, i) => {
      if (refs.has(n) && row[i] && !('SetToDefault' in row[i])) row[i] = check(row[i], n);
    });
    return;
  }
  // INSERT … SELECT: each row of the query, checked in a wrapper that names its columns.
  const aliases = names.map((_, i) => `ormai_c${i}`);
  const outer = parseTemplate(`SELECT ${aliases.map((a) => `ormai_checked.${a}`).join(', ')} FROM (SELECT) AS ormai_checked(${aliases.join(', ')})`, 'foreign key check');
  names.forEach((n, i) => {
    if (!refs.has(n)) return;
    const res = (outer.targetList![i] as { ResTarget: ResTarget }).ResTarget;
    res.val = check(res.val as Node, n);
  });
  (outer.fromClause![0] as { RangeSubselect: { subquery: Node } }).RangeSubselect.subquery = stmt.selectStmt;
  stmt.selectStmt = { SelectStmt: outer };
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


// ---- max_affected_rows: decided inside the statement, before anything is committed ----

/** The marker the database's error carries when the cap is exceeded; results/write-errors.ts turns it into max_affected_rows_exceeded. */
export const AFFECTED_ROWS_MARKER = 'ormai:max_affected_rows:';

/**
 * INSERT … VALUES: the rows are counted here. UPDATE and DELETE get one more condition: an
 * uncorrelated subquery (run once, in the statement's own snapshot) counts the rows the same
 * FROM/USING and WHERE select, and when there are more than the cap it fails the statement with
 * a cast error carrying the marker and the count: nothing is written, in or out of a
 * transaction block, under either protocol. The failing cast depends on the count, so the
 * planner cannot fold it into an error before the statement runs.
 */
function capAffectedRows(stmt: InsertStmt & UpdateStmt & DeleteStmt, op: Op, cap: number, table: ScopedTable): void {
  if (op === 'insert') {
    const select = stmt.selectStmt ? nodeBody<SelectStmt>(stmt.selectStmt) : undefined;
    const rows = select?.valuesLists?.length;
    if (rows === undefined || select?.op !== 'SETOP_NONE') {
      throw new ProxyError('statement_not_allowed', {
        message: `INSERT … SELECT into ${stmt.relation?.relname} is not allowed under max_affected_rows`,
        hint: `Insert with VALUES, at most ${cap} rows per statement.`,
      });
    }
    if (rows > cap) throw tooManyRows(rows, cap);
    return;
  }
  refuseVolatile(stmt, 'max_affected_rows');
  const guard = parseTemplate(
    `SELECT WHERE (SELECT CASE WHEN ormai_count.n <= ${cap} THEN true ELSE ('${AFFECTED_ROWS_MARKER}' || ormai_count.n || ':${cap}')::int > 0 END ` +
      'FROM (SELECT) AS ormai_count)',
    'affected-row guard',
  ).whereClause as { SubLink: { subselect: { SelectStmt: SelectStmt } } };
  const from = guard.SubLink.subselect.SelectStmt.fromClause![0] as { RangeSubselect: { subquery: Node } };
  from.RangeSubselect.subquery = { SelectStmt: countRows(stmt, op, table) };
  stmt.whereClause = andExpr(stmt.whereClause, guard as unknown as Node);
}

/** Functions whose value changes from one call to the next: a count of the rows they select says nothing about the write's. */
const VOLATILE = new Set(['random', 'random_normal', 'setseed', 'gen_random_uuid', 'uuidv4', 'uuidv7', 'clock_timestamp', 'timeofday', 'nextval']);

function refuseVolatile(stmt: UpdateStmt & DeleteStmt, what: string): void {
  walk([stmt.whereClause, stmt.fromClause, stmt.usingClause], (node) => {
    const name = (node as { FuncCall?: { funcname?: Node[] } }).FuncCall?.funcname?.at(-1);
    if (name && 'String' in name && VOLATILE.has(name.String.sval ?? '')) {
      throw new ProxyError('statement_not_allowed', {
        message: `${name.String.sval}() cannot choose the rows of a write under ${what}`,
        hint: 'Choose the rows with a deterministic condition (ids, dates, statuses).',
      });
    }
  });
}

/** `SELECT count(*) AS n FROM <target>, <FROM/USING> WHERE <the write's WHERE>`: the rows an UPDATE or DELETE changes. */
function countRows(stmt: UpdateStmt & DeleteStmt, op: Op, table: ScopedTable): SelectStmt {
  const ref = refName(stmt.relation!);
  const sources = (op === 'update' ? stmt.fromClause : stmt.usingClause) ?? [];
  // With FROM/USING, a target row joined to several source rows is still changed once.
  const counted = sources.length > 0 ? `DISTINCT ${quoteIdent(ref)}.ctid` : '*';
  const count = parseTemplate(`SELECT count(${counted}) AS n`, 'row count');
  count.fromClause = [{ RangeVar: targetOf(stmt.relation!, table) }, ...cloneTree(sources)];
  // The write's WITH: a CTE may shadow a name the WHERE uses (the target itself is schema-qualified above).
  if (stmt.withClause) count.withClause = cloneTree(stmt.withClause);
  if (stmt.whereClause) count.whereClause = cloneTree(stmt.whereClause);
  return count;
}

// ---- require_approval: which rule holds this write ----

/**
 * The first require_approval rule for this operation and model whose condition holds. A
 * condition on an assigned field compares the constant the statement assigns; a field assigned
 * from anything else (a parameter, an expression, a query) may hold any value, so the rule
 * applies. A condition on affected rows is left to the session, which counts first.
 */
function approvalNeed(stmt: InsertStmt & UpdateStmt & DeleteStmt, op: Op, table: ScopedTable, scope: ReadScope): ApprovalNeed | undefined {
  // INSERT … ON CONFLICT DO UPDATE may update rows: the update rules apply to it as well.
  const operations = new Set<string>([op === 'insert' ? 'create' : op]);
  if (stmt.onConflictClause?.action === 'ONCONFLICT_UPDATE') operations.add('update');
  for (const rule of scope.policy.raw.require_approval) {
    if (!operations.has(rule.operation) || rule.model.toLowerCase().split('.').pop() !== table.name) continue;
    const when = rule.when;
    if (when?.field !== undefined && !fieldMatches(stmt, op, when.field.toLowerCase(), when)) continue;
    const preview = previewSql(stmt, op, table);
    const need: ApprovalNeed = { rule: describeRule(rule), approvers: rule.approvers, expiresInS: rule.expires_in_s, ...(preview ? { previewSql: preview } : {}) };
    if (when?.affected_rows_gt === undefined) return need;
    if (op === 'insert') {
      const rows = stmt.selectStmt ? nodeBody<SelectStmt>(stmt.selectStmt).valuesLists?.length : 1;
      if (rows !== undefined && rows <= when.affected_rows_gt) continue;
      return need;
    }
    refuseVolatile(stmt, 'an approval rule on affected rows');
    return { ...need, affectedRowsGt: when.affected_rows_gt, countSql: deparseVerified([{ SelectStmt: countRows(stmt, op, table) }])[0] };
  }
  return undefined;
}

const PREVIEW_ROWS = 100;

/** The dry run of the write, as one JSON value; undefined for the shapes a dry run cannot show. */
function previewSql(stmt: InsertStmt & UpdateStmt & DeleteStmt, op: Op, table: ScopedTable): string | undefined {
  let preview: SelectStmt;
  try {
    const ref = refName(stmt.relation!);
    preview = op === 'insert' ? previewInsert(stmt) : op === 'update' ? previewUpdate(stmt, table, ref) : previewDelete(stmt, table, ref);
  } catch {
    return undefined;
  }
  preview.limitCount = { A_Const: { ival: { ival: PREVIEW_ROWS } } };
  preview.limitOption = 'LIMIT_OPTION_COUNT';
  const outer = parseTemplate("SELECT coalesce(json_agg(ormai_preview), '[]') FROM (SELECT) AS ormai_preview", 'approval preview');
  (outer.fromClause![0] as { RangeSubselect: { subquery: Node } }).RangeSubselect.subquery = { SelectStmt: preview };
  return deparseVerified([{ SelectStmt: outer }])[0];
}

type Condition = NonNullable<RawPolicy['require_approval'][number]['when']>;

function fieldMatches(stmt: InsertStmt & UpdateStmt, op: Op, field: string, when: Condition): boolean {
  const values: Array<Node | undefined> = [];
  const setValues = (items: Node[] | undefined) => {
    for (const item of items ?? []) {
      const res = (item as { ResTarget: ResTarget }).ResTarget;
      if (res.name === field) values.push(res.val);
    }
  };
  if (op === 'insert') {
    const at = (stmt.cols ?? []).findIndex((c) => (c as { ResTarget: ResTarget }).ResTarget.name === field);
    const select = stmt.selectStmt ? nodeBody<SelectStmt>(stmt.selectStmt) : undefined;
    if (at >= 0) {
      const rows = select?.valuesLists?.map((l) => (l as { List: { items: Node[] } }).List.items);
      if (!rows) return true; // INSERT … SELECT: any value
      for (const row of rows) values.push(row[at]);
    }
  } else {
    setValues(stmt.targetList);
  }
  setValues(stmt.onConflictClause?.targetList);
  return values.some((v) => {
    // Only a plain constant is compared; anything else (a cast, a parameter, an expression) may be any value.
    const text = bareConstantText(v);
    if (text === undefined) return true;
    const same = (x: string | number | boolean) => (typeof x === 'number' && text.trim() !== '' && !Number.isNaN(Number(text)) ? Number(text) === x : String(x) === text);
    if (when.equals !== undefined && !same(when.equals)) return false;
    if (when.in !== undefined && !when.in.some(same)) return false;
    return true;
  });
}

function describeRule(rule: RawPolicy['require_approval'][number]): string {
  const parts: string[] = [];
  const w = rule.when;
  if (w?.field !== undefined && w.equals !== undefined) parts.push(`${w.field} = ${JSON.stringify(w.equals)}`);
  if (w?.field !== undefined && w.in !== undefined) parts.push(`${w.field} in ${JSON.stringify(w.in)}`);
  if (w?.affected_rows_gt !== undefined) parts.push(`affected_rows > ${w.affected_rows_gt}`);
  return `${rule.operation} ${rule.model}${parts.length ? ` when ${parts.join(' and ')}` : ''}`;
}

export function tooManyRows(rows: number, cap: number): ProxyError {
  return new ProxyError('max_affected_rows_exceeded', { message: `the write would change ${rows} rows; the policy allows at most ${cap}` });
}

// ---- RETURNING: visible columns, masked ones masked ----

function rewriteReturning(items: ResTarget[], target: Target, op: Op, stmt: UpdateStmt & DeleteStmt): void {
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
