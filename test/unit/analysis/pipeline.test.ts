// The pipeline around classification: syntax errors, verification of printed trees, the rewrite hook, robustness.
import type { Node } from '@pgsql/types';
import { analyze, initAnalysis, type AnalysisContext, type RewriteStep } from '../../../src/analysis/pipeline';
import { deparseVerified, sameTree } from '../../../src/analysis/deparse';
import { parseStatements } from '../../../src/analysis/parser';
import { ProxyError } from '../../../src/errors/catalogue';
import { expectForwarded, expectRefused } from './golden';

beforeAll(() => initAnalysis());

const simple: AnalysisContext = { protocol: 'simple' };

describe('syntax errors', () => {
  test.each<[string, number, string]>([
    ['SELEC 1', 1, 'syntax error at or near "SELEC"'],
    ["SELECT 'x' FRO x", 16, 'syntax error at or near "x"'],
    ["SELECT 'éé' FRO x", 17, 'syntax error at or near "x"'], // characters, not bytes
    ['SELECT 1 /* open', 10, 'unterminated /* comment'],
  ])('%s: position %d', (sql, position, message) => {
    const result = analyze(sql, simple);
    expectRefused(result, 'syntax_error');
    if (result.ok) return;
    expect(result.error.sqlstate).toBe('42601');
    expect(result.error.position).toBe(position);
    expect(result.error.message).toContain(message);
  });

  test('more than one statement in a Parse is PostgreSQL\'s own 42601', () => {
    const result = analyze('SELECT 1; SELECT 2', { protocol: 'extended' });
    expectRefused(result, 'syntax_error', 'cannot insert multiple commands into a prepared statement');
  });
});

describe('verification of the printed text', () => {
  const tree = (sql: string): Node => parseStatements(sql)[0];

  test('sameTree ignores source positions only', () => {
    expect(sameTree(tree('SELECT a FROM t'), tree('select   a\nfrom t'))).toBe(true);
    expect(sameTree(tree('SELECT a FROM t'), tree('SELECT b FROM t'))).toBe(false);
    expect(sameTree(tree('SELECT $1'), tree('SELECT $2'))).toBe(false);
    expect(sameTree(tree('SELECT 1 LIMIT 3'), tree('SELECT 1 FETCH FIRST 3 ROWS ONLY'))).toBe(true);
    expect(sameTree({ a: 1, b: undefined }, { a: 1 })).toBe(true);
    expect(sameTree({ a: [1, 2] }, { a: [1] })).toBe(false);
    expect(sameTree({ a: [] }, { a: {} })).toBe(false);
  });

  test('deparseVerified returns one text per statement', () => {
    expect(deparseVerified([tree('select 1'), tree('select 2')])).toEqual(['SELECT 1', 'SELECT 2']);
  });

  test('a tree the deparser cannot print faithfully is refused, not forwarded', () => {
    expect(() => deparseVerified([tree('SELECT (ARRAY[1,2])[1]')])).toThrow(ProxyError);
    try {
      deparseVerified([tree('SELECT * FROM t ORDER BY a FETCH FIRST 1 ROW WITH TIES FOR UPDATE')]);
    } catch (err) {
      expect((err as ProxyError).code).toBe('statement_not_understood');
      // Logs get the reason, never the statement's text.
      expect((err as ProxyError).logMessage).toBe('deparse/verify SelectStmt: parsed back to a different tree');
    }
    expect.assertions(3);
  });

  test('very deep trees are refused, not crashed on', () => {
    expectRefused(analyze(`SELECT ${'1+'.repeat(5000)}1`, simple), 'statement_too_complex');
    expectRefused(analyze(`SELECT ${'1+'.repeat(50000)}1`, simple), 'statement_too_complex');
  });
});

describe('the rewrite hook', () => {
  test('is the identity by default and sees the classified statement', () => {
    const seen: string[] = [];
    const rewrite: RewriteStep = (stmt) => {
      seen.push(`${stmt.kind}:${stmt.nodeType}:${stmt.writes.map((w) => w.op + ' ' + w.name).join()}`);
      return stmt;
    };
    const result = analyze('SELECT 1; UPDATE orders SET a = 1', { protocol: 'simple', rewrite, writeGate: () => true });
    expectForwarded(result, 'SELECT 1; UPDATE orders SET a = 1');
    expect(seen).toEqual(['read:SelectStmt:', 'write:UpdateStmt:update orders']);
    expect(result.statements.map((s) => s.sql)).toEqual(['SELECT 1', 'UPDATE orders SET a = 1']);
  });

  test('what it returns is what is deparsed, verified and forwarded', () => {
    const addWhere: RewriteStep = (stmt) => {
      const select = (stmt.stmt as { SelectStmt: Record<string, unknown> }).SelectStmt;
      const where = (parseStatements('SELECT 1 WHERE tenant_id = 1')[0] as { SelectStmt: { whereClause: unknown } })
        .SelectStmt.whereClause;
      return { ...stmt, stmt: { SelectStmt: { ...select, whereClause: where } } as Node };
    };
    const result = analyze('SELECT * FROM orders', { protocol: 'extended', rewrite: addWhere });
    expectForwarded(result, 'SELECT * FROM orders WHERE tenant_id = 1');
  });

  test('a rewritten tree that does not print back exactly is refused', () => {
    const broken: RewriteStep = (stmt) => ({ ...stmt, stmt: parseStatements('SELECT (ARRAY[1])[1]')[0] });
    expectRefused(analyze('SELECT 1', { protocol: 'simple', rewrite: broken }), 'statement_not_understood');
  });

  test('its ProxyErrors are the refusal; other exceptions become internal_error', () => {
    const refuse: RewriteStep = () => {
      throw new ProxyError('model_writes_disabled');
    };
    expectRefused(analyze('SELECT 1', { protocol: 'simple', rewrite: refuse }), 'model_writes_disabled');
    const crash: RewriteStep = () => {
      throw new TypeError('bug');
    };
    expectRefused(analyze('SELECT 1', { protocol: 'simple', rewrite: crash }), 'internal_error');
  });

  test('is not reached when classification refuses', () => {
    const rewrite = jest.fn<ReturnType<RewriteStep>, Parameters<RewriteStep>>((s) => s);
    expectRefused(analyze('SELECT 1; DROP TABLE t', { protocol: 'simple', rewrite }), 'statement_not_allowed');
    expect(rewrite).not.toHaveBeenCalled();
  });
});

test('before initAnalysis(), analyze refuses with internal_error instead of throwing', () => {
  jest.isolateModules(() => {
    // A fresh module registry, in which the parser's WebAssembly was never loaded.
    const fresh = require('../../../src/analysis/pipeline') as typeof import('../../../src/analysis/pipeline');
    expectRefused(fresh.analyze('SELECT 1', simple), 'internal_error');
  });
});
