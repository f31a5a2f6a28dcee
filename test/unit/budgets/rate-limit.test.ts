// The in-memory rate-limit store: a sliding window, refusals not counted, keys independent.
import { MemoryRateLimitStore } from '../../../src/budgets/rate-limit';

test('allows `limit` events in any window and refuses the next, with the wait until one frees up', async () => {
  const store = new MemoryRateLimitStore();
  for (let i = 0; i < 3; i++) expect((await store.hit('t1', 3, 60_000, 1_000 + i * 10)).allowed).toBe(true);
  const refused = await store.hit('t1', 3, 60_000, 30_000);
  expect(refused).toEqual({ allowed: false, retryAfterMs: 31_000, count: 3 });
  // Not an aligned minute: the first event leaves the window exactly 60 s after it happened.
  expect((await store.hit('t1', 3, 60_000, 60_999)).allowed).toBe(false);
  expect((await store.hit('t1', 3, 60_000, 61_000)).allowed).toBe(true);
});

test('keys are independent, and refused events do not count', async () => {
  const store = new MemoryRateLimitStore();
  await store.hit('a', 1, 1000, 0);
  for (let i = 0; i < 5; i++) expect((await store.hit('a', 1, 1000, 100 + i)).allowed).toBe(false);
  expect((await store.hit('b', 1, 1000, 100)).allowed).toBe(true);
  expect((await store.hit('a', 1, 1000, 1000)).allowed).toBe(true);
});
