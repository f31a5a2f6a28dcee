// How long PostgreSQL has been working on the head of the queue (the statement deadline's measure).
import { PendingQueue } from '../../../src/session/pending';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('PendingQueue.busyFor', () => {
  test('nothing is busy until PostgreSQL is asked to answer (a Sync, a Query or a Flush)', () => {
    const q = new PendingQueue();
    q.push({ kind: 'parse' });
    q.push({ kind: 'execute' });
    expect(q.unasked()).toBe(true);
    expect(q.busyFor(performance.now())).toBeUndefined();
    q.flushed();
    expect(q.unasked()).toBe(false);
    expect(q.busyFor(performance.now())).toBeGreaterThanOrEqual(0);
  });

  test('time a batch waited for its client (no Sync, no Flush) is not counted once PostgreSQL is asked', async () => {
    // A late Sync: from the Sync.
    const synced = new PendingQueue();
    synced.push({ kind: 'execute' });
    await sleep(60);
    synced.push({ kind: 'sync' });
    expect(synced.busyFor(performance.now())).toBeLessThan(50);
    // A Flush after a late Execute: from that Execute, which PostgreSQL may be running.
    const flushed = new PendingQueue();
    flushed.push({ kind: 'execute' });
    await sleep(60);
    flushed.push({ kind: 'execute' });
    await sleep(30);
    flushed.flushed();
    const busy = flushed.busyFor(performance.now())!;
    expect(busy).toBeGreaterThanOrEqual(25);
    expect(busy).toBeLessThan(60);
  });

  test('a Flush after a lone Execute counts from that Execute: PostgreSQL may have been running it all along', async () => {
    const q = new PendingQueue();
    q.push({ kind: 'execute' });
    await sleep(60);
    q.flushed();
    expect(q.busyFor(performance.now())).toBeGreaterThanOrEqual(55);
  });

  test('an answered batch asked again keeps its clock: only an unasked head restarts it', async () => {
    const q = new PendingQueue();
    q.push({ kind: 'execute' });
    q.push({ kind: 'sync' });
    await sleep(60);
    q.flushed();
    expect(q.busyFor(performance.now())).toBeGreaterThanOrEqual(55);
  });
});
