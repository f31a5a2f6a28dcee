// SCRAM-SHA-256 server and client: RFC 7677's test vector on both sides, full exchanges, and refusals.
import { ProxyError } from '../../../src/errors/catalogue';
import { createScramClient, createScramServer, ScramClientError } from '../../../src/auth/scram';
import { buildVerifier } from '../../../src/auth/verifier';

// RFC 7677 section 3.
const RFC = {
  password: 'pencil',
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  salt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'),
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal:
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const rfcVerifier = buildVerifier(RFC.password, { salt: RFC.salt, iterations: 4096 });
const verifier = buildVerifier('correct horse', { iterations: 64 });

function violation(fn: () => unknown): ProxyError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProxyError);
    expect((err as ProxyError).code).toBe('protocol_violation');
    return err as ProxyError;
  }
  throw new Error('expected a protocol violation');
}

/** A server that has already answered a well-formed client-first; returns the pieces. */
function started(clientFirst = 'n,,n=,r=abc') {
  const server = createScramServer(verifier, { serverNonce: 'XYZ' });
  const serverFirst = server.first(b(clientFirst)).toString('latin1');
  return { server, serverFirst };
}

describe('RFC 7677 test vector', () => {
  it('server side produces server-first and server-final byte for byte', () => {
    const server = createScramServer(rfcVerifier, { serverNonce: RFC.serverNonce });
    expect(server.first(b(RFC.clientFirst)).toString('latin1')).toBe(RFC.serverFirst);
    expect(server.final(b(RFC.clientFinal))?.toString('latin1')).toBe(RFC.serverFinal);
  });

  it('client side produces client-first and client-final byte for byte and accepts the server', () => {
    const client = createScramClient(RFC.password, { nonce: RFC.clientNonce, username: 'user' });
    expect(client.clientFirst().toString('latin1')).toBe(RFC.clientFirst);
    expect(client.clientFinal(b(RFC.serverFirst)).toString('latin1')).toBe(RFC.clientFinal);
    expect(() => client.verifyServerFinal(b(RFC.serverFinal))).not.toThrow();
  });

  it('client refuses a server final signed with another key', () => {
    const client = createScramClient(RFC.password, { nonce: RFC.clientNonce, username: 'user' });
    client.clientFinal(b(RFC.serverFirst));
    const forged = `v=${Buffer.alloc(32, 1).toString('base64')}`;
    expect(() => client.verifyServerFinal(b(forged))).toThrow(ScramClientError);
    expect(() => client.verifyServerFinal(b('v=AAAA'))).toThrow(/server signature is invalid/);
  });
});

describe('client <-> server exchange', () => {
  function exchange(password: string, serverOpts: { doomed?: boolean } = {}) {
    const client = createScramClient(password);
    const server = createScramServer(verifier, serverOpts);
    const first = client.clientFirst();
    const serverFirst = server.first(first);
    const serverFinal = server.final(client.clientFinal(serverFirst));
    return { client, first, serverFirst, serverFinal };
  }

  it('succeeds with the right password, and each side proves itself to the other', () => {
    const { client, first, serverFirst, serverFinal } = exchange('correct horse');
    // libpq's shape: no channel binding, empty user name, 18 random bytes of nonce.
    expect(first.toString('latin1')).toMatch(/^n,,n=,r=[A-Za-z0-9+/]{24}$/);
    const clientNonce = first.toString('latin1').slice('n,,n=,r='.length);
    const m = /^r=([^,]+),s=([^,]+),i=64$/.exec(serverFirst.toString('latin1'))!;
    expect(m[1]!.startsWith(clientNonce)).toBe(true);
    expect(m[1]!.slice(clientNonce.length)).toMatch(/^[A-Za-z0-9+/]{24}$/);
    expect(m[2]).toBe(verifier.salt.toString('base64'));
    expect(serverFinal).not.toBeNull();
    expect(() => client.verifyServerFinal(serverFinal!)).not.toThrow();
  });

  it('fails with a wrong password (the server returns no final message)', () => {
    expect(exchange('correct horse!').serverFinal).toBeNull();
  });

  it('a doomed exchange fails even with the right password', () => {
    expect(exchange('correct horse', { doomed: true }).serverFinal).toBeNull();
  });

  it('fails when one bit of the client proof is flipped', () => {
    const client = createScramClient('correct horse');
    const server = createScramServer(verifier);
    const final = client.clientFinal(server.first(client.clientFirst())).toString('latin1');
    const proof = Buffer.from(final.slice(final.indexOf(',p=') + 3), 'base64');
    proof[5] ^= 0x01;
    expect(server.final(b(`${final.slice(0, final.indexOf(',p='))},p=${proof.toString('base64')}`))).toBeNull();
  });

  it('accepts gs2 flag y (client could bind, but none was offered) with c=base64("y,,")', () => {
    const { server, serverFirst } = started('y,,n=,r=abc');
    expect(serverFirst).toBe(`r=abcXYZ,s=${verifier.salt.toString('base64')},i=64`);
    // The proof is wrong here; what matters is that the channel-binding check passed.
    expect(server.final(b(`c=eSws,r=abcXYZ,p=${Buffer.alloc(32).toString('base64')}`))).toBeNull();
  });
});

describe('server refuses malformed or unsupported client-first messages', () => {
  const server = () => createScramServer(verifier, { serverNonce: 'XYZ' });
  it.each([
    ['channel binding requested (p=)', 'p=tls-server-end-point,,n=,r=abc', /SCRAM-SHA-256-PLUS was not offered/],
    ['unknown gs2 flag', 'x,,n=,r=abc', /channel-binding flag/],
    ['authorization identity', 'n,a=admin,n=,r=abc', /authorization identity/],
    ['mandatory extension m=', 'n,,m=ext,n=,r=abc', /mandatory SCRAM extension/],
    ['extension after the nonce', 'n,,n=,r=abc,x=1', /unsupported SCRAM extension "x"/],
    ['missing nonce', 'n,,n=', /expected n= and r=/],
    ['non-printable nonce', 'n,,n=,r=ab\x7fc', /not printable/],
    ['empty nonce', 'n,,n=,r=', /not printable/],
    ['no gs2 header', 'n=,r=abc', /channel-binding flag|GS2 header/],
    ['NUL byte', 'n,,n=\0,r=abc', /NUL/],
    ['empty message', '', /GS2 header/],
  ])('%s', (_name, message, detail) => {
    const err = violation(() => server().first(b(message)));
    expect(err.logMessage).toMatch(detail);
  });

  it('ignores the user name inside client-first (the startup user counts)', () => {
    expect(() => server().first(b('n,,n=someone=2Celse,r=abc'))).not.toThrow();
  });
});

describe('server refuses malformed client-final messages', () => {
  const proof = Buffer.alloc(32).toString('base64');
  it.each([
    ['wrong nonce', `c=biws,r=abcXYZW,p=${proof}`, /nonce does not match/],
    ['client nonce only', `c=biws,r=abc,p=${proof}`, /nonce does not match/],
    ['channel binding attribute for another header', `c=eSws,r=abcXYZ,p=${proof}`, /channel-binding attribute/],
    ['channel binding attribute not base64', `c=b!ws,r=abcXYZ,p=${proof}`, /channel-binding attribute/],
    ['unknown extension before the proof', `c=biws,r=abcXYZ,x=1,p=${proof}`, /unsupported SCRAM extension "x"/],
    ['missing proof', 'c=biws,r=abcXYZ', /p= last/],
    ['garbage after the proof', `c=biws,r=abcXYZ,p=${proof},x=1`, /p= last/],
    ['short proof', 'c=biws,r=abcXYZ,p=AAAA', /malformed client proof/],
    ['proof not base64', 'c=biws,r=abcXYZ,p=%%%%', /malformed client proof/],
    ['attributes out of order', `r=abcXYZ,c=biws,p=${proof}`, /expected c= and r=/],
  ])('%s', (_name, message, detail) => {
    const { server } = started();
    const err = violation(() => server.final(b(message)));
    expect(err.logMessage).toMatch(detail);
  });

  it('refuses messages out of order', () => {
    violation(() => createScramServer(verifier).final(b('c=biws,r=abc,p=AAAA')));
    const { server } = started();
    violation(() => server.first(b('n,,n=,r=abc')));
    // A refused client-first ends the exchange: no client-final is looked at afterwards.
    const refused = createScramServer(verifier);
    violation(() => refused.first(b('n,,n=,r=')));
    expect(violation(() => refused.final(b('c=,r=,p=AAAA'))).logMessage).toMatch(/unexpected SCRAM client-final/);
  });
});

describe('client refuses a misbehaving server', () => {
  const client = () => createScramClient('pw', { nonce: 'abc' });
  const salt = Buffer.alloc(16).toString('base64');
  it.each([
    ['nonce that does not extend ours', `r=xyzXYZ,s=${salt},i=4096`, /nonce/],
    ['nonce equal to ours', `r=abc,s=${salt},i=4096`, /nonce/],
    ['mandatory extension', `m=1,r=abcXYZ,s=${salt},i=4096`, /unsupported SCRAM extension/],
    ['trailing attribute', `r=abcXYZ,s=${salt},i=4096,x=1`, /malformed server-first/],
    ['zero iterations', `r=abcXYZ,s=${salt},i=0`, /iteration count/],
    ['non-numeric iterations', `r=abcXYZ,s=${salt},i=4k`, /iteration count/],
    ['bad salt', `r=abcXYZ,s=**,i=4096`, /salt/],
    ['not attributes', 'hello', /malformed server-first/],
  ])('%s', (_name, serverFirst, message) => {
    expect(() => client().clientFinal(b(serverFirst))).toThrow(message);
  });

  it('reports a server error attribute and a final message out of order', () => {
    const c = client();
    expect(() => c.verifyServerFinal(b('v=AAAA'))).toThrow(/before client-final/);
    c.clientFinal(b(`r=abcXYZ,s=${salt},i=1`));
    expect(() => c.verifyServerFinal(b('e=invalid-proof'))).toThrow(/server reported an error: invalid-proof/);
  });

  it('escapes = and , in the user name, and never puts the password in an error', () => {
    expect(createScramClient('pw', { nonce: 'n', username: 'a=b,c' }).clientFirst().toString()).toBe('n,,n=a=3Db=2Cc,r=n');
    const attempt = () => createScramClient('hunter2-secret', { nonce: 'abc' }).clientFinal(b('r=zzz,s=AAAA,i=1'));
    expect(attempt).toThrow(ScramClientError);
    expect(attempt).not.toThrow(/hunter2/);
  });
});
