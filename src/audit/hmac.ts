// HMAC-SHA256 with its key set up once, for the many short texts the audit trail keys (sql_hmac, the keyed chain).
import { createHash, createHmac, hash as digest } from 'node:crypto';

/** Texts of up to this many UTF-16 code units (3 UTF-8 bytes each at most) are hashed from a buffer of the key's own. */
const SCRATCH_UNITS = 4096;

/**
 * HMAC-SHA256 (RFC 2104) with the key's two padded blocks made once: each text is hashed after
 * the inner block in one call (crypto.hash), and that digest after the outer block. One-shot
 * hashing makes no Hash objects per text; a profile showed them (and their collection) among the
 * largest costs of a statement's audit event. Same digest as createHmac.
 */
export class PrekeyedHmac {
  /** The inner padded block, then room for a text. */
  declare private readonly inner: Buffer;
  /** The outer padded block, then the inner digest. */
  declare private readonly outer: Buffer;

  constructor(key: Buffer) {
    const block = Buffer.alloc(64);
    (key.length > 64 ? createHash('sha256').update(key).digest() : key).copy(block);
    const inner = Buffer.alloc(64 + 3 * SCRATCH_UNITS);
    const outer = Buffer.alloc(64 + 32);
    for (let i = 0; i < 64; i++) {
      inner[i] = block[i] ^ 0x36;
      outer[i] = block[i] ^ 0x5c;
    }
    // Non-enumerable like the key they are made of.
    Object.defineProperty(this, 'inner', { value: inner, enumerable: false });
    Object.defineProperty(this, 'outer', { value: outer, enumerable: false });
  }

  hex(text: string): string {
    const inner = this.inner;
    let innerDigest: string;
    if (text.length <= SCRATCH_UNITS) {
      const n = inner.write(text, 64, 'utf8');
      innerDigest = digest('sha256', inner.subarray(0, 64 + n), 'binary');
      // The agent's text (its literals) is not kept in the buffer once hashed.
      inner.fill(0, 64, 64 + n);
    } else {
      innerDigest = digest('sha256', Buffer.concat([inner.subarray(0, 64), Buffer.from(text, 'utf8')]), 'binary');
    }
    this.outer.write(innerDigest, 64, 'binary');
    return digest('sha256', this.outer, 'hex');
  }

  toJSON(): string {
    return '[hmac key]';
  }
}

/**
 * The chain's own key, derived from audit.key_file so that the one secret serves both uses
 * without a chain hash ever being an sql_hmac of some text (or the reverse).
 */
export function chainKeyOf(auditKey: Buffer): PrekeyedHmac {
  return new PrekeyedHmac(createHmac('sha256', auditKey).update('ormai-proxy audit chain v1', 'utf8').digest());
}
