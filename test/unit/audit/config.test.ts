// The config's audit section: defaults, each sink type, paths beside the config file, the key file, and clear errors.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createAuditLog, createSinks } from '../../../src/audit/factory';
import { chainKeyOf } from '../../../src/audit/hmac';
import { FileSink } from '../../../src/audit/sinks/file';
import { PostgresSink } from '../../../src/audit/sinks/postgres';
import { StdoutSink } from '../../../src/audit/sinks/stdout';
import { ConfigError, resolveConfig } from '../../../src/config/load';
import { silentLogger } from '../../../src/log';
import { verifyFile } from '../../../src/audit/verify';

const env = { ORMAI_UPSTREAM_URL: 'postgres://proxy:pw@db.internal:5433/app' };

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-audit-config-'));
  writeFileSync(path.join(dir, 'policy.yaml'), readFileSync(path.resolve(__dirname, '../../../config/quickstart/policy.yaml')));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A config file in the temporary directory, so relative paths resolve there. */
function config(audit?: unknown) {
  const doc = audit === undefined ? { policies: ['policy.yaml'] } : { policies: ['policy.yaml'], audit };
  return resolveConfig(doc, path.join(dir, 'ormai.yaml'), env);
}

/** The pg settings a postgres sink would connect with (private: they may hold a password). */
const clientOf = (sink: unknown) => (sink as { config: Record<string, unknown> }).config;

test('defaults: stdout, literals redacted, 10000 events, reads allowed, durable writes', () => {
  expect(config().raw.audit).toEqual({ sinks: [{ type: 'stdout' }], redact_literals: true, queue_size: 10000, reads_when_unavailable: 'allow', write_guarantee: 'durable', durable_timeout_ms: 5000, batch_window_ms: 2, sync_interval_ms: 200, head_interval_ms: 60000 });
  expect(config({}).raw.audit).toEqual(config().raw.audit);
  const [sink] = createSinks(config(), silentLogger);
  expect(sink).toBeInstanceOf(StdoutSink);
});

test('several sinks at once; a file path resolves beside the config file', () => {
  const sinks = createSinks(config({ sinks: [{ type: 'stdout' }, { type: 'file', path: 'logs/audit.jsonl' }, { type: 'postgres' }] }), silentLogger);
  expect(sinks.map((s) => s.constructor)).toEqual([StdoutSink, FileSink, PostgresSink]);
  expect((sinks[1] as FileSink).file).toBe(path.join(dir, 'logs', 'audit.jsonl'));
  expect(sinks.map((s) => s.name)).toEqual(['stdout', `file:${path.join(dir, 'logs', 'audit.jsonl')}`, 'postgres:public.ormai_audit']);
});

test('the postgres sink uses the upstream credentials by default, else its url or url_file', () => {
  const [upstream] = createSinks(config({ sinks: [{ type: 'postgres', table: 'audit.events' }] }), silentLogger);
  expect(upstream.name).toBe('postgres:audit.events');
  expect(clientOf(upstream)).toMatchObject({ host: 'db.internal', port: 5433, user: 'proxy', password: 'pw', database: 'app', application_name: 'ormai-proxy audit' });
  const [own] = createSinks(config({ sinks: [{ type: 'postgres', url: 'postgres://auditor:s3cret@audit.internal:6543/trail' }] }), silentLogger);
  expect(clientOf(own)).toMatchObject({ host: 'audit.internal', port: 6543, user: 'auditor', password: 's3cret', database: 'trail' });
  writeFileSync(path.join(dir, 'audit-url'), 'postgres://filed:pw2@filed.internal/trail2\n');
  const [filed] = createSinks(config({ sinks: [{ type: 'postgres', url_file: 'audit-url' }] }), silentLogger);
  expect(clientOf(filed)).toMatchObject({ host: 'filed.internal', user: 'filed', database: 'trail2' });
  expect(() => createSinks(config({ sinks: [{ type: 'postgres', url_file: 'missing' }] }), silentLogger)).toThrow(ConfigError);
  expect(() => createSinks(config({ sinks: [{ type: 'postgres', url: 'not a url' }] }), silentLogger)).toThrow(/not a valid postgres/);
});

test.each([
  ['an unknown sink type', { sinks: [{ type: 'syslog' }] }, /audit\.sinks\.0: expected \{ type: stdout \}/],
  ['a file sink without a path', { sinks: [{ type: 'file' }] }, /audit\.sinks\.0/],
  ['an unknown key in a sink', { sinks: [{ type: 'stdout', path: 'x' }] }, /audit\.sinks\.0/],
  ['no sinks', { sinks: [] }, /audit\.sinks/],
  ['a bad table name', { sinks: [{ type: 'postgres', table: 'a.b.c' }] }, /audit\.sinks\.0/],
  ['an unknown key', { sink: [] }, /sink/],
  ['a bad guarantee', { write_guarantee: 'eventually' }, /write_guarantee/],
  ['a zero queue', { queue_size: 0 }, /queue_size/],
])('%s is a config error', (_what, audit, message) => {
  expect(() => config(audit)).toThrow(ConfigError);
  expect(() => config(audit)).toThrow(message);
});

test('createAuditLog: settings from the config, the key file beside it, and a file sink that works', async () => {
  writeFileSync(path.join(dir, 'audit.key'), `${'x'.repeat(48)}\n`);
  const cfg = config({ sinks: [{ type: 'file', path: 'audit.jsonl' }], key_file: 'audit.key', redact_literals: false, queue_size: 50, reads_when_unavailable: 'refuse', write_guarantee: 'async' });
  const log = await createAuditLog(cfg, silentLogger);
  try {
    expect(log).toMatchObject({ queueSize: 50, readsWhenUnavailable: 'refuse', writeGuarantee: 'async' });
    expect(log.text.redactLiterals).toBe(false);
    expect(log.healthy()).toBe(true);
    const event = log.emit({ kind: 'statement', decision: 'allowed', ...log.text.fields("SELECT 'x'") });
    await log.durable(event);
  } finally {
    await log.close();
  }
  // With audit.key_file the chain is keyed: it verifies with the key, and asks for it without.
  expect(await verifyFile(path.join(dir, 'audit.jsonl'), { key: chainKeyOf(Buffer.from('x'.repeat(48))) })).toMatchObject({ ok: true, intact: 1 });
  expect(await verifyFile(path.join(dir, 'audit.jsonl'))).toMatchObject({ ok: false, needsKey: true });
  expect(JSON.parse(readFileSync(path.join(dir, 'audit.jsonl'), 'utf8'))).toMatchObject({ sql: "SELECT 'x'", sql_hmac: expect.stringMatching(/^[0-9a-f]{64}$/), chain: 'hmac-sha256' });
});
