// The hash chain of the audit file: canonical JSON, each line's SHA-256 over its content and the previous line's hash.
//
// A line is the JSON of an event plus `prev_hash` and `hash`, where
//   hash = sha256_hex(canonical_json(event with prev_hash, without hash))
// and canonical JSON sorts object keys (by UTF-16 code unit), drops undefined values and has no
// whitespace. The first line of a file has prev_hash = 64 zeros. Editing a line breaks its own
// hash; removing, inserting or reordering lines breaks the link of the line after the change.
import { createHash } from 'node:crypto';
import type { AuditEvent } from './event';

export const GENESIS_HASH = '0'.repeat(64);
const HASH = /^[0-9a-f]{64}$/;

export type ChainedEvent = AuditEvent & { prev_hash: string; hash: string };

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

/**
 * JSON.stringify with each object's keys re-inserted in sorted order: the same text as the
 * definition, built by the engine's serialiser (the audit file hashes every event with it).
 * An object with an index-like key ("0", "12") cannot hold its keys in sorted order, so such a
 * value is serialised by the definition instead.
 */
export function canonicalJson(value: unknown): string {
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

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Links an event to the previous hash and returns the line to append (with its newline) and the new hash. */
export function chainLine(event: AuditEvent, prevHash: string): { line: string; hash: string } {
  // The hash covers exactly what a reader of the line parses back: JSON.stringify drops undefined,
  // calls toJSON (Dates), writes -0 as 0, in the hash as in the line.
  const body: Record<string, unknown> = { ...(event as unknown as Record<string, unknown>), prev_hash: prevHash };
  delete body.hash;
  const hash = sha256(canonicalJson(body));
  return { line: `${JSON.stringify({ ...body, hash })}\n`, hash };
}

export type LinkResult = { ok: true; hash: string } | { ok: false; problem: string };

/**
 * Checks one line (without its newline) against the hash of the line before it. The problems
 * are worded for the operator reading `audit verify`; they never quote the line's content.
 */
export function checkLine(line: string, expectedPrev: string): LinkResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return { ok: false, problem: line.trim() === '' ? 'empty line' : 'not a JSON line' };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { ok: false, problem: 'not a JSON object' };
  const { hash, ...body } = parsed as Record<string, unknown>;
  if (typeof hash !== 'string' || !HASH.test(hash)) return { ok: false, problem: 'no hash field (not a chained audit line)' };
  if (typeof body.prev_hash !== 'string' || !HASH.test(body.prev_hash)) return { ok: false, problem: 'no prev_hash field (not a chained audit line)' };
  if (sha256(canonicalJson(body)) !== hash) return { ok: false, problem: 'edited: its hash does not match its content' };
  // The writer emits JSON.stringify of what it hashed, so any byte-level change (even one that
  // parses to the same value, such as re-spacing or an escaped letter) is an edit too.
  if (JSON.stringify(parsed) !== line) return { ok: false, problem: 'edited: not byte-for-byte the line the proxy wrote' };
  if (body.prev_hash !== expectedPrev) {
    return {
      ok: false,
      problem:
        expectedPrev === GENESIS_HASH
          ? 'does not start a chain: prev_hash is not 64 zeros (lines removed from the start?)'
          : 'does not follow the line before it: a line was removed, inserted or reordered here',
    };
  }
  return { ok: true, hash };
}

/** The hash a writer continues from, read from a file's last complete line; undefined when the line is not a chained event. */
export function lastHashOf(line: string): string | undefined {
  try {
    const parsed = JSON.parse(line) as { hash?: unknown };
    return typeof parsed?.hash === 'string' && HASH.test(parsed.hash) ? parsed.hash : undefined;
  } catch {
    return undefined;
  }
}
