// The read-scope plan suites' shared parts (read-scope-plans, read-scope-rls): the bulk data, a statement through a proxy, its plan.
import { Client } from 'pg';
import type { TestProxy } from './proxy';
import type { Mode } from './red-team';

/** 20,000 customers and 40,000 orders per tenant: a tenant's rows are too many to scan for one id. */
export const BULK_SETUP = [
  "INSERT INTO customers (tenant_id, name, email) SELECT 1 + g % 2, 'Bulk ' || g, 'bulk' || g || '@example.com' FROM generate_series(1, 40000) g",
  "INSERT INTO orders (tenant_id, customer_id, total_cents, status, created_at) SELECT c.tenant_id, c.id, 100 + k, 'paid', now() - (c.id * interval '1 minute') FROM customers c, generate_series(1, 2) k",
  'CREATE INDEX orders_customer_id_idx ON orders (customer_id)',
];

/** A scan of every row of the tenant: what a fenced policy table costs. */
export const TENANT_SCAN = /Seq Scan on (orders|customers)|Bitmap Index Scan on (orders|customers)_tenant_id_idx|Index Scan using (orders|customers)_tenant_id_idx/;

export interface PlanOutcome {
  rows?: Array<Record<string, unknown>>;
  rowCount?: number;
  error?: Error & { code?: string; routine?: string };
}

/** One statement on a session of its own, under the simple or the extended protocol. */
export async function query(proxy: TestProxy, sql: string, mode: Mode): Promise<PlanOutcome> {
  const c = new Client({ connectionString: proxy.url() });
  c.on('error', () => undefined);
  await c.connect();
  try {
    const r = (await c.query(mode.extended ? ({ text: sql, values: [], queryMode: 'extended' } as never) : sql)) as unknown as { rows: Array<Record<string, unknown>>; rowCount: number };
    return { rows: r.rows, rowCount: r.rowCount };
  } catch (error) {
    return { error: error as Error & { code?: string; routine?: string } };
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** EXPLAIN of the statement through the proxy, as text. */
export async function plan(proxy: TestProxy, sql: string, mode: Mode): Promise<string> {
  const o = await query(proxy, `EXPLAIN ${sql}`, mode);
  if (o.error) throw new Error(`${sql}: ${o.error.message}`);
  return o.rows!.map((r) => String(r['QUERY PLAN'])).join('\n');
}
