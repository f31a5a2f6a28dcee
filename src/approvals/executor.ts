// Runs an approved write once, on the proxy's own connection: the statement the proxy rewrote when it held it, never the agent's text.
import { Client } from 'pg';
import type { ProxyConfig } from '../config/load';
import type { Logger } from '../log';
import type { PolicySnapshot } from '../policy/load';
import { AFFECTED_ROWS_MARKER, tooManyRows } from '../analysis/rewrite/write-limits';
import { adminClientConfig } from '../upstream/catalog';
import type { Approval, ApprovalExecutor, ExecutionResult } from './types';

const CAPPED = new RegExp(`${AFFECTED_ROWS_MARKER}(\\d+):(\\d+)`);

/**
 * The statement already carries everything the policy added when it was held (the tenant
 * predicate, the affected-row guard, RETURNING masks), so it runs as it is, in its own
 * transaction, under the policy's statement_timeout. A failure is recorded, never retried.
 */
export function upstreamExecutor(config: ProxyConfig, log: Logger, policies: () => readonly PolicySnapshot[] = () => config.policies): ApprovalExecutor {
  return async (approval: Approval): Promise<ExecutionResult> => {
    // The policies in force when it runs (hot reload): a write held under rules since changed or removed does not run.
    const policy = policies().find((p) => p.name === approval.policy.name);
    if (!policy || policy.hash !== approval.policy.hash) {
      // The rules the statement was rewritten under are no longer the ones in force.
      return { error: { code: 'policy_changed', message: `policy ${approval.policy.name} changed since the write was held; ask the agent to send it again` } };
    }
    const client = new Client(adminClientConfig(config.upstream, 'ormai-proxy approvals'));
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('BEGIN');
      await client.query(`SET LOCAL statement_timeout = ${Math.trunc(policy.statementTimeoutMs)}`);
      const result = await client.query(approval.statementSql, approval.params);
      await client.query('COMMIT');
      log.info({ approval: approval.id, rows: result.rowCount }, 'approved write executed');
      return { rowsAffected: result.rowCount ?? 0 };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      const e = err as { code?: string; message?: string };
      log.warn({ approval: approval.id, code: e.code }, 'approved write failed');
      // The affected-row guard fails with a marker (rewrite/write-limits.ts): recorded as the cap it is.
      const capped = CAPPED.exec(e.message ?? '');
      if (capped) {
        const error = tooManyRows(Number(capped[1]), Number(capped[2]));
        return { error: { code: error.code, message: error.message } };
      }
      return { error: { code: e.code ?? 'executor_error', message: e.message ?? String(err) } };
    } finally {
      await client.end().catch(() => undefined);
    }
  };
}
