// The approval state machine as pure functions, shared by every store so they refuse and decide alike.
import { monotonicFactory } from 'ulid';
import { ApprovalError, EXPIRY_ACTOR, type Approval, type ApprovalRequest, type ExecutionResult } from './types';

/**
 * A transition's outcome: the record to persist (if it changed) and either a result or a
 * refusal. An approve on an overdue request both persists 'expired' and refuses, so the
 * request cannot be approved by a caller that beats the sweeper.
 */
export interface Outcome<T> {
  next?: Approval;
  value?: T;
  error?: ApprovalError;
}

const nextUlid = monotonicFactory();

export function newApprovalId(now: Date): string {
  return `appr_${nextUlid(now.getTime())}`;
}

/**
 * Identities compare trimmed and case-insensitively, so "Alice" and "alice " cannot count as
 * two approvers, nor "Agent1" approve the request of "agent1".
 */
export function sameIdentity(a: string, b: string): boolean {
  return a.trim().toLowerCase() === b.trim().toLowerCase();
}

/** Validates a request and builds the pending record; the preview is normalised through JSON so every store keeps the same value. */
export function newApproval(req: ApprovalRequest, now: Date): Approval {
  if (!Number.isInteger(req.approvers) || req.approvers < 1) throw new RangeError('approvers must be an integer of at least 1');
  if (!Number.isFinite(req.expiresInS) || req.expiresInS <= 0) throw new RangeError('expiresInS must be a positive number of seconds');
  const copy = JSON.parse(JSON.stringify(req)) as ApprovalRequest;
  return {
    ...copy,
    id: newApprovalId(now),
    state: 'pending',
    createdAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + req.expiresInS * 1000).toISOString(),
    approvals: [],
  };
}

export function isOverdue(a: Approval, now: Date): boolean {
  return a.state === 'pending' && Date.parse(a.expiresAt) <= now.getTime();
}

function expired(a: Approval, now: Date): Approval {
  return { ...a, state: 'expired', decision: { by: EXPIRY_ACTOR, at: now.toISOString() } };
}

/** pending and not overdue, or the refusal (persisting the expiry when it is overdue). */
function checkPending<T>(a: Approval, now: Date): Outcome<T> | undefined {
  if (isOverdue(a, now)) return { next: expired(a, now), error: new ApprovalError('approval_expired') };
  if (a.state === 'expired') return { error: new ApprovalError('approval_expired') };
  if (a.state !== 'pending') return { error: new ApprovalError('approval_not_pending', `the approval is ${a.state}, no longer pending`) };
  return undefined;
}

export function approveTransition(a: Approval, approver: string, note: string | undefined, now: Date): Outcome<boolean> {
  const refused = checkPending<boolean>(a, now);
  if (refused) return refused;
  if (sameIdentity(approver, a.requester.user)) return { error: new ApprovalError('approval_by_requester') };
  if (a.approvals.some((v) => sameIdentity(v.approver, approver))) return { error: new ApprovalError('approval_repeated_approver') };
  const at = now.toISOString();
  const vote = { approver: approver.trim(), ...(note !== undefined ? { note } : {}), at };
  const approvals = [...a.approvals, vote];
  if (approvals.length < a.approvers) return { next: { ...a, approvals }, value: false };
  return { next: { ...a, approvals, state: 'approved', decision: { by: vote.approver, ...(note !== undefined ? { note } : {}), at } }, value: true };
}

export function denyTransition(a: Approval, by: string, note: string | undefined, now: Date): Outcome<void> {
  const refused = checkPending<void>(a, now);
  if (refused) return refused;
  return { next: { ...a, state: 'denied', decision: { by: by.trim(), ...(note !== undefined ? { note } : {}), at: now.toISOString() } } };
}

export function resultTransition(a: Approval, result: ExecutionResult, now: Date): Outcome<void> {
  if (a.state !== 'approved') return { error: new ApprovalError('approval_not_approved', `the approval is ${a.state}; a result is recorded only once, after approval`) };
  const recorded = {
    ...(result.rowsAffected !== undefined ? { rowsAffected: result.rowsAffected } : {}),
    ...(result.error ? { error: { code: result.error.code, message: result.error.message } } : {}),
    at: now.toISOString(),
  };
  return { next: { ...a, state: result.error ? 'failed' : 'executed', result: recorded } };
}

export function expireTransition(a: Approval, now: Date): Approval | undefined {
  return isOverdue(a, now) ? expired(a, now) : undefined;
}
