// The proxy's Prometheus metrics: one registry per proxy, a typed recording API for the session, and gauges read from callbacks.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CacheStats } from '../analysis/cache';
import { parserStats } from '../analysis/parser-host';
import type { StatementKind } from '../analysis/types';
import type { Approval, ApprovalStore } from '../approvals/types';
import { catalogue } from '../errors/catalogue';
import { CachedSource } from './cached-source';

export type StatementDecision = 'allowed' | 'refused' | 'held' | 'error';

export interface StatementObservation {
  /** 'unknown' when the text did not parse. */
  kind: StatementKind | 'unknown';
  decision: StatementDecision;
  /** The catalogue code of a refusal or a held write; anything else (a SQLSTATE, a typo) counts as 'other'. */
  code?: string;
  /** Parse, check, rewrite and deparse (near zero on a statement cache hit). */
  analysisSeconds?: number;
  /** From sending upstream to the last row or the error. */
  upstreamSeconds?: number;
}

export interface AuditCounters {
  depth: number;
  failures: number;
  /** Events never queued (queue full, log closed, or the session over its share). */
  dropped?: number;
  /** Of those, events of a session over its share of the queue. */
  droppedOverShare?: number;
}

/** Why a connection was refused before its session started (the bounds on unauthenticated clients). */
export const CONNECTION_REFUSALS = ['startup_connections', 'startup_message_too_large', 'startup_timeout', 'too_many_connections'] as const;
export type ConnectionRefusal = (typeof CONNECTION_REFUSALS)[number];
const REFUSALS = new Set<string>(CONNECTION_REFUSALS);

export const ANALYSIS_ERROR_CODES = ['statement_too_large', 'statement_too_complex', 'analysis_unavailable', 'internal_error'] as const;
export const BUDGET_CODES = ['scan_budget_exceeded', 'query_rate_limited', 'write_rate_limited', 'max_affected_rows_exceeded'] as const;
const KINDS = new Set<string>(['read', 'write', 'transaction', 'session', 'unknown']);
const DECISIONS = new Set<string>(['allowed', 'refused', 'held', 'error']);
const LOGIN_METHODS = new Set<string>(['scram-sha-256', 'password', 'jwt']);
const BUDGET = new Set<string>(BUDGET_CODES);

/** 50 µs (a cached analysis) to 10 s (the slowest statement a timeout lets through). */
export const DURATION_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const NO_CACHE: CacheStats = { hits: 0, misses: 0, size: 0 };
const NO_AUDIT: AuditCounters = { depth: 0, failures: 0 };

/** Pending approvals are counted with a query on a shared store: at most once per this many ms. */
const APPROVALS_CACHE_MS = 5000;
/** A scrape never waits longer than this for a store; it reports the last known value instead. */
const SOURCE_WAIT_MS = 1000;

/** Labels take only known values, so that no client input can grow the number of series. */
function bounded(value: string | undefined, known: (v: string) => boolean, none = 'none'): string {
  if (value === undefined || value === '') return none;
  return known(value) ? value : 'other';
}

/** A catalogue code, or a SQLSTATE (PostgreSQL's own errors: 42703 for a denied or missing column, 57014 for a timeout). */
export const metricCode = (code: string | undefined): string => bounded(code, (c) => Object.hasOwn(catalogue, c) || /^[0-9A-Z]{5}$/.test(c));

const APPROVAL_DECISIONS = new Set<string>(['requested', 'approved', 'denied', 'expired', 'executed', 'failed']);

/**
 * Default process metrics (CPU, memory, event loop, GC) describe the process, not a proxy, and
 * each registration installs its own GC observer and event-loop monitor that are never removed;
 * so every ProxyMetrics in a process shares one registry for them, created on first use.
 */
let processRegistry: Registry | undefined;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export class ProxyMetrics {
  /** This proxy's own metrics (never the global registry: several proxies may share a process). */
  readonly registry = new Registry();
  readonly contentType = this.registry.contentType;

  private readonly statements: Counter<'kind' | 'decision' | 'code'>;
  private readonly budgetRefusals: Counter<'code'>;
  private readonly analysisTime: Histogram;
  private readonly upstreamTime: Histogram;
  private readonly logins: Counter<'method' | 'outcome'>;
  private readonly refusedConnections: Counter<'reason'>;
  private readonly reloads: Counter;
  private readonly approvals: Counter<'decision'>;
  private readonly reloadFailures: Counter;
  private readonly includeProcess: boolean;

  private sessions: () => number = () => 0;
  private cache: () => CacheStats = () => NO_CACHE;
  private audit: () => AuditCounters = () => NO_AUDIT;
  private chainHeads: () => ReadonlyArray<{ sink: string; hash: string; event_time?: string }> = () => [];
  private rateLimitUp: () => Promise<boolean> | boolean = () => true;
  private pendingApprovals?: CachedSource<PendingApprovals>;
  private policies: () => ReadonlyArray<{ name: string; hash: string }> = () => [];

  constructor(options: { version?: string; defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const self = this;
    this.includeProcess = options.defaultMetrics ?? true;
    this.statements = new Counter({ name: 'ormai_statements_total', help: 'Statements from agents, by kind, decision and error code.', labelNames: ['kind', 'decision', 'code'], registers });
    this.budgetRefusals = new Counter({ name: 'ormai_budget_refusals_total', help: 'Statements refused by a budget or rate limit, by code.', labelNames: ['code'], registers });
    for (const code of BUDGET_CODES) this.budgetRefusals.inc({ code }, 0);
    this.analysisTime = new Histogram({ name: 'ormai_rewrite_duration_seconds', help: 'Time to parse, check, rewrite and deparse a statement.', buckets: DURATION_BUCKETS, registers });
    this.upstreamTime = new Histogram({ name: 'ormai_upstream_duration_seconds', help: 'Time the upstream database took to answer a statement.', buckets: DURATION_BUCKETS, registers });
    this.logins = new Counter({ name: 'ormai_logins_total', help: 'Agent logins, by method and outcome.', labelNames: ['method', 'outcome'], registers });
    this.refusedConnections = new Counter({ name: 'ormai_connections_refused_total', help: 'Connections refused before their session started, by the bound that refused them.', labelNames: ['reason'], registers });
    for (const reason of CONNECTION_REFUSALS) this.refusedConnections.inc({ reason }, 0);
    this.approvals = new Counter({ name: 'ormai_approvals_total', help: 'Approval steps, by decision: approved, denied, expired, executed, failed.', labelNames: ['decision'], registers });
    for (const decision of ['approved', 'denied', 'expired', 'executed', 'failed']) this.approvals.inc({ decision }, 0);
    this.reloads = new Counter({ name: 'ormai_policy_reloads_total', help: 'Policy reloads that replaced the snapshot.', registers });
    this.reloadFailures = new Counter({ name: 'ormai_policy_reload_failures_total', help: 'Policy reloads refused (the last good policy stays).', registers });
    new Gauge({ name: 'ormai_sessions_active', help: 'Agent sessions past authentication.', registers, collect() { this.set(read(self.sessions, 0)); } });
    new Counter({ name: 'ormai_statement_cache_hits_total', help: 'Statements answered from the analysis cache.', registers, collect() { setCounter(this, read(self.cache, NO_CACHE).hits); } });
    new Counter({ name: 'ormai_statement_cache_misses_total', help: 'Statements analysed afresh.', registers, collect() { setCounter(this, read(self.cache, NO_CACHE).misses); } });
    new Gauge({ name: 'ormai_statement_cache_entries', help: 'Analyses held in the statement cache.', registers, collect() { this.set(read(self.cache, NO_CACHE).size); } });
    new Gauge({ name: 'ormai_statement_cache_bytes', help: 'Estimated heap bytes held by the statement cache.', registers, collect() { this.set(read(self.cache, NO_CACHE).bytes ?? 0); } });
    // The parser is the process's (one WebAssembly instance at a time), so these count for the process.
    new Counter({
      name: 'ormai_parser_recycles_total',
      help: 'Parser instances replaced, by reason (failure: a call ended abnormally; memory: its heap grew too large).',
      labelNames: ['reason'],
      registers,
      collect() {
        const recycled = read(parserStats, undefined)?.recycled ?? { failure: 0, memory: 0 };
        this.reset();
        for (const [reason, n] of Object.entries(recycled)) this.inc({ reason }, n);
      },
    });
    new Counter({ name: 'ormai_parser_unavailable_total', help: 'Statements refused because no parser instance was loaded.', registers, collect() { setCounter(this, read(parserStats, undefined)?.unavailable ?? 0); } });
    new Counter({
      name: 'ormai_analysis_errors_total',
      help: 'Analyses refused by a work bound or ended by a failure, by error code.',
      labelNames: ['code'],
      registers,
      collect() {
        const errors = read(parserStats, undefined)?.analysisErrors ?? {};
        this.reset();
        for (const code of ANALYSIS_ERROR_CODES) this.inc({ code }, errors[code] ?? 0);
      },
    });
    new Gauge({ name: 'ormai_audit_queue_depth', help: 'Audit events waiting for their sinks.', registers, collect() { this.set(read(self.audit, NO_AUDIT).depth); } });
    new Counter({ name: 'ormai_audit_dropped_total', help: 'Audit events never queued: the queue was full, the log closed, or the session had used up its share.', registers, collect() { setCounter(this, read(self.audit, NO_AUDIT).dropped ?? 0); } });
    new Counter({ name: 'ormai_audit_dropped_session_share_total', help: 'Audit events of a session over its share of the queue (other sessions keep their room).', registers, collect() { setCounter(this, read(self.audit, NO_AUDIT).droppedOverShare ?? 0); } });
    new Gauge({
      name: 'ormai_audit_chain_head_timestamp_seconds',
      help: 'The last published head of each hash-chained audit file: hash (its first 16 hex digits) as a label, the time of the event it ends on as the value. Prometheus keeps the history: audit verify --head checks a file against it.',
      labelNames: ['sink', 'hash'],
      registers,
      collect() {
        this.reset();
        for (const head of self.chainHeads()) {
          const at = head.event_time === undefined ? NaN : Date.parse(head.event_time) / 1000;
          this.set({ sink: head.sink, hash: head.hash.slice(0, 16) }, Number.isFinite(at) ? at : 0);
        }
      },
    });
    new Counter({ name: 'ormai_audit_failures_total', help: 'Audit sink deliveries that failed.', registers, collect() { setCounter(this, read(self.audit, NO_AUDIT).failures); } });
    new Gauge({
      name: 'ormai_rate_limit_store_up',
      help: '1 when the rate-limit store answers (always 1 in memory), else 0.',
      registers,
      async collect() {
        this.set((await Promise.resolve().then(self.rateLimitUp).catch(() => false)) ? 1 : 0);
      },
    });
    new Gauge({
      name: 'ormai_approvals_pending',
      help: 'Held writes waiting for approval (refreshed at most every 5 s).',
      registers,
      async collect() {
        this.set(self.pendingApprovals ? (await self.pendingApprovals.get()).count : 0);
      },
    });
    new Gauge({
      name: 'ormai_approvals_oldest_pending_seconds',
      help: 'Age of the oldest held write still waiting for approval; 0 when none is (the list is refreshed at most every 5 s, the age at each scrape).',
      registers,
      async collect() {
        const oldest = self.pendingApprovals ? (await self.pendingApprovals.get()).oldestAt : undefined;
        this.set(oldest === undefined ? 0 : Math.max(0, Date.now() - oldest) / 1000);
      },
    });
    new Gauge({
      name: 'ormai_policy_info',
      help: 'The mounted policies: 1 per name and content hash.',
      labelNames: ['name', 'hash'],
      registers,
      collect() {
        this.reset();
        for (const p of read(self.policies, [])) this.set({ name: p.name, hash: p.hash }, 1);
      },
    });
    const build = new Gauge({ name: 'ormai_build_info', help: 'The proxy version and Node.js version.', labelNames: ['version', 'node'], registers });
    build.set({ version: options.version ?? 'unknown', node: process.version }, 1);
  }

  /** One statement the agent sent, whatever became of it. Only statements PostgreSQL ran count in the upstream time. */
  statement(o: StatementObservation): void {
    const code = metricCode(o.code);
    this.statements.inc({ kind: bounded(o.kind, (k) => KINDS.has(k), 'unknown'), decision: bounded(o.decision, (d) => DECISIONS.has(d)), code });
    if (BUDGET.has(code)) this.budgetRefusals.inc({ code });
    if (validSeconds(o.analysisSeconds)) this.analysisTime.observe(o.analysisSeconds);
    if (validSeconds(o.upstreamSeconds) && (o.decision === 'allowed' || o.decision === 'error')) this.upstreamTime.observe(o.upstreamSeconds);
  }

  /** One analysis of a statement text (a cache hit included), in seconds. */
  analysis(seconds: number): void {
    if (validSeconds(seconds)) this.analysisTime.observe(seconds);
  }

  /** One approval step (its audit decision). */
  approval(decision: string): void {
    if (APPROVAL_DECISIONS.has(decision) && decision !== 'requested') this.approvals.inc({ decision });
  }

  /** `method`: scram-sha-256, password or jwt (anything else counts as 'other'). */
  login(method: string, ok: boolean): void {
    this.logins.inc({ method: bounded(method, (m) => LOGIN_METHODS.has(m)), outcome: ok ? 'success' : 'failure' });
  }

  /** A connection refused by a bound on unauthenticated clients or on sessions. */
  connectionRefused(reason: ConnectionRefusal): void {
    this.refusedConnections.inc({ reason: REFUSALS.has(reason) ? reason : 'other' });
  }

  /** A policy reload: `ok` false when the new file was refused. */
  reload(ok: boolean): void {
    (ok ? this.reloads : this.reloadFailures).inc();
  }

  setSessionSource(fn: () => number): void {
    this.sessions = fn;
  }

  setCacheSource(fn: () => CacheStats): void {
    this.cache = fn;
  }

  setAuditSource(fn: () => AuditCounters): void {
    this.audit = fn;
  }

  /** The file chains' last published heads (HeadPublisher.published). */
  setChainHeadSource(fn: () => ReadonlyArray<{ sink: string; hash: string; event_time?: string }>): void {
    this.chainHeads = fn;
  }

  /** Called on each scrape; keep it cheap or cached (see rateLimitStatus). */
  setRateLimitSource(fn: () => Promise<boolean> | boolean): void {
    this.rateLimitUp = fn;
  }

  /** Counts pending approvals and finds the oldest with one `store.list`, cached; a store that fails keeps the last answer. */
  setApprovalSource(store: Pick<ApprovalStore, 'list'>, cacheMs = APPROVALS_CACHE_MS): void {
    this.pendingApprovals = new CachedSource(async () => pendingOf(await store.list({ state: 'pending' })), {
      ttlMs: cacheMs,
      waitMs: SOURCE_WAIT_MS,
      fallback: (_err, last) => last ?? { count: 0 },
    });
  }

  setPolicySource(fn: () => ReadonlyArray<{ name: string; hash: string }>): void {
    this.policies = fn;
  }

  /** The Prometheus text exposition: this proxy's metrics, then the process's. */
  async text(): Promise<string> {
    const own = await this.registry.metrics();
    if (!this.includeProcess) return own;
    const shared = await processMetrics().metrics();
    return own.endsWith('\n') ? own + shared : `${own}\n${shared}`;
  }
}

/** The pending approvals as the gauges need them: how many, and when the oldest was created (epoch ms). */
interface PendingApprovals {
  count: number;
  oldestAt?: number;
}

/** Stores list oldest first, but the minimum is taken anyway: a timestamp that does not parse is skipped, not trusted. */
function pendingOf(list: ReadonlyArray<Pick<Approval, 'createdAt'>>): PendingApprovals {
  let oldestAt: number | undefined;
  for (const a of list) {
    const at = Date.parse(a.createdAt);
    if (Number.isFinite(at) && (oldestAt === undefined || at < oldestAt)) oldestAt = at;
  }
  return oldestAt === undefined ? { count: list.length } : { count: list.length, oldestAt };
}

/**
 * A source that throws must not fail the whole scrape (Prometheus would then lose every metric):
 * its metric reads as the fallback instead.
 */
function read<T>(source: () => T, fallback: T): T {
  try {
    return source();
  } catch {
    return fallback;
  }
}

/** Counters mirrored from a source that counts by itself: the scrape copies its current total. */
function setCounter(counter: Counter, total: number): void {
  counter.reset();
  counter.inc(Number.isFinite(total) && total > 0 ? total : 0);
}

function validSeconds(s: number | undefined): s is number {
  return s !== undefined && Number.isFinite(s) && s >= 0;
}
