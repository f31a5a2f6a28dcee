// Delivery to one sink: its own ordered queue, one batch in flight, retries with backoff until the sink takes it.
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
  log: Logger;
}

export class SinkChannel {
  /** Events not yet persisted by this sink, oldest first; the head batch is the one in flight. */
  readonly queue: Entry[] = [];
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
    this.kick();
  }

  /** Resolves once everything queued so far is persisted (or the channel is stopped). */
  whenIdle(): Promise<void> {
    if (this.queue.length === 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Shutdown has begun: retry at once, and keep the process alive while retrying (the retry
   * timers are otherwise unref'd, so an idle outage does not hold a process that wants to exit).
   */
  drain(): void {
    this.draining = true;
    this.sleep?.wake();
  }

  /** Gives up: the drain timed out. Whatever is still queued is not delivered. */
  stop(): void {
    this.stopped = true;
    this.sleep?.wake();
    this.settleFirstOpen();
    this.settleIdle();
  }

  private kick(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    void this.run();
  }

  private async run(): Promise<void> {
    try {
      // A sink that has not opened yet is retried even with nothing queued, so health recovers
      // without traffic; shutdown does not wait for that.
      while (!this.stopped && (this.queue.length > 0 || (!this.opened && !this.draining))) {
        await this.attemptOnce();
        if (this.queue.length === 0) this.settleIdle();
      }
    } finally {
      // In the same synchronous step as the loop's last check, so a push() after it starts a new run.
      this.running = false;
      this.settleIdle();
    }
  }

  /** Opens the sink or writes the head batch; on failure, marks the sink down and waits out the backoff. */
  private async attemptOnce(): Promise<void> {
    const batch = this.opened ? this.queue.slice(0, this.options.batchSize) : [];
    try {
      if (!this.opened) {
        await this.sink.open!();
        this.opened = true;
        this.settleFirstOpen();
      } else {
        await this.sink.write(batch.map((e) => e.event));
        this.queue.splice(0, batch.length);
        this.delivered += batch.length;
        this.hooks.delivered(this, batch);
      }
      if (this.attempt > 0) this.options.log.info({ sink: this.name, queued: this.queue.length, failures: this.attempt }, 'audit sink is back; delivering queued events');
      this.up = true;
      this.failing = false;
      this.attempt = 0;
    } catch (err) {
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
    if (this.queue.length > 0 && !this.stopped) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
