// The shipped dashboard and alert rules against a real proxy's /metrics: every metric they read exists, and the label values the alerts select are the ones real statements produce.
import { Client } from 'pg';
import { approvalRequest } from '../support/approvals';
import { SLOW_QUERY, type PgError } from '../support/clients';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { dashboardExpressions, exposedTypes, loadDashboard, loadRules, metricNames, missingFrom, parseExposition, ruleExpressions } from '../support/monitoring';
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

const scrape = async (): Promise<string> => {
  const res = await fetch(`http://127.0.0.1:${proxy.admin.port}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
};

const refusal = (p: Promise<unknown>): Promise<PgError | undefined> =>
  p.then(
    () => undefined,
    (e: PgError) => e,
  );

test('after real traffic, /metrics has every metric the dashboard and the rules read, and the series the alerts select', async () => {
  const client = new Client({ connectionString: proxy.url() });
  await client.connect();
  try {
    // Reads (the second a statement cache hit), a refused write, a denied column (42703).
    await client.query('SELECT id FROM orders LIMIT 1');
    await client.query('SELECT id FROM orders LIMIT 1');
    expect((await refusal(client.query('UPDATE orders SET status = status WHERE id = 1')))?.routine).toBe('ormai.model_writes_disabled');
    expect((await refusal(client.query('SELECT api_secret FROM customers')))?.code).toBe('42703');
    // PostgreSQL cancels it at the policy's statement_timeout (3 s): OrmaiStatementTimeouts counts code 57014.
    expect((await refusal(client.query(SLOW_QUERY)))?.code).toBe('57014');
    // The quickstart policy allows 20 writes a minute: OrmaiWriteRateBudgetExhausted counts the next.
    let limited: PgError | undefined;
    for (let i = 0; i < 25 && !limited; i++) {
      const err = await refusal(client.query("/*reason='monitoring test'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 100)"));
      if (err) limited = err;
    }
    expect(limited?.routine).toBe('ormai.write_rate_limited');
  } finally {
    await client.end();
  }
  await proxy.approvals.create(approvalRequest());

  const text = await scrape();
  const used = new Set([...dashboardExpressions(loadDashboard()), ...ruleExpressions(loadRules())].flatMap((e) => metricNames(e.expr)));
  expect(used.size).toBeGreaterThan(20);
  // A metric exists when the exposition has its # TYPE line (a labelled counter not yet incremented has no sample).
  expect(missingFrom(exposedTypes(text), used)).toEqual([]);

  const samples = parseExposition(text);
  const sum = (prefix: string, ...labels: string[]) =>
    [...samples].filter(([k]) => k.startsWith(`${prefix}{`) && labels.every((l) => k.includes(l))).reduce((n, [, v]) => n + v, 0);
  expect(sum('ormai_statements_total', 'code="57014"')).toBe(1);
  expect(sum('ormai_statements_total', 'decision="refused"', 'code="write_rate_limited"')).toBe(1);
  expect(samples.get('ormai_budget_refusals_total{code="write_rate_limited"}')).toBe(1);
  expect(sum('ormai_statements_total', 'decision="refused"')).toBe(2);
  expect(samples.get('ormai_approvals_pending')).toBe(1);
  expect(samples.get('ormai_approvals_oldest_pending_seconds')).toBeGreaterThanOrEqual(0);
  expect(samples.get('ormai_approvals_oldest_pending_seconds')).toBeLessThan(60);
  expect(samples.get('ormai_rate_limit_store_up')).toBe(1);
  expect(samples.get('ormai_statement_cache_hits_total')).toBeGreaterThanOrEqual(1);
  for (const h of ['ormai_upstream_duration_seconds', 'ormai_rewrite_duration_seconds']) {
    expect(samples.get(`${h}_count`)).toBeGreaterThan(0);
    expect(samples.get(`${h}_bucket{le="+Inf"}`)).toBe(samples.get(`${h}_count`));
  }
});
