// The audit event: one per statement the agent sends, per connection event, and per approval step — the record I7 promises.
//
// Field names are snake_case because events leave the process as JSON lines and table rows.
// Statement text is stored with its literals redacted (`$1`-style placeholders in their place)
// unless the operator asks for raw text; a keyed hash of the raw text is always kept, so that a
// text shown later can be proven to be (or not to be) the one the agent sent.

export type AuditKind = 'statement' | 'connection' | 'approval' | 'tool';

export type AuditDecision =
  /** statement */
  | 'allowed'
  | 'refused'
  | 'held'
  | 'error'
  /** approval */
  | 'approved'
  | 'denied'
  | 'expired'
  | 'executed'
  | 'failed'
  | 'rolled_back'
  /** connection */
  | 'login'
  | 'login_failed'
  | 'disconnect';

export interface AuditPrincipal {
  user: string;
  tenant_id: string;
  roles: string[];
}

/** One changed row of a write: its key, and the changed columns before and after (DELETE: the row's visible columns before). */
export interface AuditRowChange {
  key: Record<string, unknown>;
  before?: Record<string, unknown>;
  after?: Record<string, unknown>;
}

export interface AuditChanges {
  /** `schema.table` */
  table: string;
  operation: 'insert' | 'update' | 'delete';
  /** The table's tenant column: the rows are the event principal's tenant's (a rollback touches no other). */
  tenant_column?: string;
  /**
   * The session's DateStyle, IntervalStyle and TimeZone when the values were captured: their text
   * reads back as the same values only under the same settings (a rollback sets them). `unknown`:
   * captured while a change of them was not yet reported (in the same batch); not reversible.
   */
  settings?: Record<string, string>;
  rows: AuditRowChange[];
  /** True when more rows changed than were captured (the capture is bounded). */
  truncated?: boolean;
}

export interface AuditEvent {
  /** ULID: sorts by time. */
  id: string;
  /** ISO 8601, UTC. */
  time: string;
  kind: AuditKind;
  decision: AuditDecision;
  session_id?: string;
  principal?: AuditPrincipal;
  policy?: { name: string; hash: string };
  /** read, write, transaction, session; 'unknown' when the text did not parse. */
  statement_kind?: string;
  protocol?: 'simple' | 'extended';
  /** The agent's text, literals redacted unless configured otherwise. */
  sql?: string;
  /** HMAC-SHA256 of the agent's raw text, keyed with the audit key. */
  sql_hmac?: string;
  /** The text the proxy sent upstream (literals redacted likewise). */
  rewritten_sql?: string;
  /** The policy code of a refusal (e.g. model_not_allowed), or the SQLSTATE of a database error. */
  code?: string;
  message?: string;
  rows?: number;
  duration_ms?: number;
  reason?: string;
  trace_id?: string;
  tool_call_id?: string;
  /** A statement run for a tool call (docs/tools.md): the tool and its arguments, values replaced by $n. */
  tool?: { name: string; arguments: unknown };
  flags?: string[];
  approval_id?: string;
  /** For approval events: who approved, denied or ran it. */
  actor?: string;
  /** For an approval or a denial: the note its author gave. */
  note?: string;
  /** For an approved write's execution (executed, failed): everyone who approved it. */
  approvers?: string[];
  changes?: AuditChanges;
  /** For a rollback: the id of the write event it reverts. */
  rolls_back?: string;
  /**
   * For a transaction that ended without committing: the write events it undid (their changes never
   * stayed; a rollback of one of them is refused).
   */
  undoes?: string[];
  /** Write events of that transaction past the first 1,000, which `undoes` does not list. */
  undoes_more?: number;
  /**
   * With undoes_more: the first and the last write event undone. Every write event of the same
   * session whose id lies between them (ids grow with time within a proxy) is one of them.
   */
  undoes_range?: [string, string];
  /** The client's address for connection events. */
  client?: string;
}

/** The session settings a captured value's text depends on, as ParameterStatus names them (AuditChanges.settings). */
export const CAPTURE_SETTINGS: readonly string[] = ['DateStyle', 'IntervalStyle', 'TimeZone'];
