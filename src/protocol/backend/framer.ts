// Splits the byte stream from the upstream PostgreSQL into whole frames, kept raw for forwarding.
//
// Frame: byte code · int32 length (counts itself, not the code) · body. A frame wholly inside
// a pushed chunk is returned as a view of that chunk; one split across chunks is assembled in
// a buffer owned by that frame alone, grown by doubling up to the declared length, so the
// views handed out are never overwritten and a big declared length costs nothing up front.
// A session's framer also gives long DataRows in pieces as they arrive (streamRowsAbove) and
// skips messages past the size limit instead of refusing them (skipOversized).

import { BackendMessage } from 'pg-protocol/dist/messages';
import { Parser } from 'pg-protocol/dist/parser';
import { ProxyError } from '../../errors/catalogue';

export interface BackendFrame {
  /** The message type, one character ('D', 'Z', 'E', ...). */
  code: string;
  /** The length field: body size + 4. */
  length: number;
  /** The whole frame, code byte included, to forward untouched. */
  raw: Buffer;
  /**
   * A message past maxMessageSize, read while skipOversized is set: `raw` is its 5-byte header
   * only (its body is discarded as it arrives). Never forward it.
   */
  oversized?: true;
  /**
   * A DataRow longer than streamRowsAbove that did not arrive in one chunk comes in pieces:
   * 'first' (its header and the bytes of the chunk it started in; `length` is the whole row's),
   * then 'more' for each chunk after, the last with `end`. The pieces, in order, are the row's
   * bytes exactly. The first ends its push(); the caller may then ask for the row whole instead
   * (assembleCurrent).
   */
  piece?: 'first' | 'more';
  end?: boolean;
}

export interface BackendFramerOptions {
  /** Largest accepted length field; a bigger one is refused as soon as its header arrives. */
  maxMessageSize: number;
}

/** Message types PostgreSQL may send to a client (protocol 3.x). */
const BACKEND_CODES = new Set('123ACDEGHIKNRSTVWZcdnstv'.split('').map((c) => c.charCodeAt(0)));

const EMPTY = Buffer.alloc(0);
const DATA_ROW = 'D'.charCodeAt(0);
const FIRST_ASSEMBLY_SIZE = 16 * 1024;
const HEADER = 5;

/** A frame from upstream that cannot be trusted: the session drops the upstream connection. */
export function malformed(what: string): ProxyError {
  return new ProxyError('upstream_lost', { logMessage: `malformed message from the database: ${what}` });
}

export class BackendFramer {
  private readonly maxMessageSize: number;
  private readonly head = Buffer.alloc(HEADER);
  private headFill = 0;
  private frame: Buffer = EMPTY;
  private frameFill = 0;
  private frameSize = 0;
  /** Bytes of an oversized message's body still to discard. */
  private skip = 0;
  /**
   * Off: a message past maxMessageSize is refused (push throws), and nothing after it can be
   * read. On (a session, once connected): it comes out as a header-only frame marked
   * `oversized` and its body is discarded as it arrives, without being held, so the messages
   * after it are read as they should be.
   */
  skipOversized = false;
  /**
   * Set (a session, once connected): DataRows longer than this that span chunks are given in
   * pieces as they arrive (BackendFrame.piece) instead of being held whole, so a row of many
   * megabytes costs a session no more memory than a chunk.
   */
  streamRowsAbove?: number;
  /** Bytes still to come of the row being given in pieces, its length field, and its first piece until the next push. */
  private streamLeft = 0;
  private streamLength = 0;
  private streamFirst?: Buffer;

  constructor(opts: BackendFramerOptions) {
    this.maxMessageSize = opts.maxMessageSize;
  }

  /** Bytes received that belong to a frame not yet complete. */
  bufferedBytes(): number {
    return this.headFill + this.frameFill;
  }

  /**
   * After a 'first' piece, before the next push: the row is held and given whole once complete,
   * as a row below streamRowsAbove is (its first piece is copied, the rest not given in pieces).
   */
  assembleCurrent(): void {
    const first = this.streamFirst;
    if (!first) throw new Error('framer: assembleCurrent() without a first piece');
    this.streamFirst = undefined;
    this.startAssembly(first.length + this.streamLeft, first, first.length);
    this.streamLeft = 0;
  }

  /** Every frame completed by this chunk, in order. Throws ProxyError on a bad header. */
  push(chunk: Buffer): BackendFrame[] {
    const out: BackendFrame[] = [];
    let off = 0;
    this.streamFirst = undefined;
    for (;;) {
      if (this.frameSize > 0 && this.frameFill === this.frameSize) {
        const raw = this.frame;
        out.push({ code: String.fromCharCode(raw[0]), length: raw.length - 1, raw });
        this.frame = EMPTY;
        this.frameFill = this.frameSize = 0;
      }
      if (off >= chunk.length) return out;
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - off);
        this.skip -= n;
        off += n;
        continue;
      }
      if (this.streamLeft > 0) {
        const n = Math.min(this.streamLeft, chunk.length - off);
        this.streamLeft -= n;
        out.push({ code: 'D', length: this.streamLength, raw: chunk.subarray(off, off + n), piece: 'more', end: this.streamLeft === 0 });
        off += n;
        continue;
      }
      if (this.frameSize > 0) {
        off = this.assemble(chunk, off);
        continue;
      }
      if (this.headFill > 0 || chunk.length - off < HEADER) {
        const n = Math.min(HEADER - this.headFill, chunk.length - off);
        chunk.copy(this.head, this.headFill, off, off + n);
        this.headFill += n;
        off += n;
        if (this.headFill < HEADER) return out;
        this.headFill = 0;
        const size = this.frameSizeAt(this.head, 0);
        if (size > this.maxMessageSize + 1) out.push(this.skipped(this.head, 0, size));
        else if (this.streams(this.head[0], size, chunk.length - off + HEADER)) {
          out.push(this.firstPiece(Buffer.concat([this.head, chunk.subarray(off)]), size));
          return out;
        } else this.startAssembly(size, this.head, HEADER);
        continue;
      }
      const size = this.frameSizeAt(chunk, off);
      if (size > this.maxMessageSize + 1) {
        out.push(this.skipped(chunk, off, size));
        off += HEADER;
        continue;
      }
      if (this.streams(chunk[off], size, chunk.length - off)) {
        out.push(this.firstPiece(chunk.subarray(off), size));
        return out;
      }
      if (chunk.length - off >= size) {
        out.push({ code: String.fromCharCode(chunk[off]), length: size - 1, raw: chunk.subarray(off, off + size) });
        off += size;
      } else {
        this.startAssembly(size, chunk.subarray(off), chunk.length - off);
        off = chunk.length;
      }
    }
  }

  /** Validates the 5-byte header at buf[off]; returns the whole frame's size. */
  private frameSizeAt(buf: Buffer, off: number): number {
    const code = buf[off];
    if (!BACKEND_CODES.has(code)) throw malformed(`unknown message type ${code}`);
    const len = buf.readInt32BE(off + 1);
    if (len < 4) throw malformed(`invalid length ${len}`);
    if (len > this.maxMessageSize && !this.skipOversized) {
      throw new ProxyError('message_too_large', {
        message: 'a message from the database exceeds the maximum size',
        hint: 'Ask for less data at once: select fewer or smaller columns, or fewer rows.',
        logMessage: `upstream '${String.fromCharCode(code)}' message of ${len} bytes exceeds the limit of ${this.maxMessageSize}`,
      });
    }
    return len + 1;
  }

  /** Is a frame of `size` bytes with `here` of them in this chunk a row given in pieces? */
  private streams(code: number, size: number, here: number): boolean {
    return this.streamRowsAbove !== undefined && code === DATA_ROW && size > this.streamRowsAbove && here < size;
  }

  private firstPiece(raw: Buffer, size: number): BackendFrame {
    this.streamLeft = size - raw.length;
    this.streamLength = size - 1;
    this.streamFirst = raw;
    return { code: 'D', length: size - 1, raw, piece: 'first' };
  }

  /** The header-only frame of an oversized message at buf[at]; its body is skipped. */
  private skipped(buf: Buffer, at: number, size: number): BackendFrame {
    this.skip = size - HEADER;
    return { code: String.fromCharCode(buf[at]), length: size - 1, raw: Buffer.from(buf.subarray(at, at + HEADER)), oversized: true };
  }

  private startAssembly(size: number, first: Buffer, firstLen: number): void {
    this.frameSize = size;
    this.frame = Buffer.allocUnsafe(Math.min(size, Math.max(FIRST_ASSEMBLY_SIZE, firstLen * 2)));
    first.copy(this.frame, 0, 0, firstLen);
    this.frameFill = firstLen;
  }

  private assemble(chunk: Buffer, off: number): number {
    const n = Math.min(this.frameSize - this.frameFill, chunk.length - off);
    if (this.frameFill + n > this.frame.length) {
      let cap = this.frame.length * 2;
      while (cap < this.frameFill + n) cap *= 2;
      const grown = Buffer.allocUnsafe(Math.min(cap, this.frameSize));
      this.frame.copy(grown, 0, 0, this.frameFill);
      this.frame = grown;
    }
    chunk.copy(this.frame, this.frameFill, off, off + n);
    this.frameFill += n;
    return off + n;
  }
}

// ---- Reading a frame's body cheaply, without a full decode ----

/** int32 at `at` bytes into the body (e.g. the kind of an 'R' message). */
export function bodyInt32(frame: BackendFrame, at: number): number {
  if (at < 0 || 5 + at + 4 > frame.raw.length) throw malformed(`'${frame.code}' is too short`);
  return frame.raw.readInt32BE(5 + at);
}

/** byte at `at` bytes into the body. */
export function bodyByte(frame: BackendFrame, at: number): number {
  if (at < 0 || 5 + at >= frame.raw.length) throw malformed(`'${frame.code}' is too short`);
  return frame.raw[5 + at];
}

/** ReadyForQuery ('Z' · byte status). */
export function readyForQueryStatus(frame: BackendFrame): 'I' | 'T' | 'E' {
  expectCode(frame, 'Z');
  if (frame.raw.length !== 6) throw malformed(`'Z' of length ${frame.length}`);
  const status = String.fromCharCode(frame.raw[5]);
  if (status !== 'I' && status !== 'T' && status !== 'E') throw malformed(`transaction status ${status}`);
  return status;
}

/** CommandComplete ('C' · cstring tag). */
export function commandCompleteTag(frame: BackendFrame): string {
  expectCode(frame, 'C');
  const end = cstringEnd(frame, 5);
  if (end !== frame.raw.length - 1) throw malformed(`'C' has bytes after its tag`);
  return frame.raw.toString('utf8', 5, end);
}

/** ParameterStatus ('S' · cstring name · cstring value). */
export function parameterStatusOf(frame: BackendFrame): { name: string; value: string } {
  expectCode(frame, 'S');
  const nameEnd = cstringEnd(frame, 5);
  const valueEnd = cstringEnd(frame, nameEnd + 1);
  if (valueEnd !== frame.raw.length - 1) throw malformed(`'S' has bytes after its value`);
  return { name: frame.raw.toString('utf8', 5, nameEnd), value: frame.raw.toString('utf8', nameEnd + 1, valueEnd) };
}

/** ErrorResponse / NoticeResponse fields: the named ones, and every field by its code. */
export interface BackendErrorFields {
  severity: string;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  position?: string;
  routine?: string;
  /** All fields by their one-letter code (S, V, C, M, D, H, P, p, q, W, s, t, c, d, n, F, L, R). */
  fields: Record<string, string>;
}

/** 'E' or 'N' · (byte field code · cstring value)* · NUL */
export function errorFields(frame: BackendFrame): BackendErrorFields {
  if (frame.code !== 'E' && frame.code !== 'N') throw malformed(`expected 'E' or 'N', got '${frame.code}'`);
  const raw = frame.raw;
  const fields: Record<string, string> = {};
  let off = 5;
  for (;;) {
    if (off >= raw.length) throw malformed(`'${frame.code}' field list is not terminated`);
    const c = raw[off++];
    if (c === 0) break;
    const end = cstringEnd(frame, off);
    fields[String.fromCharCode(c)] = raw.toString('utf8', off, end);
    off = end + 1;
  }
  if (off !== raw.length) throw malformed(`'${frame.code}' has bytes after its fields`);
  // 'V' is the never-localised severity; 'S' may be translated by lc_messages.
  const out: BackendErrorFields = {
    severity: fields.V ?? fields.S ?? '',
    code: fields.C ?? '',
    message: fields.M ?? '',
    fields,
  };
  if (fields.D !== undefined) out.detail = fields.D;
  if (fields.H !== undefined) out.hint = fields.H;
  if (fields.P !== undefined) out.position = fields.P;
  if (fields.R !== undefined) out.routine = fields.R;
  return out;
}

/**
 * DataRow values as binary-safe views ('D' · int16 n · n × (int32 len, -1 = NULL · bytes)).
 * pg-protocol's Parser decodes values only as text strings (its binary mode is not
 * implemented), which would corrupt binary-format results, hence this reader.
 */
export function dataRowValues(frame: BackendFrame): (Buffer | null)[] {
  expectCode(frame, 'D');
  const raw = frame.raw;
  if (raw.length < 7) throw malformed(`'D' is too short`);
  const count = raw.readUInt16BE(5);
  const values = new Array<Buffer | null>(count);
  let off = 7;
  for (let i = 0; i < count; i++) {
    if (off + 4 > raw.length) throw malformed(`'D' ends before value ${i + 1}`);
    const len = raw.readInt32BE(off);
    off += 4;
    if (len === -1) {
      values[i] = null;
      continue;
    }
    if (len < -1 || off + len > raw.length) throw malformed(`'D' value ${i + 1} has length ${len}`);
    values[i] = raw.subarray(off, off + len);
    off += len;
  }
  if (off !== raw.length) throw malformed(`'D' has bytes after its values`);
  return values;
}

function expectCode(frame: BackendFrame, code: string): void {
  if (frame.code !== code) throw malformed(`expected '${code}', got '${frame.code}'`);
}

/** Index of the NUL ending the string that starts at `from`, within the frame. */
function cstringEnd(frame: BackendFrame, from: number): number {
  const end = frame.raw.indexOf(0, from);
  if (end < 0) throw malformed(`'${frame.code}' has a string with no terminator`);
  return end;
}

// ---- Full decoding through pg-protocol, for anything richer ----

/** Message types pg-protocol's Parser decodes ('v' and 'V' it does not know). */
const DECODABLE = new Set('123ACDEGHIKNRSTWZcdnst'.split(''));

/**
 * Decodes one frame with pg-protocol's Parser. The frame is whole, so the parser emits its
 * message synchronously; a fresh parser per call means a failure cannot leave bytes behind
 * that would corrupt the next decode.
 */
export function decodeBackend(frame: BackendFrame): BackendMessage {
  const raw = frame.raw;
  if (raw.length < HEADER || raw.readInt32BE(1) !== raw.length - 1) throw malformed('frame length mismatch');
  if (!DECODABLE.has(frame.code)) throw malformed(`'${frame.code}' cannot be decoded`);
  let message: BackendMessage | undefined;
  try {
    new Parser().parse(raw, (msg) => {
      message = msg;
    });
  } catch (err) {
    throw malformed(`'${frame.code}': ${err instanceof Error ? err.message : String(err)}`);
  }
  if (message === undefined) throw malformed(`'${frame.code}' produced no message`);
  return message;
}
