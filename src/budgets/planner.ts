// Asks the database, on the proxy's own read-only connections, how many rows a statement would scan (the planner) or change (a count).
import { LRUCache } from 'lru-cache';
import { serialize } from 'pg-protocol';
import type { UpstreamTarget } from '../config/load';
import type { Logger } from '../log';
import type { CatalogSnapshot } from '../policy/scope';
import { dataRowValues, errorFields, type BackendFrame } from '../protocol/backend/framer';
import { barrierViewsCreation, type BarrierView } from '../analysis/rewrite/derived';
import { connectUpstream, UpstreamConnectError, type UpstreamHandshake } from '../upstream/connect';
import { estimateScanRows, sequentialScans } from './scan-estimate';
import { quoteIdent } from '../analysis/rewrite/nodes';
import { TENANT_SETTING } from '../policy/row-security';

export interface PlanParams {
  types: number[];
  values: Array<Buffer | null>;
  formats: number[];
}

/**
 * The largest EXPLAIN answer the scan budget reads. A plan prints the statement's conditions with
 * their constants folded: `status::text <> repeat('ab', 30000000)` (59 bytes) made a 60 MB plan,
 * which held 140 MB of the proxy's memory for one statement, where a sidecar's limit is 512 MiB.
 * A statement's plan repeats its text a few times at most: eight times the largest text, at
 * least 8 MiB. A larger answer ends the planner connection (the framer refuses it unread) and
 * the statement is refused (session/budgets.ts).
 */
export function planAnswerBytes(maxStatementBytes: number): number {
  return Math.max(8 * 1024 * 1024, 8 * maxStatementBytes);
}

/** PostgreSQL refused a statement on a planner connection: its SQLSTATE and message. */
export class PlannerStatementError extends Error {
  constructor(
    readonly sqlstate: string,
    message: string,
  ) {
    super(message);
    this.name = 'PlannerStatementError';
  }
}

/** The planner connection gave no answer within the statement's timeout and a margin: dropped. */
export class PlannerTimeoutError extends UpstreamConnectError {
  constructor(readonly limitMs: number) {
    super(`the planner did not answer within ${limitMs} ms`);
    this.name = 'PlannerTimeoutError';
  }
}

/** statement_timeout on a planner connection: an EXPLAIN plans, it does not run. */
export const PLANNER_TIMEOUT_MS = 5000;
/** How long past its statement_timeout a planner connection may take to answer before it is dropped. */
const ANSWER_MARGIN_MS = 1000;

/** A failure of the planner's own set-up: the planner counts as unavailable (not as an EXPLAIN that failed). */
function unavailable(what: string): (err: Error) => never {
  return (err) => {
    throw new UpstreamConnectError(`the planner could not ${what}: ${err.message}`);
  };
}

/** Barrier views a planner connection keeps (one set per tenant a statement came from); past this, they are dropped and made again as needed. */
const MAX_VIEWS = 2000;

/** One connection that runs EXPLAIN statements, one at a time. */
class PlannerConnection {
  private waiting?: { resolve: (v: string) => void; reject: (e: Error) => void; rows: string[]; error?: PlannerStatementError };
  broken = false;
  /** The barrier views this connection has made (the statements it plans read them as the session does). */
  private readonly views = new Set<string>();
  /** The tenant in TENANT_SETTING on this connection, as the last statement's session had it. */
  private tenant?: string;
  /** Its statement_timeout, in ms (the startup value until a statement asks for another). */
  private timeoutMs = PLANNER_TIMEOUT_MS;

  constructor(private readonly upstream: UpstreamHandshake) {
    upstream.socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of upstream.framer.push(chunk)) this.onFrame(frame);
      } catch (err) {
        this.fail(err as Error);
      }
    });
    upstream.socket.on('close', () => this.fail(new Error('planner connection closed')));
    upstream.socket.on('error', () => undefined);
  }

  explain(sql: string, params: PlanParams): Promise<string> {
    return this.run(`EXPLAIN (FORMAT JSON, VERBOSE) ${sql}`, params);
  }

  /** Runs one read-only statement; resolves with the first column of its rows, joined by newlines. */
  run(sql: string, params: PlanParams): Promise<string> {
    const values = params.values.map((v, i) => {
      const format = params.formats.length === 0 ? 0 : params.formats.length === 1 ? params.formats[0] : params.formats[i];
      return v === null ? null : format === 1 ? v : v.toString('utf8');
    });
    return this.send(
      Buffer.concat([serialize.parse({ name: '', text: sql, types: params.types }), serialize.bind({ statement: '', values }), serialize.execute({}), serialize.sync()]),
    );
  }

  /**
   * Sends one request and waits for its ReadyForQuery, at most the connection's
   * statement_timeout and a margin: PostgreSQL does not look at its timeout everywhere (a
   * statement can plan for many seconds past it), and a connection stuck there is dropped,
   * not waited for, so that the callers queued behind it get another.
   */
  private send(bytes: Buffer): Promise<string> {
    return new Promise((resolve, reject) => {
      // A connection lost while idle has no 'close' left to fire: nothing would ever answer.
      if (this.broken || this.upstream.socket.destroyed) {
        this.broken = true;
        reject(new UpstreamConnectError('planner connection lost'));
        return;
      }
      const limit = this.timeoutMs + ANSWER_MARGIN_MS;
      const timer = setTimeout(() => {
        this.fail(new PlannerTimeoutError(limit));
        this.upstream.socket.destroy();
      }, limit);
      timer.unref();
      const done = <T>(fn: (v: T) => void) => (v: T) => {
        clearTimeout(timer);
        fn(v);
      };
      this.waiting = { resolve: done(resolve), reject: done(reject), rows: [] };
      this.upstream.socket.write(bytes);
    });
  }

  /**
   * Makes the views a statement reads, as its session has them, in a READ WRITE transaction of
   * its own (the connection is read-only by default). Rejects when PostgreSQL refuses them.
   */
  /** Does a statement read views this connection has not made? */
  lacksViews(views: readonly BarrierView[]): boolean {
    return views.some((v) => !this.views.has(v.name));
  }

  async ensureViews(views: readonly BarrierView[]): Promise<void> {
    const missing = views.filter((v) => !this.views.has(v.name));
    if (missing.length === 0) return;
    if (this.views.size + missing.length > MAX_VIEWS) {
      await this.simple('DISCARD TEMP');
      this.views.clear();
    }
    await this.simple(barrierViewsCreation(missing));
    for (const v of missing) this.views.add(v.name);
  }

  /** Sets TENANT_SETTING as a session of `tenant` has it (row-level security reads it: policy/row-security.ts). */
  async useTenant(tenant: string | undefined): Promise<void> {
    if (tenant === undefined || tenant === this.tenant) return;
    await this.run('SELECT set_config($1, $2, false)', { types: [], values: [Buffer.from(TENANT_SETTING), Buffer.from(tenant)], formats: [] });
    this.tenant = tenant;
  }

  /** Sets statement_timeout for the statements that follow, when it is not already `ms`. */
  async useTimeout(ms: number): Promise<void> {
    if (ms === this.timeoutMs) return;
    await this.run('SELECT set_config($1, $2, false)', { types: [], values: [Buffer.from('statement_timeout'), Buffer.from(String(Math.trunc(ms)))], formats: [] });
    this.timeoutMs = ms;
  }

  private simple(sql: string): Promise<string> {
    return this.send(serialize.query(sql));
  }

  close(): void {
    this.upstream.socket.end(serialize.end());
  }

  private onFrame(frame: BackendFrame): void {
    const w = this.waiting;
    if (!w) return;
    if (frame.code === 'D') w.rows.push(String(dataRowValues(frame)[0] ?? ''));
    else if (frame.code === 'E') {
      const fields = errorFields(frame);
      w.error = new PlannerStatementError(fields.code, fields.message);
    } else if (frame.code === 'Z') {
      this.waiting = undefined;
      if (w.error !== undefined) w.reject(w.error);
      else w.resolve(w.rows.join('\n'));
    }
  }

  private fail(err: Error): void {
    this.broken = true;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(err);
  }
}

/** A few read-only connections, opened as needed, each running one statement at a time; callers queue for them. */
class PlannerPool {
  private readonly idle: PlannerConnection[] = [];
  private open = 0;
  private readonly queue: Array<{ resolve: (c: PlannerConnection) => void; reject: (err: unknown) => void }> = [];

  constructor(
    private readonly target: UpstreamTarget,
    private readonly maxMessageSize: number,
    private readonly log: Logger,
    private readonly size: number,
  ) {}

  /** Runs fn on a connection of the pool, which goes back to it after. */
  async with<T>(fn: (conn: PlannerConnection) => Promise<T>): Promise<T> {
    const conn = await this.acquire();
    try {
      return await fn(conn);
    } finally {
      this.release(conn);
    }
  }

  close(): void {
    for (const c of this.idle.splice(0)) c.close();
  }

  private async acquire(): Promise<PlannerConnection> {
    // An idle connection the server or the network closed is dropped, not handed out.
    for (let idle = this.idle.pop(); idle; idle = this.idle.pop()) {
      if (!idle.broken) return idle;
      this.open--;
      this.log.warn('planner connection lost');
    }
    if (this.open < this.size) {
      this.open++;
      try {
        const upstream = await connectUpstream(
          this.target,
          { application_name: 'ormai-proxy planner', search_path: this.target.searchPath, statement_timeout: String(PLANNER_TIMEOUT_MS), default_transaction_read_only: 'on' },
          this.maxMessageSize,
        );
        return new PlannerConnection(upstream);
      } catch (err) {
        this.open--;
        throw err;
      }
    }
    return new Promise((resolve, reject) => this.queue.push({ resolve, reject }));
  }

  private release(conn: PlannerConnection): void {
    if (conn.broken) {
      this.open--;
      this.log.warn('planner connection lost');
      // The next caller gets a new connection, or the error of making one (it would otherwise wait for good).
      const next = this.queue.shift();
      if (next) void this.acquire().then(next.resolve, next.reject);
      return;
    }
    const next = this.queue.shift();
    if (next) next.resolve(conn);
    else this.idle.push(conn);
  }
}

/**
 * Two small pools of planner connections, and a cache of estimates per statement shape (the
 * rewritten text; estimates come from the first parameter values seen for a shape). The EXPLAINs
 * of the scan budget and the statements of held writes (their counts, value checks and dry runs)
 * have a pool each: a held write's dry run runs its WHERE on the rows, as long as the policy's
 * statement_timeout lets it, and reads of every tenant must not queue behind it.
 */
export class Planner {
  private readonly plans: PlannerPool;
  private readonly held: PlannerPool;
  // Keyed by whole rewritten texts: bounded by their length, not only their number (10,000 keys
  // of 300 kB statements would hold 3 GB).
  private readonly estimates = new LRUCache<string, number>({ max: 10_000, maxSize: 16 * 1024 * 1024, maxEntrySize: 256 * 1024, sizeCalculation: (_rows, key) => key.length + 32 });
  /** A tenant's rows per table, for a minute: statistics move slowly. */
  private readonly shares = new LRUCache<string, number>({ max: 10_000, ttl: 60_000 });
  /**
   * Each tenant's last EXPLAIN, queued or running: a tenant's EXPLAINs run one at a time, so one
   * tenant's statements that take long to plan hold at most one of the connections every
   * tenant's reads are budgeted on.
   */
  private readonly turns = new Map<string, Promise<void>>();

  /** `planBytes`: the largest EXPLAIN answer read (planAnswerBytes); the held statements' answers are bounded by `maxMessageSize`. */
  constructor(target: UpstreamTarget, maxMessageSize: number, log: Logger, size = 2, planBytes = maxMessageSize) {
    this.plans = new PlannerPool(target, Math.min(planBytes, maxMessageSize), log, size);
    this.held = new PlannerPool(target, maxMessageSize, log, size);
  }

  /** Estimated rows scanned; throws when the planner cannot be asked (the caller decides). */
  async scanRows(
    sql: string,
    params: PlanParams,
    catalog: CatalogSnapshot,
    cacheKey: string,
    views: readonly BarrierView[] = [],
    tenant?: string,
    tenantTables: ReadonlyMap<string, string> = new Map(),
    timeoutMs = PLANNER_TIMEOUT_MS,
  ): Promise<number> {
    const cached = this.estimates.get(cacheKey);
    if (cached !== undefined) return cached;
    const explain = () => this.explainRows(sql, params, catalog, cacheKey, views, tenant, tenantTables, timeoutMs);
    // Sessions without a tenant (a policy with no tenant scope) are not queued together.
    return tenant === undefined ? explain() : this.inTurn(tenant, explain);
  }

  /** Runs fn once the tenant's EXPLAIN before it has settled (see `turns`). */
  private inTurn<T>(tenant: string, fn: () => Promise<T>): Promise<T> {
    const mine = (this.turns.get(tenant) ?? Promise.resolve()).then(fn);
    const done = mine.then(
      () => undefined,
      () => undefined,
    );
    this.turns.set(tenant, done);
    void done.then(() => {
      if (this.turns.get(tenant) === done) this.turns.delete(tenant);
    });
    return mine;
  }

  private async explainRows(
    sql: string,
    params: PlanParams,
    catalog: CatalogSnapshot,
    cacheKey: string,
    views: readonly BarrierView[],
    tenant: string | undefined,
    tenantTables: ReadonlyMap<string, string>,
    timeoutMs: number,
  ): Promise<number> {
    // The same statement may have been estimated while this one waited its turn.
    const cached = this.estimates.get(cacheKey);
    if (cached !== undefined) return cached;
    return this.plans.with(async (conn) => {
      // Without the tenant or the views the EXPLAIN would fail and the statement go ahead unbudgeted: the planner counts as unavailable.
      await conn.useTenant(tenant).catch(unavailable('set the tenant'));
      // The views are the proxy's own statements: under the planner's timeout, not a policy's shorter one.
      if (conn.lacksViews(views)) {
        await conn.useTimeout(PLANNER_TIMEOUT_MS).catch(unavailable('set its timeout'));
        await conn.ensureViews(views).catch(unavailable('make the barrier views'));
      }
      // The statement's own timeout (the policy's), never more than the planner's.
      await conn.useTimeout(Math.min(timeoutMs, PLANNER_TIMEOUT_MS)).catch(unavailable('set its timeout'));
      const plan: unknown = JSON.parse(await conn.explain(sql, params));
      // A tenant-scoped table read whole counts the tenant's share of it, never its size.
      const shares = new Map<string, number>();
      for (const table of sequentialScans(plan, catalog)) {
        const column = tenantTables.get(table);
        if (column !== undefined && tenant !== undefined) shares.set(table, await this.tenantShare(conn, table, column, tenant));
      }
      const rows = estimateScanRows(plan, catalog, shares);
      this.estimates.set(cacheKey, rows);
      return rows;
    });
  }

  /** The planner's estimate of one tenant's rows in a table (cached): what a sequential scan of it is budgeted at. */
  private async tenantShare(conn: PlannerConnection, table: string, column: string, tenant: string): Promise<number> {
    const key = `${table}\u0000${tenant}`;
    const cached = this.shares.get(key);
    if (cached !== undefined) return cached;
    const [schema, name] = table.split('.');
    const sql = `SELECT 1 FROM ${quoteIdent(schema)}.${quoteIdent(name)} WHERE ${quoteIdent(column)} = $1`;
    const plan = JSON.parse(await conn.explain(sql, { types: [], values: [Buffer.from(tenant)], formats: [] })) as Array<{ Plan?: { 'Plan Rows'?: number } }>;
    const rows = plan[0]?.Plan?.['Plan Rows'] ?? 0;
    this.shares.set(key, rows);
    return rows;
  }

  /**
   * Has PostgreSQL plan a statement the analysis built (a held write: EXPLAIN does not run it)
   * as a session of `tenant`; rejects with PlannerStatementError when PostgreSQL refuses it.
   */
  async check(sql: string, params: PlanParams, tenant: string | undefined, timeoutMs: number): Promise<void> {
    await this.rows(`EXPLAIN ${sql}`, params, tenant, timeoutMs);
  }

  /** Runs a `SELECT count(*) …` the analysis built (never agent text) on a read-only connection. */
  async countRows(sql: string, params: PlanParams, tenant: string | undefined, timeoutMs: number): Promise<number> {
    return Number(await this.rows(sql, params, tenant, timeoutMs));
  }

  /**
   * Runs a one-column SELECT the analysis built for a held write (never agent text, though its
   * WHERE is the agent's) on a read-only connection, under `timeoutMs` (the policy's
   * statement_timeout, as the agent's own statements); its rows joined by newlines.
   */
  async rows(sql: string, params: PlanParams, tenant: string | undefined, timeoutMs: number): Promise<string> {
    return this.held.with(async (conn) => {
      await conn.useTenant(tenant);
      await conn.useTimeout(timeoutMs);
      return await conn.run(sql, params);
    });
  }

  async close(): Promise<void> {
    this.plans.close();
    this.held.close();
  }
}
