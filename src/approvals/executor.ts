// Runs an approved write once, on the proxy's own connection: the statement the proxy rewrote when it held it, never the agent's text.
import type { CustomTypesConfig, QueryArrayResult } from 'pg';
import type { ProxyConfig } from '../config/load';
import type { Logger } from '../log';
import type { PolicySnapshot } from '../policy/load';
import { AFFECTED_ROWS_MARKER, tooManyRows } from '../analysis/rewrite/write-limits';
import { captureSpec, changesOf, keepCaptured } from '../results/capture-columns';
import { canonicalJsonReference } from '../audit/canonical';
import { adminClient } from '../upstream/catalog';
import { setTenantLocally } from '../policy/row-security';
import { commit, CommitFailedError } from '../upstream/commit';
import type { Approval, ApprovalExecutor, BeforeCommit, ExecutedWrite, ExecutionResult } from './types';

const CAPPED = new RegExp(`${AFFECTED_ROWS_MARKER}(\\d+):(\\d+)`);

/** Every value as PostgreSQL's text form, as the session sees the capture columns on the wire. */
const TEXT: CustomTypesConfig = { getTypeParser: (() => (value: string) => value) as unknown as CustomTypesConfig['getTypeParser'] };

/** Why an approved write was rolled back although it ran: its audit event could not be recorded. */
export const NOT_RECORDED = 'the audit event of the approved write could not be recorded: its transaction was rolled back';

/**
 * The statement already carries everything the policy added when it was held (the tenant
 * predicate, the affected-row guard, RETURNING masks, the before/after capture columns), so it
 * runs as it is, in its own transaction, under the policy's statement_timeout. Once it has run,
 * `beforeCommit` reports it with the rows it changed and waits for the audit trail to hold that
 * event; only then does it commit (I7), as a session's write does. A failure is recorded, never retried.
 */
export function upstreamExecutor(config: ProxyConfig, log: Logger, policies: () => readonly PolicySnapshot[] = () => config.policies): ApprovalExecutor {
  return async (approval: Approval, beforeCommit: BeforeCommit): Promise<ExecutionResult> => {
    // The policies in force when it runs (hot reload): a write held under rules since changed or removed does not run.
    const policy = policies().find((p) => p.name === approval.policy.name);
    if (!policy || policy.hash !== approval.policy.hash) {
      // The rules the statement was rewritten under are no longer the ones in force.
      return { error: { code: 'policy_changed', message: `policy ${approval.policy.name} changed since the write was held; ask the agent to send it again` } };
    }
    const client = adminClient(config.upstream, 'ormai-proxy approvals');
    try {
      await client.connect();
      // One snapshot for the dry run read again and for the write: a row another transaction
      // changes in between makes the write fail (40001) instead of running on what nobody saw.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await client.query(`SET LOCAL statement_timeout = ${Math.trunc(policy.statementTimeoutMs)}`);
      // The search_path the dry run was read under (the planner's): a value's text (a regclass) depends on it.
      await client.query("SELECT set_config('search_path', $1, true)", [config.upstream.searchPath]);
      // The requester's tenant, for tables whose row-level security reads it (policy/row-security.ts).
      await setTenantLocally(client, approval.requester.tenantId);
      // Read before the write (in the same snapshot), judged after it: a cap it runs into, or a
      // row it changes that the approvers did not see, is the more precise refusal.
      const changed = await rowsChangedSincePreview(client, approval);
      const result = await client.query({ text: approval.statementSql, values: approval.params, rowMode: 'array', types: TEXT });
      const write = executedWrite(approval, result, log);
      const unseen = beyondPreview(approval, write) ?? changed;
      if (unseen) {
        await client.query('ROLLBACK');
        log.warn({ approval: approval.id, rows: write.rowsAffected }, 'approved write would change rows the approvers did not see; rolled back');
        return { error: { code: 'approved_rows_changed', message: unseen } };
      }
      try {
        await beforeCommit(write);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        log.error({ approval: approval.id, err: (err as Error).message }, 'audit event of an approved write not confirmed; rolled back');
        return { error: { code: 'audit_unavailable', message: NOT_RECORDED } };
      }
      try {
        await commit(client);
      } catch (err) {
        // Refused by PostgreSQL: nothing was committed, and the error is recorded as any other.
        if (!(err instanceof CommitFailedError)) throw err;
        if (!err.outcomeUnknown) throw err.original;
        // Reported as executed, and it may well have committed: the record says that nobody knows.
        log.error({ approval: approval.id }, 'connection lost during the COMMIT of an approved write; whether it committed is not known');
        return { error: { code: 'commit_outcome_unknown', message: `${err.message}; the rows tell, and the execution was reported before the COMMIT` } };
      }
      log.info({ approval: approval.id, rows: write.rowsAffected }, 'approved write executed');
      return { rowsAffected: write.rowsAffected };
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

/** What every refusal of an approved write that no longer matches its preview tells the agent to do. */
const again = 'nothing was changed; ask the agent to send the write again, for a new approval';

/**
 * Why an UPDATE or DELETE may not run: the rows its dry run shows now are not the rows the
 * approvers saw (another write, one no rule holds, changed or removed them, or made another row
 * match), or their values after are not (a clock the statement reads moved). Read again in the
 * write's snapshot: the hash of every row, then the listed rows, compared as a set, each with its
 * count, key, values before and values after, but those of its date and time columns
 * (`timeColumns`: now(), as the statement runs).
 */
async function rowsChangedSincePreview(client: { query(q: { text: string; values: unknown[]; rowMode: 'array'; types: CustomTypesConfig }): Promise<QueryArrayResult<Array<string | null>>> }, approval: Approval): Promise<string | undefined> {
  if (approval.previewSql === undefined || !Array.isArray(approval.preview) || approval.operation === 'create') return undefined;
  if (approval.previewDigestSql !== undefined && approval.previewDigest !== undefined) {
    // Every row, hashed: the rows past the 100 the preview lists are judged too.
    const digest = await client.query({ text: approval.previewDigestSql, values: approval.params, rowMode: 'array', types: TEXT });
    if (digest.rows[0]?.[0] !== approval.previewDigest) return `the rows this write would change, or their values, have changed since the approvers saw them: ${again}`;
  }
  const result = await client.query({ text: approval.previewSql, values: approval.params, rowMode: 'array', types: TEXT });
  const now = JSON.parse(result.rows[0]?.[0] ?? '[]') as unknown;
  // As stored: a store may keep the preview as jsonb, which orders an object's keys its own way.
  const shown = approval.preview as unknown[];
  if (!Array.isArray(now)) return `the rows the write would change cannot be read again: ${again}`;
  // Compared as sets of rows: a table without a primary key has no order for its preview. One
  // whose preview lists only some of its rows (the first 100, in no order) is judged by its count.
  const texts = (rows: unknown[]) => rows.map((r) => canonicalJsonReference(approval.operation === 'update' ? withoutAfter(r, approval.timeColumns) : r)).sort().join('\n');
  const count = (rows: unknown[]) => Number((rows[0] as Record<string, unknown> | undefined)?.affected_rows ?? 0);
  const partial = !approval.capture && shown.length < count(shown);
  if (partial ? count(now) === count(shown) : texts(now) === texts(shown)) return undefined;
  return `the rows this write would change have changed since the approvers saw them (${now.length === 0 ? 'none matches now' : `it would now change ${Number((now[0] as Record<string, unknown>).affected_rows)} rows`}): ${again}`;
}

/**
 * An UPDATE's preview row without the values after of its time columns (`<col>_after`); an
 * approval held before those were named (no `timeColumns`) without every value after.
 */
function withoutAfter(row: unknown, timeColumns: readonly string[] | undefined): unknown {
  if (row === null || typeof row !== 'object') return row;
  const r = row as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(r)) {
    const column = k.endsWith('_after') && Object.hasOwn(r, `${k.slice(0, -'_after'.length)}_before`) ? k.slice(0, -'_after'.length) : undefined;
    if (column !== undefined && (timeColumns === undefined || timeColumns.includes(column))) continue;
    out[k] = r[k];
  }
  return out;
}

/**
 * Why the write may not commit: it changes rows the approvers were not shown, or gives them values
 * they were not shown. They approved the dry run the proxy read when it held the statement
 * (`preview`: every matching row counted in `affected_rows`, at most 100 listed with their keys
 * and, per assigned column, `<col>_after`), but the statement is evaluated again when it runs:
 * rows written since may match it, and a value read from the database (a sub-select, a column;
 * `compared`) may have changed. More rows than the preview counted, a changed row whose key the
 * complete preview did not list, or a compared value other than the one shown for that row (the
 * inserted rows: other than the rows shown, one for one), and it does not commit. Values the
 * statement itself gives (constants, parameters, now()) are not compared.
 */
export function beyondPreview(approval: Pick<Approval, 'preview' | 'compared'>, write: ExecutedWrite): string | undefined {
  if (!Array.isArray(approval.preview)) return undefined;
  const rows = approval.preview as Array<Record<string, unknown>>;
  const seen = rows.length === 0 ? 0 : Number(rows[0].affected_rows);
  if (!Number.isFinite(seen)) return undefined;
  if (write.rowsAffected > seen) return `the write would now change ${write.rowsAffected} rows; the approvers saw ${seen}: ${again}`;
  const compared = approval.compared ?? [];
  const changed = write.changes?.rows;
  if (!changed) return undefined;
  // Values the approvers could not all see (past the 100 rows listed, or a capture cut short) cannot be checked: not run.
  if (compared.length > 0 && (write.changes?.truncated || rows.length < seen)) return `the write's values cannot all be checked against the preview the approvers saw: ${again}`;
  if (write.changes?.truncated || rows.length < seen) return undefined;
  if (write.changes?.operation === 'insert') {
    // Each inserted row is one the approvers saw, one for one.
    const left = [...rows];
    for (const change of changed) {
      const at = left.findIndex((r) => compared.every((c) => sameValue(r[c], change.after?.[c])));
      if (at < 0) return `the write would now insert a row the approvers did not see (${JSON.stringify(Object.fromEntries(compared.map((c) => [c, change.after?.[c] ?? null])))}): ${again}`;
      left.splice(at, 1);
    }
    return undefined;
  }
  for (const change of changed) {
    const names = Object.keys(change.key);
    if (names.length === 0 || !rows.every((r) => names.every((n) => Object.hasOwn(r, n)))) return undefined;
    const matches = rows.map((r) => names.map((n) => sameKey(r[n], change.key[n])));
    // A key whose two forms cannot be compared (a timestamp's JSON and text forms) is not judged.
    if (matches.some((m) => m.includes(undefined))) return undefined;
    const shown = rows.find((_, i) => matches[i].every(Boolean));
    if (!shown) return `the write would now change a row the approvers did not see (${JSON.stringify(names.map((n) => change.key[n]))}): ${again}`;
    for (const column of compared) {
      if (!sameValue(shown[`${column}_after`], change.after?.[column])) {
        return `the write would now set ${column} of row ${JSON.stringify(names.map((n) => change.key[n]))} to a value the approvers did not see: ${again}`;
      }
    }
  }
  return undefined;
}

/**
 * A value as the preview's JSON shows it against the text the write returned, strictly: anything
 * the two forms cannot be shown equal in is a difference. Numbers compare as numbers (JSON keeps
 * no trailing zeros), booleans as t/f, a timestamp's JSON form (…T…, +hh:mm) against its text
 * form (… …, +hh), JSON values as JSON.
 */
function sameValue(shown: unknown, text: unknown): boolean {
  if (shown === null || shown === undefined || text === null || text === undefined) return (shown ?? null) === (text ?? null);
  const t = String(text);
  if (typeof shown === 'number') return t.trim() !== '' && Number(t) === shown;
  if (typeof shown === 'boolean') return t === (shown ? 't' : 'f');
  if (typeof shown === 'string') return shown === t || (TIMESTAMP.test(shown) && shown === timestampJson(t));
  try {
    return JSON.stringify(shown) === JSON.stringify(JSON.parse(t));
  } catch {
    return false;
  }
}

const TIMESTAMP = /^\d{4}-\d\d-\d\dT/;

/** A timestamp's text form as json_agg writes it: `T` between date and time, an offset with its minutes. */
function timestampJson(text: string): string {
  return text.replace(/^(\d{4}-\d\d-\d\d) /, '$1T').replace(/([+-]\d\d)$/, '$1:00');
}

/**
 * A key value as the preview's JSON shows it against the text the write returned: equal,
 * different, or undefined when the forms cannot be compared. json_agg writes numbers as JSON
 * numbers (an int8 past 2^53 and numeric's trailing zeros are lost in JSON.parse), so numbers
 * compare as numbers; strings compare as they are.
 */
function sameKey(shown: unknown, text: unknown): boolean | undefined {
  if (shown === null || text === null || text === undefined) return shown === null && (text === null || text === undefined);
  if (typeof shown === 'number') return Number(text) === shown;
  if (typeof shown === 'string') return shown === String(text) ? true : /^\d{4}-\d\d-\d\d/.test(shown) ? undefined : false;
  return undefined;
}

/**
 * The rows and, when the write was held with a capture plan, its changes: the plan's columns are
 * the last of each returned row (after any the agent asked for), as the session cuts them.
 */
function executedWrite(approval: Approval, result: QueryArrayResult<Array<string | null>>, log: Logger): ExecutedWrite {
  const rowsAffected = result.rowCount ?? 0;
  const plan = approval.capture;
  if (!plan) return { rowsAffected };
  const names = result.fields.slice(-plan.width).map((f) => f.name);
  if (names.length !== plan.width || names.some((name, i) => name !== `ormai_capture_${i}`)) {
    // A statement and plan that do not match would name values wrongly: better no changes than wrong ones.
    log.warn({ approval: approval.id }, 'approved write returned no capture columns; its changes are not recorded');
    return { rowsAffected };
  }
  const spec = captureSpec(plan.width, false);
  for (const row of result.rows) keepCaptured(spec, () => row.slice(-plan.width));
  return { rowsAffected, changes: changesOf(plan, spec) };
}
