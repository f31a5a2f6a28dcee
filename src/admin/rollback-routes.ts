// Admin routes for rollback: the inverse of a write from its audit event (GET shows it, POST runs it).
import { z } from 'zod';
import { locateAuditEvent, findUndoingEvent, executeRollback, RollbackNotRecordedError } from '../audit/rollback-command';
import type { AuditLog } from '../audit/log';
import type { Logger } from '../log';
import { inverseOf, describeInverse, NotReversibleError } from '../audit/rollback';
import { CommitFailedError } from '../upstream/commit';
import type { ProxyConfig } from '../config/load';
import { actorOf, orEmpty } from './approval-routes';
import { HttpError } from './http';
import type { Router } from './router';

const body = z.strictObject({ by: z.string().trim().min(1).max(200).regex(/^[^\u0000-\u001f\u007f]+$/).optional() });

async function inverseFor(config: ProxyConfig, id: string) {
  const found = await locateAuditEvent(config, id);
  if (!found) throw new HttpError(404, 'event_not_found', `no audit event ${id} in the file or postgres sinks`);
  const { event } = found;
  // Its transaction did not commit: the changes it records never stayed, and reverting them would write values that were never committed.
  const undone = await findUndoingEvent(config, event, found.inFile);
  if (undone) throw new HttpError(409, 'not_reversible', `event ${id}'s transaction was rolled back (event ${undone.id}: ${undone.message ?? undone.code ?? 'ROLLBACK'}): its changes did not stay`);
  try {
    return { event, statements: inverseOf(event) };
  } catch (err) {
    if (err instanceof NotReversibleError) throw new HttpError(409, 'not_reversible', err.message);
    throw err;
  }
}

export function registerRollbackRoutes(router: Router, config: ProxyConfig, audit: AuditLog, log: Logger): void {
  router.add({
    method: 'GET',
    path: '/audit/:id/rollback',
    handler: async (req) => {
      const { event, statements } = await inverseFor(config, req.params.id);
      return { status: 200, body: { event: event.id, table: event.changes?.table, operation: event.changes?.operation, rows: statements.length, sql: describeInverse(statements) } };
    },
  });
  router.add({
    method: 'POST',
    path: '/audit/:id/rollback',
    handler: async (req) => {
      const parsed = body.safeParse(orEmpty(await req.json()));
      if (!parsed.success) throw new HttpError(400, 'invalid_request', 'the body is empty or { "by": "<the caller>" }; the rollback is recorded under the token\'s identity');
      const by = actorOf(req, parsed.data.by, 'by');
      // Before the event is looked up (in sinks that may be the ones down): a rollback the trail cannot record is not run.
      if (!audit.acceptsWrites()) throw new HttpError(503, 'audit_unavailable', 'the audit trail is not available: the rollback was not run; retry once it is back');
      const { event, statements } = await inverseFor(config, req.params.id);
      let result;
      try {
        result = await executeRollback(config, event, statements, by, audit);
      } catch (err) {
        if (err instanceof RollbackNotRecordedError) {
          log.error({ event: event.id, by }, 'rollback not committed: its audit event could not be recorded');
          throw new HttpError(503, 'audit_unavailable', err.message);
        }
        if (err instanceof CommitFailedError) {
          if (err.outcomeUnknown) {
            log.error({ event: event.id, by }, 'connection lost during the COMMIT of a rollback; whether it committed is not known');
            throw new HttpError(502, 'rollback_outcome_unknown', `${err.message}: GET /audit/${event.id}/rollback shows what is left to revert`);
          }
          log.warn({ event: event.id, by, sqlstate: err.sqlstate }, 'rollback not committed: PostgreSQL refused the COMMIT');
          throw new HttpError(409, 'rollback_not_committed', err.message);
        }
        throw err;
      }
      return { status: 200, body: { event: event.id, rows: statements.length, ...result } };
    },
  });
}
