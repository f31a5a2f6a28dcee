// Builds the audit log from the config's audit section: sinks, redaction key, queue and guarantees.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Client, type ClientConfig } from 'pg';
import { initAnalysis } from '../analysis/parser';
import { ConfigError, parseUpstreamUrl, type ProxyConfig } from '../config/load';
import type { RawConfig } from '../config/schema';
import type { Logger } from '../log';
import { adminClientConfig } from '../upstream/catalog';
import { HeadPublisher } from './heads';
import { chainKeyOf, type PrekeyedHmac } from './hmac';
import { AuditLog, type AuditLogOptions } from './log';
import { AuditText, loadAuditKey } from './redact';
import type { AuditSink } from './sink';
import { FileSink } from './sinks/file';
import { PostgresSink } from './sinks/postgres';
import { StdoutSink } from './sinks/stdout';

type SinkConfig = RawConfig['audit']['sinks'][number];
const APPLICATION_NAME = 'ormai-proxy audit';

/**
 * The sink's own connection: its url or url_file (sslmode from that URL, not the upstream's
 * tls section, since it may be another server), else the upstream's credentials.
 */
export function postgresClient(sink: Extract<SinkConfig, { type: 'postgres' }>, config: ProxyConfig): ClientConfig {
  let url = sink.url;
  if (url === undefined && sink.url_file !== undefined) {
    try {
      url = readFileSync(path.resolve(config.dir, sink.url_file), 'utf8').trim();
    } catch (err) {
      throw new ConfigError(`cannot read audit URL file ${sink.url_file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (url === undefined) return adminClientConfig(config.upstream, APPLICATION_NAME);
  const raw: RawConfig = { ...config.raw, upstream: { ...config.raw.upstream, tls: undefined } };
  // parseUpstreamUrl's errors never repeat the URL, which may hold a password.
  return adminClientConfig(parseUpstreamUrl(url, raw, config.dir), APPLICATION_NAME);
}

/** Runs `fn` on a connection of its own to a postgres sink's database (a reader of the trail, not the sink's writer), closed after. */
export async function withSinkConnection<T>(sink: Extract<SinkConfig, { type: 'postgres' }>, config: ProxyConfig, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client(postgresClient(sink, config));
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * `chainKey`: keys the file sinks' chains (audit.key_file set). `stdout`: where the stdout sink
 * writes instead (`ormai-proxy mcp`, whose stdout is the MCP channel, gives stderr).
 */
export function createSinks(config: ProxyConfig, log: Logger, chainKey?: PrekeyedHmac, stdout?: NodeJS.WritableStream): AuditSink[] {
  return config.raw.audit.sinks.map((sink): AuditSink => {
    switch (sink.type) {
      case 'stdout':
        return new StdoutSink(stdout);
      case 'file':
        return new FileSink(path.resolve(config.dir, sink.path), log, chainKey);
      case 'postgres':
        return new PostgresSink({ client: postgresClient(sink, config), table: sink.table, log });
    }
  });
}

/**
 * The configured audit log, its sinks opened once: a sink that is down at start-up does not
 * stop the proxy (it is retried, and writes are refused until it answers), but is reported.
 * `overrides` are for tests (retry timings, timeouts); `stdout` replaces the stdout sink's stream.
 */
export async function createAuditLog(config: ProxyConfig, log: Logger, overrides: Partial<AuditLogOptions> = {}, stdout?: NodeJS.WritableStream): Promise<AuditLog> {
  const settings = config.raw.audit;
  // Redaction normalises statements with the parser's WebAssembly module.
  await initAnalysis();
  const key = loadAuditKey(settings.key_file === undefined ? undefined : path.resolve(config.dir, settings.key_file), log);
  // A random per-process key would make the chain unverifiable: only a configured key keys it.
  const sinks = createSinks(config, log, settings.key_file === undefined ? undefined : chainKeyOf(key), stdout);
  const heads = new HeadPublisher({
    files: sinks.filter((s): s is FileSink => s instanceof FileSink),
    targets: sinks.filter((s): s is PostgresSink => s instanceof PostgresSink),
    intervalMs: settings.head_interval_ms,
    log,
  });
  const audit = new AuditLog({
    sinks,
    heads,
    queueSize: settings.queue_size,
    readsWhenUnavailable: settings.reads_when_unavailable,
    writeGuarantee: settings.write_guarantee,
    durableTimeoutMs: settings.durable_timeout_ms,
    batchWindowMs: settings.batch_window_ms,
    syncIntervalMs: settings.sync_interval_ms,
    text: new AuditText(key, settings.redact_literals),
    log,
    ...overrides,
  });
  await audit.ready();
  heads.start();
  for (const sink of audit.stats().sinks) {
    if (!sink.up) log.warn({ sink: sink.name }, 'audit sink not available at start-up; writes are refused until it is');
  }
  return audit;
}
