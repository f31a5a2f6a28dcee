// Work per statement is bounded: size, terms, tree, CTEs, statements per Query and analysis time,
// each refused with a structured error while other sessions carry on.
import type { Node } from '@pgsql/types';
import { Client } from 'pg';
import { groupByExpansion } from '../../src/analysis/grouping-sets';
import { initAnalysis } from '../../src/analysis/pipeline';
import { parseStatements } from '../../src/analysis/parser';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { heapUsed, MB, metric, newSessionRunsNewStatement, outcome } from '../support/hardening';
import { startTestProxy, type TestProxy } from '../support/proxy';

let db: TestDatabase;
let proxy: TestProxy;
let c: Client;

beforeAll(async () => {
  await initAnalysis();
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url);
  c = new Client({ connectionString: proxy.url() });
  await c.connect();
});
afterAll(async () => {
  await c?.end();
  await proxy?.close();
  await db?.drop();
});

const ids = (n: number, from = 0): string => Array.from({ length: n }, (_, i) => i + from).join(',');

test('a 400,000-term IN list (2.7 MB) is refused by size before it is parsed', async () => {
  const heap = heapUsed();
  const cpu = process.cpuUsage();
  const sql = `SELECT id FROM orders WHERE id IN (${ids(400_000)})`;
  expect(sql.length).toBeGreaterThan(2_500_000);
  expect(await outcome(c, sql)).toMatch(/^54000 statement_too_large: the statement text is \d+ bytes; the limit is 1048576/);
  const used = process.cpuUsage(cpu);
  // Refused by a byte count: a few ms of CPU (this process also runs the client that built it).
  expect((used.user + used.system) / 1000).toBeLessThan(1500);
  await newSessionRunsNewStatement(proxy);
  expect(heapUsed() - heap).toBeLessThan(64 * MB);
});

test('terms, statements per Query, CTEs and WITH nesting each have a bound', async () => {
  // 120,000 terms in 800 kB: under the byte bound, over the term bound.
  expect(await outcome(c, `SELECT id FROM orders WHERE id IN (${ids(120_000)})`)).toMatch(/^54001 statement_too_complex: the statement has more than 100000 terms/);
  expect(await outcome(c, 'SELECT 1;'.repeat(1001))).toMatch(/^54001 statement_too_complex: the message holds 1001 statements; the limit is 1000/);
  const ctes = Array.from({ length: 101 }, (_, i) => `c${i} AS (SELECT ${i} AS n)`).join(', ');
  expect(await outcome(c, `WITH ${ctes} SELECT n FROM c0`)).toMatch(/^54001 statement_too_complex: the statement has more than 100 common table expressions/);
  let nested = 'SELECT 1 AS n';
  for (let i = 0; i < 17; i++) nested = `WITH w${i} AS (${nested}) SELECT n FROM w${i}`;
  expect(await outcome(c, nested)).toMatch(/^54001 statement_too_complex: WITH nests more than 16 levels deep/);
  // Below every bound, the same shapes run.
  expect((await c.query(`SELECT count(*)::int AS n FROM orders WHERE id IN (${ids(5_000)})`)).rows[0].n).toBeGreaterThanOrEqual(0);
  expect(await outcome(c, 'SELECT 1;'.repeat(50))).toBe('ok');
  await newSessionRunsNewStatement(proxy);
  expect(await metric(proxy, 'ormai_analysis_errors_total', { code: 'statement_too_complex' })).toBeGreaterThanOrEqual(4);
});

test('the bounds apply under the extended protocol too', async () => {
  await expect(c.query({ text: `SELECT id FROM orders WHERE id IN (${ids(400_000)}) AND id = $1`, values: [1] })).rejects.toMatchObject({ code: '54000' });
  await expect(c.query({ text: `SELECT id FROM orders WHERE id IN (${ids(120_000)}) AND id = $1`, values: [1] })).rejects.toMatchObject({ code: '54001' });
  expect((await c.query({ text: 'SELECT $1::int AS n', values: [7] })).rows[0].n).toBe(7);
});

test("one tenant's long statements wait their turns (session/analysis-turns.ts) and are each answered as if they had not, under both protocols", async () => {
  const long = await Promise.all([0, 1, 2, 3].map(async () => {
    const k = new Client({ connectionString: proxy.url() });
    await k.connect();
    return k;
  }));
  const other = new Client({ connectionString: proxy.url('tenant2-agent', 'tenant2-password') });
  await other.connect();
  try {
    const count = async (k: Client, n: number, extended: boolean) => {
      const text = `SELECT count(*)::int AS n FROM orders WHERE id IN (${ids(n, 1)})${extended ? ' AND id > $1' : ''}`;
      return (await k.query(extended ? { text, values: [0] } : text)).rows[0].n as number;
    };
    const direct = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders WHERE tenant_id = 1 AND id <= 5000'))[0].n;
    const answers = await Promise.all([
      ...long.map((k, i) => count(k, 5_000, i % 2 === 1)),
      count(long[0], 5_000, false),
      // Another tenant's long statements take their own turns.
      count(other, 5_000, false).then((n) => -n),
      (async () => {
        await long[0].query(`SELECT count(*) FROM customers WHERE id IN (${ids(2_000)}) AND api_secret IS NULL`).catch((e: Error) => e);
        return 'refused';
      })(),
    ]);
    const theirs = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders WHERE tenant_id = 2 AND id <= 5000'))[0].n;
    expect(answers).toEqual([direct, direct, direct, direct, direct, -theirs, 'refused']);
  } finally {
    await Promise.all([...long, other].map((k) => k.end()));
  }
});

test('a plan too large to read for the scan budget (a constant of megabytes, folded into it) is refused, not let through unbudgeted', async () => {
  // 10 MB once computed: over the 8 MiB the scan budget reads of a plan; 1 MB is not.
  const huge = "SELECT count(*) FROM orders WHERE status::text <> repeat('ab', 5000000)";
  expect(await outcome(c, huge)).toMatch(/^54001 statement_too_complex: the plan PostgreSQL prints for the statement is too large to check against the scan budget/);
  await expect(c.query({ text: huge.replace("'ab'", '$1::text'), values: ['ab'] })).rejects.toMatchObject({ code: '54001' });
  expect(await outcome(c, "SELECT count(*) FROM orders WHERE status::text <> repeat('ab', 500000)")).toBe('ok');
  // The planner connection the answer ended was replaced.
  expect(await outcome(c, 'SELECT count(*) FROM orders WHERE id = 1')).toBe('ok');
});

/** `levels` derived tables, each using its inner column twice: PostgreSQL's pull-up doubles the expression at each. */
function doubling(levels: number, wrap = (inner: string, i: number) => `SELECT x + x AS x FROM (${inner}) s${i}`): string {
  let sql = 'SELECT id AS x FROM orders';
  for (let i = 0; i < levels; i++) sql = wrap(sql, i);
  return sql;
}

/** `levels` operators, each applied to the one inside it, over orders.id. */
function operators(levels: number, op: (inner: string) => string): string {
  let expr = 'id';
  for (let i = 0; i < levels; i++) expr = `(${op(expr)})::int`;
  return `SELECT ${expr} AS v FROM orders`;
}

test('a statement that grows past the node bound as PostgreSQL expands it (pull-up of derived tables, BETWEEN, IN) is refused before it runs', async () => {
  // PostgreSQL plans 16 such levels for seconds without checking statement_timeout; 13 are refused here.
  // Ten levels of BETWEEN SYMMETRIC held 1.2 GB in a backend 5 s past its statement_timeout.
  const refused = /^54001 statement_too_complex: the statement grows past 200000 nodes as PostgreSQL expands it: derived tables and CTEs into each reference/;
  const ctes = (levels: number): string => `WITH c0 AS (SELECT id AS x FROM orders), ${Array.from({ length: levels }, (_, i) => `c${i + 1} AS (SELECT x * x AS x FROM c${i})`).join(', ')} SELECT x FROM c${levels}`;
  const shapes = [
    doubling(16),
    doubling(13),
    doubling(13, (inner, i) => `SELECT t${i}.y + t${i}.y AS x FROM (${inner}) t${i}(y)`),
    doubling(13, (inner, i) => `SELECT * FROM (SELECT x + x AS x FROM (${inner}) s${i}) t${i}`),
    doubling(13, (inner, i) => `SELECT (SELECT s${i}.x + s${i}.x) AS x FROM (${inner}) s${i}`),
    ctes(13),
    `UPDATE orders SET status = q.x::text FROM (${doubling(13)}) q WHERE orders.id = q.x`,
    // BETWEEN SYMMETRIC copies its left operand four times, IN once per column entry: 377 and 750 bytes.
    operators(10, (e) => `${e} BETWEEN SYMMETRIC 1 AND 2`),
    operators(6, (e) => `${e} IN (customer_id, total_cents, id, customer_id, total_cents, id, customer_id, total_cents, id, customer_id)`),
  ];
  for (const [i, sql] of shapes.entries()) {
    expect(await outcome(c, sql)).toMatch(refused);
    await expect(c.query({ name: `deep${i}`, text: sql })).rejects.toMatchObject({ code: '54001', message: expect.stringMatching(/expands it/) });
  }
  expect(await outcome(c, operators(5, (e) => `${e} BETWEEN SYMMETRIC 1 AND 2`))).toBe('ok');
  // Ten levels run, under both protocols, and give what PostgreSQL gives.
  const { rows } = await c.query(`SELECT min(x)::int AS x FROM (${doubling(10)}) q WHERE x > 0`);
  const { rows: extended } = await c.query({ text: `SELECT min(x)::int AS x FROM (${doubling(10)}) q WHERE x > $1`, values: [0] });
  const smallest = (await c.query('SELECT min(id)::int AS id FROM orders WHERE id > 0')).rows[0].id as number;
  expect(rows[0].x).toBe(smallest * 1024);
  expect(extended[0].x).toBe(smallest * 1024);
});

test("GROUP BY is counted as PostgreSQL expands its grouping sets, and refused before it runs when their columns pass the bound, under both protocols", async () => {
  const e = (i: number): string => `(x + ${i})`;
  // Over one row PostgreSQL answers one row per grouping set, and GROUPING() marks the columns each set leaves out.
  const shapes = [
    `ROLLUP(${e(0)}, ${e(1)}, ${e(2)})`,
    `ROLLUP((${e(0)}, ${e(1)}), ${e(2)})`,
    `CUBE(${e(0)}, ${e(1)}, ${e(2)})`,
    `GROUPING SETS ((), (${e(0)}, ${e(1)}), ${e(2)})`,
    `${e(0)}, ROLLUP(${e(1)}, ${e(2)})`,
    `ROLLUP(${e(0)}, ${e(1)}), ROLLUP(${e(2)}, ${e(3)})`,
    `CUBE(${e(0)}, ${e(1)}), GROUPING SETS (${e(2)}, (${e(3)}, ${e(4)}))`,
    `GROUPING SETS (ROLLUP(${e(0)}, ${e(1)}), CUBE(${e(2)}), GROUPING SETS ((${e(3)}), ()))`,
    // Parenthesised lists are their columns, at the top and nested.
    `(${e(0)}, ${e(1)}), ROLLUP(${e(2)})`,
    `ROLLUP((${e(0)}, (${e(1)}, ${e(2)})), ${e(3)})`,
    `CUBE((${e(0)}, (${e(1)}, (${e(2)}, ${e(3)}))))`,
  ];
  for (const groupBy of shapes) {
    const used = [0, 1, 2, 3, 4].filter((i) => groupBy.includes(e(i)));
    const rows = await db.query<{ g: number }>(`SELECT GROUPING(${used.map(e).join(', ')}) AS g FROM (VALUES (1)) v(x) GROUP BY ${groupBy}`);
    const left = (g: number): number => g.toString(2).split('').filter((b) => b === '1').length;
    const columns = rows.reduce((n, r) => n + used.length - left(r.g), 0);
    const parsed = parseStatements(`SELECT 1 FROM t GROUP BY ${groupBy}`)[0] as { SelectStmt: { groupClause: Node[] } };
    expect({ groupBy, ...groupByExpansion(parsed.SelectStmt.groupClause) }).toEqual({ groupBy, sets: rows.length, columns });
  }
  // EXPLAIN of ROLLUP of 140 expressions held 189 MB of a backend, CUBE of 12 467 MB: at the default bound ROLLUP of 45 passes, of 46 does not.
  const rollup = (n: number): string => `SELECT count(*) AS n FROM orders GROUP BY ROLLUP(${Array.from({ length: n }, (_, i) => `(id + ${i})`).join(', ')})`;
  const refused = /^54001 statement_too_complex: GROUP BY expands to 47 grouping sets of 1081 columns in all, more than the proxy lets PostgreSQL plan/;
  expect(await outcome(c, rollup(46))).toMatch(refused);
  await expect(c.query({ text: rollup(46).replace('FROM orders', 'FROM orders WHERE id > $1'), values: [0] })).rejects.toMatchObject({ code: '54001', message: expect.stringMatching(/GROUP BY expands to 47 grouping sets/) });
  expect(await outcome(c, rollup(1600))).toMatch(/^54001 statement_too_complex: GROUP BY expands to 1601 grouping sets/);
  expect(await outcome(c, rollup(45))).toBe('ok');
  const { rows } = await c.query({ text: rollup(3).replace('FROM orders', 'FROM orders WHERE id > $1'), values: [0] });
  const direct = await db.query(`${rollup(3).replace('FROM orders', 'FROM orders WHERE tenant_id = 1 AND id > 0')}`);
  expect(rows.length).toBe(direct.length);
});

// The bounds are the process's (one proxy per process): each proxy below sets them as it starts.
async function withProxy(analysis: Record<string, unknown>, fn: (s: Client) => Promise<void>): Promise<void> {
  const other = await startTestProxy(db.url, { analysis });
  const s = new Client({ connectionString: other.url() });
  try {
    await s.connect();
    await fn(s);
  } finally {
    await s.end();
    await other.close();
  }
}

test('configured bounds are read from the config: size and tree nodes', async () => {
  await withProxy({ max_statement_size: '4kB', max_parse_nodes: 1000 }, async (s) => {
    expect(await outcome(s, `SELECT id FROM orders WHERE id IN (${ids(2000)})`)).toMatch(/^54000 statement_too_large: the statement text is \d+ bytes; the limit is 4000/);
    expect(await outcome(s, `SELECT id FROM orders WHERE id IN (${ids(600)})`)).toMatch(/^54001 statement_too_complex: the statement's tree has more than 1000 nodes/);
    expect(await outcome(s, 'SELECT 1 AS n')).toBe('ok');
  });
  await withProxy({ max_expanded_nodes: 1000 }, async (s) => {
    expect(await outcome(s, doubling(6))).toMatch(/^54001 statement_too_complex: the statement grows past 1000 nodes/);
    expect(await outcome(s, doubling(2))).toBe('ok');
  });
});

test('the analysis time budget refuses a statement whose checks take longer', async () => {
  await withProxy({ budget_ms: 1 }, async (s) => {
    // 1 ms is less than the policy rewrite of a 150-way OR takes on this machine.
    const sql = 'SELECT id FROM orders WHERE ' + Array.from({ length: 150 }, (_, i) => `(id = ${i} AND status <> 'x${i}')`).join(' OR ');
    expect(await outcome(s, sql)).toMatch(/^54001 statement_too_complex: checking the statement took longer than 1 ms/);
  });
});
