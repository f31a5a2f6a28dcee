// Streaming decoder for the bytes a client sends: startup packets first, then regular messages.
//
// Buffering: a frame that lies wholly inside the pushed chunk is decoded in place (subarray
// views, no copy). Only a frame split across chunks is assembled, into a buffer owned by that
// one frame and grown geometrically up to its declared length, so a huge declared length costs
// nothing until the bytes really arrive, and views into it can never be overwritten later.
// Chunks passed to push() must not be reused by the caller (socket 'data' chunks never are).

import { ProxyError } from '../../errors/catalogue';
import { FrontendMessage, MAX_STARTUP_PACKET_LENGTH, StartupPacket } from './messages';
import { violation } from './reader';
import { decodeMessage, decodeStartup, isFrontendCode } from './parsers';

export interface FrontendDecoderOptions {
  /** Largest accepted value of a regular message's length field (which counts itself). */
  maxMessageSize: number;
}

export type FrontendPacket = StartupPacket | FrontendMessage;

type Phase =
  | 'startup' // int32 length · int32 code · body
  | 'regular' // byte type · int32 length · body
  | 'paused' // after SSLRequest/GSSENCRequest: bytes are held until the next push()/resume()
  | 'closed'; // after CancelRequest, Terminate or an error: bytes are dropped

const EMPTY = Buffer.alloc(0);
const FIRST_ASSEMBLY_SIZE = 16 * 1024;

export class FrontendDecoder {
  private phase: Phase = 'startup';
  private maxMessageSize: number;
  /** Header bytes of a frame whose header itself was split across chunks. */
  private readonly head = Buffer.alloc(5);
  private headFill = 0;
  /** A frame being assembled across chunks: its declared total size and the bytes so far. */
  private frame: Buffer = EMPTY;
  private frameFill = 0;
  private frameSize = 0;
  /** Chunks received while paused. */
  private held: Buffer[] = [];
  private heldBytes = 0;

  constructor(opts: FrontendDecoderOptions) {
    this.maxMessageSize = opts.maxMessageSize;
  }

  /** Lets the listener use a small limit before authentication and a larger one after. */
  setMaxMessageSize(bytes: number): void {
    this.maxMessageSize = bytes;
  }

  /** Bytes received but not yet returned as packets (held, or part of an incomplete frame). */
  bufferedBytes(): number {
    return this.headFill + this.frameFill + this.heldBytes;
  }

  /** True after an SSLRequest or GSSENCRequest until the next push() or resume(). */
  isPaused(): boolean {
    return this.phase === 'paused';
  }

  /**
   * Continues after the answer to an SSLRequest/GSSENCRequest and decodes the bytes held
   * since. Needed only when no further push() will come (a client that pipelined its
   * StartupMessage after a refused request); push() resumes by itself.
   */
  resume(): FrontendPacket[] {
    const out: FrontendPacket[] = [];
    this.guard(() => this.unpause(out));
    return out;
  }

  /**
   * Decodes every whole packet in the bytes received so far. Decoding stops right after an
   * SSLRequest or GSSENCRequest: the rest of the chunk is held (see bufferedBytes()) until
   * the next push() or resume(), so the listener can answer, check that the client sent
   * nothing more in plaintext, and only then start TLS. Throws ProxyError
   * ('protocol_violation', 'message_too_large' or 'unsupported_protocol'); the decoder is
   * then closed and the connection should be ended.
   */
  push(chunk: Buffer): FrontendPacket[] {
    const out: FrontendPacket[] = [];
    this.guard(() => {
      this.unpause(out);
      this.feed(chunk, out);
    });
    return out;
  }

  private guard(decode: () => void): void {
    try {
      decode();
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private unpause(out: FrontendPacket[]): void {
    if (this.phase !== 'paused') return;
    this.phase = 'startup';
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    for (const chunk of held) this.feed(chunk, out);
  }

  private feed(chunk: Buffer, out: FrontendPacket[]): void {
    if (this.phase === 'paused') {
      if (chunk.length > 0) this.held.push(chunk);
      this.heldBytes += chunk.length;
    } else {
      this.decodeChunk(chunk, out);
    }
  }

  private decodeChunk(chunk: Buffer, out: FrontendPacket[]): void {
    let off = 0;
    for (;;) {
      if (this.frameSize > 0 && this.frameFill === this.frameSize) {
        const whole = this.frame;
        this.frame = EMPTY;
        this.frameFill = this.frameSize = 0;
        this.emit(whole, 0, whole.length, out);
      }
      if (off >= chunk.length || this.phase === 'closed') return;
      if (this.phase === 'paused') {
        this.feed(chunk.subarray(off), out);
        return;
      }
      if (this.frameSize > 0) {
        off = this.assemble(chunk, off);
        continue;
      }
      const headerSize = this.phase === 'startup' ? 4 : 5;
      if (this.headFill > 0 || chunk.length - off < headerSize) {
        const n = Math.min(headerSize - this.headFill, chunk.length - off);
        chunk.copy(this.head, this.headFill, off, off + n);
        this.headFill += n;
        off += n;
        if (this.headFill < headerSize) return;
        this.headFill = 0;
        this.startAssembly(this.frameLength(this.head, 0), this.head, headerSize);
        continue;
      }
      const size = this.frameLength(chunk, off);
      if (chunk.length - off >= size) {
        this.emit(chunk, off, off + size, out);
        off += size;
      } else {
        this.startAssembly(size, chunk.subarray(off), chunk.length - off);
        off = chunk.length;
      }
    }
  }

  /** Validates the header at buf[off] and returns the frame's total size in bytes. */
  private frameLength(buf: Buffer, off: number): number {
    if (this.phase === 'startup') {
      const len = buf.readInt32BE(off);
      if (len < 8 || len > MAX_STARTUP_PACKET_LENGTH) {
        throw violation(`invalid length of startup packet: ${len}`);
      }
      return len;
    }
    const code = buf[off];
    if (!isFrontendCode(code)) {
      throw violation(`invalid frontend message type ${code}`);
    }
    const len = buf.readInt32BE(off + 1);
    if (len < 4) throw violation(`invalid message length ${len}`);
    if (len > this.maxMessageSize) {
      throw new ProxyError('message_too_large', {
        logMessage: `client message of ${len} bytes exceeds the limit of ${this.maxMessageSize}`,
      });
    }
    return len + 1;
  }

  private startAssembly(size: number, first: Buffer, firstLen: number): void {
    this.frameSize = size;
    this.frame = Buffer.allocUnsafe(Math.min(size, Math.max(FIRST_ASSEMBLY_SIZE, firstLen * 2)));
    first.copy(this.frame, 0, 0, firstLen);
    this.frameFill = firstLen;
  }

  /** Copies what the frame still needs from chunk[off]; grows its buffer by doubling. */
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

  /** Decodes the whole frame buf[start, end) and moves to the next phase if it says so. */
  private emit(buf: Buffer, start: number, end: number, out: FrontendPacket[]): void {
    if (this.phase === 'regular') {
      const msg = decodeMessage(buf.subarray(start, end));
      out.push(msg);
      if (msg.type === 'Terminate') this.close();
      return;
    }
    const packet = decodeStartup(buf, start, end);
    out.push(packet);
    switch (packet.type) {
      case 'SSLRequest':
      case 'GSSENCRequest':
        this.phase = 'paused';
        break;
      case 'CancelRequest':
        this.close();
        break;
      case 'StartupMessage':
        this.phase = 'regular';
        break;
    }
  }

  private close(): void {
    this.phase = 'closed';
    this.frame = EMPTY;
    this.frameFill = this.frameSize = this.headFill = 0;
    this.held = [];
    this.heldBytes = 0;
  }
}
