// Helpers for the hardening suites: a fresh session running a fresh statement, readiness, metric values, heap.
import v8 from 'node:v8';
import vm from 'node:vm';
import { Client } from 'pg';
import type { TestProxy } from './proxy';

let fresh = 0;

/** A new session runs a statement never seen before (so it cannot come from the statement cache). */
export async function newSessionRunsNewStatement(proxy: TestProxy): Promise<void> {
  const c = new Client({ connectionString: proxy.url() });
  await c.connect();
  try {
    const n = 900_000 + ++fresh + Math.floor(Math.random() * 1000) * 1000;
    const { rows } = await c.query(`SELECT ${n} AS n, count(*) >= 0 AS ok FROM orders`);
    expect(rows[0]).toEqual({ n, ok: true });
  } finally {
    await c.end();
  }
}

export async function readyz(proxy: TestProxy): Promise<{ status: number; body: { status: string; checks: Record<string, { ok: boolean; error?: string }> } }> {
  const res = await fetch(`http://127.0.0.1:${proxy.admin.port}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; checks: Record<string, { ok: boolean; error?: string }> } };
}

/** The value of one series of the proxy's /metrics text (0 when absent). */
export async function metric(proxy: TestProxy, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await proxy.metrics.text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries((m[3] ?? '').split(',').filter(Boolean).map((kv) => kv.split('=')).map(([k, v]) => [k, v.replace(/^"|"$/g, '')]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[4]);
  }
  return 0;
}

let collect: (() => void) | undefined;

/** Heap in use after a full collection (the flag is set at run time, so plain `npx jest` measures the same). */
export function heapUsed(): number {
  if (!collect) {
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  }
  collect();
  return process.memoryUsage().heapUsed;
}

export const MB = 1024 * 1024;

/** Runs a statement and returns the error's SQLSTATE and message, or 'ok'. */
export async function outcome(c: Client, sql: string): Promise<string> {
  try {
    await c.query(sql);
    return 'ok';
  } catch (err) {
    const e = err as Error & { code?: string };
    return `${e.code} ${e.message}`;
  }
}
