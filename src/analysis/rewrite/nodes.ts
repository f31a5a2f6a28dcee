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
  if (tree === null || typeof tree !== 'object') return tree;
  const root = emptyLike(tree);
  // Pairs of (original, copy) still to fill, in two stacks.
  const from: object[] = [tree];
  const to: object[] = [root];
  while (from.length > 0) {
    const src = from.pop()!;
    const dst = to.pop()!;
    if (Array.isArray(src)) {
      const out = dst as unknown[];
      for (let i = 0; i < src.length; i++) {
        const v: unknown = src[i];
        if (v !== null && typeof v === 'object') {
          const c = emptyLike(v);
          out.push(c);
          from.push(v);
          to.push(c);
        } else out.push(v);
      }
      continue;
    }
    const rec = src as Record<string, unknown>;
    const out = dst as Record<string, unknown>;
    for (const key in rec) {
      const v = rec[key];
      if (v !== null && typeof v === 'object') {
        const c = emptyLike(v);
        out[key] = c;
        from.push(v);
        to.push(c);
      } else out[key] = v;
    }
  }
  return root as T;
}

function emptyLike(v: object): object {
  return Array.isArray(v) ? [] : {};
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
  // Only objects go on the stack: most of a tree's values are strings, numbers and booleans.
  const stack: object[] = [];
  for (const root of roots) if (root !== null && typeof root === 'object') stack.push(root);
  while (stack.length > 0) {
    const value = stack.pop()!;
    if (Array.isArray(value)) {
      for (const item of value) if (item !== null && typeof item === 'object') stack.push(item);
      continue;
    }
    const node = value as Record<string, unknown>;
    if (visit(node)) return true;
    for (const key in node) {
      const child = node[key];
      if (child !== null && typeof child === 'object') stack.push(child);
    }
  }
  return false;
}
