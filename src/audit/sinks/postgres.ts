// The postgres sink: events in batches into a table over the sink's own connection, one committed INSERT per batch.
import { Client, type ClientConfig } from 'pg';
import { silentLogger, type Logger } from '../../log';
import { ownTableName, type TableName } from '../../upstream/table-name';
import type { ChainHead } from '../chain';
import type { AuditEvent } from '../event';
import { errorSummary, type AuditSink } from '../sink';

export const DEFAULT_AUDIT_TABLE = 'ormai_audit';
/** `table` or `schema.table`, each part a plain identifier (checked, then quoted); the schema defaults to public. */
export function auditTableName(name: string): TableName {
  return ownTableName(name, 'audit table');
}

/** The table, for operators who create it themselves (then the sink's role needs INSERT only). */
export function auditTableDdl(name: string): string[] {
  const { table, qualified } = auditTableName(name);
  return [
    `CREATE TABLE IF NOT EXISTS ${qualified} (
      id text PRIMARY KEY,
      "time" timestamptz NOT NULL,
      kind text NOT NULL,
      decision text NOT NULL,
      session_id text,
      principal_user text,
      tenant_id text,
      policy_name text,
      policy_hash text,
      statement_kind text,
      code text,
      "rows" bigint,
      duration_ms double precision,
      trace_id text,
      tool_call_id text,
      approval_id text,
      event jsonb NOT NULL,
      inserted_at timestamptz NOT NULL DEFAULT now()
    )`,
    `CREATE INDEX IF NOT EXISTS "${table}_time_idx" ON ${qualified} ("time")`,
    `CREATE INDEX IF NOT EXISTS "${table}_tenant_time_idx" ON ${qualified} (tenant_id, "time")`,
    ...headsTableDdl(name),
  ];
}

/** The heads of the proxies' hash-chained audit files (heads.ts): `<table>_heads` beside the events. */
export function headsTableName(name: string): TableName {
  const { schema, table } = auditTableName(name);
  return auditTableName(`${schema}.${table}_heads`);
}

function headsTableDdl(name: string): string[] {
  const { qualified } = headsTableName(name);
  return [
    `CREATE TABLE IF NOT EXISTS ${qualified} (
      source text NOT NULL,
      hash text NOT NULL,
      event_id text,
      event_time timestamptz,
      published_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (source, hash)
    )`,
  ];
}

/**
 * One parameter, the batch as a JSON array, unpacked by the server: the statement text is the
 * same for every batch size. ON CONFLICT DO NOTHING makes a retry harmless when the COMMIT of
 * a batch happened but its acknowledgement was lost (id is the only unique key). Without a
 * conflict target it needs no privilege beyond INSERT; naming (id) would need SELECT on it.
 */
function insertSql(qualified: string): string {
  return `
    INSERT INTO ${qualified} (id, "time", kind, decision, session_id, principal_user, tenant_id, policy_name, policy_hash,
                              statement_kind, code, "rows", duration_ms, trace_id, tool_call_id, approval_id, event)
    SELECT e->>'id', (e->>'time')::timestamptz, e->>'kind', e->>'decision', e->>'session_id',
           e->'principal'->>'user', e->'principal'->>'tenant_id', e->'policy'->>'name', e->'policy'->>'hash',
           e->>'statement_kind', e->>'code', (e->>'rows')::bigint, (e->>'duration_ms')::float8,
           e->>'trace_id', e->>'tool_call_id', e->>'approval_id', e
      FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS b(e, n)
     ORDER BY n
    ON CONFLICT DO NOTHING`;
}

/**
 * jsonb cannot hold U+0000, and one event it refuses would stop the sink for good (the batch is
 * retried as is), so the character becomes U+FFFD here; the other sinks keep it.
 */
function withoutNul(_key: string, value: unknown): unknown {
  return typeof value === 'string' && value.includes('\0') ? value.replace(/\0/g, '\uFFFD') : value;
}

export interface PostgresSinkOptions {
  /** Connection settings: adminClientConfig of the upstream, or of audit's own URL. */
  client: ClientConfig;
  /** `table` or `schema.table`. Default: ormai_audit in public. */
  table?: string;
  /** A batch not committed within this counts as a failure (and is retried). Default: 10000 ms. */
  queryTimeoutMs?: number;
  log?: Logger;
}

export class PostgresSink implements AuditSink {
  readonly name: string;
  private readonly tableName: ReturnType<typeof auditTableName>;
  private readonly headsName: TableName;
  private readonly config: ClientConfig;
  private readonly log: Logger;
  private client?: Client;
  private connecting?: Promise<Client>;

  constructor(options: PostgresSinkOptions) {
    this.tableName = auditTableName(options.table ?? DEFAULT_AUDIT_TABLE);
    this.headsName = headsTableName(options.table ?? DEFAULT_AUDIT_TABLE);
    this.name = `postgres:${this.tableName.schema}.${this.tableName.table}`;
    this.config = { ...options.client, query_timeout: options.queryTimeoutMs ?? 10_000 };
    this.log = options.log ?? silentLogger;
  }

  open(): Promise<void> {
    return this.connection().then(() => undefined);
  }

  private connection(): Promise<Client> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(): Promise<Client> {
    const client = new Client(this.config);
    // A lost connection must not crash the process; the next batch reconnects.
    client.on('error', (err) => {
      this.log.warn({ sink: this.name, ...errorSummary(err) }, 'audit database connection lost');
      this.discard(client);
    });
    try {
      await client.connect();
      await this.ensureTable(client);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    this.client = client;
    return client;
  }

  /**
   * Creates the table when it is missing and the role may create it. An INSERT-only role
   * finds it made by an operator (auditTableDdl); CREATE TABLE IF NOT EXISTS is not even tried
   * then, since it needs CREATE on the schema whether or not the table exists.
   */
  private async ensureTable(client: Client): Promise<void> {
    const { schema, qualified } = this.tableName;
    const { rows } = await client.query<{ present: boolean; heads: boolean; may_create: boolean }>(
      `SELECT to_regclass($1::text) IS NOT NULL AS present, to_regclass($3::text) IS NOT NULL AS heads,
              CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $2::text)
                   THEN has_schema_privilege($2::text, 'CREATE') ELSE false END AS may_create`,
      [qualified, schema, this.headsName.qualified],
    );
    if (rows[0].present && (rows[0].heads || !rows[0].may_create)) return;
    if (!rows[0].may_create) throw new Error(`audit table ${this.name.slice('postgres:'.length)} does not exist and this role may not create it`);
    // Sidecars starting together would race on CREATE TABLE IF NOT EXISTS (a duplicate pg_type row).
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`ormai-proxy audit ${qualified}`]);
      for (const ddl of auditTableDdl(`${schema}.${this.tableName.table}`)) await client.query(ddl);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  /** One statement in autocommit: it has committed when the server answers. */
  async write(batch: readonly AuditEvent[]): Promise<void> {
    const client = await this.connection();
    try {
      await client.query(insertSql(this.tableName.qualified), [JSON.stringify(batch, withoutNul)]);
    } catch (err) {
      // Whatever went wrong (a cut connection, a timeout), the retry starts on a fresh one.
      this.discard(client);
      throw err;
    }
  }

  /** Records a file chain's head (heads.ts); a head published twice is kept once. */
  async publishHead(source: string, head: ChainHead): Promise<void> {
    const client = await this.connection();
    await client.query(
      `INSERT INTO ${this.headsName.qualified} (source, hash, event_id, event_time) VALUES ($1, $2, $3, $4::timestamptz) ON CONFLICT DO NOTHING`,
      [source, head.hash, head.event_id ?? null, head.event_time ?? null],
    );
  }

  private discard(client: Client): void {
    if (this.client === client) this.client = undefined;
    client.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    const client = this.client ?? (await this.connecting?.catch(() => undefined));
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
