// One client session: frontend messages in, analysis, forwarding upstream, responses back in order.
import type net from 'node:net';
import { serialize } from 'pg-protocol';
import type { Principal } from '../auth/principal';
import { StatementCache } from '../analysis/cache';
import type { Approval, ApprovalStore } from '../approvals/types';
import type { AgentApproval } from '../analysis/rewrite/virtual';
import { checkParameterTypes } from '../analysis/functions';
import { analyze, type Analysis, type AnalysisContext, type AnalyzedStatement } from '../analysis/pipeline';
import type { PlanParams, Planner } from '../budgets/planner';
import type { RateLimitStore } from '../budgets/rate-limit';
import { RateStoreUnavailableError, refusalWhenStoreUnavailable, type StoreAccess } from '../budgets/redis-store';
import type { ProxyConfig } from '../config/load';
import { ProxyError, toProxyError } from '../errors/catalogue';
import type { Logger } from '../log';
import type { PolicySnapshot } from '../policy/load';
import type { ReadScope } from '../policy/scope';
import type { BackendFrame } from '../protocol/backend/framer';
import * as backend from '../protocol/backend/serializer';
import type { FrontendDecoder } from '../protocol/frontend/decoder';
import type { FrontendMessage } from '../protocol/frontend/messages';
import { RowCap } from '../results/row-cap';
import { holdForApproval, type HeldWrite } from './approval-hold';
import { cancelUpstream, UpstreamConnectError, type UpstreamHandshake } from '../upstream/connect';
import type { PendingItem } from './pending';
import { ResponseRouter } from './router';

/**
 * Sent upstream in place of a refused statement. It fails in the parser, so the
 * upstream reacts exactly as PostgreSQL does to any error (the transaction block
 * fails, an extended-protocol batch is skipped up to Sync), and the proxy replaces
 * the resulting ErrorResponse with its own. Nothing of the refused text is sent.
 */
const REFUSED_SENTINEL = 'ORMAI_PROXY_REFUSED_STATEMENT';
/** Executing a portal that cannot exist fails the same way, for refusals decided at Execute. */
const REFUSED_PORTAL = 'ormai_proxy_refused_portal';
/** …and binding a statement that cannot exist, for refusals decided at Bind. */
const REFUSED_STATEMENT = 'ormai_proxy_refused_statement';

/** Pause reading from the client while this much is queued towards the upstream. */
const UPSTREAM_HIGH_WATER = 4 * 1024 * 1024;
const MINUTE_MS = 60_000;

export interface SessionDeps {
  id: string;
  client: net.Socket;
  decoder: FrontendDecoder;
  upstream: UpstreamHandshake;
  principal: Principal;
  policy: PolicySnapshot;
  scope: ReadScope;
  /** Identifies the compiled scope in cache keys (policy hash and catalog version). */
  scopeKey: string;
  cache: StatementCache;
  rateLimits: RateLimitStore;
  /** Where writes held for approval go; without one they are refused. */
  approvals?: ApprovalStore;
  planner: Planner;
  config: ProxyConfig;
  log: Logger;
  onClose: () => void;
}

interface Portal {
  cap: RowCap;
  /** Runs a write (or is unknown): refused whenever the rate-limit store is unavailable. */
  writes: boolean;
  /** Names a write target (a write or a dry run): errors are reduced. */
  targets: boolean;
  /** A write a require_approval rule may hold: checked at Execute, with these parameters. */
  held?: HeldWrite;
}

/** What the session remembers of a prepared statement. */
interface Prepared {
  sql: string;
  types: number[];
  rowLimit?: number;
  /** Reads are checked against the scan budget when bound. */
  reads: boolean;
  writes: boolean;
  /** Names a write target (a write or a dry run): errors are reduced. */
  targets: boolean;
  /** The agent's text and the analysed write, when a require_approval rule may hold it. */
  held?: { originalSql: string; write: HeldWrite['write'] };
}

export class Session {
  private readonly router: ResponseRouter;
  private readonly client: net.Socket;
  private readonly server: net.Socket;
  private readonly context: Omit<AnalysisContext, 'protocol'>;
  private readonly inbox: FrontendMessage[] = [];
  private pumping = false;
  private closed = false;
  private terminating = false;
  /** Prepared statements by name ('' is the unnamed statement). */
  private readonly statements = new Map<string, Prepared>();
  private readonly portals = new Map<string, Portal>();

  constructor(private readonly deps: SessionDeps) {
    this.client = deps.client;
    this.server = deps.upstream.socket;
    this.router = new ResponseRouter(deps.principal);
    // Portals live until the end of their transaction.
    this.router.onReady = (status) => {
      if (status === 'I') this.portals.clear();
    };
    const { policy, scope, principal } = deps;
    this.context = {
      statementTimeoutMaxMs: policy.statementTimeoutMs,
      writeGate: (target) => policy.isWriteAllowed(target),
      scope,
      principal,
    };
  }

  get txStatus(): 'I' | 'T' | 'E' {
    return this.router.txStatus;
  }

  start(initial: FrontendMessage[]): void {
    this.client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    this.client.on('close', () => this.onClientClose());
    this.client.on('error', (err) => this.deps.log.debug({ err: err.message }, 'client socket error'));
    this.client.on('drain', () => this.server.resume());
    this.server.on('data', (chunk: Buffer) => this.onUpstreamData(chunk));
    this.server.on('close', () => this.onUpstreamClose());
    this.server.on('error', (err) => this.deps.log.warn({ err: err.message }, 'upstream socket error'));
    this.server.on('drain', () => this.client.resume());
    if (this.deps.upstream.leftover.length > 0) this.relay(this.deps.upstream.leftover);
    this.enqueue(initial);
  }

  /** Cancel the statement running upstream (the client sent a CancelRequest). */
  cancel(): void {
    const { upstream, config } = this.deps;
    void cancelUpstream(config.upstream, upstream.processId, upstream.secretKey);
  }

  /** Ends the session from outside (proxy shutdown). */
  shutdown(error: ProxyError): void {
    this.fatal(error);
  }

  // ---- client → upstream ----

  private onClientData(chunk: Buffer): void {
    if (this.closed) return;
    let messages: FrontendMessage[];
    try {
      messages = this.deps.decoder.push(chunk) as FrontendMessage[];
    } catch (err) {
      this.fatal(toProxyError(err));
      return;
    }
    this.enqueue(messages);
  }

  private enqueue(messages: FrontendMessage[]): void {
    for (const m of messages) this.inbox.push(m);
    if (!this.pumping) void this.pump();
  }

  /**
   * Handles client messages strictly in order. Most are handled synchronously; a check that
   * needs I/O (a shared rate-limit store) suspends the pump, and new messages wait in the inbox.
   */
  private async pump(): Promise<void> {
    this.pumping = true;
    this.server.cork(); // one write upstream per batch of client messages
    try {
      while (this.inbox.length > 0 && !this.closed && !this.terminating) {
        const pending = this.handle(this.inbox.shift()!);
        if (pending) {
          this.server.uncork();
          await pending;
          this.server.cork();
        }
      }
    } catch (err) {
      const error = toProxyError(err);
      if (error.logMessage) this.deps.log.error({ err: error.logMessage }, 'session failed');
      this.fatal(error);
    } finally {
      this.server.uncork();
      this.pumping = false;
    }
    if (this.server.writableLength > UPSTREAM_HIGH_WATER) this.client.pause();
  }

  /** Handles one message; returns a promise only when it had to wait for I/O. */
  private handle(message: FrontendMessage): Promise<void> | undefined {
    switch (message.type) {
      case 'Query':
        return this.afterRateCheck(() => this.query(message.sql), () => serialize.query(REFUSED_SENTINEL), 'query', () => this.queryAccess(message.sql));
      case 'Parse':
        if (this.readsApprovals(message.sql)) return this.withApprovals((rows) => this.parse(message, rows));
        this.parse(message);
        return undefined;
      case 'Bind': {
        const prepared = this.statements.get(message.statement);
        this.portals.set(message.portal, {
          cap: new RowCap(prepared?.rowLimit),
          writes: prepared?.writes ?? true,
          targets: prepared?.targets ?? true,
          ...(prepared?.held
            ? { held: { ...prepared.held, statementSql: prepared.sql, params: { types: prepared.types, values: message.params, formats: message.paramFormats } } }
            : {}),
        });
        if (!prepared?.reads || this.deps.policy.raw.max_scan_rows === undefined) {
          this.forward(message.raw, { kind: 'bind' });
          return undefined;
        }
        const params: PlanParams = { types: prepared.types, values: message.params, formats: message.paramFormats };
        return this.scanCheck([prepared.sql], params).then((refused) => {
          if (refused) this.forward(serialize.bind({ statement: REFUSED_STATEMENT }), { kind: 'bind', refused });
          else this.forward(message.raw, { kind: 'bind' });
        });
      }
      case 'Describe':
        this.forward(message.raw, { kind: 'describe' });
        return undefined;
      case 'Execute':
        return this.afterRateCheck(
          () => this.execute(message.raw, message.portal),
          () => serialize.execute({ portal: REFUSED_PORTAL }),
          'execute',
          () => (this.portals.get(message.portal)?.writes === false ? 'read' : 'write'),
        );
      case 'Close':
        if (message.target === 'P') this.portals.delete(message.name);
        else this.statements.delete(message.name);
        this.forward(message.raw, { kind: 'close' });
        return undefined;
      case 'Sync':
        this.forward(message.raw, { kind: 'sync' });
        return undefined;
      case 'Flush':
        this.server.write(message.raw);
        return undefined;
      case 'Terminate':
        this.terminate();
        return undefined;
      case 'CopyData':
      case 'CopyDone':
      case 'CopyFail':
        // COPY is never allowed, so the session is never in copy mode; PostgreSQL
        // ignores these messages outside copy mode, and so does the proxy.
        return undefined;
      case 'FunctionCall':
        this.forward(serialize.query(REFUSED_SENTINEL), {
          kind: 'query',
          refused: new ProxyError('statement_not_allowed', { message: 'the fast-path function call interface is not allowed' }),
        });
        return undefined;
      case 'AuthResponse':
        throw new ProxyError('protocol_violation', { message: 'unexpected authentication message after startup' });
    }
  }

  private parse(message: Extract<FrontendMessage, { type: 'Parse' }>, approvals?: readonly AgentApproval[]): void {
    const result = this.parseTypesError(message.paramTypes) ?? this.analyze(message.sql, 'extended', approvals);
    if (result.ok) {
      const first = result.statements[0];
      this.statements.set(message.name, {
        sql: result.sql,
        types: message.paramTypes,
        rowLimit: first?.rowLimit,
        reads: first !== undefined && this.checksScans(first.nodeType),
        writes: result.statements.some(isWrite),
        targets: result.statements.some(touchesWriteTarget),
        ...(first?.write?.approval ? { held: { originalSql: message.sql, write: first.write as HeldWrite['write'] } } : {}),
      });
      this.forward(serialize.parse({ name: message.name, text: result.sql, types: message.paramTypes }), {
        kind: 'parse',
        texts: texts(result.sql, message.sql),
        ...(result.statements.some(touchesWriteTarget) ? { write: true } : {}),
      });
    } else {
      this.statements.delete(message.name);
      this.forward(serialize.parse({ name: message.name, text: REFUSED_SENTINEL, types: [] }), { kind: 'parse', refused: result.error });
    }
  }

  private query(sql: string): Promise<void> | undefined {
    if (this.readsApprovals(sql)) return this.withApprovals((rows) => this.queryAnalyzed(sql, this.analyze(sql, 'simple', rows)));
    return this.queryAnalyzed(sql, this.analyze(sql, 'simple'));
  }

  /** A statement that may read ormai.approvals is analysed with the principal's approvals as of now (never cached). */
  private readsApprovals(sql: string): boolean {
    return this.deps.approvals !== undefined && /approvals/i.test(sql);
  }

  private withApprovals(then: (rows: readonly AgentApproval[]) => Promise<void> | void): Promise<void> {
    const { approvals, principal, log } = this.deps;
    return approvals!.list({ tenantId: principal.tenantId, user: principal.user }).then(
      (list) => then(list.map(agentApproval)),
      (err: unknown) => {
        log.warn({ err: (err as Error).message }, 'approvals store unavailable');
        return then([]);
      },
    );
  }

  private queryAnalyzed(sql: string, result: Analysis): Promise<void> | undefined {
    if (!result.ok) {
      this.forward(serialize.query(REFUSED_SENTINEL), { kind: 'query', refused: result.error });
      return undefined;
    }
    const writes = result.statements.filter(isWrite).length;
    const send = () =>
      this.forward(serialize.query(result.sql), {
        kind: 'query',
        rowLimits: result.statements.map((s) => s.rowLimit),
        texts: texts(result.sql, sql),
        ...(result.statements.some(touchesWriteTarget) ? { write: true } : {}),
      });
    const held = result.statements.find((s) => s.write?.approval);
    if (held && result.statements.length > 1) {
      const refused = new ProxyError('statement_not_allowed', {
        message: 'a write that needs approval must be sent on its own',
        hint: 'Send it as a single statement, outside a multi-statement string.',
      });
      this.forward(serialize.query(REFUSED_SENTINEL), { kind: 'query', refused });
      return undefined;
    }
    if (writes > 0 && (this.deps.policy.raw.max_writes_per_minute !== undefined || held)) {
      return (async () => {
        const refused =
          (this.deps.policy.raw.max_writes_per_minute !== undefined ? await this.writeBudget(writes) : undefined) ??
          (held
            ? await holdForApproval(this.deps, {
                write: held.write as HeldWrite['write'],
                statementSql: held.sql,
                originalSql: sql,
                params: { types: [], values: [], formats: [] },
              })
            : undefined);
        if (refused) this.forward(serialize.query(REFUSED_SENTINEL), { kind: 'query', refused });
        else send();
      })();
    }
    const reads = result.statements.filter((s) => this.checksScans(s.nodeType)).map((s) => s.sql);
    if (reads.length === 0 || this.deps.policy.raw.max_scan_rows === undefined) {
      send();
      return undefined;
    }
    return this.scanCheck(reads, { types: [], values: [], formats: [] }).then((refused) => {
      if (refused) this.forward(serialize.query(REFUSED_SENTINEL), { kind: 'query', refused });
      else send();
    });
  }

  private checksScans(nodeType: string): boolean {
    return nodeType === 'SelectStmt';
  }

  /**
   * Asks the planner how many rows each statement would scan; returns the refusal when one
   * exceeds max_scan_rows. A statement the planner rejects is let through: the database will
   * give the agent the same error for the statement itself.
   */
  private async scanCheck(sqls: string[], params: PlanParams): Promise<ProxyError | undefined> {
    const { policy, scope, scopeKey, planner, log } = this.deps;
    const budget = policy.raw.max_scan_rows!;
    for (const sql of sqls) {
      let rows: number;
      try {
        rows = await planner.scanRows(sql, params, scope.catalog, `${scopeKey}\u0000${sql}`);
      } catch (err) {
        if (err instanceof UpstreamConnectError) {
          log.warn({ err: err.message }, 'planner unavailable');
          return new ProxyError('budget_unavailable');
        }
        log.debug({ err: (err as Error).message }, 'EXPLAIN failed; the statement goes ahead');
        continue;
      }
      if (rows > budget) {
        log.info({ code: 'scan_budget_exceeded', rows, budget }, 'statement refused');
        return new ProxyError('scan_budget_exceeded', {
          message: `the statement would scan about ${rows} rows; the policy allows ${budget}`,
        });
      }
    }
    return undefined;
  }

  /**
   * Runs `proceed` when the tenant's queries-per-minute budget allows one more statement;
   * otherwise forwards `refusal()` (which fails upstream) and substitutes the rate-limit error.
   * `access` is asked only when the shared store is unavailable: writes then always fail closed.
   */
  private afterRateCheck(
    proceed: () => Promise<void> | void,
    refusal: () => Buffer,
    kind: PendingItem['kind'],
    access: () => StoreAccess,
  ): Promise<void> | undefined {
    const limit = this.deps.policy.raw.queries_per_minute_per_tenant;
    if (limit === undefined) return proceed() ?? undefined;
    const key = `q:${this.deps.policy.name}:${this.deps.principal.tenantId}`;
    return this.deps.rateLimits.hit(key, limit, MINUTE_MS).then((decision) => {
      if (this.closed) return;
      if (decision.allowed) return proceed();
      else {
        const refused = new ProxyError('query_rate_limited', {
          message: `the tenant's budget of ${limit} statements per minute is used up`,
          detail: `retry after ${Math.ceil(decision.retryAfterMs / 1000)} s`,
        });
        this.deps.log.info({ code: refused.code }, 'statement refused');
        this.forward(refusal(), { kind, refused });
      }
    }, (err: unknown) => {
      if (!(err instanceof RateStoreUnavailableError)) throw err;
      if (this.closed) return;
      const mode = this.deps.config.store.readsWhenUnavailable;
      const refused = refusalWhenStoreUnavailable(mode === 'allow' ? access() : 'write', mode, err);
      if (!refused) {
        // Every statement let through unchecked is logged: the operator chose to fail open for reads.
        this.deps.log.warn({ err: err.message }, 'rate-limit store unavailable; read allowed without a budget check');
        return proceed();
      }
      this.deps.log.warn({ code: refused.code, err: err.message }, 'statement refused');
      this.forward(refusal(), { kind, refused });
    });
  }

  /** Execute of a portal: a write portal spends the write budget first; the database's errors for it are reduced. */
  private execute(raw: Buffer, name: string): Promise<void> | undefined {
    const portal = this.portals.get(name);
    const send = () => this.forward(raw, { kind: 'execute', cap: portal?.cap, ...(portal?.targets ? { write: true } : {}) });
    const budgeted = this.deps.policy.raw.max_writes_per_minute !== undefined;
    if (!portal?.writes || (!budgeted && !portal.held)) {
      send();
      return undefined;
    }
    return (async () => {
      const refused = (budgeted ? await this.writeBudget(1) : undefined) ?? (portal.held ? await holdForApproval(this.deps, portal.held) : undefined);
      if (refused) this.forward(serialize.execute({ portal: REFUSED_PORTAL }), { kind: 'execute', refused });
      else send();
    })();
  }

  /**
   * Spends `count` writes of max_writes_per_minute, per agent and per tenant (across the
   * tenant's sessions, and across proxies with a shared store). Returns the refusal when one
   * is used up; an unreachable shared store refuses writes, always.
   */
  private async writeBudget(count: number): Promise<ProxyError | undefined> {
    const { policy, principal, rateLimits, log } = this.deps;
    const limit = policy.raw.max_writes_per_minute!;
    const budgets: Array<[key: string, whose: string]> = [
      [`w:${policy.name}:u:${principal.user}`, 'for this agent'],
      [`w:${policy.name}:t:${principal.tenantId}`, 'for this tenant'],
    ];
    try {
      for (let i = 0; i < count; i++) {
        for (const [key, whose] of budgets) {
          const decision = await rateLimits.hit(key, limit, MINUTE_MS);
          if (!decision.allowed) {
            log.info({ code: 'write_rate_limited' }, 'statement refused');
            return new ProxyError('write_rate_limited', {
              message: `the budget of ${limit} writes per minute ${whose} is used up`,
              detail: `retry after ${Math.ceil(decision.retryAfterMs / 1000)} s`,
            });
          }
        }
      }
      return undefined;
    } catch (err) {
      if (!(err instanceof RateStoreUnavailableError)) throw err;
      log.warn({ err: err.message }, 'rate-limit store unavailable; write refused');
      return refusalWhenStoreUnavailable('write', 'refuse', err);
    }
  }

  /** Whether a simple-protocol Query writes; one the analyser refuses counts as a write (it is refused either way). */
  private queryAccess(sql: string): StoreAccess {
    const result = this.analyze(sql, 'simple');
    return result.ok && !result.statements.some(isWrite) ? 'read' : 'write';
  }

  /** A refusal when Parse declares a parameter type the policy's catalog does not allow. */
  private parseTypesError(types: readonly number[]): Analysis | undefined {
    if (types.length === 0) return undefined;
    try {
      checkParameterTypes(types, this.deps.scope.catalog.parameterTypes);
      return undefined;
    } catch (err) {
      const error = toProxyError(err);
      this.deps.log.info({ code: error.code, protocol: 'extended' }, 'statement refused');
      return { ok: false, error, tags: {} };
    }
  }

  private analyze(sql: string, protocol: 'simple' | 'extended', approvals?: readonly AgentApproval[]): Analysis {
    const { cache, scopeKey, principal } = this.deps;
    const result = approvals
      ? analyze(sql, { ...this.context, protocol, approvals })
      : cache.get(StatementCache.key(scopeKey, principal.tenantId, protocol, sql), () => analyze(sql, { ...this.context, protocol }));
    if (!result.ok) this.deps.log.info({ code: result.error.code, protocol }, 'statement refused');
    return result;
  }

  private forward(bytes: Buffer, item: Omit<PendingItem, 'result'>): void {
    this.router.pending.push(item);
    this.server.write(bytes);
  }

  // ---- upstream → client ----

  private onUpstreamData(chunk: Buffer): void {
    if (this.closed) return;
    let frames: BackendFrame[];
    try {
      frames = this.deps.upstream.framer.push(chunk);
    } catch (err) {
      this.deps.log.error({ err: (err as Error).message }, 'invalid data from upstream');
      this.fatal(new ProxyError('upstream_lost'));
      return;
    }
    this.relay(frames);
  }

  private relay(frames: BackendFrame[]): void {
    const out: Buffer[] = [];
    try {
      for (const frame of frames) {
        const bytes = this.router.route(frame);
        if (bytes) out.push(bytes);
      }
    } catch (err) {
      const error = toProxyError(err);
      this.deps.log.error({ err: error.logMessage ?? error.message }, 'session failed on upstream data');
      if (out.length > 0) this.client.write(Buffer.concat(out));
      this.fatal(error);
      return;
    }
    if (out.length === 0) return;
    const ok = this.client.write(out.length === 1 ? out[0] : Buffer.concat(out));
    if (!ok) this.server.pause();
  }

  // ---- endings ----

  private terminate(): void {
    this.terminating = true;
    this.server.end(serialize.end());
    this.client.end();
    this.close();
  }

  /** Sends a FATAL error to the client and ends the session. */
  private fatal(error: ProxyError): void {
    if (this.closed) return;
    const fields = { ...error.toFields(), severity: 'FATAL' };
    this.client.end(backend.errorResponse(fields));
    this.releaseUpstream();
    this.close();
  }

  private onClientClose(): void {
    if (this.closed) return;
    this.releaseUpstream();
    this.close();
  }

  private onUpstreamClose(): void {
    if (this.closed || this.terminating) return;
    this.deps.log.warn('upstream connection lost');
    this.fatal(new ProxyError('upstream_lost'));
  }

  /** Cancels anything still running upstream, then closes the upstream session. */
  private releaseUpstream(): void {
    if (this.router.pending.size > 0) {
      const { upstream, config } = this.deps;
      void cancelUpstream(config.upstream, upstream.processId, upstream.secretKey).finally(() => this.server.destroy());
    } else if (!this.server.destroyed) {
      this.server.end(serialize.end());
    }
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.deps.onClose();
  }
}

/** Changes data when run (a dry run does not: it runs its preview instead). */
function isWrite(statement: AnalyzedStatement): boolean {
  return touchesWriteTarget(statement) && !statement.write?.dryRun;
}

/** Names a write target, so reads the real table: the database's errors for it are reduced (dry runs included). */
function touchesWriteTarget(statement: AnalyzedStatement): boolean {
  return statement.kind === 'write' || statement.writes.length > 0;
}

/** Both texts when the proxy sent something other than what the agent wrote (error positions are then moved). */
function texts(sent: string, agent: string): PendingItem['texts'] {
  return sent === agent ? undefined : { sent, agent };
}

/** An approval as its requester sees it in ormai.approvals. */
function agentApproval(a: Approval): AgentApproval {
  return {
    id: a.id,
    state: a.state,
    operation: a.operation,
    model: a.model,
    rule: a.rule,
    ...(a.reason ? { reason: a.reason } : {}),
    createdAt: a.createdAt,
    expiresAt: a.expiresAt,
    received: a.approvals.length,
    required: a.approvers,
    ...(a.result?.rowsAffected !== undefined ? { rowsAffected: a.result.rowsAffected } : {}),
    ...(a.result?.error ? { error: `${a.result.error.code}: ${a.result.error.message}` } : {}),
  };
}
