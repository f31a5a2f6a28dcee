// Canonical JSON (what the chain hashes) and an event's line text, both built in one pass over its fields.
//
// The definition (canonicalJsonReference): every object's keys sorted by UTF-16 code unit,
// undefined values dropped, no whitespace, values as JSON.stringify writes them. The audit file
// hashes every event with it, and writes the event as JSON.stringify gives it (its own key order);
// a profile of cached statements showed both serialisations among the largest costs per statement.

/** The definition: every object's keys sorted by UTF-16 code unit, undefined values dropped. */
export function canonicalJsonReference(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJsonReference(v))).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJsonReference(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** Keys JavaScript enumerates before all others, in numeric order, whatever order they were set in. */
const INDEX_KEY = /^(?:0|[1-9]\d*)$/;

function isIndexKey(key: string): boolean {
  const c = key.charCodeAt(0);
  return c >= 0x30 && c <= 0x39 && INDEX_KEY.test(key);
}

/**
 * JSON.stringify with each object's keys re-inserted in sorted order by a replacer. The general
 * form: an object with an index-like key ("0", "12") cannot hold its keys in sorted order, so such
 * a value is serialised by the definition instead.
 */
function canonicalJsonByReplacer(value: unknown): string {
  let indexKey = false;
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const keys = Object.keys(v as Record<string, unknown>).sort();
    const out: Record<string, unknown> = {};
    for (const k of keys) {
      if (INDEX_KEY.test(k)) indexKey = true;
      out[k] = (v as Record<string, unknown>)[k];
    }
    return out;
  });
  // Through JSON as the line is: toJSON applied, undefined dropped, -0 as 0.
  if (indexKey && text !== undefined) return canonicalJsonReference(JSON.parse(text));
  return text ?? 'null';
}

/** What sortedCopy answers for a value it cannot copy in sorted order. */
const ODD = Symbol('odd');

/**
 * A copy of `value` as JSON.stringify sees it (toJSON applied once, with the same key), each
 * object's keys inserted in sorted order; ODD when some object cannot be copied so (an index-like
 * key, which JavaScript enumerates first, or a key named toJSON, which the copy would obey).
 */
function sortedCopy(value: unknown, key: string): unknown {
  if (value === null || typeof value !== 'object') return value;
  let v = value as Record<string, unknown>;
  if (typeof v.toJSON === 'function') {
    v = (v.toJSON as (k: string) => Record<string, unknown>)(key);
    if (v === null || typeof v !== 'object') return v;
  }
  if (Array.isArray(v)) {
    const out = new Array<unknown>(v.length);
    for (let i = 0; i < v.length; i++) if ((out[i] = sortedCopy(v[i], String(i))) === ODD) return ODD;
    return out;
  }
  const keys = Object.keys(v).sort();
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    if (isIndexKey(k) || k === 'toJSON' || (out[k] = sortedCopy(v[k], k)) === ODD) return ODD;
  }
  return out;
}

/**
 * The definition's text, built by the engine's serialiser without a replacer (which takes it off
 * its fast path): JSON.stringify of a copy with sorted keys. What the copy cannot hold goes the
 * general way (canonicalJsonByReplacer), with the same result as ever.
 */
export function canonicalJson(value: unknown): string {
  const copy = sortedCopy(value, '');
  if (copy === ODD) return canonicalJsonByReplacer(value);
  return JSON.stringify(copy) ?? 'null';
}

/** What JSON.stringify escapes in a string (lone surrogates included): anything else it writes between quotes as it is. */
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;

function quote(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/**
 * Texts of frozen nested values (a session's principal and policy, the same objects in every
 * event of the session): both serialisations, made once. Only frozen values whose own values are
 * frozen data all the way down are kept, so the text can never go stale.
 */
const FROZEN_TEXTS = new WeakMap<object, { line: string; canonical: string } | false>();

/** Frozen plain objects and arrays of frozen data: a frozen Date or Map can still change. */
function deeplyFrozen(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== Array.prototype && proto !== null) return false;
  if (!Object.isFrozen(value)) return false;
  for (const d of Object.values(Object.getOwnPropertyDescriptors(value))) {
    if (!('value' in d)) return false;
    if (d.value !== null && (typeof d.value === 'object' || typeof d.value === 'function') && !deeplyFrozen(d.value as object)) return false;
  }
  return true;
}

function nestedTexts(value: object): { line: string; canonical: string } {
  const known = FROZEN_TEXTS.get(value);
  if (known) return known;
  const texts = { line: JSON.stringify(value), canonical: canonicalJson(value) };
  if (known === undefined && Object.isFrozen(value)) FROZEN_TEXTS.set(value, deeplyFrozen(value) ? texts : false);
  return texts;
}

/**
 * The line and canonical texts of `fields` followed by `tail` (the chain's own fields, set after
 * the event's): `line` is JSON.stringify({ ...fields, ...tail }) without its closing brace, and
 * `canonical` is canonicalJson of the same object. Each field's value is serialised once for both
 * when it is a string, a number, a boolean or null. Undefined when the object is not one this
 * pass reproduces exactly (a tail key among the fields, an index-like key, a toJSON, a bigint):
 * the caller then uses the general serialisers.
 */
export function fieldTexts(fields: object, tail: ReadonlyArray<readonly [string, string]>): { line: string; canonical: string } | undefined {
  const keys = Object.keys(fields);
  const parts: Array<[string, string]> = [];
  let line = '{';
  for (const k of keys) {
    const v = (fields as Record<string, unknown>)[k];
    // A `__proto__` field is in the line but, set on a plain object, not in the canonical text.
    if (isIndexKey(k) || k === 'toJSON' || k === '__proto__') return undefined;
    for (let i = 0; i < tail.length; i++) if (tail[i][0] === k) return undefined;
    let own: string;
    let canonical: string;
    switch (typeof v) {
      case 'string':
        own = canonical = quote(v);
        break;
      case 'number':
        // JSON.stringify writes a number as String() does, -0 as 0, and a non-finite one as null.
        own = canonical = Number.isFinite(v) ? String(v) : 'null';
        break;
      case 'boolean':
        own = canonical = v ? 'true' : 'false';
        break;
      case 'object': {
        if (v !== null && typeof (v as { toJSON?: unknown }).toJSON === 'function') return undefined;
        if (v === null) own = canonical = 'null';
        else ({ line: own, canonical } = nestedTexts(v));
        break;
      }
      case 'undefined':
      case 'function':
      case 'symbol':
        continue; // JSON.stringify leaves such a property out
      default:
        return undefined;
    }
    const name = quote(k);
    line += `${line.length > 1 ? ',' : ''}${name}:${own}`;
    parts.push([k, `${name}:${canonical}`]);
  }
  for (const [k, v] of tail) {
    const text = `${quote(k)}:${quote(v)}`;
    line += `${line.length > 1 ? ',' : ''}${text}`;
    parts.push([k, text]);
  }
  parts.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let canonical = '{';
  for (let i = 0; i < parts.length; i++) canonical += i === 0 ? parts[i][1] : `,${parts[i][1]}`;
  return { line, canonical: `${canonical}}` };
}
