// Routes each upstream message to the request it answers and decides what the client receives.
import type { Principal } from '../auth/principal';
import { ProxyError } from '../errors/catalogue';
import { withAgentPosition } from '../results/error-position';
import { sanitizeWriteError } from '../results/write-errors';
import { scrubExplainRow } from '../results/explain';
import { commandCompleteTag, errorFields, parameterStatusOf, readyForQueryStatus, type BackendFrame } from '../protocol/backend/framer';
import * as backend from '../protocol/backend/serializer';
import { cutDataRow, cutRowDescription, noData } from '../results/capture-columns';
import { RowCap } from '../results/row-cap';
import { PendingQueue, skipEffects, type PendingItem, type PendingKind, type StatementOutcome } from './pending';

/** The upstream's role and superuser status are the proxy's business, not the agent's. */
export function clientParameterValue(name: string, value: string, principal: Principal): string {
  if (name === 'session_authorization') return principal.user;
  if (name === 'is_superuser') return 'off';
  return value;
}

export class ResponseRouter {
  readonly pending = new PendingQueue();
  /** Transaction status from the last ReadyForQuery: I idle, T in a block, E failed block. */
  txStatus: 'I' | 'T' | 'E' = 'I';
  /** Called on every ReadyForQuery (portals end with their transaction). */
  onReady: (status: 'I' | 'T' | 'E') => void = () => undefined;
  /** Called on every ErrorResponse that answers a request: the transaction failed (portals with it). */
  onError: () => void = () => undefined;
  /**
   * Called when a COMMIT completes: PostgreSQL has committed by then, whether or not a
   * ReadyForQuery follows (an extended-protocol COMMIT commits at its Execute, before any Sync).
   * Its tag names nothing else; ROLLBACK's is also ROLLBACK TO SAVEPOINT's.
   */
  onCommitted: () => void = () => undefined;
  /** For the transaction's outcome, called for the proxy's own statements too: an ErrorResponse, with its SQLSTATE. */
  onFailed: (code: string) => void = () => undefined;
  /** Set by route() when an audit hook asked to hold the client's output; taken by the session. */
  private gate?: Promise<void>;
  /** DataRows the client received for the result in progress. */
  private rowsSent = 0;
  /**
   * Whether answers still reach the client. Once it is gone (or the session is ending), rows are
   * still routed, to complete the audit events, but not counted as received.
   */
  delivering = true;

  /** A promise the client's output from the last routed frame on must wait for, once. */
  takeGate(): Promise<void> | undefined {
    const gate = this.gate;
    this.gate = undefined;
    return gate;
  }

  private report(head: PendingItem, outcome: Omit<StatementOutcome, 'rows'>): void {
    const rows = this.rowsSent;
    this.rowsSent = 0;
    const captured = head.captures?.[head.kind === 'query' ? head.result : 0];
    // Each caller passes an outcome of its own: it is completed in place, not copied.
    const full = outcome as StatementOutcome;
    full.rows = rows;
    if (captured) full.captured = captured;
    const held = head.audit?.result(head.result, full);
    if (held) this.gate = this.gate ? this.gate.then(() => held) : held;
  }

  /**
   * `parameters`: the upstream session's reported settings (its handshake's), kept as PostgreSQL
   * reports changes (the audit records the ones a captured value's text depends on).
   */
  constructor(
    private readonly principal: Principal,
    private readonly parameters?: Map<string, string>,
  ) {}

  /**
   * A row given in pieces (BackendFrame.piece) that must be read whole instead: one whose
   * columns are cut for a capture or an EXPLAIN line that is scrubbed. The session then has the
   * framer hold it (assembleCurrent) and routes it once complete.
   */
  needsWhole(frame: BackendFrame): boolean {
    const head = this.pending.peek();
    if (frame.piece !== 'first' || !head || head.silent) return false;
    const at = head.kind === 'query' ? head.result : 0;
    return head.explains?.[at] !== undefined || head.captures?.[at] !== undefined;
  }

  /** The row being given in pieces goes to the client (it was admitted under the row cap). */
  private pieces = false;

  /**
   * Part of a row has gone to the client and the rest not yet: nothing else may be written to the
   * client before the rest (a message there would be read as the row's bytes).
   */
  get rowHalfSent(): boolean {
    return this.pieces;
  }

  /** Returns the bytes to send to the client for this upstream message (possibly none). */
  route(frame: BackendFrame): Buffer | undefined {
    if (frame.piece === 'more') {
      const send = this.pieces;
      if (frame.end && send) {
        this.pieces = false;
        // A row counts once the client has all of it.
        if (this.delivering) this.rowsSent++;
      }
      return send ? frame.raw : undefined;
    }
    const head = this.pending.peek();
    if (head?.silent && head.kind === 'query') return this.ownQuery(frame, head);
    switch (frame.code) {
      case 'N': // NoticeResponse
        return this.notice(frame);
      case 'A': // NotificationResponse
        return frame.raw;
      case 'S':
        return this.parameterStatus(frame);
      case 'E':
        return this.error(frame, head);
      case 'Z': {
        this.expect(head, frame, 'query', 'sync');
        this.pending.shift();
        head!.effect?.done();
        skipEffects(head!);
        head!.audit?.end();
        this.txStatus = readyForQueryStatus(frame) as 'I' | 'T' | 'E';
        this.onReady(this.txStatus);
        if (head!.wrapped) {
          // The block the proxy opened is still open: the client's ReadyForQuery follows its COMMIT.
          head!.wrapped(this.txStatus);
          return undefined;
        }
        return frame.raw;
      }
      case '1':
        return this.complete(head, frame, 'parse');
      case '2':
        return this.complete(head, frame, 'bind');
      case '3':
        return this.complete(head, frame, 'close');
      case 't': // ParameterDescription, first half of a statement Describe
        this.expect(head, frame, 'describe');
        return frame.raw;
      case 'T': { // RowDescription: a Describe's answer, or a new result set of a simple query
        if (head?.kind === 'describe') {
          this.pending.shift();
          const spec = head.captures?.[0];
          return spec ? (cutRowDescription(frame, spec) ?? noData()) : frame.raw;
        }
        this.expect(head, frame, 'query');
        head!.cap = head!.caps?.[head!.result] ?? new RowCap(head!.rowLimits?.[head!.result]);
        const spec = head!.captures?.[head!.result];
        return spec ? cutRowDescription(frame, spec) : frame.raw;
      }
      case 'n': // NoData
        return this.complete(head, frame, 'describe');
      case 'D': {
        this.expect(head, frame, 'query', 'execute');
        // The statement whose rows these are: a query's result in progress, or the execute's one.
        const at = head!.kind === 'query' ? head!.result : 0;
        const hidden = head!.explains?.[at];
        if (hidden) {
          if (head!.cap && !head!.cap.admit()) return undefined;
          if (this.delivering) this.rowsSent++;
          return scrubExplainRow(frame, hidden);
        }
        const spec = head!.captures?.[at];
        if (spec) {
          // The capture values are kept for every row; the agent's part of the row counts against its cap.
          const row = cutDataRow(frame, spec);
          if (!row || (head!.cap && !head!.cap.admit())) return undefined;
          if (this.delivering) this.rowsSent++;
          return row;
        }
        if (head!.cap && !head!.cap.admit()) return undefined;
        // The rest of a row given in pieces follows it (needsWhole kept the others whole).
        if (frame.piece === 'first') this.pieces = true;
        else if (this.delivering) this.rowsSent++;
        return frame.raw;
      }
      case 'C': // CommandComplete
      case 'I': // EmptyQueryResponse
        return this.endResult(frame, head);
      case 's': // PortalSuspended
        this.expect(head, frame, 'execute');
        this.report(head!, { tag: 'SUSPENDED' });
        this.pending.shift();
        head!.audit?.end();
        return frame.raw;
      default:
        // COPY and anything else a checked statement cannot produce: fail closed.
        throw new ProxyError('internal_error', { logMessage: `unexpected upstream message '${frame.code}'` });
    }
  }

  /**
   * A simple Query the proxy sent on its own (the session's barrier views): none of its answers
   * reach the client, except what the client would see of any session (notifications, parameter
   * changes). Its effect applies on ReadyForQuery: done when no error came, failed otherwise.
   */
  private ownQuery(frame: BackendFrame, head: PendingItem): Buffer | undefined {
    switch (frame.code) {
      case 'A':
        return frame.raw;
      case 'S':
        return this.parameterStatus(frame);
      case 'E': {
        const fields = errorFields(frame);
        head.ownError = fields.message ?? '';
        head.ownErrorCode = fields.code ?? 'XX000';
        head.ownErrorFrame = frame.raw;
        this.onFailed(head.ownErrorCode);
        return undefined;
      }
      case 'C':
        head.ownTag = commandCompleteTag(frame);
        if (head.ownTag === 'COMMIT') this.onCommitted();
        return undefined;
      case 'Z':
        this.pending.shift();
        this.txStatus = readyForQueryStatus(frame) as 'I' | 'T' | 'E';
        if (head.ownError === undefined) head.effect?.done();
        else head.effect?.failed();
        this.onReady(this.txStatus);
        head.answered?.(head.ownError, head);
        return undefined;
      default:
        return undefined;
    }
  }

  private endResult(frame: BackendFrame, head: PendingItem | undefined): Buffer {
    this.expect(head, frame, 'query', 'execute');
    const bytes = frame.code === 'C' && head!.cap ? head!.cap.complete(frame) : frame.raw;
    const tag = frame.code === 'C' ? commandCompleteTag(frame) : '';
    if (tag === 'COMMIT') this.onCommitted();
    this.report(head!, { tag });
    this.pending.progressed();
    head!.effects?.[head!.kind === 'query' ? head!.result : 0]?.done();
    if (head!.kind === 'execute') {
      this.pending.shift();
      head!.audit?.end();
    } else {
      head!.result++;
      head!.cap = undefined;
    }
    return bytes;
  }

  private expect(head: PendingItem | undefined, frame: BackendFrame, ...kinds: PendingKind[]): void {
    if (!head || !kinds.includes(head.kind)) {
      throw new ProxyError('internal_error', {
        logMessage: `upstream message '${frame.code}' does not answer the pending ${head?.kind ?? 'nothing'}`,
      });
    }
  }

  private complete(head: PendingItem | undefined, frame: BackendFrame, kind: PendingKind): Buffer | undefined {
    this.expect(head, frame, kind);
    this.pending.shift();
    head!.effect?.done();
    return head!.silent ? undefined : frame.raw;
  }

  private error(frame: BackendFrame, head: PendingItem | undefined): Buffer {
    if (!head) return frame.raw; // e.g. FATAL before the upstream closes
    head.effect?.failed();
    head.effects?.[head.kind === 'query' ? head.result : 0]?.failed();
    this.onError();
    const failed = head.refused ? undefined : errorFields(frame);
    this.onFailed(head.refused?.sqlstate ?? failed?.code ?? 'XX000');
    let bytes = frame.raw;
    if (head.refused) bytes = backend.errorResponse(head.refused.toFields());
    else {
      if (head.texts) bytes = withAgentPosition(bytes, head.texts.sent, head.texts.agent);
      if (head.writeErrors) bytes = sanitizeWriteError(bytes, head.writeErrors);
    }
    const fields = failed;
    const outcome = head.refused ? { refused: head.refused } : { error: { code: fields?.code ?? 'XX000', message: fields?.message ?? '' } };
    if (head.audit) this.report(head, outcome);
    if (head.kind !== 'query' && head.kind !== 'sync') {
      this.pending.shift();
      head.audit?.end();
      // An error at Parse or Bind of an allowed statement belongs to its Execute, skipped below.
      this.pending.skipToSync(head.audit ? undefined : { ...outcome, rows: 0 }, head.failedAudit);
    }
    return bytes;
  }

  /**
   * DEBUG and LOG messages describe the server's internals (plans, the proxy's rewritten text);
   * they reach a client only if client_min_messages was lowered, which the agent may not do, and
   * never leave the proxy.
   */
  private notice(frame: BackendFrame): Buffer | undefined {
    const severity = errorFields(frame).severity;
    return severity === 'DEBUG' || severity === 'LOG' ? undefined : frame.raw;
  }

  /**
   * The session ends with requests unanswered: the statement running reports `error`, the
   * requests behind it did not run (their events say so), and no change they carried applies.
   */
  abandon(error: ProxyError, as: 'refused' | 'error' = 'refused'): void {
    const items = this.pending.drain();
    // The statement running is the first with an event before the batch ends (a Parse or Bind
    // being planned reports through its Execute).
    const sync = items.findIndex((item) => item.kind === 'sync');
    const running = items.findIndex((item, i) => item.audit !== undefined && (sync < 0 || i < sync));
    items.forEach((item, i) => {
      if (i === running) this.report(item, as === 'refused' ? { refused: error } : { error: { code: error.sqlstate, message: error.message } });
      item.audit?.end();
      skipEffects(item);
      item.answered?.(error.message);
    });
  }

  private parameterStatus(frame: BackendFrame): Buffer {
    const { name, value } = parameterStatusOf(frame);
    this.parameters?.set(name, value);
    const shown = clientParameterValue(name, value, this.principal);
    return shown === value ? frame.raw : backend.parameterStatus(name, shown);
  }
}

