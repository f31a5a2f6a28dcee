// The audit log: takes events without blocking, holds them in a bounded queue, and delivers each to every sink in order.
import { randomBytes, randomFillSync } from 'node:crypto';
import { monotonicFactory } from 'ulid';
import { silentLogger, type Logger } from '../log';
import { SinkChannel, type Entry } from './channel';
import type { AuditEvent } from './event';
import type { HeadPublisher } from './heads';
import { AuditText } from './redact';
import { AuditUnavailableError, type AuditSink } from './sink';

/** What a session hands to emit(): an event whose id and time the log fills in when absent. */
export type AuditEventInput = Omit<AuditEvent, 'id' | 'time'> & Partial<Pick<AuditEvent, 'id' | 'time'>>;

export interface AuditLogOptions {
  sinks: AuditSink[];
  /** Events held until every sink has them. Default: 10000. */
  queueSize?: number;
  /** What acceptsReads() answers while the trail is unavailable. Default: allow. */
  readsWhenUnavailable?: 'allow' | 'refuse';
  /** durable: the session awaits durable() before acknowledging a write; async: it does not. Default: durable. */
  writeGuarantee?: 'durable' | 'async';
  /** Redaction and the HMAC key for statement text. Default: redacted, with a random key. */
  text?: AuditText;
  /** Publishes the file chains' heads; its final heads are published when the log closes. */
  heads?: HeadPublisher;
  /** How long close() waits for the queue to drain. Default: 10000 ms. */
  closeTimeoutMs?: number;
  /** durable() rejects (timeout) when the sinks have not confirmed the event within this. Default: 5000 ms. */
  durableTimeoutMs?: number;
  /** Events per sink write. Default: 256. */
  batchSize?: number;
  /**
   * Group commit: how long a sink may hold events nobody waits for (reads; writes under
   * writeGuarantee async) to write them with later ones, in one write and one fsync. An event
   * durable() waits for is written at once. Default: 0 (every batch at once).
   */
  batchWindowMs?: number;
  /**
   * Deferred fsync (file sinks): how long a written batch nobody waits for may go without its
   * fsync, which a later batch's then carries. An event durable() waits for is fsynced at once,
   * with everything written before it. Default: 0 (every batch fsynced as it is written).
   */
  syncIntervalMs?: number;
  /** Backoff between retries of a failed sink. Default: 100 ms doubling up to 5000 ms. */
  minRetryMs?: number;
  maxRetryMs?: number;
  log?: Logger;
}

export interface AuditSinkStats {
  name: string;
  up: boolean;
  /** Events this sink has not persisted yet. */
  queued: number;
  delivered: number;
  /** Failed writes (and failed opens); each is retried. */
  failures: number;
}

export interface AuditStats {
  healthy: boolean;
  /** Events not yet persisted by every sink. */
  queueDepth: number;
  queueSize: number;
  /** Events persisted by every sink. */
  delivered: number;
  /** Events never queued: the queue was full or the log closed. Each was logged at error level. */
  dropped: number;
  /** Of those, events of a session that had used up its own share of the queue. */
  droppedOverShare: number;
  sinks: AuditSinkStats[];
}

export class AuditLog {
  readonly queueSize: number;
  readonly readsWhenUnavailable: 'allow' | 'refuse';
  readonly writeGuarantee: 'durable' | 'async';
  readonly text: AuditText;
  private readonly channels: SinkChannel[];
  /** Weak: an event the caller no longer holds needs no durable() answer. */
  private readonly entries = new WeakMap<AuditEvent, Entry>();
  private readonly nextId = monotonicFactory(pooledRandom());
  private isoAt = NaN;
  private iso = '';
  private readonly log: Logger;
  private readonly closeTimeoutMs: number;
  /** The file chains' published heads (undefined for a log built without a publisher). */
  readonly heads?: HeadPublisher;
  private readonly durableTimeoutMs: number;
  private depth = 0;
  private deliveredCount = 0;
  private droppedCount = 0;
  private droppedOverShare = 0;
  /**
   * Events queued per session. One session may hold at most a quarter of the queue, so a burst
   * from one agent cannot push other sessions' events out; sessions are refused new statements
   * (acceptsSession) at half their share, so a share is only overrun within one message.
   */
  readonly sessionShare: number;
  private readonly bySession = new Map<string, number>();
  /** Set by a dropped event; cleared once the queue is half empty, so health does not flap at the limit. */
  private overflowing = false;
  private closing?: Promise<void>;

  constructor(options: AuditLogOptions) {
    if (options.sinks.length === 0) throw new Error('an audit log needs at least one sink');
    const names = options.sinks.map((s) => s.name);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice !== undefined) throw new Error(`two audit sinks are named "${twice}"`);
    this.queueSize = options.queueSize ?? 10_000;
    this.sessionShare = Math.max(1, Math.floor(this.queueSize / 4));
    this.readsWhenUnavailable = options.readsWhenUnavailable ?? 'allow';
    this.writeGuarantee = options.writeGuarantee ?? 'durable';
    this.text = options.text ?? new AuditText(randomBytes(32));
    this.log = options.log ?? silentLogger;
    this.closeTimeoutMs = options.closeTimeoutMs ?? 10_000;
    this.heads = options.heads;
    this.durableTimeoutMs = options.durableTimeoutMs ?? 5_000;
    const hooks = {
      delivered: (channel: SinkChannel, batch: readonly Entry[]) => this.onDelivered(channel, batch),
      down: (channel: SinkChannel) => this.onDown(channel),
    };
    // Written, unsynced events still count against the queue and each session's share (a session is
    // refused at half its share): a sink fsyncs before they reach a sixteenth of the queue.
    // Under 16 (a queue too small to share), every batch is fsynced as it is written.
    const maxUnsynced = Math.floor(this.queueSize / 16);
    const channelOptions = { batchSize: options.batchSize ?? 256, windowMs: options.batchWindowMs ?? 0, syncIntervalMs: options.syncIntervalMs ?? 0, maxUnsynced, minRetryMs: options.minRetryMs ?? 100, maxRetryMs: options.maxRetryMs ?? 5_000, log: this.log };
    this.channels = options.sinks.map((sink) => new SinkChannel(sink, hooks, channelOptions));
    for (const channel of this.channels) channel.start();
  }

  /**
   * Stamps the event (ULID id, ISO time) unless it has them, queues it for every sink and
   * returns it at once. A full queue (or a closed log) loses the event, never silently: it is
   * counted, logged at error level, and the log turns unhealthy.
   */
  emit(input: AuditEventInput): AuditEvent {
    const event = this.stamped(input);
    const entry: Entry = { event, pending: new Set(this.channels), state: 'queued', waiters: [], at: performance.now() };
    this.entries.set(event, entry);
    const session = event.session_id;
    if (this.closing !== undefined) this.drop(entry, 'closed');
    else if (this.depth >= this.queueSize) this.drop(entry, 'queue_full');
    else if (session !== undefined && (this.bySession.get(session) ?? 0) >= this.sessionShare) this.drop(entry, 'session_share');
    else {
      this.depth++;
      if (session !== undefined) this.bySession.set(session, (this.bySession.get(session) ?? 0) + 1);
      for (const channel of this.channels) channel.push(entry);
    }
    return event;
  }

  /** The event with id and time first: one copy of a statement's event (the usual input has neither field). */
  private stamped(input: AuditEventInput): AuditEvent {
    if (!Object.hasOwn(input, 'id') && !Object.hasOwn(input, 'time')) return { id: this.nextId(), time: this.now(), ...input };
    const { id, time, ...rest } = input;
    return { id: id ?? this.nextId(), time: time ?? this.now(), ...rest };
  }

  /** The time as new Date().toISOString() gives it, formatted once per millisecond (events come many to a millisecond). */
  private now(): string {
    const ms = Date.now();
    if (ms !== this.isoAt) {
      this.isoAt = ms;
      this.iso = new Date(ms).toISOString();
    }
    return this.iso;
  }

  /**
   * Resolves once every sink has persisted the event (an event returned by emit()). Rejects
   * with AuditUnavailableError when the event was dropped, when a sink that still owes it is
   * down (at once, or as soon as it fails), or when the sinks take longer than durableTimeoutMs;
   * the event itself stays queued and is delivered when the sink is back.
   */
  durable(event: AuditEvent): Promise<void> {
    const entry = this.entries.get(event);
    if (entry === undefined) return Promise.reject(new TypeError('durable() takes an event returned by emit() of this log'));
    if (entry.state === 'delivered') return Promise.resolve();
    if (entry.state === 'dropped') return Promise.reject(new AuditUnavailableError(entry.dropReason ?? 'queue_full'));
    // A sink still opening is waited for; one whose last attempt failed answers no at once.
    const down = [...entry.pending].find((channel) => channel.failing);
    if (down !== undefined) return Promise.reject(new AuditUnavailableError('sink_down', down.name));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        entry.waiters = entry.waiters.filter((w) => w !== waiter);
        reject(new AuditUnavailableError('timeout', [...entry.pending].map((c) => c.name).join(', ')));
      }, this.durableTimeoutMs);
      timer.unref();
      entry.waiters.push(waiter);
      for (const channel of entry.pending) channel.hurry();
    });
  }

  /** Settles once every sink has tried to open (file opened, database connected), so start-up reports a true health. */
  async ready(): Promise<void> {
    await Promise.all(this.channels.map((c) => c.opening));
  }

  /** False while the session's queued events reach half its share: its next statements wait (are refused) until they drain. */
  acceptsSession(sessionId: string): boolean {
    return (this.bySession.get(sessionId) ?? 0) < this.sessionShare / 2;
  }

  /** Health with the reason, for /readyz. */
  health(): { healthy: boolean; status: string; reason?: string; sinks: Array<{ name: string; status: string }> } {
    const sinks = this.channels.map((c) => ({ name: c.name, status: c.up ? 'up' : 'down' }));
    if (this.closing !== undefined) return { healthy: false, status: 'down', reason: 'closing', sinks };
    if (this.overflowing) return { healthy: false, status: 'degraded', reason: 'queue full', sinks };
    if (!this.channels.every((c) => c.up)) return { healthy: false, status: 'degraded', reason: 'sink down', sinks };
    return { healthy: true, status: 'ok', sinks };
  }

  /** Every sink up, the queue not overflowing, the log not closing. */
  healthy(): boolean {
    return this.closing === undefined && !this.overflowing && this.channels.every((c) => c.up);
  }

  /** Writes need a working trail: they are refused whenever it is not healthy. */
  acceptsWrites(): boolean {
    return this.healthy();
  }

  /** Reads follow reads_when_unavailable while the trail is unhealthy. */
  acceptsReads(): boolean {
    return this.healthy() || this.readsWhenUnavailable === 'allow';
  }

  get queueDepth(): number {
    return this.depth;
  }

  get delivered(): number {
    return this.deliveredCount;
  }

  get dropped(): number {
    return this.droppedCount;
  }

  /** Failed writes per sink name, for the failures metric. */
  failuresBySink(): Record<string, number> {
    return Object.fromEntries(this.channels.map((c) => [c.name, c.failures]));
  }

  stats(): AuditStats {
    return {
      healthy: this.healthy(),
      queueDepth: this.depth,
      queueSize: this.queueSize,
      delivered: this.deliveredCount,
      dropped: this.droppedCount,
      droppedOverShare: this.droppedOverShare,
      sinks: this.channels.map((c) => ({ name: c.name, up: c.up, queued: c.owed, delivered: c.delivered, failures: c.failures })),
    };
  }

  /**
   * Stops taking events and drains the queue into the sinks (retrying a failed one) for at most
   * closeTimeoutMs, then closes the sinks. What could not be delivered by then is logged as lost;
   * a sink that did not drain is given closeTimeoutMs more to close (a write or fsync stuck on a
   * stalled disk holds its file's close), and is then left behind.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    for (const channel of this.channels) channel.drain();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      Promise.all(this.channels.map((c) => c.whenIdle())).then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), this.closeTimeoutMs))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      const undelivered = this.channels.filter((c) => c.owed > 0).map((c) => ({ sink: c.name, events: c.owed }));
      this.log.error({ undelivered }, 'audit queue not drained before the shutdown timeout; these events are lost');
      const err = new AuditUnavailableError('closed');
      for (const channel of this.channels) {
        channel.stop();
        for (const entry of [...channel.unsynced, ...channel.queue]) this.settle(entry, err);
      }
    }
    await this.heads?.stop().catch(() => undefined);
    const closed = Promise.allSettled(this.channels.map((c) => c.sink.close()));
    if (!timedOut) {
      await closed;
      return;
    }
    let again: NodeJS.Timeout | undefined;
    const left = await Promise.race([closed.then(() => false), new Promise<boolean>((resolve) => (again = setTimeout(() => resolve(true), this.closeTimeoutMs)))]);
    clearTimeout(again);
    if (left) this.log.error({ sinks: this.channels.filter((c) => c.owed > 0).map((c) => c.name) }, 'audit sink did not close within the shutdown timeout; left behind');
  }

  private drop(entry: Entry, reason: 'queue_full' | 'closed' | 'session_share'): void {
    entry.state = 'dropped';
    entry.dropReason = reason === 'session_share' ? 'queue_full' : reason;
    entry.pending.clear();
    this.droppedCount++;
    if (reason === 'queue_full') this.overflowing = true;
    if (reason === 'session_share') this.droppedOverShare++;
    const { id, kind, decision } = entry.event;
    this.log.error(
      { id, kind, decision, reason, queue_size: this.queueSize, dropped: this.droppedCount },
      reason === 'queue_full' ? 'audit queue full: event not recorded' : reason === 'session_share' ? "audit queue: the session's share is full, event not recorded" : 'audit log closed: event not recorded',
    );
  }

  private onDelivered(channel: SinkChannel, batch: readonly Entry[]): void {
    for (const entry of batch) {
      entry.pending.delete(channel);
      if (entry.pending.size > 0 || entry.state !== 'queued') continue;
      entry.state = 'delivered';
      this.depth--;
      const session = entry.event.session_id;
      if (session !== undefined) {
        const left = (this.bySession.get(session) ?? 1) - 1;
        if (left > 0) this.bySession.set(session, left);
        else this.bySession.delete(session);
      }
      this.deliveredCount++;
      this.settle(entry);
    }
    if (this.overflowing && this.depth <= this.queueSize / 2) {
      this.overflowing = false;
      this.log.warn({ queue_depth: this.depth, dropped: this.droppedCount }, 'audit queue has room again');
    }
  }

  /** The sink failed: nobody waiting on an event it still owes can be told "durable". */
  private onDown(channel: SinkChannel): void {
    const err = new AuditUnavailableError('sink_down', channel.name);
    for (const entry of channel.queue) this.settle(entry, err);
  }

  private settle(entry: Entry, err?: Error): void {
    const waiters = entry.waiters;
    if (waiters.length === 0) return;
    entry.waiters = [];
    for (const w of waiters) {
      if (err) w.reject(err);
      else w.resolve();
    }
  }
}

/**
 * ULID randomness from a pooled buffer: one randomFillSync per 4096 characters instead of one
 * call per character (a profile of cached statements showed the per-event cost). Each byte maps
 * to one of ULID's 32 symbols without bias (256 is a multiple of 32).
 */
function pooledRandom(): () => number {
  const pool = Buffer.alloc(4096);
  let at = pool.length;
  return () => {
    if (at === pool.length) {
      randomFillSync(pool);
      at = 0;
    }
    return pool[at++] / 256;
  };
}
