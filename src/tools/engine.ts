// The tool engine: runs db.* calls as a principal through ordinary proxy sessions, opened on the tool door (docs/tools.md).
//
// A call compiles to one statement with $n parameters. The engine runs it with node-postgres on a
// session of the principal that it opened on the proxy's tool door: a loopback listener only
// this process knows, where the login is a one-time ticket. Everything after the login is the
// proxy's own path (analysis, rewrite, budgets, approvals, upstream, masking, audit), so the
// tool surface has no policy of its own. Sessions are pooled per principal and closed when idle.
//
// A session is its caller's slot, and a door's call keeps it until the answer has left the
// process (see Delivery): an answer the caller does not read cannot free the slot for the next one.
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { Client, type DatabaseError } from 'pg';
import type { Principal } from '../auth/principal';
import type { ApprovalStore } from '../approvals/types';
import type { AuditEvent } from '../audit/event';
import type { AuditPort } from '../audit/port';
import type { ProxyConfig } from '../config/load';
import { ProxyError } from '../errors/catalogue';
import type { ProxyServer } from '../listener/server';
import type { Logger } from '../log';
import { selectPolicy, type PolicySnapshot } from '../policy/load';
import type { ScopeProvider } from '../policy/provider';
import type { Session } from '../session/session';
import type { CompiledCall, ToolCall, ToolError, ToolResult, ToolRunner } from './types';

/** A ticket is good once, for this long. */
const TICKET_TTL_MS = 10_000;
/** Sessions of one principal at once; further calls wait for one. */
const MAX_SESSIONS_PER_PRINCIPAL = 4;
/** An idle session is closed after this. */
const IDLE_MS = 30_000;

/**
 * A door's answer to the call it is handling, as the engine sees it. The call's session stays
 * taken until `settled`, so one caller's answers held in memory for a client that does not read
 * them are at most MAX_SESSIONS_PER_PRINCIPAL × tools.max_result_bytes (as JSON).
 */
export interface Delivery {
  /** Settles once the answer is written out or abandoned (its connection closed); never rejects. */
  readonly settled: Promise<void>;
  /** Settled already: before an answer is written, its caller has left. */
  readonly gone: boolean;
  /** The answer is ready: it has `ms` to reach the client, then the door drops the connection. The first deadline set holds. */
  deadline(ms: number): void;
}

// The runner interface carries (principal, call) only, and a call reaches the engine through the
// lazy runner (doors.ts) and, for MCP, the SDK's dispatch: the door's delivery crosses both as
// async context, set by withDelivery and read where a call takes and gives back its session.
const deliveries = new AsyncLocalStorage<Delivery>();

/** Runs a door's handling of one request with its delivery; calls made in it hold their session until the delivery settles. */
export function withDelivery<T>(delivery: Delivery, handle: () => Promise<T>): Promise<T> {
  return deliveries.run(delivery, handle);
}

/** One-time logins for the tool door: a ticket names its principal and is consumed at first use. */
export class TicketBook {
  private readonly tickets = new Map<string, { principal: Principal; user: string; expires: number }>();

  /** A new ticket for the principal; the session it opens carries `connection`. */
  issue(principal: Principal): { ticket: string; connection: string } {
    // Tickets whose connection never came are dropped as new ones are made.
    const now = Date.now();
    for (const [t, entry] of this.tickets) if (entry.expires < now) this.tickets.delete(t);
    const ticket = randomBytes(32).toString('base64url');
    const connection = randomBytes(12).toString('base64url');
    this.tickets.set(ticket, { principal: { ...principal, connection }, user: principal.user, expires: Date.now() + TICKET_TTL_MS });
    return { ticket, connection };
  }

  redeem(user: string, ticket: string): Principal | undefined {
    const entry = this.tickets.get(ticket);
    if (!entry) return undefined;
    this.tickets.delete(ticket);
    if (entry.user !== user || entry.expires < Date.now()) return undefined;
    return entry.principal;
  }

  toJSON(): string {
    return '[tickets]';
  }
}

/** The compiler and describer the engine runs calls with (src/tools/compile.ts, describe.ts). */
export interface ToolCompiler {
  /** The statement a db.* call runs; throws a ProxyError for an unknown tool or bad arguments. */
  compile(call: ToolCall, policy: PolicySnapshot, principal: Principal, scopes: ScopeProvider): Promise<CompiledCall>;
  /** Answers a call that runs no statement (db.describe_schema, approvals.status), or undefined for the others. */
  answer?(call: ToolCall, policy: PolicySnapshot, principal: Principal, scopes: ScopeProvider, approvals: ApprovalStore | undefined): Promise<unknown | undefined>;
  /** The arguments as the audit keeps them when the call never compiled: values replaced by $n (names kept only when the policy's scope has them). */
  redact(args: unknown, policy: PolicySnapshot | undefined, scopes: ScopeProvider): Promise<unknown>;
}

export interface ToolEngineDeps {
  server: ProxyServer;
  scopes: ScopeProvider;
  config: ProxyConfig;
  compiler: ToolCompiler;
  audit?: AuditPort;
  approvals?: ApprovalStore;
  log: Logger;
}

interface Pooled {
  client: Client;
  session: Session;
  idleTimer?: NodeJS.Timeout;
  broken: boolean;
}

const principalKey = (p: Principal) => JSON.stringify([p.user, p.subject, p.tenantId, [...p.roles].sort(), p.authMethod]);

export class ToolEngine implements ToolRunner {
  private readonly tickets = new TicketBook();
  private readonly waiting = new Map<string, (session: Session) => void>();
  private readonly idle = new Map<string, Pooled[]>();
  private readonly open = new Map<string, number>();
  private readonly queued = new Map<string, Array<() => void>>();
  private readonly all = new Set<Pooled>();
  private door?: { host: string; port: number };
  private closed = false;

  private constructor(private readonly deps: ToolEngineDeps) {}

  /** Opens the tool door on the proxy's server. */
  static async open(deps: ToolEngineDeps): Promise<ToolEngine> {
    const engine = new ToolEngine(deps);
    engine.door = await deps.server.openToolDoor(engine.tickets, (session) => {
      const connection = session.principal.connection;
      if (connection === undefined) return;
      const resolve = engine.waiting.get(connection);
      engine.waiting.delete(connection);
      resolve?.(session);
    });
    return engine;
  }

  async call(principal: Principal, call: ToolCall): Promise<ToolResult> {
    try {
      return await this.handle(principal, call);
    } finally {
      this.startDelivery();
    }
  }

  /** The answer is ready: a door's client gets tools.response_timeout_ms to take it. */
  private startDelivery(): void {
    deliveries.getStore()?.deadline(this.deps.config.raw.tools.response_timeout_ms);
  }

  private async handle(principal: Principal, call: ToolCall): Promise<ToolResult> {
    const policy = selectPolicy(this.deps.scopes.policies, principal);
    if (this.closed) return this.refuse(principal, call, new ProxyError('proxy_shutting_down'), policy);
    if (!policy) return this.refuse(principal, call, new ProxyError('principal_has_no_policy'));
    let compiled: CompiledCall;
    try {
      const answer = await this.deps.compiler.answer?.(call, policy, principal, this.deps.scopes, this.deps.approvals);
      if (answer !== undefined) {
        const event = this.emit(principal, policy, call, await this.deps.compiler.redact(call.arguments, policy, this.deps.scopes), [], { decision: 'allowed' });
        return { ok: true, data: answer, ...(event ? { audit_id: event.id } : {}) };
      }
      compiled = await this.deps.compiler.compile(call, policy, principal, this.deps.scopes);
    } catch (err) {
      if (err instanceof ProxyError) return this.refuse(principal, call, err, policy);
      this.deps.log.error({ err: (err as Error).message, tool: String(call.name).slice(0, 200) }, 'tool call failed');
      return this.refuse(principal, call, new ProxyError('internal_error'), policy);
    }
    try {
      return await this.run(principal, policy, call, compiled);
    } catch (err) {
      // Whatever failed outside the statement (the session died with the proxy, say): still one event.
      this.deps.log.error({ err: (err as Error).message, tool: call.name }, 'tool call failed');
      return this.refuse(principal, call, err instanceof ProxyError ? err : new ProxyError('internal_error'), policy);
    }
  }

  /** Runs the compiled statement on a pooled session of the principal, its event tagged with the call. */
  private async run(principal: Principal, policy: PolicySnapshot, call: ToolCall, compiled: CompiledCall): Promise<ToolResult> {
    // A session logged in under one policy keeps it: a reload that changes which policy (or which
    // version of it) applies to the principal gets it new sessions.
    const key = `${principalKey(principal)}\u0000${policy.name}\u0000${policy.hash}`;
    let conn: Pooled;
    try {
      conn = await this.acquire(principal, key);
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message, user: principal.user }, 'tool door: no session');
      return this.refuse(principal, call, err instanceof ProxyError ? err : new ProxyError('upstream_unavailable'), policy);
    }
    const delivery = deliveries.getStore();
    // The caller left while the call waited (for a session, or for one to open): it is not run.
    if (delivery?.gone) {
      this.release(key, conn);
      return this.refuse(principal, call, new ProxyError('call_abandoned'), policy);
    }
    let event: AuditEvent | undefined;
    conn.session.setToolContext({
      name: call.name,
      arguments: compiled.redactedArguments,
      flags: compiled.flags,
      ...(call.toolCallId ? { toolCallId: call.toolCallId } : {}),
      onEvent: (e) => (event ??= e),
    });
    try {
      const result = await conn.client.query({ text: compiled.sql, values: compiled.params });
      const auditId = event ? { audit_id: (event as AuditEvent).id } : {};
      if (compiled.shape === 'one') {
        if (result.rows.length === 0) return { ok: false, error: notFound(call), ...auditId };
        return { ok: true, data: result.rows[0], rows: 1, ...auditId };
      }
      return { ok: true, data: result.rows, rows: result.rowCount ?? result.rows.length, ...(compiled.dryRun ? { dry_run: true } : {}), ...auditId };
    } catch (err) {
      const e = err as DatabaseError;
      // A connection error, a FATAL, or a session whose policy is gone is not reused.
      if (typeof e.code !== 'string' || e.severity === undefined || e.severity === 'FATAL' || e.routine === 'ormai.policy_removed') conn.broken = true;
      if (!event && typeof e.code !== 'string') return this.refuse(principal, call, new ProxyError('upstream_lost'), policy);
      return { ok: false, error: databaseError(e), ...(event ? { audit_id: (event as AuditEvent).id } : {}) };
    } finally {
      conn.session.setToolContext(undefined);
      // Through a door, the session is given back once the answer is out (or its client gone):
      // the caller's slot bounds the answers waiting for it, not only the statements running.
      if (delivery) void delivery.settled.then(() => deliveries.exit(() => this.release(key, conn)));
      else this.release(key, conn);
    }
  }

  /**
   * A call refused before any statement ran (here, or at a door: a malformed request): its own
   * audit event, and the catalogue's error.
   */
  async refuse(principal: Principal, call: ToolCall, err: ProxyError, policy = selectPolicy(this.deps.scopes.policies, principal)): Promise<ToolResult> {
    let redacted: unknown;
    try {
      redacted = await this.deps.compiler.redact(call.arguments, policy, this.deps.scopes);
    } catch {
      redacted = '(not recorded)';
    }
    const event = this.emit(principal, policy, call, redacted, [], { decision: 'refused', code: err.code });
    this.startDelivery();
    return { ok: false, error: errorOf(err), ...(event ? { audit_id: event.id } : {}) };
  }

  private emit(
    principal: Principal,
    policy: PolicySnapshot | undefined,
    call: ToolCall,
    redacted: unknown,
    flags: string[],
    outcome: { decision: 'allowed' | 'refused'; code?: string },
  ): AuditEvent | undefined {
    return this.deps.audit?.emit({
      kind: 'tool',
      decision: outcome.decision,
      principal: { user: principal.user, tenant_id: principal.tenantId, roles: [...principal.roles] },
      ...(policy ? { policy: { name: policy.name, hash: policy.hash } } : {}),
      tool: { name: typeof call.name === 'string' ? call.name.slice(0, 200) : String(call.name), arguments: redacted },
      ...(call.toolCallId ? { tool_call_id: call.toolCallId } : {}),
      ...(outcome.code ? { code: outcome.code } : {}),
      ...(flags.length > 0 ? { flags } : {}),
    });
  }

  private async acquire(principal: Principal, key: string): Promise<Pooled> {
    for (;;) {
      const idle = this.idle.get(key);
      const conn = idle?.pop();
      if (conn) {
        clearTimeout(conn.idleTimer);
        if (!conn.broken) return conn;
        this.discard(key, conn);
        continue;
      }
      if ((this.open.get(key) ?? 0) < MAX_SESSIONS_PER_PRINCIPAL) {
        this.open.set(key, (this.open.get(key) ?? 0) + 1);
        try {
          // The session outlives this request: nothing of it keeps the request's delivery.
          return await deliveries.exit(() => this.connect(principal));
        } catch (err) {
          this.open.set(key, (this.open.get(key) ?? 1) - 1);
          this.wake(key);
          throw err;
        }
      }
      const queue = this.queued.get(key) ?? [];
      // One principal's burst waits for its sessions up to a bound, then is refused: it cannot pile up memory.
      if (queue.length >= this.deps.config.raw.tools.max_queued_calls) {
        throw new ProxyError('too_many_connections', { message: `more than ${this.deps.config.raw.tools.max_queued_calls} tool calls of this caller are waiting for a session` });
      }
      // The caller may leave while it waits (its HTTP request closed): its call then never runs,
      // as PostgreSQL never runs what a closed connection had not sent. A call that already runs
      // goes on, and its event says what it did.
      const delivery = deliveries.getStore();
      let waiting!: () => void;
      const turn = new Promise<'turn'>((resolve) => {
        waiting = () => resolve('turn');
        queue.push(waiting);
        this.queued.set(key, queue);
      });
      const outcome = delivery ? await Promise.race([turn, delivery.settled.then(() => 'gone' as const)]) : await turn;
      if (outcome === 'gone') {
        const list = this.queued.get(key);
        const at = list?.indexOf(waiting) ?? -1;
        if (list && at >= 0) list.splice(at, 1);
        // Woken in the same turn as the caller left: the wake goes to the next in line.
        else this.wake(key);
        throw new ProxyError('call_abandoned');
      }
    }
  }

  private release(key: string, conn: Pooled): void {
    // A session left in a transaction or with a broken connection is not reused.
    if (conn.broken || this.closed || conn.session.txStatus !== 'I') {
      this.discard(key, conn);
      return;
    }
    conn.idleTimer = setTimeout(() => {
      const list = this.idle.get(key);
      const at = list?.indexOf(conn) ?? -1;
      if (list && at >= 0) list.splice(at, 1);
      this.discard(key, conn);
    }, IDLE_MS);
    conn.idleTimer.unref();
    const list = this.idle.get(key) ?? [];
    list.push(conn);
    this.idle.set(key, list);
    this.wake(key);
  }

  private wake(key: string): void {
    this.queued.get(key)?.shift()?.();
  }

  private discard(key: string, conn: Pooled): void {
    clearTimeout(conn.idleTimer);
    this.all.delete(conn);
    this.open.set(key, Math.max(0, (this.open.get(key) ?? 1) - 1));
    conn.client.end().catch(() => undefined);
    this.wake(key);
  }

  private async connect(principal: Principal): Promise<Pooled> {
    const door = this.door;
    if (!door) throw new Error('the tool door is not open');
    const { ticket, connection } = this.tickets.issue(principal);
    const sessionReady = new Promise<Session>((resolve, reject) => {
      this.waiting.set(connection, resolve);
      setTimeout(() => {
        if (this.waiting.delete(connection)) reject(new Error('the tool door did not open a session'));
      }, TICKET_TTL_MS).unref();
    });
    sessionReady.catch(() => undefined);
    const client = new Client({
      host: door.host,
      port: door.port,
      user: principal.user,
      password: ticket,
      database: this.deps.config.database,
      application_name: 'ormai-proxy tools',
    });
    const conn: Pooled = { client, session: undefined as unknown as Session, broken: false };
    client.on('error', () => {
      conn.broken = true;
    });
    try {
      await client.connect();
    } catch (err) {
      this.waiting.delete(connection);
      const e = err as DatabaseError;
      // The login's refusal is the catalogue's (e.g. principal_has_no_policy, invalid_tenant, upstream_unavailable).
      if (typeof e.routine === 'string' && e.routine.startsWith('ormai.')) throw refusalOf(e);
      throw err;
    }
    conn.session = await sessionReady;
    this.all.add(conn);
    return conn;
  }

  /** Ends every pooled session (their sessions end as any client's do). */
  async close(): Promise<void> {
    this.closed = true;
    for (const list of this.idle.values()) for (const conn of list) clearTimeout(conn.idleTimer);
    this.idle.clear();
    await Promise.all([...this.all].map((conn) => conn.client.end().catch(() => undefined)));
    this.all.clear();
  }
}

/** A ProxyError as a tool error. */
export function errorOf(err: ProxyError): ToolError {
  return {
    code: err.code,
    sqlstate: err.sqlstate,
    message: err.message,
    ...(err.hint ? { hint: err.hint } : {}),
    ...retryOf(err.detail),
    ...approvalOf(err.detail),
  };
}

/** What the session answered, as a tool error: the catalogue's code when the proxy refused, else the SQLSTATE. */
export function databaseError(e: DatabaseError): ToolError {
  const proxy = typeof e.routine === 'string' && e.routine.startsWith('ormai.') ? e.routine.slice('ormai.'.length) : undefined;
  const message = proxy && e.message.startsWith(`${proxy}: `) ? e.message.slice(proxy.length + 2) : e.message;
  return {
    code: proxy ?? (typeof e.code === 'string' ? e.code : 'internal_error'),
    sqlstate: typeof e.code === 'string' ? e.code : 'XX000',
    message: message ?? 'the statement failed',
    ...(e.hint ? { hint: e.hint } : {}),
    ...retryOf(e.detail),
    ...approvalOf(e.detail),
  };
}

function refusalOf(e: DatabaseError): ProxyError {
  const code = e.routine!.slice('ormai.'.length);
  try {
    return new ProxyError(code as ConstructorParameters<typeof ProxyError>[0], { message: e.message.replace(`${code}: `, '') });
  } catch {
    return new ProxyError('upstream_unavailable');
  }
}

function retryOf(detail: string | undefined): { retry_after_s?: number } {
  const m = /retry after (\d+) s/.exec(detail ?? '');
  return m ? { retry_after_s: Number(m[1]) } : {};
}

function approvalOf(detail: string | undefined): { approval_id?: string } {
  const m = /approval_id=(appr_[0-9A-Z]+)/.exec(detail ?? '');
  return m ? { approval_id: m[1] } : {};
}

function notFound(call: ToolCall): ToolError {
  const err = new ProxyError('row_not_found');
  return { ...errorOf(err), message: `${call.name}: no row with this id (in your tenant)` };
}
