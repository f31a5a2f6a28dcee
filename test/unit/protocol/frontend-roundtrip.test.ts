// Client messages serialised by pg-protocol (the `pg` driver's encoder) decode as intended.
import { serialize } from 'pg-protocol';
import { FrontendDecoder, FrontendPacket } from '../../../src/protocol/frontend/decoder';
import { BodyReader } from '../../../src/protocol/frontend/reader';
import { ProxyError } from '../../../src/errors/catalogue';
import { byte, concat, cstr, int16, int32, text } from '../../support/bytes';

/** pg-protocol's writer reuses its buffer, so every message is copied before the next one. */
const copy = (b: Buffer): Buffer => Buffer.from(b);

function decodeAfterStartup(...messages: Buffer[]): FrontendPacket[] {
  const d = new FrontendDecoder({ maxMessageSize: 1 << 20 });
  const [startup, ...rest] = d.push(concat(copy(serialize.startup({ user: 'agent', database: 'app' })), ...messages));
  expect(startup).toEqual({
    type: 'StartupMessage',
    majorVersion: 3,
    minorVersion: 0,
    params: new Map([
      ['user', 'agent'],
      ['database', 'app'],
      ['client_encoding', 'UTF8'],
    ]),
  });
  return rest;
}

describe('FrontendDecoder against pg-protocol serialize', () => {
  it('decodes a whole extended-protocol round as the driver sent it', () => {
    const bin = byte(0, 0, 0, 7);
    const msgs = [
      copy(serialize.parse({ name: 's1', text: 'select $1::int, $2, $3', types: [23, 0, 25] })),
      copy(serialize.bind({ portal: 'p1', statement: 's1', values: [bin, 'héllo', null], binary: true })),
      copy(serialize.describe({ type: 'P', name: 'p1' })),
      copy(serialize.execute({ portal: 'p1', rows: 50 })),
      copy(serialize.close({ type: 'S', name: 's1' })),
      copy(serialize.flush()),
      copy(serialize.sync()),
      copy(serialize.query('select 1')),
      copy(serialize.copyData(byte(1, 0, 2))),
      copy(serialize.copyDone()),
      copy(serialize.copyFail('stop')),
      copy(serialize.password('pw')),
      copy(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', 'n,,n=,r=abc')),
      copy(serialize.sendSCRAMClientFinalMessage('c=biws,r=abc,p=xyz')),
      copy(serialize.end()),
    ];
    const got = decodeAfterStartup(...msgs);
    expect(got.map((m) => ('raw' in m ? m.raw : null))).toEqual(msgs);
    expect(
      got.map((m) => {
        const { raw: _raw, ...fields } = m as { raw: Buffer };
        return fields;
      }),
    ).toEqual([
      { type: 'Parse', name: 's1', sql: 'select $1::int, $2, $3', paramTypes: [23, 0, 25] },
      { type: 'Bind', portal: 'p1', statement: 's1', paramFormats: [1, 0, 0], params: [bin, text('héllo'), null], resultFormats: [1] },
      { type: 'Describe', target: 'P', name: 'p1' },
      { type: 'Execute', portal: 'p1', maxRows: 50 },
      { type: 'Close', target: 'S', name: 's1' },
      { type: 'Flush' },
      { type: 'Sync' },
      { type: 'Query', sql: 'select 1' },
      { type: 'CopyData', data: byte(1, 0, 2) },
      { type: 'CopyDone' },
      { type: 'CopyFail', message: 'stop' },
      { type: 'AuthResponse', data: cstr('pw') },
      { type: 'AuthResponse', data: concat(cstr('SCRAM-SHA-256'), int32(11), text('n,,n=,r=abc')) },
      { type: 'AuthResponse', data: text('c=biws,r=abc,p=xyz') },
      { type: 'Terminate' },
    ]);
  });

  it('decodes the driver SSLRequest and CancelRequest', () => {
    expect(new FrontendDecoder({ maxMessageSize: 100 }).push(copy(serialize.requestSsl()))).toEqual([{ type: 'SSLRequest' }]);
    expect(new FrontendDecoder({ maxMessageSize: 100 }).push(copy(serialize.cancel(77, -2)))).toEqual([
      { type: 'CancelRequest', processId: 77, secretKey: int32(-2) },
    ]);
  });
});

describe('BodyReader', () => {
  const buf = concat(byte(9), int16(-2), int32(-3), cstr('ab'), byte(0xff, 0xff), text('xy'), cstr('next'));

  it('reads each type and stays inside its window', () => {
    // The window ends before "next": its NUL must not be found.
    const r = new BodyReader(buf, 1, buf.length - 5, 'test');
    expect(r.int16()).toBe(-2);
    expect(r.int32()).toBe(-3);
    expect(r.cstring()).toBe('ab');
    expect(r.uint16()).toBe(0xffff);
    expect(r.remaining()).toBe(2);
    expect(() => r.cstring()).toThrow(ProxyError);
  });

  it('throws protocol_violation on reads past the end and on trailing bytes', () => {
    const r = new BodyReader(buf, 0, 3, 'test');
    expect(r.byte()).toBe(9);
    expect(() => r.int32()).toThrow(expect.objectContaining({ code: 'protocol_violation' }));
    expect(() => r.done()).toThrow(expect.objectContaining({ code: 'protocol_violation' }));
    expect(r.bytes(2)).toEqual(int16(-2));
    expect(() => r.byte()).toThrow(ProxyError);
    expect(() => r.bytes(-1)).toThrow(ProxyError);
    expect(() => r.done()).not.toThrow();
  });

  it('reads unsigned object identifiers', () => {
    expect(new BodyReader(int32(-1), 0, 4, 'test').uint32()).toBe(4294967295);
  });
});
