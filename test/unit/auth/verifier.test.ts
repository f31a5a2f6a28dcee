// Verifier format, key derivation and SASLprep, checked against verifiers PostgreSQL 15 produced.
import {
  buildVerifier,
  decodeBase64,
  DEFAULT_ITERATIONS,
  formatVerifier,
  hashPassword,
  parseVerifier,
  verifyPassword,
} from '../../../src/auth/verifier';
import { preparePassword, saslprep } from '../../../src/auth/saslprep';

// CREATE ROLE ... PASSWORD '<password>' with password_encryption = 'scram-sha-256', then pg_authid.rolpassword.
const PG_VERIFIER_PW =
  'SCRAM-SHA-256$4096:oLCp8GVmyETsj5gvXM4Dnw==$gIcolUjtZkPaJxqj98jBVffAJLP7sJrzRIEziKlg45M=:wscFYmcBjhAD8wtnIEbp5Dx1b0Rr2PZp4II5gf6xHKE=';

/** Non-ASCII passwords: PostgreSQL applied SASLprep, or fell back to the raw bytes. */
const PG_NON_ASCII: Array<{ name: string; verifier: string; password: string; equivalent?: string; different: string }> = [
  {
    name: 'mapped to nothing + NFKC (I<U+00AD>X<U+2168> is IXIX)',
    verifier: 'SCRAM-SHA-256$4096:GOP2XPjtAj41kX/0RZZ1Kw==$i7AAc0e6yzwjw0aPuogseshFWexa6A2CKh7dtcdKAVg=:t5fs4zjXCC2kUrzvWt5V/w2fDm+9aF+NbW+T3n13O+g=',
    password: 'I\u00adX\u2168',
    equivalent: 'IXIX',
    different: 'IX',
  },
  {
    name: 'non-ASCII space mapped to U+0020',
    verifier: 'SCRAM-SHA-256$4096:RCDLB8lLxK1+u+GHdtGoEQ==$w4LE3rU43MXTD+FSrl5DOATfUcVlyu1x6Ys05SktlqE=:s1xRAlzypvL+7fj6zdiPTq9ulU0W8S/bTS1SecMCtNs=',
    password: 'p\u00e4ss\u00a0w\u00f6rd',
    equivalent: 'p\u00e4ss w\u00f6rd',
    different: 'p\u00e4ssw\u00f6rd',
  },
  {
    name: 'bidi rule violated: raw bytes used',
    verifier: 'SCRAM-SHA-256$4096:Ct6U3wHecWxL8MNIsJltig==$JA7+WTffCjuXgM4fYGNprzjnhgbSpmgIjrfj52MAvuE=:eZ0gXYdkQmM9SxH0ivEqYTAMhWu03G8A3gvL/JdQoGM=',
    password: '\u0627\u0031',
    different: '\u0627',
  },
  {
    name: 'prohibited control character: raw bytes used, not normalised',
    verifier: 'SCRAM-SHA-256$4096:0E0rrh+jMAGzprzaQs7/kw==$8O1Cn9UZc2DU//UldqM/A99yYMLnXrP1GsClKM5qNKY=:92AbQt0AbnutVLeq91dFLoU/JgWb+VeFuTvRr4yCEfY=',
    password: 'e\u0301t\u00e9\u0007',
    different: '\u00e9t\u00e9\u0007',
  },
];

describe('verifier from PostgreSQL', () => {
  it('parses, reformats identically and verifies its password', () => {
    const v = parseVerifier(PG_VERIFIER_PW)!;
    expect(v).not.toBeNull();
    expect(v.iterations).toBe(4096);
    expect(v.salt).toHaveLength(16);
    expect(formatVerifier(v)).toBe(PG_VERIFIER_PW);
    expect(verifyPassword('pw', v)).toBe(true);
    expect(verifyPassword(Buffer.from('pw'), v)).toBe(true);
  });

  it('refuses other passwords', () => {
    const v = parseVerifier(PG_VERIFIER_PW)!;
    for (const wrong of ['', 'PW', 'pw ', 'pw\n', 'p']) expect(verifyPassword(wrong, v)).toBe(false);
  });

  it.each(PG_NON_ASCII)('non-ASCII password: $name', ({ verifier, password, equivalent, different }) => {
    const v = parseVerifier(verifier)!;
    expect(verifyPassword(password, v)).toBe(true);
    if (equivalent !== undefined) expect(verifyPassword(equivalent, v)).toBe(true);
    expect(verifyPassword(different, v)).toBe(false);
  });
});

describe('buildVerifier / hashPassword', () => {
  it('round-trips through the text format', () => {
    const v = buildVerifier('s3cret');
    expect(v.iterations).toBe(DEFAULT_ITERATIONS);
    expect(v.salt).toHaveLength(16);
    const text = formatVerifier(v);
    const back = parseVerifier(text)!;
    expect(back.salt.equals(v.salt) && back.storedKey.equals(v.storedKey) && back.serverKey.equals(v.serverKey)).toBe(true);
    expect(verifyPassword('s3cret', back)).toBe(true);
    expect(verifyPassword('s3cret!', back)).toBe(false);
  });

  it('uses a fresh salt each time and honours a fixed salt and iteration count', () => {
    expect(buildVerifier('x').salt.equals(buildVerifier('x').salt)).toBe(false);
    const salt = Buffer.alloc(16, 7);
    const a = buildVerifier('x', { salt, iterations: 10 });
    const b = buildVerifier('x', { salt, iterations: 10 });
    expect(formatVerifier(a)).toBe(formatVerifier(b));
    expect(a.iterations).toBe(10);
    expect(() => buildVerifier('x', { iterations: 0 })).toThrow(RangeError);
  });

  it('hashPassword produces what PostgreSQL stores', () => {
    const text = hashPassword('pw');
    expect(text).toMatch(/^SCRAM-SHA-256\$4096:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/);
    expect(verifyPassword('pw', parseVerifier(text)!)).toBe(true);
    expect(hashPassword('pw', 8192)).toMatch(/^SCRAM-SHA-256\$8192:/);
  });
});

describe('parseVerifier rejects', () => {
  const [, iterSalt, keys] = PG_VERIFIER_PW.split('$') as [string, string, string];
  it.each([
    ['md5 hash', 'md5a3556571e93b0d20722ba62be61e8c2d'],
    ['plain text', 'pw'],
    ['other mechanism', `SCRAM-SHA-1$${iterSalt}$${keys}`],
    ['zero iterations', `SCRAM-SHA-256$0:${iterSalt.split(':')[1]}$${keys}`],
    ['negative iterations', `SCRAM-SHA-256$-1:${iterSalt.split(':')[1]}$${keys}`],
    ['missing keys', `SCRAM-SHA-256$${iterSalt}`],
    ['missing ServerKey', `SCRAM-SHA-256$${iterSalt}$${keys.split(':')[0]}`],
    ['bad base64 salt', `SCRAM-SHA-256$4096:oLCp8G*myETsj5gvXM4Dnw==$${keys}`],
    ['short StoredKey', `SCRAM-SHA-256$${iterSalt}$AAAA:${keys.split(':')[1]}`],
    ['empty salt', `SCRAM-SHA-256$4096:$${keys}`],
    ['trailing text', `${PG_VERIFIER_PW} `],
  ])('%s', (_name, text) => {
    expect(parseVerifier(text)).toBeNull();
  });
});

describe('decodeBase64', () => {
  it('accepts canonical base64 only', () => {
    expect(decodeBase64('biws')?.toString()).toBe('n,,');
    expect(decodeBase64('')?.length).toBe(0);
    for (const bad of ['biw', 'bi ws', 'biws=', 'b!ws', 'biw=s']) expect(decodeBase64(bad)).toBeNull();
  });
});

describe('SASLprep (RFC 4013 section 3 examples)', () => {
  it.each([
    ['I\u00adX', 'IX'],
    ['user', 'user'],
    ['USER', 'USER'],
    ['\u00aa', 'a'],
    ['\u2168', 'IX'],
  ])('%j -> %j', (input, output) => {
    expect(saslprep(input)).toBe(output);
  });

  it.each([
    ['control character', '\u0007'],
    ['bidi: RandALCat followed by a digit', '\u0627\u0031'],
    ['private use', 'a\ue000'],
    ['mixed right-to-left and left-to-right letters', '\u05d0a\u05d0'],
  ])('prohibits %s', (_name, input) => {
    expect(saslprep(input)).toBeNull();
  });

  it('allows a right-to-left string that starts and ends with RandALCat', () => {
    expect(saslprep('\u0627\u0031\u0628')).toBe('\u0627\u0031\u0628');
  });

  it('preparePassword keeps ASCII and invalid UTF-8 as raw bytes', () => {
    expect(preparePassword('a\u0007b').toString('latin1')).toBe('a\u0007b');
    const invalid = Buffer.from([0x70, 0xff, 0x77]);
    expect(preparePassword(invalid).equals(invalid)).toBe(true);
    expect(preparePassword('\u2168').toString('utf8')).toBe('IX');
  });
});
