// The TCP listener: accepts agent connections, counts them, and shuts down cleanly.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { ProxyMetrics } from '../admin/metrics';
import type { ApprovalStore } from '../approvals/types';
import type { AuditPort } from '../audit/port';
import { setAnalysisLimits } from '../analysis/bounds';
import { StatementCache } from '../analysis/cache';
import type { AuthSettings } from '../auth/authenticator';
import { Planner, planAnswerBytes } from '../budgets/planner';
import { MemoryRateLimitStore, type RateLimitStore } from '../budgets/rate-limit';
import type { ScopeProvider } from '../policy/provider';
import type { ProxyConfig } from '../config/load';
import { ProxyError } from '../errors/catalogue';
import type { Logger } from '../log';
import { errorResponse } from '../protocol/backend/serializer';
import type { Session } from '../session/session';
import { PreparedTextBudget } from '../session/state';
import { CancelRegistry } from './cancel';
import { handshake } from './handshake';

/** What sessions share beyond the configuration; each is optional so the wire can be tested alone. */
export interface ServerServices {
  /** Where budgets are counted (a shared Redis, or this process's memory by default). */
  rateLimits?: RateLimitStore;
  /** Where writes held for approval go; without one they are refused. */
  approvals?: ApprovalStore;
  /** The audit trail; without one nothing is recorded. */
  audit?: AuditPort;
  metrics?: ProxyMetrics;
}

export class ProxyServer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<Session>();
  /** Raw sockets whose handshake finished; the rest are still starting up. */
  private readonly sessionSockets = new WeakSet<net.Socket>();
  private readonly cancels = new CancelRegistry();

  readonly cache: StatementCache;
  /** The text of every session's named prepared statements (session.max_prepared_size_total). */
  readonly preparedText: PreparedTextBudget;
  readonly planner: Planner;

  readonly rateLimits: RateLimitStore;
  readonly approvals?: ApprovalStore;
  private readonly audit?: AuditPort;
  private readonly metrics?: ProxyMetrics;

  constructor(
    private readonly config: ProxyConfig,
    private readonly auth: AuthSettings,
    private readonly scopes: ScopeProvider,
    private readonly log: Logger,
    services: ServerServices = {},
  ) {
    // The analysis bounds are the process's: one proxy per process.
    setAnalysisLimits(config.analysis);
    this.cache = new StatementCache(config.analysis.cacheBytes);
    this.preparedText = new PreparedTextBudget(config.session.preparedSizeTotal);
    this.rateLimits = services.rateLimits ?? new MemoryRateLimitStore();
    if (services.approvals) this.approvals = services.approvals;
    if (services.audit) this.audit = services.audit;
    if (services.metrics) this.metrics = services.metrics;
    this.planner = new Planner(config.upstream, config.maxMessageSize, log, 2, planAnswerBytes(config.analysis.maxStatementBytes));
    this.server = net.createServer((socket) => this.accept(socket));
    this.server.on('error', (err) => log.error({ err: err.message }, 'listener error'));
  }

  static authSettings(partial: Omit<AuthSettings, 'mockSecret'>): AuthSettings {
    return { ...partial, mockSecret: randomBytes(32) };
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(): Promise<{ host: string; port: number }> {
    const { host, port } = this.config.listen;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const address = this.server.address() as net.AddressInfo;
        this.log.info({ host: address.address, port: address.port }, 'listening');
        resolve({ host: address.address, port: address.port });
      });
    });
  }

  get activeSessions(): number {
    return this.sessions.size;
  }

  /**
   * Stops accepting; idle sessions end at once with a clear FATAL, busy ones when they next are
   * idle (statements answered, no transaction open) or when session.shutdown_grace_ms is over,
   * when what still runs is cancelled. Waits for the sockets to close (a cancelled statement's
   * answer completes its audit event first).
   */
  async close(): Promise<void> {
    const closed = Promise.all([this.server, ...this.doors].map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    const error = new ProxyError('proxy_shutting_down');
    for (const session of this.sessions) session.shutdown(error);
    for (const socket of this.sockets) if (!this.sessionSockets.has(socket)) socket.destroy();
    const wait = async (ms: number) => {
      const deadline = Date.now() + ms;
      while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    };
    await wait(this.config.session.shutdownGraceMs);
    for (const session of this.sessions) session.shutdown(error, true);
    // A cancelled statement's answer, or the end of the upstream session, within twice the deadline margin (Session.release).
    await wait(2 * this.config.session.deadlineMarginMs + 1000);
    for (const socket of this.sockets) socket.destroy();
    await closed;
    await this.planner.close();
  }

  /**
   * Connections still in startup or authentication, oldest first: capped apart from sessions, so
   * unauthenticated sockets cannot take the slots of logged-in agents.
   */
  private readonly starting = new Set<net.Socket>();

  /**
   * When every startup slot is taken, the oldest connection still starting up gives up its slot:
   * a real client finishes its login in milliseconds, so the oldest one is the stalling one, and
   * a flood of slow clients cannot keep real ones out.
   */
  private makeStartupRoom(): void {
    if (this.starting.size < this.config.startup.maxConnections) return;
    const oldest = this.starting.values().next().value as net.Socket;
    this.starting.delete(oldest);
    this.metrics?.connectionRefused('startup_connections');
    const error = new ProxyError('too_many_connections', { message: 'too many connections are still starting up' });
    if (!oldest.destroyed) oldest.end(errorResponse({ ...error.toFields(), severity: 'FATAL' }));
    setTimeout(() => oldest.destroy(), 1000).unref();
  }

  /**
   * The tool door (docs/tools.md): a second listener on an ephemeral loopback port that only this
   * process knows, where logins are one-time tickets instead of passwords. Its sessions are
   * ordinary sessions (same analysis, budgets, audit), counted and drained with the others.
   */
  async openToolDoor(tickets: NonNullable<AuthSettings['tickets']>, onSession: (session: Session) => void): Promise<{ host: string; port: number }> {
    const auth: AuthSettings = { method: 'password', mockSecret: this.auth.mockSecret, tickets };
    const door = net.createServer((socket) => this.accept(socket, auth, onSession));
    door.on('error', (err) => this.log.error({ err: err.message }, 'tool door error'));
    this.doors.push(door);
    return new Promise((resolve, reject) => {
      door.once('error', reject);
      door.listen(0, '127.0.0.1', () => {
        door.off('error', reject);
        const address = door.address() as net.AddressInfo;
        resolve({ host: address.address, port: address.port });
      });
    });
  }

  private readonly doors: net.Server[] = [];

  private accept(socket: net.Socket, auth: AuthSettings = this.auth, onSession?: (session: Session) => void): void {
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'client socket error'));
    this.makeStartupRoom();
    this.starting.add(socket);
    const done = (): void => {
      this.starting.delete(socket);
    };
    socket.once('close', done);
    void handshake(socket, {
      config: this.config,
      auth,
      scopes: this.scopes,
      cache: this.cache,
      preparedText: this.preparedText,
      rateLimits: this.rateLimits,
      approvals: this.approvals,
      audit: this.audit,
      metrics: this.metrics,
      planner: this.planner,
      cancels: this.cancels,
      log: this.log,
      openConnections: () => this.sessions.size + 1,
      tenantSessions: (tenantId) => {
        let n = 0;
        for (const s of this.sessions) if (s.principal.tenantId === tenantId) n++;
        return n;
      },
      onSession: (s) => {
        done();
        this.sessions.add(s);
        this.sessionSockets.add(socket);
        onSession?.(s);
      },
      onSessionClosed: (s) => this.sessions.delete(s),
    }).catch((err) => {
      this.log.error({ err: (err as Error).message }, 'unexpected handshake failure');
      socket.destroy();
    });
  }
}
