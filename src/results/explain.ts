// An EXPLAIN's plan, reduced to what the agent may see: the indexes it cannot see are not named.
//
// The plan of a statement over policy tables names the indexes PostgreSQL chose, and an index
// on a hidden column (`customers_tenant_api_secret_idx`) serves plain reads of visible ones too
// (an index-only scan on its leading tenant column). Each such name, as a whole identifier, reads
// `hidden index` in every output format (text, JSON, XML, YAML).
import { dataRowValues, type BackendFrame } from '../protocol/backend/framer';
import * as backend from '../protocol/backend/serializer';

export const HIDDEN_INDEX = 'hidden index';

/** The names to replace, longest first (one may contain another), as one pattern; undefined with none. */
export function explainScrubber(hiddenIndexNames: readonly string[]): RegExp | undefined {
  if (hiddenIndexNames.length === 0) return undefined;
  const names = [...hiddenIndexNames].sort((a, b) => b.length - a.length).map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  // Not inside a longer identifier; a quoted name keeps its quotes.
  return new RegExp(`(?<![\\w$])(?:${names.join('|')})(?![\\w$])`, 'g');
}

/** A DataRow of an EXPLAIN's output with hidden index names replaced; the same frame when none occurs. */
export function scrubExplainRow(frame: BackendFrame, pattern: RegExp): Buffer {
  const values = dataRowValues(frame);
  let changed = false;
  const out = values.map((v) => {
    if (v === null) return null;
    const text = v.toString('utf8');
    const scrubbed = text.replace(pattern, HIDDEN_INDEX);
    if (scrubbed === text) return v;
    changed = true;
    return Buffer.from(scrubbed, 'utf8');
  });
  return changed ? backend.dataRow(out) : frame.raw;
}
