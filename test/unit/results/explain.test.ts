// EXPLAIN output: hidden index names read "hidden index", as whole identifiers only.
import { explainScrubber } from '../../../src/results/explain';

test('whole identifiers, longest first, quoted ones keep their quotes; nothing to hide, no pattern', () => {
  const pattern = explainScrubber(['t_secret_idx', 't_secret_idx2', 'Odd$Name'])!;
  const scrub = (text: string) => text.replace(pattern, 'hidden index');
  expect(scrub('Index Only Scan using t_secret_idx on customers')).toBe('Index Only Scan using hidden index on customers');
  expect(scrub('Bitmap Index Scan on t_secret_idx2')).toBe('Bitmap Index Scan on hidden index');
  expect(scrub('"Index Name": "t_secret_idx",')).toBe('"Index Name": "hidden index",');
  expect(scrub('Index Scan using "Odd$Name" on t')).toBe('Index Scan using "hidden index" on t');
  // Part of a longer name: left alone.
  expect(scrub('Index Scan using my_t_secret_idx_old on t')).toBe('Index Scan using my_t_secret_idx_old on t');
  expect(explainScrubber([])).toBeUndefined();
});
