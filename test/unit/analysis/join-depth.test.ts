// max_join_depth: relations per FROM clause at one query level, at and over the limit, each subquery and CTE on its own.
import { analyze, initAnalysis } from '../../../src/analysis/pipeline';
import { contextFor, runExpressionCases, scopeFor, type ExprCase } from './expression-cases';

const over = (sql: string, relations: number, policy?: Record<string, unknown>): ExprCase => ({
  sql,
  err: 'join_depth_exceeded',
  message: `joins ${relations} relations in one FROM clause (${relations - 1} joins); the policy allows at most ${policy ? '3' : '2'}`,
  ...(policy ? { policy } : {}),
});

// Shorthands: four tables to join.
const J2 = 'customers c JOIN orders o ON o.customer_id = c.id JOIN order_items i ON i.order_id = o.id';
const J3 = `${J2} JOIN products p ON p.id = i.product_id`;

describe('max_join_depth: 2', () => {
  runExpressionCases(
    [
      // At the limit: three relations, however they are joined.
      { sql: `SELECT 1 FROM ${J2}` },
      { sql: 'SELECT 1 FROM customers, orders, order_items' },
      { sql: 'SELECT 1 FROM customers c LEFT JOIN orders o ON true, products p' },
      { sql: 'SELECT 1 FROM customers c NATURAL JOIN orders CROSS JOIN products' },
      { sql: 'SELECT 1 FROM customers c, orders o, generate_series(1, 2) AS g' },
      { sql: "SELECT 1 FROM customers c, orders o, ROWS FROM (generate_series(1, 2), unnest(ARRAY['a'])) AS r(a, b)" },
      // Over it.
      over(`SELECT 1 FROM ${J3}`, 4),
      over('SELECT 1 FROM customers, orders, order_items, products', 4),
      over('SELECT 1 FROM customers c JOIN orders o ON true, order_items i, products p', 4),
      over('SELECT 1 FROM (customers c JOIN orders o ON true) JOIN (order_items i JOIN products p ON true) ON true', 4),
      over('SELECT 1 FROM (customers c JOIN orders o ON true) AS j JOIN (order_items i JOIN products p ON true) ON true', 4),
      over('SELECT 1 FROM customers c, orders o, generate_series(1, 2) g, unnest(ARRAY[1]) u', 4),
      over('SELECT 1 FROM customers c, orders o, products p, LATERAL (SELECT 1) s', 4),
      over('SELECT 1 FROM customers c, orders o, products p, (SELECT 1) s', 4),
      over('SELECT 1 FROM customers c, orders o TABLESAMPLE BERNOULLI (5), products p, order_items i', 4),
      // A CTE reference is a relation like any other.
      over(`WITH x AS (SELECT 1) SELECT 1 FROM x, ${J2}`, 4),

      // Each query level on its own: a subquery counts one at its parent.
      { sql: `SELECT 1 FROM customers c JOIN (SELECT o.id FROM orders o JOIN order_items i ON true JOIN products p ON true) s ON true` },
      over('SELECT 1 FROM customers c JOIN (SELECT o.id FROM orders o, order_items i, products p, audit_log a) s ON true', 4),
      { sql: `WITH x AS (SELECT 1 FROM ${J2}) SELECT 1 FROM x, customers, orders` },
      over(`WITH x AS (SELECT 1 FROM ${J3}) SELECT 1 FROM x`, 4),
      over(`WITH x AS (SELECT 1) SELECT 1 FROM x WHERE EXISTS (SELECT 1 FROM ${J3})`, 4),
      { sql: `SELECT (SELECT count(*) FROM ${J2}) FROM customers c, orders o WHERE c.id IN (SELECT 1 FROM ${J2})` },
      over(`SELECT (SELECT count(*) FROM ${J3})`, 4),
      { sql: `SELECT 1 FROM customers c, LATERAL (SELECT 1 FROM ${J2} WHERE c.id = 1) s` },
      over(`SELECT 1 FROM customers c, LATERAL (SELECT 1 FROM ${J3}) s`, 4),
      // Set operations: each arm is a level.
      { sql: `SELECT 1 FROM ${J2} UNION ALL SELECT 1 FROM ${J2} EXCEPT SELECT 1 FROM ${J2}` },
      over(`SELECT 1 FROM ${J2} UNION SELECT 1 FROM ${J3}`, 4),

      // Writes: the target table is joined with FROM / USING; an INSERT's target is not joined with its SELECT.
      { sql: 'UPDATE orders o SET status = \'x\' FROM customers c, products p WHERE true' },
      over("UPDATE orders o SET status = 'x' FROM customers c, products p, order_items i WHERE true", 4),
      { sql: 'DELETE FROM orders o USING customers c JOIN products p ON true WHERE true' },
      over('DELETE FROM orders o USING customers c JOIN products p ON true JOIN order_items i ON true WHERE true', 4),
      { sql: `INSERT INTO audit_log (id) SELECT c.id FROM ${J2}` },
      over(`INSERT INTO audit_log (id) SELECT c.id FROM ${J3}`, 4),
      over(`UPDATE orders SET status = 'x' WHERE id IN (SELECT o.id FROM ${J3})`, 4),
      { sql: `EXPLAIN SELECT 1 FROM ${J2}` },
      over(`EXPLAIN SELECT 1 FROM ${J3}`, 4),
      // The policy's own setting wins over the profile's.
      { sql: `SELECT 1 FROM ${J3}`, policy: { max_join_depth: 3 } },
      over(`SELECT 1 FROM ${J3}, audit_log`, 5, { max_join_depth: 3 }),
    ],
    { max_join_depth: 2 },
  );
});

describe('profile defaults', () => {
  beforeAll(() => initAnalysis());
  const joins = (n: number): string =>
    `SELECT 1 FROM ${Array.from({ length: n + 1 }, (_, i) => `generate_series(1, 2) AS g${i}`).join(', ')}`;

  test.each<[string, number]>([
    ['prod', 3],
    ['internal', 5],
    ['dev', 8],
  ])('%s allows %d joins', (profile, max) => {
    for (const protocol of ['simple', 'extended'] as const) {
      const scope = scopeFor({ profile });
      expect(scope.policy.maxJoinDepth).toBe(max);
      expect(analyze(joins(max), contextFor(protocol, scope)).ok).toBe(true);
      const result = analyze(joins(max + 1), contextFor(protocol, scope));
      if (result.ok) throw new Error('expected join_depth_exceeded');
      expect(result.error.toFields()).toMatchObject({
        code: '54000',
        message: `join_depth_exceeded: the query joins ${max + 2} relations in one FROM clause (${max + 1} joins); the policy allows at most ${max}`,
        hint: `Join fewer tables in one query (at most ${max} joins), or split the question into several queries.`,
      });
    }
  });

  test('without a policy there is no limit to enforce', () => {
    expect(analyze(joins(20), contextFor('simple')).ok).toBe(true);
  });
});
