// SASLprep (RFC 4013) of passwords, with PostgreSQL's fallback to the raw bytes.
//
// PostgreSQL (server and libpq alike) normalises a password with SASLprep before
// hashing it, and when the password is not valid UTF-8 or SASLprep prohibits it, it
// hashes the raw bytes instead. Verifiers built here must match verifiers built by
// PostgreSQL, so the same rule is followed. Two approximations, both only for exotic
// passwords: normalisation uses the runtime's Unicode version rather than 3.2, the
// code points unassigned in Unicode 3.2 (RFC 3454 A.1) are not checked, and "LCat"
// in the bidi rule is approximated as any letter that is not RandALCat.

type Range = readonly [number, number];

/** RFC 3454 C.1.2: mapped to U+0020 by SASLprep, and prohibited in its output. */
const NON_ASCII_SPACE: readonly Range[] = [
  [0x00a0, 0x00a0], [0x1680, 0x1680], [0x2000, 0x200b], [0x202f, 0x202f], [0x205f, 0x205f],
  [0x3000, 0x3000],
];

/** RFC 3454 B.1: commonly mapped to nothing. */
const MAPPED_TO_NOTHING: readonly Range[] = [
  [0x00ad, 0x00ad], [0x034f, 0x034f], [0x1806, 0x1806], [0x180b, 0x180d], [0x200b, 0x200d],
  [0x2060, 0x2060], [0xfe00, 0xfe0f], [0xfeff, 0xfeff],
];

/** RFC 3454 C.2.1, C.2.2, C.3, C.5, C.6, C.7, C.8, C.9 (C.1.2 and C.4 are checked apart). */
const PROHIBITED: readonly Range[] = [
  [0x0000, 0x001f], [0x007f, 0x009f], [0x0340, 0x0341], [0x06dd, 0x06dd], [0x070f, 0x070f],
  [0x180e, 0x180e], [0x200c, 0x200f], [0x2028, 0x202e], [0x2060, 0x2063], [0x206a, 0x206f],
  [0x2ff0, 0x2ffb], [0xd800, 0xf8ff], [0xfeff, 0xfeff], [0xfff9, 0xfffd], [0x1d173, 0x1d17a],
  [0xe0001, 0xe0001], [0xe0020, 0xe007f], [0xf0000, 0xffffd], [0x100000, 0x10fffd],
];

/** RFC 3454 D.1: characters with bidirectional property R or AL. */
const RAND_AL_CAT: readonly Range[] = [
  [0x05be, 0x05be], [0x05c0, 0x05c0], [0x05c3, 0x05c3], [0x05d0, 0x05ea], [0x05f0, 0x05f4],
  [0x061b, 0x061b], [0x061f, 0x061f], [0x0621, 0x063a], [0x0640, 0x064a], [0x066d, 0x066f],
  [0x0671, 0x06d5], [0x06dd, 0x06dd], [0x06e5, 0x06e6], [0x06fa, 0x06fe], [0x0700, 0x070d],
  [0x0710, 0x0710], [0x0712, 0x072c], [0x0780, 0x07a5], [0x07b1, 0x07b1], [0x200f, 0x200f],
  [0xfb1d, 0xfb1d], [0xfb1f, 0xfb28], [0xfb2a, 0xfb36], [0xfb38, 0xfb3c], [0xfb3e, 0xfb3e],
  [0xfb40, 0xfb41], [0xfb43, 0xfb44], [0xfb46, 0xfbb1], [0xfbd3, 0xfd3d], [0xfd50, 0xfd8f],
  [0xfd92, 0xfdc7], [0xfdf0, 0xfdfc], [0xfe70, 0xfe74], [0xfe76, 0xfefc],
];

const LETTER = /^\p{L}$/u;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function inRanges(cp: number, ranges: readonly Range[]): boolean {
  for (const [lo, hi] of ranges) if (cp >= lo && cp <= hi) return true;
  return false;
}

/** RFC 3454 C.4: U+FDD0..U+FDEF and the last two code points of every plane. */
function isNonCharacter(cp: number): boolean {
  return (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe;
}

/** The SASLprep'd string, or null when RFC 4013 prohibits the input. */
export function saslprep(input: string): string | null {
  let mapped = '';
  for (const ch of input) {
    const cp = ch.codePointAt(0)!;
    if (inRanges(cp, NON_ASCII_SPACE)) mapped += ' ';
    else if (!inRanges(cp, MAPPED_TO_NOTHING)) mapped += ch;
  }
  const normalised = mapped.normalize('NFKC');
  const chars = [...normalised];
  let randAl = 0;
  let lCat = 0;
  for (const ch of chars) {
    const cp = ch.codePointAt(0)!;
    if (inRanges(cp, NON_ASCII_SPACE) || inRanges(cp, PROHIBITED) || isNonCharacter(cp)) return null;
    if (inRanges(cp, RAND_AL_CAT)) randAl++;
    else if (LETTER.test(ch)) lCat++;
  }
  // RFC 3454 section 6: right-to-left text must not mix with left-to-right letters
  // and must begin and end with a right-to-left character.
  if (randAl > 0) {
    const first = chars[0]!.codePointAt(0)!;
    const last = chars[chars.length - 1]!.codePointAt(0)!;
    if (lCat > 0 || !inRanges(first, RAND_AL_CAT) || !inRanges(last, RAND_AL_CAT)) return null;
  }
  return normalised;
}

/** The bytes PostgreSQL feeds to PBKDF2 for this password. */
export function preparePassword(password: Buffer | string): Buffer {
  const raw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  // Pure ASCII needs no processing, as in PostgreSQL (control characters included).
  if (raw.every((b) => b < 0x80)) return raw;
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return raw;
  }
  const prepared = saslprep(text);
  return prepared === null ? raw : Buffer.from(prepared, 'utf8');
}
