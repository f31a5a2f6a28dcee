// The proxy's own deadline on the statement PostgreSQL is running: the policy's timeout plus a margin, then a cancel, then the session ends.
//
// PostgreSQL checks statement_timeout only where it checks for interrupts, which planning may not
// do for a long time (a chain of a few hundred CTEs plans for seconds to minutes under a 3 s
// timeout, and a cancel request waits just the same). One timer per session, armed only while
// requests are pending, measures how long the head of the queue has been running.
import { ProxyError } from '../errors/catalogue';
import type { Logger } from '../log';
import type { PendingItem, PendingQueue } from './pending';

export interface DeadlineDeps {
  pending: PendingQueue;
  /** The policy's statement_timeout in ms as of now; 0 or undefined: no deadline. */
  limitMs: () => number | undefined;
  marginMs: number;
  /** Asks PostgreSQL to cancel what it runs (a CancelRequest). */
  cancel: () => void;
  /** Asks PostgreSQL for the answers of what it has run (a Flush: it changes nothing else). */
  flush: () => void;
  /** The statement did not stop when cancelled: the session ends with this error. */
  expire: (error: ProxyError) => void;
  log: Logger;
}

export class StatementDeadline {
  private timer?: NodeJS.Timeout;
  /** The request PostgreSQL was asked to cancel. */
  private cancelled?: PendingItem;
  private stopped = false;

  constructor(private readonly deps: DeadlineDeps) {}

  /** A request went upstream that PostgreSQL runs (Execute) or answers (Sync, Query, Flush): make sure the timer runs. */
  arm(): void {
    const limit = this.deps.limitMs();
    if (this.timer || !limit || this.stopped) return;
    this.schedule(limit + this.deps.marginMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => this.check(), ms);
    this.timer.unref();
  }

  private check(): void {
    this.timer = undefined;
    const { pending, marginMs, log } = this.deps;
    const limit = this.deps.limitMs();
    const busy = pending.busyFor(performance.now());
    if (this.stopped || !limit) return;
    if (busy === undefined) {
      // An Execute with no Sync or Flush behind it: PostgreSQL has run it, or runs it still (and
      // may be stuck sending rows a client does not read), and keeps its answer until asked. A
      // Flush asks; answered, it is gone from the queue, otherwise the time runs from the last
      // Execute sent before it (PendingQueue.flushed), which PostgreSQL may have been running since.
      if (pending.unasked()) {
        this.deps.flush();
        this.schedule(marginMs);
      }
      return;
    }
    const head = pending.peek();
    const due = limit + (this.cancelled === head ? 2 : 1) * marginMs;
    if (busy < due) return this.schedule(due - busy);
    if (this.cancelled !== head) {
      this.cancelled = head;
      log.warn({ ms: Math.round(busy) }, 'statement past its deadline: cancelling it upstream');
      this.deps.cancel();
      return this.schedule(marginMs);
    }
    log.warn({ ms: Math.round(busy) }, 'statement past its deadline did not stop: ending the session');
    this.deps.expire(
      new ProxyError('statement_deadline_exceeded', {
        message: `the statement ran for more than ${Math.round(busy / 1000)} s, past the policy's statement_timeout of ${limit} ms, and did not stop when cancelled`,
      }),
    );
  }
}
