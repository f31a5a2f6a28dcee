// EXPLAIN output: hidden index names read "hidden index" where the plan names an index, never in the agent's own text.
import { explainScrubber } from '../../../src/results/explain';

const scrub = explainScrubber(['t_secret_idx', 't_secret_idx2', 'Odd Name'])!;

test('text: scan nodes, top-level or nested, forward or backward; quoted names as quote_identifier prints them', () => {
  expect(scrub('Index Only Scan using t_secret_idx on customers')).toBe('Index Only Scan using hidden index on customers');
  expect(scrub('  ->  Index Scan Backward using t_secret_idx2 on customers c')).toBe('  ->  Index Scan Backward using hidden index on customers c');
  expect(scrub('        ->  Bitmap Index Scan on t_secret_idx')).toBe('        ->  Bitmap Index Scan on hidden index');
  expect(scrub('Index Scan using "Odd Name" on t')).toBe('Index Scan using hidden index on t');
  // Part of a longer name, or another index: left alone.
  expect(scrub('Index Scan using t_secret_idx_old on t')).toBe('Index Scan using t_secret_idx_old on t');
});

test("the agent's own text in a condition is never touched: replacing it would confirm a guessed name", () => {
  for (const line of [
    "  Filter: ((name)::text = 't_secret_idx'::text)",
    "  Filter: ((name)::text = 'Index Scan using t_secret_idx on x'::text)",
    '      "Filter": "((name)::text = \'\\"Index Name\\": \\"t_secret_idx\\"\'::text)",',
    "      <Filter>((name)::text = '&lt;Index-Name&gt;t_secret_idx&lt;/Index-Name&gt;'::text)</Filter>",
  ]) {
    expect(scrub(line)).toBe(line);
  }
});

test('JSON, YAML and XML: the Index Name property', () => {
  expect(scrub('[\n  {\n    "Plan": {\n      "Index Name": "t_secret_idx",\n      "Relation Name": "customers"')).toBe('[\n  {\n    "Plan": {\n      "Index Name": "hidden index",\n      "Relation Name": "customers"');
  expect(scrub('- Plan: \n    Index Name: "Odd Name"\n    Relation Name: "t"')).toBe('- Plan: \n    Index Name: "hidden index"\n    Relation Name: "t"');
  expect(scrub('      <Index-Name>t_secret_idx2</Index-Name>')).toBe('      <Index-Name>hidden index</Index-Name>');
  expect(explainScrubber([])).toBeUndefined();
});
