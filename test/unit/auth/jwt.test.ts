// JWT as the password: HS256/RS256/ES256 keys, time and issuer checks, claims mapping, uniform refusals.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importPKCS8, SignJWT, type JWTPayload } from 'jose';
import { createJwtVerifier, jwtConfigSchema, type JwtConfigInput, type JwtVerifier } from '../../../src/auth/jwt';
import { ProxyError } from '../../../src/errors/catalogue';

let dir: string;
const secret = randomBytes(32).toString('hex');
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = {
  public: (k: typeof rsa) => k.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  private: (k: typeof rsa) => k.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ormai-jwt-'));
  // A trailing newline, as `echo` leaves it: not part of the secret.
  writeFileSync(join(dir, 'hs.secret'), `${secret}\n`);
  writeFileSync(join(dir, 'short.secret'), 'too-short');
  writeFileSync(join(dir, 'rsa.pem'), pem.public(rsa));
  writeFileSync(join(dir, 'ec.pem'), pem.public(ec));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const now = () => Math.floor(Date.now() / 1000);
const base = (): JWTPayload => ({ sub: 'agent-7', tenant_id: 'acme', exp: now() + 300 });

async function sign(payload: JWTPayload, alg: string, key: 'hs' | 'rsa' | 'other-rsa' | 'ec'): Promise<string> {
  const signingKey =
    key === 'hs'
      ? Buffer.from(secret)
      : await importPKCS8(pem.private(key === 'rsa' ? rsa : key === 'ec' ? ec : otherRsa), alg);
  return new SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT' }).sign(signingKey);
}

const hsConfig: JwtConfigInput = { algorithms: ['HS256'], secret_file: 'hs.secret' };
const verifier = (config: JwtConfigInput = hsConfig): Promise<JwtVerifier> => createJwtVerifier(config, dir);
const WRONG_PASSWORD = new ProxyError('authentication_failed').toFields();

/** Every refusal looks exactly like a wrong password; the reason is only in logMessage. */
async function refused(v: JwtVerifier, token: string, reason: RegExp, user = 'agent-7'): Promise<void> {
  const err = await v.verify(token, user).then(
    () => {
      throw new Error('expected the token to be refused');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ProxyError);
  const pe = err as ProxyError;
  expect(pe.toFields()).toEqual(WRONG_PASSWORD);
  expect(pe.logMessage).toMatch(reason);
  if (token.length > 10) {
    expect(pe.logMessage).not.toContain(token);
    expect(pe.message).not.toContain(token);
  }
}

describe('accepted tokens', () => {
  it('HS256 with the secret from a file', async () => {
    const v = await verifier();
    const principal = await v.verify(await sign(base(), 'HS256', 'hs'), 'bot');
    // The subject is the user, whatever name the connection sent.
    expect(principal).toEqual({ user: 'agent-7', subject: 'agent-7', tenantId: 'acme', roles: [], authMethod: 'jwt' });
  });

  it('RS256 with a PEM public key', async () => {
    const v = await verifier({ algorithms: ['RS256'], public_key_file: 'rsa.pem' });
    expect((await v.verify(await sign(base(), 'RS256', 'rsa'), 'bot')).tenantId).toBe('acme');
  });

  it('ES256 with a PEM public key, given by absolute path', async () => {
    const v = await verifier({ algorithms: ['ES256'], public_key_file: join(dir, 'ec.pem') });
    expect((await v.verify(await sign(base(), 'ES256', 'ec'), 'bot')).subject).toBe('agent-7');
  });

  it('HS256 and RS256 side by side, each with its own key', async () => {
    const v = await verifier({ algorithms: ['HS256', 'RS256'], secret_file: 'hs.secret', public_key_file: 'rsa.pem' });
    await expect(v.verify(await sign(base(), 'HS256', 'hs'), 'bot')).resolves.toMatchObject({ tenantId: 'acme' });
    await expect(v.verify(await sign(base(), 'RS256', 'rsa'), 'bot')).resolves.toMatchObject({ tenantId: 'acme' });
  });

  it('maps an integer tenant, roles as an array or a space-separated string, and custom claim names', async () => {
    const v = await verifier();
    const arr = await v.verify(await sign({ ...base(), tenant_id: 42, roles: ['agent', 'reader'] }, 'HS256', 'hs'), 'bot');
    expect(arr).toMatchObject({ tenantId: '42', roles: ['agent', 'reader'] });
    const str = await v.verify(await sign({ ...base(), roles: ' agent  reader ' }, 'HS256', 'hs'), 'bot');
    expect(str.roles).toEqual(['agent', 'reader']);

    const custom = await verifier({ ...hsConfig, claims: { tenant: 'org', subject: 'email', roles: 'scope' } });
    const p = await custom.verify(await sign({ exp: now() + 60, org: 'o1', email: 'a@b.c', scope: 'read write' }, 'HS256', 'hs'), 'bot');
    expect(p).toEqual({ user: 'a@b.c', subject: 'a@b.c', tenantId: 'o1', roles: ['read', 'write'], authMethod: 'jwt' });
  });

  it('refuses a token without a subject: the name a connection sends is not an identity', async () => {
    const v = await verifier();
    const { sub: _sub, ...noSub } = base();
    await expect(v.verify(await sign(noSub, 'HS256', 'hs'), 'bot')).rejects.toMatchObject({ code: 'authentication_failed', logMessage: expect.stringMatching(/needs the subject claim "sub"/) });
  });

  it('tolerates clock skew within clock_tolerance_s', async () => {
    const v = await verifier();
    await expect(v.verify(await sign({ ...base(), exp: now() - 10 }, 'HS256', 'hs'), 'bot')).resolves.toBeDefined();
    await expect(v.verify(await sign({ ...base(), nbf: now() + 10 }, 'HS256', 'hs'), 'bot')).resolves.toBeDefined();
  });

  it('checks issuer and audience when configured', async () => {
    const v = await verifier({ ...hsConfig, issuer: 'https://idp.example', audience: 'ormai' });
    const ok = await sign({ ...base(), iss: 'https://idp.example', aud: ['other', 'ormai'] }, 'HS256', 'hs');
    await expect(v.verify(ok, 'bot')).resolves.toBeDefined();
  });
});

describe('refused tokens (same client error as a wrong password)', () => {
  it('expired', async () => {
    await refused(await verifier(), await sign({ ...base(), exp: now() - 120 }, 'HS256', 'hs'), /ERR_JWT_EXPIRED/);
  });

  it('not yet valid', async () => {
    await refused(await verifier(), await sign({ ...base(), nbf: now() + 120 }, 'HS256', 'hs'), /nbf/);
  });

  it('without exp', async () => {
    const { exp: _exp, ...noExp } = base();
    await refused(await verifier(), await sign(noExp, 'HS256', 'hs'), /exp/);
  });

  it('signed with another key', async () => {
    await refused(await verifier({ algorithms: ['RS256'], public_key_file: 'rsa.pem' }), await sign(base(), 'RS256', 'other-rsa'), /SIGNATURE_VERIFICATION_FAILED/);
    const otherSecret = await new SignJWT(base()).setProtectedHeader({ alg: 'HS256' }).sign(randomBytes(32));
    await refused(await verifier(), otherSecret, /SIGNATURE_VERIFICATION_FAILED/);
  });

  it('wrong issuer or audience, or none at all', async () => {
    const v = await verifier({ ...hsConfig, issuer: 'https://idp.example', audience: 'ormai' });
    await refused(v, await sign({ ...base(), iss: 'https://evil.example', aud: 'ormai' }, 'HS256', 'hs'), /iss/);
    await refused(v, await sign({ ...base(), iss: 'https://idp.example', aud: 'other' }, 'HS256', 'hs'), /aud/);
    await refused(v, await sign(base(), 'HS256', 'hs'), /iss|aud/);
  });

  it('alg none', async () => {
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unsigned = `${enc({ alg: 'none', typ: 'JWT' })}.${enc(base())}.`;
    await refused(await verifier(), unsigned, /ERR_JOSE_ALG_NOT_ALLOWED|ERR_JWS_INVALID/);
  });

  it('an algorithm that is not listed, including HS256 keyed with the RSA public key', async () => {
    const rsOnly = await verifier({ algorithms: ['RS256'], public_key_file: 'rsa.pem' });
    await refused(rsOnly, await sign(base(), 'HS256', 'hs'), /ERR_JOSE_ALG_NOT_ALLOWED/);
    const confused = await new SignJWT(base()).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(pem.public(rsa)));
    await refused(rsOnly, confused, /ERR_JOSE_ALG_NOT_ALLOWED/);
    await refused(await verifier(), await sign(base(), 'RS256', 'rsa'), /ERR_JOSE_ALG_NOT_ALLOWED/);
  });

  it('missing or malformed tenant claim', async () => {
    const v = await verifier();
    const { tenant_id: _t, ...noTenant } = base();
    await refused(v, await sign(noTenant, 'HS256', 'hs'), /missing tenant claim "tenant_id"/);
    await refused(v, await sign({ ...base(), tenant_id: '' }, 'HS256', 'hs'), /tenant claim/);
    await refused(v, await sign({ ...base(), tenant_id: true }, 'HS256', 'hs'), /tenant claim/);
    await refused(v, await sign({ ...base(), tenant_id: 1.5 }, 'HS256', 'hs'), /tenant claim/);
  });

  it('malformed roles or subject claims', async () => {
    const v = await verifier();
    await refused(v, await sign({ ...base(), roles: [1, 2] }, 'HS256', 'hs'), /roles claim/);
    await refused(v, await sign({ ...base(), roles: { admin: true } }, 'HS256', 'hs'), /roles claim/);
    await refused(v, await sign({ ...base(), sub: 7 } as unknown as JWTPayload, 'HS256', 'hs'), /claim "sub"/);
  });

  it('require_user_match: the startup user must be the subject', async () => {
    const v = await verifier({ ...hsConfig, require_user_match: true });
    await expect(v.verify(await sign(base(), 'HS256', 'hs'), 'agent-7')).resolves.toMatchObject({ user: 'agent-7', subject: 'agent-7' });
    await refused(v, await sign(base(), 'HS256', 'hs'), /does not match the startup user/, 'someone-else');
    const { sub: _sub, ...noSub } = base();
    await refused(v, await sign(noSub, 'HS256', 'hs'), /needs the subject claim "sub"/, 'agent-7');
  });

  it('garbage, empty and oversized tokens', async () => {
    const v = await verifier();
    await refused(v, 'not-a-jwt', /ERR_JWS_INVALID|ERR_JWT_INVALID/);
    await refused(v, '', /length/);
    await refused(v, 'a'.repeat(20000), /length/);
  });
});

describe('configuration', () => {
  it('fills defaults', () => {
    expect(jwtConfigSchema.parse(hsConfig)).toEqual({
      algorithms: ['HS256'],
      secret_file: 'hs.secret',
      clock_tolerance_s: 30,
      claims: { tenant: 'tenant_id', subject: 'sub', roles: 'roles' },
      require_user_match: false,
    });
  });

  it.each<[string, unknown, RegExp]>([
    ['HS256 without a secret', { algorithms: ['HS256'] }, /secret_file: required/],
    ['RS256 without a public key', { algorithms: ['RS256'] }, /public_key_file: required/],
    ['a secret no algorithm uses', { algorithms: ['RS256'], public_key_file: 'rsa.pem', secret_file: 'hs.secret' }, /secret_file: given but/],
    ['alg none', { algorithms: ['none'], secret_file: 'hs.secret' }, /algorithms\[0\]/],
    ['no algorithms', { algorithms: [], secret_file: 'hs.secret' }, /algorithms/],
    ['an unknown key', { ...hsConfig, leeway: 5 }, /leeway/],
    ['an unknown claims key', { ...hsConfig, claims: { tenant: 't', role: 'r' } }, /claims.*role/],
  ])('refuses %s', async (_name, config, message) => {
    await expect(createJwtVerifier(config as JwtConfigInput, dir)).rejects.toThrow(message);
  });

  it('refuses a short HMAC secret, a missing file, and a key unfit for the algorithm', async () => {
    await expect(verifier({ algorithms: ['HS256'], secret_file: 'short.secret' })).rejects.toThrow(/at least 32 bytes/);
    await expect(verifier({ algorithms: ['HS256'], secret_file: 'missing.secret' })).rejects.toThrow(/missing\.secret/);
    await expect(verifier({ algorithms: ['ES256'], public_key_file: 'rsa.pem' })).rejects.toThrow(/not a PEM public key usable with ES256/);
    await expect(verifier({ algorithms: ['RS256'], public_key_file: 'hs.secret' })).rejects.toThrow(/not a PEM public key/);
  });
});
