// The final-tree check on its own: trees as a faulty rewrite could leave them are refused, whatever step let them through.
import type { InsertStmt, Node } from '@pgsql/types';
import { initAnalysis } from '../../../src/analysis/pipeline';
import { parseStatements } from '../../../src/analysis/parser';
import { previewInsert } from '../../../src/analysis/rewrite/dry-run';
import { checkTenantBinding } from '../../../src/analysis/rewrite/tenant-binding';
import { ProxyError, type ErrorCode } from '../../../src/errors/catalogue';
import { principal, scopeFromFile, WITH_COUNTRIES } from './rewrite-scope';

const scope = scopeFromFile(WITH_COUNTRIES);
const T = `'1'::int`;

beforeAll(() => initAnalysis());

function tree(sql: string): Node {
  return parseStatements(sql)[0];
}

function outcome(node: Node): ErrorCode | 'ok' {
  try {
    checkTenantBinding(node, scope, principal('1'));
    return 'ok';
  } catch (err) {
    if (err instanceof ProxyError) return err.code;
    throw err;
  }
}

const FORWARDED: Array<[string, ErrorCode | 'ok']> = [
  // What the rewrite builds.
  [`INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, ${T}), (2, 2, ${T})`, 'ok'],
  [`INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT ormai_source.*, ${T} FROM (SELECT 1, 2) AS ormai_source`, 'ok'],
  [`INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT ormai_source.*, ${T} FROM (SELECT ormai_checked.ormai_c0, ormai_checked.ormai_c1 FROM (SELECT 4, 1) AS ormai_checked(ormai_c0, ormai_c1)) AS ormai_source`, 'ok'],
  [`WITH x AS (INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, ${T}) RETURNING id) SELECT * FROM x`, 'ok'],
  ["INSERT INTO countries (code, name) VALUES ('x', 'y')", 'ok'],
  // The hole this check exists for: a source one column wider than the list, under either wrapper order.
  [`INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT ormai_source.*, ${T} FROM (SELECT 1, 100, 2) AS ormai_source`, 'column_count_mismatch'],
  [
    `INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT ormai_checked.ormai_c0, ormai_checked.ormai_c1, ormai_checked.ormai_c2 FROM (SELECT ormai_source.*, ${T} FROM (SELECT 4, 1, 2) AS ormai_source) AS ormai_checked(ormai_c0, ormai_c1, ormai_c2)`,
    'tenant_forged',
  ],
  [`INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT ormai_source.*, ${T} FROM (SELECT ormai_checked.ormai_c0, ormai_checked.ormai_c1 FROM (SELECT 4, 1, 2) AS ormai_checked(ormai_c0, ormai_c1)) AS ormai_source`, 'column_count_mismatch'],
  [`INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, ${T}, 2)`, 'column_count_mismatch'],
  [`INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, ${T})`, 'column_count_mismatch'],
  // The tenant value must be the proxy's literal itself, in every row and every branch.
  [`INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, ${T}), (1, 1, '2'::int)`, 'tenant_forged'],
  ['INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, 1)', 'tenant_forged'],
  ['INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, DEFAULT)', 'tenant_forged'],
  ['INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, $1)', 'tenant_forged'],
  ['INSERT INTO orders (customer_id, total_cents) VALUES (1, 1)', 'tenant_forged'],
  [`INSERT INTO orders (tenant_id, customer_id, tenant_id) VALUES (${T}, 1, ${T})`, 'tenant_forged'],
  [`INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT 1, 2, ${T} UNION ALL SELECT 1, 2, '2'::int`, 'tenant_forged'],
  [`INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT * FROM (SELECT 1, 2, ${T}) AS s`, 'tenant_forged'],
  [`INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT 1, 2, (SELECT ${T})`, 'tenant_forged'],
  [`INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT 1, 2, ${T} FROM (SELECT 1) s GROUP BY GROUPING SETS ((1), (3))`, 'tenant_forged'],
  [`WITH x AS (INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, '2'::int) RETURNING id) SELECT * FROM x`, 'tenant_forged'],
  [`SELECT * FROM (WITH x AS (INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, '2'::int) RETURNING id) SELECT * FROM x) s`, 'tenant_forged'],
  [`EXPLAIN INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, '2'::int)`, 'tenant_forged'],
  // The tenant column is never assigned.
  [`UPDATE orders SET tenant_id = ${T} WHERE id = 1`, 'tenant_forged'],
  [`INSERT INTO orders (id, customer_id, total_cents, tenant_id) VALUES (1, 1, 1, ${T}) ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id`, 'tenant_forged'],
  // The wrappers' column count is checked inside an INSERT's rows only; a read is left as it is.
  ['SELECT * FROM (SELECT 1, 2) AS ormai_checked(ormai_c0)', 'ok'],
  // A preview the proxy did not build is not trusted.
  ['SELECT * FROM (VALUES (1)) AS ormai_insert(a)', 'internal_error'],
];

describe('the final-tree check', () => {
  test.each(FORWARDED)('%s → %s', (sql, expected) => {
    expect(outcome(tree(sql))).toBe(expected);
  });

  test('an INSERT preview meets the same check as the INSERT it shows', () => {
    const table = scope.tables.get('public.orders')!;
    const preview = (sql: string) => ({ SelectStmt: previewInsert((tree(sql) as { InsertStmt: InsertStmt }).InsertStmt, table) }) as Node;
    expect(outcome(preview(`INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, ${T})`))).toBe('ok');
    expect(outcome(preview(`INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT ormai_source.*, ${T} FROM (SELECT 1, 2) AS ormai_source`))).toBe('ok');
    // One value too many: the alias list would name the agent's value tenant_id.
    expect(outcome(preview(`INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, 2, ${T})`))).toBe('column_count_mismatch');
    expect(outcome(preview(`INSERT INTO orders (customer_id, total_cents, tenant_id) SELECT ormai_source.*, ${T} FROM (SELECT 1, 2, 2) AS ormai_source`))).toBe('column_count_mismatch');
    expect(outcome(preview('INSERT INTO orders (customer_id, total_cents, tenant_id) VALUES (1, 1, 2)'))).toBe('tenant_forged');
  });
});
