// The one catalogue of errors the proxy sends to clients: code, SQLSTATE, message, hint.
//
// Every error a client sees from the proxy itself is a ProxyError built from an entry
// here. The policy code is machine-readable in three places of the ErrorResponse: as
// the message prefix (`code: text`), and in the routine field (`ormai.<code>`), which
// drivers expose as `err.routine`. Hints are written for an LLM agent: what to do
// instead, never which hidden names exist.

export type Severity = 'ERROR' | 'FATAL';

export interface CatalogueEntry {
  sqlstate: string;
  severity: Severity;
  /** Default client message; a constructor may give a more specific one. */
  message: string;
  hint: string;
}

export const catalogue = {
  statement_not_allowed: {
    sqlstate: '42501',
    severity: 'ERROR',
    message: 'this kind of statement is not allowed through the proxy',
    hint: 'Only SELECT, INSERT, UPDATE, DELETE, transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT) and SET/SHOW of a few harmless settings are allowed. Rewrite the request as one of those.',
  },
  setting_not_allowed: {
    sqlstate: '42501',
    severity: 'ERROR',
    message: 'this setting cannot be changed or read through the proxy',
    hint: 'Allowed settings: application_name, DateStyle, IntervalStyle, TimeZone, extra_float_digits, bytea_output, client_min_messages, lock_timeout, default_transaction_isolation, statement_timeout (lower only) and idle_in_transaction_session_timeout (lower only, when the policy sets idle_in_transaction_timeout_ms); RESET ALL returns to the values the proxy sets. The session role, search_path, encoding and read-only mode belong to the proxy.',
  },
  statement_timeout_raise: {
    sqlstate: '42501',
    severity: 'ERROR',
    message: 'statement_timeout may only be lowered',
    hint: 'The policy sets the maximum statement_timeout; choose a value at or below it, or make the query cheaper (add a selective WHERE clause or a LIMIT).',
  },
  syntax_error: {
    sqlstate: '42601',
    severity: 'ERROR',
    message: 'syntax error',
    hint: 'The statement could not be parsed with the PostgreSQL grammar. Check quoting and keywords, and send one statement at a time.',
  },
  statement_not_understood: {
    sqlstate: '0A000',
    severity: 'ERROR',
    message: 'the statement uses a form the proxy cannot check safely',
    hint: 'Rewrite the statement in a simpler form (plain SELECT with joins and subqueries, or a single-table INSERT/UPDATE/DELETE).',
  },
  model_writes_disabled: {
    sqlstate: '42501',
    severity: 'ERROR',
    message: 'writes of this kind are not enabled for this table',
    hint: 'The policy does not allow this operation on this table. Read the data instead, or ask a human operator to make the change.',
  },
  function_not_allowed: {
    sqlstate: '42501',
    severity: 'ERROR',
    message: 'this function is not allowed through the proxy',
    hint: 'Use standard SQL functions for math, text, dates, JSON, arrays, aggregates and window functions; session, system and administration functions are not available.',
  },
  join_depth_exceeded: {
    sqlstate: '54000',
    severity: 'ERROR',
    message: 'the query joins more tables than the policy allows',
    hint: 'Join fewer tables in one query, or split the question into several queries.',
  },
  model_not_allowed: {
    sqlstate: '42P01',
    severity: 'ERROR',
    message: 'relation does not exist',
    hint: 'Only the tables listed by SELECT table_schema, table_name FROM information_schema.tables are available; use one of those.',
  },
  catalog_not_allowed: {
    sqlstate: '42501',
    severity: 'ERROR',
    message: 'system catalogs are not available through the proxy',
    hint: "System catalogs are not available; list tables with SELECT table_name FROM information_schema.tables and columns with SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '…'.",
  },
  startup_parameter_not_allowed: {
    sqlstate: '42501',
    severity: 'FATAL',
    message: 'startup parameter not allowed',
    hint: 'Connect with only user, database, application_name and harmless client settings (DateStyle, TimeZone, extra_float_digits, client_encoding=UTF8). Session settings such as role, search_path or options are controlled by the proxy.',
  },
  invalid_startup_parameter: {
    sqlstate: '22023',
    severity: 'FATAL',
    message: 'invalid value for a startup parameter',
    hint: 'Fix or drop that setting in the connection string (options=-c …, TimeZone, DateStyle, IntervalStyle, …) and connect again; the server did not accept its value.',
  },
  database_not_found: {
    sqlstate: '3D000',
    severity: 'FATAL',
    message: 'database does not exist',
    hint: 'Use the database name from the connection string the operator gave you.',
  },
  authentication_failed: {
    sqlstate: '28P01',
    severity: 'FATAL',
    message: 'password authentication failed',
    hint: 'Check the user name and password (or token) in the connection string.',
  },
  authentication_method_not_supported: {
    sqlstate: '28000',
    severity: 'FATAL',
    message: 'the client did not complete the requested authentication method',
    hint: 'Use a driver that supports SCRAM-SHA-256 or cleartext password authentication.',
  },
  principal_has_no_policy: {
    sqlstate: '28000',
    severity: 'FATAL',
    message: 'no policy applies to this user',
    hint: 'Ask the operator to give this user a role that a mounted policy accepts.',
  },
  ssl_required: {
    sqlstate: '28000',
    severity: 'FATAL',
    message: 'this connection must use TLS',
    hint: 'Connect with sslmode=require (or stronger).',
  },
  too_many_connections: {
    sqlstate: '53300',
    severity: 'FATAL',
    message: 'too many client connections to the proxy',
    hint: 'Close idle connections or retry later; the proxy limits concurrent client connections.',
  },
  protocol_violation: {
    sqlstate: '08P01',
    severity: 'FATAL',
    message: 'invalid frontend message',
    hint: 'The client sent bytes that are not a valid PostgreSQL protocol 3.0 message. Use a standard PostgreSQL driver.',
  },
  message_too_large: {
    sqlstate: '08P01',
    severity: 'FATAL',
    message: 'message exceeds the maximum size',
    hint: 'Send smaller statements and parameters; the proxy limits the size of one protocol message.',
  },
  unsupported_protocol: {
    sqlstate: '0A000',
    severity: 'FATAL',
    message: 'unsupported frontend protocol',
    hint: 'Connect with protocol version 3.0 (any current PostgreSQL driver does).',
  },
  upstream_unavailable: {
    sqlstate: '08006',
    severity: 'FATAL',
    message: 'the database behind the proxy is not reachable',
    hint: 'This is temporary: reconnect in a few seconds. If it persists, tell the operator.',
  },
  upstream_lost: {
    sqlstate: '08006',
    severity: 'FATAL',
    message: 'the connection to the database behind the proxy was lost',
    hint: 'Reconnect and retry the statement; an open transaction was rolled back.',
  },
  proxy_shutting_down: {
    sqlstate: '57P01',
    severity: 'FATAL',
    message: 'the proxy is shutting down',
    hint: 'Reconnect in a few seconds and retry; an open transaction was rolled back.',
  },
  field_not_writable: {
    sqlstate: '42703',
    severity: 'ERROR',
    message: 'this column cannot be written',
    hint: 'Assign only the columns listed for this table in information_schema.columns.',
  },
  tenant_forged: {
    sqlstate: '42501',
    severity: 'ERROR',
    message: 'the statement names another tenant',
    hint: 'Leave the tenant column out: the proxy fills it in from your credentials.',
  },
  column_count_mismatch: {
    sqlstate: '42601',
    severity: 'ERROR',
    message: 'INSERT has more expressions than target columns',
    hint: 'Give exactly one value per listed column, in every VALUES row and in the SELECT list (in each branch of a UNION, INTERSECT or EXCEPT). Leave the tenant column out: the proxy sets it.',
  },
  column_not_found: {
    sqlstate: '42703',
    severity: 'ERROR',
    message: 'column does not exist',
    hint: 'Use only the columns listed for this table in information_schema.columns; in a write, qualify columns of other tables with their alias.',
  },
  field_masked: {
    sqlstate: '42501',
    severity: 'ERROR',
    message: 'a masked column cannot be used in this part of a write',
    hint: 'Masked columns may be assigned and returned, not read into conditions or other columns. Filter on an id or another unmasked column instead.',
  },
  reason_required: {
    sqlstate: '42501',
    severity: 'ERROR',
    message: 'this write needs a reason',
    hint: "Put the reason in a comment at the start of the statement, e.g. /*reason='Customer asked to cancel order 7'*/ INSERT INTO … (URL-encode quotes and commas, as sqlcommenter does).",
  },
  max_affected_rows_exceeded: {
    sqlstate: '54000',
    severity: 'ERROR',
    message: 'the write would change more rows than the policy allows',
    hint: 'Narrow the WHERE clause (for example to a list of ids) and split the change into several smaller writes.',
  },
  pending_approval: {
    sqlstate: '55000',
    severity: 'ERROR',
    message: 'the write is held for approval',
    hint: 'Do not send it again: a human must approve it, and the proxy then runs it once. Tell the user the approval id; its state is in SELECT * FROM ormai.approvals.',
  },
  approval_required: {
    sqlstate: '55000',
    severity: 'ERROR',
    message: 'a require_approval rule holds this write as PostgreSQL runs it, though it did not when the proxy judged it: nothing was written',
    hint: 'The rows or values it picks depend on the session (DateStyle, TimeZone), the time, or writes running at the same moment. Send it again, choosing rows by their ids and assigning plain values; if it needs approval then, it is held.',
  },
  approval_limit_reached: {
    sqlstate: '53400',
    severity: 'ERROR',
    message: 'as many writes of this tenant wait for approval as the proxy allows',
    hint: 'Do not send more writes that need approval until the pending ones are decided; their states are in SELECT * FROM ormai.approvals.',
  },
  write_rate_limited: {
    sqlstate: '53400',
    severity: 'ERROR',
    message: 'the write budget for this minute is used up',
    hint: 'Wait and retry after the time given; combine several rows into one INSERT or one UPDATE … WHERE id IN (…).',
  },
  reference_not_found: {
    sqlstate: '23503',
    severity: 'ERROR',
    message: 'the write refers to a row that does not exist',
    hint: 'Use the id of a row you can read (SELECT it first); rows of other tenants do not exist for you.',
  },
  prepared_statement_outdated: {
    sqlstate: '0A000',
    severity: 'ERROR',
    message: 'the policy changed since this statement was prepared',
    hint: 'Prepare the statement again (or reconnect): it is checked against the policy now in force.',
  },
  prepared_statement_not_found: {
    sqlstate: '26000',
    severity: 'ERROR',
    message: 'prepared statement does not exist',
    hint: 'Prepare the statement again (Parse or PREPARE) before binding or executing it; a failed Parse or PREPARE, a Close, DEALLOCATE or DISCARD ALL leaves no statement of that name.',
  },
  portal_not_found: {
    sqlstate: '34000',
    severity: 'ERROR',
    message: 'portal does not exist',
    hint: 'Bind the statement again before executing it: portals end with their transaction, and a failed Bind or an error in the transaction leaves none.',
  },
  session_limit_exceeded: {
    sqlstate: '54000',
    severity: 'ERROR',
    message: 'the session holds as many prepared statements or portals as the proxy allows',
    hint: 'Close (or DEALLOCATE) prepared statements and portals that are no longer needed, or reuse the unnamed statement; nothing was run.',
  },
  statement_deadline_exceeded: {
    sqlstate: '57014',
    severity: 'FATAL',
    message: 'the statement ran past the policy\'s statement_timeout and did not stop when cancelled',
    hint: 'Reconnect and send a cheaper statement: fewer CTEs, joins or nested subqueries (PostgreSQL cannot interrupt some planning work), or filter earlier.',
  },
  type_not_allowed: {
    sqlstate: '42704',
    severity: 'ERROR',
    message: 'type does not exist',
    hint: 'Cast only to built-in types such as text, integer, bigint, numeric, boolean, date, timestamp, interval, uuid, json and jsonb.',
  },
  scan_budget_exceeded: {
    sqlstate: '54000',
    severity: 'ERROR',
    message: 'the statement would scan more rows than the policy allows',
    hint: 'Add a selective filter on an indexed column (for example an id or a date range), aggregate less data, or add a LIMIT without an ORDER BY on an unindexed column.',
  },
  budget_unavailable: {
    sqlstate: '57P03',
    severity: 'ERROR',
    message: 'the scan budget could not be checked right now',
    hint: 'Retry in a few seconds; the proxy could not reach the database planner to check the statement.',
  },
  query_rate_limited: {
    sqlstate: '53400',
    severity: 'ERROR',
    message: "the tenant's statement budget for this minute is used up",
    hint: 'Wait until the next minute and retry; combine several small queries into one (joins, IN lists, aggregates).',
  },
  invalid_tenant: {
    sqlstate: '28000',
    severity: 'FATAL',
    message: "the credential's tenant does not fit the policy's tenant type",
    hint: 'Ask the operator to check the tenant_id of this user or token against the policy tenant_scope.type.',
  },
  internal_error: {
    sqlstate: 'XX000',
    severity: 'ERROR',
    message: 'internal proxy error',
    hint: 'Retry once; if it happens again, tell the operator (the proxy log has the details).',
  },
  rate_store_unavailable: {
    sqlstate: '57P03',
    severity: 'ERROR',
    message: 'the shared rate-limit store is not reachable',
    hint: 'Retry in a few seconds; nothing was run. If it keeps happening, tell the operator that the rate-limit store (Redis) is down.',
  },
  audit_unavailable: {
    sqlstate: '57P03',
    severity: 'ERROR',
    message: 'the audit trail is not available',
    hint: 'Retry shortly: the proxy refuses writes while it cannot record them. If it keeps happening, tell the operator that the audit sink is down.',
  },
  policy_removed: {
    sqlstate: '55000',
    severity: 'ERROR',
    message: 'the policy this session was opened under has been removed',
    hint: 'Nothing was run. Disconnect and connect again: a new session gets the policy that now applies to this user, if any.',
  },
  statement_too_large: {
    sqlstate: '54000',
    severity: 'ERROR',
    message: 'the statement text exceeds the maximum size',
    hint: 'Nothing was run. Send a shorter statement: pass long value lists as one array parameter (WHERE id = ANY($1)) or split the work into several statements.',
  },
  statement_too_complex: {
    sqlstate: '54001',
    severity: 'ERROR',
    message: 'the statement is too complex to be checked',
    hint: 'Nothing was run. Simplify the statement: fewer nested parentheses or chained operators, fewer terms or CTEs, or fewer statements in one message; long value lists fit in one array parameter (= ANY($1)).',
  },
  analysis_unavailable: {
    sqlstate: '53000',
    severity: 'ERROR',
    message: 'the proxy cannot check statements right now',
    hint: 'Nothing was run. The statement checker is restarting; retry the same statement in a moment.',
  },
  authentication_timeout: {
    sqlstate: '08006',
    severity: 'FATAL',
    message: 'authentication did not complete in time',
    hint: 'Complete the startup and authentication exchange promptly after connecting; the proxy closes connections that stay unauthenticated.',
  },
  tool_unknown: {
    sqlstate: '42883',
    severity: 'ERROR',
    message: 'no tool of this name',
    hint: 'Call one of the tools the server lists (tools/list): db.describe_schema, db.query, db.get, db.aggregate, db.sql, and the write tools (db.create, db.update, db.delete) your policy enables.',
  },
  tool_arguments_invalid: {
    sqlstate: '22023',
    severity: 'ERROR',
    message: 'the tool arguments are not valid',
    hint: "Fix the arguments the message names and call the tool again; the tool's input schema lists every argument, and db.describe_schema lists the models and their fields.",
  },
  result_too_large: {
    sqlstate: '54000',
    message: 'the result is too large for a tool call',
    hint: 'Ask for less: select only the fields you need, add a where filter or a smaller limit, or use db.aggregate to summarise.',
    severity: 'ERROR',
  },
  call_abandoned: {
    sqlstate: '57014',
    message: 'the caller left while the call waited for a session: it was not run',
    hint: 'Wait for the answer of each call before giving up on it; a call sent again after its caller left runs once, not twice.',
    severity: 'ERROR',
  },
  row_not_found: {
    sqlstate: 'P0002',
    message: 'no row with this id',
    hint: 'The id names no row of this model in your tenant (or a row the policy hides). List the rows with db.query to find the right id.',
    severity: 'ERROR',
  },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof catalogue;

export interface ProxyErrorOptions {
  message?: string;
  detail?: string;
  hint?: string;
  /** Goes to the log only, never to the client. */
  logMessage?: string;
  /** 1-based character position in the statement, as in ErrorResponse 'P'. */
  position?: number;
}

export class ProxyError extends Error {
  readonly code: ErrorCode;
  readonly sqlstate: string;
  readonly severity: Severity;
  readonly hint: string;
  readonly detail?: string;
  readonly logMessage?: string;
  readonly position?: number;

  constructor(code: ErrorCode, opts: ProxyErrorOptions = {}) {
    const entry: CatalogueEntry = catalogue[code];
    super(opts.message ?? entry.message);
    this.name = 'ProxyError';
    this.code = code;
    this.sqlstate = entry.sqlstate;
    this.severity = entry.severity;
    this.hint = opts.hint ?? entry.hint;
    this.detail = opts.detail;
    this.logMessage = opts.logMessage;
    this.position = opts.position;
  }

  /** The fields of the ErrorResponse a client receives. */
  toFields(): ErrorFields {
    const fields: ErrorFields = {
      severity: this.severity,
      code: this.sqlstate,
      message: `${this.code}: ${this.message}`,
      hint: this.hint,
      routine: `ormai.${this.code}`,
    };
    if (this.detail !== undefined) fields.detail = this.detail;
    if (this.position !== undefined) fields.position = String(this.position);
    return fields;
  }
}

/** ErrorResponse / NoticeResponse fields, named as in the protocol documentation. */
export interface ErrorFields {
  severity: string;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  position?: string;
  routine?: string;
}

/** Any exception becomes a ProxyError; unexpected ones become XX000 without internals. */
export function toProxyError(err: unknown): ProxyError {
  if (err instanceof ProxyError) return err;
  const logMessage = err instanceof Error ? err.stack ?? err.message : String(err);
  return new ProxyError('internal_error', { logMessage });
}
