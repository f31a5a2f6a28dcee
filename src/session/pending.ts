// The FIFO of requests forwarded upstream whose responses have not all arrived yet.
//
// Each item says which upstream message completes it, so that responses can be
// attributed to the statement that caused them: error substitution for refused
// statements, row caps per result, and the outcome of each statement for its audit event.
import type { ProxyError } from '../errors/catalogue';
import type { CaptureSpec } from '../results/capture-columns';
import type { WriteErrorScope } from '../results/write-errors';
import type { RowCap } from '../results/row-cap';
import type { Effect } from './state';

export type PendingKind = 'query' | 'parse' | 'bind' | 'describe' | 'execute' | 'close' | 'sync';

export interface PendingItem {
  kind: PendingKind;
  /** query and execute: a transaction statement (BEGIN, COMMIT, ROLLBACK, …) is among what it runs. */
  transaction?: true;
  /** Set when the proxy refused the request: the upstream error is replaced by this one. */
  refused?: ProxyError;
  /** query: the row limit of each statement, in order; execute: the portal's cap. */
  rowLimits?: Array<number | undefined>;
  /** query: a cap of its own for a statement (a FETCH shares its cursor's), before rowLimits. */
  caps?: Array<RowCap | undefined>;
  cap?: RowCap;
  /** query and parse: the text sent upstream and the agent's, when they differ (error positions are moved). */
  texts?: { sent: string; agent: string };
  /**
   * Set on what may raise a write's errors (a write, a COMMIT, the Sync that ends a batch of
   * writes): those errors are reduced to what it may name (results/write-errors.ts).
   */
  writeErrors?: WriteErrorScope;
  /** Per statement (query) or for the statement (execute, describe): the write capture columns to cut off. */
  captures?: Array<CaptureSpec | undefined>;
  /**
   * A query or sync whose batch changes DateStyle, IntervalStyle or TimeZone: PostgreSQL reports
   * the new values just before its ReadyForQuery, so values captured before then may be written
   * under settings the proxy does not know yet (auditing.ts).
   */
  unsettles?: true;
  /** Per statement (query) or for the statement (execute): an EXPLAIN's hidden index names (results/explain.ts). */
  explains?: Array<((text: string) => string) | undefined>;
  /** Sent by the proxy on its own (a re-Parse after a reload, a Query making the barrier views): its answer is not the client's. */
  silent?: boolean;
  /** A silent Query's error message, kept until its ReadyForQuery. */
  ownError?: string;
  /** A silent Query was answered: with the error message when it failed, and the item (its tag and error frame). */
  answered?: (error: string | undefined, item?: PendingItem) => void;
  /** A silent Query's CommandComplete tag. */
  ownTag?: string;
  /** A silent Query's ErrorResponse as PostgreSQL sent it (a COMMIT's error reaches the client), and its SQLSTATE. */
  ownErrorFrame?: Buffer;
  ownErrorCode?: string;
  /**
   * query: the proxy opened a transaction block around it (an autocommit write: its COMMIT
   * follows the durable audit events). Its ReadyForQuery is not the client's: this is told the
   * status instead, and the session answers the client once it has committed or rolled back.
   */
  wrapped?: (status: 'I' | 'T' | 'E') => void;
  /**
   * Told when PostgreSQL discards the item unanswered: it was sent while the upstream skipped to
   * Sync after an extended-protocol error (a Query too is discarded then).
   */
  discarded?: () => void;
  /** Told how each statement of the item ended (query: one per statement; parse, bind, execute: one). */
  audit?: AuditHook;
  /**
   * parse: the hook that records the statement's failure when PostgreSQL refuses the Parse and
   * no Execute of the batch reports it (a Parse and Sync alone, or a Bind and Execute sent after
   * the error): made only then.
   */
  failedAudit?: () => AuditHook | undefined;
  /** The change to the session's statements and portals this message makes once PostgreSQL has run it. */
  effect?: Effect;
  /** query: per statement, execute: for its statement, the change a DEALLOCATE, CLOSE or DISCARD makes when it completes. */
  effects?: Array<Effect | undefined>;
  /** query: index of the statement whose result is arriving. */
  result: number;
}

/** How one statement ended, as the upstream's answers show it. */
export interface StatementOutcome {
  /** CommandComplete's tag ('' for an empty query, 'SUSPENDED' for a portal that stopped at its row limit). */
  tag?: string;
  /** DataRows the client received. */
  rows: number;
  /** The database's error (SQLSTATE and message). */
  error?: { code: string; message: string };
  /** The proxy's refusal, sent instead of the upstream's error. */
  refused?: ProxyError;
  /** What the write capture columns held (results/capture-columns.ts). */
  captured?: CaptureSpec;
}

export interface AuditHook {
  /**
   * Statement `index` of the item ended. A returned promise holds everything the client
   * receives from then on until it settles (a write's event is made durable first).
   */
  result(index: number, outcome: StatementOutcome): Promise<void> | void;
  /** The item is done: statements not reported did not run. */
  end(): void;
  /** The item was skipped with its batch after an earlier error: no event (the error's own event covers it). */
  skip(): void;
}

export class PendingQueue {
  /** Answered items are cleared from their slot at once: they hold statement texts and trees. */
  private items: Array<PendingItem | undefined> = [];
  private head = 0;
  /** After an extended-protocol error the upstream discards everything up to Sync. */
  private skipping = false;
  /** When the upstream started on the head item (performance.now()), or last finished a statement of it. */
  private headSince = 0;
  /** Items pushed, and the count as of the last request that makes PostgreSQL answer (Sync, Query, Flush). */
  private pushed = 0;
  private answerable = 0;
  /** When the last Execute was pushed (sent upstream): what PostgreSQL may be running since. */
  private lastExecuteAt = 0;
  private shifted = 0;
  /** A Parse's failure waiting for the batch's Sync to be recorded (skipToSync). */
  private orphan: { failure: StatementOutcome; own: () => AuditHook | undefined } | undefined;
  /** whenEmpty() callers. */
  private emptyWaiters: Array<() => void> = [];

  /** Resolves once nothing is pending (every request sent so far has been answered, or the session ended). */
  whenEmpty(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.emptyWaiters.push(resolve));
  }

  private settleEmpty(): void {
    if (this.size > 0 || this.emptyWaiters.length === 0) return;
    const waiters = this.emptyWaiters;
    this.emptyWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /**
   * Queues a request; one sent while the upstream skips to Sync is answered by nothing, and false
   * is returned. The item itself is queued (made for this one request), not a copy of it.
   */
  push(item: Omit<PendingItem, 'result'>): boolean {
    if (item.kind === 'sync') {
      this.skipping = false;
      this.reportOrphan();
    } else if (this.skipping) {
      skipEffects(item);
      item.discarded?.();
      return false;
    }
    const now = performance.now();
    if (item.kind === 'execute') this.lastExecuteAt = now;
    if (this.size === 0) this.headSince = now;
    const queued = item as PendingItem;
    queued.result = 0;
    this.items.push(queued);
    this.pushed++;
    if (item.kind === 'sync' || item.kind === 'query') this.asked(now);
    return true;
  }

  /**
   * PostgreSQL is asked to answer everything sent so far. A head it had not been asked to answer
   * may have waited on the client, not on the server (a batch whose Sync came late, or whose later
   * Execute did): its time runs from `since`, no earlier than the head's own. A Sync or Query asks
   * now; a Flush asks for what PostgreSQL may have been running since the last Execute.
   */
  private asked(since: number): void {
    if (this.unasked()) this.headSince = Math.max(this.headSince, since);
    this.answerable = this.pushed;
  }

  /** Requests are pending that PostgreSQL has not been asked to answer (no Sync, Query or Flush behind them). */
  unasked(): boolean {
    return this.size > 0 && this.shifted >= this.answerable;
  }

  /** A Flush went upstream: PostgreSQL answers everything sent so far. */
  flushed(): void {
    this.asked(this.lastExecuteAt);
  }

  /** A statement of the head item ended: the next one has the full time again. */
  progressed(): void {
    this.headSince = performance.now();
  }

  /**
   * How long PostgreSQL has been working on the head item without finishing a statement of it,
   * in ms; undefined when nothing is pending or PostgreSQL has not been asked to answer yet
   * (messages before a Sync or Flush may wait on the client, not on the server).
   */
  busyFor(now: number): number | undefined {
    if (this.size === 0 || this.shifted >= this.answerable) return undefined;
    return now - this.headSince;
  }

  /** Every pending item, oldest first, leaving the queue empty (the session is ending). */
  drain(): PendingItem[] {
    this.reportOrphan();
    const rest = this.items.slice(this.head) as PendingItem[];
    this.items = [];
    this.head = 0;
    this.shifted = this.pushed;
    this.settleEmpty();
    return rest;
  }

  peek(): PendingItem | undefined {
    return this.items[this.head];
  }

  shift(): PendingItem | undefined {
    const item = this.items[this.head];
    if (item === undefined) return undefined;
    this.items[this.head] = undefined;
    this.head++;
    this.shifted++;
    this.headSince = performance.now();
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    this.settleEmpty();
    return item;
  }

  /**
   * The upstream reported an error for an extended-protocol message: drop what it will skip.
   * `failure` is an error no event has reported yet (one at Parse or Bind of an allowed
   * statement): the first skipped item with an audit hook (its Execute) reports it.
   */
  skipToSync(failure?: StatementOutcome, own?: () => AuditHook | undefined): void {
    while (this.head < this.items.length && this.items[this.head]!.kind !== 'sync') {
      this.shifted++;
      const item = this.items[this.head]!;
      this.items[this.head++] = undefined;
      const audit = item.audit;
      skipEffects(item);
      item.discarded?.();
      if (audit && failure) {
        void audit.result(0, failure);
        audit.end();
        failure = undefined;
      } else audit?.skip();
    }
    if (failure && own) {
      // No Execute of the batch took the failure: the Parse's own event, at the batch's Sync (what
      // is sent before it is discarded, an Execute of this statement included).
      this.orphan = { failure, own };
      if (this.head < this.items.length) this.reportOrphan();
    }
    if (this.head >= this.items.length) this.skipping = true;
    this.settleEmpty();
  }

  /** A Parse's failure that no Execute reported: its own event. */
  private reportOrphan(): void {
    const orphan = this.orphan;
    if (!orphan) return;
    this.orphan = undefined;
    const hook = orphan.own();
    if (!hook) return;
    void hook.result(0, orphan.failure);
    hook.end();
  }

  get size(): number {
    return this.items.length - this.head;
  }

  /** The upstream discards what it is sent until a Sync (an extended-protocol message failed). */
  get skippingToSync(): boolean {
    return this.skipping;
  }

  /** Whether an item still pending passes `test`. */
  some(test: (item: PendingItem) => boolean): boolean {
    for (let i = this.head; i < this.items.length; i++) if (test(this.items[i] as PendingItem)) return true;
    return false;
  }
}

/** The item did not run (or no longer can): none of its changes applies. */
export function skipEffects(item: Pick<PendingItem, 'effect' | 'effects'>): void {
  item.effect?.skipped();
  for (const e of item.effects ?? []) e?.skipped();
}
