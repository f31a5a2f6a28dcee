// Turns at the analysis (src/session/analysis-turns.ts): a costly analysis holds its tenant's next statements back
// as long (all released together when the pause ends), long texts go one at a time, and tenants never wait for each other.
import { AnalysisTurns } from '../../../src/session/analysis-turns';

/** Keeps the thread busy for `ms`, as an analysis does. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin
  }
}

test("a tenant's long texts run one at a time, and a timer set during one runs before the next starts", async () => {
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
  expect(turns.active).toBe(0);
});

test('the pause after a costly analysis is as long as it, and only for its tenant', async () => {
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

test("short statements wait while their tenant's pause lasts or others wait, then take their turns one a turn of the event loop", async () => {
  const turns = new AnalysisTurns();
  expect(turns.waits('a', false)).toBe(false);
  expect(turns.waits('a', true)).toBe(true);
  turns.charge('a', 2);
  expect(turns.waits('a', false)).toBe(false);
  turns.charge('a', 30);
  expect(turns.waits('a', false)).toBe(true);
  expect(turns.waits('b', false)).toBe(false);
  // A counter the event loop advances once per turn (a macrotask each).
  let tick = 0;
  let ticking = true;
  const advance = (): void => {
    tick++;
    if (ticking) setImmediate(advance);
  };
  setImmediate(advance);
  const charged = performance.now();
  const ran = await Promise.all(Array.from({ length: 20 }, () => turns.run('a', () => ({ tick, at: performance.now() }))));
  ticking = false;
  // One a turn: a costly one among them would hold back the rest with its own pause.
  expect(new Set(ran.map((r) => r.tick)).size).toBe(20);
  expect(Math.min(...ran.map((r) => r.at)) - charged).toBeGreaterThanOrEqual(29);
  expect(turns.waits('a', false)).toBe(false);
});

test('a costly statement among the waiting ones holds back the rest for its own pause', async () => {
  const turns = new AnalysisTurns();
  const costly = turns.run('a', () => {
    busy(20);
    turns.charge('a', 20);
    return performance.now();
  });
  const cheap = turns.run('a', () => performance.now());
  const [ended, next] = await Promise.all([costly, cheap]);
  expect(next - ended).toBeGreaterThanOrEqual(19);
});

test('a tenant with nothing waiting is forgotten once its pause is over', async () => {
  const turns = new AnalysisTurns();
  turns.charge('a', 10);
  expect(turns.active).toBe(1);
  await new Promise((r) => setTimeout(r, 30));
  expect(turns.active).toBe(0);
});
