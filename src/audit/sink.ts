// What every audit destination implements, the error that tells a caller the trail is down, and safe error summaries.
import { ProxyError } from '../errors/catalogue';
import type { AuditEvent } from './event';

/**
 * One destination of the audit trail. The log hands each sink its events in emission order,
 * one batch at a time, never two batches at once; a rejected batch is retried as is.
 */
export interface AuditSink {
  /** Names the sink in stats, metrics and logs: never a URL or anything secret. */
  readonly name: string;
  /**
   * Resolves once the whole batch is persisted: written (stdout), fsynced (file), committed
   * (postgres). A rejection must leave nothing that a retry of the same batch would corrupt.
   * `sync` false, only for a sink with sync(): the batch may be left written but not persisted,
   * until sync() or a later write with `sync` persists it with everything written before it.
   */
  write(batch: readonly AuditEvent[], sync?: boolean): Promise<void>;
  /**
   * Persists every batch written with `sync` false (a file's fsync). A rejection of sync() or of
   * any write must leave the sink as it was after its last persisted batch: the caller then
   * writes everything after that again.
   */
  sync?(): Promise<void>;
  /** Prepares the sink (opens the file, connects, creates the table) so that its health is known before the first event. */
  open?(): Promise<void>;
  close(): Promise<void>;
}

/** Why an event could not be made durable. */
export type UnavailableReason = 'sink_down' | 'queue_full' | 'timeout' | 'closed';

const REASON_TEXT: Record<UnavailableReason, string> = {
  sink_down: 'an audit sink is down',
  queue_full: 'the audit queue is full',
  timeout: 'an audit sink did not confirm the event in time',
  closed: 'the audit log is closed',
};

/**
 * The audit trail cannot vouch for an event. It is a ProxyError with code audit_unavailable, so
 * a session that refuses a write by throwing it sends the agent the catalogue's message and hint;
 * the reason and sink go to the proxy's log only.
 */
export class AuditUnavailableError extends ProxyError {
  readonly reason: UnavailableReason;
  readonly sink?: string;

  constructor(reason: UnavailableReason, sink?: string) {
    super('audit_unavailable', { logMessage: `${REASON_TEXT[reason]}${sink ? ` (${sink})` : ''}` });
    this.name = 'AuditUnavailableError';
    this.reason = reason;
    this.sink = sink;
  }
}

/** SQLSTATE classes whose messages name objects and roles, never the values of a row: connection, auth, access, resources, operator. */
const SAFE_SQLSTATE_CLASSES = new Set(['08', '28', '3D', '3F', '42', '53', '55', '57', '58']);

/**
 * What a sink failure may put in the proxy's log. A data error's message or detail can quote
 * the value it refused (event values, hence SQL), so for other SQLSTATE classes only the code
 * is kept; socket and file errors carry their errno code and message, which name no event data.
 */
export function errorSummary(err: unknown): { code?: string; err: string } {
  if (!(err instanceof Error)) return { err: 'non-error thrown' };
  const e = err as Error & { code?: unknown; severity?: unknown };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const fromDatabase = typeof e.severity === 'string' && code !== undefined && /^[0-9A-Z]{5}$/.test(code);
  if (fromDatabase && !SAFE_SQLSTATE_CLASSES.has(code.slice(0, 2))) return { code, err: `database error ${code}` };
  return { code, err: e.message };
}

/** Exponential backoff with jitter between retries of a failed sink, so that several sidecars do not retry in step. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}
