// Independent byte builder for wire-protocol tests: builds expected frames by hand.
//
// It deliberately shares no code with src/protocol, so a bug in the codec cannot hide by
// appearing on both sides of an assertion.

export type Part = Buffer | number[] | string;

/** One byte per number (0..255). */
export function byte(...values: number[]): Buffer {
  return Buffer.from(values);
}

export function int16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b[0] = (v >> 8) & 0xff;
  b[1] = v & 0xff;
  return b;
}

/** Big-endian 32 bits; negative values are written as two's complement. */
export function int32(v: number): Buffer {
  const u = v >>> 0;
  return Buffer.from([(u >>> 24) & 0xff, (u >>> 16) & 0xff, (u >>> 8) & 0xff, u & 0xff]);
}

/** UTF-8 text followed by a NUL. */
export function cstr(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
}

/** Text without a terminator. */
export function text(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

function toBuffer(p: Part): Buffer {
  if (typeof p === 'string') return Buffer.from(p, 'utf8');
  return Buffer.isBuffer(p) ? p : Buffer.from(p);
}

export function concat(...parts: Part[]): Buffer {
  return Buffer.concat(parts.map(toBuffer));
}

/** A regular message: type byte · int32 length (body + 4) · body. */
export function msg(type: string, ...body: Part[]): Buffer {
  const b = concat(...body);
  return Buffer.concat([Buffer.from(type, 'latin1'), int32(b.length + 4), b]);
}

/** A regular message whose length field says `length`, whatever the body really is. */
export function msgWithLength(type: string, length: number, ...body: Part[]): Buffer {
  return Buffer.concat([Buffer.from(type, 'latin1'), int32(length), concat(...body)]);
}

/** A startup-phase packet: int32 length (including itself) · int32 code · body. */
export function packet(code: number, ...body: Part[]): Buffer {
  const b = concat(...body);
  return Buffer.concat([int32(b.length + 8), int32(code), b]);
}

export const SSL_CODE = 1234 * 65536 + 5679;
export const GSSENC_CODE = 1234 * 65536 + 5680;
export const CANCEL_CODE = 1234 * 65536 + 5678;

export const sslRequest = (): Buffer => packet(SSL_CODE);
export const gssencRequest = (): Buffer => packet(GSSENC_CODE);

export function cancelRequest(processId: number, key: Buffer): Buffer {
  return packet(CANCEL_CODE, int32(processId), key);
}

/** StartupMessage: version 3.minor, name/value pairs, terminating NUL. */
export function startupPacket(params: Record<string, string>, minor = 0, major = 3): Buffer {
  const pairs = Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]);
  return packet(major * 65536 + minor, ...pairs, byte(0));
}

/** Bind body parts for the common case: formats, params (null = SQL NULL), result formats. */
export function bindBody(
  portal: string,
  statement: string,
  paramFormats: number[],
  params: (Buffer | string | null)[],
  resultFormats: number[],
): Buffer {
  return concat(
    cstr(portal),
    cstr(statement),
    int16(paramFormats.length),
    ...paramFormats.map(int16),
    int16(params.length),
    ...params.map((p) => (p === null ? int32(-1) : concat(int32(toBuffer(p).length), toBuffer(p)))),
    int16(resultFormats.length),
    ...resultFormats.map(int16),
  );
}

/** Every way to cut `buf` into two chunks (including an empty first or last chunk), then one byte at a time. */
export function chunkings(buf: Buffer): { name: string; chunks: Buffer[] }[] {
  const out: { name: string; chunks: Buffer[] }[] = [];
  for (let i = 0; i <= buf.length; i++) {
    out.push({ name: `split at ${i}`, chunks: [buf.subarray(0, i), buf.subarray(i)] });
  }
  const bytes: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) bytes.push(buf.subarray(i, i + 1));
  out.push({ name: 'byte by byte', chunks: bytes });
  return out;
}

/** A small deterministic PRNG (mulberry32) so fuzz failures reproduce. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
