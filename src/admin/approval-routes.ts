// Admin routes for held writes: list, show, approve (running the statement at the threshold), deny.
import { z } from 'zod';
import {
  ApprovalError,
  APPROVAL_STATES,
  type Approval,
  type ApprovalEvent,
  type ApprovalExecutor,
  type ApprovalListener,
  type ApprovalStore,
  type BeforeCommit,
  type ExecutionResult,
} from '../approvals/types';
import type { Logger } from '../log';
import { HttpError } from './http';
import type { AdminRequest, AdminResponse, Router } from './router';
import { sameIdentity } from '../approvals/transitions';

export interface ApprovalRouteDeps {
  store: ApprovalStore;
  executor: ApprovalExecutor;
  log: Logger;
  now: () => Date;
  onEvent?: ApprovalListener;
  /**
   * Reports an approved write's execution before it commits, and settles once the audit trail
   * holds the event (rejects: the write must not commit). Without it the execution is reported
   * through onEvent, and the write does not wait for it.
   */
  onExecuted?: (event: ApprovalEvent) => Promise<void>;
}

// Control characters would let an identity forge lines in logs and terminals.
const identity = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(200)
  .regex(/^[^\u0000-\u001f\u007f]+$/, 'must not contain control characters');
const decisionBody = z.strictObject({ approver: identity.optional(), note: z.string().max(4000).optional() });
const listQuery = z.strictObject({ state: z.enum(APPROVAL_STATES as [string, ...string[]]).optional(), tenant: z.string().optional(), user: z.string().optional() });

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => (i.path.length > 0 ? `${i.path.join('.')}: ${i.message}` : i.message));
  throw new HttpError(400, 'invalid_request', `invalid ${what}: ${issues.join('; ')}`);
}

/**
 * The name a decision or rollback is recorded under: the authenticated caller's. A name in the
 * body is only a check (the caller says who it thinks it is); one that is not the caller's is
 * refused, so a token can never vote, deny or roll back in another person's name.
 */
export function actorOf(req: AdminRequest, claimed: string | undefined, field: string): string {
  const caller = req.identity;
  if (!caller) throw new HttpError(401, 'unauthorized', 'a valid bearer token is required');
  if (claimed !== undefined && !sameIdentity(claimed, caller.name)) {
    throw new HttpError(
      403,
      'identity_mismatch',
      caller.shared
        ? `${field} "${claimed}" is not the caller: the shared admin token acts as "${caller.name}". Give each approver their own token in admin.identities_file (ormai-proxy admin-token NAME) and call with it`
        : `${field} "${claimed}" is not the caller: this token belongs to "${caller.name}". Leave ${field} out, or call with that person's own token`,
    );
  }
  return caller.name;
}

/** An empty body is an empty object: the caller's token says who decides. */
export const orEmpty = (body: unknown): unknown => (body === undefined ? {} : body);

/** Typed store refusals become their HTTP status; anything else propagates (and becomes a 500). */
/** `expired`: told of a request the call found overdue and recorded expired (the sweeper would have). */
async function storeCall<T>(call: () => Promise<T>, expired?: (approval: Approval) => void): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof ApprovalError) {
      if (err.expired) expired?.(err.expired);
      throw new HttpError(err.status, err.code, err.message);
    }
    throw err;
  }
}

export function registerApprovalRoutes(router: Router, deps: ApprovalRouteDeps): void {
  const { store, log } = deps;
  const emit = (event: Parameters<ApprovalListener>[0]) => {
    try {
      deps.onEvent?.(event);
    } catch (err) {
      log.error({ err: (err as Error).message, approval_id: event.approval.id }, 'approval listener failed');
    }
  };
  // The admin API speaks snake_case, as the audit events and the SQL views do.
  const ok = (body: Record<string, unknown>): AdminResponse => ({ status: 200, body: snakeCase(body) });

  router.add({
    method: 'GET',
    path: '/approvals',
    handler: async (req) => {
      const q = parse(listQuery, Object.fromEntries(req.query), 'query');
      const approvals = await store.list({ state: q.state as Approval['state'] | undefined, tenantId: q.tenant, user: q.user });
      return ok({ approvals });
    },
  });

  router.add({
    method: 'GET',
    path: '/approvals/:id',
    handler: async (req) => {
      const approval = await store.get(req.params.id);
      if (!approval) throw new HttpError(404, 'approval_not_found', 'no approval with this id');
      return ok({ approval });
    },
  });

  router.add({
    method: 'POST',
    path: '/approvals/:id/approve',
    handler: async (req) => {
      const body = parse(decisionBody, orEmpty(await req.json()), 'body');
      const approver = actorOf(req, body.approver, 'approver');
      const { approval, ready } = await storeCall(
        () => store.approve(req.params.id, approver, body.note, deps.now()),
        (overdue) => emit({ action: 'expire', approval: overdue }),
      );
      log.info({ approval_id: approval.id, approver, approvals: approval.approvals.length, needed: approval.approvers }, 'approval recorded');
      emit({ action: 'approve', approval, actor: approver });
      if (!ready) return ok({ approval, executed: false });
      return ok({ approval: await execute(deps, approval, emit), executed: true });
    },
  });

  router.add({
    method: 'POST',
    path: '/approvals/:id/deny',
    handler: async (req) => {
      const body = parse(decisionBody, orEmpty(await req.json()), 'body');
      const by = actorOf(req, body.approver, 'approver');
      const approval = await storeCall(
        () => store.deny(req.params.id, by, body.note, deps.now()),
        (overdue) => emit({ action: 'expire', approval: overdue }),
      );
      log.info({ approval_id: approval.id, by }, 'approval denied');
      emit({ action: 'deny', approval, actor: by });
      return ok({ approval });
    },
  });
}

/**
 * Runs the statement once (only the caller that got ready=true gets here) and records what
 * happened. An executor that throws counts as a failure: an approved write is never retried,
 * so a statement that may have run is not run twice.
 *
 * The execution is reported from inside the executor's transaction (beforeCommit), so that the
 * write commits only once its event is durable. A write reported as executed that then fails
 * (its event not durable, or COMMIT refused) is reported again, as failed.
 */
async function execute(deps: ApprovalRouteDeps, approval: Approval, emit: ApprovalListener): Promise<Approval> {
  let reported = false;
  const beforeCommit: BeforeCommit = async (write) => {
    // The record as it will be once the result is stored; the store still says 'approved' until COMMIT.
    const executed: Approval = { ...approval, state: 'executed', result: { rowsAffected: write.rowsAffected, at: deps.now().toISOString() } };
    const event: ApprovalEvent = { action: 'execute', approval: executed, ...(write.changes ? { changes: write.changes } : {}) };
    reported = true;
    if (deps.onExecuted) await deps.onExecuted(event);
    else emit(event);
  };
  let result: ExecutionResult;
  try {
    result = await deps.executor(approval, beforeCommit);
  } catch (err) {
    result = { error: { code: 'executor_error', message: `the executor failed: ${(err as Error).message}` } };
  }
  const final = await storeCall(() => deps.store.recordResult(approval.id, result, deps.now()));
  // The error message may quote row values, so only its code is logged.
  deps.log.info({ approval_id: final.id, state: final.state, rows: final.result?.rowsAffected, error_code: final.result?.error?.code }, 'approved write finished');
  if (!reported || final.state !== 'executed') emit({ action: 'execute', approval: final });
  return final;
}

const SNAKE = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * Object keys in snake_case (createdAt → created_at, rowsAffected → rows_affected), all the way
 * down except inside `preview`: the held write's rows, whose keys are the table's column names.
 */
export function snakeCase(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeCase);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[SNAKE(k)] = k === 'preview' ? v : snakeCase(v);
  return out;
}
