// The proxy's own configuration file (ormai.yaml): strict zod schema with defaults.
import { z } from 'zod';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:6432');

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3 };

/** A byte size: an integer, or a string such as "64MiB" or "512kB". */
export const byteSize = z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(v);
  const unit = SIZE_UNITS[(m?.[2] || 'b').toLowerCase()];
  if (!m || unit === undefined) {
    ctx.addIssue({ code: 'custom', message: `not a size: "${v}" (use bytes or kB/KiB/MB/MiB/GB/GiB)` });
    return z.NEVER;
  }
  return Number(m[1]) * unit;
});

const tlsServer = z.strictObject({
  cert_file: z.string(),
  key_file: z.string(),
  /** Refuse clients that do not ask for TLS (loopback clients included). */
  required: z.boolean().default(false),
});

const upstreamTls = z.strictObject({
  /** disable | require (encrypt, no verification) | verify-full (CA and host name checked). */
  mode: z.enum(['disable', 'require', 'verify-full']).default('disable'),
  ca_file: z.string().optional(),
});

const upstream = z.strictObject({
  /** postgres://user:password@host:port/db; or give url_file (a mounted secret). */
  url: z.string().optional(),
  url_file: z.string().optional(),
  /** Overrides sslmode in the URL when given. */
  tls: upstreamTls.optional(),
  connect_timeout_ms: z.number().int().positive().default(5000),
  /** Pinned on every upstream session; the agent cannot change it. */
  search_path: z.string().default('public'),
  /**
   * How reads of tenant-scoped tables are fenced (docs/read-scope.md). barrier_views: each session
   * makes security-barrier views in pg_temp, so PostgreSQL's indexes serve the agent's conditions
   * (needs the TEMP privilege on a primary). fence: derived tables behind OFFSET 0, for a read
   * replica or a role without TEMP; every condition of the agent then runs above a scan of the tenant's rows.
   * rls: barrier views, with PostgreSQL's row-level security fencing each tenant-scoped table
   * (`ormai-proxy rls` prints the policies; start-up checks they are in place), so joins reach
   * the indexes of both sides.
   */
  read_scope: z.enum(['barrier_views', 'fence', 'rls']).default('barrier_views'),
  /**
   * PostgreSQL's JIT compilation for the agent's statements. Off by default: compiling takes
   * 0.1–3 s for large plans (the policy's catalog views make them larger) and counts against the
   * policy's statement_timeout, which bounds every statement to seconds. On: the database's own setting.
   */
  jit: z.boolean().default(false),
});

const auth = z.strictObject({
  /** How users from users_file authenticate: SCRAM-SHA-256 (default) or cleartext password. */
  method: z.enum(['scram-sha-256', 'password']).default('scram-sha-256'),
  users_file: z.string().optional(),
  /** A signed JWT as the password; see src/auth/jwt.ts for the keys. */
  jwt: z.unknown().optional(),
  /** Allow cleartext passwords (and JWTs) only over TLS or loopback. */
  cleartext_only_secure: z.boolean().default(true),
});

const store = z.strictObject({
  /** redis:// or rediss:// URL of the store shared by all sidecars; or give redis_url_file. Absent: in-memory budgets. */
  redis_url: z.string().optional(),
  redis_url_file: z.string().optional(),
  /** Every key the proxy writes starts with this, so several deployments can share one Redis. */
  key_prefix: z.string().default('ormai:'),
  /** A slow store counts as an unavailable one: statements never wait longer on it. */
  command_timeout_ms: z.number().int().positive().default(500),
  /** While the store is unreachable: refuse reads (fail closed) or let them through with a warning. Writes are then always refused. */
  reads_when_unavailable: z.enum(['refuse', 'allow']).default('refuse'),
});

const admin = z.strictObject({
  /** A mounted secret holding the admin API's bearer token; without it only the routes that need no token are served. */
  token_file: z.string().optional(),
  /**
   * A mounted secret naming each person who may use the admin API with the SHA-256 of their own
   * token (`ormai-proxy admin-token NAME` makes one). Approvals, denials and rollbacks are recorded
   * under that name; the shared token_file token acts as the identity `admin`.
   */
  identities_file: z.string().optional(),
  /** /metrics requires the bearer token too (it is open by default, like /healthz, /readyz and /version). */
  metrics_auth: z.boolean().default(false),
  /** /readyz turns not ready while the V8 heap in use exceeds this share of its limit. */
  memory_high_water: z.number().gt(0).max(1).default(0.85),
});

const approvals = z.strictObject({
  /** memory: this process only; postgres: a table in the upstream database, shared by every sidecar. */
  store: z.enum(['memory', 'postgres']).default('memory'),
  /** The postgres store's table, `table` or `schema.table` (schema default public); created if missing. */
  table: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/, 'expected table or schema.table (letters, digits, underscores)')
    .default('ormai_approvals'),
  /** How often pending approvals past their expiry are denied. */
  sweep_interval_ms: z.number().int().positive().default(5000),
  /** Writes of one tenant waiting for approval at once; past it a write a rule would hold is refused. */
  max_pending_per_tenant: z.number().int().positive().default(100),
});

const qualifiedTable = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/, 'expected table or schema.table (letters, digits, underscores)');

/** One audit destination. z.enum rather than z.literal: the generated JSON Schema then uses only keywords editors and our test check. */
const auditSink = z.union([
  z.strictObject({ type: z.enum(['stdout']) }),
  /** Hash-chained JSON lines, fsynced per batch; relative to the config file. */
  z.strictObject({ type: z.enum(['file']), path: z.string().min(1) }),
  /** A table written over the sink's own connection; url or url_file, else the upstream credentials. */
  z.strictObject({ type: z.enum(['postgres']), url: z.string().optional(), url_file: z.string().optional(), table: qualifiedTable.default('ormai_audit') }),
], { error: 'expected { type: stdout }, { type: file, path } or { type: postgres, url?, url_file?, table? }' });

const audit = z.strictObject({
  sinks: z.array(auditSink).min(1).default([{ type: 'stdout' }]),
  /** Statement text in events has its literals replaced by placeholders. */
  redact_literals: z.boolean().default(true),
  /** A mounted secret keying sql_hmac; absent: a random key per process (with a warning). */
  key_file: z.string().optional(),
  queue_size: z.number().int().positive().default(10000),
  /** While a sink is down or the queue is full: writes are always refused; reads follow this. */
  reads_when_unavailable: z.enum(['allow', 'refuse']).default('allow'),
  /** durable: a write is acknowledged only once its event is persisted by every sink; async: queued is enough. */
  write_guarantee: z.enum(['durable', 'async']).default('durable'),
  /** How long a write's transaction waits for its event to be persisted before it is rolled back (durable). */
  durable_timeout_ms: z.number().int().positive().default(5000),
  /** Group commit: how long a sink may hold events nobody waits for (reads) to write and fsync them with later ones; a durable write's event is written at once. */
  batch_window_ms: z.number().int().min(0).max(1000).default(2),
  /** File sinks: how long written events nobody waits for (reads) may go without an fsync, which a later batch then carries; a durable write's event is fsynced at once with everything before it. */
  sync_interval_ms: z.number().int().min(0).max(10_000).default(200),
  /** How often the head of each hash-chained file is published (log, postgres sinks' heads table, metric) when it has moved. */
  head_interval_ms: z.number().int().min(1000).default(60_000),
});

/** The tool doors over HTTP (docs/tools.md): POST /agent/tool, GET /agent/tools and MCP at /mcp, every request with a bearer token. */
const tools = z.strictObject({
  /** host:port of the tools HTTP listener; absent: no HTTP door (`ormai-proxy mcp` serves stdio without it). */
  listen: hostPort.optional(),
  /** Largest request body (a tool call, an MCP message); a larger one is refused with 413. */
  max_body_bytes: byteSize.default(1024 * 1024),
  /**
   * The largest result one tool call may return (the rows' bytes as PostgreSQL sends them): the
   * engine holds a result in memory to answer it as JSON, so past this the call is stopped with
   * result_too_large instead of running the proxy out of memory.
   */
  max_result_bytes: byteSize.default(16 * 1024 * 1024),
  /** Tool calls that may wait for one of a principal's sessions (4 run at once); more are refused. */
  max_queued_calls: z.number().int().positive().default(32),
  /**
   * How long a call's answer may take to reach a client that does not read it; past it the
   * connection is dropped. The call's session (its caller's slot) is held until then.
   */
  response_timeout_ms: z.number().int().min(100).max(600_000).default(30_000),
});

/** Work bounds of one statement's analysis (src/analysis/bounds.ts); each refusal is statement_too_large or statement_too_complex. */
const analysis = z.strictObject({
  /** Bytes of one statement text; far below max_message_size, which also carries parameters. */
  max_statement_size: byteSize.default(1024 * 1024),
  /** Parentheses, brackets, CASE and chained operators (1+1+…, a JOIN b JOIN …, UNION …) counted as levels. */
  max_nesting_depth: z.number().int().positive().max(1000).default(400),
  /** Names, keywords, literals and parameters in one text. */
  max_terms: z.number().int().positive().default(100_000),
  /** Nodes of the parsed tree. */
  max_parse_nodes: z.number().int().positive().default(100_000),
  /** Nodes of the statement PostgreSQL plans, once derived tables and CTEs are expanded into the references to their columns; a grouping set weighs 2,500 and each of its columns 80. */
  max_expanded_nodes: z.number().int().positive().default(200_000),
  max_ctes: z.number().int().positive().default(100),
  /** How deeply a WITH may nest inside a CTE. */
  max_cte_depth: z.number().int().positive().default(16),
  /** Statements in one simple-protocol Query message. */
  max_statements_per_query: z.number().int().positive().default(1000),
  /** Wall time of one analysis (parse, checks, rewrite, deparse), checked between stages. */
  budget_ms: z.number().int().positive().default(2000),
  /** Memory of the cache of analysed statements, counted in bytes of text and trees. */
  cache_size: byteSize.default(64 * 1024 * 1024),
});

/** Connections that have not finished startup and authentication. */
const startup = z.strictObject({
  /** Largest message before authentication (startup packet, password, SASL); refused as soon as its length is read. */
  max_message_size: byteSize.default(10_000),
  /** Time from accept to a finished login; PostgreSQL's authentication_timeout is 60 s. */
  timeout_ms: z.number().int().positive().default(10_000),
  /** Connections still in startup or authentication at once, apart from max_client_connections. */
  max_connections: z.number().int().positive().default(32),
});

/** Bounds of one logged-in session (src/session). */
const session = z.strictObject({
  /** Named prepared statements one session may hold (PostgreSQL has no bound; pgx caches 512, JDBC 256). */
  max_prepared_statements: z.number().int().positive().default(1000),
  /** Named portals (and cursors) one session may hold. */
  max_portals: z.number().int().positive().default(1000),
  /** Text (the agent's and the forwarded) of the named prepared statements one session may hold. */
  max_prepared_size: byteSize.default(16 * 1024 * 1024),
  /** The same over every session of the process: the process holds them all in one heap. */
  max_prepared_size_total: byteSize.default(64 * 1024 * 1024),
  /** A statement still running this long past the policy's statement_timeout is cancelled, and this long after that its session ends. */
  deadline_margin_ms: z.number().int().positive().default(2000),
  /** On SIGTERM, how long busy sessions (and open transactions) may go on to finish before they are cancelled. */
  shutdown_grace_ms: z.number().int().nonnegative().default(10000),
});

export const configSchema = z.strictObject({
  listen: hostPort.default('127.0.0.1:6432'),
  admin_listen: hostPort.default('127.0.0.1:9090'),
  /** The database name agents connect to; defaults to the upstream database's name. */
  database: z.string().min(1).optional(),
  max_client_connections: z.number().int().positive().default(100),
  /** Logged-in sessions of one tenant, so that one tenant's agents cannot take every connection. */
  max_connections_per_tenant: z.number().int().positive().default(50),
  max_message_size: byteSize.default(64 * 1024 * 1024),
  analysis: analysis.default({
    max_statement_size: 1024 * 1024,
    max_nesting_depth: 400,
    max_terms: 100_000,
    max_parse_nodes: 100_000,
    max_expanded_nodes: 200_000,
    max_ctes: 100,
    max_cte_depth: 16,
    max_statements_per_query: 1000,
    budget_ms: 2000,
    cache_size: 64 * 1024 * 1024,
  }),
  startup: startup.default({ max_message_size: 10_000, timeout_ms: 10_000, max_connections: 32 }),
  session: session.default({
    max_prepared_statements: 1000,
    max_portals: 1000,
    max_prepared_size: 16 * 1024 * 1024,
    max_prepared_size_total: 64 * 1024 * 1024,
    deadline_margin_ms: 2000,
    shutdown_grace_ms: 10000,
  }),
  tls: tlsServer.optional(),
  upstream: upstream.default({ connect_timeout_ms: 5000, search_path: 'public', read_scope: 'barrier_views', jit: false }),
  auth: auth.default({ method: 'scram-sha-256', cleartext_only_secure: true }),
  /** Policy files; the principal's role picks one (see require_principal_role). */
  policies: z.array(z.string()).min(1),
  store: store.default({ key_prefix: 'ormai:', command_timeout_ms: 500, reads_when_unavailable: 'refuse' }),
  admin: admin.default({ metrics_auth: false, memory_high_water: 0.85 }),
  approvals: approvals.default({ store: 'memory', table: 'ormai_approvals', sweep_interval_ms: 5000, max_pending_per_tenant: 100 }),
  tools: tools.default({ max_body_bytes: 1024 * 1024, max_result_bytes: 16 * 1024 * 1024, max_queued_calls: 32, response_timeout_ms: 30_000 }),
  audit: audit.default({ sinks: [{ type: 'stdout' }], redact_literals: true, queue_size: 10000, reads_when_unavailable: 'allow', write_guarantee: 'durable', durable_timeout_ms: 5000, batch_window_ms: 2, sync_interval_ms: 200, head_interval_ms: 60_000 }),
  log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type RawConfig = z.infer<typeof configSchema>;
