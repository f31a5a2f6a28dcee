// The one-pass texts of a chained line and the prekeyed HMAC give exactly what the general serialisers and createHmac give.
import { createHash, createHmac } from 'node:crypto';
import { canonicalJson, canonicalJsonReference, fieldTexts } from '../../../src/audit/canonical';
import { chainLine, GENESIS_HASH, KEYED } from '../../../src/audit/chain';
import type { AuditEvent } from '../../../src/audit/event';
import { chainKeyOf, PrekeyedHmac } from '../../../src/audit/hmac';

/** canonicalJson as it was first written: JSON.stringify with a replacer that sorts each object's keys. */
function replacerCanonical(value: unknown): string {
  let indexKey = false;
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      if (/^(?:0|[1-9]\d*)$/.test(k)) indexKey = true;
      out[k] = (v as Record<string, unknown>)[k];
    }
    return out;
  });
  return indexKey && text !== undefined ? canonicalJsonReference(JSON.parse(text)) : (text ?? 'null');
}

/** The chain's line and hash as built before the one-pass texts: a copy with the chain's fields, two serialisations. */
function generalLine(event: object, prevHash: string, key?: PrekeyedHmac): { line: string; hash: string } {
  const body: Record<string, unknown> = { ...(event as Record<string, unknown>), prev_hash: prevHash };
  delete body.hash;
  if (key) body.chain = KEYED;
  else delete body.chain;
  const text = canonicalJson(body);
  const hash = key ? key.hex(text) : createHash('sha256').update(text, 'utf8').digest('hex');
  return { line: `${JSON.stringify({ ...body, hash })}\n`, hash };
}

const principal = Object.freeze({ user: 'agent', tenant_id: '7', roles: Object.freeze(['support', 'ops']) });
const policy = Object.freeze({ name: 'p', hash: 'a'.repeat(64) });

const events: object[] = [
  { id: '01J0000000000000000000001', time: '2025-01-01T00:00:00.000Z', kind: 'statement', decision: 'allowed', session_id: 's', principal, policy, sql: 'SELECT $1', rows: 1, duration_ms: 0.25 },
  { kind: 'statement', decision: 'refused', principal: { user: 'u', tenant_id: '1', roles: ['r'] }, code: 'field_denied', message: 'quote " backslash \\ tab \t nl \n', approval_id: undefined },
  { kind: 'statement', sql: 'emoji 😀 lone \ud800 and \udfff, line sep \u2028, del \x7f, nul \0', rows: -0, duration_ms: NaN, flags: ['a', 'b'] },
  { kind: 'statement', changes: { table: 'public.orders', operation: 'update', rows: [{ key: { id: 7 }, before: { status: 'new', '10': 1 }, after: { status: 'paid' } }] } },
  { kind: 'tool', tool: { name: 'db.sql', arguments: { b: [1, { d: 2, c: undefined }], a: null } }, n: Infinity, t: true, f: false },
  { kind: 'statement', time: new Date(0) },
  { kind: 'statement', nested: { toJSON: () => ({ z: 1, a: 2 }) } },
  { kind: 'statement', '3': 'index key first' },
  { kind: 'statement', chain: 'forged', hash: 'x', prev_hash: 'y' },
  JSON.parse('{"kind":"statement","__proto__":{"a":1},"z":2}') as object,
  { kind: 'statement', é: 'ü', Ä: 1, A: 1, _: 1, fn: () => 1, sym: Symbol('s') },
  {},
];

describe('the one-pass line of a chained event', () => {
  const key = chainKeyOf(Buffer.from('k'.repeat(40)));
  test.each(events.map((e, i) => [i, e]))('event %i: the same line and hash as the general form, unkeyed and keyed', (_i, event) => {
    for (const prev of [GENESIS_HASH, 'f'.repeat(64)]) {
      expect(chainLine(event as AuditEvent, prev)).toEqual(generalLine(event, prev));
      expect(chainLine(event as AuditEvent, prev, key)).toEqual(generalLine(event, prev, key));
    }
  });

  test('canonicalJson gives the text it always gave, whatever the value', () => {
    const odd = [{ a: { toJSON: () => ({ toJSON: () => 'inner', b: 1 }) } }, [{ b: 1, a: [undefined, () => 1] }], new Map([[1, 2]]), 'x', -0, null];
    for (const value of [...events, ...odd]) expect(canonicalJson(value)).toBe(replacerCanonical(value));
  });

  test('the canonical text is the definition of the line a reader parses back', () => {
    // Not a `__proto__` field: canonicalJson sets it as a prototype, as it always has, and audit verify reads it the same way.
    for (const event of events.filter((e) => !Object.hasOwn(e, '__proto__'))) {
      const { line, hash } = chainLine(event as AuditEvent, GENESIS_HASH);
      const { hash: written, ...body } = JSON.parse(line) as Record<string, unknown>;
      expect(written).toBe(hash);
      expect(createHash('sha256').update(canonicalJsonReference(body)).digest('hex')).toBe(hash);
    }
  });

  test('fields it cannot reproduce exactly are left to the general serialisers', () => {
    expect(fieldTexts({ '3': 'x' }, [])).toBeUndefined();
    expect(fieldTexts({ when: new Date(0) }, [])).toBeUndefined();
    expect(fieldTexts({ n: 1n }, [])).toBeUndefined();
    expect(fieldTexts({ prev_hash: 'x' }, [['prev_hash', 'y']])).toBeUndefined();
    expect(fieldTexts({ b: 'x', a: { d: 1, c: 2 } }, [['t', 'v']])).toEqual({ line: '{"b":"x","a":{"d":1,"c":2},"t":"v"', canonical: '{"a":{"c":2,"d":1},"b":"x","t":"v"}' });
  });

  test('a frozen nested value is serialised once, and a frozen Date or a mutable nested value every time', () => {
    const roles = ['a'];
    const shallow = Object.freeze({ user: 'u', roles });
    expect(fieldTexts({ p: shallow }, [])?.line).toBe('{"p":{"user":"u","roles":["a"]}');
    roles.push('b');
    expect(fieldTexts({ p: shallow }, [])?.line).toBe('{"p":{"user":"u","roles":["a","b"]}');
    const at = Object.freeze({ at: Object.freeze(new Date(0)) });
    expect(fieldTexts({ p: at }, [])?.canonical).toBe(`{"p":{"at":"${new Date(0).toISOString()}"}}`);
    at.at.setTime(1000);
    expect(fieldTexts({ p: at }, [])?.canonical).toBe(`{"p":{"at":"${new Date(1000).toISOString()}"}}`);
  });
});

describe('the prekeyed HMAC', () => {
  test('gives createHmac digests for short, long, non-ASCII and ill-formed texts, and long keys', () => {
    const texts = ['', 'SELECT 1', 'é'.repeat(5000), 'x'.repeat(4096), 'x'.repeat(4097), '😀'.repeat(2048), 'lone \ud800 surrogate', '\0nul'];
    for (const key of [Buffer.from('k'.repeat(32)), Buffer.alloc(64, 7), Buffer.alloc(65, 9), Buffer.from('short')]) {
      const hmac = new PrekeyedHmac(key);
      for (const text of texts) expect(hmac.hex(text)).toBe(createHmac('sha256', key).update(text, 'utf8').digest('hex'));
    }
  });

  test('keeps neither its key nor the last text where a log line or a serialised object would show them', () => {
    const hmac = new PrekeyedHmac(Buffer.from('secret-key-material-secret-key-material'));
    hmac.hex('SELECT 4111111111111111');
    expect(JSON.stringify({ hmac })).toBe('{"hmac":"[hmac key]"}');
    expect(Object.keys(hmac)).toEqual([]);
  });
});
