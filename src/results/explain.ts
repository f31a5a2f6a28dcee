// An EXPLAIN's plan, reduced to what the agent may see: the indexes it cannot see are not named.
//
// The plan of a statement over policy tables names the indexes PostgreSQL chose, and an index
// on a hidden column (`customers_tenant_api_secret_idx`) serves plain reads of visible ones too
// (an index-only scan on its leading tenant column). Such a name reads `hidden index`, but only
// where the plan itself names an index, the Index Name property, never in text the agent wrote
// (a literal in a Filter): replacing it there would tell the agent that the string it chose is a
// hidden index's name. JSON, YAML and XML escape the agent's strings, so none can imitate that
// property; a text EXPLAIN runs as JSON where there are indexes to hide (rewrite/index.ts), and
// INSERT … ON CONFLICT, whose plan lists arbiter indexes, is not explained (classify.ts).
import { dataRowValues, type BackendFrame } from '../protocol/backend/framer';
import * as backend from '../protocol/backend/serializer';

export const HIDDEN_INDEX = 'hidden index';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** How each format prints a name: escaped as a JSON string (JSON, YAML), or for XML. */
const inJson = (n: string) => JSON.stringify(n).slice(1, -1);
const inXml = (n: string) => n.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Replaces the hidden index names a plan names; undefined when there are none to hide. */
export function explainScrubber(hiddenIndexNames: readonly string[]): ((text: string) => string) | undefined {
  if (hiddenIndexNames.length === 0) return undefined;
  const names = [...hiddenIndexNames].sort((a, b) => b.length - a.length);
  const alternatives = (form: (n: string) => string) => [...new Set(names.map(form))].map(escape).join('|');
  const json = new RegExp(`^(\\s*"Index Name": ")(?:${alternatives(inJson)})(")`, 'gm');
  const yaml = new RegExp(`^(\\s*Index Name: ")(?:${alternatives(inJson)})(")`, 'gm');
  const xml = new RegExp(`(<Index-Name>)(?:${alternatives(inXml)})(</Index-Name>)`, 'g');
  return (value) => value.replace(json, `$1${HIDDEN_INDEX}$2`).replace(yaml, `$1${HIDDEN_INDEX}$2`).replace(xml, `$1${HIDDEN_INDEX}$2`);
}

/** A DataRow of an EXPLAIN's output with hidden index names replaced; the same frame when none occurs. */
export function scrubExplainRow(frame: BackendFrame, scrub: (text: string) => string): Buffer {
  const values = dataRowValues(frame);
  let changed = false;
  const out = values.map((v) => {
    if (v === null) return null;
    const text = v.toString('utf8');
    const scrubbed = scrub(text);
    if (scrubbed === text) return v;
    changed = true;
    return Buffer.from(scrubbed, 'utf8');
  });
  return changed ? backend.dataRow(out) : frame.raw;
}
