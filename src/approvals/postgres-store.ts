// Approvals in a PostgreSQL table shared by every sidecar: row locks make approve decide exactly once.
import { Pool, type ClientConfig, type PoolClient } from 'pg';
import { silentLogger, type Logger } from '../log';
import { answeredWithError } from '../upstream/commit';
import { ownTableName, type TableName } from '../upstream/table-name';
import { approveTransition, denyTransition, newApproval, resultTransition, type Outcome } from './transitions';
import { ApprovalError, EXPIRY_ACTOR, type Approval, type ApprovalFilter, type ApprovalRequest, type ApprovalStore, type ExecutionResult } from './types';

export const DEFAULT_APPROVALS_TABLE = 'ormai_approvals';
/** `table` or `schema.table`, each part a plain identifier (checked, then quoted); the schema defaults to public. */
export function approvalsTableName(name: string): TableName {
  return ownTableName(name, 'approvals table');
}

interface Row {
  id: string;
  state: Approval['state'];
  created_at: Date;
  expires_at: Date;
  request: ApprovalRequest;
  approvals: Approval['approvals'];
  decision: Approval['decision'] | null;
  result: Approval['result'] | null;
}

function fromRow(row: Row): Approval {
  return {
    ...row.request,
    id: row.id,
    state: row.state,
    createdAt: row.created_at.toISOString(),
    expiresAt: row.expires_at.toISOString(),
    approvals: row.approvals,
    ...(row.decision ? { decision: row.decision } : {}),
    ...(row.result ? { result: row.result } : {}),
  };
}

/** The request part of a record: what create stored, unchanged by any transition. */
function requestOf(a: Approval): ApprovalRequest {
  const { id: _id, state: _s, createdAt: _c, expiresAt: _e, approvals: _a, decision: _d, result: _r, ...request } = a;
  return request;
}

const json = (v: unknown) => (v === undefined ? null : JSON.stringify(v));

export interface PostgresApprovalStoreOptions {
  /** Connection settings (the proxy passes adminClientConfig of the upstream). */
  client: ClientConfig;
  /** `table` or `schema.table`. Default: ormai_approvals in public. */
  table?: string;
  poolSize?: number;
  log?: Logger;
}

export class PostgresApprovalStore implements ApprovalStore {
  private readonly pool: Pool;
  private readonly name: ReturnType<typeof approvalsTableName>;
  private readonly log: Logger;
  private initialised?: Promise<void>;
  /**
   * Attempts of a read, or of a transaction's BEGIN: one more than the pool holds, so that when
   * every idle connection died together (a database restart) each is tried and dropped, and the
   * last attempt opens a new one.
   */
  private readonly attempts: number;

  constructor(options: PostgresApprovalStoreOptions) {
    this.name = approvalsTableName(options.table ?? DEFAULT_APPROVALS_TABLE);
    this.log = options.log ?? silentLogger;
    const size = options.poolSize ?? 4;
    this.pool = new Pool({ ...options.client, max: size });
    this.attempts = size + 1;
    // An idle client losing its connection must not crash the process; the next query reconnects.
    this.pool.on('error', (err) => this.log.warn({ err: err.message }, 'approvals store connection lost'));
  }

  /**
   * Creates the table if needed. Sidecars starting together would race on CREATE TABLE IF NOT
   * EXISTS (a duplicate pg_type row), so creation is serialised by a transaction-scoped advisory lock.
   * A failure is not cached: the next operation tries again.
   */
  init(): Promise<void> {
    this.initialised ??= this.createTable().catch((err: unknown) => {
      this.initialised = undefined;
      throw err;
    });
    return this.initialised;
  }

  private async createTable(): Promise<void> {
    const t = this.name.qualified;
    await this.transaction(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`ormai-proxy approvals ${t}`]);
      await c.query(`
        CREATE TABLE IF NOT EXISTS ${t} (
          id text PRIMARY KEY,
          state text NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'executed', 'failed')),
          tenant_id text NOT NULL,
          requester text NOT NULL,
          created_at timestamptz NOT NULL,
          expires_at timestamptz NOT NULL,
          request jsonb NOT NULL,
          approvals jsonb NOT NULL DEFAULT '[]',
          decision jsonb,
          result jsonb,
          updated_at timestamptz NOT NULL DEFAULT now()
        )`);
      await c.query(`CREATE INDEX IF NOT EXISTS "${this.name.table}_pending_idx" ON ${t} (expires_at) WHERE state = 'pending'`);
    });
  }

  async create(req: ApprovalRequest, now: Date = new Date(), maxPendingPerTenant?: number): Promise<Approval> {
    const a = newApproval(req, now);
    await this.init();
    const t = this.name.qualified;
    await this.transaction(async (c) => {
      if (maxPendingPerTenant !== undefined) {
        // One tenant's creations take turns (every proxy sharing the table): the count each one
        // reads includes the rows the ones before it committed.
        await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`ormai-proxy approvals ${t} tenant ${a.requester.tenantId}`]);
        const { rows } = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${t} WHERE tenant_id = $1 AND state = 'pending'`, [a.requester.tenantId]);
        if (rows[0].n >= maxPendingPerTenant) throw new ApprovalError('approval_limit_reached');
      }
      await c.query(
        `INSERT INTO ${t} (id, state, tenant_id, requester, created_at, expires_at, request, approvals)
         VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, '[]'::jsonb)`,
        [a.id, a.state, a.requester.tenantId, a.requester.user, a.createdAt, a.expiresAt, json(requestOf(a))],
      );
    });
    return a;
  }

  async get(id: string): Promise<Approval | undefined> {
    await this.init();
    const rows = await this.read(`SELECT * FROM ${this.name.qualified} WHERE id = $1`, [id]);
    return rows[0] && fromRow(rows[0]);
  }

  async list(filter: ApprovalFilter = {}): Promise<Approval[]> {
    await this.init();
    const where: string[] = [];
    const params: string[] = [];
    const add = (column: string, value: string | undefined) => {
      if (value === undefined) return;
      params.push(value);
      where.push(`${column} = $${params.length}`);
    };
    add('state', filter.state);
    add('tenant_id', filter.tenantId);
    add('requester', filter.user);
    const clause = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const rows = await this.read(`SELECT * FROM ${this.name.qualified} ${clause} ORDER BY id`, params);
    return rows.map(fromRow);
  }

  async approve(id: string, approver: string, note?: string, now: Date = new Date()): Promise<{ approval: Approval; ready: boolean }> {
    const { approval, value } = await this.apply(id, (a) => approveTransition(a, approver, note, now));
    return { approval, ready: value === true };
  }

  async deny(id: string, by: string, note?: string, now: Date = new Date()): Promise<Approval> {
    return (await this.apply(id, (a) => denyTransition(a, by, note, now))).approval;
  }

  async recordResult(id: string, result: ExecutionResult, now: Date = new Date()): Promise<Approval> {
    return (await this.apply(id, (a) => resultTransition(a, result, now))).approval;
  }

  /** One UPDATE: a row another sidecar expires first is skipped here (its state is re-checked after the lock). */
  async expire(now: Date = new Date()): Promise<Approval[]> {
    await this.init();
    const at = now.toISOString();
    const { rows } = await this.transaction((c) =>
      c.query<Row>(
        `UPDATE ${this.name.qualified}
            SET state = 'expired', decision = jsonb_build_object('by', $2::text, 'at', $3::text), updated_at = now()
          WHERE state = 'pending' AND expires_at <= $1
          RETURNING *`,
        [at, EXPIRY_ACTOR, at],
      ),
    );
    return rows.map(fromRow).sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /**
   * Reads the row under FOR UPDATE, decides in JS, writes the outcome, commits. A second
   * approver in another process waits on the row lock and then sees the first one's vote,
   * so only one of them can take the request over its threshold.
   */
  private async apply<T>(id: string, transition: (a: Approval) => Outcome<T>): Promise<{ approval: Approval; value?: T }> {
    await this.init();
    const outcome = await this.transaction(async (c): Promise<Outcome<T> & { current?: Approval }> => {
      const { rows } = await c.query<Row>(`SELECT * FROM ${this.name.qualified} WHERE id = $1 FOR UPDATE`, [id]);
      if (!rows[0]) return { error: new ApprovalError('approval_not_found') };
      const current = fromRow(rows[0]);
      const result = transition(current);
      if (result.next) {
        const n = result.next;
        await c.query(
          `UPDATE ${this.name.qualified}
              SET state = $2, approvals = $3::jsonb, decision = $4::jsonb, result = $5::jsonb, updated_at = now()
            WHERE id = $1`,
          [id, n.state, json(n.approvals), json(n.decision), json(n.result)],
        );
      }
      return { ...result, current };
    });
    if (outcome.error) {
      if (outcome.next?.state === 'expired' && outcome.error instanceof ApprovalError) outcome.error.expired = outcome.next;
      throw outcome.error;
    }
    return { approval: outcome.next ?? outcome.current!, value: outcome.value };
  }

  /**
   * A read, run again on another connection while its connection failed (a connection lost while
   * idle is handed out before the pool has heard of it; a failed one is dropped); reading twice
   * changes nothing. An error the server answered with is the read's own answer and is thrown as
   * it is, and so is anything once the store is closing.
   */
  private async read(text: string, values: unknown[]): Promise<Row[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return (await this.pool.query<Row>(text, values)).rows;
      } catch (err) {
        if (answeredWithError(err) || this.pool.ending || attempt >= this.attempts) throw err;
        this.log.warn({ err: (err as Error).message }, 'approvals store connection failed during a read; reading again');
      }
    }
  }

  /**
   * A pooled connection lost while idle can be handed out before the pool has heard of it: its
   * BEGIN then fails without anything having run, and the transaction runs again on another.
   * Every write goes through here, single statements included. A transaction whose connection
   * failed after its BEGIN is not run again: the failure may have hit its COMMIT, whose outcome
   * is then unknown; it fails as it is.
   */
  private async transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.transactionOnce(work);
      } catch (err) {
        if (!(err instanceof StaleConnection)) throw err;
        if (this.pool.ending || attempt >= this.attempts) throw err.original;
        this.log.warn({ err: err.message }, 'approvals store connection failed before its transaction began; running it again');
      }
    }
  }

  private async transactionOnce<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    // A checked-out client has no listener of the pool's: a connection lost now (even one lost
    // while the client sat idle, reported only after it was handed out) would be an unhandled
    // 'error' event, which ends the process. The query in flight fails on its own.
    const lost = (err: Error): void => {
      broken = err;
    };
    client.on('error', lost);
    try {
      try {
        await client.query('BEGIN');
      } catch (err) {
        // Nothing began, whatever the reason (a connection gone, or ended by the server with a
        // FATAL that arrived as BEGIN's answer): the connection is dropped and the work not run.
        broken ??= err as Error;
        throw new StaleConnection(err as Error);
      }
      const value = await work(client);
      await client.query('COMMIT');
      return value;
    } catch (err) {
      if (!broken) {
        await client.query('ROLLBACK').catch((rollbackErr: Error) => {
          broken = rollbackErr;
        });
      }
      throw err;
    } finally {
      client.removeListener('error', lost);
      // A connection that could not roll back, or was lost, is in an unknown state: drop it instead of reusing it.
      client.release(broken);
    }
  }
}

/** BEGIN failed (on a connection that was already gone, as a rule): nothing ran, so the transaction may run again. */
class StaleConnection extends Error {
  constructor(readonly original: Error) {
    super(original.message);
    this.name = 'StaleConnection';
  }
}
