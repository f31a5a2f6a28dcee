// ProxyMetrics: the recording API, bounded labels, per-proxy registries, callback sources; and the CachedSource under them.
import { register } from 'prom-client';
import { CachedSource, SourceTimeoutError } from '../../../src/admin/cached-source';
import { BUDGET_CODES, metricCode, ProxyMetrics } from '../../../src/admin/metrics';
import type { Approval } from '../../../src/approvals/types';

type Labels = Record<string, string | number>;

/** Every sample of one metric, after its collect function ran (as a scrape would). */
async function samples(m: ProxyMetrics, name: string): Promise<Array<{ labels: Labels; value: number; metricName?: string }>> {
  const metric = m.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  return (await metric.get()).values as Array<{ labels: Labels; value: number; metricName?: string }>;
}

async function value(m: ProxyMetrics, name: string, labels: Labels = {}): Promise<number | undefined> {
  const match = (await samples(m, name)).find((s) => Object.keys(labels).every((k) => s.labels[k] === labels[k]) && Object.keys(s.labels).length === Object.keys(labels).length);
  return match?.value;
}

describe('ProxyMetrics recording', () => {
  test('statement() counts by kind, decision and code and observes both durations', async () => {
    const m = new ProxyMetrics({ defaultMetrics: false });
    m.statement({ kind: 'read', decision: 'allowed', analysisSeconds: 0.0002, upstreamSeconds: 0.004 });
    m.statement({ kind: 'read', decision: 'allowed', analysisSeconds: 0.00004 });
    m.statement({ kind: 'write', decision: 'refused', code: 'model_writes_disabled', analysisSeconds: 0.001 });
    m.statement({ kind: 'write', decision: 'held', code: 'pending_approval' });
    expect(await value(m, 'ormai_statements_total', { kind: 'read', decision: 'allowed', code: 'none' })).toBe(2);
    expect(await value(m, 'ormai_statements_total', { kind: 'write', decision: 'refused', code: 'model_writes_disabled' })).toBe(1);
    expect(await value(m, 'ormai_statements_total', { kind: 'write', decision: 'held', code: 'pending_approval' })).toBe(1);
    const rewrite = await samples(m, 'ormai_rewrite_duration_seconds');
    expect(rewrite.find((s) => s.metricName === 'ormai_rewrite_duration_seconds_count')?.value).toBe(3);
    expect(rewrite.find((s) => s.metricName === 'ormai_rewrite_duration_seconds_bucket' && s.labels.le === 0.00005)?.value).toBe(1);
    const upstream = await samples(m, 'ormai_upstream_duration_seconds');
    expect(upstream.find((s) => s.metricName === 'ormai_upstream_duration_seconds_sum')?.value).toBeCloseTo(0.004);
    expect(upstream.find((s) => s.metricName === 'ormai_upstream_duration_seconds_bucket' && s.labels.le === 10)?.value).toBe(1);
  });

  test('budget refusals count twice: by statement code and in ormai_budget_refusals_total, which starts at 0 for each code', async () => {
    const m = new ProxyMetrics({ defaultMetrics: false });
    for (const code of BUDGET_CODES) expect(await value(m, 'ormai_budget_refusals_total', { code })).toBe(0);
    m.statement({ kind: 'read', decision: 'refused', code: 'scan_budget_exceeded' });
    m.statement({ kind: 'write', decision: 'refused', code: 'write_rate_limited' });
    m.statement({ kind: 'write', decision: 'refused', code: 'write_rate_limited' });
    m.statement({ kind: 'read', decision: 'refused', code: 'model_not_allowed' });
    expect(await value(m, 'ormai_budget_refusals_total', { code: 'scan_budget_exceeded' })).toBe(1);
    expect(await value(m, 'ormai_budget_refusals_total', { code: 'write_rate_limited' })).toBe(2);
    expect(await value(m, 'ormai_budget_refusals_total', { code: 'query_rate_limited' })).toBe(0);
    expect((await samples(m, 'ormai_budget_refusals_total')).map((s) => s.labels.code).sort()).toEqual([...BUDGET_CODES].sort());
  });

  test('logins by method and outcome; reloads and reload failures apart', async () => {
    const m = new ProxyMetrics({ defaultMetrics: false });
    m.login('scram-sha-256', true);
    m.login('jwt', false);
    m.login('jwt', false);
    m.reload(true);
    m.reload(false);
    m.reload(false);
    expect(await value(m, 'ormai_logins_total', { method: 'scram-sha-256', outcome: 'success' })).toBe(1);
    expect(await value(m, 'ormai_logins_total', { method: 'jwt', outcome: 'failure' })).toBe(2);
    expect(await value(m, 'ormai_policy_reloads_total')).toBe(1);
    expect(await value(m, 'ormai_policy_reload_failures_total')).toBe(2);
  });
});

describe('label bounding', () => {
  test('unknown codes, kinds, decisions and login methods collapse into fixed values', async () => {
    const m = new ProxyMetrics({ defaultMetrics: false });
    for (let i = 0; i < 50; i++) {
      m.statement({ kind: `kind${i}` as 'read', decision: `d${i}` as 'allowed', code: `code_${i}` });
      m.login(`method${i}`, true);
    }
    m.statement({ kind: 'read', decision: 'error', code: '42P01' });
    m.statement({ kind: 'read', decision: 'error', code: '42P01x' });
    m.statement({ kind: 'read', decision: 'refused', code: 'toString' });
    expect(await samples(m, 'ormai_statements_total')).toEqual([
      { labels: { kind: 'other', decision: 'other', code: 'other' }, value: 50 },
      // A SQLSTATE is its own label value (five digits or capitals); anything else is not.
      { labels: { kind: 'read', decision: 'error', code: '42P01' }, value: 1 },
      { labels: { kind: 'read', decision: 'error', code: 'other' }, value: 1 },
      { labels: { kind: 'read', decision: 'refused', code: 'other' }, value: 1 },
    ]);
    expect(await samples(m, 'ormai_logins_total')).toEqual([{ labels: { method: 'other', outcome: 'success' }, value: 50 }]);
  });

  test('metricCode keeps catalogue codes and SQLSTATEs only', () => {
    expect(metricCode('57014')).toBe('57014');
    expect(metricCode('5701')).toBe('other');
    expect(metricCode('not_a_catalogue_code')).toBe('other');
    expect(metricCode('model_not_allowed')).toBe('model_not_allowed');
    expect(metricCode(undefined)).toBe('none');
    expect(metricCode('__proto__')).toBe('other');
  });

  test('refused and held statements never count as upstream time; approval steps are counted by decision', async () => {
    const m = new ProxyMetrics({ defaultMetrics: false });
    m.statement({ kind: 'write', decision: 'refused', code: 'reason_required', upstreamSeconds: 0.001 });
    m.statement({ kind: 'write', decision: 'held', code: 'pending_approval', upstreamSeconds: 0.001 });
    m.statement({ kind: 'read', decision: 'error', code: '57014', upstreamSeconds: 3 });
    expect((await samples(m, 'ormai_upstream_duration_seconds')).find((s) => s.metricName?.endsWith('_count'))?.value).toBe(1);
    m.analysis(0.0003);
    expect((await samples(m, 'ormai_rewrite_duration_seconds')).find((s) => s.metricName?.endsWith('_count'))?.value).toBe(1);
    for (const d of ['approved', 'approved', 'denied', 'expired', 'executed', 'failed', 'requested', 'bogus']) m.approval(d);
    expect(await samples(m, 'ormai_approvals_total')).toEqual([
      { labels: { decision: 'approved' }, value: 2 },
      { labels: { decision: 'denied' }, value: 1 },
      { labels: { decision: 'expired' }, value: 1 },
      { labels: { decision: 'executed' }, value: 1 },
      { labels: { decision: 'failed' }, value: 1 },
    ]);
  });

  test('negative, infinite or NaN durations are not observed', async () => {
    const m = new ProxyMetrics({ defaultMetrics: false });
    m.statement({ kind: 'read', decision: 'allowed', analysisSeconds: -1, upstreamSeconds: Number.NaN });
    m.statement({ kind: 'read', decision: 'allowed', analysisSeconds: Number.POSITIVE_INFINITY });
    expect((await samples(m, 'ormai_rewrite_duration_seconds')).find((s) => s.metricName?.endsWith('_count'))?.value).toBe(0);
    expect((await samples(m, 'ormai_upstream_duration_seconds')).find((s) => s.metricName?.endsWith('_count'))?.value).toBe(0);
  });
});

describe('registry isolation', () => {
  test('two proxies in one process count apart, and neither touches the global registry', async () => {
    const a = new ProxyMetrics({ defaultMetrics: false });
    const b = new ProxyMetrics({ defaultMetrics: false });
    a.statement({ kind: 'read', decision: 'allowed' });
    expect(await value(a, 'ormai_statements_total', { kind: 'read', decision: 'allowed', code: 'none' })).toBe(1);
    expect(await value(b, 'ormai_statements_total', { kind: 'read', decision: 'allowed', code: 'none' })).toBeUndefined();
    expect(register.getSingleMetric('ormai_statements_total')).toBeUndefined();
  });

  test('the exposition carries the process metrics once, after the proxy metrics, whatever the number of proxies', async () => {
    const [a, b] = [new ProxyMetrics({ version: '9.9.9' }), new ProxyMetrics()];
    const text = await a.text();
    expect(text).toMatch(/^# HELP ormai_/);
    expect(text.match(/^# TYPE process_cpu_seconds_total counter$/gm)).toHaveLength(1);
    expect(text).toContain('nodejs_eventloop_lag_seconds');
    expect(text).toContain(`ormai_build_info{version="9.9.9",node="${process.version}"} 1`);
    expect(await b.text()).toContain('process_cpu_seconds_total');
    expect(await new ProxyMetrics({ defaultMetrics: false }).text()).not.toContain('process_cpu_seconds_total');
  });
});

describe('callback sources', () => {
  test('sessions, statement cache and audit are read at scrape time', async () => {
    const m = new ProxyMetrics({ defaultMetrics: false });
    expect(await value(m, 'ormai_sessions_active')).toBe(0);
    const state = { sessions: 3, hits: 10, misses: 4, size: 4, depth: 7, failures: 2 };
    m.setSessionSource(() => state.sessions);
    m.setCacheSource(() => ({ hits: state.hits, misses: state.misses, size: state.size }));
    m.setAuditSource(() => ({ depth: state.depth, failures: state.failures }));
    expect(await value(m, 'ormai_sessions_active')).toBe(3);
    expect(await value(m, 'ormai_statement_cache_hits_total')).toBe(10);
    expect(await value(m, 'ormai_statement_cache_misses_total')).toBe(4);
    expect(await value(m, 'ormai_statement_cache_entries')).toBe(4);
    expect(await value(m, 'ormai_audit_queue_depth')).toBe(7);
    expect(await value(m, 'ormai_audit_failures_total')).toBe(2);
    Object.assign(state, { sessions: 1, hits: 25, failures: 5 });
    expect(await value(m, 'ormai_sessions_active')).toBe(1);
    expect(await value(m, 'ormai_statement_cache_hits_total')).toBe(25);
    expect(await value(m, 'ormai_audit_failures_total')).toBe(5);
  });

  test('pending approvals are counted with list({ state: pending }), cached, and a failing store keeps the last count', async () => {
    const m = new ProxyMetrics({ defaultMetrics: false });
    expect(await value(m, 'ormai_approvals_pending')).toBe(0);
    const calls: unknown[] = [];
    let pending = 2;
    let fail = false;
    m.setApprovalSource(
      {
        list: async (filter) => {
          calls.push(filter);
          if (fail) throw new Error('store down');
          return Array.from({ length: pending }, () => ({}) as Approval);
        },
      },
      40,
    );
    expect(await value(m, 'ormai_approvals_pending')).toBe(2);
    pending = 5;
    expect(await value(m, 'ormai_approvals_pending')).toBe(2);
    expect(calls).toEqual([{ state: 'pending' }]);
    await new Promise((r) => setTimeout(r, 50));
    expect(await value(m, 'ormai_approvals_pending')).toBe(5);
    fail = true;
    await new Promise((r) => setTimeout(r, 50));
    expect(await value(m, 'ormai_approvals_pending')).toBe(5);
    expect(calls).toHaveLength(3);
  });

  test('the oldest pending approval is aged at each scrape from the same cached list; 0 when none is pending', async () => {
    // The clock is the test's: the ages are exact and the cache's 300 ms pass only when the test says so.
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    try {
      const m = new ProxyMetrics({ defaultMetrics: false });
      expect(await value(m, 'ormai_approvals_oldest_pending_seconds')).toBe(0);
      const t0 = Date.now();
      const ago = (s: number) => new Date(t0 - s * 1000).toISOString();
      let pending: Array<Pick<Approval, 'createdAt'>> = [{ createdAt: ago(30) }, { createdAt: ago(900) }, { createdAt: 'not a time' }];
      let calls = 0;
      m.setApprovalSource(
        {
          list: async () => {
            calls++;
            return pending as Approval[];
          },
        },
        300,
      );
      // The minimum, not the first in the list; a timestamp that does not parse is skipped.
      expect(await value(m, 'ormai_approvals_oldest_pending_seconds')).toBe(900);
      expect(await value(m, 'ormai_approvals_pending')).toBe(3);
      // Within the cache the list is not read again, but the age keeps growing.
      jest.setSystemTime(t0 + 20);
      expect(await value(m, 'ormai_approvals_oldest_pending_seconds')).toBe(900.02);
      expect(calls).toBe(1);
      pending = [];
      jest.setSystemTime(t0 + 320);
      expect(await value(m, 'ormai_approvals_oldest_pending_seconds')).toBe(0);
      expect(await value(m, 'ormai_approvals_pending')).toBe(0);
      expect(calls).toBe(2);
    } finally {
      jest.useRealTimers();
    }
  });

  test('rate-limit store availability and policy info', async () => {
    const m = new ProxyMetrics({ defaultMetrics: false });
    let up = true;
    m.setRateLimitSource(async () => up);
    let policies = [{ name: 'default', hash: 'aaa' }];
    m.setPolicySource(() => policies);
    expect(await value(m, 'ormai_rate_limit_store_up')).toBe(1);
    expect(await samples(m, 'ormai_policy_info')).toEqual([{ labels: { name: 'default', hash: 'aaa' }, value: 1 }]);
    up = false;
    policies = [{ name: 'default', hash: 'bbb' }];
    expect(await value(m, 'ormai_rate_limit_store_up')).toBe(0);
    // The old hash's series disappears: a reload does not leave stale series behind.
    expect(await samples(m, 'ormai_policy_info')).toEqual([{ labels: { name: 'default', hash: 'bbb' }, value: 1 }]);
  });
  test('a source that throws or rejects reads as its fallback instead of failing the scrape', async () => {
    const m = new ProxyMetrics({ defaultMetrics: false });
    const boom = () => {
      throw new Error('boom');
    };
    m.setSessionSource(boom);
    m.setCacheSource(boom);
    m.setAuditSource(boom);
    m.setPolicySource(boom);
    m.setRateLimitSource(async () => Promise.reject(new Error('down')));
    const text = await m.text();
    expect(text).toContain('ormai_sessions_active 0');
    expect(text).toContain('ormai_audit_failures_total 0');
    expect(text).toContain('ormai_rate_limit_store_up 0');
  });
});

describe('CachedSource', () => {
  test('one load at a time, reused within the ttl, reloaded after it', async () => {
    let clock = 0;
    let loads = 0;
    const source = new CachedSource(async () => ++loads, { ttlMs: 100, waitMs: 1000, fallback: () => -1, now: () => clock });
    expect(await Promise.all([source.get(), source.get(), source.get()])).toEqual([1, 1, 1]);
    clock = 99;
    expect(await source.get()).toBe(1);
    clock = 100;
    expect(await source.get()).toBe(2);
  });

  test('a failed load caches the fallback (given the last value); a slow one answers the fallback and is cached when it ends', async () => {
    let clock = 0;
    let mode: 'ok' | 'fail' | 'slow' = 'ok';
    let release: () => void = () => undefined;
    const errors: unknown[] = [];
    const source = new CachedSource<number>(
      async () => {
        if (mode === 'fail') throw new Error('down');
        if (mode === 'slow') await new Promise<void>((r) => (release = r));
        return 42;
      },
      { ttlMs: 10, waitMs: 20, fallback: (err, last) => (errors.push(err), last ?? 0), now: () => clock },
    );
    expect(await source.get()).toBe(42);
    mode = 'fail';
    clock = 10;
    expect(await source.get()).toBe(42);
    expect(errors[0]).toEqual(new Error('down'));
    mode = 'slow';
    clock = 20;
    expect(await source.get()).toBe(42);
    expect(errors[1]).toBeInstanceOf(SourceTimeoutError);
    release();
    await new Promise((r) => setImmediate(r));
    mode = 'fail';
    expect(await source.get()).toBe(42);
    expect(errors).toHaveLength(2);
  });
});

test('ormai_audit_chain_head_timestamp_seconds: one series per file chain, its last published head (16 hex digits) and event time', async () => {
  const m = new ProxyMetrics({ defaultMetrics: false });
  const heads: Array<{ sink: string; hash: string; event_time?: string }> = [];
  m.setChainHeadSource(() => heads);
  expect(await m.registry.getSingleMetricAsString('ormai_audit_chain_head_timestamp_seconds')).not.toMatch(/\{/);
  heads.push({ sink: 'file:/a', hash: 'ab'.repeat(32), event_time: '2026-01-01T00:00:00.000Z' });
  expect(await value(m, 'ormai_audit_chain_head_timestamp_seconds', { sink: 'file:/a', hash: 'ab'.repeat(8) })).toBe(Date.UTC(2026, 0, 1) / 1000);
  // The next head replaces the series: the old hash is no longer exported (Prometheus keeps it).
  heads[0] = { sink: 'file:/a', hash: 'cd'.repeat(32), event_time: '2026-01-01T00:01:00.000Z' };
  const text = await m.registry.getSingleMetricAsString('ormai_audit_chain_head_timestamp_seconds');
  expect(text).toContain(`hash="${'cd'.repeat(8)}"`);
  expect(text).not.toContain('abab');
});

