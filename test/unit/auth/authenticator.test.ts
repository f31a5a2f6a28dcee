// The per-connection conversation: SCRAM and cleartext for file users, JWT and mock exchanges for others.
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { beginAuth, type AuthConversation, type AuthSettings, type AuthStep } from '../../../src/auth/authenticator';
import { createJwtVerifier, type JwtVerifier } from '../../../src/auth/jwt';
import { createScramClient } from '../../../src/auth/scram';
import { buildUsersSnapshot, type UsersSnapshot } from '../../../src/auth/users';
import { ProxyError } from '../../../src/errors/catalogue';

// 'p' message bodies, built independently of the parsers under test.
const passwordMessage = (pw: string | Buffer): Buffer => Buffer.concat([Buffer.from(pw), Buffer.from([0])]);
function saslInitialResponse(mechanism: string, data: Buffer | null): Buffer {
  const len = Buffer.alloc(4);
  len.writeInt32BE(data === null ? -1 : data.length);
  return Buffer.concat([Buffer.from(`${mechanism}\0`), len, data ?? Buffer.alloc(0)]);
}

const PASSWORD = 'tr0ub4dor&3';
const users: UsersSnapshot = buildUsersSnapshot({
  users: [{ name: 'support-bot', password: PASSWORD, tenant_id: 42, roles: ['agent'] }],
});
const mockSecret = randomBytes(32);
const scramSettings: AuthSettings = { method: 'scram-sha-256', users, mockSecret };
const passwordSettings: AuthSettings = { method: 'password', users, mockSecret };

let dir: string;
let jwt: JwtVerifier;
const jwtSecret = randomBytes(32);
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ormai-auth-'));
  writeFileSync(join(dir, 'hs.secret'), jwtSecret);
  jwt = await createJwtVerifier({ algorithms: ['HS256'], secret_file: 'hs.secret' }, dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function failure(promise: Promise<unknown>): Promise<ProxyError> {
  const err = await promise.then(
    () => {
      throw new Error('expected the step to fail');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ProxyError);
  return err as ProxyError;
}

/** Runs a SCRAM exchange as libpq would; returns every step and the client. */
async function scram(conversation: AuthConversation, password: string) {
  expect(conversation.first).toEqual({ kind: 'sasl', mechanisms: ['SCRAM-SHA-256'] });
  const client = createScramClient(password);
  const first = await conversation.step(saslInitialResponse('SCRAM-SHA-256', client.clientFirst()));
  expect(first.next?.kind).toBe('sasl-continue');
  expect(first.principal).toBeUndefined();
  const serverFirst = (first.next as { data: Buffer }).data;
  const final = conversation.step(client.clientFinal(serverFirst));
  return { client, serverFirst: serverFirst.toString('latin1'), final };
}

describe('users-file user, SCRAM-SHA-256', () => {
  it('authenticates, and the server proves itself to the client', async () => {
    const { client, final } = await scram(beginAuth(scramSettings, 'support-bot'), PASSWORD);
    const step: AuthStep = await final;
    expect(step.next?.kind).toBe('sasl-final');
    expect(() => client.verifyServerFinal((step.next as { data: Buffer }).data)).not.toThrow();
    expect(step.principal).toEqual({ user: 'support-bot', subject: 'support-bot', tenantId: '42', roles: ['agent'], authMethod: 'scram-sha-256' });
  });

  it('refuses a wrong password with 28P01', async () => {
    const err = await failure((await scram(beginAuth(scramSettings, 'support-bot'), 'wrong')).final);
    expect(err.code).toBe('authentication_failed');
    expect(err.sqlstate).toBe('28P01');
    expect(err.logMessage).toMatch(/SCRAM proof does not match/);
  });

  it('accepts a SASLInitialResponse without initial response (length -1), then client-first', async () => {
    const conversation = beginAuth(scramSettings, 'support-bot');
    const client = createScramClient(PASSWORD);
    const empty = await conversation.step(saslInitialResponse('SCRAM-SHA-256', null));
    expect(empty).toEqual({ next: { kind: 'sasl-continue', data: Buffer.alloc(0) } });
    const serverFirst = await conversation.step(client.clientFirst());
    const done = await conversation.step(client.clientFinal((serverFirst.next as { data: Buffer }).data));
    expect(done.principal?.tenantId).toBe('42');
  });

  it('refuses a tampered proof and a wrong nonce', async () => {
    const c = beginAuth(scramSettings, 'support-bot');
    const client = createScramClient(PASSWORD);
    const sf = await c.step(saslInitialResponse('SCRAM-SHA-256', client.clientFirst()));
    const final = client.clientFinal((sf.next as { data: Buffer }).data).toString('latin1');
    const tampered = final.replace(/p=(.)/, (_m, ch: string) => `p=${ch === 'A' ? 'B' : 'A'}`);
    expect((await failure(c.step(Buffer.from(tampered)))).code).toBe('authentication_failed');

    const c2 = beginAuth(scramSettings, 'support-bot');
    const client2 = createScramClient(PASSWORD);
    const sf2 = await c2.step(saslInitialResponse('SCRAM-SHA-256', client2.clientFirst()));
    const final2 = client2.clientFinal((sf2.next as { data: Buffer }).data).toString('latin1');
    const wrongNonce = final2.replace(/,r=([^,]+)/, ',r=$1x');
    expect((await failure(c2.step(Buffer.from(wrongNonce)))).code).toBe('protocol_violation');
  });

  it('refuses channel binding, other mechanisms and malformed SASLInitialResponse', async () => {
    const cases: Buffer[] = [
      saslInitialResponse('SCRAM-SHA-256', Buffer.from('p=tls-server-end-point,,n=,r=abc')),
      saslInitialResponse('SCRAM-SHA-256-PLUS', Buffer.from('p=tls-server-end-point,,n=,r=abc')),
      saslInitialResponse('SCRAM-SHA-1', Buffer.from('n,,n=,r=abc')),
      Buffer.from('SCRAM-SHA-256'), // no NUL, no length
      Buffer.concat([saslInitialResponse('SCRAM-SHA-256', Buffer.from('n,,n=,r=abc')), Buffer.from('x')]), // length mismatch
      passwordMessage(PASSWORD), // a PasswordMessage where a SASLInitialResponse belongs
    ];
    for (const body of cases) {
      const err = await failure(beginAuth(scramSettings, 'support-bot').step(body));
      expect(err.code).toBe('protocol_violation');
      expect(err.sqlstate).toBe('08P01');
    }
  });

  it('refuses any message after the exchange ended', async () => {
    const c = beginAuth(scramSettings, 'support-bot');
    const { final } = await scram(c, PASSWORD);
    await final;
    expect((await failure(c.step(Buffer.from('x')))).code).toBe('protocol_violation');
  });
});

describe('unknown user without JWT: mock SCRAM exchange', () => {
  it('runs a full exchange with a stable fake salt and 4096 iterations, then fails like a wrong password', async () => {
    const wrongPassword = await failure((await scram(beginAuth(scramSettings, 'support-bot'), 'wrong')).final);
    const { serverFirst, final } = await scram(beginAuth(scramSettings, 'ghost'), 'anything');
    const fakeSalt = createHmac('sha256', mockSecret).update('ghost').digest().subarray(0, 16).toString('base64');
    expect(serverFirst).toMatch(new RegExp(`,s=${fakeSalt.replace(/[+/]/g, '\\$&')},i=4096$`));
    const unknown = await failure(final);
    // Byte-identical for the client: same fields, same message, same hint.
    expect(unknown.toFields()).toEqual(wrongPassword.toFields());
    expect(unknown.code).toBe('authentication_failed');
    expect(unknown.logMessage).toMatch(/no such user/);

    const again = await scram(beginAuth(scramSettings, 'ghost'), 'other');
    expect(again.serverFirst.split(',s=')[1]).toBe(serverFirst.split(',s=')[1]);
    await failure(again.final);
    const other = await scram(beginAuth(scramSettings, 'ghost2'), 'x');
    expect(other.serverFirst.split(',s=')[1]).not.toBe(serverFirst.split(',s=')[1]);
    await failure(other.final);
  });

  it('works the same when no users file is configured at all', async () => {
    const { final } = await scram(beginAuth({ method: 'scram-sha-256', mockSecret }, 'anyone'), 'x');
    expect((await failure(final)).code).toBe('authentication_failed');
  });
});

describe("method 'password' (cleartext checked against the verifier)", () => {
  it('authenticates a users-file user', async () => {
    const c = beginAuth(passwordSettings, 'support-bot');
    expect(c.first).toEqual({ kind: 'cleartext' });
    const step = await c.step(passwordMessage(PASSWORD));
    expect(step).toEqual({ principal: { user: 'support-bot', subject: 'support-bot', tenantId: '42', roles: ['agent'], authMethod: 'password' } });
  });

  it('gives a wrong password and an unknown user the same error', async () => {
    const wrong = await failure(beginAuth(passwordSettings, 'support-bot').step(passwordMessage('nope')));
    const ghost = beginAuth(passwordSettings, 'ghost');
    expect(ghost.first).toEqual({ kind: 'cleartext' });
    const unknown = await failure(ghost.step(passwordMessage('nope')));
    expect(unknown.toFields()).toEqual(wrong.toFields());
    expect(wrong.sqlstate).toBe('28P01');
  });

  it('refuses malformed PasswordMessages and a second password', async () => {
    for (const body of [Buffer.from(PASSWORD), Buffer.concat([passwordMessage(PASSWORD), Buffer.from('x')]), Buffer.alloc(0)]) {
      expect((await failure(beginAuth(passwordSettings, 'support-bot').step(body))).code).toBe('protocol_violation');
    }
    const c = beginAuth(passwordSettings, 'support-bot');
    await c.step(passwordMessage(PASSWORD));
    expect((await failure(c.step(passwordMessage(PASSWORD)))).code).toBe('protocol_violation');
  });

  it('never puts the password in an error', async () => {
    const err = await failure(beginAuth(passwordSettings, 'support-bot').step(passwordMessage('my-Secret-123')));
    expect(JSON.stringify([err.message, err.logMessage, err.detail, err.hint, err.stack])).not.toContain('my-Secret-123');
  });
});

describe('unknown user with a JWT verifier configured', () => {
  const token = (payload: Record<string, unknown>) => new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).sign(jwtSecret);
  const exp = () => Math.floor(Date.now() / 1000) + 60;

  it('asks for a cleartext password and verifies it as a JWT', async () => {
    const c = beginAuth({ ...scramSettings, jwt }, 'agent');
    expect(c.first).toEqual({ kind: 'cleartext' });
    const step = await c.step(passwordMessage(await token({ sub: 'run-9', tenant_id: 7, roles: 'agent', exp: exp() })));
    // The token's subject is the user, not the name the connection sent.
    expect(step).toEqual({ principal: { user: 'run-9', subject: 'run-9', tenantId: '7', roles: ['agent'], authMethod: 'jwt' } });
  });

  it('refuses a bad token with the same error as a wrong password, without the token', async () => {
    const wrong = await failure(beginAuth(passwordSettings, 'support-bot').step(passwordMessage('nope')));
    const bad = await token({ sub: 'run-9', exp: exp() }); // no tenant claim
    const err = await failure(beginAuth({ ...scramSettings, jwt }, 'agent').step(passwordMessage(bad)));
    expect(err.toFields()).toEqual(wrong.toFields());
    expect(err.logMessage).toMatch(/tenant/);
    expect(JSON.stringify([err.message, err.logMessage])).not.toContain(bad);
  });

  it('asks users-file users for a cleartext password too, checked against their verifier: the first message tells no names apart', async () => {
    const known = beginAuth({ ...scramSettings, jwt }, 'support-bot');
    const unknown = beginAuth({ ...scramSettings, jwt }, 'nobody-here');
    expect([known.first, unknown.first]).toEqual([{ kind: 'cleartext' }, { kind: 'cleartext' }]);
    expect(await known.step(passwordMessage(PASSWORD))).toMatchObject({ principal: { user: 'support-bot', authMethod: 'password' } });
    await expect(beginAuth({ ...scramSettings, jwt }, 'support-bot').step(passwordMessage('wrong'))).rejects.toMatchObject({ code: 'authentication_failed' });
  });
});
