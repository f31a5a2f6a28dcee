// The analysis stage's public entry: statement text in, verified text to forward (or a refusal) out.
//
// analyze() is pure (no I/O, no clock) and runs for every Query and every Parse:
//   parse (libpg-query) → classify and refuse → rewrite (the read policy, when a scope is set) → deparse → verify.
// Only the deparsed text is ever forwarded; the agent's own text, comments included, never is.
// The one exception to "no clock": a wall-time budget, checked between stages (tree-bounds.ts).
import type { Node, PrepareStmt } from '@pgsql/types';
import { ProxyError, toProxyError } from '../errors/catalogue';
import { classify } from './classify';
import { extractTags } from './comments';
import { deparseVerified } from './deparse';
import { checkExpressions } from './expressions';
import { checkText } from './bounds';
import { parseWithTexts } from './parser';
import { countAnalysisError } from './parser-host';
import { rewriteReads } from './rewrite';
import { AnalysisBudget, checkTree } from './tree-bounds';
import { nodeBody, nodeTypeOf, type Analysis, type AnalysisContext, type AnalyzedStatement, type RewriteStep, type StatementKind } from './types';

export { initAnalysis } from './parser';
export type {
  Analysis,
  AnalysisContext,
  AnalyzedStatement,
  RewriteStep,
  StatementKind,
  WriteTarget,
} from './types';

/** Refusals that say the analysis itself was bounded or failed, as opposed to what the policy decided. */
const COUNTED = new Set(['statement_too_large', 'statement_too_complex', 'analysis_unavailable', 'internal_error']);

/** A rewrite step that leaves the tree as the agent wrote it. */
export const identityRewrite: RewriteStep = (stmt) => stmt;

/**
 * Analyses one statement text. Requires `await initAnalysis()` once beforehand.
 * Simple protocol: every statement must be allowed or nothing is forwarded. Extended
 * protocol: at most one statement, as PostgreSQL itself requires of a prepared statement.
 * Empty or comment-only text gives `sql: ''`, which PostgreSQL answers with EmptyQueryResponse.
 */
export function analyze(sql: string, context: AnalysisContext): Analysis {
  let tags: Record<string, string> = Object.create(null) as Record<string, string>;
  let kind: StatementKind | undefined;
  try {
    // Size, depth and term bounds come before anything reads the text, the comment scanner included.
    checkText(sql);
    const budget = new AnalysisBudget();
    tags = extractTags(sql);
    const ctx: AnalysisContext = { ...context, tags };
    const parsed = parseWithTexts(sql);
    const nodes = parsed.map((p) => p.node);
    context.onParsed?.(nodes);
    if (nodes.length === 0) return { ok: true, sql: '', statements: [], tags };
    kind = roughKind(nodeTypeOf(nodes[0]));
    if (nodes.length > 1 && ctx.protocol === 'extended') {
      // PostgreSQL's own answer to the same Parse, so drivers see what they expect.
      throw new ProxyError('syntax_error', { message: 'cannot insert multiple commands into a prepared statement' });
    }
    checkTree(nodes, ctx.protocol);
    budget.check('classify');
    // With a read scope the policy rewrite applies; without one it is the identity.
    const rewrite = ctx.rewrite ?? rewriteReads;
    // Classify everything before printing anything: one refused part refuses the whole text.
    const classified = nodes.map((node) => classify(node, ctx));
    // Functions, reg* casts and join depth, on the agent's own tree before anything is added to it.
    // A SQL PREPARE's body is checked and rewritten in its place, as the query of a Parse would be.
    for (const stmt of classified) {
      const checked = stmt.body ?? stmt;
      checkExpressions(checked, ctx, () => rewrite(checked, ctx));
    }
    budget.check('rewrite');
    const rewritten = classified.map((stmt) => (stmt.body ? withBody(stmt, rewrite(stmt.body, ctx)) : rewrite(stmt, ctx)));
    budget.check('deparse');
    const texts = deparseVerified(rewritten.map((s) => s.stmt));
    const statements: AnalyzedStatement[] = rewritten.map((s, i) => ({
      ...s,
      sql: texts[i],
      agentSql: parsed[i].text,
      ...(s.body ? { body: { ...s.body, sql: deparseVerified([s.body.stmt])[0], agentSql: parsed[i].text } } : {}),
    }));
    return { ok: true, sql: texts.join('; '), statements, tags };
  } catch (err) {
    const error = toProxyError(err);
    if (COUNTED.has(error.code)) countAnalysisError(error.code);
    return { ok: false, error, tags, ...(kind ? { kind } : {}) };
  }
}

/** What a statement is by its node type alone: the kind a refusal is counted under. */
function roughKind(type: string): StatementKind {
  if (['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt', 'CopyStmt'].includes(type)) return 'write';
  if (['SelectStmt', 'DeclareCursorStmt', 'FetchStmt', 'ExplainStmt'].includes(type)) return 'read';
  if (type === 'TransactionStmt') return 'transaction';
  return 'session';
}

/** A PREPARE whose tree carries its rewritten body: what is forwarded is `PREPARE name (types) AS <rewritten body>`. */
function withBody(prepare: AnalyzedStatement, body: AnalyzedStatement): AnalyzedStatement {
  const node = { PrepareStmt: { ...nodeBody<PrepareStmt>(prepare.stmt), query: body.stmt } } as Node;
  return { ...prepare, stmt: node, body };
}
