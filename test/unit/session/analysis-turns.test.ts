// Turns at the analysis (src/session/analysis-turns.ts): a tenant's statements one at a time, a costly analysis
// followed by a pause as long, in which the event loop serves everything else; tenants do not wait for each other.
import { AnalysisTurns } from '../../../src/session/analysis-turns';

/** Keeps the thread busy for `ms`, as an analysis does. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin
  }
}

test("a tenant's works run one at a time, and a timer set during one runs before the next starts", async () => {
  const turns = new AnalysisTurns();
  const log: string[] = [];
  const works = [0, 1, 2].map((i) =>
    turns.run('a', () => {
      log.push(`start ${i}`);
      // What another session would do: its timer (or socket read) is due at once.
      setTimeout(() => log.push(`other after ${i}`), 0);
      busy(20);
      log.push(`end ${i}`);
      return i;
    }),
  );
  expect(await Promise.all(works)).toEqual([0, 1, 2]);
  await new Promise((r) => setTimeout(r, 0));
  expect(log).toEqual(['start 0', 'end 0', 'other after 0', 'start 1', 'end 1', 'other after 1', 'start 2', 'end 2', 'other after 2']);
  // The tenant is forgotten once the pause after its last work is over.
  await new Promise((r) => setTimeout(r, 40));
  expect(turns.active).toBe(0);
});

test('the pause after a work is as long as the work, and only for its tenant', async () => {
  const turns = new AnalysisTurns();
  const at: Record<string, number> = {};
  const a = [0, 1].map((i) =>
    turns.run('a', () => {
      at[`a${i} start`] = performance.now();
      busy(30);
      at[`a${i} end`] = performance.now();
      // As the session does with every analysis it measures.
      turns.charge('a', at[`a${i} end`] - at[`a${i} start`]);
    }),
  );
  const b = turns.run('b', () => {
    at['b start'] = performance.now();
  });
  await Promise.all([...a, b]);
  // Node never fires a timer early (it may round its delay down by up to 1 ms).
  expect(at['a1 start'] - at['a0 end']).toBeGreaterThanOrEqual(at['a0 end'] - at['a0 start'] - 1);
  // Tenant b's work came between a's two, in a's pause.
  expect(at['b start']).toBeGreaterThan(at['a0 end']);
  expect(at['b start']).toBeLessThan(at['a1 start']);
});

test('work that fails still ends its turn, and its error reaches the caller', async () => {
  const turns = new AnalysisTurns();
  await expect(turns.run('a', () => { throw new Error('refused'); })).rejects.toThrow('refused');
  expect(await turns.run('a', () => 'next')).toBe('next');
});

test("a costly analysis outside a turn holds the tenant's next statement back for as long; a cheap one does not", async () => {
  const turns = new AnalysisTurns();
  turns.charge('a', 2);
  expect(turns.owes('a')).toBe(false);
  turns.charge('a', 30);
  expect(turns.owes('a')).toBe(true);
  expect(turns.owes('b')).toBe(false);
  const charged = performance.now();
  const started = await turns.run('a', () => performance.now());
  expect(started - charged).toBeGreaterThanOrEqual(29);
  expect(turns.owes('a')).toBe(false);
  expect(turns.active).toBe(0);
});

test('cheap work leaves no pause', async () => {
  const turns = new AnalysisTurns();
  const order: number[] = [];
  await Promise.all([0, 1, 2].map((i) => turns.run('a', () => order.push(i))));
  expect(order).toEqual([0, 1, 2]);
  expect(turns.active).toBe(0);
});
