// Tool-call arguments as the audit keeps them when the call never compiled: names kept, every value a placeholder.
//
// A compiled call carries its own redacted arguments (compile.ts: each value replaced by the
// placeholder of the parameter it became). A refused call has no parameters, and its arguments
// may be malformed in any way, so this walks them by key: what names things (model, fields,
// operators, sort directions, aggregate functions) is kept, every other leaf becomes $1, $2 …
// in order, and free text is never kept (the reason has its own audit field; SQL is kept as the
// audit keeps SQL, literals redacted).
import { redactSql } from '../audit/redact';

/** What the redacted arguments show for a reason: the audit event has it in its own field. */
export const REASON_SHOWN = '(reason: in the audit event)';

/** Top-level arguments whose strings are names (of a model, fields, an approval), not values. */
const NAMED = new Set(['model', 'select', 'group_by', 'order_by', 'approval_id']);
/** Inside aggregates, the keys that name a function or a field. */
const AGGREGATE_NAMES = new Set(['fn', 'field']);
/** Arguments whose booleans are switches, not values. */
const SWITCHES = new Set(['dry_run', 'is_null']);
/** A name is short; anything longer is treated as a value. */
const MAX_NAME = 128;
const MAX_DEPTH = 32;

export function redactArguments(args: unknown): unknown {
  let n = 0;
  const placeholder = () => `$${++n}`;
  // `top` is the top-level argument a value sits under: names are recognised by where they are,
  // never by a key alone (a where filter on a column called "model" holds a value).
  const visit = (value: unknown, key: string | undefined, top: string | undefined, depth: number): unknown => {
    if (value === undefined) return undefined;
    if (depth > MAX_DEPTH) return placeholder();
    if (Array.isArray(value)) return value.map((v) => visit(v, key, top, depth + 1));
    if (value !== null && typeof value === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        // defineProperty: a "__proto__" key (JSON.parse makes it an own key) stays a key.
        Object.defineProperty(out, k.length > MAX_NAME ? `${k.slice(0, MAX_NAME)}…` : k, { value: visit(v, k, top ?? k, depth + 1), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    if (depth === 1 && key === 'reason') return REASON_SHOWN;
    if (depth === 1 && key === 'sql' && typeof value === 'string') return redactSql(value);
    if (typeof value === 'boolean' && key !== undefined && SWITCHES.has(key)) return value;
    const naming = (top !== undefined && NAMED.has(top)) || (top === 'aggregates' && key !== undefined && AGGREGATE_NAMES.has(key));
    if (typeof value === 'string' && naming && value.length <= MAX_NAME) return value;
    if (value === null) return null;
    return placeholder();
  };
  return visit(args, undefined, undefined, 0);
}
