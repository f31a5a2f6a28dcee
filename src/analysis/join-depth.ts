// max_join_depth: how many joins one query level makes, and the refusal when it is more than the policy allows.
import type { Node } from '@pgsql/types';
import { ProxyError } from '../errors/catalogue';
import { nodeBody, nodeTypeOf } from './types';

/**
 * The counting rule. A query level is one SELECT (each arm of a set operation is its own),
 * or the UPDATE/DELETE itself. Its relations are the items of its FROM list (USING for
 * DELETE), where every JoinExpr counts as the relations on its two sides, recursively, and a
 * table, subquery, function in FROM (ROWS FROM (...) is one), XMLTABLE/JSON_TABLE or sampled
 * table counts one; UPDATE and DELETE add their target table. Joins = relations − 1, so
 * `a JOIN b JOIN c` and `FROM a, b, c` both make 2. What a subquery, CTE body or LATERAL
 * subquery joins inside counts at its own level, never at its parent's; an INSERT's target
 * is not joined with its SELECT.
 */
export function relationsAtLevel(level: Record<string, unknown>, counts: (item: Node) => boolean = () => true): number {
  const from = (level.fromClause ?? level.usingClause) as Node[] | undefined;
  let count = level.relation ? 1 : 0;
  const stack: Node[] = from ? [...from] : [];
  while (stack.length > 0) {
    const item = stack.pop() as Node;
    if (nodeTypeOf(item) === 'JoinExpr') {
      const join = nodeBody<{ larg?: Node; rarg?: Node }>(item);
      if (join.larg) stack.push(join.larg);
      if (join.rarg) stack.push(join.rarg);
    } else if (counts(item)) {
      count += 1;
    }
  }
  return count;
}

/**
 * Checks one node that may be a query level (anything holding a FROM or USING list); the
 * caller visits every node of the tree, so nested levels are checked as they are reached.
 */
export function checkJoinDepth(node: Record<string, unknown>, maxJoins: number, counts?: (item: Node) => boolean): void {
  if (!Array.isArray(node.fromClause) && !Array.isArray(node.usingClause)) return;
  const joins = Math.max(relationsAtLevel(node, counts), 1) - 1;
  if (joins <= maxJoins) return;
  throw new ProxyError('join_depth_exceeded', {
    message: `the query joins ${joins + 1} relations in one FROM clause (${joins} joins); the policy allows at most ${maxJoins}`,
    hint: `Join fewer tables in one query (at most ${maxJoins} joins), or split the question into several queries.`,
  });
}
