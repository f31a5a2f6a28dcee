// FrontendDecoder on malformed input: the right ProxyError for each case, and nothing else ever.
import { ErrorCode, ProxyError } from '../../../src/errors/catalogue';
import { FrontendDecoder } from '../../../src/protocol/frontend/decoder';
import {
  bindBody,
  byte,
  cancelRequest,
  chunkings,
  concat,
  cstr,
  int16,
  int32,
  msg,
  msgWithLength,
  packet,
  prng,
  SSL_CODE,
  startupPacket,
  text,
} from '../../support/bytes';

const MAX = 64 * 1024;
const STARTUP = startupPacket({ user: 'agent' });
const V3 = 3 * 65536;

/** Pushes the chunks and returns the code of the ProxyError thrown, or fails. */
function errorCode(chunks: Buffer[], maxMessageSize = MAX): ErrorCode {
  const d = new FrontendDecoder({ maxMessageSize });
  try {
    for (const c of chunks) d.push(c);
  } catch (err) {
    expect(err).toBeInstanceOf(ProxyError);
    return (err as ProxyError).code;
  }
  throw new Error('no error was thrown');
}

const startupCases: [string, Buffer, ErrorCode][] = [
  ['length below 8', concat(int32(7), int32(V3)), 'protocol_violation'],
  ['negative length', concat(int32(-1), int32(V3)), 'protocol_violation'],
  ['length above 10000', concat(int32(10001), int32(V3)), 'protocol_violation'],
  ['SSLRequest with a body', packet(SSL_CODE, int32(0)), 'protocol_violation'],
  ['CancelRequest key of 3 bytes', cancelRequest(1, byte(1, 2, 3)), 'protocol_violation'],
  ['CancelRequest key of 257 bytes', cancelRequest(1, Buffer.alloc(257)), 'protocol_violation'],
  ['protocol 2.0', startupPacket({ user: 'a' }, 0, 2), 'unsupported_protocol'],
  ['unknown request code 1234.5681', packet(1234 * 65536 + 5681), 'unsupported_protocol'],
  ['no parameters and no terminator', packet(V3), 'protocol_violation'],
  ['parameters not terminated', packet(V3, cstr('user'), cstr('agent')), 'protocol_violation'],
  ['odd name/value list', packet(V3, cstr('user'), cstr('agent'), cstr('database'), byte(0)), 'protocol_violation'],
  ['name with no value', packet(V3, cstr('user'), cstr('agent'), cstr('database')), 'protocol_violation'],
  ['name without NUL', packet(V3, cstr('user'), cstr('agent'), text('datab')), 'protocol_violation'],
  ['empty name followed by a value', packet(V3, byte(0), cstr('agent'), byte(0)), 'protocol_violation'],
  ['bytes after the terminator', packet(V3, cstr('user'), cstr('agent'), byte(0), byte(7)), 'protocol_violation'],
  ['duplicate name', packet(V3, cstr('user'), cstr('a'), cstr('user'), cstr('b'), byte(0)), 'protocol_violation'],
  ['invalid UTF-8 value', packet(V3, cstr('user'), byte(0xc3, 0x28, 0), byte(0)), 'protocol_violation'],
];

const V = 'protocol_violation' as const;
const messageCases: [string, Buffer, ErrorCode][] = [
  ['unknown type byte', msg('Z', cstr('x')), V],
  ['type byte 0', msg('\0'), V],
  ['length 3', msgWithLength('Q', 3), V],
  ['negative length', msgWithLength('Q', -5), V],
  ['length above maxMessageSize', msgWithLength('Q', MAX + 1), 'message_too_large'],
  ['Query without NUL', msg('Q', text('select 1')), V],
  ['Query with trailing bytes', msg('Q', cstr('select 1'), byte(1)), V],
  ['Query with invalid UTF-8', msg('Q', byte(0x73, 0xff, 0xfe, 0)), V],
  ['Query whose NUL lies in the next message', concat(msg('Q', text('select 1')), msg('S')), V],
  ['Parse name without NUL', msg('P', text('s1')), V],
  ['Parse with fewer types than counted', msg('P', cstr(''), cstr('select $1'), int16(2), int32(23)), V],
  ['Parse with more types than counted', msg('P', cstr(''), cstr('select $1'), int16(1), int32(23), int32(23)), V],
  ['Parse with a truncated type', msg('P', cstr(''), cstr('select $1'), int16(1), int16(23)), V],
  ['Parse without a type count', msg('P', cstr(''), cstr('select 1')), V],
  ['Bind parameter length -2', msg('B', cstr(''), cstr(''), int16(0), int16(1), int32(-2), int16(0)), V],
  ['Bind parameter longer than the body', msg('B', cstr(''), cstr(''), int16(0), int16(1), int32(10), text('abc')), V],
  ['Bind 3 formats for 2 parameters', msg('B', bindBody('', '', [0, 0, 0], ['a', 'b'], [])), V],
  ['Bind format code 2', msg('B', bindBody('', '', [2], ['a'], [])), V],
  ['Bind result format code -1', msg('B', bindBody('', '', [], [], [-1])), V],
  ['Bind with trailing bytes', msg('B', bindBody('', '', [], [], []), byte(0)), V],
  ['Bind count 0xFFFF without the parameters', msg('B', cstr(''), cstr(''), int16(0), int16(-1), int16(0)), V],
  ['Bind format count 0xFFFF', msg('B', cstr(''), cstr(''), int16(-1), int16(0), int16(0)), V],
  ['Bind without result formats', msg('B', cstr(''), cstr(''), int16(0), int16(0)), V],
  ['Describe target X', msg('D', text('X'), cstr('s1')), V],
  ['Close target lower-case s', msg('C', text('s'), cstr('s1')), V],
  ['Describe empty body', msg('D'), V],
  ['Describe name without NUL', msg('D', text('S'), text('s1')), V],
  ['Execute with a short row limit', msg('E', cstr(''), int16(0)), V],
  ['Execute with trailing bytes', msg('E', cstr(''), int32(0), byte(0)), V],
  ['Sync with a body', msg('S', byte(0)), V],
  ['Flush with a body', msg('H', byte(0)), V],
  ['Terminate with a body', msg('X', byte(0)), V],
  ['CopyDone with a body', msg('c', byte(0)), V],
  ['CopyFail without NUL', msg('f', text('oops')), V],
];

describe('FrontendDecoder: malformed startup packets', () => {
  it.each(startupCases)('%s → %s', (_name, bytes, code) => {
    for (const { name, chunks } of chunkings(bytes)) {
      expect([name, errorCode(chunks)]).toEqual([name, code]);
    }
  });

  it('refuses an over-long startup packet from its length alone', () => {
    expect(errorCode([int32(1_000_000)])).toBe('protocol_violation');
  });
});

describe('FrontendDecoder: malformed messages', () => {
  it.each(messageCases)('%s → %s', (_name, bytes, code) => {
    for (const { name, chunks } of chunkings(concat(STARTUP, bytes))) {
      expect([name, errorCode(chunks)]).toEqual([name, code]);
    }
  });

  it('refuses an oversized message as soon as its 5-byte header arrives', () => {
    const header = msgWithLength('Q', 1 << 30);
    expect(errorCode([STARTUP, header])).toBe('message_too_large');
    expect(errorCode([STARTUP, header.subarray(0, 2), header.subarray(2)])).toBe('message_too_large');
    const d = new FrontendDecoder({ maxMessageSize: MAX });
    d.push(STARTUP);
    expect(d.push(header.subarray(0, 4))).toEqual([]);
    expect(() => d.push(header.subarray(4))).toThrow(ProxyError);
  });

  it('honours a limit changed with setMaxMessageSize', () => {
    const d = new FrontendDecoder({ maxMessageSize: MAX });
    d.push(STARTUP);
    d.setMaxMessageSize(8);
    expect(() => d.push(msg('Q', cstr('select 1')))).toThrow(expect.objectContaining({ code: 'message_too_large' }));
  });

  it('is closed after an error: later bytes are dropped', () => {
    const d = new FrontendDecoder({ maxMessageSize: MAX });
    expect(() => d.push(concat(STARTUP, msg('Z')))).toThrow(ProxyError);
    expect(d.push(msg('Q', cstr('select 1')))).toEqual([]);
    expect(d.bufferedBytes()).toBe(0);
  });

  it('names the problem in the detail and keeps the catalogue fields', () => {
    const d = new FrontendDecoder({ maxMessageSize: MAX });
    let error: ProxyError | undefined;
    try {
      d.push(concat(STARTUP, msg('D', text('X'), cstr('s1'))));
    } catch (err) {
      error = err as ProxyError;
    }
    expect(error?.toFields()).toMatchObject({ severity: 'FATAL', code: '08P01' });
    expect(error?.detail).toMatch(/Describe/);
  });
});

describe('FrontendDecoder: fuzz (deterministic)', () => {
  const ALLOWED = new Set<ErrorCode>(['protocol_violation', 'message_too_large', 'unsupported_protocol']);
  const valid = concat(
    STARTUP,
    msg('Q', cstr('select 1')),
    msg('P', cstr('s'), cstr('select $1'), int16(1), int32(23)),
    msg('B', bindBody('', 's', [1], [byte(0, 0, 0, 1), null], [0])),
    msg('D', text('P'), cstr('')),
    msg('E', cstr(''), int32(0)),
    msg('C', text('S'), cstr('s')),
    msg('S'),
  );

  /** Feeds bytes in random chunks; only an allowed ProxyError may escape. */
  function feed(bytes: Buffer, rand: () => number, maxMessageSize = 4096): void {
    const d = new FrontendDecoder({ maxMessageSize });
    let off = 0;
    try {
      while (off < bytes.length) {
        const n = 1 + Math.floor(rand() * 40);
        const got = d.push(bytes.subarray(off, off + n));
        expect(Array.isArray(got)).toBe(true);
        off += n;
        if (d.isPaused() && rand() < 0.5) d.resume();
      }
    } catch (err) {
      if (!(err instanceof ProxyError) || !ALLOWED.has(err.code)) throw err;
    }
  }

  it('random bytes, in startup and in regular mode', () => {
    const rand = prng(1);
    for (let i = 0; i < 2000; i++) {
      const junk = Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
      feed(junk, rand);
      feed(concat(STARTUP, junk), rand);
    }
  });

  it('valid streams truncated, with random bytes appended', () => {
    const rand = prng(2);
    for (let i = 0; i < 2000; i++) {
      const cut = Math.floor(rand() * valid.length);
      const tail = Buffer.from(Array.from({ length: Math.floor(rand() * 16) }, () => Math.floor(rand() * 256)));
      feed(concat(valid.subarray(0, cut), tail), rand);
    }
  });

  it('valid streams with random length headers and flipped bytes', () => {
    const rand = prng(3);
    for (let i = 0; i < 3000; i++) {
      const bytes = Buffer.from(valid);
      const at = STARTUP.length + 1 + Math.floor(rand() * (valid.length - STARTUP.length - 4));
      if (rand() < 0.5) bytes.writeInt32BE((rand() * 2 ** 32) | 0, at);
      else bytes.writeInt32BE(Math.floor(rand() * 64) - 8, at);
      bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      feed(bytes, rand);
    }
  });
});
