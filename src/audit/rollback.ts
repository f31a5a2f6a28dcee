// Rollback by design: the inverse of a write from its audit event, guarded to touch only rows still as the write left them.
//
// INSERT → DELETE of the inserted rows; UPDATE → UPDATE back to the values before; DELETE →
// INSERT of the deleted rows (their visible columns: hidden columns take their defaults). Each
// inverse statement names one row by its primary key and carries a guard: the row must still
// hold the values the write gave it (for an undone DELETE: the key must be free). A row changed
// since is left alone and reported, never overwritten. Values travel as text parameters, so
// PostgreSQL converts them to the column types; nothing from the event is spliced into SQL
// except identifiers, which are quoted.
import type { Client } from 'pg';
import { CAPTURE_SETTINGS, type AuditEvent, type AuditRowChange } from './event';
import { commit } from '../upstream/commit';
import { setTenantLocally } from '../policy/row-security';

export interface InverseStatement {
  sql: string;
  params: Array<string | null>;
  row: AuditRowChange;
}

export class NotReversibleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotReversibleError';
  }
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function qualified(table: string): string {
  const dot = table.indexOf('.');
  return dot < 0 ? quoteIdent(table) : `${quoteIdent(table.slice(0, dot))}.${quoteIdent(table.slice(dot + 1))}`;
}

function text(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' && value.startsWith('\\x')) throw new NotReversibleError('a captured value is in binary format');
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** The inverse statements of a write event, one per captured row. */
export function inverseOf(event: AuditEvent): InverseStatement[] {
  const changes = event.changes;
  // A write the agent ran (statement, allowed) or one run once humans approved it (approval, executed).
  if ((event.kind !== 'statement' && event.kind !== 'approval') || !changes) throw new NotReversibleError(`event ${event.id} records no changed rows`);
  if (event.decision !== (event.kind === 'approval' ? 'executed' : 'allowed')) throw new NotReversibleError(`event ${event.id} is a ${event.decision} ${event.kind}, not an executed write`);
  if (changes.truncated) throw new NotReversibleError(`event ${event.id} captured only part of the changed rows`);
  if (changes.settings?.unknown !== undefined) {
    throw new NotReversibleError(`event ${event.id} captured its values while the session's DateStyle, IntervalStyle or TimeZone was changing in the same batch: they cannot be read back for sure`);
  }
  const table = qualified(changes.table);
  // The row by its key, and its tenant's: a key the write's tenant gave up since (a writable key)
  // may name another tenant's row now.
  const tenant = changes.tenant_column !== undefined ? { column: changes.tenant_column, value: event.principal?.tenant_id } : undefined;
  if (tenant && tenant.value === undefined) throw new NotReversibleError(`event ${event.id} names a tenant column but no tenant`);
  return changes.rows.map((row) => {
    const params: Array<string | null> = [];
    const param = (v: unknown) => {
      params.push(text(v));
      return `$${params.length}`;
    };
    const keyMatch = Object.entries(row.key).map(([c, v]) => `${quoteIdent(c)} = ${param(v)}`);
    if (tenant && changes.operation !== 'delete') keyMatch.push(`${quoteIdent(tenant.column)} = ${param(tenant.value)}`);
    switch (changes.operation) {
      case 'insert': {
        const guard = Object.entries(row.after ?? {}).map(([c, v]) => `${quoteIdent(c)} IS NOT DISTINCT FROM ${param(v)}`);
        return { sql: `DELETE FROM ${table} WHERE ${[...keyMatch, ...guard].join(' AND ')}`, params, row };
      }
      case 'update': {
        const set = Object.entries(row.before ?? {}).map(([c, v]) => `${quoteIdent(c)} = ${param(v)}`);
        if (set.length === 0) throw new NotReversibleError(`event ${event.id} captured no values before the change`);
        const guard = Object.entries(row.after ?? {}).map(([c, v]) => `${quoteIdent(c)} IS NOT DISTINCT FROM ${param(v)}`);
        return { sql: `UPDATE ${table} SET ${set.join(', ')} WHERE ${[...keyMatch, ...guard].join(' AND ')}`, params, row };
      }
      case 'delete': {
        params.length = 0;
        const values = { ...row.key, ...(row.before ?? {}), ...(tenant ? { [tenant.column]: tenant.value } : {}) };
        const cols = Object.keys(values).map(quoteIdent);
        const placeholders = Object.values(values).map((v) => param(v));
        return { sql: `INSERT INTO ${table} (${cols.join(', ')}) VALUES (${placeholders.join(', ')}) ON CONFLICT DO NOTHING`, params, row };
      }
    }
  });
}

/** A readable form of the statements, for confirmation (values shown as literals). */
export function describeInverse(statements: InverseStatement[]): string {
  return statements
    .map((s) => s.sql.replace(/\$(\d+)/g, (_, n: string) => {
      const v = s.params[Number(n) - 1];
      return v === null ? 'NULL' : `'${v.replace(/'/g, "''")}'`;
    }))
    .join(';\n');
}

export interface RollbackResult {
  /** Rows put back. */
  reverted: number;
  /** Rows changed since the write (or, for a DELETE, whose key is taken again): left alone. */
  skipped: number;
}

/**
 * Runs the statements in one transaction; any error rolls all of them back. `tenant` is the
 * written rows' tenant, for tables whose row-level security reads it (policy/row-security.ts).
 */
export async function runInverse(
  client: Client,
  statements: InverseStatement[],
  statementTimeoutMs: number,
  tenant?: string,
  beforeCommit: (result: RollbackResult) => Promise<void> = async () => undefined,
  settings: Record<string, string> = {},
): Promise<RollbackResult> {
  let reverted = 0;
  await client.query('BEGIN');
  let result: RollbackResult;
  try {
    await client.query(`SET LOCAL statement_timeout = ${Math.trunc(statementTimeoutMs)}`);
    // The values' text reads back as what was captured only under the settings it was written in.
    for (const [name, value] of Object.entries(settings)) {
      // Nothing else is set from a trail.
      if (CAPTURE_SETTINGS.includes(name)) await client.query('SELECT set_config($1, $2, true)', [name, value]);
    }
    if (tenant !== undefined) await setTenantLocally(client, tenant);
    for (const s of statements) reverted += (await client.query(s.sql, s.params)).rowCount ?? 0;
    result = { reverted, skipped: statements.length - reverted };
    // What the rollback did is reported (its audit event made durable) before it commits, as any write's is.
    await beforeCommit(result);
    await commit(client);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
  return result;
}
