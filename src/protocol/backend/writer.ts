// Growable byte writer that builds one backend message: byte type · int32 length · body.
//
// The length field counts itself and the body but not the type byte; finish() fills it in
// once the body is known. Messages without a type byte (the one-byte SSL answer) are built
// directly by the serializer.

import { ProxyError } from '../../errors/catalogue';

export class Writer {
  private buf: Buffer;
  private off = 5;

  /** `code` is the message type character; `sizeHint` the expected body size in bytes. */
  constructor(code: string, sizeHint = 64) {
    this.buf = Buffer.allocUnsafe(5 + sizeHint);
    this.buf[0] = code.charCodeAt(0);
  }

  byte(v: number): this {
    this.ensure(1);
    this.buf[this.off++] = v;
    return this;
  }

  int16(v: number): this {
    this.ensure(2);
    this.off = this.buf.writeInt16BE(v, this.off);
    return this;
  }

  /** Counts, which the protocol defines as unsigned 16-bit. */
  uint16(v: number): this {
    this.ensure(2);
    this.off = this.buf.writeUInt16BE(v, this.off);
    return this;
  }

  int32(v: number): this {
    this.ensure(4);
    this.off = this.buf.writeInt32BE(v, this.off);
    return this;
  }

  /** Object identifiers, which are unsigned 32-bit. */
  uint32(v: number): this {
    this.ensure(4);
    this.off = this.buf.writeUInt32BE(v, this.off);
    return this;
  }

  /**
   * A UTF-8 string and its NUL terminator. A NUL inside the text would end the field early
   * and make the client read the rest of the message as other fields, so it is refused.
   */
  cstring(s: string): this {
    if (s.includes('\0')) {
      throw new ProxyError('internal_error', { logMessage: 'refused to write a string containing NUL' });
    }
    this.ensureText(s, 1);
    this.off += this.buf.write(s, this.off, 'utf8');
    this.buf[this.off++] = 0;
    return this;
  }

  /** Raw bytes (a string is written as UTF-8), without a length prefix or terminator. */
  bytes(b: Buffer | string): this {
    if (typeof b === 'string') {
      this.ensureText(b, 0);
      this.off += this.buf.write(b, this.off, 'utf8');
    } else {
      this.ensure(b.length);
      this.off += b.copy(this.buf, this.off);
    }
    return this;
  }

  /** The finished message; the writer must not be used afterwards. */
  finish(): Buffer {
    this.buf.writeInt32BE(this.off - 1, 1);
    return this.buf.subarray(0, this.off);
  }

  /**
   * Room for s in UTF-8 plus `extra` bytes. A UTF-16 unit is at most 3 UTF-8 bytes, so the
   * exact (slower) length is computed only when that bound does not already fit.
   */
  private ensureText(s: string, extra: number): void {
    if (this.off + s.length * 3 + extra > this.buf.length) this.ensure(Buffer.byteLength(s, 'utf8') + extra);
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.off + n) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buf.copy(grown, 0, 0, this.off);
    this.buf = grown;
  }
}
