// One audit event per statement the agent sends: built from what the session knew when it sent it and how the database answered.
import { LRUCache } from 'lru-cache';
import type { AnalyzedStatement } from '../analysis/pipeline';
import { CAPTURE_SETTINGS, type AuditEvent } from '../audit/event';
import type { AuditPort } from '../audit/port';
import type { ProxyMetrics, StatementObservation } from '../admin/metrics';
import { changesOf } from '../results/capture-columns';
import type { Principal } from '../auth/principal';
import type { Logger } from '../log';
import type { PolicySnapshot } from '../policy/load';
import type { AuditHook, StatementOutcome } from './pending';
import { StatementHook, type LiveStatement } from './audit-hook';
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
/** Tags of results whose rows went to the agent (capped by max_rows on the wire). */
const READ_TAG = /^(SELECT|FETCH) /;

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
/**
 * Two texts a statement (the agent's and the forwarded one): at 2,000 entries an agent repeating
 * 1,000 statements had every text redacted again (the bench's firstseen scenario); the byte bound
 * above is what limits memory.
 */
const TEXT_CACHE_ENTRIES = 20_000;
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

export type Who = Pick<AuditEvent, 'session_id' | 'principal' | 'policy'>;

/**
 * Told of each write event reported as allowed: its id, and (write_guarantee: durable) whether
 * it became durable.
 */
export type WriteReported = (durable: Promise<boolean> | undefined, eventId: string) => void;

export class StatementAuditor {
  /** Set by the tool engine around each call; bound to a statement when it is sent. */
  tool?: ToolAuditContext;
  private whoOf?: { policy: PolicySnapshot; who: Who };

  constructor(
    private readonly port: AuditPort | undefined,
    private readonly metrics: ProxyMetrics | undefined,
    private readonly base: { sessionId: string; principal: Principal; policy: PolicySnapshot; parameters?: ReadonlyMap<string, string>; settingsUnsettled?: () => boolean },
    private readonly log: Logger,
  ) {}

  /**
   * Redaction parses the statement again; a session repeats its statements (prepared ones on
   * every Execute), so the redacted text and its hash are kept per text, shared by the sessions.
   */
  private textOf(port: AuditPort, sql: string, parsed: boolean, shape?: { of: object; which: 'agent' | 'sent' }): { sql: string; sql_hmac: string } {
    if (shape && port.redacts && port.hmac) return { sql: this.shapeText(port, sql, parsed, shape), sql_hmac: port.hmac(sql) };
    let cache = TEXTS.get(port);
    if (!cache) {
      cache = new LRUCache<string, { sql: string; sql_hmac: string }>({ max: TEXT_CACHE_ENTRIES, maxSize: TEXT_CACHE_BYTES, maxEntrySize: TEXT_CACHE_MAX_ENTRY, sizeCalculation: textBytes });
      TEXTS.set(port, cache);
    }
    let text = cache.get(sql);
    if (!text) {
      text = port.text(sql, parsed);
      cache.set(sql, text);
    }
    return text;
  }

  /** A new literal in a known shape: the redacted text is the shape's (literals are what redaction removes). */
  private shapeText(port: AuditPort, sql: string, parsed: boolean, shape: { of: object; which: 'agent' | 'sent' }): string {
    let texts = SHAPE_TEXTS.get(shape.of);
    if (!texts) SHAPE_TEXTS.set(shape.of, (texts = {}));
    return (texts[shape.which] ??= port.text(sql, parsed).sql);
  }

  /** The forwarded text as the trail keeps it: redacted only, with no hash of its own (an HMAC per statement saved on the simple protocol). */
  private rewrittenOf(port: AuditPort, statement: AnalyzedStatement & { sql: string }): string {
    if (statement.shape && port.redacts && port.hmac) return this.shapeText(port, statement.sql, true, { of: statement.shape, which: 'sent' });
    return this.textOf(port, statement.sql, true).sql;
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
  hook(sent: SentStatement, onWrite?: WriteReported): AuditHook | undefined {
    const port = this.port;
    if (!port && !this.metrics) return undefined;
    // One statement (or a text refused whole): its event carries the whole text. Several: each
    // event carries its own statement's text, so the trail grows with the text, not its square.
    const whole = sent.statements.length <= 1;
    const text = port && whole ? this.textOf(port, sent.agentSql, sent.statements.length > 0, sent.statements[0]?.shape ? { of: sent.statements[0].shape, which: 'agent' } : undefined) : NO_TEXT;
    // The policy as the statement was sent: a hot reload before its results arrive must not relabel it.
    return new StatementHook(this, { sent, text, who: this.who() }, Math.max(1, sent.statements.length), this.tool, onWrite);
  }

  /** Statement `index` of a hook's item ended (StatementHook.result): its event, and for a write the wait for it to be durable. */
  reportEnded(live: LiveStatement, index: number, outcome: StatementOutcome, ms: number, tool: ToolAuditContext | undefined, onWrite?: WriteReported): Promise<void> | undefined {
    const { port, metrics } = this;
    const { sent, text, who } = live;
    const statement = sent.statements[index];
    const draft = withTool(this.event(who, sent, this.ownText(sent, statement, text), statement, outcome, ms), tool);
    const observed: StatementObservation = {
      kind: (statement?.kind ?? sent.kind ?? 'unknown') as StatementObservation['kind'],
      decision: draft.decision as StatementObservation['decision'],
      upstreamSeconds: ms / 1000,
    };
    if (draft.code) observed.code = draft.code;
    metrics?.statement(observed);
    if (!port) return undefined;
    const event = port.emit(draft);
    tool?.onEvent?.(event);
    if (!statement || !isWrite(statement) || event.decision !== 'allowed') return undefined;
    if (port.writeGuarantee === 'async') {
      onWrite?.(undefined, event.id);
      return undefined;
    }
    // The write's acknowledgement, and its transaction's COMMIT, wait for its event to be durable (I7).
    const durable = port.durable(event).then(
      () => true,
      (err: unknown) => {
        this.log.error({ err: (err as Error).message, event: event.id }, 'audit event of an executed write not confirmed');
        return false;
      },
    );
    onWrite?.(durable, event.id);
    return durable.then(() => undefined);
  }

  /** Statement `index` of a hook's item did not run (StatementHook.end). */
  reportNotExecuted(live: LiveStatement, index: number, ms: number, tool: ToolAuditContext | undefined): void {
    const { sent, text, who } = live;
    const statement = sent.statements[index];
    const event = this.port?.emit(withTool(this.event(who, sent, this.ownText(sent, statement, text), statement, { rows: 0, error: { code: 'not_executed', message: '' } }, ms), tool));
    if (event) tool?.onEvent?.(event);
  }

  /**
   * A transaction holding writes ended without committing: the proxy rolled it back (their events
   * could not be made durable, or the session ended before its COMMIT), or PostgreSQL did (an
   * error in it, its COMMIT failed, a ROLLBACK). Those events say the writes ran; this one, listing
   * them in `undoes` (`code`: why), says they did not stay.
   */
  rolledBack(why: string, undoes: readonly string[] = [], code = 'audit_unavailable', more = 0, range?: [string, string]): void {
    this.port?.emit({
      kind: 'statement',
      // The agent's own ROLLBACK (TO SAVEPOINT) is no error; a failure or the proxy's rollback is.
      decision: code === 'rolled_back' || code === 'rolled_back_to_savepoint' ? 'rolled_back' : 'error',
      ...this.who(),
      statement_kind: 'transaction',
      sql: 'ROLLBACK',
      rewritten_sql: 'ROLLBACK',
      code,
      message: why,
      rows: 0,
      ...(undoes.length > 0 || more > 0 ? { undoes: [...undoes] } : {}),
      ...(more > 0 ? { undoes_more: more } : {}),
      ...(more > 0 && range ? { undoes_range: range } : {}),
    });
  }

  /** A connection event: login, login_failed, disconnect. */
  connection(decision: 'login' | 'disconnect', extra: Partial<AuditEvent> = {}): void {
    this.port?.emit({ kind: 'connection', decision, ...this.who(), ...extra });
  }

  /**
   * Who the events are about, frozen and shared by every event under one policy snapshot: the
   * audit file serialises a frozen value once (audit/canonical.ts), not once per statement.
   */
  private who(): Who {
    const { sessionId, principal, policy } = this.base;
    if (this.whoOf?.policy === policy) return this.whoOf.who;
    const who: Who = Object.freeze({
      session_id: sessionId,
      principal: Object.freeze({ user: principal.user, tenant_id: principal.tenantId, roles: Object.freeze([...principal.roles]) as string[] }),
      policy: Object.freeze({ name: policy.name, hash: policy.hash }),
    });
    this.whoOf = { policy, who };
    return who;
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
    // Fields set one by one, in the order the trail has always written them (the line keeps it).
    const event: Omit<AuditEvent, 'id' | 'time'> = {
      kind: 'statement',
      decision,
      session_id: who.session_id,
      principal: who.principal,
      policy: who.policy,
      statement_kind: statement ? (write?.dryRun ? 'dry_run' : statement.kind) : 'unknown',
      protocol: sent.protocol,
      sql: text.sql,
      sql_hmac: text.sql_hmac,
    };
    if (statement?.sql && this.port) event.rewritten_sql = this.rewrittenOf(this.port, statement);
    if (refused) event.code = refused.code;
    else if (outcome.error) event.code = outcome.error.code;
    // A write's rows are PostgreSQL's count (its tag, a write in a SELECT's WITH too); a read's
    // (SELECT, FETCH) are the rows the agent received: past max_rows the database sent one more,
    // which the proxy kept back.
    event.rows = tagRows !== undefined && (write !== undefined || !READ_TAG.test(outcome.tag!)) ? Number(tagRows) : outcome.rows;
    event.duration_ms = Math.round(ms * 1000) / 1000;
    if (reason) event.reason = reason;
    if (sent.tags.traceparent) event.trace_id = sent.tags.traceparent;
    if (sent.tags.tool_call_id) event.tool_call_id = sent.tags.tool_call_id;
    if (statement?.flags?.length) event.flags = [...statement.flags];
    if (held) event.approval_id = /approval_id=(\S+)/.exec(refused?.detail ?? '')?.[1];
    if (write?.capture && outcome.captured && decision === 'allowed') {
      // Written while a change of those settings was not yet reported: their text cannot be read back for sure.
      const unsettled = this.base.settingsUnsettled?.() === true;
      event.changes = changesOf(write.capture, outcome.captured, unsettled ? { unknown: 'true' } : textSettings(this.base.parameters));
    }
    return event;
  }
}

const NO_TEXT = { sql: '', sql_hmac: '' };

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

/**
 * The session's settings that a captured value's text depends on (DateStyle's field order,
 * IntervalStyle, TimeZone): a rollback reads the values back under the same ones.
 */
function textSettings(parameters: ReadonlyMap<string, string> | undefined): Record<string, string> | undefined {
  if (!parameters) return undefined;
  const out: Record<string, string> = {};
  for (const name of CAPTURE_SETTINGS) {
    const value = parameters.get(name);
    if (value !== undefined) out[name] = value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}
