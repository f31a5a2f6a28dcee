// Limits on how much a write may change: max_affected_rows, decided inside the statement, and the require_approval rule that holds a write.
import type { DeleteStmt, InsertStmt, Node, ResTarget, SelectStmt, UpdateStmt } from '@pgsql/types';
import type { Principal } from '../../auth/principal';
import { ProxyError } from '../../errors/catalogue';
import type { RawPolicy } from '../../policy/schema';
import type { ReadScope, ScopedTable, VisibleColumn } from '../../policy/scope';
import { deparseVerified } from '../deparse';
import { callsOneOf } from '../functions';
import { nodeBody } from '../types';
import { previewDelete, previewInsert, previewUpdate, targetOf } from './dry-run';
import { andExpr, cloneTree, parseTemplate, quoteIdent, walk } from './nodes';
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
   * An UPDATE's or DELETE's dry run over every row it matches, as one hash of each row whole
   * (count, key, values before and after, but the values after of its time columns): the
   * executor reads it again in the write's snapshot, and a write whose rows are not those the
   * approvers agreed to, past the 100 the preview lists too, does not run.
   */
  previewDigestSql?: string;
  /**
   * An UPDATE's assigned columns of a date or time type: the statement gives them the time it
   * runs (now(), its date), so their values after are not compared with the preview's. Every
   * other value after is (in the hash, and for the rows the preview lists): the approved write
   * must store what the approvers were shown.
   */
  timeColumns?: string[];
  /**
   * The assigned columns whose values read the database (a sub-select, another column): they may
   * change between the preview and the approved run, and the executor compares them with what
   * the approvers saw. The others (constants, parameters, now()) are the statement's own.
   */
  comparedColumns?: string[];
  /**
   * The rule's field condition, when the statement assigns the field only constants and
   * parameters (with any casts): `SELECT <condition>`, true when PostgreSQL, converting each value
   * to the column's type as the write would, finds one the rule names. The session asks it with
   * the write's parameters (fieldCheckParams, the ones it names).
   */
  fieldCheckSql?: string;
  fieldCheckParams?: number[];
  /** fieldCheckSql's condition, for the write's own guard (approvalGuard). */
  fieldCondition?: Node;
  /** The field the rule's condition is on, for an INSERT's guard of each value (guardInsertValues). */
  field?: { column: VisibleColumn; when: Condition };
  /**
   * The statement as the approvers' executor runs it, without the guard the write carries when
   * it is sent unheld (approvalGuard): set on the first rule of the chain, when there is a guard.
   */
  statementSql?: string;
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
    const called = callsOneOf(node, volatile, scope.catalog.userOperators);
    if (called !== undefined) throw refuse(called);
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
  let preview: { sql: string; digestSql?: string; timeColumns: string[] } | undefined | null = null;
  let compared: string[] | undefined;
  let counted: { countSql: string; countParams: number[] } | undefined;
  for (const rule of scope.policy.raw.require_approval) {
    if (!operations.has(rule.operation) || rule.model.toLowerCase().split('.').pop() !== table.name) continue;
    const when = rule.when;
    // A DELETE assigns nothing: a rule on a field holds every one it names (the rows may hold the value).
    const field = when?.field !== undefined && op !== 'delete' ? fieldMatches(stmt, op, table, when.field.toLowerCase(), when) : 'yes';
    if (field === 'no') continue;
    if (preview === null) preview = previewSql(stmt, op, table, scope, principal);
    const need: ApprovalNeed = {
      rule: describeRule(rule),
      approvers: rule.approvers,
      expiresInS: rule.expires_in_s,
      ...(preview
        ? { previewSql: preview.sql, comparedColumns: (compared ??= readingColumns(stmt, op)), ...(preview.digestSql ? { previewDigestSql: preview.digestSql, timeColumns: preview.timeColumns } : {}) }
        : {}),
      ...(field !== 'yes' ? fieldCheck(field) : {}),
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
    if (need.fieldCondition === undefined && need.affectedRowsGt === undefined) break;
  }
  for (let i = chain.length - 2; i >= 0; i--) chain[i].otherwise = chain[i + 1];
  return chain[0];
}

/** The columns an UPDATE or INSERT assigns from a value that reads the database (a sub-select, a column), or from a query. */
function readingColumns(stmt: InsertStmt & UpdateStmt, op: Op): string[] {
  const reads = (value: Node | undefined) => value !== undefined && walk([value], (node) => 'SubLink' in node || 'ColumnRef' in node);
  const out = new Set<string>();
  if (op === 'update') {
    for (const item of stmt.targetList ?? []) {
      const res = (item as { ResTarget: ResTarget }).ResTarget;
      if (res.name && reads(res.val)) out.add(res.name);
    }
  } else if (op === 'insert') {
    const cols = (stmt.cols ?? []).map((c) => (c as { ResTarget: ResTarget }).ResTarget.name ?? '');
    const select = stmt.selectStmt ? nodeBody<SelectStmt>(stmt.selectStmt) : undefined;
    const rows = select?.valuesLists?.map((l) => (l as { List: { items: Node[] } }).List.items);
    // INSERT … SELECT: every value comes from the query.
    cols.forEach((c, i) => {
      if (!rows || rows.some((row) => reads(row[i]))) out.add(c);
    });
  }
  return [...out];
}

const PREVIEW_ROWS = 100;

/**
 * The dry run of the write, as one JSON value, and for an UPDATE or DELETE the hash of all its
 * rows (ApprovalNeed.previewDigestSql); undefined for the shapes a dry run cannot show.
 */
function previewSql(stmt: InsertStmt & UpdateStmt & DeleteStmt, op: Op, table: ScopedTable, scope: ReadScope, principal: Principal): { sql: string; digestSql?: string; timeColumns: string[] } | undefined {
  let preview: SelectStmt;
  try {
    const ref = refName(stmt.relation!);
    preview = op === 'insert' ? previewInsert(stmt, table) : op === 'update' ? previewUpdate(stmt, table, ref) : previewDelete(stmt, table, ref);
  } catch {
    return undefined;
  }
  // Every row it matches, before the preview's cap, each as the text of its columns but the
  // values after of its time columns.
  const assigned = op === 'update' ? (stmt.targetList ?? []).map((t) => (t as { ResTarget: ResTarget }).ResTarget.name ?? '') : [];
  const timeColumns = assigned.filter((name) => TIME_TYPES.has(table.columns.find((c) => c.name === name)?.typeOid ?? 0));
  let digestSql: string | undefined;
  if (op !== 'insert') {
    // The whole row as text (no column named: a table's own affected_rows column cannot clash),
    // with its time columns' values after left out; sha256, which FIPS builds keep.
    const rows = cloneTree(preview);
    for (const t of rows.targetList ?? []) {
      const res = (t as { ResTarget: ResTarget }).ResTarget;
      if (timeColumns.some((c) => res.name === `${c}_after`)) res.val = { A_Const: { isnull: true, location: -1 } } as Node;
    }
    const hash = (text: string) => `encode(sha256(convert_to(${text}, 'UTF8')), 'hex')`;
    const digest = parseTemplate(
      `SELECT ${hash("coalesce(string_agg(ormai_rows.h, '' ORDER BY ormai_rows.h), '')")} FROM (SELECT ${hash('CAST(ormai_digest AS text)')} AS h FROM (SELECT) AS ormai_digest) AS ormai_rows`,
      'approval preview digest',
    );
    const inner = ((digest.fromClause![0] as { RangeSubselect: { subquery: Node } }).RangeSubselect.subquery as { SelectStmt: SelectStmt }).SelectStmt;
    (inner.fromClause![0] as { RangeSubselect: { subquery: Node } }).RangeSubselect.subquery = { SelectStmt: rows };
    checkTenantBinding({ SelectStmt: digest }, scope, principal);
    digestSql = deparseVerified([{ SelectStmt: digest }])[0];
  }
  preview.limitCount = { A_Const: { ival: { ival: PREVIEW_ROWS } } };
  preview.limitOption = 'LIMIT_OPTION_COUNT';
  const outer = parseTemplate("SELECT coalesce(json_agg(ormai_preview), '[]') FROM (SELECT) AS ormai_preview", 'approval preview');
  (outer.fromClause![0] as { RangeSubselect: { subquery: Node } }).RangeSubselect.subquery = { SelectStmt: preview };
  // The approvers' preview is forwarded too: its rows meet the same check as the write's.
  checkTenantBinding({ SelectStmt: outer }, scope, principal);
  return { sql: deparseVerified([{ SelectStmt: outer }])[0], ...(digestSql ? { digestSql } : {}), timeColumns };
}

/** date, time, timetz, timestamp, timestamptz, interval. */
const TIME_TYPES = new Set([1082, 1083, 1266, 1114, 1184, 1186]);

type Condition = NonNullable<RawPolicy['require_approval'][number]['when']>;

/** A value PostgreSQL can judge before the write runs: a constant or a parameter, under any casts the agent wrote. */
function judgeable(node: Node | undefined): boolean {
  if (!node) return false;
  if ('A_Const' in node || 'ParamRef' in node) return true;
  if ('TypeCast' in node) return judgeable((node.TypeCast as { arg?: Node }).arg);
  return false;
}

/**
 * Whether the statement assigns `field` a value the rule may name: 'no' (it does not assign the
 * field), 'yes' (a value that may be anything: an expression, a query, a column), or the
 * constants and parameters it assigns, for PostgreSQL to judge (fieldCheck). Values are never
 * compared here: PostgreSQL converts them to the column's type (`0.4` stored in an integer
 * column is 0, `'cancelled   '` in a char(n) is 'cancelled', a parameter declared varchar(9)
 * loses its tenth character), so only it can say what the write would store.
 */
function fieldMatches(stmt: InsertStmt & UpdateStmt, op: Op, table: ScopedTable, field: string, when: Condition): 'yes' | 'no' | { column: VisibleColumn; values: Node[]; when: Condition } {
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
    } else if (table.columns.find((c) => c.name === field)?.hasDefault) {
      // Left out, the column takes its default, which may be a value the rule names.
      return 'yes';
    }
  } else {
    setValues(stmt.targetList);
  }
  setValues(stmt.onConflictClause?.targetList);
  if (values.length === 0) return 'no';
  const column = table.columns.find((c) => c.name === field);
  if (!column || !values.every(judgeable)) return 'yes';
  return { column, values: values as Node[], when };
}

/** A rule value as SQL text of the column's type. */
function ruleValue(value: string | number | boolean, type: string): string {
  return `CAST('${String(value).replace(/'/g, "''")}' AS ${type})`;
}

/** `(CAST(<value> AS <column type>) IN (<the rule's values>)) IS TRUE`: does PostgreSQL store one of the rule's values? */
function valueCondition(value: Node, column: VisibleColumn, when: Condition): Node {
  const tests: string[] = [];
  if (when.equals !== undefined) tests.push(`CAST(NULL AS ${column.type}) IN (${ruleValue(when.equals, column.type)})`);
  if (when.in !== undefined) tests.push(`CAST(NULL AS ${column.type}) IN (${when.in.map((v) => ruleValue(v, column.type)).join(', ')})`);
  const select = parseTemplate(`SELECT (${tests.join(' AND ')}) IS TRUE`, 'approval rule condition');
  const condition = (select.targetList![0] as { ResTarget: ResTarget }).ResTarget.val!;
  // The NULL placeholders, found before any is filled: the value may itself be a cast of NULL.
  const placeholders: Array<{ arg?: Node }> = [];
  walk([condition], (node) => {
    const cast = (node as { TypeCast?: { arg?: Node } }).TypeCast;
    if (cast && (cast.arg as { A_Const?: { isnull?: boolean } } | undefined)?.A_Const?.isnull) placeholders.push(cast);
  });
  for (const cast of placeholders) cast.arg = cloneTree(value);
  return condition;
}

/**
 * The rule's condition over every value the statement assigns the field (any of them), as SQL
 * for the session and as a tree for the guard.
 */
function fieldCheck(field: { column: VisibleColumn; values: Node[]; when: Condition }): Pick<ApprovalNeed, 'fieldCheckSql' | 'fieldCheckParams' | 'fieldCondition' | 'field'> {
  const { column, values, when } = field;
  const conditions = values.map((v) => valueCondition(v, column, when));
  const condition = conditions.length === 1 ? conditions[0] : ({ BoolExpr: { boolop: 'OR_EXPR', args: conditions } } as Node);
  const used = new Set<number>();
  walk([condition], (node) => {
    if ('ParamRef' in node) used.add((node.ParamRef as { number?: number }).number ?? 0);
  });
  const select: SelectStmt = { targetList: [{ ResTarget: { val: cloneTree(condition) } }], limitOption: 'LIMIT_OPTION_DEFAULT', op: 'SETOP_NONE' };
  return { fieldCheckSql: deparseVerified([{ SelectStmt: select }])[0], fieldCheckParams: [...used].sort((a, b) => a - b), fieldCondition: condition, field: { column, when } };
}

/** The marker the database's error carries when a write sent unheld meets a require_approval rule as it runs (approvalGuard). */
export const APPROVAL_MARKER = 'ormai:approval_required:';

/**
 * The guard a write carries when the session sends it without holding it (an UPDATE or DELETE
 * whose rules the session judged before it ran): as it runs, in its own snapshot and the agent's
 * session settings, PostgreSQL counts the rows again (as max_affected_rows does) and judges the
 * assigned values again; when a rule of the chain holds after all (rows inserted meanwhile, a
 * value that reads differently under the session's DateStyle, a time that moved), the write
 * fails with the marker and nothing is written. Undefined when no rule of the chain can turn.
 */
export function approvalGuard(stmt: UpdateStmt & DeleteStmt, op: Op, table: ScopedTable, first: ApprovalNeed): Node | undefined {
  const whens: string[] = [];
  const conditions: Node[] = [];
  let counts = false;
  for (const [need, index] of turnableRules(first)) {
    const parts = [...(need.affectedRowsGt !== undefined ? [`ormai_count.n > ${need.affectedRowsGt}`] : []), ...(need.fieldCondition ? ['true'] : [])];
    // The marker is a sub-select's, so that the planner cannot fold the failing cast before it runs.
    const marker = need.affectedRowsGt !== undefined ? `(SELECT '${APPROVAL_MARKER}${index}:' || ormai_count.n)` : `(SELECT '${APPROVAL_MARKER}${index}:value')`;
    whens.push(`WHEN ${parts.join(' AND ')} THEN CAST(${marker} AS int) > 0`);
    if (need.fieldCondition) conditions.push(need.fieldCondition);
    if (need.affectedRowsGt !== undefined) counts = true;
  }
  if (whens.length === 0) return undefined;
  const guard = parseTemplate(`SELECT WHERE (SELECT CASE ${whens.join(' ')} ELSE true END FROM (SELECT) AS ormai_count)`, 'approval guard').whereClause as {
    SubLink: { subselect: { SelectStmt: SelectStmt } };
  };
  const sub = guard.SubLink.subselect.SelectStmt;
  // Rules on values alone need no count.
  (sub.fromClause![0] as { RangeSubselect: { subquery: Node } }).RangeSubselect.subquery = { SelectStmt: counts ? countRows(stmt, op, table) : parseTemplate('SELECT 0 AS n', 'approval guard') };
  // Each `true` placeholder of a WHEN with a field condition takes that condition.
  const target = (sub.targetList![0] as { ResTarget: ResTarget }).ResTarget.val as { CaseExpr: { args: Array<{ CaseWhen: { expr: Node } }> } };
  let c = 0;
  for (const arm of target.CaseExpr.args) {
    const expr = arm.CaseWhen.expr as { BoolExpr?: { args: Node[] } } & { A_Const?: { boolval?: unknown } };
    const swap = (n: Node): Node => ('A_Const' in n && (n.A_Const as { boolval?: unknown }).boolval !== undefined ? conditions[c++] : n);
    if (expr.BoolExpr) expr.BoolExpr.args = expr.BoolExpr.args.map(swap);
    else arm.CaseWhen.expr = swap(arm.CaseWhen.expr);
  }
  return guard as unknown as Node;
}

/**
 * An INSERT sent unheld: each value a rule on a field judged (a constant or a parameter) becomes
 * `CASE WHEN <the rule's condition on it> THEN <the marker's failing cast> ELSE <value> END`, in
 * every row and in ON CONFLICT's SET, so that PostgreSQL judges it again as it runs, with the
 * types it gives the parameters there and the session's settings (approvalGuard for the rest).
 */
export function guardInsertValues(stmt: InsertStmt, first: ApprovalNeed): void {
  for (const [need, index] of turnableRules(first)) {
    const field = need.field;
    if (!field) continue;
    const wrap = (value: Node): Node => {
      const template = parseTemplate(
        `SELECT CASE WHEN true THEN CAST(CAST(CAST((SELECT '${APPROVAL_MARKER}${index}:value') AS int) AS text) AS ${field.column.type}) ELSE NULL END`,
        'approval guard',
      );
      const expr = (template.targetList![0] as { ResTarget: ResTarget }).ResTarget.val as { CaseExpr: { args: Array<{ CaseWhen: { expr: Node } }>; defresult: Node } };
      expr.CaseExpr.args[0].CaseWhen.expr = valueCondition(value, field.column, field.when);
      expr.CaseExpr.defresult = value;
      return expr as unknown as Node;
    };
    const at = (stmt.cols ?? []).findIndex((c) => (c as { ResTarget: ResTarget }).ResTarget.name === field.column.name);
    const select = stmt.selectStmt ? nodeBody<SelectStmt>(stmt.selectStmt) : undefined;
    if (at >= 0) {
      for (const row of select?.valuesLists ?? []) {
        const items = (row as { List: { items: Node[] } }).List.items;
        if (items[at] && judgeable(items[at])) items[at] = wrap(items[at]);
      }
    }
    for (const item of stmt.onConflictClause?.targetList ?? []) {
      const res = (item as { ResTarget: ResTarget }).ResTarget;
      if (res.name === field.column.name && res.val && judgeable(res.val)) res.val = wrap(res.val);
    }
  }
}

/** Does an INSERT's chain have a rule on a field its guard judges again (guardInsertValues has values to wrap)? */
export function judgesInsertValues(first: ApprovalNeed): boolean {
  for (const [need] of turnableRules(first)) if (need.field) return true;
  return false;
}

/**
 * The rules of a chain a write's guard judges again as it runs, with their places in the chain:
 * up to the first that holds whatever the write (approvalNeed ends the chain there).
 */
function* turnableRules(first: ApprovalNeed): Generator<[ApprovalNeed, number]> {
  let index = 0;
  for (let need: ApprovalNeed | undefined = first; need; need = need.otherwise, index++) {
    if (need.affectedRowsGt === undefined && need.fieldCondition === undefined) return;
    yield [need, index];
  }
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
