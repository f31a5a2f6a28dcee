// Wires a resolved configuration into a running proxy: analysis engine, auth, listener.
import path from 'node:path';
import { initAnalysis } from './analysis/parser';
import { createJwtVerifier, jwtConfigSchema } from './auth/jwt';
import { loadUsersFile } from './auth/users';
import { AdminAuth } from './admin/auth';
import { proxyVersion, rateLimitStatus, registerHealthRoutes } from './admin/health-routes';
import { ProxyMetrics } from './admin/metrics';
import { registerRollbackRoutes } from './admin/rollback-routes';
import { AdminServer } from './admin/server';
import { upstreamExecutor } from './approvals/executor';
import { createApprovalStore } from './approvals/factory';
import type { ApprovalEvent, ApprovalExecutor, ApprovalListener, ApprovalStore } from './approvals/types';
import { createAuditLog, postgresClient } from './audit/factory';
import type { AuditEvent } from './audit/event';
import type { AuditLog } from './audit/log';
import { auditPort } from './audit/port';
import { loadAuditKey } from './audit/redact';
import { MemoryRateLimitStore, type RateLimitStore } from './budgets/rate-limit';
import { RedisRateLimitStore } from './budgets/redis-store';
import { ConfigError, type ProxyConfig } from './config/load';
import { checkDomainTools, formatIssues, type PolicySnapshot } from './policy/load';
import { writeBudgetKeys } from './session/budgets';
import { ProxyServer } from './listener/server';
import { ScopeProvider } from './policy/provider';
import { HotReload, type HotReloadOptions, type ReloadReport } from './policy/reload';
import { PolicyCatalogError } from './policy/scope';
import { loadCatalog, loadRowSecurity } from './upstream/catalog';
import { barrierViewsRefusal } from './upstream/read-scope';
import { policyCompiler } from './tools/compiler';
import { startToolDoors, type ClosableRunner, type ToolDoors } from './tools/doors';
import { ToolEngine } from './tools/engine';
import { toolSpecs } from './tools/schemas';
import type { ToolRunner } from './tools/types';
import { silentLogger, type Logger } from './log';
import { rowSecurityProblems } from './policy/row-security';

export interface RunningProxy {
  host: string;
  port: number;
  server: ProxyServer;
  /** The admin HTTP listener (health, approvals) and its bound address. */
  admin: { host: string; port: number; server: AdminServer };
  /** Prometheus metrics (served on the admin listener's /metrics); the session records statements here. */
  metrics: ProxyMetrics;
  approvals: ApprovalStore;
  /** The audit trail (sinks from config.audit); close() drains it after the sessions stop. */
  audit: AuditLog;
  /** The tool doors (docs/tools.md): the engine, the principal's specs, and the HTTP listener when tools.listen is set. */
  tools: ToolDoors;
  /** Re-reads the policy and users files now (what SIGHUP does); an invalid file keeps the last good snapshot. */
  reload(): Promise<ReloadReport>;
  close(): Promise<void>;
}

/** What the embedding code supplies beyond the configuration. */
export interface ProxyOptions {
  /** Runs a held write once its approvals reach the threshold. Default: upstreamExecutor (the proxy's own upstream connection). */
  approvalExecutor?: ApprovalExecutor;
  /** Approve, deny, expire and execute events, as the audit trail records them (an execution is reported before it commits). */
  onApprovalEvent?: ApprovalListener;
  /** A store to use instead of the configured one; the caller then closes it. */
  approvals?: ApprovalStore;
  /** How the policy and users files are watched (default: fs.watch, a 200 ms debounce, a poll every 5 s). */
  reload?: Pick<HotReloadOptions, 'watch' | 'pollMs' | 'debounceMs'>;
  /** The runner behind the tool doors instead of the proxy's own engine. */
  toolRunner?: ToolRunner;
  /** Where a stdout audit sink writes instead (`ormai-proxy mcp` gives stderr: its stdout is the MCP channel). */
  auditStdout?: NodeJS.WritableStream;
}

export async function buildAuthSettings(config: ProxyConfig) {
  const { auth } = config.raw;
  const users = auth.users_file ? loadUsersFile(path.resolve(config.dir, auth.users_file)) : undefined;
  let jwt;
  if (auth.jwt !== undefined) {
    const parsed = jwtConfigSchema.safeParse(auth.jwt);
    if (!parsed.success) throw new ConfigError(`invalid auth.jwt in ${config.file}:\n${formatIssues(parsed.error)}`);
    jwt = await createJwtVerifier(parsed.data, config.dir);
  }
  if (!users && !jwt) throw new ConfigError(`${config.file}: configure auth.users_file, auth.jwt, or both`);
  return ProxyServer.authSettings({ method: auth.method, users, jwt });
}

/**
 * Reads and validates every file start-up reads besides the configuration and the policies (which
 * loadConfig reads): the users file, the JWT keys, the admin token and identities files, the audit
 * key and the audit sinks' URL files. `ormai-proxy check` runs it, so a bad one is found before a
 * deployment rather than by `serve`; it throws what start-up would.
 */
export async function checkStartupFiles(config: ProxyConfig): Promise<void> {
  await buildAuthSettings(config);
  AdminAuth.fromConfig(config);
  const { key_file: keyFile, sinks } = config.raw.audit;
  if (keyFile !== undefined) loadAuditKey(path.resolve(config.dir, keyFile), silentLogger);
  for (const sink of sinks) if (sink.type === 'postgres') postgresClient(sink, config);
}

/**
 * Loads the catalog and compiles the policies against it. A policy naming a table that does
 * not exist stops start-up; an unreachable database does not (sessions retry the load).
 */
async function prepareScopes(config: ProxyConfig, log: Logger): Promise<ScopeProvider> {
  const scopes = new ScopeProvider(config.upstream, config.policies, loadCatalog, log, loadRowSecurity);
  let compiled;
  try {
    compiled = await scopes.refresh();
  } catch (err) {
    if (err instanceof PolicyCatalogError) throw new ConfigError(err.message);
    log.warn({ err: (err as Error).message }, 'database not reachable at start-up; the catalog loads with the first session');
    return scopes;
  }
  if (config.upstream.readScope !== 'fence') {
    // Sessions would fall back to fenced tables one by one, each with a warning: say it once, now.
    const refusal = await barrierViewsRefusal(config.upstream);
    if (refusal) {
      throw new ConfigError(
        `${config.file}: upstream.read_scope is ${config.upstream.readScope}, but ${refusal}. Grant it, or set upstream.read_scope: fence (reads then scan each tenant's rows in full; see docs/read-scope.md).`,
      );
    }
  }
  if (config.upstream.readScope === 'rls') {
    const problems = rowSecurityProblems([...compiled.values()].map((v) => v.scope));
    if (problems.length > 0) {
      throw new ConfigError(
        `${config.file}: upstream.read_scope is rls, but row-level security does not fence every tenant-scoped table:\n  - ${problems.join('\n  - ')}\n` +
          `Run \`ormai-proxy rls --config ${config.file}\` and apply its output as the tables' owner, or set upstream.read_scope: barrier_views (see docs/read-scope.md).`,
      );
    }
    // Between catalog loads: a table whose policy is dropped reads through a barrier view within this long.
    scopes.watchRowSecurity(ROW_SECURITY_CHECK_MS);
  }
  return scopes;
}

/** How often read_scope: rls compares the tables' row-level security with the compiled catalog's (policy/provider.ts). */
const ROW_SECURITY_CHECK_MS = 5000;

/**
 * Redis when a URL is configured (budgets shared by every sidecar), else this process's memory.
 * An unreachable Redis does not stop start-up: statements meet store.reads_when_unavailable
 * until it answers, and the store keeps reconnecting.
 */
async function createRateLimitStore(config: ProxyConfig, log: Logger): Promise<{ store: RateLimitStore; close(): Promise<void> }> {
  const { redisUrl, keyPrefix, commandTimeoutMs } = config.store;
  if (!redisUrl) return { store: new MemoryRateLimitStore(), close: async () => undefined };
  const store = new RedisRateLimitStore({ url: redisUrl, keyPrefix: `${keyPrefix}rl:`, commandTimeoutMs, log });
  try {
    await store.connect();
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'rate-limit store not reachable at start-up');
  }
  return { store, close: () => store.close() };
}

export async function startProxy(config: ProxyConfig, log: Logger, options: ProxyOptions = {}): Promise<RunningProxy> {
  await initAnalysis();
  // The files were loaded before the parser was: domain tools' statements are compiled now.
  checkDomainTools(config.policies);
  const auth = await buildAuthSettings(config);
  const adminAuth = AdminAuth.fromConfig(config);
  const scopes = await prepareScopes(config, log);
  const limits = await createRateLimitStore(config, log);
  const approvals = options.approvals ?? (await createApprovalStore(config, log));
  const audit = await createAuditLog(config, log, {}, options.auditStdout);
  const metrics = new ProxyMetrics({ version: proxyVersion() });
  const server = new ProxyServer(config, auth, scopes, log, { rateLimits: limits.store, approvals, audit: auditPort(audit), metrics });
  // Every approval step is an audit event linked to the held statement's by approval_id.
  const recordApprovalEvent = (event: ApprovalEvent): AuditEvent => {
    const recorded = audit.emit(approvalAuditEvent(event));
    metrics.approval(recorded.decision);
    try {
      options.onApprovalEvent?.(event);
    } catch (err) {
      log.error({ err: (err as Error).message, approval_id: event.approval.id }, 'approval listener failed');
    }
    return recorded;
  };
  const admin = new AdminServer({
    listen: config.adminListen,
    auth: adminAuth,
    approvals,
    executor: countedAgainstWriteBudget(options.approvalExecutor ?? upstreamExecutor(config, log, () => scopes.policies), limits.store, () => scopes.policies),
    log,
    sweepIntervalMs: config.raw.approvals.sweep_interval_ms,
    onApprovalEvent: (event) => {
      recordApprovalEvent(event);
    },
    // An approved write commits only once its event is durable, as a session's write does (write_guarantee: async: once queued).
    onApprovalExecuted: (event) => {
      const recorded = recordApprovalEvent(event);
      return audit.writeGuarantee === 'async' ? Promise.resolve() : audit.durable(recorded);
    },
  });
  const rateLimit = rateLimitStatus(limits.store);
  metrics.setSessionSource(() => server.activeSessions);
  metrics.setCacheSource(() => server.cache.stats());
  metrics.setAuditSource(() => {
    const stats = audit.stats();
    return { depth: stats.queueDepth, failures: stats.sinks.reduce((n, s) => n + s.failures, 0), dropped: stats.dropped, droppedOverShare: stats.droppedOverShare };
  });
  metrics.setChainHeadSource(() => audit.heads?.published() ?? []);
  metrics.setRateLimitSource(rateLimit.available);
  metrics.setApprovalSource(approvals);
  metrics.setPolicySource(() => scopes.policies);
  registerRollbackRoutes(admin.router, config, audit, log.child({ component: 'admin' }));
  const health = registerHealthRoutes(admin.router, {
    upstream: config.upstream,
    scopes,
    policies: () => scopes.policies,
    metrics,
    metricsAuth: config.raw.admin.metrics_auth,
    memoryHighWater: config.raw.admin.memory_high_water,
    rateLimit,
    storeReadsWhenUnavailable: config.raw.store.reads_when_unavailable,
    approvalsStore: config.raw.approvals.store,
    audit: () => audit.health(),
    log,
  });
  const reloader = new HotReload({
    policyFiles: config.raw.policies.map((p) => path.resolve(config.dir, p)),
    usersFile: config.raw.auth.users_file ? path.resolve(config.dir, config.raw.auth.users_file) : undefined,
    scopes,
    // Each login reads auth.users once, when it starts: new logins see the new file, open sessions keep their principal.
    onUsers: (users) => {
      auth.users = users;
    },
    metrics,
    log: log.child({ component: 'reload' }),
    ...options.reload,
  });
  // The engine behind both tool doors: opened at the first tool call (its tool door is a loopback listener of the server).
  const openToolRunner = async (): Promise<ClosableRunner> =>
    options.toolRunner ?? ToolEngine.open({ server, scopes, config, compiler: policyCompiler, audit: auditPort(audit), approvals, log });
  let tools: ToolDoors | undefined;
  const close = async () => {
    // Admin first (no approval starts running while sessions end), then sessions: they may still be asking the stores.
    try {
      scopes.stopWatching();
      await reloader.close();
      // The tool doors stop taking calls and end their sessions before the sessions are drained.
      await tools?.close();
      await admin.close();
      await health.close();
      await server.close();
    } finally {
      // Sessions have stopped: no more events, and the queue drains before the process exits (SIGTERM).
      await audit.close();
      if (!options.approvals) await approvals.close();
      await limits.close();
    }
  };
  let address: { host: string; port: number };
  let adminAddress: { host: string; port: number };
  try {
    address = await server.listen();
    adminAddress = await admin.listen();
    tools = await startToolDoors({ config, auth, policies: () => scopes.policies, toolSpecs, openRunner: openToolRunner, log });
  } catch (err) {
    await close();
    throw err;
  }
  void reloader.start();
  return { ...address, server, admin: { ...adminAddress, server: admin }, metrics, approvals, audit, tools, reload: () => reloader.reload(), close };
}

/**
 * A held write spends its requester's max_writes_per_minute when it runs, not while it waits
 * (the session does not count it when it holds it). A budget already used up does not stop a
 * write humans approved; the count simply stays where it is.
 */
function countedAgainstWriteBudget(execute: ApprovalExecutor, store: RateLimitStore, policies: () => readonly PolicySnapshot[]): ApprovalExecutor {
  return async (approval, beforeCommit) => {
    const result = await execute(approval, beforeCommit);
    const policy = policies().find((p) => p.name === approval.policy.name);
    const limit = policy?.raw.max_writes_per_minute;
    if (!result.error && policy && limit !== undefined) {
      for (const key of writeBudgetKeys(policy.name, approval.requester.user, approval.requester.tenantId)) {
        await store.hit(key, limit, 60_000).catch(() => undefined);
      }
    }
    return result;
  };
}

const APPROVAL_DECISIONS = { approve: 'approved', deny: 'denied', expire: 'expired' } as const;

/** An approval step as an audit event: approved, denied, expired, or executed / failed with the result. */
export function approvalAuditEvent(event: ApprovalEvent): Omit<AuditEvent, 'id' | 'time'> {
  const { approval } = event;
  const result = approval.result;
  const decision = event.action === 'execute' ? (result?.error ? 'failed' : 'executed') : APPROVAL_DECISIONS[event.action];
  const note = event.action === 'approve' ? approval.approvals.find((v) => v.approver === event.actor)?.note : event.action === 'deny' ? approval.decision?.note : undefined;
  return {
    kind: 'approval',
    decision,
    approval_id: approval.id,
    principal: { user: approval.requester.user, tenant_id: approval.requester.tenantId, roles: [...approval.requester.roles] },
    policy: approval.policy,
    ...(event.actor ? { actor: event.actor } : {}),
    ...(note ? { note } : {}),
    ...(event.action === 'execute' ? { approvers: approval.approvals.map((v) => v.approver) } : {}),
    ...(approval.reason ? { reason: approval.reason } : {}),
    ...(result?.rowsAffected !== undefined ? { rows: result.rowsAffected } : {}),
    ...(result?.error ? { code: result.error.code, message: result.error.message } : {}),
    // What the executed write changed, before and after: what `ormai-proxy rollback` inverts.
    ...(event.changes ? { changes: event.changes } : {}),
  };
}
