// The config's store section: defaults, the Redis URL from the file, a secret file or ORMAI_REDIS_URL, and clear errors.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig, resolveConfig } from '../../../src/config/load';
import { parseStructuredFile } from '../../../src/policy/load';

const QUICKSTART = path.resolve(__dirname, '../../../config/quickstart/ormai.yaml');
const upstream = { ORMAI_UPSTREAM_URL: 'postgres://proxy:pw@127.0.0.1:5432/app' };

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-store-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Resolves a config with the quickstart policy and the given store section (relative paths resolve beside the quickstart). */
function resolveStore(store: unknown, env: Record<string, string> = {}) {
  const doc = store === undefined ? { policies: ['policy.yaml'] } : { policies: ['policy.yaml'], store };
  return resolveConfig(doc, QUICKSTART, { ...upstream, ...env }).store;
}

test('without a store section, budgets stay in memory and reads fail closed', () => {
  const store = loadConfig(QUICKSTART, upstream).store;
  expect(store).toEqual({ keyPrefix: 'ormai:', commandTimeoutMs: 500, readsWhenUnavailable: 'refuse' });
  expect(store.redisUrl).toBeUndefined();
  expect(resolveStore({}).redisUrl).toBeUndefined();
});

test('every key of the section is read', () => {
  const store = resolveStore({
    redis_url: 'redis://redis.internal:6380/2',
    key_prefix: 'team-a:',
    command_timeout_ms: 250,
    reads_when_unavailable: 'allow',
  });
  expect(store).toEqual({ keyPrefix: 'team-a:', commandTimeoutMs: 250, readsWhenUnavailable: 'allow' });
  expect(store.redisUrl).toBe('redis://redis.internal:6380/2');
});

test('ORMAI_REDIS_URL overrides redis_url and redis_url_file', () => {
  const file = path.join(dir, 'redis-url');
  writeFileSync(file, 'redis://from-file:6379\n');
  const env = { ORMAI_REDIS_URL: 'rediss://from-env:6380' };
  expect(resolveStore({ redis_url: 'redis://from-config:6379' }, env).redisUrl).toBe('rediss://from-env:6380');
  expect(resolveStore({ redis_url_file: file }, env).redisUrl).toBe('rediss://from-env:6380');
  expect(resolveStore(undefined, env).redisUrl).toBe('rediss://from-env:6380');
  // An empty variable is no override, as for ORMAI_UPSTREAM_URL.
  expect(resolveStore({ redis_url: 'redis://from-config:6379' }, { ORMAI_REDIS_URL: '' }).redisUrl).toBe('redis://from-config:6379');
});

test('redis_url_file is read as a mounted secret (trailing newline dropped), relative to the config file', () => {
  writeFileSync(path.join(dir, 'redis-url'), 'redis://:s3cret@redis:6379\n');
  writeFileSync(path.join(dir, 'ormai.yaml'), 'policies: [policy.yaml]\nstore:\n  redis_url_file: redis-url\n');
  writeFileSync(path.join(dir, 'policy.yaml'), readFileSync(path.resolve(QUICKSTART, '../policy.yaml')));
  expect(loadConfig(path.join(dir, 'ormai.yaml'), upstream).store.redisUrl).toBe('redis://:s3cret@redis:6379');
  // redis_url wins over the file when both are given, as upstream.url does.
  expect(resolveStore({ redis_url: 'redis://inline:6379', redis_url_file: path.join(dir, 'redis-url') }).redisUrl).toBe('redis://inline:6379');
});

test('a missing URL file is a config error that names it', () => {
  expect(() => resolveStore({ redis_url_file: path.join(dir, 'absent') })).toThrow(ConfigError);
  expect(() => resolveStore({ redis_url_file: path.join(dir, 'absent') })).toThrow(/Redis URL file .*absent: ENOENT/);
});

test('the URL is never enumerable nor serialised: it may carry a password', () => {
  const store = resolveStore({ redis_url: 'redis://:hunter2@redis:6379' });
  expect(Object.keys(store)).not.toContain('redisUrl');
  expect(JSON.stringify(store)).not.toContain('hunter2');
});

test('a URL that is not redis:// or rediss:// is refused without echoing it', () => {
  for (const url of ['http://:hunter2@redis:6379', 'redis.internal:6379', 'redis://', '']) {
    let err: Error | undefined;
    try {
      resolveStore({ redis_url: url });
    } catch (e) {
      err = e as Error;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.message).toMatch(/redis:\/\/ or rediss:\/\//);
    expect(err!.message).not.toContain('hunter2');
  }
  expect(() => resolveStore(undefined, { ORMAI_REDIS_URL: 'postgres://x' })).toThrow(ConfigError);
});

test('unknown keys and bad values in the section are explained', () => {
  expect(() => resolveStore({ redis_host: 'x' })).toThrow(/redis_host/);
  expect(() => resolveStore({ reads_when_unavailable: 'maybe' })).toThrow(/reads_when_unavailable/);
  expect(() => resolveStore({ command_timeout_ms: 0 })).toThrow(/command_timeout_ms/);
  expect(() => resolveStore({ command_timeout_ms: 2.5 })).toThrow(/command_timeout_ms/);
  expect(() => resolveStore({ key_prefix: 7 })).toThrow(/key_prefix/);
  expect(() => resolveStore('redis://x')).toThrow(/store/);
});

test("the quickstart's commented store example is valid once uncommented", () => {
  const text = readFileSync(QUICKSTART, 'utf8');
  const lines = text.split('\n');
  const start = lines.indexOf('# store:');
  expect(start).toBeGreaterThan(0);
  const block = [lines[start]];
  for (let i = start + 1; i < lines.length && lines[i].startsWith('#   '); i++) block.push(lines[i]);
  const uncommented = block.map((l) => l.slice(2)).join('\n');
  const doc = { ...(parseStructuredFile(text, QUICKSTART) as object), ...(parseStructuredFile(uncommented, 'example.yaml') as object) };
  // The example names a secret file that exists only in a pod; the env override keeps it unread.
  const config = resolveConfig(doc, QUICKSTART, { ...upstream, ORMAI_REDIS_URL: 'redis://127.0.0.1:6379' });
  expect(config.raw.store).toEqual({
    redis_url_file: '/run/secrets/redis-url',
    key_prefix: 'ormai:',
    command_timeout_ms: 500,
    reads_when_unavailable: 'refuse',
  });
  expect(config.store.redisUrl).toBe('redis://127.0.0.1:6379');
});
