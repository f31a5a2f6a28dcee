// Admin routes for operators and probes: GET /readyz, /version and /metrics (Prometheus text).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { RateLimitStore } from '../budgets/rate-limit';
import { RedisRateLimitStore } from '../budgets/redis-store';
import type { UpstreamTarget } from '../config/load';
import type { Logger } from '../log';
import type { PolicySnapshot } from '../policy/load';
import type { ScopeProvider } from '../policy/provider';
import { CachedSource, withTimeout } from './cached-source';
import type { ProxyMetrics } from './metrics';
import { Readiness, type AuditHealthSource } from './readiness';
import type { Router } from './router';

export interface RateLimitStatus {
  kind: 'memory' | 'redis';
  /** Cached briefly; never waits longer than the store's command timeout. */
  available(): Promise<boolean>;
}

export interface HealthRouteDeps {
  upstream: UpstreamTarget;
  scopes: ScopeProvider;
  /** The mounted policies; a function so that a hot reload shows at once. */
  policies: () => readonly PolicySnapshot[];
  metrics: ProxyMetrics;
  /** admin.metrics_auth: /metrics requires the bearer token. */
  metricsAuth: boolean;
  /** admin.memory_high_water: the share of the V8 heap limit in use past which /readyz is not ready. */
  memoryHighWater?: number;
  rateLimit: RateLimitStatus;
  /** store.reads_when_unavailable: with refuse, a store that is down makes the proxy not ready. */
  storeReadsWhenUnavailable?: 'refuse' | 'allow';
  approvalsStore: 'memory' | 'postgres';
  /** The audit trail's health; until one is given, audit counts as healthy and 'not configured'. */
  audit?: AuditHealthSource;
  log: Logger;
  /** Overrides for tests: bound on each readiness check, and how long a readiness answer is reused. */
  readinessTimeoutMs?: number;
  readinessCacheMs?: number;
}

let packageVersion: string | undefined;
/** Read at run time: package.json sits two levels up from both src/admin and dist/admin. */
export function proxyVersion(): string {
  if (packageVersion === undefined) {
    try {
      packageVersion = String((JSON.parse(readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: unknown }).version);
    } catch {
      packageVersion = 'unknown';
    }
  }
  return packageVersion;
}

/**
 * An in-memory store is always available. For Redis, connect() resolves at once on a ready
 * connection and rejects at once while it is backing off: a status check that sends no command.
 */
export function rateLimitStatus(store: RateLimitStore): RateLimitStatus {
  if (!(store instanceof RedisRateLimitStore)) return { kind: 'memory', available: async () => true };
  const source = new CachedSource(
    async () => {
      await store.connect();
      return true;
    },
    { ttlMs: 1000, waitMs: 1000, fallback: () => false },
  );
  return { kind: 'redis', available: () => source.get() };
}

/** Registers the three routes; close() ends the readiness probe's upstream connection. */
export function registerHealthRoutes(router: Router, deps: HealthRouteDeps): { readiness: Readiness; close(): Promise<void> } {
  const readiness = new Readiness({
    upstream: deps.upstream,
    scopes: deps.scopes,
    policies: deps.policies,
    audit: deps.audit,
    ...(deps.rateLimit.kind === 'redis' ? { store: { available: deps.rateLimit.available, readsWhenUnavailable: deps.storeReadsWhenUnavailable ?? 'refuse' } } : {}),
    memoryHighWater: deps.memoryHighWater,
    log: deps.log.child({ component: 'readiness' }),
    timeoutMs: deps.readinessTimeoutMs,
    cacheMs: deps.readinessCacheMs,
  });

  router.add({
    method: 'GET',
    path: '/readyz',
    auth: false,
    handler: async () => {
      const report = await readiness.check();
      return { status: report.ready ? 200 : 503, body: { status: report.ready ? 'ready' : 'not ready', checks: report.checks } };
    },
  });

  // Only what an operator checks a rollout against: versions, policy hashes, which stores; no addresses or secrets.
  router.add({
    method: 'GET',
    path: '/version',
    auth: false,
    handler: async () => {
      const [audit, rateLimitUp] = await Promise.all([auditStatus(deps.audit), deps.rateLimit.available()]);
      return {
        status: 200,
        body: {
          version: proxyVersion(),
          node: process.version,
          policies: deps.policies().map((p) => ({ name: p.name, hash: p.hash })),
          audit,
          rate_limit_store: { kind: deps.rateLimit.kind, status: rateLimitUp ? 'up' : 'down' },
          approvals_store: deps.approvalsStore,
        },
      };
    },
  });

  router.add({
    method: 'GET',
    path: '/metrics',
    auth: deps.metricsAuth,
    role: 'metrics',
    handler: async () => ({ status: 200, text: await deps.metrics.text(), contentType: deps.metrics.contentType }),
  });

  return { readiness, close: () => readiness.close() };
}

async function auditStatus(source: AuditHealthSource | undefined): Promise<{ status: string; sinks?: Array<{ name: string; status: string }> }> {
  if (!source) return { status: 'not configured' };
  try {
    const { status, sinks } = await withTimeout(Promise.resolve(source()), 2000);
    return sinks ? { status, sinks: sinks.map((s) => ({ name: s.name, status: s.status })) } : { status };
  } catch {
    return { status: 'unknown' };
  }
}
