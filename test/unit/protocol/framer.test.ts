// BackendFramer and the frame readers: splitting upstream bytes, cheap field reads, pg-protocol decode.
import { ProxyError } from '../../../src/errors/catalogue';
import {
  BackendFrame,
  BackendFramer,
  bodyByte,
  bodyInt32,
  commandCompleteTag,
  dataRowValues,
  decodeBackend,
  errorFields,
  parameterStatusOf,
  readyForQueryStatus,
} from '../../../src/protocol/backend/framer';
import { byte, chunkings, concat, cstr, int16, int32, msg, msgWithLength, prng, text } from '../../support/bytes';

const MAX = 1 << 20;
const frameOf = (raw: Buffer): BackendFrame => ({ code: String.fromCharCode(raw[0]), length: raw.length - 1, raw });

const upstream = [
  msg('R', int32(0)),
  msg('S', cstr('server_version'), cstr('18.0')),
  msg('K', int32(12), int32(34)),
  msg('Z', text('I')),
  msg('1'),
  msg('2'),
  msg('T', int16(1), cstr('id'), int32(0), int16(0), int32(23), int16(4), int32(-1), int16(0)),
  msg('D', int16(3), int32(1), text('7'), int32(-1), int32(3), byte(0, 1, 255)),
  msg('C', cstr('SELECT 1')),
  msg('N', text('S'), cstr('NOTICE'), text('C'), cstr('00000'), text('M'), cstr('hi'), byte(0)),
  msg('E', text('S'), cstr('ERROR'), text('V'), cstr('ERROR'), text('C'), cstr('42P01'), text('M'), cstr('no such table'), text('t'), cstr('orders'), byte(0)),
  msg('v', int32(0), int32(1), cstr('_pq_.x')),
  msg('Z', text('E')),
];
const stream = concat(...upstream);

function frames(chunks: Buffer[], max = MAX): BackendFrame[] {
  const f = new BackendFramer({ maxMessageSize: max });
  return chunks.flatMap((c) => f.push(c));
}

describe('BackendFramer', () => {
  it('splits a stream into raw frames, identically at every split and byte by byte', () => {
    const expected = upstream.map(frameOf);
    expect(frames([stream])).toEqual(expected);
    for (const { name, chunks } of chunkings(stream)) {
      expect([name, frames(chunks)]).toEqual([name, expected]);
    }
  });

  it('assembles a large frame from many chunks into its own buffer', () => {
    const big = msg('D', int16(1), int32(300_000), Buffer.alloc(300_000, 0x41));
    const chunks: Buffer[] = [];
    for (let i = 0; i < big.length; i += 1500) chunks.push(big.subarray(i, i + 1500));
    const f = new BackendFramer({ maxMessageSize: MAX });
    const got = chunks.flatMap((c) => f.push(c));
    expect(got).toHaveLength(1);
    expect(got[0].raw.equals(big)).toBe(true);
    expect(got[0].length).toBe(big.length - 1);
    expect(f.bufferedBytes()).toBe(0);
  });

  it('reports buffered bytes of an incomplete frame', () => {
    const f = new BackendFramer({ maxMessageSize: MAX });
    expect(f.push(stream.subarray(0, 3))).toEqual([]);
    expect(f.bufferedBytes()).toBe(3);
    expect(f.push(stream.subarray(3, 12))).toHaveLength(1);
    expect(f.bufferedBytes()).toBe(3);
  });

  it('rejects an oversized header before the body arrives', () => {
    const header = msgWithLength('D', MAX + 1);
    for (const { chunks } of chunkings(header)) {
      const f = new BackendFramer({ maxMessageSize: MAX });
      let thrown: unknown;
      try {
        for (const c of chunks) f.push(c);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(ProxyError);
      expect((thrown as ProxyError).code).toBe('message_too_large');
      expect((thrown as ProxyError).message).toMatch(/from the database/);
    }
  });

  it('with skipOversized, gives an oversized message as its header alone, discards its body unheld, and reads what follows, at every split', () => {
    const small = 4096;
    const big = msg('D', int16(1), int32(20_000), Buffer.alloc(20_000, 0x41));
    const after = [msg('C', cstr('SELECT 1')), msg('Z', text('I'))];
    const bytes = concat(upstream[6], big, ...after);
    const expected = [frameOf(upstream[6]), { code: 'D', length: big.length - 1, raw: big.subarray(0, 5), oversized: true }, ...after.map(frameOf)];
    for (const { name, chunks } of chunkings(bytes)) {
      const f = new BackendFramer({ maxMessageSize: small });
      f.skipOversized = true;
      let held = 0;
      const got = chunks.flatMap((c) => {
        const out = f.push(c);
        held = Math.max(held, f.bufferedBytes());
        return out;
      });
      expect([name, got]).toEqual([name, expected]);
      // Never more than a header of it is held.
      expect(held).toBeLessThan(small);
    }
    // A message of exactly the limit is read as usual.
    const f = new BackendFramer({ maxMessageSize: big.length - 1 });
    f.skipOversized = true;
    expect(f.push(big)).toEqual([frameOf(big)]);
  });

  it('with streamRowsAbove, gives a long row that spans chunks in pieces as they arrive (its bytes exactly), and everything else whole, at every split', () => {
    const long = msg('D', int16(1), int32(3000), Buffer.alloc(3000, 0x42));
    const short = msg('D', int16(1), int32(10), Buffer.alloc(10, 0x43));
    const after = [short, msg('C', cstr('SELECT 2')), msg('Z', text('I'))];
    const bytes = concat(upstream[6], long, ...after);
    for (const { name, chunks } of chunkings(bytes)) {
      const f = new BackendFramer({ maxMessageSize: MAX });
      f.streamRowsAbove = 1000;
      const got = chunks.flatMap((c) => f.push(c));
      const pieces = got.filter((g) => g.piece !== undefined);
      const isLong = (g: BackendFrame) => g.code === 'D' && g.length === long.length - 1;
      const whole = got.filter((g) => g.piece === undefined && !isLong(g));
      expect([name, whole]).toEqual([name, [upstream[6], ...after].map(frameOf)]);
      // Given whole when it came in one chunk; else in pieces, the first ending its push, the last marked.
      const rows = pieces.length > 0 ? concat(...pieces.map((p) => p.raw)) : got.find(isLong)!.raw;
      expect([name, rows.equals(long)]).toEqual([name, true]);
      if (pieces.length > 0) {
        expect(pieces.map((p) => [p.piece, p.length])).toEqual(pieces.map((_, i) => [i === 0 ? 'first' : 'more', long.length - 1]));
        expect(pieces.map((p) => p.end ?? false)).toEqual(pieces.map((_, i) => i > 0 && i === pieces.length - 1));
      }
      expect(f.bufferedBytes()).toBe(0);
    }
  });

  it('after a first piece, assembleCurrent has the row held and given whole', () => {
    const long = msg('D', int16(1), int32(3000), Buffer.alloc(3000, 0x42));
    const bytes = concat(long, msg('Z', text('I')));
    for (const size of [1, 7, 100, 2999]) {
      const f = new BackendFramer({ maxMessageSize: MAX });
      f.streamRowsAbove = 1000;
      const got: BackendFrame[] = [];
      for (let i = 0; i < bytes.length; i += size) {
        const out = f.push(bytes.subarray(i, i + size));
        got.push(...out);
        if (out.at(-1)?.piece === 'first') f.assembleCurrent();
      }
      expect(got.map((g) => g.piece)).toEqual(['first', undefined, undefined]);
      expect(got.slice(1)).toEqual([frameOf(long), frameOf(msg('Z', text('I')))]);
    }
    expect(() => new BackendFramer({ maxMessageSize: MAX }).assembleCurrent()).toThrow(/without a first piece/);
  });

  it.each([
    ['unknown type', msg('Q', cstr('x'))],
    ['length 3', msgWithLength('Z', 3)],
    ['negative length', msgWithLength('Z', -1)],
  ])('rejects a frame with %s', (_name, bytes) => {
    expect(() => frames([bytes])).toThrow(expect.objectContaining({ code: 'upstream_lost' }));
  });

  it('throws only ProxyError on random bytes (deterministic fuzz)', () => {
    const rand = prng(7);
    for (let i = 0; i < 3000; i++) {
      const junk = Buffer.from(Array.from({ length: Math.floor(rand() * 48) }, () => Math.floor(rand() * 256)));
      const f = new BackendFramer({ maxMessageSize: 4096 });
      try {
        f.push(concat(stream.subarray(0, Math.floor(rand() * stream.length)), junk));
      } catch (err) {
        expect(err).toBeInstanceOf(ProxyError);
      }
    }
  });
});

describe('frame readers', () => {
  const [auth, status, , rfq, , , , row, complete, notice, error, , rfqE] = upstream.map(frameOf);

  it('read small fields without decoding', () => {
    expect(bodyInt32(auth, 0)).toBe(0);
    expect(bodyByte(rfq, 0)).toBe(0x49);
    expect(() => bodyInt32(auth, 1)).toThrow(ProxyError);
    expect(() => bodyByte(rfq, 1)).toThrow(ProxyError);
    expect(readyForQueryStatus(rfq)).toBe('I');
    expect(readyForQueryStatus(rfqE)).toBe('E');
    expect(commandCompleteTag(complete)).toBe('SELECT 1');
    expect(parameterStatusOf(status)).toEqual({ name: 'server_version', value: '18.0' });
  });

  it('return DataRow values as binary-safe views', () => {
    expect(dataRowValues(row)).toEqual([text('7'), null, byte(0, 1, 255)]);
  });

  it('parse ErrorResponse and NoticeResponse fields, keeping every code', () => {
    expect(errorFields(error)).toEqual({
      severity: 'ERROR',
      code: '42P01',
      message: 'no such table',
      fields: { S: 'ERROR', V: 'ERROR', C: '42P01', M: 'no such table', t: 'orders' },
    });
    expect(errorFields(notice)).toMatchObject({ severity: 'NOTICE', code: '00000', message: 'hi' });
  });

  it.each([
    ['Z with a bad status', () => readyForQueryStatus(frameOf(msg('Z', text('X'))))],
    ['Z read from another frame', () => readyForQueryStatus(frameOf(msg('C', cstr('x'))))],
    ['C with trailing bytes', () => commandCompleteTag(frameOf(msg('C', cstr('x'), byte(1))))],
    ['C without NUL', () => commandCompleteTag(frameOf(msg('C', text('x'))))],
    ['E not terminated', () => errorFields(frameOf(msg('E', text('S'), cstr('ERROR'))))],
    ['E with a field without NUL', () => errorFields(frameOf(msg('E', text('M'), text('x'))))],
    ['E with trailing bytes', () => errorFields(frameOf(msg('E', byte(0), byte(0))))],
    ['D value longer than the frame', () => dataRowValues(frameOf(msg('D', int16(1), int32(9), text('ab'))))],
    ['D value length -2', () => dataRowValues(frameOf(msg('D', int16(1), int32(-2))))],
    ['D with fewer values than counted', () => dataRowValues(frameOf(msg('D', int16(2), int32(-1))))],
    ['D with trailing bytes', () => dataRowValues(frameOf(msg('D', int16(0), byte(0))))],
    ['S with one string', () => parameterStatusOf(frameOf(msg('S', cstr('a'))))],
  ])('refuse %s with a ProxyError', (_name, read) => {
    expect(read).toThrow(ProxyError);
  });
});

describe('decodeBackend (pg-protocol)', () => {
  it('decodes frames into pg-protocol messages', () => {
    const [auth, status, key, rfq, , , desc, row, complete, , error] = upstream.map(frameOf);
    expect(decodeBackend(auth)).toMatchObject({ name: 'authenticationOk' });
    expect(decodeBackend(status)).toMatchObject({ name: 'parameterStatus', parameterName: 'server_version', parameterValue: '18.0' });
    expect(decodeBackend(key)).toMatchObject({ name: 'backendKeyData', processID: 12, secretKey: 34 });
    expect(decodeBackend(rfq)).toMatchObject({ name: 'readyForQuery', status: 'I' });
    expect(decodeBackend(desc)).toMatchObject({ name: 'rowDescription', fields: [{ name: 'id', dataTypeID: 23 }] });
    expect(decodeBackend(row)).toMatchObject({ name: 'dataRow', fields: ['7', null, '\u0000\u0001\ufffd'] });
    expect(decodeBackend(complete)).toMatchObject({ name: 'commandComplete', text: 'SELECT 1' });
    expect(decodeBackend(error)).toMatchObject({ name: 'error', code: '42P01', table: 'orders', message: 'no such table' });
  });

  it('refuses what pg-protocol cannot decode and frames whose length field is wrong', () => {
    expect(() => decodeBackend(frameOf(upstream[11]))).toThrow(ProxyError); // 'v'
    expect(() => decodeBackend({ code: 'Z', length: 5, raw: msgWithLength('Z', 9, text('I')) })).toThrow(ProxyError);
    expect(() => decodeBackend(frameOf(msg('R', int32(99))))).toThrow(expect.objectContaining({ code: 'upstream_lost' }));
  });
});
