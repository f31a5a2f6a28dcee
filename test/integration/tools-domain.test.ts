// Domain tools over POST /agent/tool (docs/domain-tools.md): declared in the policy, run through the agent's own session, so the
// tenant scope, masks, write rules and audit are the pipeline's; and `ormai-proxy check` against the live schema.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig } from '../../src/config/load';
import { parseStructuredFile } from '../../src/policy/load';
import { lintConfig } from '../../src/policy/tooling/check';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startToolHarness, TOOL_TOKENS, type ToolHarness } from '../support/tools';

const POLICY = path.resolve(__dirname, '..', 'fixtures', 'domain-tools-policy.yaml');

let db: TestDatabase;
let h: ToolHarness;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-domain-'));
  db = await createTestDatabase();
  h = await startToolHarness(db.url, POLICY);
});
afterAll(async () => {
  await h?.close();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

const tool: ToolHarness['tool'] = (...args) => h.tool(...args);
const sql: ToolHarness['sql'] = (...args) => h.sql(...args);
const eventOf: ToolHarness['eventOf'] = (id) => h.eventOf(id);

const WEEKLY = "SELECT sum(total_cents) AS cents FROM orders WHERE status = 'paid' AND created_at > now() - interval '7 days' AND customer_id = ";

describe('tenant scope', () => {
  test('db.describe_schema lists the domain tools with their parameters', async () => {
    const r = await tool('db.describe_schema', {}, 'tenant1');
    expect(r.status).toBe(200);
    expect(r.body.data.domain_tools).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'analytics.weekly_revenue', params: { customer_id: expect.objectContaining({ type: 'integer', required: true }) } })]));
  });

  test('analytics.weekly_revenue: each tenant gets its own sum, as the same SQL gives it; another tenant\'s customer sums nothing', async () => {
    const one = await tool('analytics.weekly_revenue', { customer_id: 1 }, 'tenant1');
    expect(one).toMatchObject({ status: 200, body: { data: [{ cents: '20000' }] } });
    expect(one.body.data).toEqual(await sql(`${WEEKLY}1`, 'tenant1'));
    const two = await tool('analytics.weekly_revenue', { customer_id: 4 }, 'tenant2');
    expect(two).toMatchObject({ status: 200, body: { data: [{ cents: '990000' }] } });
    expect(two.body.data).toEqual(await sql(`${WEEKLY}4`, 'tenant2'));
    // Tenant 2 asking about tenant 1's customer: the tenant predicate leaves no row to sum.
    expect(await tool('analytics.weekly_revenue', { customer_id: 1 }, 'tenant2')).toMatchObject({ status: 200, body: { data: [{ cents: null }] } });
  });

  test('called by its wire name (namespace with an underscore): per-tenant rows, the audit under the canonical name', async () => {
    const question = 'SELECT status, count(*) AS orders, sum(total_cents) AS cents FROM orders GROUP BY status ORDER BY status';
    for (const who of ['tenant1', 'tenant2'] as const) {
      const r = await tool('sales_ops_revenue_by_status', {}, who);
      expect(r.status).toBe(200);
      expect(r.body.data).toEqual(await sql(question, who));
      expect((await eventOf(r.body.audit_id)).tool).toEqual({ name: 'sales_ops.revenue_by_status', arguments: {} });
    }
    const paid = await tool('sales_ops.revenue_by_status', { status: 'paid' }, 'tenant1');
    expect(paid.body.data).toEqual([{ status: 'paid', orders: '2', cents: '24500' }]);
  });

  test('a hostile value is a value: it matches no status, and the statement is the tool\'s', async () => {
    const r = await tool('sales_ops.revenue_by_status', { status: "paid' OR '1'='1" });
    expect(r).toMatchObject({ status: 200, body: { data: [] } });
    const event = await eventOf(r.body.audit_id);
    expect(event.tool).toEqual({ name: 'sales_ops.revenue_by_status', arguments: { status: '$1' } });
    expect(JSON.stringify(event)).not.toContain("OR '1'='1");
  });
});

describe('audit', () => {
  test('an allowed call: the statement event carries the tool, its redacted arguments and the tool_call_id', async () => {
    const r = await tool('analytics_weekly_revenue', { customer_id: 2 }, 'tenant1', 'call_weekly_1');
    expect(r.status).toBe(200);
    const event = await eventOf(r.body.audit_id);
    expect(event).toMatchObject({
      kind: 'statement',
      decision: 'allowed',
      principal: { user: 'tenant1-agent', tenant_id: '1' },
      policy: { name: 'domain-tools' },
      tool: { name: 'analytics.weekly_revenue', arguments: { customer_id: '$1' } },
      tool_call_id: 'call_weekly_1',
      rows: 1,
    });
    // What ran read the tenant's rows (a session barrier view, or a fenced derived table), never the table itself.
    expect(event.rewritten_sql).toMatch(/FROM (pg_temp\.ormai_orders_\w+|\( SELECT .* FROM public\.orders WHERE tenant_id = )/);
    expect(event.rewritten_sql).not.toMatch(/FROM orders\b/);
  });

  test.each([
    ['a wrong parameter type', { customer_id: 'one' }, /customer_id: expected a whole number/],
    ['an unknown parameter', { customer_id: 1, tenant_id: 2 }, /unknown argument "tenant_id"; allowed: customer_id/],
    ['a missing parameter', {}, /customer_id: missing \(required\)/],
  ])('%s is refused before anything runs, and audited', async (_what, args, message) => {
    const r = await tool('analytics.weekly_revenue', args, 'tenant2', 'call_bad');
    expect(r).toMatchObject({ status: 400, body: { error: { code: 'tool_arguments_invalid', sqlstate: '22023' } } });
    expect(r.body.error.message).toMatch(message);
    const event = await eventOf(r.body.audit_id);
    expect(event).toMatchObject({ kind: 'tool', decision: 'refused', code: 'tool_arguments_invalid', tool: { name: 'analytics.weekly_revenue' }, tool_call_id: 'call_bad' });
    // Values are placeholders in the audit, names kept.
    expect(JSON.stringify(event.tool)).not.toMatch(/one|"2"/);
    if ('tenant_id' in args) expect(event.tool!.arguments).toEqual({ customer_id: '$1', tenant_id: '$2' });
  });
});

describe('a write domain tool', () => {
  test('needs a reason, as the grant says; previews with dry_run; changes only the tenant\'s row', async () => {
    const [mine] = await db.query<{ id: number }>("SELECT id FROM orders WHERE tenant_id = 1 AND status = 'pending' ORDER BY id LIMIT 1");
    const [theirs] = await db.query<{ id: number; status: string }>('SELECT id, status FROM orders WHERE tenant_id = 2 ORDER BY id LIMIT 1');

    const noReason = await tool('orders.mark_shipped', { order_id: mine.id });
    expect(noReason).toMatchObject({ status: 403, body: { error: { code: 'reason_required' } } });
    expect((await eventOf(noReason.body.audit_id)).decision).toBe('refused');

    const preview = await tool('orders.mark_shipped', { order_id: mine.id, reason: 'carrier picked it up', dry_run: true });
    // The pipeline's preview of an UPDATE (rewrite/dry-run.ts): key, and each assigned column before and after.
    expect(preview).toMatchObject({ status: 200, body: { dry_run: true, data: [{ affected_rows: '1', id: mine.id, status_before: 'pending', status_after: 'shipped' }] } });
    expect(await db.query('SELECT status FROM orders WHERE id = $1', [mine.id])).toEqual([{ status: 'pending' }]);

    const shipped = await tool('orders.mark_shipped', { order_id: mine.id, reason: 'carrier picked it up' }, 'tenant1', 'call_ship');
    expect(shipped).toMatchObject({ status: 200, body: { data: [{ id: mine.id, status: 'shipped' }], rows: 1 } });
    const event = await eventOf(shipped.body.audit_id);
    expect(event).toMatchObject({ decision: 'allowed', reason: 'carrier picked it up', tool: { name: 'orders.mark_shipped', arguments: { order_id: '$1', reason: '(reason: in the audit event)' } } });

    const cross = await tool('orders.mark_shipped', { order_id: theirs.id, reason: 'probe' });
    expect(cross).toMatchObject({ status: 200, body: { data: [], rows: 0 } });
    expect(await db.query('SELECT status FROM orders WHERE id = $1', [theirs.id])).toEqual([{ status: theirs.status }]);
  });
});

test('GET /agent/tools lists the domain tools after the db.* tools', async () => {
  const res = await fetch(`${h.base}/agent/tools?format=anthropic`, { headers: { authorization: `Bearer ${TOOL_TOKENS.tenant1}` } });
  const names = ((await res.json()) as { tools: Array<{ name: string }> }).tools.map((t) => t.name);
  expect(names.slice(-3)).toEqual(['analytics_weekly_revenue', 'sales_ops_revenue_by_status', 'orders_mark_shipped']);
});

describe('ormai-proxy check against the live schema', () => {
  test('the fixture is clean; a tool naming a hidden column, an unregistered table or DDL is an error naming the tool', async () => {
    const raw = parseStructuredFile(readFileSync(POLICY, 'utf8'), POLICY) as Record<string, any>;
    const int = { type: 'integer', description: 'x' };
    const tools = [
      ...raw.tools,
      { name: 'leak.secret', description: 'x', sql: 'SELECT api_secret FROM customers WHERE id = :id', params: { id: int } },
      { name: 'leak.unregistered', description: 'x', sql: 'SELECT * FROM pg_authid' },
      { name: 'leak.ddl', description: 'x', sql: 'ALTER TABLE orders ADD COLUMN x int' },
      { name: 'leak.type', description: 'x', sql: 'SELECT 1 FROM orders WHERE created_at = :id', params: { id: int } },
    ];
    const file = path.join(dir, 'check-policy.yaml');
    writeFileSync(file, JSON.stringify({ ...raw, tools }));
    const lint = async (policy: string) => {
      const config = resolveConfig({ database: 'app', policies: [policy] }, path.join(dir, 'ormai.yaml'), { ORMAI_UPSTREAM_URL: db.url });
      return lintConfig(config, false);
    };
    expect(await lint(POLICY)).toEqual({ findings: [] });
    const { findings, skipped } = await lint(file);
    expect(skipped).toBeUndefined();
    expect(findings.map((f) => `${f.severity} ${f.rule} ${f.subject}: ${f.message}`)).toEqual([
      expect.stringMatching(/^error domain_tool_refused tools\[3\] leak\.secret: the database refuses its statement as the agent's session would send it \(42703: column "api_secret" does not exist\)$/),
      expect.stringMatching(/^error domain_tool_refused tools\[4\] leak\.unregistered: the proxy refuses its statement \(/),
      expect.stringMatching(/^error domain_tool_refused tools\[5\] leak\.ddl: the proxy refuses its statement \(statement_not_allowed: /),
      expect.stringMatching(/^error domain_tool_refused tools\[6\] leak\.type: the database refuses its statement as the agent's session would send it \(42883: operator does not exist: timestamp without time zone = bigint\)$/),
    ]);
  });
});
