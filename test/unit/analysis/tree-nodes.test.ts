// The rewrite's tree helpers: cloneTree copies without recursion and shares nothing; walk visits every object node once, parents first.
import { cloneTree, walk } from '../../../src/analysis/rewrite/nodes';
import { initAnalysis } from '../../../src/analysis/pipeline';
import { parseStatements } from '../../../src/analysis/parser';

beforeAll(() => initAnalysis());

/** Every object and array reachable from `root` (by identity). */
function objects(root: unknown): Set<object> {
  const seen = new Set<object>();
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object' || seen.has(v)) continue;
    seen.add(v);
    for (const child of Object.values(v)) stack.push(child);
  }
  return seen;
}

describe('cloneTree', () => {
  test('gives an equal tree that shares no object or array with the original', () => {
    const tree = parseStatements("SELECT a, b[1] FROM t WHERE x IN (1, 2, 3) AND y = 'z' OR NOT flag ORDER BY 1 LIMIT 5")[0];
    const copy = cloneTree(tree);
    expect(copy).toStrictEqual(tree);
    // Key order too, at every level: the printed text follows it.
    expect(JSON.stringify(copy)).toBe(JSON.stringify(tree));
    const mine = objects(tree);
    for (const o of objects(copy)) expect(mine.has(o)).toBe(false);
  });

  test('keeps arrays arrays, key order, and primitives (false, 0, empty strings, null) as they are', () => {
    const value = { b: [1, 'x', false, 0, '', null, [{ c: true }]], a: { ival: {} }, z: null };
    const copy = cloneTree(value);
    expect(copy).toStrictEqual(value);
    expect(JSON.stringify(copy)).toBe(JSON.stringify(value));
    expect(Array.isArray(copy.b)).toBe(true);
    expect(Array.isArray(copy.b[6])).toBe(true);
    expect(Object.keys(copy)).toEqual(['b', 'a', 'z']);
    expect(cloneTree(7)).toBe(7);
    expect(cloneTree(null)).toBe(null);
  });

  test('copies a tree far deeper than the call stack allows', () => {
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 200_000; i++) deep = { n: [deep] };
    const copy = cloneTree(deep);
    let a: unknown = copy;
    let b: unknown = deep;
    let shared = 0;
    for (let i = 0; i < 200_000; i++) {
      if (a === b) shared++;
      a = (a as { n: unknown[] }).n[0];
      b = (b as { n: unknown[] }).n[0];
    }
    expect(shared).toBe(0);
    expect(a).toEqual({ leaf: 1 });
    expect(a).not.toBe(b);
  });
});

describe('walk', () => {
  test('visits every object node once (not arrays, not primitives), parents before children', () => {
    const tree = parseStatements('SELECT a FROM t JOIN u ON t.id = u.id WHERE t.x > 1')[0];
    const visited: object[] = [];
    walk([tree, 'text', 3, null], (node) => {
      visited.push(node);
    });
    const expected = [...objects(tree)].filter((o) => !Array.isArray(o));
    expect(new Set(visited).size).toBe(visited.length);
    expect(new Set(visited)).toEqual(new Set(expected));
    // A parent comes before each of its children.
    const at = new Map(visited.map((o, i) => [o, i]));
    for (const o of visited) {
      for (const child of Object.values(o)) {
        const kids = Array.isArray(child) ? child : [child];
        for (const k of kids) if (k !== null && typeof k === 'object' && !Array.isArray(k)) expect(at.get(k)!).toBeGreaterThan(at.get(o)!);
      }
    }
  });

  test('stops when the visitor says so, and says it stopped', () => {
    const tree = parseStatements('SELECT 1 FROM a, b, c')[0];
    let count = 0;
    const stopped = walk([tree], (node) => {
      count++;
      return 'RangeVar' in node;
    });
    expect(stopped).toBe(true);
    let all = 0;
    expect(walk([tree], () => void all++)).toBe(false);
    expect(count).toBeLessThan(all);
  });

  test('walks what the visitor put in place of a node, not what was there (as the rewrite replaces a call)', () => {
    const old = { marker: 'old' };
    const tree = { a: { FuncCall: { args: [old] } } } as Record<string, unknown>;
    const seen: unknown[] = [];
    walk([tree], (node) => {
      seen.push(node);
      if ('FuncCall' in node) {
        delete node.FuncCall;
        Object.assign(node, { A_Const: { sval: { sval: 'new' } } });
      }
    });
    expect(seen).toContainEqual({ sval: 'new' });
    expect(seen).not.toContain(old);
  });
});
