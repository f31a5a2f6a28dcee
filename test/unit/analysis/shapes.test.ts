// The normalised statement cache (src/analysis/shapes.ts): literal spans as PostgreSQL's normaliser finds them, and
// the proof that a statement answered from a shape's template is forwarded exactly as a fresh analysis forwards it.
import type { Node } from '@pgsql/types';
import { analyze, initAnalysis, type Analysis, type AnalysisContext } from '../../../src/analysis/pipeline';
import { parseStatements, normalizeText } from '../../../src/analysis/parser';
import { sameTree } from '../../../src/analysis/deparse';
import { literalSlots, ShapeCache } from '../../../src/analysis/shapes';
import { gate } from './golden';
import { CORPUS, fill } from './read-corpus';
import { principal, scopeFromFile, WITH_COUNTRIES } from './rewrite-scope';

beforeAll(async () => {
  await initAnalysis();
});

const scope = scopeFromFile(WITH_COUNTRIES);
const TENANT = new Set(['tenant_id']);

describe('literalSlots', () => {
  const slots = (sql: string) => literalSlots(sql, normalizeText(sql))?.map((s) => [s.text, s.kind]);

  test.each([
    ["SELECT * FROM t WHERE a = 5 AND b = 'x''y' AND c = 1.5", [['5', 'int'], ["'x''y'", 'str'], ['1.5', 'num']]],
    ['SELECT -5, - 7, 3000000000, 1e3, .5', [['-5', 'int'], ['- 7', 'int'], ['3000000000', 'num'], ['1e3', 'num'], ['.5', 'num']]],
    ['SELECT a - 5 FROM t', [['5', 'int']]],
    ['SELECT TRUE, false, NULL', [['TRUE', 'other'], ['false', 'other'], ['NULL', 'other']]],
    ["SELECT date '2024-01-01', 'x'::text, interval '1 day'", [["'2024-01-01'", 'str'], ["'x'", 'str'], ["'1 day'", 'str']]],
    ["SELECT 'é' || name FROM t WHERE n = 'ü'", [["'é'", 'str'], ["'ü'", 'str']]],
    ['SELECT * FROM t /* 5 */ WHERE a = 6 -- 7', [['6', 'int']]],
    ['SELECT count(*) FROM t GROUP BY 1 ORDER BY 1 LIMIT 10 OFFSET 2', [['10', 'int'], ['2', 'int']]],
    ['SELECT 1::varchar(20)', [['1', 'int']]],
  ])('%s', (sql, expected) => {
    expect(slots(sql)).toEqual(expected);
  });

  test.each([
    "SELECT E'a\\nb'",
    'SELECT $$x$$',
    "SELECT B'101'",
    "SELECT X'ff'",
    "SELECT U&'d\\0061t'",
    "SELECT 'a'\n'b'",
    'SELECT 0x1F',
    'SELECT * FROM t WHERE a = $1',
  ])('not read here: %s', (sql) => {
    expect(slots(sql)).toBeUndefined();
  });

  test('byte locations for text beyond ASCII', () => {
    const sql = "SELECT 'ü', 5";
    const found = literalSlots(sql, normalizeText(sql))!;
    expect(found.map((s) => s.at)).toEqual([7, Buffer.byteLength("SELECT 'ü', ")]);
  });
});

/** What the session forwards and records: the text as a tree, and every other field of the analysis. */
function outcome(a: Analysis): unknown {
  if (!a.ok) return { error: a.error.code };
  return {
    tree: parseStatements(a.sql),
    statements: a.statements.map((s) => ({ kind: s.kind, nodeType: s.nodeType, writes: s.writes, flags: s.flags ?? [], rowLimit: s.rowLimit, agentSql: s.agentSql })),
    tags: a.tags,
  };
}

describe.each([
  { form: 'barrier views', barrierViews: true, handOver: true, trees: "the analysis's trees" },
  { form: 'fenced derived tables', barrierViews: false, handOver: true, trees: "the analysis's trees" },
  { form: 'barrier views', barrierViews: true, handOver: false, trees: 'the text parsed again' },
])('a template answers as a fresh analysis does ($form; pinned literals from $trees)', ({ barrierViews, handOver }) => {
  const ctx: AnalysisContext = { protocol: 'simple', scope, principal: principal('1'), captureWrites: true, writeGate: gate('insert:orders'), barrierViews };
  // As the session calls it (the analysis hands its parse over), or without the hand-over.
  const compute = (sql: string) => (onParsed?: (nodes: readonly Node[]) => void) => analyze(sql, handOver ? { ...ctx, onParsed } : ctx);
  let hits = 0;

  test.each(CORPUS)('%s', (template) => {
    const shapes = new ShapeCache();
    const [a, b, c] = [0, 1, 2].map((set) => fill(template, set));
    shapes.analyze(a, 'k', TENANT, compute(a));
    shapes.analyze(b, 'k', TENANT, compute(b));
    const before = shapes.hits;
    let computed = false;
    const cached = shapes.analyze(c, 'k', TENANT, (onParsed) => {
      computed = true;
      return compute(c)(onParsed);
    });
    if (shapes.hits > before) hits++;
    expect(computed).toBe(shapes.hits === before);
    const fresh = analyze(c, ctx);
    const [x, y] = [outcome(cached), outcome(fresh)];
    expect(sameTree(x, y)).toBe(true);
    if (!sameTree(x, y)) expect(x).toEqual(y);
  });

  afterAll(() => {
    // 26 of the 35 are answered from their template; the rest are refused, keep their literals in
    // the key (reg* casts, catalog helpers, tenant comparisons, each with new values here), or
    // hold a literal form not lifted (LIMIT ALL).
    expect(hits).toBe(26);
  });
});

test("the trees handed to onParsed are the agent's, unchanged by the analysis (the shape cache reads them after it)", () => {
  const writes = ["INSERT INTO orders (customer_id, status, total_cents) VALUES (1, 'new', 5)", "UPDATE orders SET status = 'x' WHERE id = 3", 'DELETE FROM orders WHERE id = 4'];
  const texts = [...CORPUS.map((t) => fill(t, 0)), ...writes];
  let checked = 0;
  for (const barrierViews of [true, false]) {
    const base: AnalysisContext = { protocol: 'simple', scope, principal: principal('1'), captureWrites: true, writeGate: gate('insert:orders', 'update:orders', 'delete:orders'), barrierViews };
    for (const sql of texts) {
      let handed: readonly Node[] = [];
      let copy = '';
      const result = analyze(sql, {
        ...base,
        onParsed: (nodes) => {
          handed = nodes;
          copy = JSON.stringify(nodes);
        },
      });
      expect({ sql, handed: JSON.stringify(handed) }).toEqual({ sql, handed: copy });
      expect({ sql, same: JSON.stringify(handed) === JSON.stringify(parseStatements(sql)) }).toEqual({ sql, same: true });
      if (result.ok) checked++;
    }
  }
  // Most are allowed and rewritten (the rest are refused after their parse, which is handed over too).
  expect(checked).toBeGreaterThan(50);
});

describe('literals the analysis reads stay part of the key', () => {
  const ctx: AnalysisContext = { protocol: 'simple', scope, principal: principal('1'), captureWrites: true, writeGate: gate(), barrierViews: true };
  const run = (shapes: ShapeCache, sql: string) => shapes.analyze(sql, 'k', TENANT, (onParsed) => analyze(sql, { ...ctx, onParsed }));

  test("a comparison with the tenant column: another tenant's id is flagged, the principal's own is not", () => {
    const shapes = new ShapeCache();
    run(shapes, 'SELECT * FROM orders WHERE tenant_id = 2');
    run(shapes, 'SELECT * FROM orders WHERE tenant_id = 3');
    const own = run(shapes, 'SELECT * FROM orders WHERE tenant_id = 1');
    expect(own.ok && (own.statements[0].flags ?? [])).toEqual([]);
    const foreign = run(shapes, 'SELECT * FROM orders WHERE tenant_id = 4');
    expect(foreign.ok && foreign.statements[0].flags).toEqual(['tenant_forged']);
  });

  test('the same through a cast, an expression and an alias of the tenant column: the flag is decided on each text', () => {
    for (const template of [
      'SELECT id FROM orders WHERE tenant_id::int = #',
      'SELECT id FROM orders WHERE coalesce(tenant_id, 0) + # > 0',
      'SELECT id FROM (SELECT tenant_id AS t, id FROM orders) s WHERE t = #',
      'SELECT id FROM orders WHERE tenant_id IN (SELECT #)',
    ]) {
      const shapes = new ShapeCache();
      const at = (n: number) => run(shapes, template.replace('#', String(n)));
      at(1);
      at(1);
      const own = at(1);
      const foreign = at(2);
      expect({ template, own: own.ok && (own.statements[0].flags ?? []), foreign: foreign.ok && foreign.statements[0].flags }).toEqual({
        template,
        own: template.includes('coalesce') ? ['tenant_forged'] : [],
        foreign: ['tenant_forged'],
      });
    }
  });

  test('a reg* cast: a hidden table is refused whatever names came before', () => {
    const shapes = new ShapeCache();
    run(shapes, "SELECT 'customers'::regclass");
    run(shapes, "SELECT 'orders'::regclass");
    const hidden = run(shapes, "SELECT 'internal_notes'::regclass");
    expect(hidden.ok).toBe(false);
  });

  test("a text search configuration: another schema's is refused whatever configurations came before", () => {
    const shapes = new ShapeCache();
    run(shapes, "SELECT to_tsvector('english', 'a')");
    run(shapes, "SELECT to_tsvector('simple', 'b')");
    const other = run(shapes, "SELECT to_tsvector('hidden_schema.foo', 'c')");
    expect(other.ok ? 'ran' : other.error.code).toBe('function_not_allowed');
    // A configuration by oid (regconfig reads digits as one), cached or not.
    const byOid = run(shapes, "SELECT to_tsvector('3748', 'c')");
    expect(byOid.ok ? 'ran' : byOid.error.code).toBe('function_not_allowed');
    const fresh = analyze("SELECT to_tsvector(' 3748', 'c')", ctx);
    expect(fresh.ok ? 'ran' : fresh.error.code).toBe('function_not_allowed');
  });

  test('a row limit above the cap is capped like any other', () => {
    const shapes = new ShapeCache();
    run(shapes, 'SELECT * FROM orders LIMIT 5');
    run(shapes, 'SELECT * FROM orders LIMIT 10');
    const before = shapes.hits;
    const big = run(shapes, 'SELECT * FROM orders LIMIT 5000');
    expect(shapes.hits).toBe(before + 1);
    expect(big.ok && big.sql).toBe((analyze('SELECT * FROM orders LIMIT 5000', ctx) as { sql: string }).sql);
    expect(big.ok && big.sql).toMatch(/LIMIT LEAST\(5000, 201\)/);
  });

  test('writes, several statements and other statement kinds are never answered from a shape', () => {
    const shapes = new ShapeCache();
    const texts = [
      ["/*reason='r'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 5)", "/*reason='r'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 6)", "/*reason='r'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 7)"],
      ['SELECT 1; SELECT 2', 'SELECT 3; SELECT 4', 'SELECT 5; SELECT 6'],
      ["SET statement_timeout = '1s'", "SET statement_timeout = '2s'", "SET statement_timeout = '3s'"],
    ];
    for (const set of texts) for (const sql of set) run(shapes, sql);
    expect(shapes.hits).toBe(0);
  });
});
