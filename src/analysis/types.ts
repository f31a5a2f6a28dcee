// The analysis stage's vocabulary: statement kinds, write targets, context in, result out.
import type { Node } from '@pgsql/types';
import type { Principal } from '../auth/principal';
import type { ProxyError } from '../errors/catalogue';
import type { ReadScope } from '../policy/scope';
import type { AgentApproval } from './rewrite/virtual';
import type { WriteInfo } from './rewrite/writes';

export type StatementKind = 'read' | 'write' | 'transaction' | 'session';

/** A table a statement writes to, named as PostgreSQL folded it (unquoted names arrive lower-case). */
export interface WriteTarget {
  schema?: string;
  name: string;
  op: 'insert' | 'update' | 'delete';
}

export interface AnalyzedStatement {
  kind: StatementKind;
  /** The statement's node type as libpg-query names it, e.g. 'SelectStmt'. */
  nodeType: string;
  /** The statement's tree after the rewrite step; this is what was deparsed and verified. */
  stmt: Node;
  /** Every table written, top-level and in data-modifying CTEs (empty for EXPLAIN, which writes nothing). */
  writes: WriteTarget[];
  /** The forwarded text of this one statement (empty until deparse). */
  sql: string;
  /** This statement's own text as the agent wrote it (set by analyze(); one part of a multi-statement Query). */
  agentSql?: string;
  /** Audit flags the rewrite raised, e.g. 'tenant_forged' (a predicate naming another tenant). */
  flags?: string[];
  /** Parameters compared with a tenant column: a Bind whose values name another tenant raises tenant_forged (rewrite/tenant.ts). */
  tenantParams?: { numbers: number[]; arrays: number[] };
  /** Rows the agent may receive from this statement; the wire path enforces it as a backstop. */
  rowLimit?: number;
  /** Set for INSERT, UPDATE and DELETE under a policy: what is written, and why. */
  write?: WriteInfo;
  /** SQL PREPARE: its body, analysed (and rewritten) as the query of a Parse would be. */
  body?: AnalyzedStatement;
  /** SQL PREPARE: the OIDs of the declared parameter types, as a Parse would declare them. */
  paramTypes?: number[];
  /**
   * Answered from a shape's template (shapes.ts): the same object for every statement of the
   * shape, whose texts differ only in literals, so their redacted texts are the same.
   */
  shape?: object;
}

/**
 * The step between classification and deparse (issue #3: tenant predicates, masks).
 * It must return a tree and must not mutate its input: parsed trees will be cached
 * across statements. Whatever it returns is deparsed, parsed back and compared, so new
 * nodes must be shaped as libpg-query shapes them (it omits zeros, false and empty lists);
 * splicing nodes parsed from a snippet of SQL is the simplest way to get that right.
 */
export type RewriteStep = (stmt: AnalyzedStatement, ctx: AnalysisContext) => AnalyzedStatement;

export interface AnalysisContext {
  protocol: 'simple' | 'extended';
  /** The policy's statement_timeout in ms: the agent may SET a lower value, never a higher one, nor 0. Undefined = no bound. */
  statementTimeoutMaxMs?: number;
  /**
   * The policy's idle_in_transaction_timeout_ms: SET idle_in_transaction_session_timeout may only
   * lower it. Unset: the database's own value stands, and SET of it is refused.
   */
  idleInTransactionMaxMs?: number;
  /** Is this write allowed? Absent → every write is refused (fail closed). Refusal → ProxyError('model_writes_disabled'). */
  writeGate?: (target: WriteTarget) => boolean;
  /** The rewrite step; absent = identity. */
  rewrite?: RewriteStep;
  /** The read policy compiled against the live catalog (issue #3); absent = no read policy. */
  scope?: ReadScope;
  /** Whose session this is: the tenant in every predicate comes from here. */
  principal?: Principal;
  /** sqlcommenter tags of the statement text (reason, dry_run, traceparent, …); set by analyze(). */
  tags?: Record<string, string>;
  /** Append before/after capture columns to writes (default true; golden tests of other rules turn it off). */
  captureWrites?: boolean;
  /**
   * Policy tables read through the session's barrier views (pg_temp, rewrite/derived.ts), which
   * the session has made; absent or false: through fenced derived tables.
   */
  barrierViews?: boolean;
  /** The principal's approvals, for ormai.approvals; absent = the relation does not exist (no approvals store). */
  approvals?: readonly AgentApproval[];
  /**
   * Told the agent's own parsed statements (before any rewrite, which never mutates them: see
   * RewriteStep), so the shape cache reads the same trees instead of parsing the text again.
   */
  onParsed?: (nodes: readonly Node[]) => void;
}

export type Analysis =
  | { ok: true; sql: string; statements: AnalyzedStatement[]; tags: Record<string, string> }
  | { ok: false; error: ProxyError; tags: Record<string, string>; /** The refused text's first statement, as its node type tells (metrics), when it parsed. */ kind?: StatementKind };

/** Fields that record where a node was in the source text, not what it means. */
export const POSITION_FIELDS: ReadonlySet<string> = new Set([
  'location',
  'stmt_location',
  'stmt_len',
  'list_start',
  'list_end',
  'name_location',
  'rexpr_list_start',
  'rexpr_list_end',
]);

/** libpg-query wraps every node as `{ TypeName: body }`; these two read that shape. */
export function nodeTypeOf(node: Node): string {
  for (const key in node) return key;
  return '';
}

export function nodeBody<T = Record<string, unknown>>(node: Node): T {
  return (node as unknown as Record<string, T>)[nodeTypeOf(node)];
}
