// Strict cursor over the body of one client message: every read is bounds-checked.
//
// The reader works on a window [start, end) of a larger buffer (usually the network chunk the
// message arrived in), so it must never look past `end`: the bytes there belong to the next
// message. Anything malformed becomes a ProxyError('protocol_violation'), never a RangeError.

import { isUtf8 } from 'buffer';
import { ProxyError } from '../../errors/catalogue';

/** A protocol_violation whose detail says what was wrong (safe to show: it names no data). */
export function violation(detail: string): ProxyError {
  return new ProxyError('protocol_violation', { detail, logMessage: detail });
}

export class BodyReader {
  private offset: number;

  constructor(
    private readonly buf: Buffer,
    start: number,
    private readonly end: number,
    /** Names the message in errors, e.g. "Bind". */
    private readonly what: string,
  ) {
    this.offset = start;
  }

  /** Bytes left between the cursor and the end of the message. */
  remaining(): number {
    return this.end - this.offset;
  }

  byte(): number {
    this.need(1);
    return this.buf[this.offset++];
  }

  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }

  /** Counts in the protocol are unsigned 16-bit (PostgreSQL allows 65535 bind parameters). */
  uint16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }

  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  /** Object identifiers are unsigned 32-bit. */
  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  /**
   * A NUL-terminated UTF-8 string. The session pins client_encoding to UTF8, so bytes that
   * are not valid UTF-8 are refused rather than silently replaced by U+FFFD (which would make
   * the text the proxy checks differ from the bytes the client sent).
   */
  cstring(): string {
    const nul = this.buf.indexOf(0, this.offset);
    if (nul < 0 || nul >= this.end) {
      throw violation(`${this.what}: string is not NUL-terminated within the message`);
    }
    const start = this.offset;
    this.offset = nul + 1;
    if (nul === start) return '';
    const view = this.buf.subarray(start, nul);
    if (!isUtf8(view)) throw violation(`${this.what}: string is not valid UTF-8`);
    return view.toString('utf8');
  }

  /** A view (no copy) of the next n bytes. */
  bytes(n: number): Buffer {
    if (n < 0) throw violation(`${this.what}: negative length ${n}`);
    this.need(n);
    const view = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return view;
  }

  /** A view of everything left. */
  rest(): Buffer {
    return this.bytes(this.remaining());
  }

  /** The message must end exactly here: trailing bytes mean the client and proxy disagree. */
  done(): void {
    if (this.offset !== this.end) {
      throw violation(`${this.what}: ${this.end - this.offset} unexpected bytes after the last field`);
    }
  }

  private need(n: number): void {
    if (this.end - this.offset < n) {
      throw violation(`${this.what}: message ends before its last field`);
    }
  }
}
