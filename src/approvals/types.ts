// The approvals model: a held write, its lifecycle states, the store interface every backend implements, and its typed refusals.
import type { CapturePlan } from '../analysis/rewrite/capture';
import type { AuditChanges } from '../audit/event';

export type ApprovalState = 'pending' | 'approved' | 'denied' | 'expired' | 'executed' | 'failed';

export const APPROVAL_STATES: readonly ApprovalState[] = ['pending', 'approved', 'denied', 'expired', 'executed', 'failed'];

export interface Requester {
  user: string;
  tenantId: string;
  roles: string[];
}

/** What the write path hands over when a write is held for approval. */
export interface ApprovalRequest {
  requester: Requester;
  policy: { name: string; hash: string };
  /** The rule that matched, for humans, e.g. "update orders when affected_rows > 50". */
  rule: string;
  operation: 'create' | 'update' | 'delete';
  model: string;
  reason?: string;
  /** The agent's text, as received. */
  originalSql: string;
  /** The rewritten statement the proxy executes once approved; never the agent's text. */
  statementSql: string;
  /** Text-format parameter values ($1..); empty for the simple protocol. Never logged. */
  params: Array<string | null>;
  /**
   * Where the before/after capture columns that `statementSql` appends to RETURNING land in the
   * audit record (analysis/rewrite/capture.ts), as for a direct write; absent when the write
   * captures nothing (no visible primary key, ON CONFLICT DO UPDATE).
   */
  capture?: CapturePlan;
  /** Dry-run result (rows before/after); must be JSON-serialisable. */
  preview?: unknown;
  /**
   * The dry run's statement (one JSON value, with the write's parameters): the executor reads it
   * again in the write's own snapshot, and an UPDATE or DELETE whose rows are no longer the ones
   * shown does not run.
   */
  previewSql?: string;
  /**
   * An UPDATE's or DELETE's rows as the approvers agreed to them, every one and not only the 100
   * the preview lists: the hash `previewDigestSql` gave (ApprovalNeed.previewDigestSql), which the
   * executor reads again in the write's snapshot.
   */
  previewDigestSql?: string;
  previewDigest?: string;
  /** An UPDATE's assigned columns of a date or time type: their values after are not compared (ApprovalNeed.timeColumns). */
  timeColumns?: string[];
  /** The assigned columns whose values read the database: the executor compares them with the preview (ApprovalNeed.comparedColumns). */
  compared?: string[];
  /** Distinct approvers needed (at least 1). */
  approvers: number;
  /** Seconds until an unanswered request expires (> 0). */
  expiresInS: number;
  /** Links the request to the audit event of the held statement (#5). */
  auditId?: string;
}

export interface ApprovalVote {
  approver: string;
  note?: string;
  at: string;
}

export interface ExecutionError {
  code: string;
  message: string;
}

/** What running an approved statement produced. */
export interface ExecutionResult {
  rowsAffected?: number;
  error?: ExecutionError;
}

export interface Approval extends ApprovalRequest {
  /** 'appr_' + ULID: sorts by creation time. */
  id: string;
  state: ApprovalState;
  createdAt: string;
  expiresAt: string;
  approvals: ApprovalVote[];
  /** Who denied it ('ormai:expiry' when it expired), or who gave the approval that reached the threshold. */
  decision?: { by: string; note?: string; at: string };
  result?: ExecutionResult & { at: string };
}

export interface ApprovalFilter {
  state?: ApprovalState;
  tenantId?: string;
  user?: string;
}

export interface ApprovalStore {
  /**
   * Records a pending request. With maxPendingPerTenant, refuses it (ApprovalError
   * 'approval_limit_reached') when that many of its tenant's requests are pending: counted and
   * inserted as one step, even across processes sharing the store.
   */
  create(req: ApprovalRequest, now?: Date, maxPendingPerTenant?: number): Promise<Approval>;
  get(id: string): Promise<Approval | undefined>;
  /** Oldest first. */
  list(filter?: ApprovalFilter): Promise<Approval[]>;
  /**
   * Records one approval. Refuses (ApprovalError) the requester, a repeated approver, and a
   * non-pending or expired approval. Returns ready=true to exactly one caller: the one whose
   * approval reached the threshold (state becomes 'approved'), even across processes.
   */
  approve(id: string, approver: string, note?: string, now?: Date): Promise<{ approval: Approval; ready: boolean }>;
  /** pending → denied. Anyone holding the admin token may deny, the requester included (a withdrawal). */
  deny(id: string, by: string, note?: string, now?: Date): Promise<Approval>;
  /** approved → executed (no error) or failed (error), once. */
  recordResult(id: string, result: ExecutionResult, now?: Date): Promise<Approval>;
  /** Pending approvals past expiresAt become 'expired' (denied automatically); returns each exactly once. */
  expire(now?: Date): Promise<Approval[]>;
  close(): Promise<void>;
}

/** What an approved statement did, inside its transaction, before COMMIT. */
export interface ExecutedWrite {
  rowsAffected: number;
  /** The changed rows before and after, captured as a direct write's are; the audit event carries them, for rollback. */
  changes?: AuditChanges;
}

/**
 * Given by the caller to the executor, which calls it once the statement has run and before it
 * commits: it reports the execution (the 'execute' event) and settles once the audit trail holds
 * that event (I7). A rejection means the event is not durable: the executor rolls back, and the
 * write fails with audit_unavailable.
 */
export type BeforeCommit = (write: ExecutedWrite) => Promise<void>;

/**
 * Runs an approved statement upstream. Called once per approval, by the process whose
 * approval reached the threshold; a rejection is recorded as a failure, never retried. An
 * executor that commits calls `beforeCommit` first; one that does not is reported after it returns.
 */
export type ApprovalExecutor = (approval: Approval, beforeCommit: BeforeCommit) => Promise<ExecutionResult>;

/** Identity recorded as the decider when an approval expires. */
export const EXPIRY_ACTOR = 'ormai:expiry';

/**
 * What happened to an approval, for the audit trail (#5): each is reported once, by the process
 * that did it. An execution is reported before its COMMIT (approval state 'executed', see
 * BeforeCommit); when the write then does not commit after all (its event could not be made
 * durable, or COMMIT failed), a second 'execute' reports the failure, as a session reports the
 * rollback of a write whose event it had already emitted.
 */
export interface ApprovalEvent {
  action: 'approve' | 'deny' | 'expire' | 'execute';
  approval: Approval;
  /** The approver or denier; absent for expiry and execution. */
  actor?: string;
  /** For an execution: the rows the write changed, before and after. */
  changes?: AuditChanges;
}

export type ApprovalListener = (event: ApprovalEvent) => void;

/** Refusals from a store, each with the HTTP status the admin API answers with. */
export const approvalErrors = {
  approval_not_found: { status: 404, message: 'no approval with this id' },
  approval_not_pending: { status: 409, message: 'the approval is no longer pending' },
  approval_repeated_approver: { status: 409, message: 'this approver has already approved' },
  approval_by_requester: { status: 403, message: 'the requester cannot approve their own write' },
  approval_expired: { status: 410, message: 'the approval has expired' },
  approval_not_approved: { status: 409, message: 'only an approved request can record an execution result' },
  approval_limit_reached: { status: 429, message: "as many of the tenant's writes wait for approval as the proxy holds" },
} as const;

export type ApprovalErrorCode = keyof typeof approvalErrors;

export class ApprovalError extends Error {
  readonly status: number;
  /** Set when the call that failed found the request overdue and recorded it expired (its 'expire' event is then the caller's to report). */
  expired?: Approval;

  constructor(
    readonly code: ApprovalErrorCode,
    message: string = approvalErrors[code].message,
  ) {
    super(message);
    this.name = 'ApprovalError';
    this.status = approvalErrors[code].status;
  }
}
