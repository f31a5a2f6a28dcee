// The statement cache is bounded by what its entries hold: texts and trees, not entry counts.
import { entryBytes, StatementCache } from '../../../src/analysis/cache';
import type { Analysis } from '../../../src/analysis/types';

function analysisWithTree(objects: number): Analysis {
  const args = Array.from({ length: objects }, (_, i) => ({ A_Const: { ival: { ival: i } } }));
  return { ok: true, sql: 'SELECT 1', tags: {}, statements: [{ kind: 'read', nodeType: 'SelectStmt', stmt: { SelectStmt: { targetList: args } } as never, writes: [], sql: 'SELECT 1' }] };
}

test('an entry is sized by the objects and strings it holds', () => {
  const small = entryBytes('k', analysisWithTree(10));
  const large = entryBytes('k', analysisWithTree(10_000));
  expect(large).toBeGreaterThan(small * 500);
  expect(large).toBeGreaterThan(30_000 * 40);
});

test('an analysis is measured once: under another key only the key is counted again', () => {
  const analysis = analysisWithTree(1_000);
  const first = entryBytes('k', analysis);
  // Whatever is added afterwards is not walked again (analyses are not changed once made).
  const more = analysisWithTree(1_000) as Extract<Analysis, { ok: true }>;
  (analysis as Extract<Analysis, { ok: true }>).statements.push(...more.statements);
  expect(entryBytes('k', analysis)).toBe(first);
  expect(entryBytes('a longer key', analysis)).toBe(first + ('a longer key'.length - 1) * 2);
  expect(entryBytes('k', analysisWithTree(1_000))).toBe(first);
});

test('the cache keeps to its byte size and skips entries over a quarter of it', () => {
  const cache = new StatementCache(2 * 1024 * 1024);
  for (let i = 0; i < 50; i++) cache.get(`q${i}`, () => analysisWithTree(2_000));
  const stats = cache.stats();
  expect(stats.bytes).toBeLessThanOrEqual(2 * 1024 * 1024);
  expect(stats.size).toBeLessThan(50);
  cache.get('huge', () => analysisWithTree(50_000));
  expect(cache.stats().misses).toBe(51);
  cache.get('huge', () => analysisWithTree(1));
  expect(cache.stats().misses).toBe(52);
  cache.get('q49', () => analysisWithTree(1));
  expect(cache.stats().hits).toBe(1);
});
