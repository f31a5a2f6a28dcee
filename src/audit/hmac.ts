// HMAC-SHA256 with its key set up once, for the many short texts the audit trail keys (sql_hmac, the keyed chain).
import { createHash, createHmac, type Hash } from 'node:crypto';

/**
 * HMAC-SHA256 (RFC 2104) with the key's two padded blocks hashed once: each text then costs two
 * copies of a hash state instead of a new HMAC with its key set-up. Same digest as createHmac.
 */
export class PrekeyedHmac {
  declare private readonly inner: Hash;
  declare private readonly outer: Hash;

  constructor(key: Buffer) {
    const block = Buffer.alloc(64);
    (key.length > 64 ? createHash('sha256').update(key).digest() : key).copy(block);
    const pad = (byte: number) => Buffer.from(block.map((b) => b ^ byte));
    // Non-enumerable like the key they are made of.
    Object.defineProperty(this, 'inner', { value: createHash('sha256').update(pad(0x36)), enumerable: false });
    Object.defineProperty(this, 'outer', { value: createHash('sha256').update(pad(0x5c)), enumerable: false });
  }

  hex(text: string): string {
    return this.outer.copy().update(this.inner.copy().update(text, 'utf8').digest()).digest('hex');
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
