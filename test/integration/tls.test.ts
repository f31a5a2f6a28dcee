// TLS on both sides: agents to the proxy (optional or required), and the proxy to an upstream with TLS (require, verify-full).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { generate } from 'selfsigned';
import { seedDatabase } from '../../src/demo/demo';
import { startEmbeddedChild, type ChildPostgres } from '../support/embedded';
import { loginError } from '../support/clients';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';

let dir: string;
let cert: string;
let key: string;
let otherCa: string;

async function selfSigned() {
  return generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
    ],
  } as never);
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-tls-'));
  const pems = await selfSigned();
  cert = pems.cert;
  key = pems.private;
  otherCa = (await selfSigned()).cert;
  writeFileSync(path.join(dir, 'server.crt'), cert);
  writeFileSync(path.join(dir, 'server.key'), key);
  writeFileSync(path.join(dir, 'other-ca.crt'), otherCa);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('agents to the proxy', () => {
  let db: TestDatabase;
  let optional: TestProxy;
  let required: TestProxy;
  const tls = (req: boolean) => ({ cert_file: path.join(dir, 'server.crt'), key_file: path.join(dir, 'server.key'), required: req });

  beforeAll(async () => {
    db = await createTestDatabase();
    optional = await startTestProxy(db.url, { tls: tls(false) });
    required = await startTestProxy(db.url, { tls: tls(true) });
  });
  afterAll(async () => {
    await optional?.close();
    await required?.close();
    await db?.drop();
  });

  test('a client verifying the certificate connects over TLS', async () => {
    const c = new Client({ connectionString: optional.url(), ssl: { ca: cert, servername: 'localhost' } });
    await c.connect();
    try {
      expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
      const socket = (c as unknown as { connection: { stream: { encrypted?: boolean } } }).connection.stream;
      expect(socket.encrypted).toBe(true);
    } finally {
      await c.end();
    }
  });

  test('a plain client is refused when TLS is required, accepted when optional', async () => {
    expect(await loginError(required.url())).toMatchObject({ code: '28000', routine: 'ormai.ssl_required' });
    const c = new Client({ connectionString: optional.url() });
    await c.connect();
    await c.end();
  });
});

describe('the proxy to an upstream with TLS', () => {
  let pg: ChildPostgres;
  let upstreamUrl: string;

  beforeAll(async () => {
    pg = await startEmbeddedChild({ tls: { cert, key } });
    upstreamUrl = await seedDatabase(pg.url, 'tlsdb');
  });
  afterAll(async () => {
    await pg?.stop();
  });

  /** Opens a session through the proxy and asks the server, directly, whether the proxy's connection uses TLS. */
  async function sslUsed(proxy: TestProxy): Promise<boolean> {
    const c = new Client({ connectionString: proxy.url() });
    await c.connect();
    const direct = new Client({ connectionString: upstreamUrl });
    await direct.connect();
    try {
      const r = await direct.query(
        "SELECT bool_and(s.ssl) AS ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'ormai-proxy'",
      );
      return r.rows[0].ssl;
    } finally {
      await direct.end();
      await c.end();
    }
  }

  test('verify-full with the right CA encrypts the upstream session', async () => {
    const proxy = await startTestProxy(upstreamUrl, { upstream: { tls: { mode: 'verify-full', ca_file: path.join(dir, 'server.crt') } } });
    try {
      expect(await sslUsed(proxy)).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  test('sslmode=require in the URL encrypts without verification', async () => {
    const proxy = await startTestProxy(`${upstreamUrl}?sslmode=require`);
    try {
      expect(await sslUsed(proxy)).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  test('verify-full with a different CA refuses to connect', async () => {
    const proxy = await startTestProxy(upstreamUrl, { upstream: { tls: { mode: 'verify-full', ca_file: path.join(dir, 'other-ca.crt') } } });
    try {
      expect(await loginError(proxy.url())).toMatchObject({ code: '08006', routine: 'ormai.upstream_unavailable' });
    } finally {
      await proxy.close();
    }
  });
});

describe('upstream password methods', () => {
  test.each(['md5', 'password'] as const)('%s authentication to the upstream', async (authMethod) => {
    const pg = await startEmbeddedChild({ authMethod });
    try {
      const url = await seedDatabase(pg.url, 'authdb');
      const proxy = await startTestProxy(url);
      try {
        const c = new Client({ connectionString: proxy.url() });
        await c.connect();
        expect((await c.query('SELECT count(*)::int AS n FROM customers')).rows[0].n).toBe(3); // tenant 1's customers
        await c.end();
      } finally {
        await proxy.close();
      }
    } finally {
      await pg.stop();
    }
  });
});
