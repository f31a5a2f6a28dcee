// Limits on how much a write may change: max_affected_rows, decided inside the statement, and the require_approval rule that holds a write.
import type { DeleteStmt, InsertStmt, Node, ResTarget, SelectStmt, UpdateStmt } from '@pgsql/types';
import type { Principal } from '../../auth/principal';
import { ProxyError } from '../../errors/catalogue';
import type { RawPolicy } from '../../policy/schema';
import type { ReadScope, ScopedTable } from '../../policy/scope';
import { deparseVerified } from '../deparse';
import { nameParts } from '../functions';
import { nodeBody } from '../types';
import { previewDelete, previewInsert, previewUpdate, targetOf } from './dry-run';
import { andExpr, bareConstantText, cloneTree, parseTemplate, quoteIdent, walk } from './nodes';
import { checkTenantBinding } from './tenant-binding';
import { refName, type Op } from './write-target';

export interface ApprovalNeed {
  /** The rule, for humans: "update orders when affected_rows > 50". */
  rule: string;
  approvers: number;
  expiresInS: number;
  /** The rule holds only when more rows than this would change: the session counts first, with `countSql`. */
  affectedRowsGt?: number;
  /**
   * The write's max_affected_rows: a write over it is refused when it would be held, not held
   * (it could only fail once approved). Counted with `countSql` too.
   */
  maxAffectedRows?: number;
  /** `SELECT count(*) …` over the same rows as the write (its parameters are the write's). */
  countSql?: string;
  /**
   * The write's parameters `countSql` names ($n, 1-based). The others (a SET value, say) are
   * still bound, and PostgreSQL cannot infer a type for a parameter nothing uses: the counter
   * declares those as text.
   */
  countParams?: number[];
  /** One JSON array of the write's dry-run rows (at most 100), for the approvers to see. */
  previewSql?: string;
  /**
   * The rule's field condition, when the statement assigns the field only from parameters: it
   * holds when a bound value is one the rule names (the session has the values).
   */
  fieldParams?: { params: number[]; equals?: string | number | boolean; in?: Array<string | number | boolean> };
  /**
   * The next rule that may apply when this one turns out not to at run time (its rows or its
   * parameters do not meet its condition): rules are tried in the policy's order.
   */
  otherwise?: ApprovalNeed;
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
export function capAffectedRows(stmt: InsertStmt & UpdateStmt & DeleteStmt, op: Op, cap: number, table: ScopedTable, scope: ReadScope): void {
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
  refuseVolatile(stmt, 'max_affected_rows', scope);
  const guard = parseTemplate(
    `SELECT WHERE (SELECT CASE WHEN ormai_count.n <= ${cap} THEN true ELSE ('${AFFECTED_ROWS_MARKER}' || ormai_count.n || ':${cap}')::int > 0 END ` +
      'FROM (SELECT) AS ormai_count)',
    'affected-row guard',
  ).whereClause as { SubLink: { subselect: { SelectStmt: SelectStmt } } };
  const from = guard.SubLink.subselect.SelectStmt.fromClause![0] as { RangeSubselect: { subquery: Node } };
  from.RangeSubselect.subquery = { SelectStmt: countRows(stmt, op, table) };
  stmt.whereClause = andExpr(stmt.whereClause, guard as unknown as Node);
}

/**
 * Functions whose value changes from one call to the next, for a catalog that does not list them
 * (CatalogSnapshot.volatileFunctions, from pg_proc.provolatile, is what a running proxy uses).
 */
const VOLATILE = new Set(
  ['random', 'random_normal', 'setseed', 'gen_random_uuid', 'uuidv4', 'uuidv7', 'clock_timestamp', 'timeofday', 'nextval', 'array_sample', 'array_shuffle'].flatMap((n) => [n, `pg_catalog.${n}`]),
);

/**
 * A count of the rows a volatile function chooses says nothing about the write's: the count and
 * the write each call it. So is a sample of a table. The WITH too: the count copies it.
 */
function refuseVolatile(stmt: UpdateStmt & DeleteStmt, what: string, scope: ReadScope): void {
  const volatile = scope.catalog.volatileFunctions ?? VOLATILE;
  const refuse = (name: string) =>
    new ProxyError('statement_not_allowed', {
      message: `${name} cannot choose the rows of a write under ${what}`,
      hint: 'Choose the rows with a deterministic condition (ids, dates, statuses).',
    });
  walk([stmt.whereClause, stmt.fromClause, stmt.usingClause, stmt.withClause], (node) => {
    if ('RangeTableSample' in node) throw refuse('TABLESAMPLE');
    const call = (node as { FuncCall?: { funcname?: Node[] } }).FuncCall;
    if (!call) return;
    const parts = nameParts(call.funcname);
    if (volatile.has(parts.join('.'))) throw refuse(`${parts[parts.length - 1]}()`);
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

/** `SELECT count(*) …` over the rows an UPDATE or DELETE would change, and the parameters it names. */
export function affectedRowsCount(stmt: InsertStmt & UpdateStmt & DeleteStmt, op: Op, table: ScopedTable): { countSql: string; countParams: number[] } {
  const count = countRows(stmt, op, table);
  const used = new Set<number>();
  walk([count], (node) => {
    if ('ParamRef' in node) used.add((node.ParamRef as { number?: number }).number ?? 0);
  });
  return { countSql: deparseVerified([{ SelectStmt: count }])[0], countParams: [...used].sort((a, b) => a - b) };
}

// ---- require_approval: which rule holds this write ----

/**
 * The require_approval rules for this operation and model that may hold this write, in the
 * policy's order, chained through `otherwise`: the session holds it under the first whose
 * condition holds. A condition on an assigned field compares the constant the statement assigns;
 * a field assigned from a parameter is compared with the bound value by the session; from
 * anything else (an expression, a query) it may hold any value, so the rule applies. A condition
 * on affected rows is left to the session, which counts first. The chain ends at the first rule
 * that holds whatever the values (no later rule could matter).
 */
export function approvalNeed(stmt: InsertStmt & UpdateStmt & DeleteStmt, op: Op, table: ScopedTable, scope: ReadScope, principal: Principal): ApprovalNeed | undefined {
  // INSERT … ON CONFLICT DO UPDATE may update rows: the update rules apply to it as well.
  const operations = new Set<string>([op === 'insert' ? 'create' : op]);
  if (stmt.onConflictClause?.action === 'ONCONFLICT_UPDATE') operations.add('update');
  const chain: ApprovalNeed[] = [];
  let preview: string | undefined | null = null;
  let counted: { countSql: string; countParams: number[] } | undefined;
  for (const rule of scope.policy.raw.require_approval) {
    if (!operations.has(rule.operation) || rule.model.toLowerCase().split('.').pop() !== table.name) continue;
    const when = rule.when;
    const field = when?.field !== undefined ? fieldMatches(stmt, op, when.field.toLowerCase(), when) : 'yes';
    if (field === 'no') continue;
    if (preview === null) preview = previewSql(stmt, op, table, scope, principal);
    const need: ApprovalNeed = {
      rule: describeRule(rule),
      approvers: rule.approvers,
      expiresInS: rule.expires_in_s,
      ...(preview ? { previewSql: preview } : {}),
      ...(field !== 'yes' ? { fieldParams: { params: field.params, ...(when!.equals !== undefined ? { equals: when!.equals } : {}), ...(when!.in !== undefined ? { in: when!.in } : {}) } } : {}),
    };
    if (when?.affected_rows_gt !== undefined) {
      if (op === 'insert') {
        const rows = stmt.selectStmt ? nodeBody<SelectStmt>(stmt.selectStmt).valuesLists?.length : 1;
        if (rows !== undefined && rows <= when.affected_rows_gt) continue;
      } else {
        refuseVolatile(stmt, 'an approval rule on affected rows', scope);
        counted ??= affectedRowsCount(stmt, op, table);
        Object.assign(need, { affectedRowsGt: when.affected_rows_gt, ...counted });
      }
    }
    chain.push(need);
    if (need.fieldParams === undefined && need.affectedRowsGt === undefined) break;
  }
  for (let i = chain.length - 2; i >= 0; i--) chain[i].otherwise = chain[i + 1];
  return chain[0];
}

const PREVIEW_ROWS = 100;

/** The dry run of the write, as one JSON value; undefined for the shapes a dry run cannot show. */
function previewSql(stmt: InsertStmt & UpdateStmt & DeleteStmt, op: Op, table: ScopedTable, scope: ReadScope, principal: Principal): string | undefined {
  let preview: SelectStmt;
  try {
    const ref = refName(stmt.relation!);
    preview = op === 'insert' ? previewInsert(stmt, table) : op === 'update' ? previewUpdate(stmt, table, ref) : previewDelete(stmt, table, ref);
  } catch {
    return undefined;
  }
  preview.limitCount = { A_Const: { ival: { ival: PREVIEW_ROWS } } };
  preview.limitOption = 'LIMIT_OPTION_COUNT';
  const outer = parseTemplate("SELECT coalesce(json_agg(ormai_preview), '[]') FROM (SELECT) AS ormai_preview", 'approval preview');
  (outer.fromClause![0] as { RangeSubselect: { subquery: Node } }).RangeSubselect.subquery = { SelectStmt: preview };
  // The approvers' preview is forwarded too: its rows meet the same check as the write's.
  checkTenantBinding({ SelectStmt: outer }, scope, principal);
  return deparseVerified([{ SelectStmt: outer }])[0];
}

type Condition = NonNullable<RawPolicy['require_approval'][number]['when']>;

/** A parameter, bare or cast (`$1`, `$1::text`): its number. */
function paramNumber(node: Node | undefined): number | undefined {
  if (!node) return undefined;
  if ('ParamRef' in node) return (node.ParamRef as { number?: number }).number;
  if ('TypeCast' in node) return paramNumber((node.TypeCast as { arg?: Node }).arg);
  return undefined;
}

/** A bound value against a rule's `equals`/`in`, compared as the rule compares constants. */
export function conditionHolds(text: string, when: { equals?: string | number | boolean; in?: Array<string | number | boolean> }): boolean {
  const same = (x: string | number | boolean) => (typeof x === 'number' && text.trim() !== '' && !Number.isNaN(Number(text)) ? Number(text) === x : String(x) === text);
  if (when.equals !== undefined && !same(when.equals)) return false;
  if (when.in !== undefined && !when.in.some(same)) return false;
  return true;
}

/**
 * Whether the statement assigns `field` a value the rule names: 'no', 'yes' (a constant that
 * matches, or a value that may be anything), or the parameters it is assigned from, for the
 * session to compare with their bound values.
 */
function fieldMatches(stmt: InsertStmt & UpdateStmt, op: Op, field: string, when: Condition): 'yes' | 'no' | { params: number[] } {
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
      if (!rows) return 'yes'; // INSERT … SELECT: any value
      for (const row of rows) values.push(row[at]);
    }
  } else {
    setValues(stmt.targetList);
  }
  setValues(stmt.onConflictClause?.targetList);
  const params: number[] = [];
  for (const v of values) {
    const text = bareConstantText(v);
    if (text !== undefined) {
      if (conditionHolds(text, when)) return 'yes';
      continue;
    }
    const n = paramNumber(v);
    // Anything else (an expression, a query) may be any value.
    if (n === undefined) return 'yes';
    params.push(n);
  }
  return params.length > 0 ? { params } : 'no';
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
