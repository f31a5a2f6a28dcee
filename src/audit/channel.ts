// Delivery to one sink: its own ordered queue, one batch in flight, retries with backoff until the sink takes it.
//
// Group commit: a batch that nobody waits for (read events; writes under write_guarantee: async)
// is held until its oldest event is `windowMs` old, so that one write and one fsync carry the
// events of many statements. An event someone waits for (durable(), whenIdle(), shutdown) ends
// the wait at once, so a write's acknowledgement is never delayed by the window.
//
// Deferred fsync (sinks with sync(), i.e. files): a batch nobody waits for is written at once but
// fsynced with a later one, due `syncIntervalMs` after the first of them was written. A batch
// someone waits for is written and fsynced at once, which persists everything before it too. The
// events of a written batch count as persisted only once fsynced: durable() on one asks for the
// fsync now. A failed write or fsync leaves the sink at its last persisted batch, and everything
// after it is written again.
import type { Logger } from '../log';
import type { AuditEvent } from './event';
import { backoffDelay, errorSummary, type AuditSink } from './sink';

/** One emitted event, shared by the channels of every sink until each has persisted it. */
export interface Entry {
  readonly event: AuditEvent;
  /** The channels that still have to persist the event. */
  readonly pending: Set<SinkChannel>;
  state: 'queued' | 'delivered' | 'dropped';
  dropReason?: 'queue_full' | 'closed';
  /** durable() callers waiting for the event. */
  waiters: Array<{ resolve(): void; reject(err: Error): void }>;
  /** When it was queued (performance.now()): a batch nobody waits for is held until its oldest is windowMs old. */
  readonly at: number;
}

/** What the channel tells the log. */
export interface ChannelHooks {
  delivered(channel: SinkChannel, entries: readonly Entry[]): void;
  down(channel: SinkChannel): void;
}

export interface ChannelOptions {
  batchSize: number;
  minRetryMs: number;
  maxRetryMs: number;
  /** Group commit: how long a batch nobody waits for may be held for more events. 0: written at once. */
  windowMs: number;
  /** Sinks with sync(): how long a written batch nobody waits for may go unsynced. 0: every batch is fsynced as it is written. */
  syncIntervalMs: number;
  /**
   * Written events that may wait for their fsync at once: they still count against the log's
   * queue bound and each session's share, so a burst fsyncs before it could fill either.
   */
  maxUnsynced: number;
  log: Logger;
}

export class SinkChannel {
  /** Events not yet written by this sink, oldest first; the head batch is the one in flight. */
  queue: Entry[] = [];
  /** Events written but not yet persisted (fsync deferred), oldest first; they precede the queue. */
  unsynced: Entry[] = [];
  /** When the first of `unsynced` was written (performance.now()). */
  private unsyncedSince = 0;
  /** False until the sink has opened, and while its writes fail. */
  up: boolean;
  /** The last attempt failed (not merely "not opened yet"): durable() answers no at once. */
  failing = false;
  delivered = 0;
  failures = 0;
  private opened: boolean;
  private running = false;
  private attempt = 0;
  private draining = false;
  private stopped = false;
  private sleep?: { timer: NodeJS.Timeout; wake(): void };
  /** The group-commit wait in progress, ended early by hurry(). */
  private gathering?: { timer: NodeJS.Timeout; wake(): void };
  private idleWaiters: Array<() => void> = [];
  private firstOpen?: () => void;
  /** Settles after the sink's first open attempt, whatever its outcome. */
  readonly opening: Promise<void>;

  constructor(
    readonly sink: AuditSink,
    private readonly hooks: ChannelHooks,
    private readonly options: ChannelOptions,
  ) {
    this.opened = sink.open === undefined;
    this.up = this.opened;
    this.opening = this.opened ? Promise.resolve() : new Promise((resolve) => (this.firstOpen = resolve));
  }

  get name(): string {
    return this.sink.name;
  }

  /** Opens the sink in the background, so that a sink that is down shows as such before the first event. */
  start(): void {
    this.kick();
  }

  push(entry: Entry): void {
    this.queue.push(entry);
    // Waiting to fsync written events: the new one gets its own window (and may take the fsync along).
    if (this.queue.length === 1 || this.queue.length >= this.options.batchSize) this.hurry();
    this.kick();
  }

  /** Events this sink owes: not written yet, or written and not persisted. */
  get owed(): number {
    return this.queue.length + this.unsynced.length;
  }

  /** Resolves once everything queued so far is persisted (or the channel is stopped). */
  whenIdle(): Promise<void> {
    if (this.owed === 0 || this.stopped) return Promise.resolve();
    this.hurry();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Someone waits for a queued event: write what is gathered now instead of at the window's end. */
  hurry(): void {
    this.gathering?.wake();
  }

  /**
   * Shutdown has begun: retry at once, and keep the process alive while retrying (the retry
   * timers are otherwise unref'd, so an idle outage does not hold a process that wants to exit).
   */
  drain(): void {
    this.draining = true;
    this.sleep?.wake();
    this.hurry();
  }

  /** Gives up: the drain timed out. Whatever is still queued is not delivered. */
  stop(): void {
    this.stopped = true;
    this.sleep?.wake();
    this.hurry();
    this.settleFirstOpen();
    this.settleIdle();
  }

  private kick(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    void this.run();
  }

  private async run(): Promise<void> {
    // emit() starts the run synchronously: a durable() called right after it (a write's) is seen
    // before the first batch is written, so that batch is written with its fsync.
    await Promise.resolve();
    try {
      // A sink that has not opened yet is retried even with nothing queued, so health recovers
      // without traffic; shutdown does not wait for that.
      while (!this.stopped && (this.owed > 0 || (!this.opened && !this.draining))) {
        await this.attemptOnce();
        if (this.owed === 0) this.settleIdle();
      }
    } finally {
      // In the same synchronous step as the loop's last check, so a push() after it starts a new run.
      this.running = false;
      this.settleIdle();
    }
  }

  /** Opens the sink, writes the head batch, or fsyncs what is written; on failure, marks the sink down and waits out the backoff. */
  private async attemptOnce(): Promise<void> {
    if (this.opened && this.attempt === 0) {
      if (this.queue.length === 0) await this.syncWait();
      if (this.queue.length > 0 && this.options.windowMs > 0) await this.gather();
      if (this.stopped) return;
    }
    const batch = this.opened ? this.queue.slice(0, this.options.batchSize) : [];
    try {
      if (!this.opened) {
        await this.sink.open!();
        this.opened = true;
        this.settleFirstOpen();
      } else if (batch.length === 0) {
        if (this.unsynced.length > 0) {
          await this.sink.sync!();
          this.persisted([]);
        }
      } else {
        const sync = this.mustSync(batch);
        const started = performance.now();
        await this.sink.write(
          batch.map((e) => e.event),
          sync,
        );
        this.queue.splice(0, batch.length);
        if (sync) {
          this.persisted(batch);
        } else {
          if (this.unsynced.length === 0) this.unsyncedSince = started;
          this.unsynced.push(...batch);
        }
      }
      if (this.attempt > 0) this.options.log.info({ sink: this.name, queued: this.queue.length, failures: this.attempt }, 'audit sink is back; delivering queued events');
      this.up = true;
      this.failing = false;
      this.attempt = 0;
    } catch (err) {
      // The sink is back at its last persisted batch: what was written after it is written again.
      if (this.unsynced.length > 0) {
        // concat, not unshift(...): tens of thousands of arguments overflow the stack.
        this.queue = this.unsynced.concat(this.queue);
        this.unsynced = [];
      }
      this.failures++;
      // Logged when the sink goes down and then every tenth failure, not on every retry.
      if (this.attempt % 10 === 0) {
        this.options.log.error({ sink: this.name, queued: this.queue.length, failures: this.failures, ...errorSummary(err) }, 'audit sink failed; its events are kept and retried');
      }
      this.up = false;
      this.failing = true;
      this.hooks.down(this);
      this.settleFirstOpen();
      await this.pause(backoffDelay(this.attempt++, this.options.minRetryMs, this.options.maxRetryMs));
    }
  }

  /** The batch and the events written before it are persisted: the log hears of them. */
  private persisted(batch: readonly Entry[]): void {
    const done = this.unsynced.length > 0 ? [...this.unsynced, ...batch] : batch;
    this.unsynced = [];
    this.delivered += done.length;
    this.hooks.delivered(this, done);
  }

  /**
   * Whether this batch's write must fsync: the sink cannot defer it; it is a retry (the sink is
   * up again only once an fsync succeeds); someone waits; too many events are written unsynced;
   * or the oldest of them has waited its interval.
   */
  private mustSync(batch: readonly Entry[]): boolean {
    if (this.options.syncIntervalMs <= 0 || this.sink.sync === undefined) return true;
    if (this.attempt > 0 || this.draining || this.idleWaiters.length > 0) return true;
    if (this.unsynced.length + batch.length > this.options.maxUnsynced) return true;
    // Timers keep whole milliseconds: one that woke for the fsync may wake a fraction early.
    if (this.unsynced.length > 0 && performance.now() >= this.syncDue() - 1) return true;
    return batch.some((e) => e.waiters.length > 0) || this.unsyncedWaited();
  }

  private unsyncedWaited(): boolean {
    return this.unsynced.some((e) => e.waiters.length > 0);
  }

  /**
   * Nothing to write, events written and not persisted: waits until their fsync is due, or until
   * someone waits for one of them (durable(), whenIdle(), shutdown) or a new event arrives.
   */
  private async syncWait(): Promise<void> {
    if (this.unsynced.length === 0 || this.draining || this.stopped || this.idleWaiters.length > 0) return;
    if (this.unsyncedWaited()) return;
    await this.pauseUntil(this.syncDue());
  }

  /**
   * Group commit: holds the next batch until its oldest event is windowMs old, unless the batch
   * is full or someone waits (a durable() caller on one of its events, whenIdle(), shutdown).
   * A retry after a failure is not held: its events have waited already.
   */
  private async gather(): Promise<void> {
    const windowMs = this.options.windowMs;
    if (this.queue.length === 0) return;
    const batchSize = this.options.batchSize;
    if (this.draining || this.stopped || this.idleWaiters.length > 0 || this.queue.length >= batchSize) return;
    const end = Math.min(this.queue.length, batchSize);
    for (let i = 0; i < end; i++) if (this.queue[i].waiters.length > 0) return;
    // A waiter on a written event (its durable() came while the write was in flight) waits no window.
    if (this.unsyncedWaited()) return;
    const until = this.queue[0].at + windowMs;
    await this.pauseUntil(this.unsynced.length > 0 ? Math.min(until, this.syncDue()) : until);
  }

  /** When the written events' fsync is due. */
  private syncDue(): number {
    return this.unsyncedSince + this.options.syncIntervalMs;
  }

  /** Sleeps until `until` (performance.now() time) unless hurry() wakes it first. */
  private async pauseUntil(until: number): Promise<void> {
    const wait = until - performance.now();
    if (wait < 1) return;
    await new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.gathering = undefined;
        resolve();
      };
      const timer = setTimeout(wake, wait);
      this.gathering = { timer, wake };
    });
  }

  private settleFirstOpen(): void {
    this.firstOpen?.();
    this.firstOpen = undefined;
  }

  private pause(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleep = undefined;
        resolve();
      };
      const timer = setTimeout(wake, this.draining ? Math.min(ms, 500) : ms);
      if (!this.draining) timer.unref();
      this.sleep = { timer, wake };
    });
  }

  private settleIdle(): void {
    if (this.owed > 0 && !this.stopped) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
