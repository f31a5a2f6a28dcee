// What a session remembers between extended-protocol messages, and how it reads an analysed statement.
import type { AnalyzedStatement } from '../analysis/pipeline';
import { visibility } from '../analysis/rewrite/catalog-views';
import type { AgentApproval } from '../analysis/rewrite/virtual';
import type { Approval } from '../approvals/types';
import type { PolicyView } from '../policy/provider';
import type { ReadScope } from '../policy/scope';
import { captureSpec, type CaptureSpec } from '../results/capture-columns';
import { explainScrubber } from '../results/explain';
import type { RowBudget, RowCap } from '../results/row-cap';
import type { WriteErrorScope } from '../results/write-errors';
import type { HeldWrite } from './approval-hold';
import type { PendingItem } from './pending';

/** A prepared statement, by name ('' is the unnamed one). */
export interface Prepared {
  /** The statement's name ('' is the unnamed one). */
  name: string;
  sql: string;
  /** The agent's text, for the audit trail. */
  agentSql: string;
  types: number[];
  rowLimit?: number;
  /** Reads are checked against the scan budget when bound. */
  reads: boolean;
  writes: boolean;
  /** Names a write target (a write or a dry run): errors are reduced. */
  targets: boolean;
  statements: AnalyzedStatement[];
  tags: Record<string, string>;
  /** The analysed write, when a require_approval rule may hold it. */
  held?: { originalSql: string; write: HeldWrite['write'] };
  /** The policy it was analysed under: its Bind and Execute are budgeted and audited under the same one. */
  snap: PolicyView;
  /** PostgreSQL no longer holds it (the proxy's re-Parse after a reload failed): the next Bind parses it again. */
  orphan?: boolean;
  /** Prepared by SQL PREPARE: `agentSql` is the PREPARE's text, and `statements` holds its body. */
  sqlPrepare?: true;
  /** A Parse'd EXECUTE, once bound: the statement it runs (its portal is enforced with that statement's analysis). */
  executes?: Prepared;
}

/** A bound portal (or a cursor, which is a portal too), until its transaction ends. */
export interface Portal {
  /**
   * A cursor the agent declared: the rows of every FETCH from it count against one cap.
   * `declaration`: its DECLARE, which names what an Execute of the cursor reads in the audit trail.
   */
  cursor?: { limit: number | undefined; budget: RowBudget; declaration?: AnalyzedStatement };
  cap: RowCap;
  /** Bind's result format codes: the capture columns' formats follow from them. */
  resultFormats: number[];
  /** Runs a write (or is unknown): refused whenever the rate-limit store is unavailable. */
  writes: boolean;
  targets: boolean;
  prepared?: Prepared;
  /**
   * A portal of a Parse'd FETCH or MOVE: the cursor it named at Bind. PostgreSQL looks the name
   * up again at Execute, so the Execute runs only while the name still holds this cursor.
   */
  fetches?: { name: string; cursor: Portal | undefined };
  /** A write a require_approval rule may hold: checked at Execute, with these parameters. */
  held?: HeldWrite;
}

/** What a prepared write needs to be held at Execute, when a require_approval rule may hold it. */
export function heldOf(statement: AnalyzedStatement | undefined, agentSql: string): Prepared['held'] {
  return statement?.write?.approval ? { originalSql: agentSql, write: statement.write as HeldWrite['write'] } : undefined;
}

/** Changes data when run (a dry run does not: it runs its preview instead). */
export function isWrite(statement: AnalyzedStatement): boolean {
  // A SQL PREPARE of a write writes nothing: its EXECUTE does.
  return statement.body === undefined && touchesWriteTarget(statement) && !statement.write?.dryRun;
}

/** Names a write target, so reads the real table: the database's errors for it are reduced (dry runs included). */
export function touchesWriteTarget(statement: AnalyzedStatement): boolean {
  return statement.kind === 'write' || statement.writes.length > 0 || (statement.body !== undefined && touchesWriteTarget(statement.body));
}

/** Its errors may be a write's: it writes, or it is a COMMIT (deferred constraints are checked there). */
export function mayRaiseWriteErrors(statement: AnalyzedStatement): boolean {
  return touchesWriteTarget(statement) || isCommit(statement);
}

/** A fresh capture spec for one execution of a write that appends capture columns. */
export function captureOf(statement: AnalyzedStatement, resultFormats: readonly number[] = []): CaptureSpec | undefined {
  const plan = statement.write?.capture;
  return plan ? captureSpec(plan.width, plan.agentReturning, resultFormats) : undefined;
}

/** For the write-error filter: the hidden columns of every write target among `statements`, and the constraints and indexes the scope shows. */
export function writeErrorsOf(statements: readonly AnalyzedStatement[], scope: ReadScope): { writeErrors: WriteErrorScope } {
  const names = statements.flatMap((s) => (s.body ?? s).write?.hidden ?? []);
  return {
    writeErrors: {
      ...(names.length > 0 ? { hidden: new Set(names) } : {}),
      ...(scope.catalog.objects ? { visibleObjects: visibility(scope).objectNames } : {}),
    },
  };
}

/** The TransactionStmt kind of a transaction-control statement, else undefined. */
function transactionKind(statement: AnalyzedStatement): string | undefined {
  if (statement.kind !== 'transaction' || !('TransactionStmt' in statement.stmt)) return undefined;
  return (statement.stmt.TransactionStmt as { kind?: string }).kind;
}

/** COMMIT, END, COMMIT AND CHAIN: what makes a transaction's writes stay. */
export function isCommit(statement: AnalyzedStatement): boolean {
  return transactionKind(statement) === 'TRANS_STMT_COMMIT';
}

/** BEGIN, START TRANSACTION. */
export function isBegin(statement: AnalyzedStatement): boolean {
  const kind = transactionKind(statement);
  return kind === 'TRANS_STMT_BEGIN' || kind === 'TRANS_STMT_START';
}

/**
 * How a simple Query is sent so that no write of it commits before its audit event is durable
 * (docs: the audit trail, "writes commit after their events"):
 *   plain    as it is (no write, or one that cannot commit in this Query);
 *   wrap     in a block the proxy opens (an autocommit write): COMMIT follows the events;
 *   strip    its final COMMIT is held back and sent once the events are durable (a leading BEGIN
 *            may open the block, else the proxy opens it when none is open);
 *   refuse   a COMMIT anywhere else in a text with writes.
 */
export function commitShape(statements: readonly AnalyzedStatement[], writes: boolean, earlierWrites: boolean, inBlock: boolean): 'plain' | 'wrap' | 'strip' | 'refuse' {
  const control = statements.map((s) => s.kind === 'transaction');
  const commits = statements.filter(isCommit).length;
  if (commits === 0) return writes && !inBlock && !control.some(Boolean) ? 'wrap' : 'plain';
  if (!writes && !earlierWrites) return 'plain';
  const last = statements.length - 1;
  const shaped = isCommit(statements[last]) && control.every((c, i) => !c || i === last || (i === 0 && isBegin(statements[0])));
  return shaped ? 'strip' : 'refuse';
}

/** Both texts when the proxy sent something other than what the agent wrote (error positions are then moved). */
export function texts(sent: string, agent: string): PendingItem['texts'] {
  return sent === agent ? undefined : { sent, agent };
}

/** An approval as its requester sees it in ormai.approvals. */
export function agentApproval(a: Approval): AgentApproval {
  return {
    id: a.id,
    state: a.state,
    operation: a.operation,
    model: a.model,
    rule: a.rule,
    ...(a.reason ? { reason: a.reason } : {}),
    createdAt: a.createdAt,
    expiresAt: a.expiresAt,
    received: a.approvals.length,
    required: a.approvers,
    ...(a.result?.rowsAffected !== undefined ? { rowsAffected: a.result.rowsAffected } : {}),
    ...(a.result?.error ? { error: `${a.result.error.code}: ${a.result.error.message}` } : {}),
  };
}

/** The hidden index names an EXPLAIN's plan must not show (results/explain.ts), per statement; undefined when no statement is one. */
export function explainsOf(statements: readonly AnalyzedStatement[], scope: ReadScope | undefined): { explains?: Array<((text: string) => string) | undefined> } {
  if (!scope?.catalog.objects || !statements.some((s) => s.nodeType === 'ExplainStmt')) return {};
  const pattern = explainPattern(scope);
  return pattern ? { explains: statements.map((s) => (s.nodeType === 'ExplainStmt' ? pattern : undefined)) } : {};
}

const explainPatterns = new WeakMap<ReadScope, ((text: string) => string) | null>();

function explainPattern(scope: ReadScope): ((text: string) => string) | undefined {
  let pattern = explainPatterns.get(scope);
  if (pattern === undefined) {
    pattern = explainScrubber(visibility(scope).hiddenIndexNames) ?? null;
    explainPatterns.set(scope, pattern);
  }
  return pattern ?? undefined;
}
