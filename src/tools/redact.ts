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

/** Keys under these arguments are field names (a where filter, a write's data, a composite id). */
const FIELD_KEYED = new Set(['where', 'data', 'id']);
/** Keys that are part of the argument language itself: operators and aggregate parts. */
const LANGUAGE = new Set(['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'not_in', 'like', 'ilike', 'is_null', 'fn', 'field', 'direction']);

/**
 * `known`: the names the caller's scope has (models, visible fields). With it, a string in a
 * naming place, or a field key, that names nothing known is a value after all (an agent may put
 * anything there) and becomes a placeholder too; without it every name is kept.
 */
export function redactArguments(args: unknown, known?: (name: string) => boolean): unknown {
  const isKnown = (name: string) => known === undefined || known(name.replace(/^-/, '')) || LANGUAGE.has(name.toLowerCase());
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
        // A field key that names no field is a value after all.
        const fieldKey = top !== undefined && FIELD_KEYED.has(top) && depth >= 1;
        const shown = fieldKey && !isKnown(k) ? placeholder() : k.length > MAX_NAME ? `${k.slice(0, MAX_NAME)}…` : k;
        Object.defineProperty(out, shown, { value: visit(v, k, top ?? k, depth + 1), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    if (depth === 1 && key === 'reason') return REASON_SHOWN;
    if (depth === 1 && key === 'sql' && typeof value === 'string') return redactSql(value);
    if (typeof value === 'boolean' && key !== undefined && SWITCHES.has(key)) return value;
    const naming = (top !== undefined && NAMED.has(top)) || (top === 'aggregates' && key !== undefined && AGGREGATE_NAMES.has(key));
    if (typeof value === 'string' && naming && value.length <= MAX_NAME && isKnown(value)) return value;
    if (value === null) return null;
    return placeholder();
  };
  return visit(args, undefined, undefined, 0);
}
