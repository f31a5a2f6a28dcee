// What a session needs of the audit trail, and the AuditLog seen through it.
import type { AuditEvent } from './event';
import type { AuditLog } from './log';

export interface AuditPort {
  emit(event: Omit<AuditEvent, 'id' | 'time'>): AuditEvent;
  /** Settles when every sink holds the event; rejects when one cannot. */
  durable(event: AuditEvent): Promise<void>;
  acceptsWrites(): boolean;
  acceptsReads(): boolean;
  /** durable (default): a write commits and is acknowledged only once its event is persisted; async: queued is enough. */
  readonly writeGuarantee?: 'durable' | 'async';
  /** False while the session's own events fill its share of the queue (per-session back-pressure). */
  acceptsSession?(sessionId: string): boolean;
  /**
   * The statement text as the audit trail keeps it (literals redacted unless configured
   * otherwise) and its keyed hash. `parsed`: the proxy's analysis parsed the text.
   */
  text(sql: string, parsed?: boolean): { sql: string; sql_hmac: string };
  /** The keyed hash of a text alone. */
  hmac?(sql: string): string;
  /** Literals are redacted (audit.redact_literals): texts of one shape then read the same. */
  readonly redacts?: boolean;
}

export function auditPort(log: AuditLog): AuditPort {
  return {
    emit: (event) => log.emit(event),
    durable: (event) => log.durable(event),
    acceptsWrites: () => log.acceptsWrites(),
    acceptsReads: () => log.acceptsReads(),
    writeGuarantee: log.writeGuarantee,
    acceptsSession: (sessionId) => log.acceptsSession(sessionId),
    text: (sql, parsed = false) => ({ sql: log.text.sql(sql, parsed), sql_hmac: log.text.hmac(sql) }),
    hmac: (sql) => log.text.hmac(sql),
    redacts: log.text.redactLiterals,
  };
}
