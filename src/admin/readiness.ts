// Readiness: the upstream answers SELECT 1 over the probe's own connection, the policies and catalog are loaded, the statement parser and the audit trail are healthy.
import { performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { Client } from 'pg';
import { parserHealth, parserStats } from '../analysis/parser-host';
import type { UpstreamTarget } from '../config/load';
import type { Logger } from '../log';
import type { PolicySnapshot } from '../policy/load';
import type { ScopeProvider } from '../policy/provider';
import { adminClientConfig } from '../upstream/catalog';
import { CachedSource, SourceTimeoutError, withTimeout } from './cached-source';

/** What the audit trail reports about itself (wired by the audit module; absent means not configured). */
export interface AuditHealth {
  /** False makes /readyz answer 503. */
  healthy: boolean;
  /** One word for /version, e.g. ok, degraded, down. */
  status: string;
  /** Why it is unhealthy, as a fixed phrase (e.g. 'queue full'). */
  reason?: string;
  sinks?: Array<{ name: string; status: string }>;
}

export type AuditHealthSource = () => AuditHealth | Promise<AuditHealth>;

/** A check's outcome; `error` is a fixed phrase, never a driver message (/readyz needs no token). */
export interface Check {
  ok: boolean;
  error?: string;
  [detail: string]: unknown;
}

export interface ReadinessReport {
  ready: boolean;
  checks: { upstream: Check; policy: Check; catalog: Check; analysis: Check; audit: Check; memory: Check; store: Check };
}

/**
 * One long-lived connection, opened on the first probe and again after any failure: a fresh
 * connection per probe would cost a backend fork each time, and the pool is the agents'.
 */
export class UpstreamProbe {
  private conn?: { client: Client; ready: Promise<void> };

  constructor(
    private readonly target: UpstreamTarget,
    private readonly timeoutMs: number,
  ) {}

  /** Milliseconds SELECT 1 took, connecting included when needed; rejects after the timeout. */
  async ping(): Promise<number> {
    const started = performance.now();
    const reused = this.conn !== undefined;
    try {
      await this.attempt();
    } catch (err) {
      // A kept connection may have died since the last probe (a database restart): one fresh try.
      if (!reused || err instanceof SourceTimeoutError) throw err;
      await this.attempt();
    }
    return performance.now() - started;
  }

  async close(): Promise<void> {
    const conn = this.conn;
    this.conn = undefined;
    if (conn) await withTimeout(conn.client.end(), this.timeoutMs).catch(() => undefined);
  }

  private async attempt(): Promise<void> {
    const conn = this.connection();
    try {
      await withTimeout(
        conn.ready.then(() => conn.client.query('SELECT 1')),
        this.timeoutMs,
      );
    } catch (err) {
      this.drop(conn.client);
      throw err;
    }
  }

  private connection(): { client: Client; ready: Promise<void> } {
    if (this.conn) return this.conn;
    const client = new Client({ ...adminClientConfig(this.target, 'ormai-proxy readiness'), connectionTimeoutMillis: this.timeoutMs });
    // An idle connection the server dropped emits 'error'; unhandled, that would end the process.
    client.on('error', () => this.drop(client));
    const conn = { client, ready: client.connect().then(() => undefined) };
    this.conn = conn;
    return conn;
  }

  private drop(client: Client): void {
    if (this.conn?.client !== client) return;
    this.conn = undefined;
    // end() destroys the socket when a query is hung on it, so a timed-out probe leaves nothing behind.
    client.end().catch(() => undefined);
  }
}

export interface ReadinessDeps {
  upstream: UpstreamTarget;
  scopes: ScopeProvider;
  policies: () => readonly PolicySnapshot[];
  audit?: AuditHealthSource;
  /**
   * The shared budget store (Redis): while it is down every statement a budget applies to is
   * refused with store.reads_when_unavailable: refuse (writes in any mode). Absent: in memory.
   */
  store?: { available(): Promise<boolean>; readsWhenUnavailable: 'refuse' | 'allow' };
  /** The share of the V8 heap limit in use past which the proxy is not ready. Default: 0.85. */
  memoryHighWater?: number;
  log: Logger;
  /** Bound on each check. Default: 2000 ms, or the upstream connect timeout when shorter. */
  timeoutMs?: number;
  /** Probes within this window share one answer. Default: 1000 ms. */
  cacheMs?: number;
}

export class Readiness {
  private readonly probe: UpstreamProbe;
  private readonly report: CachedSource<ReadinessReport>;
  private readonly timeoutMs: number;
  private lastReady?: boolean;

  constructor(private readonly deps: ReadinessDeps) {
    this.timeoutMs = deps.timeoutMs ?? Math.min(2000, deps.upstream.connectTimeoutMs);
    this.probe = new UpstreamProbe(deps.upstream, this.timeoutMs);
    this.report = new CachedSource(() => this.evaluate(), {
      ttlMs: deps.cacheMs ?? 1000,
      // The checks bound themselves; this only guards against a check that forgets to.
      waitMs: this.timeoutMs * 3 + 500,
      fallback: () => ({ ready: false, checks: { upstream: unknown(), policy: unknown(), catalog: unknown(), analysis: unknown(), audit: unknown(), memory: unknown(), store: unknown() } }),
    });
  }

  check(): Promise<ReadinessReport> {
    return this.report.get();
  }

  close(): Promise<void> {
    return this.probe.close();
  }

  private async evaluate(): Promise<ReadinessReport> {
    const upstream = await this.upstreamCheck();
    const policies = this.deps.policies();
    const policy: Check = { ok: policies.length > 0, loaded: policies.length };
    const [catalog, audit, store] = await Promise.all([this.catalogCheck(upstream.ok, policies), this.auditCheck(), this.storeCheck()]);
    const analysis = analysisCheck();
    const memory = memoryCheck(this.deps.memoryHighWater ?? 0.85);
    const report: ReadinessReport = {
      ready: upstream.ok && policy.ok && catalog.ok && analysis.ok && audit.ok && memory.ok && store.ok,
      checks: { upstream, policy, catalog, analysis, audit, memory, store },
    };
    if (report.ready !== this.lastReady) {
      const failing = Object.entries(report.checks).filter(([, c]) => !c.ok).map(([name, c]) => `${name}: ${c.error ?? 'failed'}`);
      if (report.ready) this.deps.log.info('ready');
      else this.deps.log.warn({ failing }, 'not ready');
      this.lastReady = report.ready;
    }
    return report;
  }

  private async upstreamCheck(): Promise<Check> {
    try {
      return { ok: true, ms: Math.round((await this.probe.ping()) * 10) / 10 };
    } catch (err) {
      // The driver's message may name hosts and users: it goes to the log, not to the unauthenticated answer.
      this.deps.log.debug({ err: (err as Error).message }, 'readiness: upstream probe failed');
      return { ok: false, error: err instanceof SourceTimeoutError ? 'timeout' : 'unreachable' };
    }
  }

  /**
   * With the upstream up, a catalog not loaded yet is loaded now (so a proxy started before its
   * database becomes ready without waiting for an agent); with it down, nothing is attempted.
   */
  private async catalogCheck(upstreamOk: boolean, policies: readonly PolicySnapshot[]): Promise<Check> {
    const { scopes } = this.deps;
    if (!upstreamOk) return scopes.version > 0 ? { ok: true, version: scopes.version } : { ok: false, error: 'not loaded' };
    try {
      await withTimeout(Promise.all(policies.map((p) => scopes.get(p))), this.timeoutMs);
      return { ok: true, version: scopes.version };
    } catch (err) {
      this.deps.log.debug({ err: (err as Error).message }, 'readiness: catalog not loaded');
      return { ok: false, error: 'not loaded' };
    }
  }

  /**
   * Redis down: not ready when reads are refused then (every budgeted statement would be); with
   * reads allowed the proxy still serves them, and the check says writes are refused.
   */
  private async storeCheck(): Promise<Check> {
    const store = this.deps.store;
    if (!store) return { ok: true, kind: 'memory' };
    const up = await withTimeout(store.available(), this.timeoutMs).catch(() => false);
    if (up) return { ok: true, kind: 'redis', status: 'up' };
    return store.readsWhenUnavailable === 'refuse'
      ? { ok: false, kind: 'redis', status: 'down', error: 'store unavailable' }
      : { ok: true, kind: 'redis', status: 'down', writes: 'refused' };
  }

  private async auditCheck(): Promise<Check> {
    if (!this.deps.audit) return { ok: true, status: 'not configured' };
    try {
      const health = await withTimeout(Promise.resolve(this.deps.audit()), this.timeoutMs);
      // While the trail cannot vouch for events every write is refused (audit_unavailable): say so.
      return health.healthy ? { ok: true, status: health.status } : { ok: false, status: health.status, error: health.reason ?? 'unhealthy', writes: 'refused' };
    } catch (err) {
      this.deps.log.debug({ err: (err as Error).message }, 'readiness: audit status unavailable');
      return { ok: false, error: 'status unavailable' };
    }
  }
}

/** The statement parser: a healthy instance is loaded (a failed one is replaced by a spare). */
function analysisCheck(): Check {
  const health = parserHealth();
  const { recycled } = parserStats();
  return health.ready ? { ok: true, recycled } : { ok: false, error: health.reason ?? 'parser unavailable', recycled };
}

/**
 * The V8 heap against its limit: a proxy close to it would abort with "heap out of memory" and
 * take every session with it, so it stops taking new work first (a Kubernetes readiness probe
 * turns traffic away while the sessions it has drain).
 */
function memoryCheck(highWater: number): Check {
  const { used_heap_size: used, heap_size_limit: limit } = getHeapStatistics();
  const mb = (n: number) => Math.round(n / 1048576);
  const detail = { heap_used_mb: mb(used), heap_limit_mb: mb(limit), rss_mb: mb(process.memoryUsage.rss()) };
  return used <= highWater * limit ? { ok: true, ...detail } : { ok: false, error: 'memory high-water mark', ...detail };
}

const unknown = (): Check => ({ ok: false, error: 'check did not finish' });
