// FrontendDecoder on well-formed input: every message type, every chunking, pipelining, pauses.
import { FrontendDecoder, FrontendPacket } from '../../../src/protocol/frontend/decoder';
import {
  bindBody,
  byte,
  cancelRequest,
  chunkings,
  concat,
  cstr,
  gssencRequest,
  int16,
  int32,
  msg,
  sslRequest,
  startupPacket,
  text,
} from '../../support/bytes';

const MAX = 1 << 20;
const STARTUP = startupPacket({ user: 'agent', database: 'app' });
const STARTUP_DECODED = {
  type: 'StartupMessage',
  majorVersion: 3,
  minorVersion: 0,
  params: new Map([
    ['user', 'agent'],
    ['database', 'app'],
  ]),
};

/** A canonical string for a decoded list: quick to compare across hundreds of chunkings. */
function canon(packets: unknown): string {
  return JSON.stringify(packets, (_key, v: unknown) => {
    if (v instanceof Map) return { map: [...v.entries()] };
    if (v && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer') {
      return `hex:${Buffer.from((v as { data: number[] }).data).toString('hex')}`;
    }
    return v;
  });
}

function decode(chunks: Buffer[], maxMessageSize = MAX): FrontendPacket[] {
  const d = new FrontendDecoder({ maxMessageSize });
  return chunks.flatMap((c) => d.push(c));
}

interface Fixture {
  name: string;
  bytes: Buffer;
  expected: object;
}

const startupFixtures: Fixture[] = [
  { name: 'SSLRequest', bytes: sslRequest(), expected: { type: 'SSLRequest' } },
  { name: 'GSSENCRequest', bytes: gssencRequest(), expected: { type: 'GSSENCRequest' } },
  {
    name: 'CancelRequest 3.0',
    bytes: cancelRequest(4242, byte(1, 2, 3, 4)),
    expected: { type: 'CancelRequest', processId: 4242, secretKey: byte(1, 2, 3, 4) },
  },
  {
    name: 'CancelRequest 3.2 long key',
    bytes: cancelRequest(-7, Buffer.alloc(32, 0xab)),
    expected: { type: 'CancelRequest', processId: -7, secretKey: Buffer.alloc(32, 0xab) },
  },
  { name: 'StartupMessage 3.0', bytes: STARTUP, expected: STARTUP_DECODED },
  {
    name: 'StartupMessage 3.2, protocol option, UTF-8 value',
    bytes: startupPacket({ user: 'ágent', _pq_x: 'on', application_name: '' }, 2),
    expected: {
      type: 'StartupMessage',
      majorVersion: 3,
      minorVersion: 2,
      params: new Map([
        ['user', 'ágent'],
        ['_pq_x', 'on'],
        ['application_name', ''],
      ]),
    },
  },
  {
    name: 'StartupMessage with no parameters',
    bytes: startupPacket({}),
    expected: { type: 'StartupMessage', majorVersion: 3, minorVersion: 0, params: new Map() },
  },
];

function regular(name: string, bytes: Buffer, fields: object): Fixture {
  return { name, bytes, expected: { ...fields, raw: bytes } };
}

const binaryParam = byte(0, 0, 0, 42, 0, 255);
const messageFixtures: Fixture[] = [
  regular('Query', msg('Q', cstr('select 1')), { type: 'Query', sql: 'select 1' }),
  regular('Query UTF-8', msg('Q', cstr("select 'héllo ✓ 😀'")), { type: 'Query', sql: "select 'héllo ✓ 😀'" }),
  regular('Query empty', msg('Q', cstr('')), { type: 'Query', sql: '' }),
  regular('Parse named with types', msg('P', cstr('s1'), cstr('select $1, $2, $3'), int16(3), int32(23), int32(25), int32(-1)), {
    type: 'Parse',
    name: 's1',
    sql: 'select $1, $2, $3',
    paramTypes: [23, 25, 4294967295],
  }),
  regular('Parse unnamed', msg('P', cstr(''), cstr('select 1'), int16(0)), { type: 'Parse', name: '', sql: 'select 1', paramTypes: [] }),
  regular('Bind one format for all', msg('B', bindBody('p1', 's1', [1], [binaryParam, null, ''], [0, 1])), {
    type: 'Bind',
    portal: 'p1',
    statement: 's1',
    paramFormats: [1],
    params: [binaryParam, null, Buffer.alloc(0)],
    resultFormats: [0, 1],
  }),
  regular('Bind no formats', msg('B', bindBody('', '', [], ['42', 'é'], [])), {
    type: 'Bind',
    portal: '',
    statement: '',
    paramFormats: [],
    params: [text('42'), text('é')],
    resultFormats: [],
  }),
  regular('Bind a format per parameter', msg('B', bindBody('', 'st', [0, 1], ['x', binaryParam], [1])), {
    type: 'Bind',
    portal: '',
    statement: 'st',
    paramFormats: [0, 1],
    params: [text('x'), binaryParam],
    resultFormats: [1],
  }),
  regular('Describe statement', msg('D', byte(0x53), cstr('s1')), { type: 'Describe', target: 'S', name: 's1' }),
  regular('Describe portal', msg('D', byte(0x50), cstr('')), { type: 'Describe', target: 'P', name: '' }),
  regular('Execute all rows', msg('E', cstr(''), int32(0)), { type: 'Execute', portal: '', maxRows: 0 }),
  regular('Execute 100 rows', msg('E', cstr('p1'), int32(100)), { type: 'Execute', portal: 'p1', maxRows: 100 }),
  regular('Execute unsigned row limit', msg('E', cstr('p1'), int32(-1)), { type: 'Execute', portal: 'p1', maxRows: 4294967295 }),
  regular('Close statement', msg('C', byte(0x53), cstr('s1')), { type: 'Close', target: 'S', name: 's1' }),
  regular('Close portal', msg('C', byte(0x50), cstr('p1')), { type: 'Close', target: 'P', name: 'p1' }),
  regular('Sync', msg('S'), { type: 'Sync' }),
  regular('Flush', msg('H'), { type: 'Flush' }),
  regular('CopyData', msg('d', byte(0, 1, 2, 0, 255)), { type: 'CopyData', data: byte(0, 1, 2, 0, 255) }),
  regular('CopyData empty', msg('d'), { type: 'CopyData', data: Buffer.alloc(0) }),
  regular('CopyDone', msg('c'), { type: 'CopyDone' }),
  regular('CopyFail', msg('f', cstr('aborted by user')), { type: 'CopyFail', message: 'aborted by user' }),
  regular('FunctionCall', msg('F', int32(1234), int16(0), int16(0), int16(0)), { type: 'FunctionCall' }),
  regular('AuthResponse password', msg('p', cstr('s3cret')), { type: 'AuthResponse', data: cstr('s3cret') }),
  regular('AuthResponse SASLInitialResponse', msg('p', cstr('SCRAM-SHA-256'), int32(8), text('n,,n=,r=')), {
    type: 'AuthResponse',
    data: concat(cstr('SCRAM-SHA-256'), int32(8), text('n,,n=,r=')),
  }),
];
const terminate = regular('Terminate', msg('X'), { type: 'Terminate' });

describe('FrontendDecoder: startup packets', () => {
  it.each(startupFixtures)('$name decodes in one chunk, split at every offset and byte by byte', ({ bytes, expected }) => {
    for (const { name, chunks } of chunkings(bytes)) {
      expect([name, decode(chunks)]).toEqual([name, [expected]]);
    }
  });
});

describe('FrontendDecoder: regular messages', () => {
  it.each([...messageFixtures, terminate])('$name decodes in one chunk, split at every offset and byte by byte', ({ bytes, expected }) => {
    const stream = concat(STARTUP, bytes);
    for (const { name, chunks } of chunkings(stream)) {
      expect([name, decode(chunks)]).toEqual([name, [STARTUP_DECODED, expected]]);
    }
  });

  it('decodes a pipelined stream in one chunk and at every split', () => {
    const all = [...messageFixtures, terminate];
    const stream = concat(STARTUP, ...all.map((f) => f.bytes));
    const expected = [STARTUP_DECODED, ...all.map((f) => f.expected)];
    expect(decode([stream])).toEqual(expected);
    const want = canon(expected);
    for (const { name, chunks } of chunkings(stream)) {
      expect([name, canon(decode(chunks))]).toEqual([name, want]);
    }
  });

  it('returns views into the chunk for whole frames and its own copy for split ones', () => {
    const q = msg('Q', cstr('select 1'));
    const chunk = concat(STARTUP, q);
    const [, whole] = decode([chunk]) as [unknown, { raw: Buffer }];
    const cut = STARTUP.length + 3;
    const [, split] = decode([chunk.subarray(0, cut), chunk.subarray(cut)]) as [unknown, { raw: Buffer }];
    chunk.fill(0);
    expect(whole.raw).toEqual(Buffer.alloc(q.length));
    expect(split.raw).toEqual(q);
  });

  it('assembles a large message arriving in many small chunks', () => {
    const sql = `select '${'x'.repeat(200_000)}'`;
    const q = msg('Q', cstr(sql));
    const chunks: Buffer[] = [STARTUP];
    for (let i = 0; i < q.length; i += 1000) chunks.push(q.subarray(i, i + 1000));
    const [startup, query] = decode(chunks) as [unknown, { type: string; sql: string; raw: Buffer }];
    expect(startup).toEqual(STARTUP_DECODED);
    expect(query.type).toBe('Query');
    expect(query.sql === sql).toBe(true);
    expect(query.raw.equals(q)).toBe(true);
  });

  it('accepts a message whose length equals maxMessageSize', () => {
    const q = msg('Q', cstr('select 1')); // length field = 4 + 9 = 13
    expect(decode([STARTUP, q], 13)).toHaveLength(2);
  });

  it('decodes nothing after Terminate', () => {
    const d = new FrontendDecoder({ maxMessageSize: MAX });
    expect(d.push(concat(STARTUP, msg('X'), msg('Q', cstr('select 1'))))).toHaveLength(2);
    expect(d.push(msg('Q', cstr('select 2')))).toEqual([]);
  });
});

describe('FrontendDecoder: SSLRequest, GSSENCRequest and CancelRequest', () => {
  it.each([
    ['SSLRequest', sslRequest()],
    ['GSSENCRequest', gssencRequest()],
  ])('stops after %s and holds pipelined bytes', (type, request) => {
    const d = new FrontendDecoder({ maxMessageSize: MAX });
    const after = concat(STARTUP, msg('Q', cstr('select 1')));
    expect(d.push(concat(request, after))).toEqual([{ type }]);
    expect(d.isPaused()).toBe(true);
    expect(d.bufferedBytes()).toBe(after.length);
    const resumed = d.resume();
    expect(resumed).toEqual([STARTUP_DECODED, { type: 'Query', sql: 'select 1', raw: msg('Q', cstr('select 1')) }]);
    expect(d.bufferedBytes()).toBe(0);
  });

  it('holds every byte pushed while paused, then decodes them in order with the next push', () => {
    const d = new FrontendDecoder({ maxMessageSize: MAX });
    expect(d.push(concat(sslRequest(), STARTUP.subarray(0, 3)))).toEqual([{ type: 'SSLRequest' }]);
    expect(d.bufferedBytes()).toBe(3);
    expect(d.push(STARTUP.subarray(3))).toEqual([STARTUP_DECODED]);
  });

  it('continues with the next push when nothing was pipelined (after the TLS handshake)', () => {
    const d = new FrontendDecoder({ maxMessageSize: MAX });
    expect(d.push(sslRequest())).toEqual([{ type: 'SSLRequest' }]);
    expect(d.bufferedBytes()).toBe(0);
    expect(d.resume()).toEqual([]);
    expect(d.push(STARTUP)).toEqual([STARTUP_DECODED]);
  });

  it('pauses again on a second request found in held bytes', () => {
    const d = new FrontendDecoder({ maxMessageSize: MAX });
    expect(d.push(concat(gssencRequest(), sslRequest(), STARTUP))).toEqual([{ type: 'GSSENCRequest' }]);
    expect(d.resume()).toEqual([{ type: 'SSLRequest' }]);
    expect(d.bufferedBytes()).toBe(STARTUP.length);
    expect(d.resume()).toEqual([STARTUP_DECODED]);
  });

  it('decodes nothing after a CancelRequest', () => {
    const d = new FrontendDecoder({ maxMessageSize: MAX });
    const cancel = cancelRequest(1, byte(9, 9, 9, 9));
    expect(d.push(concat(cancel, STARTUP))).toEqual([{ type: 'CancelRequest', processId: 1, secretKey: byte(9, 9, 9, 9) }]);
    expect(d.push(STARTUP)).toEqual([]);
    expect(d.bufferedBytes()).toBe(0);
  });
});
