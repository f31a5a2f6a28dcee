// Classification: each parsed statement's kind and written tables, and refusal of every kind not allowed.
import type { DeclareCursorStmt, ExecuteStmt, ExplainStmt, FetchStmt, Node, PrepareStmt, RangeVar, TransactionStmt, VariableSetStmt, VariableShowStmt } from '@pgsql/types';
import { ProxyError } from '../errors/catalogue';
import { notAllowed, statementName } from './labels';
import { checkExecuteArguments, parameterTypeOids } from './prepared-sql';
import { checkSet, checkShow, checkTransactionOptions } from './settings';
import { nodeBody, nodeTypeOf, type AnalysisContext, type AnalyzedStatement, type WriteTarget } from './types';

/**
 * Classifies one top-level statement, or throws the ProxyError that refuses it. Fail closed:
 * a node type not handled below is refused, so a grammar addition never slips through.
 */
export function classify(node: Node, ctx: AnalysisContext): AnalyzedStatement {
  const nodeType = nodeTypeOf(node);
  const done = (kind: AnalyzedStatement['kind'], writes: WriteTarget[] = []): AnalyzedStatement => ({
    kind,
    nodeType,
    stmt: node,
    writes,
    sql: '',
  });
  switch (nodeType) {
    case 'SelectStmt':
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt': {
      const writes = checkQuery(node, ctx);
      return done(writes.length > 0 ? 'write' : 'read', writes);
    }
    case 'ExplainStmt':
      checkExplain(nodeBody<ExplainStmt>(node), ctx);
      return done('read');
    case 'TransactionStmt':
      checkTransaction(nodeBody<TransactionStmt>(node));
      return done('transaction');
    case 'VariableSetStmt':
      return done(checkSet(nodeBody<VariableSetStmt>(node), ctx));
    case 'VariableShowStmt':
      checkShow(nodeBody<VariableShowStmt>(node));
      return done('session');
    // What drivers and pools send on their own to tidy a session; each acts only on the session's
    // own statements, portals and listeners (the session follows PostgreSQL's answer, session/state.ts).
    case 'DeclareCursorStmt':
      checkDeclare(nodeBody<DeclareCursorStmt>(node), ctx);
      return done('read');
    case 'FetchStmt':
      // FETCH reads a cursor the session declared (its query was checked then); MOVE only moves it.
      return done(nodeBody<FetchStmt>(node).ismove ? 'session' : 'read');
    case 'PrepareStmt': {
      // The body is what a Parse of the same text would be: classified (and later checked and
      // rewritten, pipeline.ts) under the same rules. PREPARE itself runs nothing.
      const prepare = nodeBody<PrepareStmt>(node);
      const paramTypes = parameterTypeOids(prepare, ctx);
      if (!prepare.query) throw new ProxyError('statement_not_understood', { message: 'PREPARE without a statement is not understood' });
      return { ...done('session'), body: classify(prepare.query, ctx), paramTypes };
    }
    case 'ExecuteStmt':
      // Runs a statement PostgreSQL holds; the session enforces that statement's analysis.
      checkExecuteArguments(nodeBody<ExecuteStmt>(node), ctx);
      return done('session');
    case 'DeallocateStmt':
    case 'ClosePortalStmt':
    case 'DiscardStmt':
    case 'UnlistenStmt':
      return done('session');
    case 'MergeStmt':
      throw notAllowed(nodeType, nodeBody(node), ' is not supported yet');
    default:
      throw notAllowed(nodeType, nodeBody(node));
  }
}

const OPS = { InsertStmt: 'insert', UpdateStmt: 'update', DeleteStmt: 'delete' } as const;

/**
 * Walks a whole SELECT/INSERT/UPDATE/DELETE tree (iteratively: trees can be deep) and returns
 * every table it writes. Clauses are recognised by their field names wherever they occur, so
 * a SELECT nested unwrapped in a set operation (larg/rarg) is checked like any other, and a
 * data-modifying statement below the top-level WITH is still seen (PostgreSQL rejects it).
 */
function checkQuery(root: Node, ctx: AnalysisContext): WriteTarget[] {
  const writes: WriteTarget[] = [];
  const seen = new Set<string>();
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (value === null || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push(value[i]);
      continue;
    }
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
      switch (key) {
        case 'intoClause':
          throw new ProxyError('statement_not_allowed', {
            message: 'SELECT ... INTO is not allowed',
            hint: 'SELECT INTO creates a table. Use a plain SELECT and keep the result on your side.',
          });
        case 'lockingClause':
          throw lockingRefusal(child as Node[]);
        case 'MergeStmt':
          throw notAllowed(key, child as Record<string, unknown>, ' is not supported yet');
        case 'InsertStmt':
        case 'UpdateStmt':
        case 'DeleteStmt': {
          const target = writeTarget((child as { relation?: RangeVar }).relation, OPS[key]);
          const id = `${target.op}:${target.schema ?? ''}.${target.name}`;
          if (!seen.has(id)) {
            seen.add(id);
            writes.push(target);
          }
        }
      }
      if (child !== null && typeof child === 'object') stack.push(child);
    }
  }
  for (const target of writes) {
    if (!ctx.writeGate || !ctx.writeGate(target)) {
      const table = target.schema ? `${target.schema}.${target.name}` : target.name;
      throw new ProxyError('model_writes_disabled', { message: `${target.op.toUpperCase()} on ${table} is not allowed` });
    }
  }
  return writes;
}

const LOCKS: Record<string, string> = {
  LCS_FORUPDATE: 'FOR UPDATE',
  LCS_FORNOKEYUPDATE: 'FOR NO KEY UPDATE',
  LCS_FORSHARE: 'FOR SHARE',
  LCS_FORKEYSHARE: 'FOR KEY SHARE',
};

function lockingRefusal(clauses: Node[] | undefined): ProxyError {
  const first = clauses?.[0];
  const strength = first && 'LockingClause' in first ? first.LockingClause.strength : undefined;
  return new ProxyError('statement_not_allowed', {
    message: `SELECT ... ${LOCKS[strength ?? ''] ?? 'FOR UPDATE/SHARE'} is not allowed`,
    hint: 'Reads through the proxy take no row locks. Remove the locking clause; to change rows, use UPDATE directly.',
  });
}

function writeTarget(relation: RangeVar | undefined, op: WriteTarget['op']): WriteTarget {
  if (!relation?.relname || relation.catalogname) {
    // A database-qualified name (db.schema.table) cannot be checked against a policy of tables.
    throw new ProxyError('statement_not_understood', {
      message: `${op.toUpperCase()} target must be a table or schema.table`,
    });
  }
  return relation.schemaname
    ? { schema: relation.schemaname, name: relation.relname, op }
    : { name: relation.relname, op };
}

/** EXPLAIN options that only shape the output; ANALYZE (which runs the statement) must be off. */
const EXPLAIN_OPTIONS = new Set([
  'analyze', 'verbose', 'costs', 'settings', 'generic_plan', 'buffers', 'wal', 'timing', 'summary', 'memory', 'serialize', 'format',
]);

function checkExplain(explain: ExplainStmt, ctx: AnalysisContext): void {
  for (const option of explain.options ?? []) {
    const def = 'DefElem' in option ? option.DefElem : undefined;
    const name = def?.defname ?? '';
    if (name === 'analyze' && !isFalse(def?.arg)) {
      throw new ProxyError('statement_not_allowed', {
        message: 'EXPLAIN ANALYZE is not allowed',
        hint: 'EXPLAIN ANALYZE runs the statement. Use EXPLAIN without ANALYZE to see the plan.',
      });
    }
    if (!EXPLAIN_OPTIONS.has(name)) {
      throw new ProxyError('statement_not_understood', { message: `EXPLAIN option ${name} is not understood` });
    }
    if (name === 'verbose' && !isFalse(def?.arg)) {
      // VERBOSE prints what the plan computes, which is more than the agent's statement names:
      // an INSERT's row with every column's default (a hidden column's too), a generated
      // column's expression, and over row-level security a scan's whole row below a gating Result.
      throw new ProxyError('statement_not_allowed', {
        message: 'EXPLAIN VERBOSE is not allowed',
        hint: 'Use EXPLAIN without VERBOSE: it shows the same plan.',
      });
    }
    if (name === 'settings' && !isFalse(def?.arg)) {
      // The server's configuration is the proxy's business.
      throw new ProxyError('statement_not_allowed', { message: 'EXPLAIN (SETTINGS) is not allowed', hint: 'Use EXPLAIN without SETTINGS: it shows the same plan.' });
    }
  }
  const inner = explain.query;
  const innerType = inner ? nodeTypeOf(inner) : '';
  // Its plan lists the table's unique indexes as arbiters, hidden ones too.
  if (inner && innerType === 'InsertStmt' && nodeBody<{ onConflictClause?: unknown }>(inner).onConflictClause) {
    throw new ProxyError('statement_not_allowed', { message: 'EXPLAIN of INSERT … ON CONFLICT is not allowed', hint: 'EXPLAIN the INSERT without its ON CONFLICT clause.' });
  }
  if (inner && (innerType === 'SelectStmt' || Object.hasOwn(OPS, innerType))) {
    // Same rules as the statement itself: EXPLAIN of a write runs nothing, but only a
    // principal allowed to make that write has any use for its plan.
    checkQuery(inner, ctx);
  } else {
    throw new ProxyError('statement_not_allowed', {
      message: `EXPLAIN ${inner ? statementName(innerType, nodeBody(inner)) : ''} is not allowed`,
      hint: innerType === 'ExecuteStmt' ? "EXPLAIN works for SELECT, INSERT, UPDATE and DELETE: explain the prepared statement's query itself, with the values written in." : 'EXPLAIN works for SELECT, INSERT, UPDATE and DELETE.',
    });
  }
}

/** CURSOR_OPT_HOLD in PostgreSQL's parsenodes.h. */
const CURSOR_OPT_HOLD = 0x0020;

/** A cursor's query: a read, under the same rules as a SELECT of its own. */
function checkDeclare(declare: DeclareCursorStmt, ctx: AnalysisContext): void {
  const query = declare.query;
  if (!query || nodeTypeOf(query) !== 'SelectStmt') {
    throw new ProxyError('statement_not_allowed', { message: 'DECLARE CURSOR is allowed for SELECT only', hint: 'Declare the cursor for a SELECT.' });
  }
  if (((declare.options ?? 0) & CURSOR_OPT_HOLD) !== 0) {
    throw new ProxyError('statement_not_allowed', {
      message: 'DECLARE … WITH HOLD is not allowed',
      hint: 'Declare the cursor WITHOUT HOLD inside a transaction block and fetch from it before COMMIT.',
    });
  }
  if (checkQuery(query, ctx).length > 0) {
    throw new ProxyError('statement_not_allowed', { message: 'a cursor\'s query cannot write', hint: 'Send the write as its own statement.' });
  }
}

/** EXPLAIN's boolean options: PostgreSQL accepts 0, false and off for "no" (defGetBoolean). */
export function isFalse(arg: Node | undefined): boolean {
  if (!arg) return false;
  if ('Integer' in arg) return (arg.Integer.ival ?? 0) === 0;
  if ('String' in arg) return ['false', 'off'].includes((arg.String.sval ?? '').toLowerCase());
  if ('Boolean' in arg) return arg.Boolean.boolval !== true;
  return false;
}

function checkTransaction(stmt: TransactionStmt): void {
  switch (stmt.kind) {
    case 'TRANS_STMT_BEGIN':
      return checkTransactionOptions(stmt.options, 'BEGIN');
    case 'TRANS_STMT_START':
      return checkTransactionOptions(stmt.options, 'START TRANSACTION');
    case 'TRANS_STMT_COMMIT':
    case 'TRANS_STMT_ROLLBACK':
    case 'TRANS_STMT_SAVEPOINT':
    case 'TRANS_STMT_RELEASE':
    case 'TRANS_STMT_ROLLBACK_TO':
      return;
    case 'TRANS_STMT_PREPARE':
    case 'TRANS_STMT_COMMIT_PREPARED':
    case 'TRANS_STMT_ROLLBACK_PREPARED': {
      const name = stmt.kind.slice('TRANS_STMT_'.length).replace('_', ' ');
      throw new ProxyError('statement_not_allowed', {
        message: `${name === 'PREPARE' ? 'PREPARE TRANSACTION' : name} is not allowed`,
        hint: 'Two-phase commit is not available; finish the transaction with COMMIT or ROLLBACK.',
      });
    }
    default:
      throw new ProxyError('statement_not_understood', { message: 'this transaction statement is not understood' });
  }
}
