// Agent authentication end to end: SCRAM and cleartext against the users file, JWTs, identical failures.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SignJWT, importPKCS8 } from 'jose';
import { Client } from 'pg';
import { serialize } from 'pg-protocol';
import postgres from 'postgres';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { loginError } from '../support/clients';

let db: TestDatabase;
let scramProxy: TestProxy;
let jwtProxy: TestProxy;
let keyDir: string;
const hsSecret = randomBytes(32).toString('hex');
const es = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const esPrivatePem = es.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

beforeAll(async () => {
  db = await createTestDatabase();
  keyDir = mkdtempSync(path.join(os.tmpdir(), 'ormai-keys-'));
  writeFileSync(path.join(keyDir, 'hs.secret'), hsSecret);
  writeFileSync(path.join(keyDir, 'es.pub.pem'), es.publicKey.export({ type: 'spki', format: 'pem' }));
  scramProxy = await startTestProxy(db.url);
  jwtProxy = await startTestProxy(db.url, {
    auth: {
      method: 'scram-sha-256',
      users_file: 'users.yaml',
      jwt: {
        algorithms: ['HS256'],
        secret_file: path.join(keyDir, 'hs.secret'),
        issuer: 'https://issuer.test',
        audience: 'ormai',
      },
    },
  });
});
afterAll(async () => {
  await scramProxy?.close();
  await jwtProxy?.close();
  await db?.drop();
  rmSync(keyDir, { recursive: true, force: true });
});

async function whoami(url: string): Promise<number[]> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    // Tenant scoping is issue #3; here we only prove the session works end to end.
    return (await c.query('SELECT 1 AS one')).rows.map((r: { one: number }) => r.one);
  } finally {
    await c.end();
  }
}

test('SCRAM-SHA-256 login with pg and postgres.js', async () => {
  expect(await whoami(scramProxy.url())).toEqual([1]);
  const sql = postgres(scramProxy.url('tenant2-agent', 'tenant2-password'), { max: 1, onnotice: () => undefined });
  try {
    expect(await sql`SELECT 2 AS two`).toEqual([{ two: 2 }]);
  } finally {
    await sql.end();
  }
});

test('wrong password and unknown user fail identically with 28P01', async () => {
  const wrong = await loginError(scramProxy.url('tenant1-agent', 'nope'));
  const unknown = await loginError(scramProxy.url('nobody', 'nope'));
  expect(wrong.code).toBe('28P01');
  expect(unknown.code).toBe('28P01');
  expect(unknown.message).toBe(wrong.message);
  expect(wrong.message).not.toMatch(/tenant1-agent|nobody/);
});

test('the agent cannot pick another database', async () => {
  const err = await loginError(scramProxy.url('tenant1-agent', 'tenant1-password', 'postgres'));
  expect(err.code).toBe('3D000');
});

test('startup parameters that would change the session are refused', async () => {
  for (const options of ['-c search_path=evil', '-c role=postgres', '-c default_transaction_read_only=off', '--statement_timeout=0']) {
    expect(await loginError(scramProxy.url(), { options })).toMatchObject({ code: '42501' });
  }
  // Harmless settings pass.
  const ok = new Client({ connectionString: scramProxy.url(), options: '-c DateStyle=ISO,DMY', application_name: 'my-agent' } as never);
  await ok.connect();
  try {
    expect((await ok.query('SHOW DateStyle')).rows[0].DateStyle).toBe('ISO, DMY');
    expect((await ok.query('SHOW application_name')).rows[0].application_name).toBe('my-agent');
  } finally {
    await ok.end();
  }
});

async function hsToken(claims: Record<string, unknown>, opts: { exp?: string | number; secret?: string; iss?: string } = {}) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer(opts.iss ?? 'https://issuer.test')
    .setAudience('ormai')
    .setSubject('agent-7')
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '5m')
    .sign(new TextEncoder().encode(opts.secret ?? hsSecret));
}

describe('JWT as the password', () => {
  test('a valid token logs in', async () => {
    const token = await hsToken({ tenant_id: 2, roles: ['agent'] });
    expect(await whoami(jwtProxy.url('agent', token))).toEqual([1]);
  });

  test('every name is first asked for the same thing: a users-file user, an unknown one', async () => {
    const firstRequest = (user: string) =>
      new Promise<number>((resolve, reject) => {
        const socket = net.connect(jwtProxy.port, '127.0.0.1', () => socket.write(serialize.startup({ user, database: 'app' })));
        socket.once('data', (d: Buffer) => {
          socket.destroy();
          // 'R' · int32 length · int32 request code (3 cleartext, 10 SASL)
          resolve(d[0] === 0x52 ? d.readInt32BE(5) : -1);
        });
        socket.once('error', reject);
      });
    expect([await firstRequest('tenant1-agent'), await firstRequest('no-such-user')]).toEqual([3, 3]);
    // The users-file password still logs in, checked against the verifier.
    expect(await whoami(jwtProxy.url('tenant1-agent', 'tenant1-password'))).toEqual([1]);
  });

  test("the token's subject is the user, whatever name the connection sends; a token without one is refused", async () => {
    for (const name of ['alice-bot', 'someone-else']) {
      const c = new Client({ connectionString: jwtProxy.url(name, await hsToken({ tenant_id: 2 })) });
      await c.connect();
      try {
        expect((await c.query('SELECT current_user AS u, session_user AS s')).rows).toEqual([{ u: 'agent-7', s: 'agent-7' }]);
      } finally {
        await c.end();
      }
    }
    // Login events arrive asynchronously, other tests' among them: by user, not by position.
    const users = () => jwtProxy.auditEvents().filter((e) => e.kind === 'connection' && e.decision === 'login').map((e) => e.principal?.user);
    for (let i = 0; i < 50 && users().filter((u) => u === 'agent-7').length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(users().filter((u) => u === 'agent-7').length).toBeGreaterThanOrEqual(2);
    expect(users().filter((u) => u === 'alice-bot' || u === 'someone-else')).toEqual([]);
    const noSubject = await new SignJWT({ tenant_id: 2 }).setProtectedHeader({ alg: 'HS256' }).setIssuer('https://issuer.test').setAudience('ormai').setExpirationTime('5m').sign(new TextEncoder().encode(hsSecret));
    expect((await loginError(jwtProxy.url('agent', noSubject))).code).toBe('28P01');
  });

  test("a token whose subject is a users-file user's name is refused like a wrong password: it never acts as that user", async () => {
    const wrongPassword = await loginError(jwtProxy.url('tenant1-agent', 'nope'));
    const token = await new SignJWT({ tenant_id: 2 }).setProtectedHeader({ alg: 'HS256' }).setIssuer('https://issuer.test').setAudience('ormai').setSubject('tenant1-agent').setExpirationTime('5m').sign(new TextEncoder().encode(hsSecret));
    for (const name of ['tenant1-agent', 'agent']) {
      const err = await loginError(jwtProxy.url(name, token));
      expect(err.code).toBe('28P01');
      expect(err.message).toBe(wrongPassword.message);
    }
    // The same token with another subject logs in (the refusal is the subject's, not the token's).
    expect(await whoami(jwtProxy.url('agent', await hsToken({ tenant_id: 2 })))).toEqual([1]);
  });

  test('expired, wrongly signed, wrong issuer and tenant-less tokens are refused like a wrong password', async () => {
    const wrongPassword = await loginError(jwtProxy.url('tenant1-agent', 'nope'));
    const bad = [
      await hsToken({ tenant_id: 2 }, { exp: Math.floor(Date.now() / 1000) - 600 }),
      await hsToken({ tenant_id: 2 }, { secret: randomBytes(32).toString('hex') }),
      await hsToken({ tenant_id: 2 }, { iss: 'https://evil.test' }),
      await hsToken({ roles: ['agent'] }),
      await new SignJWT({ tenant_id: 2 })
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuer('https://issuer.test')
        .setAudience('ormai')
        .setExpirationTime('5m')
        .sign(await importPKCS8(esPrivatePem, 'ES256')),
      'not-a-jwt',
    ];
    for (const token of bad) {
      const err = await loginError(jwtProxy.url('agent', token));
      expect(err.code).toBe('28P01');
      expect(err.message).toBe(wrongPassword.message);
    }
  });
});
