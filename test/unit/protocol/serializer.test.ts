// Backend serializer: byte-for-byte against the independent builder, and read back by pg-protocol.
import { BackendMessage } from 'pg-protocol/dist/messages';
import { Parser } from 'pg-protocol/dist/parser';
import { ErrorFields, ProxyError } from '../../../src/errors/catalogue';
import * as be from '../../../src/protocol/backend/serializer';
import { byte, concat, cstr, int16, int32, msg, text } from '../../support/bytes';

/** What the `pg` driver makes of these bytes. */
function parseAll(bytes: Buffer): BackendMessage[] {
  const out: BackendMessage[] = [];
  new Parser().parse(bytes, (m) => out.push(m));
  return out;
}

const fullError: ErrorFields = {
  severity: 'ERROR',
  code: '42501',
  message: 'field_denied: column "ssn" does not exist',
  detail: 'dé',
  hint: 'Select other columns.',
  position: '8',
  routine: 'ormai.field_denied',
};

const cases: [string, Buffer, Buffer, object][] = [
  ['authenticationOk', be.authenticationOk(), msg('R', int32(0)), { name: 'authenticationOk' }],
  ['authenticationCleartextPassword', be.authenticationCleartextPassword(), msg('R', int32(3)), { name: 'authenticationCleartextPassword' }],
  [
    'authenticationSASL',
    be.authenticationSASL(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']),
    msg('R', int32(10), cstr('SCRAM-SHA-256-PLUS'), cstr('SCRAM-SHA-256'), byte(0)),
    { name: 'authenticationSASL', mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] },
  ],
  [
    'authenticationSASLContinue',
    be.authenticationSASLContinue(text('r=abc,s=c2FsdA==,i=4096')),
    msg('R', int32(11), text('r=abc,s=c2FsdA==,i=4096')),
    { name: 'authenticationSASLContinue', data: 'r=abc,s=c2FsdA==,i=4096' },
  ],
  ['authenticationSASLFinal', be.authenticationSASLFinal('v=xyz'), msg('R', int32(12), text('v=xyz')), { name: 'authenticationSASLFinal', data: 'v=xyz' }],
  [
    'parameterStatus',
    be.parameterStatus('client_encoding', 'UTF8'),
    msg('S', cstr('client_encoding'), cstr('UTF8')),
    { name: 'parameterStatus', parameterName: 'client_encoding', parameterValue: 'UTF8' },
  ],
  ['backendKeyData', be.backendKeyData(4242, int32(-99)), msg('K', int32(4242), int32(-99)), { name: 'backendKeyData', processID: 4242, secretKey: -99 }],
  ['readyForQuery I', be.readyForQuery('I'), msg('Z', text('I')), { name: 'readyForQuery', status: 'I' }],
  ['readyForQuery T', be.readyForQuery('T'), msg('Z', text('T')), { name: 'readyForQuery', status: 'T' }],
  ['readyForQuery E', be.readyForQuery('E'), msg('Z', text('E')), { name: 'readyForQuery', status: 'E' }],
  [
    'errorResponse, every field',
    be.errorResponse(fullError),
    msg(
      'E',
      text('S'), cstr('ERROR'),
      text('V'), cstr('ERROR'),
      text('C'), cstr('42501'),
      text('M'), cstr(fullError.message),
      text('D'), cstr('dé'),
      text('H'), cstr('Select other columns.'),
      text('P'), cstr('8'),
      text('R'), cstr('ormai.field_denied'),
      byte(0),
    ),
    { name: 'error', severity: 'ERROR', code: '42501', message: fullError.message, detail: 'dé', hint: 'Select other columns.', position: '8', routine: 'ormai.field_denied' },
  ],
  [
    'noticeResponse, required fields only',
    be.noticeResponse({ severity: 'NOTICE', code: '00000', message: 'hello' }),
    msg('N', text('S'), cstr('NOTICE'), text('V'), cstr('NOTICE'), text('C'), cstr('00000'), text('M'), cstr('hello'), byte(0)),
    { name: 'notice', severity: 'NOTICE', code: '00000', message: 'hello', detail: undefined },
  ],
  ['commandComplete', be.commandComplete('SELECT 3'), msg('C', cstr('SELECT 3')), { name: 'commandComplete', text: 'SELECT 3' }],
  ['emptyQueryResponse', be.emptyQueryResponse(), msg('I'), { name: 'emptyQuery' }],
  ['parseComplete', be.parseComplete(), msg('1'), { name: 'parseComplete' }],
  ['bindComplete', be.bindComplete(), msg('2'), { name: 'bindComplete' }],
  ['closeComplete', be.closeComplete(), msg('3'), { name: 'closeComplete' }],
  ['noData', be.noData(), msg('n'), { name: 'noData' }],
  ['portalSuspended', be.portalSuspended(), msg('s'), { name: 'portalSuspended' }],
  [
    'parameterDescription',
    be.parameterDescription([23, 25, 4294967295]),
    msg('t', int16(3), int32(23), int32(25), int32(-1)),
    { name: 'parameterDescription', parameterCount: 3, dataTypeIDs: [23, 25, 4294967295] },
  ],
  [
    'rowDescription',
    be.rowDescription([
      { name: 'id', tableOid: 16384, columnAttr: 1, dataTypeOid: 23, dataTypeSize: 4, typeModifier: -1, format: 0 },
      { name: 'émail', tableOid: 0, columnAttr: 0, dataTypeOid: 1043, dataTypeSize: -1, typeModifier: 259, format: 1 },
    ]),
    msg(
      'T', int16(2),
      cstr('id'), int32(16384), int16(1), int32(23), int16(4), int32(-1), int16(0),
      cstr('émail'), int32(0), int16(0), int32(1043), int16(-1), int32(259), int16(1),
    ),
    {
      name: 'rowDescription',
      fieldCount: 2,
      fields: [
        { name: 'id', tableID: 16384, columnID: 1, dataTypeID: 23, dataTypeSize: 4, dataTypeModifier: -1, format: 'text' },
        { name: 'émail', tableID: 0, columnID: 0, dataTypeID: 1043, dataTypeSize: -1, dataTypeModifier: 259, format: 'binary' },
      ],
    },
  ],
  [
    'dataRow',
    be.dataRow(['1', null, '', 'ü', byte(0x61, 0x62)]),
    msg('D', int16(5), int32(1), text('1'), int32(-1), int32(0), int32(2), text('ü'), int32(2), byte(0x61, 0x62)),
    { name: 'dataRow', fieldCount: 5, fields: ['1', null, '', 'ü', 'ab'] },
  ],
  ['dataRow with no columns', be.dataRow([]), msg('D', int16(0)), { name: 'dataRow', fieldCount: 0, fields: [] }],
];

describe('backend serializer', () => {
  it.each(cases)('%s: exact bytes, and pg-protocol reads it back', (_name, actual, expected, decoded) => {
    expect(actual).toEqual(expected);
    const msgs = parseAll(actual);
    expect(msgs).toHaveLength(1);
    expect(msgs[0]).toMatchObject({ ...decoded, length: expected.length - 1 });
  });

  it('all messages back to back parse as a stream', () => {
    const stream = concat(...cases.map((c) => c[1]));
    expect(parseAll(stream).map((m) => m.name)).toEqual(cases.map((c) => (c[3] as { name: string }).name));
  });

  it('negotiateProtocolVersion', () => {
    expect(be.negotiateProtocolVersion(0, ['_pq_.compression', '_pq_.x'])).toEqual(
      msg('v', int32(0), int32(2), cstr('_pq_.compression'), cstr('_pq_.x')),
    );
    expect(be.negotiateProtocolVersion(2, [])).toEqual(msg('v', int32(2), int32(0)));
  });

  it('backendKeyData keeps a long (protocol 3.2) key as is', () => {
    const key = Buffer.alloc(32, 7);
    expect(be.backendKeyData(1, key)).toEqual(msg('K', int32(1), key));
  });

  it('sslResponse is a single unframed byte', () => {
    expect(be.sslResponse(true)).toEqual(text('S'));
    expect(be.sslResponse(false)).toEqual(text('N'));
  });

  it('a dataRow with a large binary value, and one that grows the writer', () => {
    const big = Buffer.alloc(100_000, 0xfe);
    expect(be.dataRow([big, 'x']).equals(msg('D', int16(2), int32(big.length), big, int32(1), text('x')))).toBe(true);
    const names = Array.from({ length: 200 }, (_, i) => `column_${i}`);
    expect(be.authenticationSASL(names)).toEqual(msg('R', int32(10), ...names.map(cstr), byte(0)));
  });

  it('refuses to write a string containing NUL', () => {
    expect(() => be.commandComplete('SELECT\0 1')).toThrow(ProxyError);
    expect(() => be.errorResponse({ severity: 'ERROR', code: 'XX000', message: 'a\0b' })).toThrow(
      expect.objectContaining({ code: 'internal_error' }),
    );
  });

  it('serialises a ProxyError from the catalogue', () => {
    const fields = new ProxyError('protocol_violation', { detail: 'Bind: bad' }).toFields();
    const [parsed] = parseAll(be.errorResponse(fields));
    expect(parsed).toMatchObject({ name: 'error', severity: 'FATAL', code: '08P01', detail: 'Bind: bad', routine: 'ormai.protocol_violation' });
  });
});
