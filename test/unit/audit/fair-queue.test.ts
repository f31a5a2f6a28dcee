// The audit queue's per-session share: one session's burst cannot take other sessions' room.
import { AuditLog } from '../../../src/audit/log';
import { MemorySink, until } from '../../support/audit-sinks';

const logs: AuditLog[] = [];
afterEach(async () => {
  await Promise.all(logs.splice(0).map((l) => l.close()));
});

const event = (session: string, rows: number) => ({ kind: 'statement' as const, decision: 'allowed' as const, session_id: session, rows });

test('a session holds at most a quarter of the queue; the others keep their room', async () => {
  const sink = new MemorySink();
  sink.hold();
  const log = new AuditLog({ sinks: [sink], queueSize: 40, closeTimeoutMs: 1000 });
  logs.push(log);
  expect(log.sessionShare).toBe(10);
  for (let i = 0; i < 30; i++) log.emit(event('burst', i));
  expect(log.queueDepth).toBe(10);
  expect(log.stats()).toMatchObject({ dropped: 20, droppedOverShare: 20 });
  // The burst's own back-pressure point is half its share; other sessions are untouched.
  expect(log.acceptsSession('burst')).toBe(false);
  expect(log.acceptsSession('other')).toBe(true);
  for (let i = 0; i < 10; i++) log.emit(event('other', 100 + i));
  expect(log.queueDepth).toBe(20);
  expect(log.stats().dropped).toBe(20);
  // Over its share is not a full queue: the trail stays healthy for everyone else.
  expect(log.health()).toMatchObject({ healthy: true, status: 'ok' });
  sink.unhold();
  await until(() => log.queueDepth === 0);
  expect(log.acceptsSession('burst')).toBe(true);
  expect(sink.events.filter((e) => e.session_id === 'other')).toHaveLength(10);
});

test('a full queue reports the reason until it is half empty again', async () => {
  const sink = new MemorySink();
  sink.hold();
  const log = new AuditLog({ sinks: [sink], queueSize: 8, closeTimeoutMs: 1000 });
  logs.push(log);
  for (const s of ['a', 'b', 'c', 'd', 'e']) for (let i = 0; i < 2; i++) log.emit(event(s, i));
  expect(log.queueDepth).toBe(8);
  expect(log.health()).toMatchObject({ healthy: false, reason: 'queue full' });
  sink.unhold();
  await until(() => log.queueDepth === 0);
  expect(log.health()).toMatchObject({ healthy: true });
});
