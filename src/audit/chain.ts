// The hash chain of the audit file: canonical JSON, each line's SHA-256 over its content and the previous line's hash.
//
// A line is the JSON of an event plus `prev_hash` and `hash`, where
//   hash = sha256_hex(canonical_json(event with prev_hash, without hash))
// and canonical JSON sorts object keys (by UTF-16 code unit), drops undefined values and has no
// whitespace. The first line of a file has prev_hash = 64 zeros. Editing a line breaks its own
// hash; removing, inserting or reordering lines breaks the link of the line after the change.
//
// Keyed (audit.key_file set): each line also holds `chain: "hmac-sha256"`, and
//   hash = hmac_sha256_hex(chain key, canonical_json(event with prev_hash and chain, without hash))
// with the chain key derived from the audit key (hmac.ts). Without the key nobody can write a
// line that verifies, so an edited file cannot be re-chained to pass as intact. Unkeyed, a full
// re-chain is caught by the heads the proxy publishes (heads.ts).
import { hash as digest } from 'node:crypto';
import { canonicalJson, fieldTexts } from './canonical';
import type { AuditEvent } from './event';
import type { PrekeyedHmac } from './hmac';

/** The `chain` field of a keyed line. */
export const KEYED = 'hmac-sha256';

export const GENESIS_HASH = '0'.repeat(64);
const HASH = /^[0-9a-f]{64}$/;

export type ChainedEvent = AuditEvent & { prev_hash: string; hash: string };

export { canonicalJson, canonicalJsonReference } from './canonical';

function sha256(text: string): string {
  return digest('sha256', text, 'hex');
}

/** Links an event to the previous hash and returns the line to append (with its newline) and the new hash; keyed when a key is given. */
export function chainLine(event: AuditEvent, prevHash: string, key?: PrekeyedHmac): { line: string; hash: string } {
  // One pass over the event's fields gives both texts; an event it cannot reproduce exactly goes the general way.
  const own = Object.hasOwn(event, 'hash') || Object.hasOwn(event, 'chain');
  const texts = own ? undefined : fieldTexts(event, key ? [['prev_hash', prevHash], ['chain', KEYED]] : [['prev_hash', prevHash]]);
  if (texts) {
    const hash = key ? key.hex(texts.canonical) : sha256(texts.canonical);
    return { line: `${texts.line},"hash":"${hash}"}\n`, hash };
  }
  // The hash covers exactly what a reader of the line parses back: JSON.stringify drops undefined,
  // calls toJSON (Dates), writes -0 as 0, in the hash as in the line.
  const body: Record<string, unknown> = { ...(event as unknown as Record<string, unknown>), prev_hash: prevHash };
  delete body.hash;
  if (key) body.chain = KEYED;
  else delete body.chain;
  const text = canonicalJson(body);
  const hash = key ? key.hex(text) : sha256(text);
  return { line: `${JSON.stringify({ ...body, hash })}\n`, hash };
}

/** `needsKey`: the line is keyed and no key was given, so it can be neither trusted nor refuted. */
export type LinkResult = { ok: true; hash: string } | { ok: false; problem: string; needsKey?: boolean };

/**
 * Checks one line (without its newline) against the hash of the line before it. The problems
 * are worded for the operator reading `audit verify`; they never quote the line's content.
 */
export function checkLine(line: string, expectedPrev: string, key?: PrekeyedHmac): LinkResult {
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
  if (body.chain !== undefined && body.chain !== KEYED) return { ok: false, problem: 'unknown chain algorithm' };
  const keyed = body.chain === KEYED;
  if (keyed && !key) return { ok: false, problem: 'keyed with the audit key: verify it with --key-file (or --config)', needsKey: true };
  if (!keyed && key) return { ok: false, problem: 'not keyed: written without the audit key, or by someone who does not have it' };
  const text = canonicalJson(body);
  if ((key ? key.hex(text) : sha256(text)) !== hash) return { ok: false, problem: key ? 'edited, or keyed with another key: its hash does not match its content' : 'edited: its hash does not match its content' };
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

/** Where a chain stands: its last line's hash, and that line's event id and time (what a published head names). */
export interface ChainHead {
  hash: string;
  event_id?: string;
  event_time?: string;
}

/** The head a writer continues from, read from a file's last complete line; undefined when the line is not a chained event. */
export function headOf(line: string): (ChainHead & { keyed: boolean }) | undefined {
  try {
    const parsed = JSON.parse(line) as { hash?: unknown; id?: unknown; time?: unknown; chain?: unknown };
    if (typeof parsed?.hash !== 'string' || !HASH.test(parsed.hash)) return undefined;
    return {
      hash: parsed.hash,
      ...(typeof parsed.id === 'string' ? { event_id: parsed.id } : {}),
      ...(typeof parsed.time === 'string' ? { event_time: parsed.time } : {}),
      keyed: parsed.chain === KEYED,
    };
  } catch {
    return undefined;
  }
}

/** The hash a writer continues from; undefined when the line is not a chained event. */
export function lastHashOf(line: string): string | undefined {
  return headOf(line)?.hash;
}
