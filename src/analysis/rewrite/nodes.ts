// Building blocks for new tree nodes: constants shaped as libpg-query shapes them, quoting, and parsed SQL templates.
import type { A_Const, BoolExpr, Node, SelectStmt } from '@pgsql/types';
import { ProxyError } from '../../errors/catalogue';
import { parseStatements } from '../parser';
import { nodeBody, nodeTypeOf } from '../types';

/**
 * libpg-query omits zero, false and empty fields: `0` is `{ ival: {} }`, `false` is
 * `{ boolval: {} }`. Nodes built here follow suit so that the printed text parses back
 * to the very same tree.
 */
export function stringConst(value: string): Node {
  return { A_Const: { sval: { sval: value } } };
}

export function intConst(value: number): Node {
  return { A_Const: { ival: value === 0 ? {} : { ival: value } } };
}

export function nullConst(): Node {
  return { A_Const: { isnull: true } };
}

/**
 * A deep copy of a parse tree (plain objects, arrays, primitives), without recursion:
 * structuredClone gives up on trees the parser and deparser still handle.
 */
export function cloneTree<T>(tree: T): T {
  const copy = (v: unknown): unknown => (v === null || typeof v !== 'object' ? v : Array.isArray(v) ? new Array(v.length) : {});
  const root = copy(tree);
  const stack: Array<[unknown, unknown]> = [[tree, root]];
  while (stack.length > 0) {
    const [from, to] = stack.pop()!;
    if (from === null || typeof from !== 'object') continue;
    const src = from as Record<string, unknown>;
    const dst = to as Record<string, unknown>;
    for (const key of Object.keys(src)) {
      const child = copy(src[key]);
      dst[key] = child;
      if (child !== null && typeof child === 'object') stack.push([src[key], child]);
    }
  }
  return root as T;
}

/** A double-quoted identifier: text built from catalog names is parsed, never trusted unquoted. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * Parses one SELECT the proxy wrote itself (from policy and catalog data). A failure here
 * means the policy or catalog holds something the proxy cannot express: an internal error
 * for the agent, with the reason in the log only.
 */
export function parseTemplate(sql: string, what: string): SelectStmt {
  let nodes: Node[];
  try {
    nodes = parseStatements(sql);
  } catch (err) {
    throw templateError(what, err instanceof Error ? err.message : String(err));
  }
  if (nodes.length !== 1 || nodeTypeOf(nodes[0]) !== 'SelectStmt') throw templateError(what, 'not a single SELECT');
  return stripLocations(nodeBody<SelectStmt>(nodes[0]));
}

/** A template's error: never the agent's fault, never shown to it. */
export function templateError(what: string, why: string): ProxyError {
  return new ProxyError('internal_error', { logMessage: `rewrite template for ${what}: ${why}` });
}

/**
 * Source positions of a template point into text the agent never sent; dropping them keeps
 * error positions from pointing at the wrong place in the agent's statement.
 */
function stripLocations<T>(value: T): T {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object') continue;
    if (Array.isArray(v)) {
      for (const item of v) stack.push(item);
      continue;
    }
    const rec = v as Record<string, unknown>;
    for (const key of Object.keys(rec)) {
      if (key === 'location') delete rec[key];
      else stack.push(rec[key]);
    }
  }
  return value;
}

/** The value of a constant, when the node is one (possibly under a cast); undefined otherwise. */
/** The text of a constant written without any cast (a cast may turn '1'::bit(1)::bit(2)::int into 2). */
export function bareConstantText(node: Node | undefined): string | undefined {
  return node && 'A_Const' in node ? constantText(node) : undefined;
}

export function constantText(node: Node | undefined): string | undefined {
  if (!node) return undefined;
  if ('TypeCast' in node) return constantText(node.TypeCast.arg);
  if (!('A_Const' in node)) return undefined;
  const c: A_Const = node.A_Const;
  if (c.isnull) return undefined;
  if (c.ival) return String(c.ival.ival ?? 0);
  if (c.fval) return c.fval.fval ?? '0';
  if (c.sval) return c.sval.sval ?? '';
  return undefined;
}

/**
 * `left AND right`, shaped as PostgreSQL's parser shapes it: an AND on the left is flattened
 * into one list (an AND on the right stays nested), so the printed text parses back the same.
 */
export function andExpr(left: Node | undefined, right: Node | undefined): Node | undefined {
  if (!left) return right;
  if (!right) return left;
  const bool = (left as { BoolExpr?: BoolExpr }).BoolExpr;
  if (bool?.boolop === 'AND_EXPR') return { BoolExpr: { ...bool, args: [...(bool.args ?? []), right] } };
  return { BoolExpr: { boolop: 'AND_EXPR', args: [left, right] } };
}

/**
 * Visits every object of a parse tree below `roots` (iteratively: trees can be very deep, and
 * lists very long). `visit` returning true stops the walk; walk() then returns true.
 */
export function walk(roots: unknown[], visit: (node: Record<string, unknown>) => boolean | void): boolean {
  const stack: unknown[] = [...roots];
  while (stack.length > 0) {
    const value = stack.pop();
    if (value === null || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      for (const item of value) stack.push(item);
      continue;
    }
    const node = value as Record<string, unknown>;
    if (visit(node)) return true;
    for (const key in node) stack.push(node[key]);
  }
  return false;
}
