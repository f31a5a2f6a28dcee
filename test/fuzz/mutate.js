// Fuzz mutations: a seeded PRNG, field-level changes re-encoded with correct lengths, and byte-level damage to the encoded frames.
const { encode, int32 } = require('./wire');

/** sfc32 seeded through xmur3: one independent stream per (seed, client, step) string. */
function rng(key) {
  let h = 1779033703 ^ key.length;
  for (let i = 0; i < key.length; i++) {
    h = Math.imul(h ^ key.charCodeAt(i), 3432918353);
    h = (h << 13) | (h >>> 19);
  }
  const seed = () => {
    h = Math.imul(h ^ (h >>> 16), 2246822507);
    h = Math.imul(h ^ (h >>> 13), 3266489909);
    return (h ^= h >>> 16) >>> 0;
  };
  let a = seed(), b = seed(), c = seed(), d = seed();
  const next = () => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  const r = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    chance: (p) => next() < p,
    pick: (list) => list[Math.floor(next() * list.length)],
    bytes: (n) => Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256))),
  };
  return r;
}

const INVALID_UTF8 = [[0xff], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc0, 0xaf]];
const WEIRD_NUMBERS = [0, 1, 2, 3, 4, 5, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 65535, 1000, 1001];
/** Parameter type OIDs a Parse may declare: none, built-ins, reg* and row types, and nonsense. */
const TYPE_OIDS = [0, 16, 20, 23, 25, 114, 1009, 2205, 2206, 3734, 1043, 83, 1259, 4294967295, 99999];

/** Replaces bytes of a text with something the UTF-8 decoder, the scanner or the parser must cope with. */
function damageText(r, s) {
  const b = Buffer.from(s, 'utf8');
  const at = r.int(0, b.length);
  const pieces = [
    Buffer.from(r.pick(INVALID_UTF8)),
    Buffer.from([0]),
    Buffer.from(r.pick(["'", '"', '$$', '/*', '*/', '(', ')', ';', '\\', 'U&"\\', 'E\'\\x', '$1', '$0', '$99999', '::regclass', '--', '\n'])),
    Buffer.from('\u{1F600}\u0000\u202e', 'utf8'),
  ];
  const insert = r.pick(pieces);
  const cut = r.chance(0.3) ? r.int(0, 8) : 0;
  return Buffer.concat([b.subarray(0, at), insert, b.subarray(Math.min(b.length, at + cut))]);
}

/** Changes one field of one message; the result still frames correctly. */
function mutateField(r, messages, donor) {
  const out = messages.map((m) => ({ ...m }));
  const m = out[r.int(0, out.length - 1)];
  switch (m.t) {
    case 'Q':
    case 'P':
      if (r.chance(0.2) && donor.sql) m.sql = r.chance(0.5) ? donor.sql : m.sql.slice(0, r.int(0, m.sql.length)) + donor.sql.slice(r.int(0, donor.sql.length));
      else if (m.t === 'P' && r.chance(0.3)) {
        m.types = Array.from({ length: r.int(0, 4) }, () => r.pick(TYPE_OIDS));
        if (r.chance(0.3)) m.ntypes = r.pick(WEIRD_NUMBERS);
      } else m.sql = damageText(r, m.sql);
      if (m.t === 'P' && r.chance(0.2)) m.name = r.pick(['x'.repeat(r.int(60, 70)), 'ormai_refused', '\u00e9'.repeat(40), 's1']);
      break;
    case 'B':
      switch (r.int(0, 5)) {
        case 0:
          m.pfmt = Array.from({ length: r.int(0, 3) }, () => r.pick([0, 1, 2, -1, 0x7fff, 0xffff]));
          break;
        case 1:
          m.rfmt = Array.from({ length: r.int(0, 3) }, () => r.pick([0, 1, 2, -1, 0x7fff]));
          break;
        case 2:
          m.nparams = r.pick(WEIRD_NUMBERS);
          break;
        case 3:
          m.params = Array.from({ length: r.int(0, 5) }, () => (r.chance(0.2) ? null : r.chance(0.5) ? r.bytes(r.int(0, 12)) : Buffer.from(r.pick(['1', '-1', '2147483648', 'NaN', '{1,2}', '', 'abc', '\u0000'])))) ;
          break;
        case 4:
          m.pfmt = [1];
          m.params = (m.params || []).map(() => r.bytes(r.pick([0, 1, 3, 4, 8])));
          break;
        default:
          m[r.pick(['portal', 'stmt'])] = r.pick(['s1', 'p1', 'nope', 'y'.repeat(r.int(62, 66))]);
      }
      break;
    case 'D':
    case 'C':
      if (r.chance(0.5)) m.target = r.pick(['X', 'p', 's', '\u0000']);
      else m.name = r.pick(['s1', 'p1', 'tx', 'z'.repeat(100)]);
      break;
    case 'E':
      m.maxRows = r.pick(WEIRD_NUMBERS);
      if (r.chance(0.3)) m.portal = r.pick(['p1', 'nope']);
      break;
    default:
      out.splice(out.indexOf(m), 0, { t: r.pick(['S', 'H', 'X']) });
  }
  return Buffer.concat(out.map(encode));
}

/** Offsets of each frame in an encoded sequence (type byte, then the int32 length). */
function frameStarts(bytes) {
  const starts = [];
  for (let at = 0; at + 5 <= bytes.length; ) {
    starts.push(at);
    const len = bytes.readUInt32BE(at + 1);
    if (len < 4) break;
    at += 1 + len;
  }
  return starts;
}

/** Damages encoded bytes: the framing itself may no longer hold. Returns { bytes, stalls } (stalls: the proxy may wait for more). */
function mutateBytes(r, bytes, donorBytes) {
  const starts = frameStarts(bytes);
  const frameAt = () => r.pick(starts.length ? starts : [0]);
  let b = Buffer.from(bytes);
  let stalls = false;
  switch (r.int(0, 10)) {
    case 0: // bit flips
      for (let n = r.int(1, 8); n > 0; n--) if (b.length) b[r.int(0, b.length - 1)] ^= 1 << r.int(0, 7);
      stalls = true;
      break;
    case 1: { // insert bytes
      const at = r.int(0, b.length);
      b = Buffer.concat([b.subarray(0, at), r.bytes(r.int(1, 16)), b.subarray(at)]);
      stalls = true;
      break;
    }
    case 2: { // delete bytes
      const at = r.int(0, Math.max(0, b.length - 1));
      b = Buffer.concat([b.subarray(0, at), b.subarray(at + r.int(1, 16))]);
      stalls = true;
      break;
    }
    case 3: { // length field off by a little, or absurd
      const at = frameAt();
      if (at + 5 <= b.length) {
        const len = b.readUInt32BE(at + 1);
        b.writeUInt32BE(r.pick([0, 1, 3, 4, 5, len - 1, len + 1, len + r.int(2, 64), Math.max(0, len - r.int(2, 64)), 0x80000000, 0xffffffff]) >>> 0, at + 1);
      }
      stalls = true;
      break;
    }
    case 4: // truncation
      b = b.subarray(0, r.int(0, Math.max(0, b.length - 1)));
      stalls = true;
      break;
    case 5: { // splice: our head, the donor's tail
      b = Buffer.concat([b.subarray(0, r.int(0, b.length)), donorBytes.subarray(r.int(0, donorBytes.length))]);
      stalls = true;
      break;
    }
    case 6: { // duplicate a whole frame (framing intact)
      const i = r.int(0, Math.max(0, starts.length - 1));
      const from = starts[i] ?? 0;
      const to = starts[i + 1] ?? b.length;
      const copy = b.subarray(from, to);
      b = Buffer.concat([b.subarray(0, to), ...Array.from({ length: r.int(1, 20) }, () => copy), b.subarray(to)]);
      break;
    }
    case 7: { // huge declared length: within max_message_size (the proxy waits) or above it (refused)
      const at = frameAt();
      if (at + 5 <= b.length) b.writeUInt32BE(r.pick([64 * 1024 * 1024, 64 * 1024 * 1024 + 1, 16 * 1024 * 1024, 1 << 30, 0x7fffffff]), at + 1);
      stalls = true;
      break;
    }
    case 8: { // wrong type byte
      const at = frameAt();
      if (at < b.length) b[at] = r.chance(0.5) ? r.pick([0x64, 0x63, 0x66, 0x46, 0x70, 0x58, 0x48, 0x53, 0x51, 0x00, 0xff]) : r.int(0, 255);
      stalls = true;
      break;
    }
    case 9: { // a message that is legal to frame but not expected in a session
      const bodies = [Buffer.from('CopyData junk'), Buffer.alloc(0), Buffer.from('oops\0'), Buffer.from([0, 0, 0, 1, 0, 0])];
      const type = r.pick(['d', 'c', 'f', 'F', 'p']);
      const body = r.pick(bodies);
      const extra = Buffer.concat([Buffer.from(type), int32(body.length + 4), body]);
      const at = r.pick([...starts, b.length]);
      b = Buffer.concat([b.subarray(0, at), extra, b.subarray(at)]);
      break;
    }
    default: { // a startup packet in the middle of a session
      const startup = Buffer.concat([int32(8 + 10), int32(196608), Buffer.from('user\0x\0\0')]);
      b = Buffer.concat([b, startup]);
      stalls = true;
    }
  }
  return { bytes: b, stalls };
}

module.exports = { rng, mutateField, mutateBytes, damageText };
