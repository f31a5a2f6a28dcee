// EXPLAIN output: hidden index names read "hidden index" where the plan names an index, never in the agent's own text.
import { explainScrubber } from '../../../src/results/explain';

const scrub = explainScrubber(['t_secret_idx', 't_secret_idx2', 'Odd "Name"'])!;

test('JSON, YAML and XML: the Index Name property, names escaped as each format escapes them', () => {
  expect(scrub('[\n  {\n    "Plan": {\n      "Index Name": "t_secret_idx",\n      "Relation Name": "customers"')).toBe('[\n  {\n    "Plan": {\n      "Index Name": "hidden index",\n      "Relation Name": "customers"');
  expect(scrub('      "Index Name": "Odd \\"Name\\"",')).toBe('      "Index Name": "hidden index",');
  expect(scrub('- Plan: \n    Index Name: "t_secret_idx2"\n    Relation Name: "t"')).toBe('- Plan: \n    Index Name: "hidden index"\n    Relation Name: "t"');
  expect(scrub('      <Index-Name>t_secret_idx2</Index-Name>')).toBe('      <Index-Name>hidden index</Index-Name>');
  // Part of a longer name: left alone.
  expect(scrub('      "Index Name": "t_secret_idx_old",')).toBe('      "Index Name": "t_secret_idx_old",');
  expect(explainScrubber([])).toBeUndefined();
});

test("the agent's own text, wherever it lands, is never touched: replacing it would confirm a guessed name", () => {
  for (const out of [
    // Each format escapes a string's quotes and line breaks: no literal starts a line or a property.
    '      "Filter": "((name)::text = \'x\\n      \\"Index Name\\": \\"t_secret_idx\\"\'::text)",',
    '    Filter: "((name)::text = \'x\\n    Index Name: \\"t_secret_idx\\"\'::text)"',
    "      <Filter>((name)::text = '&lt;Index-Name&gt;t_secret_idx&lt;/Index-Name&gt;'::text)</Filter>",
    // A text plan is not scrubbed at all (a text EXPLAIN runs as JSON where there is something to hide).
    'Index Scan using t_secret_idx on t',
  ]) {
    expect(scrub(out)).toBe(out);
  }
});
