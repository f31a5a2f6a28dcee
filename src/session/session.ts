// One client session: frontend messages in, analysis, forwarding upstream, responses back in order.
import type net from 'node:net';
import { serialize } from 'pg-protocol';
import type { Principal } from '../auth/principal';
import { StatementCache } from '../analysis/cache';
import { checkParameterTypes } from '../analysis/functions';
import { analyze, type Analysis, type AnalysisContext } from '../analysis/pipeline';
import type { PlanParams, Planner } from '../budgets/planner';
import type { RateLimitStore } from '../budgets/rate-limit';
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
  planner: Planner;
  config: ProxyConfig;
  log: Logger;
  onClose: () => void;
}

interface Portal {
  cap: RowCap;
}

/** What the session remembers of a prepared statement. */
interface Prepared {
  sql: string;
  types: number[];
  rowLimit?: number;
  /** Reads are checked against the scan budget when bound. */
  reads: boolean;
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
        return this.afterRateCheck(() => this.query(message.sql), () => serialize.query(REFUSED_SENTINEL), 'query');
      case 'Parse': {
        const result = this.parseTypesError(message.paramTypes) ?? this.analyze(message.sql, 'extended');
        if (result.ok) {
          const first = result.statements[0];
          this.statements.set(message.name, {
            sql: result.sql,
            types: message.paramTypes,
            rowLimit: first?.rowLimit,
            reads: first !== undefined && this.checksScans(first.nodeType),
          });
          this.forward(serialize.parse({ name: message.name, text: result.sql, types: message.paramTypes }), { kind: 'parse', texts: texts(result.sql, message.sql) });
        } else {
          this.statements.delete(message.name);
          this.forward(serialize.parse({ name: message.name, text: REFUSED_SENTINEL, types: [] }), { kind: 'parse', refused: result.error });
        }
        return undefined;
      }
      case 'Bind': {
        const prepared = this.statements.get(message.statement);
        this.portals.set(message.portal, { cap: new RowCap(prepared?.rowLimit) });
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
          () => this.forward(message.raw, { kind: 'execute', cap: this.portals.get(message.portal)?.cap }),
          () => serialize.execute({ portal: REFUSED_PORTAL }),
          'execute',
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

  private query(sql: string): Promise<void> | undefined {
    const result = this.analyze(sql, 'simple');
    if (!result.ok) {
      this.forward(serialize.query(REFUSED_SENTINEL), { kind: 'query', refused: result.error });
      return undefined;
    }
    const send = () =>
      this.forward(serialize.query(result.sql), { kind: 'query', rowLimits: result.statements.map((s) => s.rowLimit), texts: texts(result.sql, sql) });
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
   */
  private afterRateCheck(proceed: () => Promise<void> | void, refusal: () => Buffer, kind: PendingItem['kind']): Promise<void> | undefined {
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
    });
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

  private analyze(sql: string, protocol: 'simple' | 'extended'): Analysis {
    const { cache, scopeKey, principal } = this.deps;
    const result = cache.get(StatementCache.key(scopeKey, principal.tenantId, protocol, sql), () => analyze(sql, { ...this.context, protocol }));
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

/** Both texts when the proxy sent something other than what the agent wrote (error positions are then moved). */
function texts(sent: string, agent: string): PendingItem['texts'] {
  return sent === agent ? undefined : { sent, agent };
}
