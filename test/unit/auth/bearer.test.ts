// Bearer tokens of the tool doors: a users-file token by its digest, a verified JWT (subject = user), and nothing else.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import type { AuthSettings } from '../../../src/auth/authenticator';
import { authenticateBearer, localPrincipal } from '../../../src/auth/bearer';
import { createJwtVerifier } from '../../../src/auth/jwt';
import { buildUsersSnapshot } from '../../../src/auth/users';
import { TicketBook } from '../../../src/tools/engine';

const sha = (t: string) => createHash('sha256').update(t).digest('hex');
const TOKEN = 'tool-token-of-agent-one-0123456789';
const secret = 'a-jwt-secret-of-at-least-32-bytes-long!!';
let dir: string;
let settings: AuthSettings;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ormai-bearer-'));
  writeFileSync(join(dir, 'hs.secret'), secret);
  settings = {
    method: 'scram-sha-256',
    mockSecret: Buffer.alloc(32),
    users: buildUsersSnapshot({
      users: [
        { name: 'agent-one', password: 'pw-one', tenant_id: 1, roles: ['agent'], token_sha256: sha(TOKEN) },
        { name: 'tools-only', tenant_id: 2, token_sha256: sha('tools-only-token-0123456789') },
      ],
    }),
    jwt: await createJwtVerifier({ algorithms: ['HS256'], secret_file: 'hs.secret' }, dir),
  };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const jwt = (payload: Record<string, unknown>) =>
  new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(secret));

test('a users-file token names its user, tenant and roles; a tools-only user has no password', async () => {
  expect(await authenticateBearer(settings, `Bearer ${TOKEN}`)).toEqual({ user: 'agent-one', subject: 'agent-one', tenantId: '1', roles: ['agent'], authMethod: 'token' });
  expect(await authenticateBearer(settings, 'bearer tools-only-token-0123456789')).toMatchObject({ user: 'tools-only', tenantId: '2' });
  expect(settings.users!.verifierFor('tools-only')).toBeUndefined();
});

test('anything else is nobody: no header, another scheme, a wrong or truncated token, the digest itself', async () => {
  for (const h of [undefined, '', TOKEN, `Basic ${TOKEN}`, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(1)}`, `Bearer ${sha(TOKEN)}`, 'Bearer ', `Bearer ${'x'.repeat(20_000)}`]) {
    expect(await authenticateBearer(settings, h)).toBeUndefined();
  }
});

test('a verified JWT is its subject; a bad signature, an expired one or one without a subject is nobody', async () => {
  const exp = Math.floor(Date.now() / 1000) + 60;
  expect(await authenticateBearer(settings, `Bearer ${await jwt({ sub: 'agent-j', tenant_id: '7', exp })}`)).toEqual({ user: 'agent-j', subject: 'agent-j', tenantId: '7', roles: [], authMethod: 'jwt' });
  expect(await authenticateBearer(settings, `Bearer ${await jwt({ tenant_id: '7', exp })}`)).toBeUndefined();
  expect(await authenticateBearer(settings, `Bearer ${await jwt({ sub: 'a', tenant_id: '7', exp: exp - 3600 })}`)).toBeUndefined();
  const forged = await new SignJWT({ sub: 'a', tenant_id: '7', exp }).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from('another-secret-of-at-least-32-bytes!!'));
  expect(await authenticateBearer(settings, `Bearer ${forged}`)).toBeUndefined();
  // A subject that names a users-file user is nobody: a token never acts as that user.
  expect(await authenticateBearer(settings, `Bearer ${await jwt({ sub: 'agent-one', tenant_id: '7', exp })}`)).toBeUndefined();
});

test('two users with one token are refused at load', () => {
  expect(() => buildUsersSnapshot({ users: [{ name: 'a', password: 'x', tenant_id: 1, token_sha256: sha('t') }, { name: 'b', password: 'y', tenant_id: 2, token_sha256: sha('t') }] })).toThrow(/same token/);
  expect(() => buildUsersSnapshot({ users: [{ name: 'a', tenant_id: 1 }] })).toThrow(/exactly one of password or scram_verifier/);
  expect(() => buildUsersSnapshot({ users: [{ name: 'a', tenant_id: 1, token_sha256: 'nothex' }] })).toThrow(/64 lowercase hex/);
});

test('localPrincipal: a users-file user by name, else nobody', () => {
  expect(localPrincipal(settings, 'agent-one')).toMatchObject({ user: 'agent-one', tenantId: '1', authMethod: 'local' });
  expect(localPrincipal(settings, 'nobody')).toBeUndefined();
});

test('tool-door tickets: good once, for their user only, and they carry the connection id', () => {
  const book = new TicketBook();
  const principal = localPrincipal(settings, 'agent-one')!;
  const { ticket, connection } = book.issue(principal);
  expect(book.redeem('agent-two', ticket)).toBeUndefined();
  // A failed redemption burns the ticket too: no second guess with the right user.
  expect(book.redeem('agent-one', ticket)).toBeUndefined();
  const second = book.issue(principal);
  expect(book.redeem('agent-one', second.ticket)).toEqual({ ...principal, connection: second.connection });
  expect(book.redeem('agent-one', second.ticket)).toBeUndefined();
  expect(connection).not.toBe(second.connection);
  expect(JSON.stringify({ book })).toBe('{"book":"[tickets]"}');
});
