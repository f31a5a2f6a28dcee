// JSON Schemas for editors, generated from the zod schemas of the policy file and ormai.yaml (`npm run schema`).
import { z } from 'zod';
import { jwtConfigSchema } from '../auth/jwt';
import { ALWAYS_DENIED, policySchema, profileDefaults, profileNames } from '../policy/schema';
import { configSchema } from './schema';

export type JsonSchema = { [key: string]: unknown };

/** "prod 100, internal 1000, dev 10000": a profile-dependent default, read from profileDefaults so it cannot drift. */
function byProfile(key: 'max_rows' | 'statement_timeout_ms' | 'max_join_depth' | 'require_reason'): string {
  return profileNames.map((p) => `${p} ${profileDefaults[p][key]}`).join(', ');
}

const NOT_YET_ENFORCED = 'Validated; not enforced yet: the hash strategy is refused at load.';

/**
 * What each policy key does, for the editor's hover text. Keys are property paths; `[]` is
 * an array's items. Every property must have an entry and every entry must match a property
 * (generation throws otherwise), so a key added to the zod schema cannot go undocumented.
 */
const policyDescriptions: Record<string, string> = {
  name: 'Names the policy; unique among the mounted policies. Printed by `ormai-proxy check`.',
  profile: `Defaults for what the file leaves out: max_rows (${byProfile('max_rows')}), statement_timeout_ms (${byProfile('statement_timeout_ms')}), max_join_depth (${byProfile('max_join_depth')}), write reasons required (${byProfile('require_reason')}). Default: prod.`,
  require_principal_role:
    'Only principals holding this role use this policy. A principal uses the first policy whose role it holds, else the first policy without a role; with neither, its login is refused. Default: none (the fallback policy).',
  models:
    'The tables the agent may see: `table` or `schema.table` (case-folded), or { table, name, row_filter, system_columns }. Any other table reads as "relation does not exist". Each must exist in the database.',
  'models[].table': 'The table: `table` or `schema.table`.',
  'models[].name': 'The model name known to the agent\'s tooling. Default: the table name. SQL always uses the table name.',
  'models[].row_filter':
    'One SQL boolean expression over the table\'s own columns, ANDed with the tenant filter on every read, e.g. "deleted_at IS NULL". Default: none.',
  'models[].system_columns':
    'Let statements read the table\'s system columns (xmin, xmax, cmin, cmax, ctid, tableoid), e.g. xmin as an optimistic-locking token. A statement that names one reads it through the policy view, which then carries it as a column (so SELECT * in that statement lists it too). Default: false (they read as "column does not exist": they expose transaction ids, physical row positions and the table\'s OID).',
  tenant_scope:
    'Scopes every read to the principal\'s tenant. Tables with this column see only that tenant\'s rows; tables without it are global lookup tables. Default: no tenant scope.',
  'tenant_scope.column': 'The tenant column (case-folded). It cannot be denied or masked.',
  'tenant_scope.type': 'The column\'s type; a principal whose tenant id does not fit it is refused at login. Default: integer.',
  deny_fields: `Column globs (case-insensitive, * and ?) that do not exist for the agent: \`column\` in any table, \`table.column\` or \`schema.table.column\`. Always added: ${ALWAYS_DENIED.join(', ')}. Default: [].`,
  mask_fields:
    'Columns the agent only ever sees masked (in every expression, filter, sort and join): `table.column` (globs allowed) or { field, strategy }. The first matching rule wins; a denied column stays denied. Default: [].',
  'mask_fields[].field': '`table.column` or `schema.table.column`; globs (case-insensitive) allowed.',
  'mask_fields[].strategy':
    'email: jane@acme.com -> j***@acme.com; phone, partial: first 2 and last 2 characters kept (555-0100 -> 55****00); last4: all but the last 4 starred; null: always NULL; hash: refused at load for now. Default: from the column name (email if it contains "email", phone if "phone" or "mobile", else partial).',
  mask_hash_key_file: `File holding the key for the hash mask strategy; the database never sees it. ${NOT_YET_ENFORCED}`,
  enable_writes:
    'Write grants. A write to a table and operation no grant covers is refused; without any grant the upstream session is read-only. Default: [] (read-only).',
  'enable_writes[].models': 'Tables the grant covers; each must be in models.',
  'enable_writes[].operations': 'create (INSERT), update (UPDATE), delete (DELETE). Default: all three.',
  'enable_writes[].require_reason': `The agent must give a reason for each write, as a sqlcommenter tag: /*reason='…'*/. Default: from the profile.`,
  'enable_writes[].writable_fields': `Per model, the only columns the agent may assign (INSERT column lists, SET). Default: every visible column except the tenant column, which is never assignable.`,
  'enable_writes[].max_affected_rows': `A write that would change more rows is refused before anything is written (max_affected_rows_exceeded); INSERT … SELECT is refused under a cap. Default: none.`,
  require_approval: `Writes held until approved: the agent gets pending_approval with the approval id, humans approve through the admin API, and the proxy then runs the held statement once. Default: [].`,
  'require_approval[].operation': 'create, update or delete.',
  'require_approval[].model': 'The model (table) the rule applies to.',
  'require_approval[].when': 'Only writes matching this condition need approval. Default: every write of this operation and model.',
  'require_approval[].when.field': 'The column the condition looks at.',
  'require_approval[].when.in': 'The value written is one of these.',
  'require_approval[].when.equals': 'The value written equals this.',
  'require_approval[].when.affected_rows_gt': 'The write touches more than this many rows.',
  'require_approval[].approvers': 'Approvals needed. Default: 1.',
  'require_approval[].expires_in_s': 'Seconds before an unapproved write expires. Default: 3600.',
  max_writes_per_minute: `Write statements per minute, per agent and per tenant (shared across proxies with store.redis_url). Default: none.`,
  max_rows: `Rows per statement: the outermost LIMIT becomes LEAST(agent's, max_rows), and a longer result is cut with a NOTICE. Default from the profile: ${byProfile('max_rows')}.`,
  max_scan_rows:
    'Before each read the planner is asked (EXPLAIN) how many rows it would scan; above this the statement is refused with scan_budget_exceeded. Default: no check.',
  statement_timeout_ms: `statement_timeout of the upstream session, in ms; the agent may lower it, never raise it. Default from the profile: ${byProfile('statement_timeout_ms')}.`,
  idle_in_transaction_timeout_ms: "idle_in_transaction_session_timeout of the upstream session, in ms: PostgreSQL ends a session that holds a transaction open and idle this long. The agent may lower it, never raise or disable it. Unset: the database's own value stands, and the agent may not change it.",
  max_join_depth: `Joins allowed in one FROM clause: relations joined at one query level minus one (subqueries and CTEs count at their own level). Default from the profile: ${byProfile('max_join_depth')}.`,
  queries_per_minute_per_tenant:
    'Statements (Query and Execute messages) per tenant per minute; beyond it they are refused with query_rate_limited. Default: no limit.',
  allow_functions:
    'Functions allowed beyond the built-in allow-list, by exact name (case-folded): `f` allows unqualified and pg_catalog.f calls; a call written schema.f needs `schema.f`. Built-ins such as set_config, dblink*, lo_*, pg_read_* stay refused even when listed. Default: [].',
  tools:
    'Domain tools (docs/domain-tools.md): named SQL statements with typed parameters, offered to the agent after the db.* tools. Each call runs through the agent\'s own session under this policy, with no privilege beyond the agent\'s: the tenant predicate, hidden and masked columns, max_rows, write grants, reasons, approvals and the audit trail apply as to any statement. `ormai-proxy check` parses and analyses each one. Default: [].',
  'tools[].name':
    'The tool\'s name, namespace.name in lower case (letters, digits, _), e.g. analytics.weekly_revenue; model APIs see it as analytics_weekly_revenue. Unique; the namespaces db, approvals and ormai are the proxy\'s own.',
  'tools[].description': 'What the tool answers and when to use it: the agent\'s model reads it to choose the tool.',
  'tools[].sql':
    'One statement (SELECT, or INSERT/UPDATE/DELETE where enable_writes allows it), written against the tables as the agent sees them, with named parameters :name. A :name inside a string literal, a quoted identifier or a comment is text, and :: casts stay casts; a colon right after a name, number or bracket is an array slice. $1-style parameters are refused. A write tool also takes reason and dry_run.',
  'tools[].params': 'The parameters the sql uses, by name (lower case; not reason, dry_run, model, select, group_by, order_by, aggregates, approval_id, sql or is_null). Each must be used, and each :name used must be declared. Default: {}.',
  'tools[].params.*.type':
    'integer (bound as bigint), number (numeric), text, boolean, date (YYYY-MM-DD), timestamp (ISO 8601, bound as timestamptz) or uuid. The value is a bind parameter cast to this type, never SQL text.',
  'tools[].params.*.description': 'What the agent should pass, shown in the tool\'s JSON Schema.',
  'tools[].params.*.required': 'The agent must give it. An optional parameter left out (or null) is bound as NULL: write the sql for that, e.g. (:since IS NULL OR created_at >= :since). Default: true.',
};

const configDescriptions: Record<string, string> = {
  listen: 'host:port where agents connect; env ORMAI_LISTEN overrides. Default: 127.0.0.1:6432.',
  admin_listen: 'host:port of the admin HTTP listener (health, approvals); env ORMAI_ADMIN_LISTEN overrides. Default: 127.0.0.1:9090.',
  database: 'The database name agents put in their connection string. Default: the upstream database\'s name.',
  max_client_connections: 'Further clients are refused with 53300 too_many_connections. Default: 100.',
  max_connections_per_tenant: 'Logged-in sessions of one tenant (all its users; tool-call sessions included); one more is refused at login with 53300 too_many_connections, so that one tenant cannot take every connection. Default: 50.',
  max_message_size: 'Largest protocol message from a client, in bytes or with a unit (kB, KiB, MB, MiB, GB, GiB); larger ones end the connection. Default: 64MiB.',
  analysis: 'Work bounds of one statement\'s analysis; a statement over one is refused with 54000 statement_too_large or 54001 statement_too_complex before anything runs.',
  'analysis.max_statement_size': 'Bytes of one statement text (UTF-8), in bytes or with a unit. Default: 1MiB.',
  'analysis.max_nesting_depth': 'Levels of parentheses, brackets, CASE and chained operators (1+1+…, JOIN … JOIN, UNION … UNION) in one text, estimated before parsing; at most 1000 (deeper trees overflow the parser\'s stack). Default: 400.',
  'analysis.max_terms': 'Names, keywords, literals and parameters in one text. Default: 100000.',
  'analysis.max_parse_nodes': 'Objects in the parsed tree; analysis costs ~8 µs per object, so this bounds one statement to about a second of CPU. Default: 100000.',
  'analysis.max_expanded_nodes': 'Objects in the statement PostgreSQL plans: each reference to a column of a subquery in FROM or of a CTE counts that column\'s expression, as the planner copies it there when it pulls the subquery up, and BETWEEN and IN count their left operand once per copy PostgreSQL makes (it plans without checking statement_timeout). Default: 200000.',
  'analysis.max_ctes': 'Common table expressions in one text. Default: 100.',
  'analysis.max_cte_depth': 'How deeply a WITH may nest inside a common table expression. Default: 16.',
  'analysis.max_statements_per_query': 'Statements in one simple-protocol Query message. Default: 1000.',
  'analysis.budget_ms': 'Wall time of one analysis, checked between its stages. Default: 2000.',
  'analysis.cache_size': 'Heap the statement cache may hold, counted over keys, texts and parsed trees, in bytes or with a unit. Default: 64MiB.',
  startup: 'Connections that have not finished startup and authentication.',
  'admin.memory_high_water': '/readyz answers 503 (check memory: memory high-water mark) while the V8 heap in use exceeds this share of its limit, so that a proxy near out-of-memory takes no new work. Default: 0.85.',
  session: 'Bounds of one logged-in session.',
  'session.max_prepared_statements': 'Named prepared statements one session may hold (Parse, SQL PREPARE); one more is refused with 54000 session_limit_exceeded. PostgreSQL has no bound; pgx caches 512, JDBC 256. Default: 1000.',
  'session.max_portals': 'Named portals (and cursors) one session may hold at once; one more is refused with 54000 session_limit_exceeded. Default: 1000.',
  'session.max_prepared_size': 'Text of the named prepared statements one session may hold (the agent\'s text and the forwarded one together), and what its named portals keep (the statement they were bound from when no name counts it, a cursor\'s declaration, the parameters of a write an approval rule may hold), in bytes or with a unit; a Parse, PREPARE or Bind beyond it is refused with 54000 session_limit_exceeded. A statement\'s heap is about 1.5 times its two texts. Default: 16MiB.',
  'session.max_prepared_size_total': 'The same over every session of the process, which holds them all in one heap; a Parse, PREPARE or Bind beyond it is refused with 54000 session_limit_exceeded. Default: 64MiB.',
  'session.shutdown_grace_ms':
    'On SIGTERM the proxy stops accepting connections; sessions that are idle end at once, busy ones (a statement running, a transaction open) may go on this long to finish, then what still runs is cancelled. Every statement gets its audit event either way. Default: 10000.',
  'session.deadline_margin_ms': 'A statement still running this long past the policy\'s statement_timeout (PostgreSQL does not check the timeout while it plans) is cancelled upstream; this long after that its session ends with FATAL 57014 statement_deadline_exceeded. Default: 2000.',
  'startup.max_message_size': 'Largest message before authentication (startup packet, password, SASL), refused as soon as its length is read. Default: 10000 (PostgreSQL\'s startup packet limit).',
  'startup.timeout_ms': 'Time from accept to a finished login; slower clients get FATAL 08006 authentication_timeout. Default: 10000.',
  'startup.max_connections': 'Connections in startup or authentication at once, counted apart from max_client_connections; further ones get FATAL 53300 too_many_connections. Default: 32.',
  tls: 'TLS for agents (SSLRequest answered S). Default: no TLS.',
  'tls.cert_file': 'PEM certificate (chain), relative to this file.',
  'tls.key_file': 'PEM private key, relative to this file.',
  'tls.required': 'Refuse agents that do not use TLS, loopback ones included. Default: false.',
  upstream: 'The real database.',
  'upstream.url': 'postgres://user:password@host:port/db; env ORMAI_UPSTREAM_URL overrides. Give url or url_file.',
  'upstream.url_file': 'A file (e.g. a mounted secret) holding the URL, relative to this file.',
  'upstream.tls': 'TLS towards the database; overrides sslmode in the URL.',
  'upstream.tls.mode': 'disable, require (encrypt, no verification) or verify-full (CA and host name checked). Default: from sslmode in the URL, else disable.',
  'upstream.tls.ca_file': 'CA bundle for verify-full, relative to this file. Default: the system CAs.',
  'upstream.connect_timeout_ms': 'Limit for connecting and starting up towards the database, in ms. Default: 5000.',
  'upstream.search_path': 'Pinned on every upstream session; the agent cannot change it. Default: public.',
  'upstream.read_scope':
    'How reads of tenant-scoped tables are fenced. barrier_views: per-session security-barrier views in pg_temp, so indexes serve the agent\'s conditions (needs TEMP on a primary; checked at start-up). fence: derived tables behind OFFSET 0, for a replica or a role without TEMP. rls: barrier views over PostgreSQL row-level security, which every tenant-scoped table must have (ormai-proxy rls prints the policies; checked at start-up), so joins reach the indexes of both sides. Default: barrier_views.',
  'upstream.jit':
    "PostgreSQL's JIT compilation for the agent's statements. false: jit=off on the agent's sessions, since compile time (0.1-3 s for large plans) counts against statement_timeout. true: the database's own setting. Default: false.",
  auth: 'How agents authenticate; the tenant comes from the credential, never from SQL.',
  'auth.method': 'How users from users_file log in: scram-sha-256 or password (cleartext). Default: scram-sha-256.',
  'auth.users_file': 'Agents: users: [{ name, password | scram_verifier, tenant_id, roles }], relative to this file.',
  'auth.jwt': 'Accept a signed JWT as the password from users not in users_file. Default: off.',
  'auth.jwt.algorithms': 'Accepted signature algorithms; any other, none included, is refused.',
  'auth.jwt.secret_file': 'Shared secret for HS* (at least 32 bytes; one trailing newline ignored), relative to this file. Required with an HS* algorithm, refused without one.',
  'auth.jwt.public_key_file': 'PEM public key (BEGIN PUBLIC KEY) for RS*, PS*, ES*, EdDSA, relative to this file. Required with such an algorithm, refused without one.',
  'auth.jwt.issuer': 'Required iss claim. Default: not checked.',
  'auth.jwt.audience': 'Required aud claim. Default: not checked.',
  'auth.jwt.clock_tolerance_s': 'Clock skew allowed on exp/nbf, in seconds. Default: 30.',
  'auth.jwt.claims': 'Claim names to read.',
  'auth.jwt.claims.tenant': 'The tenant claim (string or integer; required in every token). Default: tenant_id.',
  'auth.jwt.claims.subject': 'The subject claim. Default: sub.',
  'auth.jwt.claims.roles': 'The roles claim: an array of strings or one space-separated string. Default: roles.',
  'auth.jwt.require_user_match': 'Require the startup user name to equal the subject claim too (the subject is the user either way). Default: false.',
  'auth.cleartext_only_secure': 'Cleartext passwords and JWTs only over TLS or loopback. Default: true.',
  policies: 'Policy files, relative to this file; the principal\'s role selects one (see require_principal_role).',
  log_level: 'pino log level; logs go to stderr as JSON lines. Default: info.',
  admin: 'The admin HTTP API on admin_listen.',
  'admin.identities_file':
    'A file (e.g. a mounted secret) listing the people who may use the admin API: identities: [{ name, token_sha256, role? }], the SHA-256 of each one\'s own bearer token (ormai-proxy admin-token NAME makes one) and role admin (default: the whole API) or metrics (only /metrics, for a scraper). Approvals, denials and rollbacks are recorded under that name. Relative to this file.',
  'admin.token_file':
    'A file (e.g. a mounted secret) holding the bearer token the admin API requires, relative to this file; one trailing newline is ignored. Without it every route that needs the token answers 503 (all but /healthz, /readyz, /version and, unless metrics_auth, /metrics). Default: none.',
  'admin.metrics_auth':
    'Require the bearer token for /metrics as well. Default: false (/metrics, like /healthz, /readyz and /version, needs no token; none of them reveals secrets).',
  approvals: 'Writes held for approval (require_approval in the policy).',
  'approvals.store':
    'memory (this process only, lost on restart) or postgres (a table in the upstream database, reached with the upstream credentials, shared by every sidecar). Default: memory.',
  'approvals.table': 'The postgres store\'s table, `table` or `schema.table`; created if missing. Do not list it in a policy. Default: ormai_approvals (in public).',
  'approvals.sweep_interval_ms': 'How often pending approvals past their expiry are denied, in ms. Default: 5000.',
  'approvals.max_pending_per_tenant': 'How many writes of one tenant may wait for approval at once; past it a write a rule would hold is refused with approval_limit_reached (each holds its statement until decided or expired). Default: 100.',
  audit: 'The audit trail: one event per statement, connection and approval step, delivered to every sink.',
  'audit.sinks': 'Where events go, several at once: { type: stdout } (JSON lines), { type: file, path } (hash-chained JSON lines, check with `ormai-proxy audit verify FILE`), { type: postgres, url?, url_file?, table? }. Default: [{ type: stdout }].',
  'audit.sinks[].type': 'stdout, file or postgres.',
  'audit.sinks[].path': 'The file, relative to this file; created if missing, and its chain continued if it exists. One proxy per file.',
  'audit.sinks[].url': 'postgres:// URL of the audit database (may carry a password). Default: the upstream database and credentials.',
  'audit.sinks[].url_file': 'A file (e.g. a mounted secret) holding that URL, relative to this file.',
  'audit.sinks[].table': 'The table, `table` or `schema.table`; created if missing when the role may, else it must exist (the sink then needs INSERT only). Default: ormai_audit (in public).',
  'audit.redact_literals': 'Store statement text with every literal replaced by a $n placeholder (and comments dropped); sql_hmac keeps a keyed hash of the raw text. Default: true.',
  'audit.key_file': 'A file (e.g. a mounted secret, at least 32 bytes) keying sql_hmac and, when set, the hash chains of the file sinks, relative to this file. Default: a random key per process for sql_hmac (with a warning) and unkeyed chains.',
  'audit.head_interval_ms': "How often the head of each hash-chained audit file is published (the log, the postgres sinks' <table>_heads, the ormai_audit_chain_head_timestamp_seconds metric) when it has moved; at least 1000. Default: 60000.",
  'audit.queue_size': 'Events held until every sink has them; when full, further events are lost (counted and logged) and the trail is unavailable. Default: 10000.',
  'audit.reads_when_unavailable': 'While a sink is down or the queue is full: allow reads, or refuse them with audit_unavailable. Writes are always refused then. Default: allow.',
  'audit.write_guarantee':
    'durable: a write commits, and is acknowledged, only once its event is persisted by every sink (otherwise its transaction is rolled back, or the write refused, with audit_unavailable); async: queued is enough, and the write commits as PostgreSQL runs it. Default: durable.',
  'audit.durable_timeout_ms': "How long a write's transaction waits for its event to be persisted before it is rolled back with audit_unavailable (write_guarantee: durable). Default: 5000.",
  'audit.batch_window_ms':
    "Group commit: how long each sink may hold events that nothing waits for (reads, and writes under write_guarantee: async) so that one write and one fsync carry many statements' events; a durable write's event is written at once, and shutdown flushes. A crash loses at most this much more of the read events than it would at 0. 0 to 1000. Default: 2.",
  'audit.sync_interval_ms':
    "File sinks: how long events that nothing waits for (reads, and writes under write_guarantee: async), once written to the file, may go without an fsync, which a later batch's then carries. A durable write's event is fsynced at once with every line before it, and so is everything at shutdown or once unsynced lines reach a sixteenth of audit.queue_size; published chain heads name fsynced lines only. A crash of the proxy loses none of the written lines; a crash of the host can lose up to this much of the read events. 0 fsyncs every batch as it is written. 0 to 10000. Default: 200.",
  tools: 'The tool doors over HTTP (docs/tools.md): POST /agent/tool, GET /agent/tools and MCP (Streamable HTTP) at /mcp. Every request carries Authorization: Bearer <token>: a users-file token (token_sha256) or a JWT verified by auth.jwt.',
  'tools.listen': 'host:port of the tools HTTP listener. Default: none (no HTTP door; `ormai-proxy mcp` serves MCP over stdio without it).',
  'tools.max_body_bytes': 'Largest request body (a tool call, an MCP message), in bytes or with a unit; a larger one is refused with 413 body_too_large. Default: 1MiB.',
  'tools.max_result_bytes': 'Largest result of one tool call (the rows as PostgreSQL sends them), in bytes or with a unit; past it the call is stopped with result_too_large (54000). Default: 16MiB.',
  'tools.max_queued_calls': "Tool calls of one principal that may wait for one of its sessions (4 run at once); more are refused with too_many_connections (53300). Default: 32.",
  'tools.response_timeout_ms':
    "How long the answer to a tool call may take to reach the client once it is ready, in ms; a client that has not read it by then loses the connection. Until its answer is out (or its connection gone) a call keeps its caller's session, so the answers of one caller waiting in memory are at most 4 (the calls it runs at once). 100 to 600000. Default: 30000.",
  store:
    'Where budgets (queries_per_minute_per_tenant) are counted. With a Redis URL, every proxy pointing at the same Redis shares one budget per tenant; without one, each proxy counts in its own memory. Default: memory.',
  'store.redis_url': 'redis:// or rediss:// URL (may carry a password); env ORMAI_REDIS_URL overrides. Give redis_url or redis_url_file, or neither for in-memory budgets.',
  'store.redis_url_file': 'A file (e.g. a mounted secret) holding the Redis URL, relative to this file.',
  'store.key_prefix': 'Prefix of every Redis key the proxy writes (rate limits under <prefix>rl:), so deployments can share one Redis. Default: ormai:.',
  'store.command_timeout_ms': 'A Redis command (or the first connection) slower than this counts as the store being unavailable. Default: 500.',
  'store.reads_when_unavailable':
    'While Redis is unreachable: refuse (statements are refused with rate_store_unavailable, fail closed) or allow (reads go through unchecked, with a warning in the log). Writes are always refused then. Default: refuse.',
};

/** Adds each property's description, failing on a property without one or a description without a property. */
function addDescriptions(root: JsonSchema, descriptions: Record<string, string>, what: string): void {
  const used = new Set<string>();
  const visit = (node: JsonSchema, path: string): void => {
    for (const branch of (node.anyOf as JsonSchema[] | undefined) ?? []) visit(branch, path);
    if (node.items && typeof node.items === 'object') visit(node.items as JsonSchema, `${path}[]`);
    // A record's values (tools[].params.*).
    if (node.additionalProperties && typeof node.additionalProperties === 'object') visit(node.additionalProperties as JsonSchema, `${path}.*`);
    const properties = node.properties as Record<string, JsonSchema> | undefined;
    for (const [key, child] of Object.entries(properties ?? {})) {
      const childPath = path ? `${path}.${key}` : key;
      const description = descriptions[childPath];
      if (description === undefined) throw new Error(`${what}: no description for "${childPath}" in src/config/json-schema.ts`);
      used.add(childPath);
      properties![key] = { description, ...child };
      visit(properties![key], childPath);
    }
  };
  visit(root, '');
  const stale = Object.keys(descriptions).filter((k) => !used.has(k));
  if (stale.length > 0) throw new Error(`${what}: descriptions for keys the schema does not have: ${stale.join(', ')}`);
}

/**
 * draft-07, the newest draft the YAML language server (VS Code's YAML extension) fully
 * supports. "input" so that keys with defaults are optional, as they are in the files.
 */
function generate(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, { io: 'input', target: 'draft-07' }) as JsonSchema;
}

function finish(schema: JsonSchema, head: { $id: string; title: string; description: string }): JsonSchema {
  const { $schema, ...rest } = schema;
  return { $schema, ...head, ...rest };
}

export function policyJsonSchema(): JsonSchema {
  const schema = generate(policySchema);
  addDescriptions(schema, policyDescriptions, 'policy schema');
  return finish(schema, {
    $id: 'urn:ormai-proxy:policy.schema.json',
    title: 'OrmAI Proxy policy file',
    description: 'What an agent may see and do through the proxy. Unknown keys are errors. See "Policy files" in README.md.',
  });
}

export function configJsonSchema(): JsonSchema {
  const schema = generate(configSchema);
  // auth.jwt is z.unknown() in the config schema (the JWT module validates it when it starts);
  // editors get the JWT module's own schema. Its cross-field rules (secret_file for HS*,
  // public_key_file for the others) are only in the descriptions.
  const auth = (schema.properties as Record<string, JsonSchema>).auth;
  const authProperties = auth.properties as Record<string, JsonSchema>;
  if (Object.keys(authProperties.jwt).length !== 0) throw new Error('config schema: auth.jwt is no longer z.unknown(); drop the substitution in src/config/json-schema.ts');
  const { $schema: _, ...jwt } = generate(jwtConfigSchema);
  authProperties.jwt = jwt;
  addDescriptions(schema, configDescriptions, 'config schema');
  return finish(schema, {
    $id: 'urn:ormai-proxy:ormai.schema.json',
    title: 'OrmAI Proxy configuration (ormai.yaml)',
    description: 'The proxy\'s own configuration. Unknown keys are errors; relative paths are resolved against this file\'s directory. See "Configuration" in README.md.',
  });
}

/** The generated files, by name under config/. */
export function jsonSchemaFiles(): Record<string, string> {
  const render = (schema: JsonSchema) => `${JSON.stringify(schema, null, 2)}\n`;
  return { 'policy.schema.json': render(policyJsonSchema()), 'ormai.schema.json': render(configJsonSchema()) };
}
