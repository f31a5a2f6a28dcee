// Statements built to overflow the parser's stack are refused before they reach it; a parser
// instance that fails anyway is replaced, and every session keeps working.
import { Client } from 'pg';
import { parserHealth, parserSettled, withParser } from '../../src/analysis/parser-host';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { MB, metric, newSessionRunsNewStatement, outcome, readyz } from '../support/hardening';
import { startTestProxy, type TestProxy } from '../support/proxy';

let db: TestDatabase;
let proxy: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await startTestProxy(db.url);
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

const chain = (i: number, terms: number): string => `SELECT ${i}` + '+1'.repeat(terms - 1);

test('20 distinct 10,000-term chains are refused with 54001, and new sessions still parse new statements', async () => {
  const rss = process.memoryUsage().rss;
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  for (let i = 0; i < 20; i++) {
    expect(await outcome(c, chain(i, 10_000))).toMatch(/^54001 statement_too_complex: the statement nests more than 400 levels/);
  }
  // The same session goes on, and so does a new one.
  expect(await outcome(c, 'SELECT 41 AS n')).toBe('ok');
  await c.end();
  await newSessionRunsNewStatement(proxy);
  // Refused before the parser: no instance had to be replaced.
  expect(await metric(proxy, 'ormai_analysis_errors_total', { code: 'statement_too_complex' })).toBeGreaterThanOrEqual(20);
  expect(await metric(proxy, 'ormai_parser_recycles_total', { reason: 'failure' })).toBe(0);
  expect((await readyz(proxy)).status).toBe(200);
  // Their audit events keep none of the text: it was never parsed, so it cannot be redacted.
  for (let i = 0; i < 250 && proxy.audit.queueDepth > 0; i++) await new Promise((r) => setTimeout(r, 20));
  const refused = proxy.auditEvents().filter((e) => e.code === 'statement_too_complex');
  expect(refused).toHaveLength(20);
  for (const e of refused) expect(e.sql).toBe('<statement over the analysis limits>');
  expect(process.memoryUsage().rss - rss).toBeLessThan(100 * MB);
});

test('the same chains under the extended protocol, and a chain of unions, of joins, of NOTs and of CASEs', async () => {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  const hostile = [
    Array.from({ length: 2000 }, (_, i) => `SELECT ${i}`).join(' UNION '),
    'SELECT 1 FROM orders o0 ' + Array.from({ length: 2000 }, (_, i) => `JOIN orders o${i + 1} ON true`).join(' '),
    'SELECT ' + 'NOT '.repeat(3000) + 'true',
    'SELECT ' + 'CASE WHEN true THEN '.repeat(2000) + '1' + ' END'.repeat(2000),
    'SELECT ' + '('.repeat(3000) + '1' + ')'.repeat(3000),
  ];
  for (const sql of hostile) expect(await outcome(c, sql)).toMatch(/^54001 statement_too_complex/);
  // Extended protocol: a parameter forces Parse/Bind/Execute.
  await expect(c.query({ text: chain(1, 10_000) + ' + $1::int', values: [1] })).rejects.toMatchObject({ code: '54001' });
  expect((await c.query('SELECT 42 AS n')).rows[0].n).toBe(42);
  await c.end();
  await newSessionRunsNewStatement(proxy);
});

test('a parser instance that fails is replaced by a loaded spare; other sessions never see it', async () => {
  const rss = process.memoryUsage().rss;
  const before = await metric(proxy, 'ormai_parser_recycles_total', { reason: 'failure' });
  const other = new Client({ connectionString: proxy.url() });
  await other.connect();
  // Straight at the parser, below the proxy's bounds: what would have poisoned the process.
  for (let i = 0; i < 20; i++) {
    expect(() => withParser((p) => p.parse(chain(i, 20_000)))).toThrow(RangeError);
    // Each failure retires its instance; give the background load of the next spare its turn.
    for (let t = 0; t < 100 && !parserHealth().ready; t++) await new Promise((r) => setTimeout(r, 10));
    expect(await outcome(other, `SELECT ${5000 + i} AS n`)).toBe('ok');
  }
  await other.end();
  await newSessionRunsNewStatement(proxy);
  expect(await metric(proxy, 'ormai_parser_recycles_total', { reason: 'failure' })).toBe(before + 20);
  const ready = await readyz(proxy);
  expect(ready.status).toBe(200);
  expect(ready.body.checks.analysis.ok).toBe(true);
  expect(process.memoryUsage().rss - rss).toBeLessThan(150 * MB);
});

test('two failures in a row: nothing is parsed and readiness says why until a fresh instance is loaded', async () => {
  const c = new Client({ connectionString: proxy.url() });
  // A failed expectation below leaves it open: the proxy's shutdown must not crash the suite.
  c.on('error', () => undefined);
  await c.connect();
  // The spare must be loaded too (a slow machine may still be loading it after the last test's failures).
  await parserSettled();
  expect(parserHealth().ready).toBe(true);
  // Both the active instance and the spare fail before the event loop turns: nothing is loaded.
  expect(() => withParser((p) => p.parse(chain(1, 20_000)))).toThrow(RangeError);
  expect(() => withParser((p) => p.parse(chain(2, 20_000)))).toThrow(RangeError);
  expect(parserHealth()).toEqual({ ready: false, reason: 'statement parser is being replaced' });
  expect(withParser((p) => p.parse('SELECT 1'))).toBeUndefined();
  for (let t = 0; t < 100 && !parserHealth().ready; t++) await new Promise((r) => setTimeout(r, 10));
  expect(parserHealth().ready).toBe(true);
  expect(await outcome(c, 'SELECT 43 AS n')).toBe('ok');
  await c.end();
  expect(await metric(proxy, 'ormai_parser_unavailable_total')).toBeGreaterThanOrEqual(1);
});
