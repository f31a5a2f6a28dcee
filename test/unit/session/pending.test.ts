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
    for (const ask of [(q: PendingQueue) => q.flushed(), (q: PendingQueue) => q.push({ kind: 'sync' })]) {
      const q = new PendingQueue();
      q.push({ kind: 'execute' });
      await sleep(60);
      ask(q);
      expect(q.busyFor(performance.now())).toBeLessThan(50);
    }
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
