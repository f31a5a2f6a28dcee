// One audit event per statement the agent sends: built from what the session knew when it sent it and how the database answered.
import { performance } from 'node:perf_hooks';
import { LRUCache } from 'lru-cache';
import type { AnalyzedStatement } from '../analysis/pipeline';
import type { AuditEvent } from '../audit/event';
import type { AuditPort } from '../audit/port';
import type { ProxyMetrics, StatementObservation } from '../admin/metrics';
import { changesOf } from '../results/capture-columns';
import type { Principal } from '../auth/principal';
import type { Logger } from '../log';
import type { PolicySnapshot } from '../policy/load';
import type { AuditHook, StatementOutcome } from './pending';
import { isWrite } from './statements';

export type { AuditPort };

/** One Query text, or one Parse/Bind/Execute, as sent. */
export interface SentStatement {
  protocol: 'simple' | 'extended';
  agentSql: string;
  /** The analysed statements (none when the text was refused whole). */
  statements: readonly AnalyzedStatement[];
  tags: Readonly<Record<string, string>>;
  /** A text refused whole: what its first statement is (for the metrics' kind label). */
  kind?: AnalyzedStatement['kind'];
}

const TAG_ROWS = /(\d+)$/;

/** Redacted texts per audit trail (see textOf). */
const TEXTS = new WeakMap<AuditPort, LRUCache<string, { sql: string; sql_hmac: string }>>();
/** Redacted texts per statement shape (analysis/shapes.ts): the agent's and the forwarded one. */
const SHAPE_TEXTS = new WeakMap<object, { agent?: string; sent?: string }>();

/**
 * Bounded by what the entries hold, not by their number: keyed by whole statement texts, 2,000
 * entries of 300 kB statements (their rewritten texts too) held hundreds of MB. Texts this long
 * are rare and not repeated; they are redacted each time instead of kept.
 */
const TEXT_CACHE_BYTES = 8 * 1024 * 1024;
const TEXT_CACHE_MAX_ENTRY = 64 * 1024;
const textBytes = (value: { sql: string; sql_hmac: string }, key: string): number => key.length + value.sql.length + value.sql_hmac.length + 64;

/**
 * The tool call a statement runs for (the tool door's sessions only, docs/tools.md): recorded on
 * its event, which is reported back so that the tool's answer names it.
 */
export interface ToolAuditContext {
  name: string;
  /** The arguments with every value replaced by $n. */
  arguments: unknown;
  flags: readonly string[];
  toolCallId?: string;
  onEvent?: (event: AuditEvent) => void;
}

export class StatementAuditor {
  /** Set by the tool engine around each call; bound to a statement when it is sent. */
  tool?: ToolAuditContext;

  constructor(
    private readonly port: AuditPort | undefined,
    private readonly metrics: ProxyMetrics | undefined,
    private readonly base: { sessionId: string; principal: Principal; policy: PolicySnapshot },
    private readonly log: Logger,
  ) {}

  /**
   * Redaction parses the statement again; a session repeats its statements (prepared ones on
   * every Execute), so the redacted text and its hash are kept per text, shared by the sessions.
   */
  private textOf(port: AuditPort, sql: string, parsed: boolean, shape?: { of: object; which: 'agent' | 'sent' }): { sql: string; sql_hmac: string } {
    if (shape && port.redacts && port.hmac) {
      // A new literal in a known shape: the redacted text is the shape's (literals are what redaction removes).
      let texts = SHAPE_TEXTS.get(shape.of);
      if (!texts) SHAPE_TEXTS.set(shape.of, (texts = {}));
      const redacted = (texts[shape.which] ??= port.text(sql, parsed).sql);
      return { sql: redacted, sql_hmac: port.hmac(sql) };
    }
    let cache = TEXTS.get(port);
    if (!cache) {
      cache = new LRUCache<string, { sql: string; sql_hmac: string }>({ max: 2000, maxSize: TEXT_CACHE_BYTES, maxEntrySize: TEXT_CACHE_MAX_ENTRY, sizeCalculation: textBytes });
      TEXTS.set(port, cache);
    }
    let text = cache.get(sql);
    if (!text) {
      text = port.text(sql, parsed);
      cache.set(sql, text);
    }
    return text;
  }

  /** The text an event carries: its own statement's within a multi-statement Query, else the whole text. */
  private ownText(sent: SentStatement, statement: AnalyzedStatement | undefined, whole: { sql: string; sql_hmac: string }): { sql: string; sql_hmac: string } {
    if (!this.port || sent.statements.length <= 1) return whole;
    return this.textOf(this.port, statement?.agentSql ?? sent.agentSql, true);
  }

  get enabled(): boolean {
    return this.port !== undefined;
  }

  /** Writes commit only after their events are durable (audit.write_guarantee: durable, the default). */
  get durableWrites(): boolean {
    return this.port !== undefined && this.port.writeGuarantee !== 'async';
  }

  /** The refusal for a statement the audit trail cannot take now (writes always; reads as configured). */
  unavailable(writes: boolean): boolean {
    if (!this.port) return false;
    // Back-pressure: a session whose own events fill its share of the queue waits for them to be written.
    if (this.port.acceptsSession && !this.port.acceptsSession(this.base.sessionId)) return true;
    return writes ? !this.port.acceptsWrites() : !this.port.acceptsReads();
  }

  /**
   * The hook for the pending item that carries `sent`: one event per statement, when its outcome is known.
   * Once every statement is reported the hook lets go of the statement (trees and texts): the
   * session's queue of answered items may keep the hook itself for a while.
   */
  hook(sent: SentStatement, onWrite?: (durable: Promise<boolean>) => void): AuditHook | undefined {
    const { port, metrics } = this;
    if (!port && !metrics) return undefined;
    const started = performance.now();
    const count = Math.max(1, sent.statements.length);
    const reported = new Array<boolean>(count).fill(false);
    let left = count;
    // The policy as the statement was sent: a hot reload before its results arrive must not relabel it.
    // One statement (or a text refused whole): its event carries the whole text. Several: each
    // event carries its own statement's text, so the trail grows with the text, not its square.
    const whole = sent.statements.length <= 1;
    const tool = this.tool;
    let live: { sent: SentStatement; text: { sql: string; sql_hmac: string }; who: Pick<AuditEvent, 'session_id' | 'principal' | 'policy'> } | undefined = {
      sent,
      text: port && whole ? this.textOf(port, sent.agentSql, sent.statements.length > 0, sent.statements[0]?.shape ? { of: sent.statements[0].shape, which: 'agent' } : undefined) : { sql: '', sql_hmac: '' },
      who: this.who(),
    };
    const mark = (index: number): void => {
      reported[index] = true;
      if (--left === 0) live = undefined;
    };
    return {
      result: (index, outcome) => {
        if (index >= count || reported[index] || !live) return;
        const { sent: s, text, who } = live;
        mark(index);
        const statement = s.statements[index];
        const ms = performance.now() - started;
        const draft = withTool(this.event(who, s, this.ownText(s, statement, text), statement, outcome, ms), tool);
        metrics?.statement({
          kind: (statement?.kind ?? s.kind ?? 'unknown') as StatementObservation['kind'],
          decision: draft.decision as StatementObservation['decision'],
          ...(draft.code ? { code: draft.code } : {}),
          upstreamSeconds: ms / 1000,
        });
        if (!port) return undefined;
        const event = port.emit(draft);
        tool?.onEvent?.(event);
        if (statement && isWrite(statement) && event.decision === 'allowed' && port.writeGuarantee !== 'async') {
          // The write's acknowledgement, and its transaction's COMMIT, wait for its event to be durable (I7).
          const durable = port.durable(event).then(
            () => true,
            (err: unknown) => {
              this.log.error({ err: (err as Error).message, event: event.id }, 'audit event of an executed write not confirmed');
              return false;
            },
          );
          onWrite?.(durable);
          return durable.then(() => undefined);
        }
        return undefined;
      },
      skip: () => {
        reported.fill(true);
        left = 0;
        live = undefined;
      },
      end: () => {
        for (let i = 0; i < count && live; i++) {
          if (!reported[i]) {
            const { sent: s, text, who } = live;
            mark(i);
            const event = port?.emit(withTool(this.event(who, s, this.ownText(s, s.statements[i], text), s.statements[i], { rows: 0, error: { code: 'not_executed', message: '' } }, performance.now() - started), tool));
            if (event) tool?.onEvent?.(event);
          }
        }
        live = undefined;
      },
    };
  }

  /**
   * The proxy rolled back a transaction holding writes whose events it could not make durable
   * (or whose session ended before its COMMIT): those events say the writes ran; this one says
   * they did not stay.
   */
  rolledBack(why: string): void {
    this.port?.emit({ kind: 'statement', decision: 'error', ...this.who(), statement_kind: 'transaction', sql: 'ROLLBACK', rewritten_sql: 'ROLLBACK', code: 'audit_unavailable', message: why, rows: 0 });
  }

  /** A connection event: login, login_failed, disconnect. */
  connection(decision: 'login' | 'disconnect', extra: Partial<AuditEvent> = {}): void {
    this.port?.emit({ kind: 'connection', decision, ...this.who(), ...extra });
  }

  private who(): Pick<AuditEvent, 'session_id' | 'principal' | 'policy'> {
    const { sessionId, principal, policy } = this.base;
    return {
      session_id: sessionId,
      principal: { user: principal.user, tenant_id: principal.tenantId, roles: [...principal.roles] },
      policy: { name: policy.name, hash: policy.hash },
    };
  }

  private event(
    who: Pick<AuditEvent, 'session_id' | 'principal' | 'policy'>,
    sent: SentStatement,
    text: { sql: string; sql_hmac: string },
    statement: AnalyzedStatement | undefined,
    outcome: StatementOutcome,
    ms: number,
  ): Omit<AuditEvent, 'id' | 'time'> {
    const refused = outcome.refused;
    const held = refused?.code === 'pending_approval';
    const decision = held ? 'held' : refused ? 'refused' : outcome.error ? 'error' : 'allowed';
    const tagRows = outcome.tag ? TAG_ROWS.exec(outcome.tag)?.[1] : undefined;
    const write = statement?.write;
    const reason = write?.reason ?? sent.tags.reason;
    return {
      kind: 'statement',
      decision,
      ...who,
      statement_kind: statement ? (write?.dryRun ? 'dry_run' : statement.kind) : 'unknown',
      protocol: sent.protocol,
      sql: text.sql,
      sql_hmac: text.sql_hmac,
      ...(statement?.sql && this.port ? { rewritten_sql: this.textOf(this.port, statement.sql, true, statement.shape ? { of: statement.shape, which: 'sent' } : undefined).sql } : {}),
      ...(refused ? { code: refused.code } : outcome.error ? { code: outcome.error.code } : {}),
      // The row count of an INSERT/UPDATE/DELETE/SELECT tag; else the rows the client received.
      rows: tagRows !== undefined ? Number(tagRows) : outcome.rows,
      duration_ms: Math.round(ms * 1000) / 1000,
      ...(reason ? { reason } : {}),
      ...(sent.tags.traceparent ? { trace_id: sent.tags.traceparent } : {}),
      ...(sent.tags.tool_call_id ? { tool_call_id: sent.tags.tool_call_id } : {}),
      ...(statement?.flags?.length ? { flags: [...statement.flags] } : {}),
      ...(held ? { approval_id: /approval_id=(\S+)/.exec(refused?.detail ?? '')?.[1] } : {}),
      ...(write?.capture && outcome.captured && decision === 'allowed' ? { changes: changesOf(write.capture, outcome.captured) } : {}),
    };
  }
}

/** A statement's event with the tool call it ran for. */
function withTool(draft: Omit<AuditEvent, 'id' | 'time'>, tool: ToolAuditContext | undefined): Omit<AuditEvent, 'id' | 'time'> {
  if (!tool) return draft;
  const flags = [...(draft.flags ?? []), ...tool.flags];
  // The call's own id and nothing the statement's text says: db.sql text is the agent's, and a
  // comment in it must not name the call, a trace, or a reason for a read.
  const { tool_call_id: _id, trace_id: _trace, ...rest } = draft;
  const event: Omit<AuditEvent, 'id' | 'time'> = {
    ...rest,
    tool: { name: tool.name, arguments: tool.arguments },
    ...(tool.toolCallId ? { tool_call_id: tool.toolCallId } : {}),
    ...(flags.length > 0 ? { flags } : {}),
  };
  if (tool.name === 'db.sql') delete event.reason;
  return event;
}
