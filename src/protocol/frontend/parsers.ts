// One parser per client message body, plus the startup packets; the decoder does the framing.
//
// Each parser reads exactly the fields of its message (layouts in messages.ts) and ends with
// reader.done(), so a body with bytes left over is refused: the proxy must never check one
// reading of a message while PostgreSQL acts on another.

import { ProxyError } from '../../errors/catalogue';
import {
  BINARY_FORMAT,
  CANCEL_REQUEST_CODE,
  FrontendMessage,
  GSSENC_REQUEST_CODE,
  MAX_CANCEL_KEY_LENGTH,
  SSL_REQUEST_CODE,
  StartupPacket,
  TEXT_FORMAT,
} from './messages';
import { BodyReader, violation } from './reader';

/** Whether a byte is the type of a message clients may send (see messages.ts). */
export function isFrontendCode(code: number): boolean {
  switch (code) {
    case 0x51: // Q
    case 0x50: // P
    case 0x42: // B
    case 0x44: // D
    case 0x45: // E
    case 0x43: // C
    case 0x53: // S
    case 0x48: // H
    case 0x58: // X
    case 0x64: // d
    case 0x63: // c
    case 0x66: // f
    case 0x46: // F
    case 0x70: // p
      return true;
    default:
      return false;
  }
}

/** Decodes one whole regular frame (type byte, int32 length, body); raw is the frame itself. */
export function decodeMessage(raw: Buffer): FrontendMessage {
  const code = raw[0];
  const body = (what: string) => new BodyReader(raw, 5, raw.length, what);
  switch (code) {
    case 0x51: {
      const r = body('Query');
      const sql = r.cstring();
      r.done();
      return { type: 'Query', sql, raw };
    }
    case 0x50:
      return parseParse(body('Parse'), raw);
    case 0x42:
      return parseBind(body('Bind'), raw);
    case 0x44:
    case 0x43: {
      const type = code === 0x44 ? 'Describe' : 'Close';
      const r = body(type);
      const target = r.byte();
      if (target !== 0x53 && target !== 0x50) {
        throw violation(`${type}: target must be 'S' or 'P', got byte ${target}`);
      }
      const name = r.cstring();
      r.done();
      return { type, target: target === 0x53 ? 'S' : 'P', name, raw };
    }
    case 0x45: {
      const r = body('Execute');
      const portal = r.cstring();
      // PostgreSQL reads the row limit as unsigned; 0 means "all rows".
      const maxRows = r.uint32();
      r.done();
      return { type: 'Execute', portal, maxRows, raw };
    }
    case 0x53:
      body('Sync').done();
      return { type: 'Sync', raw };
    case 0x48:
      body('Flush').done();
      return { type: 'Flush', raw };
    case 0x58:
      body('Terminate').done();
      return { type: 'Terminate', raw };
    case 0x63:
      body('CopyDone').done();
      return { type: 'CopyDone', raw };
    case 0x64:
      return { type: 'CopyData', data: raw.subarray(5), raw };
    case 0x66: {
      const r = body('CopyFail');
      const message = r.cstring();
      r.done();
      return { type: 'CopyFail', message, raw };
    }
    case 0x46:
      return { type: 'FunctionCall', raw };
    case 0x70:
      return { type: 'AuthResponse', data: raw.subarray(5), raw };
    default:
      throw violation(`invalid frontend message type ${code}`);
  }
}

function parseParse(r: BodyReader, raw: Buffer): FrontendMessage {
  const name = r.cstring();
  const sql = r.cstring();
  const count = r.uint16();
  if (count * 4 !== r.remaining()) {
    throw violation(`Parse: ${count} parameter types do not fit the ${r.remaining()} bytes left`);
  }
  const paramTypes = new Array<number>(count);
  for (let i = 0; i < count; i++) paramTypes[i] = r.uint32();
  r.done();
  return { type: 'Parse', name, sql, paramTypes, raw };
}

function parseBind(r: BodyReader, raw: Buffer): FrontendMessage {
  const portal = r.cstring();
  const statement = r.cstring();
  const paramFormats = readFormats(r, 'parameter');
  const count = r.uint16();
  // As in PostgreSQL: no format codes (all text), one for all parameters, or one each.
  if (paramFormats.length > 1 && paramFormats.length !== count) {
    throw violation(`Bind: ${paramFormats.length} parameter formats for ${count} parameters`);
  }
  const params = new Array<Buffer | null>(count);
  for (let i = 0; i < count; i++) {
    const len = r.int32();
    if (len < -1) throw violation(`Bind: invalid length ${len} of parameter ${i + 1}`);
    params[i] = len === -1 ? null : r.bytes(len);
  }
  const resultFormats = readFormats(r, 'result');
  r.done();
  return { type: 'Bind', portal, statement, paramFormats, params, resultFormats, raw };
}

/** int16 count · count × int16 format code (0 text, 1 binary). */
function readFormats(r: BodyReader, what: string): number[] {
  const count = r.uint16();
  if (count * 2 > r.remaining()) {
    throw violation(`Bind: ${count} ${what} formats do not fit in the message`);
  }
  const formats = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    const f = r.int16();
    if (f !== TEXT_FORMAT && f !== BINARY_FORMAT) {
      throw violation(`Bind: unsupported ${what} format code ${f}`);
    }
    formats[i] = f;
  }
  return formats;
}

/** Decodes one whole startup packet buf[start, end): int32 length · int32 code · body. */
export function decodeStartup(buf: Buffer, start: number, end: number): StartupPacket {
  const len = end - start;
  const code = buf.readInt32BE(start + 4);
  switch (code) {
    case SSL_REQUEST_CODE:
    case GSSENC_REQUEST_CODE:
      if (len !== 8) throw violation(`invalid length of encryption request packet: ${len}`);
      return { type: code === SSL_REQUEST_CODE ? 'SSLRequest' : 'GSSENCRequest' };
    case CANCEL_REQUEST_CODE: {
      // int32 processId · secret key (4 bytes in protocol 3.0, up to 256 in 3.2)
      const keyLen = len - 12;
      if (keyLen < 4 || keyLen > MAX_CANCEL_KEY_LENGTH) {
        throw violation(`invalid length of cancel request packet: ${len}`);
      }
      const processId = buf.readInt32BE(start + 8);
      return { type: 'CancelRequest', processId, secretKey: buf.subarray(start + 12, end) };
    }
  }
  const majorVersion = code >>> 16;
  const minorVersion = code & 0xffff;
  if (majorVersion !== 3) {
    // Protocol 2 has another packet layout; refuse before reading it as name/value pairs.
    throw new ProxyError('unsupported_protocol', {
      detail: `Protocol ${majorVersion}.${minorVersion} was requested; the proxy speaks 3.x.`,
    });
  }
  return { type: 'StartupMessage', majorVersion, minorVersion, params: readStartupParams(buf, start + 8, end) };
}

/** (cstring name, cstring value)* then one NUL that must be the packet's last byte. */
function readStartupParams(buf: Buffer, start: number, end: number): Map<string, string> {
  const r = new BodyReader(buf, start, end, 'startup packet');
  const params = new Map<string, string>();
  for (;;) {
    if (r.remaining() === 0) throw violation('startup packet: parameter list is not terminated');
    const name = r.cstring();
    if (name === '') {
      // The empty name is the terminator; anything after it is an empty name with a value.
      if (r.remaining() > 0) throw violation('startup packet: empty parameter name');
      return params;
    }
    if (r.remaining() === 0) throw violation(`startup packet: parameter "${name}" has no value`);
    const value = r.cstring();
    if (params.has(name)) throw violation(`startup packet: parameter "${name}" given twice`);
    params.set(name, value);
  }
}
