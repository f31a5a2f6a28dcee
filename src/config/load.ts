// Reads ormai.yaml, applies env overrides, resolves files, and returns the resolved configuration.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseConnectionString } from 'pg-connection-string';
import { z } from 'zod';
import { formatIssues, loadPolicyFile, parseStructuredFile, type PolicySnapshot } from '../policy/load';
import type { AnalysisLimits } from '../analysis/bounds';
import type { SessionLimits } from '../session/limits';
import { configSchema, type RawConfig } from './schema';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface HostPort {
  host: string;
  port: number;
}

export interface UpstreamTarget {
  host: string;
  port: number;
  user: string;
  /** Non-enumerable on the resolved object: never logged or serialised. */
  password?: string;
  database: string;
  tls: { mode: 'disable' | 'require' | 'verify-full'; ca?: Buffer };
  connectTimeoutMs: number;
  searchPath: string;
  /** upstream.read_scope: barrier views in pg_temp, fenced derived tables, or views over row-level security. */
  readScope: 'barrier_views' | 'fence' | 'rls';
  /** upstream.jit: false sets jit=off on the agent's sessions; true leaves the database's setting. */
  jit: boolean;
}

/** Where shared budgets live; without a Redis URL, in this process's memory. */
export interface StoreSettings {
  /** Non-enumerable: it may carry a password, so it is never logged or serialised. */
  redisUrl?: string;
  keyPrefix: string;
  commandTimeoutMs: number;
  readsWhenUnavailable: 'refuse' | 'allow';
}

export interface ProxyConfig {
  file: string;
  dir: string;
  raw: RawConfig;
  listen: HostPort;
  adminListen: HostPort;
  database: string;
  maxClientConnections: number;
  maxConnectionsPerTenant: number;
  maxMessageSize: number;
  analysis: AnalysisLimits & { cacheBytes: number };
  startup: { maxMessageSize: number; timeoutMs: number; maxConnections: number };
  session: SessionLimits;
  tls?: { cert: Buffer; key: Buffer; required: boolean };
  upstream: UpstreamTarget;
  policies: PolicySnapshot[];
  store: StoreSettings;
}

export function parseHostPort(value: string): HostPort {
  const i = value.lastIndexOf(':');
  const host = value.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const port = Number(value.slice(i + 1));
  if (!host || !Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`not a host:port: "${value}"`);
  return { host, port };
}

function readFile(dir: string, file: string, what: string): Buffer {
  try {
    return readFileSync(path.resolve(dir, file));
  } catch (err) {
    throw new ConfigError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function parseUpstreamUrl(url: string, raw: RawConfig, dir: string): UpstreamTarget {
  let parsed: ReturnType<typeof parseConnectionString>;
  let sslmode: string | null = null;
  try {
    // TLS settings are the proxy's own (below); pg-connection-string only supplies the rest.
    const u = new URL(url);
    sslmode = u.searchParams.get('sslmode');
    u.searchParams.delete('sslmode');
    parsed = parseConnectionString(u.toString());
  } catch {
    throw new ConfigError('upstream URL is not a valid postgres:// URL');
  }
  const modeFromUrl = sslmode === 'verify-full' ? 'verify-full' : sslmode && !['disable', 'allow', 'prefer'].includes(sslmode) ? 'require' : 'disable';
  const tlsCfg = raw.upstream.tls;
  const target: UpstreamTarget = {
    host: parsed.host ?? '127.0.0.1',
    port: Number(parsed.port ?? 5432),
    user: parsed.user ?? 'postgres',
    database: parsed.database ?? parsed.user ?? 'postgres',
    tls: {
      mode: tlsCfg?.mode ?? modeFromUrl,
      ca: tlsCfg?.ca_file ? readFile(dir, tlsCfg.ca_file, 'upstream CA file') : undefined,
    },
    connectTimeoutMs: raw.upstream.connect_timeout_ms,
    searchPath: raw.upstream.search_path,
    readScope: raw.upstream.read_scope,
    jit: raw.upstream.jit,
  };
  Object.defineProperty(target, 'password', { value: parsed.password || undefined, enumerable: false });
  return target;
}

function upstreamUrl(raw: RawConfig, dir: string, env: NodeJS.ProcessEnv): string {
  if (env.ORMAI_UPSTREAM_URL) return env.ORMAI_UPSTREAM_URL;
  if (raw.upstream.url) return raw.upstream.url;
  if (raw.upstream.url_file) return readFile(dir, raw.upstream.url_file, 'upstream URL file').toString('utf8').trim();
  throw new ConfigError('no upstream database: set upstream.url or upstream.url_file in the config, or ORMAI_UPSTREAM_URL');
}

/** The store's Redis URL, by the same precedence as the upstream URL: env, then the file's url, then url_file. */
function resolveStore(raw: RawConfig, dir: string, env: NodeJS.ProcessEnv): StoreSettings {
  const { store } = raw;
  let url = env.ORMAI_REDIS_URL || store.redis_url;
  if (!url && store.redis_url_file) url = readFile(dir, store.redis_url_file, 'Redis URL file').toString('utf8').trim();
  // The message never repeats the URL: it may hold a password.
  if (url !== undefined && !/^rediss?:\/\/[^\s]+$/.test(url)) throw new ConfigError('store Redis URL must be a redis:// or rediss:// URL');
  const settings: StoreSettings = {
    keyPrefix: store.key_prefix,
    commandTimeoutMs: store.command_timeout_ms,
    readsWhenUnavailable: store.reads_when_unavailable,
  };
  Object.defineProperty(settings, 'redisUrl', { value: url || undefined, enumerable: false });
  return settings;
}

/** Validates a parsed config document; env overrides apply before validation. */
export function resolveConfig(doc: unknown, file: string, env: NodeJS.ProcessEnv = process.env): ProxyConfig {
  const withEnv = { ...(doc && typeof doc === 'object' ? (doc as Record<string, unknown>) : {}) };
  if (doc !== null && (typeof doc !== 'object' || Array.isArray(doc))) throw new ConfigError(`${file}: expected a mapping at the top level`);
  if (env.ORMAI_LISTEN) withEnv.listen = env.ORMAI_LISTEN;
  if (env.ORMAI_ADMIN_LISTEN) withEnv.admin_listen = env.ORMAI_ADMIN_LISTEN;
  const result = configSchema.safeParse(withEnv);
  if (!result.success) throw new ConfigError(`invalid config ${file}:\n${formatIssues(result.error as z.ZodError)}`);
  const raw = result.data;
  const dir = path.dirname(path.resolve(file));
  const upstream = parseUpstreamUrl(upstreamUrl(raw, dir, env), raw, dir);
  const policies = raw.policies.map((p) => loadPolicyFile(path.resolve(dir, p)));
  const names = new Set<string>();
  for (const p of policies) {
    if (names.has(p.name)) throw new ConfigError(`two policies are named "${p.name}"`);
    names.add(p.name);
  }
  return {
    file,
    dir,
    raw,
    listen: parseHostPort(raw.listen),
    adminListen: parseHostPort(raw.admin_listen),
    database: raw.database ?? upstream.database,
    maxClientConnections: raw.max_client_connections,
    maxConnectionsPerTenant: raw.max_connections_per_tenant,
    maxMessageSize: raw.max_message_size,
    analysis: {
      maxStatementBytes: raw.analysis.max_statement_size,
      maxNestingDepth: raw.analysis.max_nesting_depth,
      maxTerms: raw.analysis.max_terms,
      maxParseNodes: raw.analysis.max_parse_nodes,
      maxExpandedNodes: raw.analysis.max_expanded_nodes,
      maxCtes: raw.analysis.max_ctes,
      maxCteDepth: raw.analysis.max_cte_depth,
      maxStatementsPerQuery: raw.analysis.max_statements_per_query,
      analysisBudgetMs: raw.analysis.budget_ms,
      cacheBytes: raw.analysis.cache_size,
    },
    session: {
      statements: raw.session.max_prepared_statements,
      portals: raw.session.max_portals,
      preparedSize: raw.session.max_prepared_size,
      preparedSizeTotal: raw.session.max_prepared_size_total,
      deadlineMarginMs: raw.session.deadline_margin_ms,
      shutdownGraceMs: raw.session.shutdown_grace_ms,
    },
    startup: {
      maxMessageSize: Math.min(raw.startup.max_message_size, raw.max_message_size),
      timeoutMs: raw.startup.timeout_ms,
      maxConnections: raw.startup.max_connections,
    },
    tls: raw.tls
      ? { cert: readFile(dir, raw.tls.cert_file, 'TLS certificate'), key: readFile(dir, raw.tls.key_file, 'TLS key'), required: raw.tls.required }
      : undefined,
    upstream,
    policies,
    store: resolveStore(raw, dir, env),
  };
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): ProxyConfig {
  const text = readFile(process.cwd(), file, 'config file').toString('utf8');
  let doc: unknown;
  try {
    doc = parseStructuredFile(text, file);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  return resolveConfig(doc, file, env);
}
