// SQL PREPARE and EXECUTE in a session: the statement PREPARE records, and what an EXECUTE runs, as PostgreSQL resolves the name.
//
// PostgreSQL keeps one table of prepared statements per session, filled by protocol Parse and by
// SQL PREPARE alike, and read by Bind and by EXECUTE alike. The session's SessionState is that
// table: a PREPARE's record is added when PostgreSQL confirms it (CommandComplete), and an EXECUTE
// is enforced with the analysis of the statement the name holds, exactly as a Bind/Execute of it.
import type { DeallocateStmt, DiscardStmt, ExecuteStmt, PrepareStmt } from '@pgsql/types';
import type { AnalyzedStatement } from '../analysis/pipeline';
import { constantText } from '../analysis/prepared-sql';
import { nodeBody } from '../analysis/types';
import { UNREADABLE_DRY_RUN } from '../analysis/comments';
import type { PlanParams } from '../budgets/planner';
import { ProxyError } from '../errors/catalogue';
import type { PolicyView } from '../policy/provider';
import { readsRows } from './session-effects';
import { nameKey, type SessionState } from './state';
import { heldOf, isWrite, touchesWriteTarget, type Prepared } from './statements';

const NONE: ReadonlyMap<number, Prepared> = new Map();

/** The record each SQL PREPARE among `statements` gives its name once PostgreSQL confirms it, by statement index. */
export function sqlPrepared(statements: readonly AnalyzedStatement[], tags: Record<string, string>, snap: PolicyView): ReadonlyMap<number, Prepared> {
  if (!statements.some((s) => s.body)) return NONE;
  const records = new Map<number, Prepared>();
  statements.forEach((s, i) => {
    const body = s.body;
    if (!body) return;
    records.set(i, {
      name: nodeBody<PrepareStmt>(s.stmt).name ?? '',
      sql: body.sql,
      // The PREPARE's own text: a reload analyses it again (session.ts, resume).
      agentSql: s.agentSql ?? '',
      types: s.paramTypes ?? [],
      rowLimit: body.rowLimit,
      reads: readsRows(body),
      writes: isWrite(body),
      targets: touchesWriteTarget(body),
      statements: [body],
      tags,
      held: heldOf(body, s.agentSql ?? ''),
      snap,
      sqlPrepare: true,
    });
  });
  return records;
}

/**
 * The statement each EXECUTE among `statements` runs, by index: one PREPAREd earlier in the same
 * text, or one PostgreSQL holds for the session (a promise when a change of that name from an
 * earlier batch is unanswered). EXECUTE of a name PostgreSQL does not hold is refused, as Bind
 * of one is: the proxy knows every statement the session holds.
 */
export function executeTargets(state: SessionState, statements: readonly AnalyzedStatement[], prepared: ReadonlyMap<number, Prepared>): Map<number, Prepared> | Promise<void> | ProxyError {
  const targets = new Map<number, Prepared>();
  if (!statements.some((s) => s.nodeType === 'ExecuteStmt')) return targets;
  // What this text itself changes before each EXECUTE: a PREPARE adds, DEALLOCATE and DISCARD ALL remove.
  const here = new Map<string, Prepared | undefined>();
  let cleared = false;
  for (const [i, s] of statements.entries()) {
    if (s.body) here.set(nameKey(prepared.get(i)!.name), prepared.get(i));
    if (s.nodeType === 'DeallocateStmt') {
      const d = nodeBody<DeallocateStmt>(s.stmt);
      if (d.isall || d.name === undefined) {
        here.clear();
        cleared = true;
      } else here.set(nameKey(d.name), undefined);
    }
    if (s.nodeType === 'DiscardStmt' && nodeBody<DiscardStmt>(s.stmt).target === 'DISCARD_ALL') {
      here.clear();
      cleared = true;
    }
    if (s.nodeType !== 'ExecuteStmt') continue;
    const name = nodeBody<ExecuteStmt>(s.stmt).name ?? '';
    const key = nameKey(name);
    let target: Prepared | undefined;
    if (here.has(key)) target = here.get(key);
    else if (!cleared) {
      const found = state.statement(name);
      if (found.wait) return found.wait;
      target = found.value;
    }
    if (!target) return new ProxyError('prepared_statement_not_found', { message: `prepared statement "${name}" does not exist` });
    targets.set(i, target);
  }
  return targets;
}

/**
 * What an EXECUTE runs, as the session budgets, caps and audits it: the prepared statement's
 * analysis (its rewritten text, row limit, write rules), under the EXECUTE's own text.
 *
 * The write's reason: the prepared body was checked with the PREPARE's (or Parse's) comment, as
 * any Parse is, so a required reason was given there. An EXECUTE's own reason comment, when it
 * has one, is what the agent says about this execution, and is the one recorded (audit event,
 * approval request). A dry run is decided when the statement is prepared: an EXECUTE that asks
 * for one of a statement prepared as a real write is refused, never run as a write.
 */
export function executedStatement(execute: AnalyzedStatement, target: Prepared, tags: Readonly<Record<string, string>>): AnalyzedStatement | ProxyError {
  const body = target.statements[0];
  if (!body) return { ...execute };
  const asksDryRun = tags[UNREADABLE_DRY_RUN] !== undefined || (tags.dry_run !== undefined && !['false', '0'].includes(tags.dry_run.trim().toLowerCase()));
  if (asksDryRun && isWrite(body)) {
    return new ProxyError('statement_not_allowed', {
      message: `prepared statement "${target.name}" is a write, not a dry run`,
      hint: "A dry run is prepared as one: put /*dry_run='true'*/ on the PREPARE, and EXECUTE that statement.",
    });
  }
  const reason = tags.reason?.trim();
  return {
    ...body,
    agentSql: execute.agentSql,
    ...(body.write && reason ? { write: { ...body.write, reason } } : {}),
  };
}

/**
 * The EXECUTE's arguments as the parameters of the prepared statement, for the planner and an
 * approval's count: constants as text, casts of constants by their constant, `$n` as the value
 * the extended protocol bound to it. Types are the statement's declared ones (0: inferred).
 */
export function executeParams(execute: AnalyzedStatement, target: Prepared, outer?: PlanParams): PlanParams {
  const args = nodeBody<ExecuteStmt>(execute.stmt).params ?? [];
  const values: Array<Buffer | null> = [];
  const formats: number[] = [];
  for (const arg of args) {
    let node = arg;
    while ('TypeCast' in node && node.TypeCast.arg) node = node.TypeCast.arg;
    if ('ParamRef' in node && outer) {
      const n = (node.ParamRef.number ?? 0) - 1;
      const f = outer.formats.length === 0 ? 0 : outer.formats.length === 1 ? outer.formats[0] : (outer.formats[n] ?? 0);
      values.push(outer.values[n] ?? null);
      formats.push(f);
      continue;
    }
    const text = constantText(node);
    values.push(text === null || text === undefined ? null : Buffer.from(text, 'utf8'));
    formats.push(0);
  }
  const types = args.map((_, i) => target.types[i] ?? 0);
  return { types, values, formats };
}
