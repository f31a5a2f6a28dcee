// How both tool doors answer a ToolResult: the success body, the refusal body, and a refusal's HTTP status.
import { ProxyError } from '../errors/catalogue';
import type { ToolError, ToolResult } from './types';

/** What a successful call answers: HTTP 200's body, and MCP's structuredContent (its text is the same JSON). */
export interface ToolSuccessBody {
  data: unknown;
  audit_id?: string;
  rows?: number;
  dry_run?: boolean;
}

export function successBody(result: Extract<ToolResult, { ok: true }>): ToolSuccessBody {
  return {
    data: result.data,
    ...(result.audit_id !== undefined ? { audit_id: result.audit_id } : {}),
    ...(result.rows !== undefined ? { rows: result.rows } : {}),
    ...(result.dry_run !== undefined ? { dry_run: result.dry_run } : {}),
  };
}

/** A refusal over HTTP: `{ error, audit_id? }` (refused calls are audited too). */
export function refusalBody(result: Extract<ToolResult, { ok: false }>): { error: ToolError; audit_id?: string } {
  return { error: result.error, ...(result.audit_id !== undefined ? { audit_id: result.audit_id } : {}) };
}

/** The ToolError for an exception no layer turned into one: XX000, nothing of the exception leaked. */
export function internalToolError(): ToolError {
  const err = new ProxyError('internal_error');
  return { code: err.code, sqlstate: err.sqlstate, message: err.message, hint: err.hint };
}

/** Codes whose HTTP status their SQLSTATE class does not say. */
const STATUS_BY_CODE: Record<string, number> = {
  tool_unknown: 404,
  tool_arguments_invalid: 400,
  not_found: 404,
  row_not_found: 404,
  // A held write: the call is not done, a human has to act (POST /approvals/:id/approve on the admin API).
  pending_approval: 409,
  principal_has_no_policy: 403,
  model_not_allowed: 403,
  field_not_writable: 403,
  max_affected_rows_exceeded: 403,
  scan_budget_exceeded: 403,
  join_depth_exceeded: 403,
  statement_too_large: 413,
  statement_too_complex: 400,
  session_limit_exceeded: 503,
  statement_deadline_exceeded: 504,
  policy_removed: 503,
};

/**
 * A refusal's HTTP status: 400 the call is wrong (arguments, syntax, unknown column), 403 the
 * policy refuses it, 404 no such tool or row, 409 held for approval or in conflict with the
 * data, 429 over a rate budget (with Retry-After), 503 something the proxy needs is down, 504
 * the statement ran out of time; else by the SQLSTATE's class (PostgreSQL appendix A).
 */
export function httpStatusOf(error: ToolError): number {
  const byCode = STATUS_BY_CODE[error.code];
  if (byCode !== undefined) return byCode;
  const state = error.sqlstate ?? '';
  if (state === '53400') return 429; // configuration_limit_exceeded: the proxy's rate budgets
  if (state === '57014') return 504; // query_canceled: statement_timeout
  if (state === '42501' || state === '42P01') return 403; // insufficient_privilege; hidden tables read as undefined_table
  if (state === '40001' || state === '40P01') return 409; // serialization failure, deadlock: retry
  if (state === 'P0002') return 404; // no_data_found
  switch (state.slice(0, 2)) {
    case '22': // data exception
    case '42': // syntax error or access rule violation
    case '0A': // feature not supported
    case '2B':
    case '25':
    case '26':
    case '34':
      return 400;
    case '23': // integrity constraint violation (unique, foreign key, check)
    case '55': // object not in prerequisite state
      return 409;
    case '28': // invalid authorization
      return 403;
    case '54': // program limit exceeded
      return 403;
    case '08': // connection exception
    case '53': // insufficient resources
    case '57': // operator intervention (shutting down, unavailable)
      return 503;
    default:
      return 500;
  }
}

/** Retry-After in whole seconds, when the refusal says when to retry. */
export function retryAfterHeader(error: ToolError): Record<string, string> {
  if (error.retry_after_s === undefined || !Number.isFinite(error.retry_after_s)) return {};
  return { 'retry-after': String(Math.max(1, Math.ceil(error.retry_after_s))) };
}
