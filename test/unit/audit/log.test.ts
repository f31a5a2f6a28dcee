// The audit log's queue: stamping, order, the bound, outages and retries, durable() and draining on close — with in-process sinks.
import { PassThrough } from 'node:stream';
import { decodeTime, isValid } from 'ulid';
import { AuditLog, type AuditLogOptions } from '../../../src/audit/log';
import { AuditUnavailableError } from '../../../src/audit/sink';
import { StdoutSink } from '../../../src/audit/sinks/stdout';
import { ProxyError } from '../../../src/errors/catalogue';
import { createLogger } from '../../../src/log';
import { MemorySink, OpeningSink, SyncingSink, until } from '../../support/audit-sinks';

const logs: AuditLog[] = [];
afterEach(async () => {
  await Promise.all(logs.splice(0).map((l) => l.close()));
});

function auditLog(options: Partial<AuditLogOptions> & { sinks: AuditLogOptions['sinks'] }): AuditLog {
  const log = new AuditLog({ minRetryMs: 5, maxRetryMs: 20, closeTimeoutMs: 1000, ...options });
  logs.push(log);
  return log;
}

/** Settles as `promise` does, or fails saying `what` waited if it has not settled within 3 s. */
function within3s<T>(promise: Promise<T>, what: string): Promise<T> {
  const late = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} waited past 3 s`)), 3000).unref());
  return Promise.race([promise, late]);
}

const statement = (n: number) => ({ kind: 'statement' as const, decision: 'allowed' as const, rows: n });
const rowsOf = (sink: MemorySink) => sink.events.map((e) => e.rows);

test('emit stamps a monotonic ULID and an ISO time, keeps given ones, and returns at once', async () => {
  const sink = new MemorySink();
  const log = auditLog({ sinks: [sink] });
  const a = log.emit(statement(1));
  const b = log.emit(statement(2));
  expect(isValid(a.id)).toBe(true);
  expect(b.id > a.id).toBe(true);
  expect(new Date(a.time).toISOString()).toBe(a.time);
  expect(Math.abs(decodeTime(a.id) - Date.parse(a.time))).toBeLessThan(1000);
  const given = log.emit({ ...statement(3), id: '01ARZ3NDEKTSV4RRFFQ69G5FAV', time: '2024-01-01T00:00:00.000Z' });
  expect(given).toMatchObject({ id: '01ARZ3NDEKTSV4RRFFQ69G5FAV', time: '2024-01-01T00:00:00.000Z' });
  expect(sink.events).toHaveLength(0);
  await log.durable(given);
  expect(rowsOf(sink)).toEqual([1, 2, 3]);
});

test('every sink gets every event, in order, in batches of at most batchSize', async () => {
  const [a, b] = [new MemorySink('a'), new MemorySink('b')];
  const log = auditLog({ sinks: [a, b], batchSize: 4 });
  a.hold();
  const events = Array.from({ length: 10 }, (_, i) => log.emit(statement(i)));
  a.unhold();
  await Promise.all(events.map((e) => log.durable(e)));
  expect(rowsOf(a)).toEqual([...Array(10).keys()]);
  expect(rowsOf(b)).toEqual([...Array(10).keys()]);
  expect(Math.max(...a.attempts)).toBeLessThanOrEqual(4);
  expect(log.stats()).toMatchObject({ healthy: true, queueDepth: 0, delivered: 10, dropped: 0 });
});

test('the queue is bounded: a full queue loses the event loudly, turns unhealthy, and recovers once half empty', async () => {
  const lines: string[] = [];
  const logger = createLogger('error', { write: (l: string) => lines.push(l) });
  const sink = new MemorySink();
  const log = auditLog({ sinks: [sink], queueSize: 4, log: logger, readsWhenUnavailable: 'refuse' });
  sink.hold();
  const kept = Array.from({ length: 4 }, (_, i) => log.emit(statement(i)));
  expect(log.queueDepth).toBe(4);
  const lost = log.emit({ ...statement(99), sql: 'SELECT $1' });
  expect(log.dropped).toBe(1);
  expect(log.healthy()).toBe(false);
  expect([log.acceptsWrites(), log.acceptsReads()]).toEqual([false, false]);
  await expect(log.durable(lost)).rejects.toMatchObject({ name: 'AuditUnavailableError', reason: 'queue_full', code: 'audit_unavailable' });
  // Logged at error level with the event's id, never its SQL.
  const record = JSON.parse(lines.find((l) => l.includes('audit queue full'))!);
  expect(record).toMatchObject({ level: 50, id: lost.id, reason: 'queue_full' });
  expect(lines.join('')).not.toContain('SELECT');
  sink.unhold();
  await Promise.all(kept.map((e) => log.durable(e)));
  expect(rowsOf(sink)).toEqual([0, 1, 2, 3]);
  expect(log.healthy()).toBe(true);
});

test('reads follow reads_when_unavailable while the trail is down; writes never', async () => {
  const sink = new MemorySink();
  sink.down = true;
  const allow = auditLog({ sinks: [sink] });
  allow.emit(statement(1));
  await until(() => !allow.healthy());
  expect([allow.acceptsWrites(), allow.acceptsReads()]).toEqual([false, true]);
  const other = new MemorySink('other');
  other.down = true;
  const refuse = auditLog({ sinks: [other], readsWhenUnavailable: 'refuse' });
  refuse.emit(statement(1));
  await until(() => !refuse.healthy());
  expect([refuse.acceptsWrites(), refuse.acceptsReads()]).toEqual([false, false]);
});

test('an outage: durable() rejects while the sink is down; everything queued arrives after, in order, with no loss', async () => {
  const [good, flaky] = [new MemorySink('good'), new MemorySink('flaky')];
  const log = auditLog({ sinks: [good, flaky], batchSize: 3 });
  const before = log.emit(statement(0));
  await log.durable(before);
  flaky.down = true;
  const during = Array.from({ length: 7 }, (_, i) => log.emit(statement(i + 1)));
  const rejected = await log.durable(during[0]).catch((e: unknown) => e);
  expect(rejected).toBeInstanceOf(AuditUnavailableError);
  expect(rejected).toBeInstanceOf(ProxyError);
  expect(rejected).toMatchObject({ reason: 'sink_down', sink: 'flaky' });
  // Now that the sink is known down, durable() answers at once.
  await expect(log.durable(during[6])).rejects.toMatchObject({ reason: 'sink_down' });
  expect(log.acceptsWrites()).toBe(false);
  await until(() => flaky.attempts.length >= 3);
  expect(log.failuresBySink()).toMatchObject({ good: 0, flaky: expect.any(Number) });
  expect(log.failuresBySink().flaky).toBeGreaterThanOrEqual(2);
  expect(rowsOf(good)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  flaky.down = false;
  // Until its next retry succeeds the sink counts as down, and durable() keeps refusing.
  await until(() => log.healthy());
  const after = log.emit(statement(8));
  await log.durable(after);
  expect(rowsOf(flaky)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  expect(log.healthy()).toBe(true);
  expect(log.stats().sinks.find((s) => s.name === 'flaky')).toMatchObject({ up: true, queued: 0, delivered: 9 });
});

test('durable() waiting on a batch in flight rejects when that batch fails, and resolves for events already persisted', async () => {
  const sink = new MemorySink();
  const log = auditLog({ sinks: [sink] });
  const first = log.emit(statement(1));
  await log.durable(first);
  sink.hold();
  const second = log.emit(statement(2));
  const waiting = log.durable(second);
  sink.down = true;
  sink.unhold();
  await expect(waiting).rejects.toMatchObject({ reason: 'sink_down' });
  await expect(log.durable(first)).resolves.toBeUndefined();
  sink.down = false;
  await until(() => sink.events.length === 2);
});

test('durable() rejects with timeout when a sink does not answer in time, and for events this log never emitted', async () => {
  const sink = new MemorySink();
  const log = auditLog({ sinks: [sink], durableTimeoutMs: 30 });
  sink.hold();
  const event = log.emit(statement(1));
  await expect(log.durable(event)).rejects.toMatchObject({ reason: 'timeout', sink: 'memory' });
  await expect(log.durable({ ...event })).rejects.toThrow(TypeError);
  sink.unhold();
  await until(() => sink.events.length === 1);
  await expect(log.durable(event)).resolves.toBeUndefined();
});

test('a sink with open() is down until it opens, retried without traffic, and ready() waits for the first attempt', async () => {
  const sink = new OpeningSink();
  sink.down = true;
  const log = auditLog({ sinks: [sink] });
  await log.ready();
  expect(log.healthy()).toBe(false);
  await until(() => sink.opens >= 3);
  sink.down = false;
  await until(() => log.healthy());
  const event = log.emit(statement(1));
  await log.durable(event);
  expect(rowsOf(sink)).toEqual([1]);
});

test('close() drains what is queued, through an outage, before resolving, then closes the sinks', async () => {
  const sink = new MemorySink();
  const log = auditLog({ sinks: [sink] });
  sink.down = true;
  for (let i = 0; i < 5; i++) log.emit(statement(i));
  await until(() => sink.attempts.length >= 2);
  setTimeout(() => (sink.down = false), 50);
  await log.close();
  expect(rowsOf(sink)).toEqual([0, 1, 2, 3, 4]);
  expect(sink.closed).toBe(true);
  expect(log.queueDepth).toBe(0);
});

test('close() gives up after its timeout, says what is lost, and emit() after close loses the event loudly', async () => {
  const lines: string[] = [];
  const sink = new MemorySink();
  sink.down = true;
  const log = auditLog({ sinks: [sink], closeTimeoutMs: 100, log: createLogger('error', { write: (l: string) => lines.push(l) }) });
  const stuck = log.emit(statement(1));
  const waiting = log.durable(stuck).catch((e: unknown) => e);
  const started = Date.now();
  await log.close();
  expect(Date.now() - started).toBeLessThan(2000);
  expect(await waiting).toMatchObject({ reason: 'sink_down' });
  expect(lines.some((l) => /not drained/.test(l) && /"events":1/.test(l))).toBe(true);
  const late = log.emit(statement(2));
  await expect(log.durable(late)).rejects.toMatchObject({ reason: 'closed' });
  expect(log.dropped).toBe(1);
  expect(log.healthy()).toBe(false);
  expect(sink.closed).toBe(true);
});

test('close() after its timeout does not wait for ever on a sink stuck in a write (a stalled disk holds its close too)', async () => {
  const lines: string[] = [];
  const sink = new (class extends MemorySink {
    override close(): Promise<void> {
      return new Promise(() => undefined);
    }
  })();
  sink.hold();
  const log = auditLog({ sinks: [sink], closeTimeoutMs: 100, log: createLogger('error', { write: (l: string) => lines.push(l) }) });
  log.emit(statement(1));
  await until(() => sink.attempts.length === 1);
  await within3s(log.close(), 'close(), for the stuck sink,');
  expect(lines.some((l) => /did not close/.test(l) && /"memory"/.test(l))).toBe(true);
  sink.unhold();
});

describe('group commit (batchWindowMs)', () => {
  /** Long enough that only hurry() (or a full batch) can end the wait within the test's timeout. */
  const LONG = 60_000;
  const ticks = async (n: number) => {
    for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
  };

  test('events nobody waits for are held and written together; durable() on any of them writes at once', async () => {
    const [a, b] = [new MemorySink('a'), new MemorySink('b')];
    const log = auditLog({ sinks: [a, b], batchWindowMs: LONG });
    log.emit(statement(0));
    await ticks(3);
    const second = log.emit(statement(1));
    await ticks(3);
    expect(a.attempts).toEqual([]);
    await log.durable(second);
    expect(a.attempts).toEqual([2]);
    expect(b.attempts).toEqual([2]);
    expect(rowsOf(a)).toEqual([0, 1]);
  });

  test('a durable() waiter already on a queued event means no wait for the next batch either', async () => {
    const sink = new MemorySink();
    const log = auditLog({ sinks: [sink], batchWindowMs: LONG });
    sink.hold();
    const first = log.emit(statement(0));
    const waited = log.durable(first);
    await until(() => sink.attempts.length === 1);
    const second = log.emit(statement(1));
    const both = Promise.all([waited, log.durable(second)]);
    sink.unhold();
    await both;
    expect(sink.attempts).toEqual([1, 1]);
  });

  test('without a waiter, the window ends the wait; with 0, each batch goes at once', async () => {
    /** Three events a few event-loop turns apart, then the batch sizes the sink was given. */
    const batches = async (batchWindowMs: number) => {
      const sink = new MemorySink();
      const log = auditLog({ sinks: [sink], batchWindowMs });
      for (let i = 0; i < 3; i++) {
        log.emit(statement(i));
        await ticks(2);
      }
      await until(() => sink.events.length === 3);
      return sink.attempts;
    };
    expect(await batches(300)).toEqual([3]);
    expect(await batches(0)).toEqual([1, 1, 1]);
  });

  test('a full batch and close() end the wait', async () => {
    const full = new MemorySink('full');
    const log = auditLog({ sinks: [full], batchWindowMs: LONG, batchSize: 3 });
    for (let i = 0; i < 3; i++) log.emit(statement(i));
    await until(() => full.events.length === 3);
    expect(full.attempts).toEqual([3]);

    const closing = new MemorySink('closing');
    const closingLog = auditLog({ sinks: [closing], batchWindowMs: LONG, closeTimeoutMs: LONG });
    closingLog.emit(statement(0));
    closingLog.emit(statement(1));
    await closingLog.close();
    expect(rowsOf(closing)).toEqual([0, 1]);
    expect(closing.closed).toBe(true);
  });
});

describe('deferred fsync (syncIntervalMs)', () => {
  const LONG = 60_000;
  const ticks = async (n: number) => {
    for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
  };

  test('events nobody waits for are written at once and persisted by the fsync the interval brings', async () => {
    const sink = new SyncingSink();
    const log = auditLog({ sinks: [sink], syncIntervalMs: 1000 });
    const first = log.emit(statement(0));
    log.emit(statement(1));
    await until(() => sink.written.length === 2);
    expect(rowsOf(sink)).toEqual([]);
    // Written is not persisted: the log does not count them delivered yet.
    expect(log.stats()).toMatchObject({ queueDepth: 2, delivered: 0 });
    expect(sink.calls.every((c) => c === false)).toBe(true);
    await until(() => sink.events.length === 2);
    expect(sink.calls[sink.calls.length - 1]).toBe('sync');
    expect(log.stats()).toMatchObject({ queueDepth: 0, delivered: 2 });
    await log.durable(first);
  });

  test('durable() on a written event asks for its fsync at once', async () => {
    const sink = new SyncingSink();
    const log = auditLog({ sinks: [sink], syncIntervalMs: LONG });
    const read = log.emit(statement(0));
    await until(() => sink.written.length === 1);
    await log.durable(read);
    expect(sink.calls).toEqual([false, 'sync']);
    expect(rowsOf(sink)).toEqual([0]);
  });

  test("an event someone waits for is written with its fsync, which persists the events written before it", async () => {
    const sink = new SyncingSink();
    const log = auditLog({ sinks: [sink], syncIntervalMs: LONG });
    log.emit(statement(0));
    await until(() => sink.written.length === 1);
    const write = log.emit(statement(1));
    await log.durable(write);
    expect(sink.calls).toEqual([false, true]);
    expect(rowsOf(sink)).toEqual([0, 1]);
    expect(log.stats()).toMatchObject({ queueDepth: 0, delivered: 2 });
  });

  test('a failed fsync: waiters hear the sink is down, it stays down until an fsync succeeds, and everything not persisted is written again, once, in order', async () => {
    const sink = new SyncingSink();
    const log = auditLog({ sinks: [sink], syncIntervalMs: LONG });
    const events = [log.emit(statement(0)), log.emit(statement(1))];
    await until(() => sink.written.length === 2);
    sink.syncDown = true;
    await expect(log.durable(events[0])).rejects.toMatchObject({ reason: 'sink_down' });
    expect(sink.written).toEqual([]);
    const third = log.emit(statement(2));
    // Retries (5–20 ms apart) write with their fsync, which still fails: the sink stays down.
    const failed = log.stats().sinks[0].failures;
    await until(() => log.stats().sinks[0].failures >= failed + 3);
    expect(log.stats().healthy).toBe(false);
    expect(sink.calls.slice(sink.calls.indexOf('sync') + 1).every((c) => c === true)).toBe(true);
    sink.syncDown = false;
    await until(() => log.stats().healthy);
    await log.durable(third);
    expect(rowsOf(sink)).toEqual([0, 1, 2]);
    expect(log.stats()).toMatchObject({ queueDepth: 0, delivered: 3 });
  });

  test("durable() while its event's write is in flight, with a new event behind it: no group-commit window for it", async () => {
    const sink = new SyncingSink();
    const log = auditLog({ sinks: [sink], syncIntervalMs: LONG, batchWindowMs: LONG, batchSize: 2, durableTimeoutMs: LONG });
    sink.hold();
    // A full batch nobody waits for: written without its fsync, and held in flight.
    const read = log.emit(statement(0));
    log.emit(statement(1));
    await until(() => sink.calls.length === 1);
    const waited = log.durable(read);
    log.emit(statement(2));
    sink.unhold();
    await within3s(waited, 'durable(), for the group-commit window,');
    expect(sink.calls).toEqual([false, true]);
    expect(rowsOf(sink)).toEqual([0, 1, 2]);
  });

  test('a new event while written ones wait for their fsync gets its own window, not the fsync interval', async () => {
    const sink = new SyncingSink();
    const log = auditLog({ sinks: [sink], syncIntervalMs: LONG, batchWindowMs: 300 });
    log.emit(statement(0));
    await until(() => sink.written.length === 1);
    log.emit(statement(1));
    await ticks(5);
    expect(sink.written).toHaveLength(1);
    await until(() => sink.written.length === 2, 3000);
    expect(sink.calls).toEqual([false, false]);
  });

  test('an fsync that falls due while a new event gathers ends its window', async () => {
    const sink = new SyncingSink();
    const log = auditLog({ sinks: [sink], syncIntervalMs: 100, batchWindowMs: LONG, batchSize: 2 });
    // A full batch nobody waits for is written without fsync; the next event waits for its
    // window (LONG), which the fsync due 100 ms after that write cuts short.
    log.emit(statement(0));
    log.emit(statement(1));
    await until(() => sink.written.length === 2);
    log.emit(statement(2));
    // (Whether the fsync rides on its write or, on a machine slow enough to let it fall due first,
    // comes on its own: either way well before the window.)
    await until(() => sink.events.length === 3, 3000);
  });

  test("a write's durable() right after its emit(), with no window: one write carries the fsync", async () => {
    const sink = new SyncingSink();
    const log = auditLog({ sinks: [sink], syncIntervalMs: LONG, batchWindowMs: 0 });
    const write = log.emit(statement(0));
    await log.durable(write);
    expect(sink.calls).toEqual([true]);
  });

  test('with a sink that persists every write beside one that defers, an event is delivered once both have it', async () => {
    const [plain, deferring] = [new MemorySink('plain'), new SyncingSink('file')];
    const log = auditLog({ sinks: [plain, deferring], syncIntervalMs: LONG });
    const read = log.emit(statement(0));
    await until(() => plain.events.length === 1 && deferring.written.length === 1);
    expect(log.stats()).toMatchObject({ queueDepth: 1, delivered: 0 });
    await log.durable(read);
    expect(deferring.calls).toEqual([false, 'sync']);
    expect(log.stats()).toMatchObject({ queueDepth: 0, delivered: 1 });
  });

  test('a queue under 16 events defers no fsync', async () => {
    const sink = new SyncingSink();
    const log = auditLog({ sinks: [sink], syncIntervalMs: LONG, queueSize: 10 });
    log.emit({ ...statement(0), session_id: 's' });
    await until(() => sink.events.length === 1);
    expect(sink.calls).toEqual([true]);
    expect(log.acceptsSession('s')).toBe(true);
  });

  test('written events fsync before they reach a sixteenth of the queue (they count against it and against sessions\' shares)', async () => {
    const sink = new SyncingSink();
    const log = auditLog({ sinks: [sink], syncIntervalMs: LONG, queueSize: 64 });
    for (let i = 0; i < 12; i++) {
      log.emit({ ...statement(i), session_id: 's' });
      await until(() => sink.written.length === i + 1);
    }
    // Four may wait (64 / 16): every fifth write carries the fsync.
    expect(sink.calls).toEqual([false, false, false, false, true, false, false, false, false, true, false, false]);
    expect(log.acceptsSession('s')).toBe(true);
    expect(log.stats()).toMatchObject({ dropped: 0, delivered: 10, queueDepth: 2 });
  });

  test('a shutdown that times out while an fsync hangs rejects the waiters of written events too', async () => {
    const sink = new SyncingSink();
    const log = auditLog({ sinks: [sink], syncIntervalMs: LONG, closeTimeoutMs: 50, durableTimeoutMs: LONG });
    const read = log.emit(statement(0));
    await until(() => sink.written.length === 1);
    sink.hold();
    const waited = log.durable(read);
    await until(() => sink.calls.includes('sync'));
    await log.close();
    await expect(waited).rejects.toMatchObject({ reason: 'closed' });
    sink.unhold();
  });

  test('close() persists what is written; 0 fsyncs every batch; a sink without sync() persists every write', async () => {
    const sink = new SyncingSink();
    const log = auditLog({ sinks: [sink], syncIntervalMs: LONG, closeTimeoutMs: LONG });
    log.emit(statement(0));
    await until(() => sink.written.length === 1);
    await log.close();
    expect(rowsOf(sink)).toEqual([0]);

    const every = new SyncingSink();
    const eager = auditLog({ sinks: [every], syncIntervalMs: 0 });
    eager.emit(statement(0));
    await until(() => every.events.length === 1);
    eager.emit(statement(1));
    await until(() => every.events.length === 2);
    expect(every.calls).toEqual([true, true]);

    const plain = new MemorySink();
    const other = auditLog({ sinks: [plain], syncIntervalMs: LONG });
    other.emit(statement(0));
    await until(() => plain.events.length === 1);
    expect(other.stats()).toMatchObject({ queueDepth: 0, delivered: 1 });
  });
});

test('two sinks with one name are refused; so is a log without sinks', () => {
  expect(() => new AuditLog({ sinks: [] })).toThrow(/at least one sink/);
  expect(() => new AuditLog({ sinks: [new MemorySink('x'), new MemorySink('x')] })).toThrow(/two audit sinks/);
});

test('the stdout sink writes one JSON line per event, in order, and survives a broken pipe as a failure', async () => {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d) => (text += d));
  const sink = new StdoutSink(stream);
  const log = auditLog({ sinks: [sink] });
  const events = [1, 2, 3].map((n) => log.emit(statement(n)));
  await log.durable(events[2]);
  expect(text.split('\n')).toEqual([...events.map((e) => JSON.stringify(e)), '']);
  stream.destroy(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
  const lost = log.emit(statement(4));
  await expect(log.durable(lost)).rejects.toMatchObject({ reason: 'sink_down', sink: 'stdout' });
});
