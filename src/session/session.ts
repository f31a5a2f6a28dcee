// One client session: frontend messages in, analysis and budgets, forwarding upstream, responses back in order, one audit event per statement.
import type net from 'node:net';
import type { DeclareCursorStmt, FetchStmt, TransactionStmt } from '@pgsql/types';
import { serialize } from 'pg-protocol';
import { StatementCache } from '../analysis/cache';
import { checkParameterTypes } from '../analysis/functions';
import { analyze, type Analysis, type AnalysisContext, type AnalyzedStatement } from '../analysis/pipeline';
import { nodeBody } from '../analysis/types';
import { barrierViewsCreation, barrierViewsOf } from '../analysis/rewrite/derived';
import { forgedParams, tenantColumnNames, tenantType } from '../analysis/rewrite/tenant';
import type { AgentApproval } from '../analysis/rewrite/virtual';
import type { ProxyMetrics } from '../admin/metrics';
import { CAPTURE_SETTINGS } from '../audit/event';
import { FAST_PATH_CALL } from '../audit/redact';
import type { ApprovalStore } from '../approvals/types';
import type { Principal } from '../auth/principal';
import type { PlanParams, Planner } from '../budgets/planner';
import type { RateLimitStore } from '../budgets/rate-limit';
import type { ProxyConfig } from '../config/load';
import { ProxyError, toProxyError } from '../errors/catalogue';
import type { Logger } from '../log';
import type { PolicyView } from '../policy/provider';
import type { BackendFrame } from '../protocol/backend/framer';
import * as backend from '../protocol/backend/serializer';
import type { FrontendDecoder } from '../protocol/frontend/decoder';
import type { FrontendMessage } from '../protocol/frontend/messages';
import { RowCap } from '../results/row-cap';
import { sanitizeWriteError, type WriteErrorScope } from '../results/write-errors';
import { cancelUpstream, type UpstreamHandshake } from '../upstream/connect';
import { parseMessage, withMaxRows, withResultFormats } from '../upstream/messages';
import { holdForApproval, type HeldWrite, type HoldDeps } from './approval-hold';
import { analysisTurns, LONG_TEXT } from './analysis-turns';
import { StatementAuditor, type AuditPort, type SentStatement, type ToolAuditContext } from './auditing';
import { SessionBudgets, type BudgetDeps } from './budgets';
import { dropsViews, SessionViews, type SessionViewsAtStart } from './barrier-views';
import type { AuditHook, PendingItem } from './pending';
import { ResponseRouter } from './router';
import { ByteBatch } from './byte-batch';
import { StatementDeadline } from './deadline';
import { declaredCursors, fetchCaps, readsRows, sessionEffects } from './session-effects';
import { preparedText, SessionState, type Effect, type PreparedTextBudget } from './state';
import { executedStatement, executeParams, executeTargets, sqlPrepared } from './sql-prepare';
import { agentApproval, captureOf, commitShape, explainsOf, heldOf, writeErrorsOf, isCommit, isWrite, mayRaiseWriteErrors, texts, touchesWriteTarget, type Portal, type Prepared } from './statements';

/**
 * Sent upstream in place of a refused statement. It fails in the parser, so the
 * upstream reacts exactly as PostgreSQL does to any error (the transaction block
 * fails, an extended-protocol batch is skipped up to Sync), and the proxy replaces
 * the resulting ErrorResponse with its own. Nothing of the refused text is sent.
 *
 * Refusals decided at Bind or Execute are sent as a Parse of this text under a name of
 * their own: PostgreSQL raises the syntax error before it looks at the name
 * (exec_parse_message parses first, stores last), so the refusal fails whatever
 * statements and portals the agent has created, under any name.
 */
const REFUSED_SENTINEL = 'ORMAI_PROXY_REFUSED_STATEMENT';
const REFUSED_NAME = 'ormai_proxy_refused';

/** The write events one ROLLBACK event names (`undoes`); more are counted (`undoes_more`). */
const MAX_UNDOES = 1000;

/** Pause reading from the client while this much is queued towards the upstream. */
const UPSTREAM_HIGH_WATER = 4 * 1024 * 1024;
/**
 * Pause reading from the client while this much of what it sent waits to be handled (the pump
 * waits for an answer or a check), and read again once it is down to INBOX_LOW_WATER: a client
 * that keeps sending meanwhile cannot grow the session's memory without bound.
 */
const INBOX_HIGH_WATER = 8 * 1024 * 1024;
const INBOX_LOW_WATER = 1024 * 1024;
/**
 * Bytes of answers relayed before the session stops reading from the upstream until the next turn
 * of the event loop. One readable socket is otherwise read until it is empty (up to 32 reads of
 * 64 KiB each time), and relaying is the proxy's one thread: two sessions relaying 100 MB results
 * held another tenant's one-row reads at a median of 31–33 ms (6–9 ms with the yield).
 */
const RELAY_TURN_BYTES = 256 * 1024;
/**
 * Rows longer than this are relayed in pieces as they arrive instead of being held whole (unless
 * their columns are cut for a capture or scrubbed): a session then holds at most this much of a
 * row. Held whole, four sessions reading 30 MB rows took the proxy from 91 to 258 MB.
 */
const STREAM_ROWS_ABOVE = 256 * 1024;

export interface SessionDeps {
  id: string;
  client: net.Socket;
  decoder: FrontendDecoder;
  upstream: UpstreamHandshake;
  principal: Principal;
  /** The policy the login selected, compiled: what the session runs under until its first statement. */
  initial: PolicyView;
  /**
   * The same policy (by name) as of now, after any hot reload; undefined once a reload removed it.
   * Read once per statement, so that one statement is analysed, budgeted and audited under one snapshot.
   */
  current: () => PolicyView | undefined;
  cache: StatementCache;
  rateLimits: RateLimitStore;
  /** Where writes held for approval go; without one they are refused. */
  approvals?: ApprovalStore;
  /** The audit trail; without one nothing is recorded (tests of the wire alone). */
  audit?: AuditPort;
  metrics?: ProxyMetrics;
  planner: Planner;
  /** The barrier views the session's start made (listener/handshake.ts); absent with read_scope: fence. */
  views?: SessionViewsAtStart;
  config: ProxyConfig;
  /** The text every session's prepared statements hold together (session.max_prepared_size_total). */
  preparedText?: PreparedTextBudget;
  log: Logger;
  onClose: () => void;
}



const NO_PARAMS: PlanParams = { types: [], values: [], formats: [] };

export class Session {
  private readonly router: ResponseRouter;
  private readonly client: net.Socket;
  private readonly server: net.Socket;
  /** The snapshot of the statement being handled: pinned per message, steady while the pump waits on it. */
  private snap: PolicyView;
  /** Answer bytes relayed since the session last let the others run (yieldRelay). */
  private relayed = 0;
  private yielding = false;
  /** The Query or Parse whose turn at the analysis has come (waitsTurn, inTurn). */
  private turned: FrontendMessage | undefined;
  /** The deps as budgets and approval holds read them: policy, scope and scopeKey of the pinned snapshot. */
  private readonly pinned: BudgetDeps & HoldDeps;
  private readonly budgets: SessionBudgets;
  private readonly auditor: StatementAuditor;
  private readonly inbox: FrontendMessage[] = [];
  /** Per inbox message, the bytes of the client's that are freed once it is handled (messages are views into the chunks). */
  private readonly inboxSizes: number[] = [];
  private inboxBytes = 0;
  /** Bytes received that made no whole message yet: counted with the next message decoded. */
  private undecodedBytes = 0;
  /** Reading from the client is paused because the inbox is full. */
  private inboxFull = false;
  private pumping = false;
  /** While the pump handles a batch of client messages, what goes upstream is collected and written once. */
  private batching = false;
  private readonly upstreamBatch = new ByteBatch();
  private closed = false;
  private terminating = false;
  /** The client's connection closed while messages it had sent were still being handled. */
  private clientClosed = false;
  /** The client is gone; the session waits for PostgreSQL's answers to what it sent (release()). */
  private draining = false;
  private drainTimer?: NodeJS.Timeout;
  /** Output to the client waits behind this while a write's audit event is made durable. */
  private output?: Promise<void>;
  /** Prepared statements and portals, as PostgreSQL has confirmed them. */
  private readonly state: SessionState;
  /** A BEGIN may have opened a transaction block whose ReadyForQuery has not arrived yet. */
  private blockMaybeOpen = false;
  /** Checks that no statement runs past the policy's timeout while requests are pending upstream. */
  private readonly deadline: StatementDeadline;
  /** The barrier views policy tables are read through, as PostgreSQL confirmed them. */
  private readonly views: SessionViews;
  /**
   * Whether each write event of the transaction open upstream (implicit or explicit) is durable:
   * no COMMIT, Sync or proxy-opened block ends it until all are (audit.write_guarantee: durable).
   * Emptied when PostgreSQL reports the session idle again.
   */
  private txnWrites: Array<Promise<boolean>> = [];
  /**
   * The write events of the transaction in progress, not known to be committed (any write
   * guarantee): the first MAX_UNDOES of them, and how many more.
   */
  private txnWriteIds: string[] = [];
  private txnWritesBeyond = 0;
  /** The last write event of the transaction, listed or not (the end of a ROLLBACK event's undoes_range). */
  private txnLastWriteId: string | undefined;
  /**
   * The transaction's savepoints, innermost last, each with how many of its writes came before it
   * and the id of the first write after it (the start of undoes_range, once there is one).
   */
  private savepoints: Array<{ name: string; writes: number; firstAfter?: string }> = [];
  /** The first error's SQLSTATE since the transaction began (or was last recovered by ROLLBACK TO). */
  private txnFailure?: string;
  /** A write's Execute, or a transaction statement's, was forwarded since the last Sync. */
  private batchWrites = false;
  /** The client has sent an Execute since its last Sync: PostgreSQL runs it in the batch's implicit transaction until that Sync. */
  private extendedBatch = false;
  /** The client has sent an extended-protocol message since its last Sync (the batch's implicit transaction may be open). */
  private extendedOpen = false;
  /** The Execute batch in flight changes a setting captured values depend on: its Sync says so (PendingItem.unsettles). */
  private batchUnsettles = false;
  /** The transaction has a SET LOCAL of such a setting: its end reverts it. */
  private localTextSettings = false;
  private batchTxn = false;
  /** The proxy is shutting down: the session ends at its next idle point (shutdown()). */
  private stopping?: ProxyError;
  /** A Query sent in a block of the proxy's, waiting for its COMMIT (guardedQuery). */
  private guard?: { resolve(): void; commitHook?: AuditHook };

  constructor(private readonly deps: SessionDeps) {
    this.client = deps.client;
    this.server = deps.upstream.socket;
    // A message past max_message_size ends the session (tooLarge), and the answers after it are still read.
    deps.upstream.framer.skipOversized = true;
    // A long row goes to the client as it arrives, a chunk at a time, unless it must be read whole.
    deps.upstream.framer.streamRowsAbove = STREAM_ROWS_ABOVE;
    this.state = new SessionState(deps.preparedText);
    this.router = new ResponseRouter(deps.principal, deps.upstream.parameters);
    // Portals live until the end of their transaction. Those confirmed so far were all bound before
    // the Query or Sync an idle ReadyForQuery answers (answers come in order); later Binds are still in flight.
    this.router.onReady = (status) => {
      if (status !== 'I') return;
      // Back outside a transaction after an error (an implicit transaction's, or the proxy's own
      // COMMIT's): its writes did not stay. The agent's ROLLBACK and COMMIT say so themselves
      // (transactionEffect), AND CHAIN included.
      this.voidFailedWrites('and was rolled back');
      this.state.transactionEnded();
      this.blockMaybeOpen = false;
      this.localTextSettings = false;
      this.forgetTxnWrites();
    };
    this.router.onError = () => this.state.transactionFailed();
    this.router.onFailed = (code) => {
      this.txnFailure ??= code;
    };
    // The writes before it are committed: only writes after it can still be rolled back (close()).
    this.router.onCommitted = () => this.forgetTxnWrites();
    this.views = new SessionViews(deps.config.upstream.readScope !== 'fence', deps.principal, deps.log, deps.views);
    this.snap = deps.initial;
    const snap = () => this.snap;
    this.pinned = {
      ...deps,
      get policy() {
        return snap().policy;
      },
      get scope() {
        return snap().scope;
      },
      get scopeKey() {
        return snap().scopeKey;
      },
    };
    this.budgets = new SessionBudgets(this.pinned);
    const base = {
      sessionId: deps.id,
      principal: deps.principal,
      parameters: deps.upstream.parameters,
      // Settings a statement of a batch still in flight changes are reported at its end only.
      settingsUnsettled: () => this.batchUnsettles || this.router.pending.some((i) => i.unsettles === true),
      get policy() {
        return snap().policy;
      },
    };
    this.deadline = new StatementDeadline({
      pending: this.router.pending,
      limitMs: () => this.snap.policy.statementTimeoutMs,
      marginMs: deps.config.session.deadlineMarginMs,
      cancel: () => this.cancel(),
      flush: () => this.askForAnswers(),
      expire: (error) => {
        // Nothing more is read from this upstream session: it is dropped, not ended politely.
        this.forgetIfCommitUnanswered();
        this.router.abandon(error);
        this.server.destroy();
        this.fatal(error);
      },
      log: deps.log,
    });
    this.auditor = new StatementAuditor(deps.audit, deps.metrics, base, deps.log);
  }

  /** No more client messages are handled: the session has ended or is draining. */
  private get ended(): boolean {
    return this.closed || this.draining;
  }

  get txStatus(): 'I' | 'T' | 'E' {
    return this.router.txStatus;
  }

  /** The principal this session serves (the tool door finds its sessions by principal.connection). */
  get principal(): Principal {
    return this.deps.principal;
  }

  /** The tool door's engine names the call its next statements run for; undefined between calls (docs/tools.md). */
  setToolContext(tool: ToolAuditContext | undefined): void {
    this.auditor.tool = tool;
  }

  start(initial: FrontendMessage[]): void {
    this.client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    this.client.on('close', () => this.onClientClose());
    this.client.on('error', (err) => this.deps.log.debug({ err: err.message }, 'client socket error'));
    this.client.on('drain', () => this.server.resume());
    this.server.on('data', (chunk: Buffer) => this.onUpstreamData(chunk));
    this.server.on('close', () => this.onUpstreamClose());
    this.server.on('error', (err) => this.deps.log.warn({ err: err.message }, 'upstream socket error'));
    this.server.on('drain', () => {
      if (!this.inboxFull) this.client.resume();
    });
    this.auditor.connection('login', { client: this.client.remoteAddress ?? '' });
    if (this.deps.upstream.leftover.length > 0) this.relay(this.deps.upstream.leftover);
    this.enqueue(initial);
  }

  /** Cancel the statement running upstream (the client sent a CancelRequest). */
  cancel(): void {
    const { upstream, config } = this.deps;
    void cancelUpstream(config.upstream, upstream.processId, upstream.secretKey);
  }

  /**
   * Ends the session from outside (proxy shutdown): at once when it is idle or `force`d (what
   * runs is then cancelled, its answer still completing the audit events), else at its next idle
   * point, once what it sent is answered and the agent's output is written.
   */
  shutdown(error: ProxyError, force = false): void {
    if (this.ended) return;
    this.stopping = error;
    if (force) this.fatal(error);
    else this.stopIfIdle();
  }

  /** Idle: nothing pending upstream, nothing waiting to be handled, no transaction open. */
  private stopIfIdle(): void {
    if (!this.stopping || this.ended) return;
    if (this.pumping || this.inbox.length > 0 || this.router.pending.size > 0 || this.inBlock() || this.guard) return;
    const error = this.stopping;
    const end = () => {
      if (!this.ended && this.router.pending.size === 0 && !this.inBlock()) this.fatal(error);
    };
    if (this.output) void this.output.then(end);
    else end();
  }

  // ---- client → upstream ----

  private onClientData(chunk: Buffer): void {
    if (this.ended) return;
    let messages: FrontendMessage[];
    try {
      messages = this.deps.decoder.push(chunk) as FrontendMessage[];
    } catch (err) {
      this.fatal(toProxyError(err));
      return;
    }
    this.enqueue(messages, chunk.length);
  }

  private enqueue(messages: FrontendMessage[], bytes = 0): void {
    if (messages.length === 0) {
      this.undecodedBytes += bytes;
      return;
    }
    for (const m of messages) {
      this.inbox.push(m);
      this.inboxSizes.push(0);
    }
    this.inboxSizes[this.inboxSizes.length - 1] = bytes + this.undecodedBytes;
    this.inboxBytes += bytes + this.undecodedBytes;
    this.undecodedBytes = 0;
    if (this.inboxBytes > INBOX_HIGH_WATER && !this.inboxFull) {
      this.inboxFull = true;
      this.client.pause();
    }
    if (!this.pumping) void this.pump();
  }

  /** The next message to handle; reading from the client resumes once the inbox has room. */
  private nextMessage(): FrontendMessage {
    this.inboxBytes -= this.inboxSizes.shift()!;
    if (this.inboxFull && this.inboxBytes <= INBOX_LOW_WATER) {
      this.inboxFull = false;
      if (this.server.writableLength <= UPSTREAM_HIGH_WATER) this.client.resume();
    }
    return this.inbox.shift()!;
  }

  /**
   * Handles client messages strictly in order. Most are handled synchronously; a check that
   * needs I/O (a shared store, the planner) suspends the pump, and new messages wait in the inbox.
   */
  private async pump(): Promise<void> {
    this.pumping = true;
    this.batching = true; // one write upstream per batch of client messages
    try {
      while (this.inbox.length > 0 && !this.ended && !this.terminating) {
        const pending = this.handle(this.nextMessage());
        if (pending) {
          this.flushUpstream();
          await pending;
          this.batching = true;
        }
      }
    } catch (err) {
      const error = toProxyError(err);
      if (error.logMessage) this.deps.log.error({ err: error.logMessage }, 'session failed');
      this.fatal(error);
    } finally {
      this.flushUpstream();
      this.pumping = false;
    }
    if (this.clientClosed && !this.ended && !this.terminating) {
      // As PostgreSQL does with a connection that closed: what it received runs to its end
      // (bounded by statement_timeout), nothing is cancelled.
      this.release(false);
      return;
    }
    if (this.server.writableLength > UPSTREAM_HIGH_WATER) this.client.pause();
    if (this.stopping) this.stopIfIdle();
  }

  /** Handles one message; returns a promise only when it had to wait for I/O. */
  private handle(message: FrontendMessage): Promise<void> | undefined {
    if (message.type === 'Execute') this.extendedBatch = true;
    if (message.type === 'Bind' || message.type === 'Describe' || message.type === 'Execute' || message.type === 'Close') this.extendedOpen = true;
    switch (message.type) {
      case 'Query': {
        // Not when PostgreSQL skips to Sync: it discards the Query, as the proxy then does.
        if (this.extendedBatch && !this.router.pending.skippingToSync) throw this.queryInBatch(message.sql);
        if (this.waitsTurn(message)) return this.inTurn(message);
        this.makeViews(message);
        return this.query(message.sql);
      }
      case 'Parse': {
        if (this.waitsTurn(message)) return this.inTurn(message);
        this.makeViews(message);
        this.extendedOpen = true;
        const removed = this.pin();
        if (!removed && this.readsApprovals(message.sql)) return this.withApprovals((rows) => this.parse(message, rows));
        this.parse(message, undefined, removed);
        return undefined;
      }
      case 'Bind': {
        const found = this.state.statement(message.statement);
        return found.wait ? this.after(found.wait, message) : this.bind(message, found.value);
      }
      case 'Describe': {
        const found = message.target === 'S' ? this.state.statement(message.name) : this.state.portal(message.name);
        if (found.wait) return this.after(found.wait, message);
        // A write's capture columns are cut off its description too.
        let prepared = message.target === 'S' ? (found.value as Prepared | undefined) : (found.value as Portal | undefined)?.prepared;
        if (prepared?.statements[0]?.nodeType === 'ExecuteStmt') {
          // A Parse'd EXECUTE is described by PostgreSQL as the statement the name holds.
          const targets = executeTargets(this.state, prepared.statements, new Map());
          if (targets instanceof Promise) return this.after(targets, message);
          prepared = targets instanceof ProxyError ? undefined : targets.get(0);
        }
        const spec = prepared?.statements[0] ? captureOf(prepared.statements[0]) : undefined;
        this.forward(message.raw, { kind: 'describe', ...(spec ? { captures: [spec] } : {}) });
        return undefined;
      }
      case 'Execute': {
        const found = this.state.portal(message.portal);
        return found.wait ? this.after(found.wait, message) : this.execute(message, found.value);
      }
      case 'Close':
        this.forward(message.raw, { kind: 'close', effect: this.state.close(message.target, message.name) });
        return undefined;
      case 'Sync':
        return this.sync(message.raw);
      case 'Flush':
        this.toServer(message.raw);
        this.router.pending.flushed();
        this.deadline.arm();
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
      case 'FunctionCall': {
        const refused = new ProxyError('statement_not_allowed', { message: 'the fast-path function call interface is not allowed' });
        this.refuse('query', refused, { protocol: 'extended', agentSql: FAST_PATH_CALL, statements: [], tags: {} });
        return undefined;
      }
      case 'AuthResponse':
        throw new ProxyError('protocol_violation', { message: 'unexpected authentication message after startup' });
    }
  }

  /**
   * A simple Query inside an extended-protocol batch (no Sync since its Execute) would run in
   * that batch's implicit transaction and commit it at its end, before the proxy has
   * waited for the batch's write events at the Sync; PostgreSQL 18 loses the batch's writes
   * instead (the next statement fails with "unexpected state STARTED") while their events say they
   * ran. No driver sends it. The session ends as for any protocol violation: what the batch ran
   * rolls back with it, and its events and this refusal are recorded.
   */
  private queryInBatch(sql: string): ProxyError {
    const error = new ProxyError('protocol_violation', {
      message: 'a simple Query was sent inside an extended-protocol batch, before its Sync',
      hint: 'Send Sync after Parse/Bind/Execute before a simple Query (every PostgreSQL driver does); the batch was rolled back.',
    });
    const hook = this.auditor.hook({ protocol: 'simple', agentSql: sql, statements: [], tags: {} });
    void hook?.result(0, { rows: 0, refused: error });
    hook?.end();
    return error;
  }

  /**
   * Before a statement, where the session is idle and views of the policy now in force are
   * missing (after DISCARD ALL or TEMP, or a reload that changed a table's scope): the Query that
   * makes them. The statement follows at once, in the fenced form; the views are used from
   * PostgreSQL's answer on. Not before a named Parse while the client holds an unnamed statement
   * (a Query would drop it); a Query or an unnamed Parse replaces it anyway.
   */
  private makeViews(message: Extract<FrontendMessage, { type: 'Query' | 'Parse' }>): void {
    const live = this.deps.current();
    // Not while PostgreSQL skips to Sync: it would discard the Query unanswered. Not inside an
    // extended-protocol batch: the Query would commit its implicit transaction before the Sync.
    if (!live || this.extendedOpen || this.router.pending.size > 0 || this.router.pending.skippingToSync || this.router.txStatus !== 'I' || this.blockMaybeOpen) return;
    if (message.type === 'Parse' && message.name !== '') {
      const unnamed = this.state.statement('');
      if (unnamed.wait || unnamed.value) return;
    }
    const views = this.views.missing(live.scope);
    if (views.length === 0) return;
    const discards = this.views.sent();
    this.forward(serialize.query(barrierViewsCreation(views)), {
      kind: 'query',
      silent: true,
      answered: (error) => this.views.answered(live.scope, views, error, discards),
    });
  }

  /** A long text, or any text of a tenant whose last analysis was costly, waits for its turn (analysis-turns.ts). */
  private waitsTurn(message: Extract<FrontendMessage, { type: 'Query' | 'Parse' }>): boolean {
    if (this.turned === message) {
      this.turned = undefined;
      return false;
    }
    return analysisTurns.waits(this.deps.principal.tenantId, message.sql.length >= LONG_TEXT);
  }

  /** Handles the message in its tenant's turn. */
  private inTurn(message: Extract<FrontendMessage, { type: 'Query' | 'Parse' }>): Promise<void> {
    return analysisTurns
      .run(this.deps.principal.tenantId, () => {
        if (this.ended) return undefined;
        this.turned = message;
        return this.handle(message);
      })
      .then(() => undefined);
  }

  /**
   * The message depends on a statement or portal whose Parse, Bind or Close, sent in an earlier
   * batch, PostgreSQL has not answered yet: it is handled once that answer is in.
   */
  private after(answered: Promise<void>, message: FrontendMessage): Promise<void> {
    return answered.then(() => (this.ended ? undefined : this.handle(message)));
  }

  // ---- simple protocol ----

  private query(sql: string): Promise<void> | undefined {
    const removed = this.pin();
    if (removed) return this.queryAnalyzed(sql, removed);
    if (this.readsApprovals(sql)) return this.withApprovals((rows) => this.queryAnalyzed(sql, this.analyze(sql, 'simple', rows)));
    return this.queryAnalyzed(sql, this.analyze(sql, 'simple'));
  }

  private queryAnalyzed(sql: string, result: Analysis): Promise<void> | undefined {
    const sent: SentStatement = { protocol: 'simple', agentSql: sql, statements: result.ok ? result.statements : [], tags: result.tags, ...(!result.ok && result.kind ? { kind: result.kind } : {}) };
    if (!result.ok) {
      this.refuse('query', result.error, sent);
      return undefined;
    }
    const declared = declaredCursors(result.statements);
    const fetches = fetchCaps(this.state, result.statements, declared);
    if (fetches instanceof Promise) return fetches.then(() => (this.ended ? undefined : this.queryAnalyzed(sql, result)));
    if (fetches instanceof ProxyError) {
      this.refuse('query', fetches, sent);
      return undefined;
    }
    for (const i of declared.keys()) {
      if (this.state.full('P', nodeBody<DeclareCursorStmt>(result.statements[i].stmt).portalname ?? '', this.deps.config.session.portals)) {
        this.refuse('query', sessionLimit('portals', this.deps.config.session.portals), sent);
        return undefined;
      }
    }
    const prepared = sqlPrepared(result.statements, result.tags, this.snap);
    const beyond = this.preparedLimit([...prepared.values()]);
    if (beyond) {
      this.refuse('query', beyond, sent);
      return undefined;
    }
    const targets = executeTargets(this.state, result.statements, prepared);
    if (targets instanceof Promise) return targets.then(() => (this.ended ? undefined : this.queryAnalyzed(sql, result)));
    if (targets instanceof ProxyError) {
      this.refuse('query', targets, sent);
      return undefined;
    }
    const run = this.executions(result.statements, targets, result.tags);
    if (run instanceof ProxyError) {
      this.refuse('query', run, sent);
      return undefined;
    }
    // From here on an EXECUTE is the statement it runs: budgets, caps, approvals and the audit see that one.
    const statements = run.statements;
    const ran: SentStatement = { ...sent, statements };
    const paramsOf = (i: number) => run.params.get(i) ?? NO_PARAMS;
    const writes = statements.filter(isWrite).length;
    const heldAt = statements.findIndex((s) => s.write?.approval);
    const held = heldAt >= 0 ? statements[heldAt] : undefined;
    const scans = this.budgets.limitsScans ? [...statements.entries()].filter(([, s]) => readsRows(s)).map(([i, s]) => ({ sql: s.sql, params: paramsOf(i) })) : [];
    // No write commits before its audit event is durable: an autocommit write runs in a block the
    // proxy opens and commits, and a COMMIT waits for the events of the transaction's writes.
    const shape = this.holdsCommits ? commitShape(statements, writes > 0, this.txnWrites.length > 0 || this.router.pending.size > 0, this.inBlock()) : 'plain';
    if (shape === 'refuse') {
      this.refuse('query', new ProxyError('statement_not_allowed', {
        message: 'COMMIT must end the text when the text writes',
        hint: 'Send COMMIT as the last statement of the text, or on its own: the proxy commits only once the audit events of the writes are recorded.',
      }), ran);
      return undefined;
    }
    const send = (): Promise<void> | undefined => {
      if (dropsViews(result.statements)) this.views.discarded();
      const strip = shape === 'strip';
      const hook = this.auditor.hook(ran, this.trackWrite);
      const text = strip ? result.statements.slice(0, -1).map((s) => s.sql).join('; ') : result.sql;
      const item: Omit<PendingItem, 'result'> = {
        kind: 'query',
        ...(statements.some((s) => s.kind === 'transaction') ? { transaction: true as const } : {}),
        rowLimits: statements.map((s) => s.rowLimit),
        texts: texts(text, sql),
        ...(statements.some(mayRaiseWriteErrors) ? writeErrorsOf(statements, this.snap.scope) : {}),
        ...(statements.some((s) => s.write?.capture) ? { captures: statements.map((s) => captureOf(s)) } : {}),
        ...explainsOf(statements, this.snap.scope),
        // Every statement looked at (a SET LOCAL among them is remembered for the transaction's end).
        ...(statements.map((s) => this.unsettles(s)).includes(true) ? { unsettles: true as const } : {}),
        ...(fetches.some(Boolean) ? { caps: fetches } : {}),
        ...this.effectsOf(result.statements, sessionEffects(this.state, result.statements, declared, prepared)),
        // A held-back COMMIT is reported by guardedQuery: the hook ends there.
        audit: strip && hook ? { result: (i, outcome) => hook.result(i, outcome), skip: () => hook.skip(), end: () => undefined } : hook,
      };
      if (shape === 'plain') {
        this.forward(serialize.query(text), item);
        return undefined;
      }
      const begin = shape === 'wrap' || (!this.inBlock() && statements[0]?.kind !== 'transaction');
      const last = statements[statements.length - 1];
      // The text's own COMMIT, held back: AND CHAIN goes with it (a new block opens as it commits).
      const chain = last?.nodeType === 'TransactionStmt' && nodeBody<TransactionStmt>(last.stmt).chain === true;
      return this.guardedQuery(text, item, { begin, ...(strip ? { commit: { index: statements.length - 1, hook, chain } } : {}) });
    };
    const sync = this.firstRefusal(writes > 0);
    if (sync) {
      this.refuse('query', sync, ran);
      return undefined;
    }
    if (statements.some((s) => s.kind === 'transaction')) this.blockMaybeOpen = true;
    // A text of several statements is refused whole when one of them is a write a rule may hold:
    // each would need judging, and none of them could wait for approval.
    if (held && statements.length > 1) {
      this.refuse('query', new ProxyError('statement_not_allowed', { message: 'a write that may need approval must be sent on its own', hint: 'Send it as a single statement, outside a multi-statement string.' }), ran);
      return undefined;
    }
    // Inside a transaction block, one that a rule holds is refused instead (one it does not hold runs).
    const cannotHold = held && this.inBlock() ? heldInBlock() : undefined;
    if (!this.budgets.limitsQueries && !(writes > 0 && this.budgets.limitsWrites) && !held && scans.length === 0) return send();
    return (async () => {
      let refused =
        (this.budgets.limitsQueries ? (await this.budgets.query(() => (writes > 0 ? 'write' : 'read'))).refused : undefined) ??
        // A held write spends no write budget while it waits: it counts when it runs (app.ts).
        (held ? await holdForApproval(this.pinned, { write: held.write as HeldWrite['write'], statementSql: held.sql, originalSql: sql, params: paramsOf(heldAt) }, cannotHold) : undefined) ??
        (writes > 0 && this.budgets.limitsWrites ? await this.budgets.writes(writes) : undefined);
      for (const scan of scans) refused ??= await this.budgets.scans([scan.sql], scan.params, this.plannerViews());
      if (this.ended) return;
      if (refused) this.refuse('query', refused, ran);
      else await send();
    })();
  }

  private readonly trackWrite = (durable: Promise<boolean> | undefined, eventId: string): void => {
    if (durable) this.txnWrites.push(durable);
    if (this.txnWriteIds.length < MAX_UNDOES) this.txnWriteIds.push(eventId);
    else this.txnWritesBeyond++;
    this.txnLastWriteId = eventId;
    // The savepoints with no write after them yet are the innermost ones.
    for (let i = this.savepoints.length - 1; i >= 0 && this.savepoints[i].firstAfter === undefined; i--) this.savepoints[i].firstAfter = eventId;
  };

  /** The transaction's writes are rolled back (`why`, `code`): one event says so and names them. */
  private voidWrites(why: string, code: string): void {
    if (this.txnWriteIds.length === 0) return;
    this.auditor.rolledBack(why, this.txnWriteIds, code, this.txnWritesBeyond, this.undoneRange(this.txnWriteIds[0]));
    this.txnWriteIds = [];
    this.txnWritesBeyond = 0;
    this.txnLastWriteId = undefined;
  }

  /** undoes_range: from `first` through the transaction's last write. */
  private undoneRange(first: string | undefined): [string, string] | undefined {
    return first !== undefined && this.txnLastWriteId !== undefined ? [first, this.txnLastWriteId] : undefined;
  }

  /** The transaction failed (txnFailure) and `how` it ended: its writes are rolled back. */
  private voidFailedWrites(how: string): void {
    const failure = this.txnFailure;
    if (failure !== undefined) this.voidWrites(`the transaction failed (${failure}) ${how}: its writes did not stay`, failure);
  }

  /** The transaction's writes are committed, or their outcome is no longer the session's to tell. */
  private forgetTxnWrites(): void {
    this.txnWrites = [];
    this.txnWriteIds = [];
    this.txnWritesBeyond = 0;
    this.txnLastWriteId = undefined;
    this.savepoints = [];
    this.txnFailure = undefined;
  }

  /**
   * sessionEffects, with what the agent's transaction statements change once they complete: a
   * ROLLBACK (AND CHAIN too) undoes the transaction's writes, a COMMIT of a failed transaction
   * (answered ROLLBACK) too, a ROLLBACK TO those since its savepoint; one event says so and names
   * them.
   */
  private effectsOf(statements: readonly AnalyzedStatement[], base: { effects?: Array<Effect | undefined> }): { effects?: Array<Effect | undefined> } {
    if (!statements.some((s) => s.nodeType === 'TransactionStmt')) return base;
    return { effects: statements.map((s, i) => this.transactionEffect(s) ?? base.effects?.[i]) };
  }

  private transactionEffect(s: AnalyzedStatement): Effect | undefined {
    if (s.nodeType !== 'TransactionStmt') return undefined;
    const { kind, savepoint_name: name = '' } = nodeBody<TransactionStmt>(s.stmt);
    const last = () => this.savepoints.map((p) => p.name).lastIndexOf(name);
    const onDone = (done: () => void): Effect => ({ done, failed: () => undefined, skipped: () => undefined });
    switch (kind) {
      case 'TRANS_STMT_ROLLBACK':
        return onDone(() => {
          if (this.txnFailure === undefined) this.voidWrites('the transaction was rolled back: its writes did not stay', 'rolled_back');
          else this.voidFailedWrites('and was rolled back');
          this.forgetTxnWrites();
        });
      case 'TRANS_STMT_COMMIT':
        // Committed: its tag said so (onCommitted). A failed transaction's COMMIT is a ROLLBACK.
        return onDone(() => {
          this.voidFailedWrites('and its COMMIT rolled it back');
          this.forgetTxnWrites();
        });
      case 'TRANS_STMT_SAVEPOINT':
        return onDone(() => this.savepoints.push({ name, writes: this.txnWriteIds.length + this.txnWritesBeyond }));
      case 'TRANS_STMT_RELEASE':
        return onDone(() => {
          const i = last();
          if (i >= 0) this.savepoints.length = i;
        });
      case 'TRANS_STMT_ROLLBACK_TO':
        return onDone(() => {
          const i = last();
          if (i < 0) return;
          const savepoint = this.savepoints[i];
          this.savepoints.length = i + 1;
          // The transaction is usable again: an error before this is no longer its fate.
          this.txnFailure = undefined;
          this.undoWritesSince(savepoint);
        });
      default:
        return undefined;
    }
  }

  /** ROLLBACK TO undid the transaction's writes since `savepoint` (the first `writes` stay). */
  private undoWritesSince(savepoint: { name: string; writes: number; firstAfter?: string }): void {
    const since = savepoint.writes;
    const total = this.txnWriteIds.length + this.txnWritesBeyond;
    if (since >= total) return;
    const listed = this.txnWriteIds.slice(since);
    this.auditor.rolledBack(`ROLLBACK TO SAVEPOINT ${savepoint.name} undid these writes`, listed, 'rolled_back_to_savepoint', total - since - listed.length, this.undoneRange(savepoint.firstAfter));
    this.txnWriteIds.length = Math.min(since, this.txnWriteIds.length);
    this.txnWritesBeyond = since - this.txnWriteIds.length;
    // txnLastWriteId stays: a later range through it covers these writes again, which did not stay either.
    savepoint.firstAfter = undefined;
  }

  /**
   * Waits until PostgreSQL has answered everything sent so far (`flush`: asking it to, in the
   * extended protocol), then for the audit events of the transaction's writes: true when every
   * one is durable.
   */
  private async writesDurable(flush: boolean): Promise<boolean> {
    if (this.router.pending.size > 0) await (flush ? this.allAnswered() : this.router.pending.whenEmpty());
    return (await Promise.all(this.txnWrites)).every(Boolean);
  }

  /** A Flush: PostgreSQL sends the answers of what it has run (extended-protocol messages no Sync or Flush asked for yet). */
  private askForAnswers(): void {
    this.toServer(serialize.flush());
    this.router.pending.flushed();
  }

  /** Resolves once PostgreSQL has answered everything sent so far, asking it to when anything is pending. */
  private allAnswered(): Promise<void> {
    if (this.router.pending.size > 0) this.askForAnswers();
    return this.router.pending.whenEmpty();
  }

  /** A simple Query of the proxy's own, answered to the proxy only. */
  /** `lost`: the session gave up on its answer (a deadline, the upstream gone): what it did is not known. */
  private ownQuery(sql: string): Promise<{ status: 'I' | 'T' | 'E'; tag?: string; error?: { frame: Buffer; code: string; message: string }; lost?: string }> {
    return new Promise((resolve) => {
      this.forward(serialize.query(sql), {
        kind: 'query',
        silent: true,
        ...(/^\s*(BEGIN|COMMIT|ROLLBACK)\b/i.test(sql) ? { transaction: true as const } : {}),
        answered: (error, item) =>
          resolve(
            item
              ? { status: this.router.txStatus, ...(item.ownTag ? { tag: item.ownTag } : {}), ...(item.ownErrorFrame ? { error: { frame: item.ownErrorFrame, code: item.ownErrorCode ?? 'XX000', message: item.ownError ?? '' } } : {}) }
              : { status: 'E', lost: error ?? 'no answer' },
          ),
      });
    });
  }

  /**
   * Sends a Query whose writes must not commit before their audit events are durable. `begin`:
   * the proxy opens a block first (the agent's text would have run as one implicit transaction);
   * `commit`: the text's final COMMIT, held back (statement `index` of `hook`). Once PostgreSQL
   * has answered the text the proxy commits, or rolls back when an event could not be recorded,
   * and only then does the client get its ReadyForQuery. Later messages wait until then.
   */
  private guardedQuery(text: string, item: Omit<PendingItem, 'result'>, g: { begin: boolean; commit?: { index: number; hook?: AuditHook; chain?: boolean } }): Promise<void> {
    return new Promise<void>((resolve) => {
      this.guard = { resolve, ...(g.commit?.hook ? { commitHook: g.commit.hook } : {}) };
      const finish = (bytes: Buffer[]): void => {
        if (bytes.length > 0 && !this.ended) this.toClient(Buffer.concat(bytes));
        this.guard = undefined;
        resolve();
      };
      const settle = (status: 'I' | 'T' | 'E') => void this.settle(status, text !== '', g, item.writeErrors, finish);
      // Sent while PostgreSQL skips to Sync (an extended-protocol message before it failed), the
      // Query is discarded unanswered, as PostgreSQL discards it: so is its held-back COMMIT.
      const discarded = () => {
        g.commit?.hook?.skip();
        finish([]);
      };
      if (g.begin) this.forward(serialize.query('BEGIN'), { kind: 'query', silent: true });
      if (text !== '') this.forward(serialize.query(text), { ...item, wrapped: settle, discarded });
      // What is pending may be extended-protocol messages no Sync or Flush asked PostgreSQL to answer yet.
      else void this.allAnswered().then(() => (this.router.pending.skippingToSync ? discarded() : settle(this.router.txStatus)));
    });
  }

  private async settle(
    status: 'I' | 'T' | 'E',
    ran: boolean,
    g: { begin: boolean; commit?: { index: number; hook?: AuditHook; chain?: boolean } },
    writeErrors: WriteErrorScope | undefined,
    finish: (bytes: Buffer[]) => void,
  ): Promise<void> {
    const commit = g.commit;
    // The session is ending: what is open rolls back with it (close() records that).
    if (this.ended) return finish([]);
    if (status === 'E' && ran) {
      // The text failed: PostgreSQL skipped the rest of it, its COMMIT too.
      commit?.hook?.end();
      if (!g.begin) return finish([backend.readyForQuery('E')]);
      // As for an implicit transaction, the text's failure ends the block the proxy opened.
      const answer = await this.ownQuery('ROLLBACK');
      return finish([backend.readyForQuery(answer.status)]);
    }
    if (status === 'T' && !(await this.writesDurable(false))) {
      if (this.ended) return finish([]);
      // Said before the ROLLBACK's answer, which would otherwise tell a plain rollback.
      this.voidWrites(NOT_RECORDED_ROLLED_BACK, 'audit_unavailable');
      const answer = await this.ownQuery('ROLLBACK');
      const error = notRecorded();
      commit?.hook?.result(commit.index, { rows: 0, refused: error });
      commit?.hook?.end();
      return finish([backend.errorResponse(error.toFields()), backend.readyForQuery(answer.status)]);
    }
    if (this.ended) return finish([]);
    if (!commit && !g.begin) return finish([backend.readyForQuery(status)]);
    const answer = await this.ownQuery(commit?.chain ? 'COMMIT AND CHAIN' : 'COMMIT');
    if (answer.lost !== undefined) {
      // Abandoned unanswered (forgetIfCommitUnanswered left its writes' outcome unknown): the
      // agent's COMMIT is recorded as such, neither committed nor rolled back.
      commit?.hook?.result(commit.index, { rows: 0, error: { code: 'upstream_lost', message: `${answer.lost}: the outcome of the COMMIT is unknown` } });
      commit?.hook?.end();
      return finish([]);
    }
    const out: Buffer[] = [];
    if (answer.error) {
      // A deferred constraint or a serialization failure at COMMIT: the agent's to see, reduced like a write's error.
      out.push(sanitizeWriteError(answer.error.frame, writeErrors));
      commit?.hook?.result(commit.index, { rows: 0, error: { code: answer.error.code, message: answer.error.message } });
    } else if (commit) {
      out.push(backend.commandComplete(answer.tag ?? 'COMMIT'));
      commit.hook?.result(commit.index, { rows: 0, tag: answer.tag ?? 'COMMIT' });
    }
    commit?.hook?.end();
    out.push(backend.readyForQuery(answer.status));
    finish(out);
  }

  /**
   * Sync ends the implicit transaction of an extended-protocol batch: a batch that ran a write
   * asks PostgreSQL for its answers first (Flush), and the Sync follows once the events are
   * durable. When one is not, a statement that fails goes first, so the transaction rolls back
   * (an explicit block fails, and cannot commit either).
   */
  private sync(raw: Buffer): Promise<void> | undefined {
    this.extendedBatch = false;
    this.extendedOpen = false;
    const guarded = this.holdsCommits && this.batchWrites && (this.router.txStatus === 'I' || this.batchTxn);
    // A Sync commits the batch's implicit transaction: a deferred constraint's error comes here.
    const item = { kind: 'sync' as const, ...(this.batchWrites ? writeErrorsOf([], this.snap.scope) : {}) };
    this.batchWrites = false;
    this.batchTxn = false;
    if (!guarded) {
      this.forward(raw, item);
      return undefined;
    }
    return this.writesDurable(true).then((durable) => {
      if (this.ended) return;
      if (!durable) {
        this.forward(parseMessage(REFUSED_NAME, REFUSED_SENTINEL), { kind: 'parse', refused: notRecorded() });
        this.voidWrites(NOT_RECORDED_ROLLED_BACK, 'audit_unavailable');
      }
      this.forward(raw, item);
    });
  }

  /**
   * The statements of a Query with each EXECUTE replaced by the statement it runs (under the
   * policy now in force: a reload analyses it again, as for a Bind), and each EXECUTE's arguments
   * as that statement's parameters.
   */
  private executions(statements: AnalyzedStatement[], targets: ReadonlyMap<number, Prepared>, tags: Record<string, string>, outer?: PlanParams): { statements: AnalyzedStatement[]; params: Map<number, PlanParams> } | ProxyError {
    const params = new Map<number, PlanParams>();
    if (targets.size === 0) return { statements, params };
    const out = [...statements];
    for (const [i, found] of targets) {
      const target = this.resume(found, false);
      if (target instanceof ProxyError) return target;
      const executed = executedStatement(statements[i], target, tags);
      if (executed instanceof ProxyError) return executed;
      const values = executeParams(statements[i], target, outer);
      out[i] = this.asBound(executed, values);
      params.set(i, values);
    }
    return { statements: out, params };
  }

  // ---- extended protocol ----

  private parse(message: Extract<FrontendMessage, { type: 'Parse' }>, approvals?: readonly AgentApproval[], removed?: Analysis): void {
    const result = removed ?? this.parseTypesError(message.paramTypes) ?? this.analyze(message.sql, 'extended', approvals);
    const refused: SentStatement = { protocol: 'extended', agentSql: message.sql, statements: [], tags: result.tags, ...(!result.ok && result.kind ? { kind: result.kind } : {}) };
    if (!result.ok) {
      // The refused Parse keeps its statement name: PostgreSQL drops the unnamed statement when a
      // Parse for it fails, as the agent's own would have; a named one it keeps.
      this.refuse('parse', result.error, refused, message.name);
      return;
    }
    const first = result.statements[0];
    const prepared: Prepared = {
      name: message.name,
      sql: result.sql,
      agentSql: message.sql,
      types: message.paramTypes,
      rowLimit: first?.rowLimit,
      reads: first !== undefined && readsRows(first),
      writes: result.statements.some(isWrite),
      targets: result.statements.some(touchesWriteTarget),
      statements: result.statements,
      tags: result.tags,
      held: heldOf(first, message.sql),
      snap: this.snap,
    };
    // A Parse'd PREPARE holds its body under its own name too.
    const beyond = this.preparedLimit([prepared, ...sqlPrepared(result.statements, result.tags, this.snap).values()]);
    if (beyond) {
      this.refuse('parse', beyond, refused, message.name);
      return;
    }
    if (dropsViews(result.statements)) this.views.discarded();
    this.forward(parseMessage(message.name, result.sql, message.paramTypes), {
      kind: 'parse',
      effect: this.state.parse(prepared),
      texts: texts(result.sql, message.sql),
      failedAudit: () => this.auditor.hook({ protocol: 'extended', agentSql: message.sql, statements: result.statements, tags: result.tags }),
      ...(result.statements.some(mayRaiseWriteErrors) ? writeErrorsOf(result.statements, this.snap.scope) : {}),
    });
  }

  private bind(message: Extract<FrontendMessage, { type: 'Bind' }>, found: Prepared | undefined): Promise<void> | undefined {
    if (!found) {
      // The proxy knows every statement the upstream holds for this session, as PostgreSQL confirmed it.
      this.refuse('bind', new ProxyError('prepared_statement_not_found', { message: `prepared statement "${message.statement}" does not exist` }), this.sentOf(undefined));
      return undefined;
    }
    const resumed = this.resume(found, true);
    if (resumed instanceof ProxyError) {
      this.refuse('bind', resumed, this.sentOf(found));
      return undefined;
    }
    const running = this.boundExecute(resumed, message);
    if (running instanceof Promise) return this.after(running, message);
    if (running instanceof ProxyError) {
      this.refuse('bind', running, this.sentOf(resumed));
      return undefined;
    }
    const { params } = running;
    const prepared = this.boundPrepared(running.prepared, params);
    const fetches = fetchCaps(this.state, prepared.statements, declaredCursors(prepared.statements));
    if (fetches instanceof Promise) return this.after(fetches, message);
    if (fetches instanceof ProxyError) {
      this.refuse('bind', fetches, this.sentOf(prepared));
      return undefined;
    }
    if (this.state.full('P', message.portal, this.deps.config.session.portals)) {
      this.refuse('bind', sessionLimit('portals', this.deps.config.session.portals), this.sentOf(prepared));
      return undefined;
    }
    const formats = this.resultFormats(message, prepared);
    // fetchCaps found the cursor a FETCH or MOVE names among the confirmed portals.
    const first = prepared.statements[0];
    const fetchName = first?.nodeType === 'FetchStmt' ? (nodeBody<FetchStmt>(first.stmt).portalname ?? '') : undefined;
    const named = fetchName !== undefined ? this.state.portal(fetchName) : undefined;
    const portal: Portal = {
      ...(fetchName !== undefined ? { fetches: { name: fetchName, cursor: named && !named.wait ? named.value : undefined } } : {}),
      cap: fetches[0] ?? new RowCap(prepared.rowLimit),
      resultFormats: formats,
      writes: prepared.writes,
      targets: prepared.targets,
      prepared,
      // Its own copy of the values: a view would keep the whole chunk they arrived in.
      ...(prepared.held ? { held: { ...prepared.held, statementSql: prepared.sql, params: { ...params, values: params.values.map((v) => (v ? Buffer.from(v) : v)) } } } : {}),
    };
    // What a named portal keeps (its statement, when no name counts it; a held write's parameters) counts against the text budgets.
    const tooLarge = message.portal !== '' ? this.preparedTooLarge(this.state.textOf('P', portal)) : undefined;
    if (tooLarge) {
      this.refuse('bind', tooLarge, this.sentOf(prepared));
      return undefined;
    }
    const send = () => this.forward(this.bindBytes(message, formats), { kind: 'bind', effect: this.state.bind(message.portal, portal) });
    if (!prepared.reads || !this.budgets.limitsScans) {
      send();
      return undefined;
    }
    return this.budgets.scans([prepared.sql], params, this.plannerViews()).then((refused) => {
      if (this.ended) return;
      if (refused) this.refuse('bind', refused, this.sentOf(prepared));
      else send();
    });
  }

  /**
   * The statement as it runs with these values: flagged tenant_forged when a parameter compared
   * with a tenant column names another tenant (the text alone could not say).
   */
  private asBound(statement: AnalyzedStatement, params: PlanParams): AnalyzedStatement {
    if (!statement.tenantParams || statement.flags?.includes('tenant_forged')) return statement;
    if (!forgedParams(statement.tenantParams, params, tenantType(this.snap.scope), this.deps.principal.tenantId)) return statement;
    return { ...statement, flags: [...(statement.flags ?? []), 'tenant_forged'] };
  }

  /** A prepared statement as a Bind runs it (asBound): a copy for the portal when its flags differ. */
  private boundPrepared(prepared: Prepared, params: PlanParams): Prepared {
    const first = prepared.statements[0];
    const bound = first ? this.asBound(first, params) : first;
    return bound === first ? prepared : { ...prepared, statements: [bound!, ...prepared.statements.slice(1)] };
  }

  /**
   * What a Bind's portal runs: the statement, or for a Parse'd `EXECUTE name(...)` the statement
   * the name holds, with the EXECUTE's arguments (and the Bind's values for its $n) as its parameters.
   */
  private boundExecute(found: Prepared, message: Extract<FrontendMessage, { type: 'Bind' }>): { prepared: Prepared; params: PlanParams } | Promise<void> | ProxyError {
    const outer: PlanParams = { types: found.types, values: message.params, formats: message.paramFormats };
    if (found.statements[0]?.nodeType !== 'ExecuteStmt') return { prepared: found, params: outer };
    const targets = executeTargets(this.state, found.statements, new Map());
    if (targets instanceof Promise || targets instanceof ProxyError) return targets;
    const run = this.executions(found.statements, targets, found.tags, outer);
    if (run instanceof ProxyError) return run;
    const executed = run.statements[0];
    return {
      prepared: {
        ...found,
        sql: executed.sql,
        rowLimit: executed.rowLimit,
        reads: readsRows(executed),
        writes: isWrite(executed),
        targets: touchesWriteTarget(executed),
        statements: [executed],
        held: heldOf(executed, found.agentSql),
        executes: targets.get(0),
      },
      params: run.params.get(0) ?? NO_PARAMS,
    };
  }

  /**
   * The Bind to forward: the agent's bytes, unless the statement's capture columns need result
   * formats of their own. A list of one code per column (pgx and JDBC send one) would be short
   * by the columns the proxy appended; they are read as text.
   */
  private bindBytes(message: Extract<FrontendMessage, { type: 'Bind' }>, formats: readonly number[]): Buffer {
    return formats === message.resultFormats ? message.raw : withResultFormats(message, formats);
  }

  /** The result formats forwarded: the agent's, and text for the capture columns when the agent gave one code per column. */
  private resultFormats(message: Extract<FrontendMessage, { type: 'Bind' }>, prepared: Prepared): number[] {
    const width = prepared.statements[0]?.write?.capture?.width ?? 0;
    if (width === 0 || message.resultFormats.length <= 1) return message.resultFormats;
    return [...message.resultFormats, ...new Array<number>(width).fill(0)];
  }

  /** Execute of a portal: the query budget, then for a write the write budget and approval rules; its audit event when it ends. */
  private execute(message: Extract<FrontendMessage, { type: 'Execute' }>, portal: Portal | undefined): Promise<void> | undefined {
    const name = message.portal;
    const sent = this.sentOf(portal?.prepared, portal?.cursor?.declaration);
    if (!portal) {
      this.refuse('execute', new ProxyError('portal_not_found', { message: `portal "${name}" does not exist` }), sent);
      return undefined;
    }
    // PostgreSQL looks a name up again when the portal runs: a portal of FETCH or MOVE runs the
    // portal its cursor's name holds then, one of `EXECUTE p` what p holds then. Either is the one
    // checked at Bind, or the Execute is refused.
    const executes = portal.prepared?.executes;
    const names = !portal.fetches && !executes ? [] : [
      ...(portal.fetches ? [{ now: this.state.portal(portal.fetches.name), bound: portal.fetches.cursor, what: `cursor "${portal.fetches.name}"`, hint: 'Bind the FETCH again after the cursor is declared again.' }] : []),
      ...(executes ? [{ now: this.state.statement(executes.name), bound: executes, what: `prepared statement "${executes.name}"`, hint: 'Bind the portal again after PREPARE or DEALLOCATE of the statement it executes.' }] : []),
    ];
    for (const { now, bound, what, hint } of names) {
      if (now.wait) return this.after(now.wait, message);
      if (now.value !== bound) {
        this.refuse('execute', new ProxyError('statement_not_allowed', { message: `${what} has changed since portal "${name}" was bound`, hint }), sent);
        return undefined;
      }
    }
    // The portal runs the text it was bound with: a reload that changed that text refuses it.
    const removed = portal.prepared && this.resume(portal.prepared.executes ?? portal.prepared, false);
    if (removed instanceof ProxyError) {
      this.refuse('execute', removed, sent);
      return undefined;
    }
    // A Parse'd SQL PREPARE makes its statement when it runs: it is bounded here, as a PREPARE in a Query is.
    const beyond = portal.prepared ? this.preparedLimit([...sqlPrepared(portal.prepared.statements, portal.prepared.tags, portal.prepared.snap).values()]) : undefined;
    if (beyond) {
      this.refuse('execute', beyond, sent);
      return undefined;
    }
    const writes = portal?.writes ?? true;
    const spec = portal?.prepared?.statements[0] ? captureOf(portal.prepared.statements[0], portal.resultFormats) : undefined;
    // A write runs to completion at its first Execute whatever the row limit (PostgreSQL's
    // PORTAL_ONE_RETURNING), and its audit event needs every row it changed and its final tag: so
    // a write's Execute goes without the limit (JDBC sends 1 for executeUpdate, a fetch size for a
    // RETURNING in a transaction), and the agent gets its rows, capped as any, and the tag.
    const raw = writes && portal.prepared && message.maxRows > 0 ? withMaxRows(message.raw, 0) : message.raw;
    const statement = portal.prepared?.statements[0];
    const send = () => {
      // A DISCARD parsed earlier drops the views now, whatever was made since its Parse.
      if (portal.prepared && dropsViews(portal.prepared.statements)) this.views.discarded();
      if (writes && portal.prepared) this.batchWrites = true;
      if (statement && this.unsettles(statement)) this.batchUnsettles = true;
      if (statement?.kind === 'transaction') this.batchTxn = true;
      this.forward(raw, {
        kind: 'execute',
        ...(statement?.kind === 'transaction' ? { transaction: true as const } : {}),
        cap: portal?.cap,
        ...(portal.targets || (statement !== undefined && isCommit(statement)) ? writeErrorsOf(portal.prepared?.statements ?? [], this.snap.scope) : {}),
        ...(spec ? { captures: [spec] } : {}),
        ...explainsOf(statement ? [statement] : [], this.snap.scope),
        ...this.effectsOf(portal.prepared?.statements ?? [], sessionEffects(this.state, portal.prepared?.statements ?? [], declaredCursors(portal.prepared?.statements ?? []), portal.prepared ? sqlPrepared(portal.prepared.statements, portal.prepared.tags, portal.prepared.snap) : undefined)),
        audit: this.auditor.hook(sent, this.trackWrite),
      });
    };
    // A COMMIT waits for the audit events of the transaction's writes; when one could not be
    // recorded the block is rolled back instead and the COMMIT fails.
    if (statement && isCommit(statement) && this.holdsCommits && (this.txnWrites.length > 0 || this.batchWrites)) {
      return this.writesDurable(true).then((durable) => {
        if (this.ended) return;
        if (durable) {
          send();
          return;
        }
        // As a COMMIT that fails in PostgreSQL: the block is rolled back, and the batch fails up to its Sync.
        this.voidWrites(NOT_RECORDED_ROLLED_BACK, 'audit_unavailable');
        void this.ownQuery('ROLLBACK');
        this.refuse('execute', notRecorded(), sent);
      });
    }
    const sync = this.firstRefusal(writes && portal?.prepared !== undefined);
    if (sync) {
      this.refuse('execute', sync, sent);
      return undefined;
    }
    const writeBudget = writes && portal?.prepared !== undefined && this.budgets.limitsWrites;
    if (!this.budgets.limitsQueries && !writeBudget && !portal?.held) {
      send();
      return undefined;
    }
    return (async () => {
      const refused =
        (this.budgets.limitsQueries ? (await this.budgets.query(() => (writes ? 'write' : 'read'))).refused : undefined) ??
        // A held write spends no write budget while it waits: it counts when it runs (app.ts).
        (portal?.held ? await holdForApproval(this.pinned, portal.held, this.inBlock() ? heldInBlock() : undefined) : undefined) ??
        (writeBudget ? await this.budgets.writes(1) : undefined);
      if (this.ended) return;
      if (refused) this.refuse('execute', refused, sent);
      else send();
    })();
  }

  /**
   * Does the statement change a setting the text of captured values depends on (DateStyle,
   * IntervalStyle, TimeZone): SET or RESET of one, RESET ALL, DISCARD, or the end of a
   * transaction that SET LOCAL one? PostgreSQL reports the change at the batch's end only.
   */
  private unsettles(s: AnalyzedStatement): boolean {
    if (s.nodeType === 'DiscardStmt') return true;
    if (s.nodeType === 'VariableSetStmt') {
      const set = nodeBody<{ kind?: string; name?: string; is_local?: boolean }>(s.stmt);
      if (set.kind === 'VAR_RESET_ALL') return true;
      if (!TEXT_SETTINGS.has((set.name ?? '').toLowerCase())) return false;
      if (set.is_local) this.localTextSettings = true;
      return true;
    }
    if (s.nodeType === 'TransactionStmt' && this.localTextSettings) {
      const kind = nodeBody<TransactionStmt>(s.stmt).kind;
      if (kind === 'TRANS_STMT_COMMIT' || kind === 'TRANS_STMT_ROLLBACK' || kind === 'TRANS_STMT_ROLLBACK_TO' || kind === 'TRANS_STMT_PREPARE') {
        if (kind !== 'TRANS_STMT_ROLLBACK_TO') this.localTextSettings = false;
        return true;
      }
    }
    return false;
  }

  /** What an Execute runs, for its audit event: the prepared statement, else a cursor's DECLARE (what the cursor reads). */
  private sentOf(prepared: Prepared | undefined, declaration?: AnalyzedStatement): SentStatement {
    if (prepared) return { protocol: 'extended', agentSql: prepared.agentSql, statements: prepared.statements, tags: prepared.tags };
    if (declaration) return { protocol: 'extended', agentSql: declaration.agentSql ?? declaration.sql, statements: [declaration], tags: {} };
    return { protocol: 'extended', agentSql: '', statements: [], tags: {} };
  }

  // ---- shared ----

  /** Inside a transaction block, or maybe (a BEGIN is on its way): rows and counts seen elsewhere may differ. */
  private inBlock(): boolean {
    return this.router.txStatus !== 'I' || this.blockMaybeOpen;
  }

  /** A refusal decided without I/O: the audit trail cannot take the statement now. */
  private firstRefusal(writes: boolean): ProxyError | undefined {
    if (!this.auditor.unavailable(writes)) return undefined;
    return new ProxyError('audit_unavailable');
  }

  /**
   * Sends upstream what fails exactly as the refused request would have (a parse error, a
   * portal or statement that cannot exist), and has the router put the proxy's error in its place.
   */
  private refuse(kind: 'query' | 'parse' | 'bind' | 'execute', refused: ProxyError, sent: SentStatement, name = ''): void {
    const bytes =
      kind === 'query'
        ? serialize.query(REFUSED_SENTINEL)
        : parseMessage(kind === 'parse' ? name : REFUSED_NAME, REFUSED_SENTINEL);
    const effect = kind === 'parse' ? this.state.refusedParse(name) : undefined;
    this.forward(bytes, { kind, refused, audit: this.auditor.hook(sent), ...(effect ? { effect } : {}) });
  }

  /**
   * The refusal for named statements that would take the session past its bounds: their number
   * (session.max_prepared_statements) or their text (preparedTooLarge).
   */
  private preparedLimit(statements: readonly Prepared[]): ProxyError | undefined {
    const most = this.deps.config.session.statements;
    if (statements.some((p) => this.state.full('S', p.name, most))) return sessionLimit('prepared statements', most);
    return this.preparedTooLarge(namedText(statements));
  }

  /**
   * The refusal when `text` more units (named statements' texts, what named portals keep) would
   * take this session past session.max_prepared_size or the process past max_prepared_size_total.
   */
  private preparedTooLarge(text: number): ProxyError | undefined {
    const { preparedSize, preparedSizeTotal } = this.deps.config.session;
    const full = this.state.textFull(text, preparedSize);
    if (!full) return undefined;
    const mib = (n: number) => `${Math.round((n / (1024 * 1024)) * 10) / 10} MiB`;
    return new ProxyError('session_limit_exceeded', {
      message:
        full === 'session'
          ? `the session's prepared statements and portals would hold more than ${mib(preparedSize)} of text, as much as the proxy allows`
          : `the prepared statements and portals of all sessions would hold more than ${mib(preparedSizeTotal)} of text, as much as the proxy allows`,
      hint: 'Close (DEALLOCATE) prepared statements and portals no longer used, or send a large statement unnamed or as a simple Query.',
    });
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

  /**
   * Pins the snapshot a new statement (Query, Parse) runs under: the session's policy as of now,
   * so a hot reload shows from the next statement on. A refusal when a reload removed the policy.
   */
  private pin(): Analysis | undefined {
    const live = this.deps.current();
    if (live) {
      this.snap = live;
      return undefined;
    }
    this.deps.log.info({ code: 'policy_removed' }, 'statement refused');
    return { ok: false, error: policyRemoved(this.snap.policy.name), tags: {} };
  }

  /**
   * Bind and Execute run under the snapshot their statement was analysed under. After a reload
   * changed the policy, the statement is analysed again and moves to the new snapshot (its
   * upstream text replaced under the same name when it changed); one the new policy refuses is
   * refused with that reason. A reload that removed the policy refuses it too.
   */
  private resume(prepared: Prepared, replace: boolean): Prepared | ProxyError {
    const live = this.deps.current();
    if (!live) {
      this.snap = prepared.snap;
      this.deps.log.info({ code: 'policy_removed' }, 'statement refused');
      return policyRemoved(prepared.snap.policy.name);
    }
    if (live.scopeKey === prepared.snap.scopeKey && !prepared.orphan) {
      this.snap = prepared.snap;
      return prepared;
    }
    this.snap = live;
    const again = this.reanalyze(prepared);
    if (again.ok && ((again.sql === prepared.sql && !prepared.orphan) || replace)) {
      // The rules around it (row cap, approvals, budgets) are the new policy's.
      const first = again.statements[0];
      const next: Prepared = {
        ...prepared,
        sql: again.sql,
        snap: live,
        statements: again.statements,
        rowLimit: first?.rowLimit,
        reads: first !== undefined && readsRows(first),
        writes: again.statements.some(isWrite),
        targets: again.statements.some(touchesWriteTarget),
        held: heldOf(first, prepared.agentSql),
      };
      if (again.sql === prepared.sql && !prepared.orphan) {
        Object.assign(prepared, next);
        return prepared;
      }
      // The text changed (a new row cap, a new mask): the upstream statement is replaced under the
      // same name, and the client, which knows nothing of it, sees only its own Bind's answer. The
      // proxy's record changes when PostgreSQL confirms; the Bind that follows in this batch runs
      // only if both succeed. If the new text fails upstream, the name is kept as an orphan, parsed
      // again at its next Bind.
      if (!prepared.orphan) this.forward(serialize.close({ type: 'S', name: prepared.name }), { kind: 'close', silent: true, effect: this.state.close('S', prepared.name) });
      const orphan: Prepared = { ...next, orphan: true };
      const effect = this.state.reparse(next, orphan);
      this.forward(parseMessage(prepared.name, again.sql, prepared.types), { kind: 'parse', silent: true, effect });
      return next;
    }
    // The statement is refused under the policy now in force: the agent gets the reason.
    this.snap = prepared.snap;
    return again.ok ? new ProxyError('prepared_statement_outdated') : again.error;
  }

  /** A prepared statement's text analysed again; for a SQL PREPARE, its body as the PREPARE gives it now. */
  private reanalyze(prepared: Prepared): Analysis {
    const again = this.analyze(prepared.agentSql, 'extended');
    if (!again.ok || !prepared.sqlPrepare) return again;
    const body = again.statements[0]?.body;
    if (!body) return { ok: false, error: new ProxyError('prepared_statement_outdated'), tags: again.tags };
    return { ok: true, sql: body.sql, statements: [body], tags: again.tags };
  }

  /** A refusal when Parse declares a parameter type the policy's catalog does not allow. */
  private parseTypesError(types: readonly number[]): Analysis | undefined {
    if (types.length === 0) return undefined;
    try {
      checkParameterTypes(types, this.snap.scope.catalog.parameterTypes);
      return undefined;
    } catch (err) {
      const error = toProxyError(err);
      this.deps.log.info({ code: error.code, protocol: 'extended' }, 'statement refused');
      return { ok: false, error, tags: {} };
    }
  }

  private analyze(sql: string, protocol: 'simple' | 'extended', approvals?: readonly AgentApproval[]): Analysis {
    const { cache, principal } = this.deps;
    const { policy, scope, scopeKey } = this.snap;
    const views = this.views.ready(scope);
    const context: AnalysisContext = {
      protocol,
      statementTimeoutMaxMs: policy.statementTimeoutMs,
      ...(policy.raw.idle_in_transaction_timeout_ms !== undefined ? { idleInTransactionMaxMs: policy.raw.idle_in_transaction_timeout_ms } : {}),
      writeGate: (target) => policy.isWriteAllowed(target),
      scope,
      principal,
      barrierViews: views,
    };
    const run = (ctx: AnalysisContext): Analysis => {
      const first = analyze(sql, ctx);
      // A write held for approval runs later on another connection, which has no session views;
      // the statements after a DISCARD in the same text run once the views are gone.
      if (views && first.ok && (first.statements.some((s) => s.write?.approval) || (first.statements.length > 1 && dropsViews(first.statements)))) return analyze(sql, { ...ctx, barrierViews: false });
      return first;
    };
    // The rewrite names the principal (current_user, pg_roles, the database it connected to): a
    // cached analysis is another principal's only with the same tenant, user name and database.
    const who = `${principal.tenantId}\u0001${principal.user}\u0001${principal.database ?? ''}`;
    const prefix = StatementCache.key(scopeKey, who, views ? `${protocol}+views` : protocol, '');
    const key = prefix + sql;
    let result: Analysis;
    const started = performance.now();
    if (approvals) result = run({ ...context, approvals });
    else if (protocol === 'extended') result = cache.get(key, () => run(context));
    // A simple Query: the same text again, else the same shape with new literals (analysis/shapes.ts).
    else result = cache.lookup(key) ?? cache.shapes.analyze(sql, prefix, scope ? tenantColumnNames(scope) : new Set(), (onParsed) => cache.get(key, () => run({ ...context, onParsed })));
    const ms = performance.now() - started;
    this.deps.metrics?.analysis(ms / 1000);
    // A costly analysis holds the tenant's next statement back as long (analysis-turns.ts).
    analysisTurns.charge(principal.tenantId, ms);
    if (!result.ok) this.deps.log.info({ code: result.error.code, protocol }, 'statement refused');
    return result;
  }

  /** The views the planner needs to plan this session's statements as the session runs them. */
  private plannerViews() {
    return this.views.ready(this.snap.scope) ? barrierViewsOf(this.snap.scope, this.deps.principal) : [];
  }

  private forward(bytes: Buffer, item: Omit<PendingItem, 'result'>): void {
    // Every simple Query, refused ones included, replaces the unnamed statement and portal.
    if (item.kind === 'query') item.effect = this.state.query();
    if (item.kind === 'sync' && this.batchUnsettles) {
      item.unsettles = true;
      this.batchUnsettles = false;
    }
    this.router.pending.push(item);
    if (item.kind === 'query' || item.kind === 'sync') {
      this.state.endBatch();
      this.deadline.arm();
    } else if (item.kind === 'execute') {
      // PostgreSQL runs an Execute as it arrives, Sync or not (StatementDeadline asks for its answer).
      this.deadline.arm();
    }
    this.toServer(bytes);
  }

  private toServer(bytes: Buffer): void {
    if (this.batching) this.upstreamBatch.add(bytes);
    else this.server.write(bytes);
  }

  /** Writes what the pump batched; later writes go out at once until the pump batches again. */
  private flushUpstream(): void {
    this.batching = false;
    const bytes = this.upstreamBatch.take();
    // A socket already destroyed would have dropped corked bytes the same way.
    if (bytes && !this.server.destroyed) this.server.write(bytes);
  }

  // ---- upstream → client ----

  private onUpstreamData(chunk: Buffer): void {
    if (this.closed || this.unreadable) return;
    let frames: BackendFrame[];
    try {
      frames = this.deps.upstream.framer.push(chunk);
    } catch (err) {
      // Nothing after a message that cannot be read can be: the session ends, and what it was
      // waiting for has an unknown outcome.
      this.unreadable = true;
      this.deps.log.error({ err: toProxyError(err).logMessage ?? (err as Error).message }, 'invalid data from upstream');
      this.fatal(new ProxyError('upstream_lost'));
      this.abandonDrain('the database sent a message the proxy cannot read');
      return;
    }
    this.relay(frames);
    this.relayed += chunk.length;
    if (this.relayed >= RELAY_TURN_BYTES) this.yieldRelay();
  }

  /** Lets every other session run before more of this one's answers are read (RELAY_TURN_BYTES). */
  private yieldRelay(): void {
    this.relayed = 0;
    if (this.yielding) return;
    this.yielding = true;
    this.server.pause();
    setImmediate(() => {
      this.yielding = false;
      // Not while the client's output is full: its 'drain' resumes the upstream.
      if (!this.closed && (this.draining || this.clientClosed || !this.client.writableNeedDrain)) this.server.resume();
    });
  }

  /**
   * Writes commit only once PostgreSQL has answered them (and their events are recorded): with
   * durable audit writes, and in a tool-door session, whose result budget can end the session
   * while a write's rows arrive; its write must then roll back, not commit unreported.
   */
  private get holdsCommits(): boolean {
    return this.auditor.durableWrites || this.resultLimit !== undefined;
  }

  /** A tool-door session's result budget per statement (tools.max_result_bytes); undefined for agents on the wire, whose rows stream. */
  private get resultLimit(): number | undefined {
    return this.deps.principal.connection !== undefined ? this.deps.config.raw.tools.max_result_bytes : undefined;
  }

  private resultBytes = 0;
  /** The database sent a message the framer could not read: nothing after it is. */
  private unreadable = false;
  /** The code of the FATAL error the proxy ended the session with, for its disconnect event. */
  private endedWith?: string;

  private relay(frames: BackendFrame[]): void {
    const out = new ByteBatch();
    const send = () => {
      const bytes = out.take();
      if (bytes) this.toClient(bytes);
    };
    const limit = this.resultLimit;
    try {
      for (const frame of frames) {
        if (frame.oversized) {
          send();
          this.tooLarge(frame);
          // An error PostgreSQL answered with still ends its statement (and its event): read as a
          // 54000 of the proxy's, its own fields unread. A notice changes nothing; a row was never sent.
          if (frame.code === 'E') {
            const raw = backend.errorResponse({ severity: 'ERROR', code: '54000', message: `the database answered with an error message of ${frame.length + 1} bytes, too large to read` });
            this.router.route({ code: 'E', length: raw.length - 1, raw });
          }
          continue;
        }
        if (frame.piece === 'first' && this.router.needsWhole(frame)) {
          // The last frame of its push: the framer holds the row and gives it whole later.
          this.deps.upstream.framer.assembleCurrent();
          continue;
        }
        if (limit !== undefined && !this.ended && frame.piece !== 'more') {
          // The tool engine holds a whole result in memory: past the budget the call ends here.
          // The frames still arriving are routed (their answers complete the audit events; the
          // client gets none of them).
          if (frame.code === 'D' && (this.resultBytes += frame.length) > limit) {
            send();
            this.fatal(new ProxyError('result_too_large', { message: `the result exceeds ${limit} bytes` }));
          }
          if (frame.code === 'Z') this.resultBytes = 0;
        }
        const bytes = this.router.route(frame);
        const gate = this.router.takeGate();
        if (gate) {
          // What came before goes out now; this frame and everything after wait for the gate.
          send();
          const previous = this.output ?? Promise.resolve();
          this.output = previous.then(() => gate);
        }
        if (bytes) out.add(bytes);
      }
    } catch (err) {
      const error = toProxyError(err);
      this.deps.log.error({ err: error.logMessage ?? error.message }, 'session failed on upstream data');
      send();
      this.fatal(error);
      return;
    }
    send();
    if (this.draining && this.router.pending.size === 0) this.endDrained();
    else if (this.stopping) this.stopIfIdle();
  }

  /**
   * A message from the database past max_message_size (a row with a value of hundreds of
   * megabytes): its bytes are skipped, never held, and the session ends with the reason, as it
   * cannot go on with an answer the client did not get. The statement is cancelled; its event
   * records what PostgreSQL did, with the rows the client received.
   */
  private tooLarge(frame: BackendFrame): void {
    if (this.ended) return;
    const limit = this.deps.config.maxMessageSize;
    this.deps.log.warn({ code: frame.code, bytes: frame.length + 1, limit }, 'message from the database past max_message_size: session ended');
    this.fatal(
      new ProxyError('result_too_large', {
        message:
          frame.code === 'D'
            ? `a row of the result is ${frame.length + 1} bytes; one message from the database may be at most ${limit} bytes`
            : `a message from the database is ${frame.length + 1} bytes; one message may be at most ${limit} bytes`,
        hint: 'The statement was cancelled and the session ended; reconnect and ask for smaller values in each row: left(col, 1000), length(col) or a part of an array or JSON value instead of the whole.',
      }),
    );
  }

  /** In order, behind any write whose audit event is still being made durable. */
  private toClient(bytes: Buffer): void {
    // The client is gone; answers still arriving only complete their audit events.
    if (this.draining || this.clientClosed) return;
    if (!this.output) {
      if (!this.client.write(bytes)) this.server.pause();
      return;
    }
    this.output = this.output.then(() => {
      if (!this.client.destroyed && !this.clientClosed && !this.draining && !this.client.write(bytes)) this.server.pause();
    });
  }

  // ---- endings ----

  private terminate(): void {
    this.terminating = true;
    this.client.end();
    // What was sent before Terminate runs to its end in PostgreSQL; its answers complete the events.
    this.release(false);
  }

  /** Sends a FATAL error to the client and ends the session. */
  private fatal(error: ProxyError): void {
    if (this.ended) return;
    this.endedWith = error.code;
    const fields = { ...error.toFields(), severity: 'FATAL' };
    if (this.router.rowHalfSent) {
      // The client is in the middle of a row relayed in pieces: an ErrorResponse now would be
      // read as the row's bytes. The connection closes without one; the log has the reason.
      this.deps.log.warn({ code: error.code }, 'session ended in the middle of a row: closed without an error message');
      this.client.end();
    } else this.client.end(backend.errorResponse(fields));
    this.release();
  }

  private onClientClose(): void {
    if (this.ended) return;
    // PostgreSQL runs the messages it had received before the connection closed, in order: so
    // does the proxy, with what its pump still holds (their answers go nowhere; their events are
    // recorded). The session is released once the pump has handled them.
    if (this.pumping || this.inbox.length > 0) {
      this.clientClosed = true;
      this.router.delivering = false;
      // Answers no longer wait for the client to read (toClient paused the upstream for it).
      this.server.resume();
      return;
    }
    this.release();
  }

  private onUpstreamClose(): void {
    if (this.closed) return;
    if (this.draining) {
      this.abandonDrain('the connection to the database was lost before it answered');
      return;
    }
    if (this.terminating) return;
    this.deps.log.warn('upstream connection lost');
    this.fatal(new ProxyError('upstream_lost'));
  }

  /**
   * The client is gone (or is being sent away). What was already sent upstream may be running and
   * may commit: PostgreSQL is asked to cancel it (unless the client ended the session itself), and
   * its answers are still read, so that every statement gets the event of what really happened
   * (I7). The upstream session ends once nothing is pending, or after twice the deadline margin,
   * when what is still unanswered is recorded as of unknown outcome.
   */
  private release(cancel = true): void {
    if (this.router.pending.size === 0) {
      this.flushUpstream();
      if (!this.server.destroyed) this.server.end(serialize.end());
      this.close();
      return;
    }
    this.draining = true;
    this.router.delivering = false;
    // The answers complete the audit events; the client no longer reads them (toClient may have
    // paused the upstream while its output was full).
    this.server.resume();
    // Extended-protocol messages sent without a Sync or Flush have run, or are running, but
    // PostgreSQL keeps their answers until asked: a Flush asks, and changes nothing else (a
    // COMMIT among them has committed; an implicit transaction stays open until the Terminate).
    this.flushUpstream();
    if (!this.server.destroyed) {
      this.server.write(serialize.flush());
      this.router.pending.flushed();
    }
    if (cancel) this.cancel();
    this.drainTimer = setTimeout(() => this.abandonDrain('the session ended before the database answered'), 2 * this.deps.config.session.deadlineMarginMs);
    this.drainTimer.unref();
  }

  private endDrained(): void {
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.flushUpstream();
    if (!this.server.destroyed) this.server.end(serialize.end());
    this.close();
  }

  private abandonDrain(why: string): void {
    if (this.closed) return;
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.forgetIfCommitUnanswered();
    this.router.abandon(new ProxyError('upstream_lost', { message: `${why}: the outcome of the statement is unknown` }), 'error');
    this.server.destroy();
    this.close();
  }

  /**
   * What is still unanswered may have committed the transaction's writes (a COMMIT; outside a
   * block, a Sync or the end of a Query): their outcome is unknown then, not rolled back.
   */
  private forgetIfCommitUnanswered(): void {
    const idle = this.router.txStatus === 'I';
    if (this.router.pending.some((item) => item.transaction === true || (idle && (item.kind === 'sync' || item.kind === 'query')))) this.forgetTxnWrites();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.state.dispose();
    // Writes of a transaction still open (answered, not committed) roll back with the session: an
    // explicit block, or the implicit one of extended-protocol messages that no Sync ended.
    if (this.txnWriteIds.length > 0 && this.router.pending.size === 0) {
      this.voidWrites('the session ended inside the transaction of a write: it was rolled back', 'session_ended');
    }
    this.guard?.commitHook?.end();
    this.guard?.resolve();
    this.guard = undefined;
    this.deadline.stop();
    // Why the proxy ended the session, when it did (the client's own Terminate or close has no code).
    this.auditor.connection('disconnect', this.endedWith ? { code: this.endedWith } : {});
    this.deps.onClose();
  }
}


const NOT_RECORDED_ROLLED_BACK = 'the audit event of a write could not be recorded: its transaction was rolled back';

/** A write whose audit event could not be made durable does not commit. */
function notRecorded(): ProxyError {
  return new ProxyError('audit_unavailable', {
    message: 'the audit event of a write could not be recorded: the transaction was not committed',
  });
}

/** The text named statements hold (the unnamed one is replaced by the next, and not counted). */
function namedText(prepared: Iterable<Prepared>): number {
  let units = 0;
  for (const p of prepared) if (p.name !== '') units += preparedText(p);
  return units;
}

function sessionLimit(what: string, limit: number): ProxyError {
  return new ProxyError('session_limit_exceeded', { message: `the session holds ${limit} ${what}, as many as the proxy allows` });
}

function policyRemoved(name: string): ProxyError {
  return new ProxyError('policy_removed', { logMessage: `policy ${name} was removed by a reload` });
}

/**
 * A held write runs later, on its own, after approval: inside the agent's transaction its rows
 * (and the count that decides whether it is held) could depend on changes not yet committed.
 */
function heldInBlock(): ProxyError {
  return new ProxyError('statement_not_allowed', {
    message: 'a write that needs approval cannot be sent inside a transaction block',
    hint: 'Commit or roll back first, then send the write on its own.',
  });
}

/** The settings a captured value's text depends on (auditing.ts records them), as SET names them. */
const TEXT_SETTINGS = new Set(CAPTURE_SETTINGS.map((s) => s.toLowerCase()));
