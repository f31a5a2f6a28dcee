// One client session: frontend messages in, analysis, forwarding upstream, responses back in order.
import type net from 'node:net';
import { serialize } from 'pg-protocol';
import type { Principal } from '../auth/principal';
import { analyze, type Analysis } from '../analysis/pipeline';
import type { ProxyConfig } from '../config/load';
import { ProxyError, toProxyError } from '../errors/catalogue';
import type { Logger } from '../log';
import type { PolicySnapshot } from '../policy/load';
import type { FrontendDecoder } from '../protocol/frontend/decoder';
import type { FrontendMessage } from '../protocol/frontend/messages';
import { parameterStatusOf, type BackendFrame } from '../protocol/backend/framer';
import * as backend from '../protocol/backend/serializer';
import { cancelUpstream, type UpstreamHandshake } from '../upstream/connect';
import { PendingQueue, type PendingItem } from './pending';

/**
 * Sent upstream in place of a refused statement. It fails in the parser, so the
 * upstream reacts exactly as PostgreSQL does to any error (the transaction block
 * fails, an extended-protocol batch is skipped up to Sync), and the proxy replaces
 * the resulting ErrorResponse with its own. Nothing of the refused text is sent.
 */
const REFUSED_SENTINEL = 'ORMAI_PROXY_REFUSED_STATEMENT';

/** Pause reading from the client while this much is queued towards the upstream. */
const UPSTREAM_HIGH_WATER = 4 * 1024 * 1024;

/** The upstream's role and superuser status are the proxy's business, not the agent's. */
export function clientParameterValue(name: string, value: string, principal: Principal): string {
  if (name === 'session_authorization') return principal.user;
  if (name === 'is_superuser') return 'off';
  return value;
}

export interface SessionDeps {
  id: string;
  client: net.Socket;
  decoder: FrontendDecoder;
  upstream: UpstreamHandshake;
  principal: Principal;
  policy: PolicySnapshot;
  config: ProxyConfig;
  log: Logger;
  onClose: () => void;
}

export class Session {
  private readonly pending = new PendingQueue();
  private readonly client: net.Socket;
  private readonly server: net.Socket;
  private closed = false;
  private terminating = false;
  /** Transaction status from the last ReadyForQuery: I idle, T in a block, E failed block. */
  txStatus: 'I' | 'T' | 'E' = 'I';

  constructor(private readonly deps: SessionDeps) {
    this.client = deps.client;
    this.server = deps.upstream.socket;
  }

  start(initial: FrontendMessage[]): void {
    this.client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    this.client.on('close', () => this.onClientClose());
    this.client.on('error', (err) => this.deps.log.debug({ err: err.message }, 'client socket error'));
    this.client.on('drain', () => this.server.resume());
    this.server.on('data', (chunk: Buffer) => this.onUpstreamData(chunk));
    this.server.on('close', () => this.onUpstreamClose());
    this.server.on('error', (err) => this.deps.log.warn({ err: err.message }, 'upstream socket error'));
    this.server.on('drain', () => this.client.resume());
    if (this.deps.upstream.leftover.length > 0) this.relay(this.deps.upstream.leftover);
    this.handleMessages(initial);
  }

  /** Cancel the statement running upstream (the client sent a CancelRequest). */
  cancel(): void {
    const { upstream, config } = this.deps;
    void cancelUpstream(config.upstream, upstream.processId, upstream.secretKey);
  }

  /** Ends the session from outside (proxy shutdown). */
  shutdown(error: ProxyError): void {
    this.fatal(error);
  }

  // ---- client → upstream ----

  private onClientData(chunk: Buffer): void {
    if (this.closed) return;
    let messages: FrontendMessage[];
    try {
      messages = this.deps.decoder.push(chunk) as FrontendMessage[];
    } catch (err) {
      this.fatal(toProxyError(err));
      return;
    }
    this.handleMessages(messages);
  }

  private handleMessages(messages: FrontendMessage[]): void {
    // One write towards the upstream per batch of client messages, however many they are.
    this.server.cork();
    try {
      for (const message of messages) {
        if (this.closed || this.terminating) return;
        this.handle(message);
      }
    } catch (err) {
      const error = toProxyError(err);
      if (error.logMessage) this.deps.log.error({ err: error.logMessage }, 'session failed');
      this.fatal(error);
      return;
    } finally {
      this.server.uncork();
    }
    if (this.server.writableLength > UPSTREAM_HIGH_WATER) this.client.pause();
  }

  private handle(message: FrontendMessage): void {
    switch (message.type) {
      case 'Query': {
        const result = this.analyze(message.sql, 'simple');
        if (result.ok) this.forward(serialize.query(result.sql), 'query');
        else this.forward(serialize.query(REFUSED_SENTINEL), 'query', result.error);
        return;
      }
      case 'Parse': {
        const result = this.analyze(message.sql, 'extended');
        if (result.ok) this.forward(serialize.parse({ name: message.name, text: result.sql, types: message.paramTypes }), 'parse');
        else this.forward(serialize.parse({ name: message.name, text: REFUSED_SENTINEL, types: [] }), 'parse', result.error);
        return;
      }
      case 'Bind':
        return this.forward(message.raw, 'bind');
      case 'Describe':
        return this.forward(message.raw, 'describe');
      case 'Execute':
        return this.forward(message.raw, 'execute');
      case 'Close':
        return this.forward(message.raw, 'close');
      case 'Sync':
        return this.forward(message.raw, 'sync');
      case 'Flush':
        this.server.write(message.raw);
        return;
      case 'Terminate':
        this.terminate();
        return;
      case 'CopyData':
      case 'CopyDone':
      case 'CopyFail':
        // COPY is never allowed, so the session is never in copy mode; PostgreSQL
        // ignores these messages outside copy mode, and so does the proxy.
        return;
      case 'FunctionCall':
        this.forward(
          serialize.query(REFUSED_SENTINEL),
          'query',
          new ProxyError('statement_not_allowed', { message: 'the fast-path function call interface is not allowed' }),
        );
        return;
      case 'AuthResponse':
        throw new ProxyError('protocol_violation', { message: 'unexpected authentication message after startup' });
    }
  }

  private analyze(sql: string, protocol: 'simple' | 'extended'): Analysis {
    const { policy } = this.deps;
    const result = analyze(sql, {
      protocol,
      statementTimeoutMaxMs: policy.statementTimeoutMs,
      writeGate: (target) => policy.isWriteAllowed(target),
    });
    if (!result.ok) this.deps.log.info({ code: result.error.code, protocol }, 'statement refused');
    return result;
  }

  private forward(bytes: Buffer, kind: PendingItem['kind'], refused?: ProxyError): void {
    this.pending.push(kind, refused);
    this.server.write(bytes);
  }

  // ---- upstream → client ----

  private onUpstreamData(chunk: Buffer): void {
    if (this.closed) return;
    let frames: BackendFrame[];
    try {
      frames = this.deps.upstream.framer.push(chunk);
    } catch (err) {
      this.deps.log.error({ err: (err as Error).message }, 'invalid data from upstream');
      this.fatal(new ProxyError('upstream_lost'));
      return;
    }
    this.relay(frames);
  }

  private relay(frames: BackendFrame[]): void {
    const out: Buffer[] = [];
    try {
      for (const frame of frames) {
        const bytes = this.route(frame);
        if (bytes) out.push(bytes);
      }
    } catch (err) {
      const error = toProxyError(err);
      this.deps.log.error({ err: error.logMessage ?? error.message }, 'session failed on upstream data');
      if (out.length > 0) this.client.write(Buffer.concat(out));
      this.fatal(error);
      return;
    }
    if (out.length === 0) return;
    const ok = this.client.write(out.length === 1 ? out[0] : Buffer.concat(out));
    if (!ok) this.server.pause();
  }

  /** Attributes one upstream message to the pending request it answers; returns the bytes to send on. */
  private route(frame: BackendFrame): Buffer | undefined {
    const head = this.pending.peek();
    switch (frame.code) {
      case 'N': // NoticeResponse
      case 'A': // NotificationResponse
        return frame.raw;
      case 'S':
        return this.parameterStatus(frame);
      case 'E':
        return this.upstreamError(frame, head);
      case 'Z':
        this.expect(head, frame, 'query', 'sync');
        this.pending.shift();
        this.txStatus = String.fromCharCode(frame.raw[5]) as 'I' | 'T' | 'E';
        return frame.raw;
      case '1':
        this.complete(head, frame, 'parse');
        return frame.raw;
      case '2':
        this.complete(head, frame, 'bind');
        return frame.raw;
      case '3':
        this.complete(head, frame, 'close');
        return frame.raw;
      case 't': // ParameterDescription, first half of a statement Describe
        this.expect(head, frame, 'describe');
        return frame.raw;
      case 'T': // RowDescription
        if (head?.kind === 'describe') this.pending.shift();
        else this.expect(head, frame, 'query');
        return frame.raw;
      case 'n': // NoData
        this.complete(head, frame, 'describe');
        return frame.raw;
      case 'D':
        this.expect(head, frame, 'query', 'execute');
        head!.rows++;
        return frame.raw;
      case 'C': // CommandComplete
      case 'I': // EmptyQueryResponse
        if (head?.kind === 'execute') this.pending.shift();
        else this.expect(head, frame, 'query');
        return frame.raw;
      case 's': // PortalSuspended
        this.complete(head, frame, 'execute');
        return frame.raw;
      default:
        // COPY and anything else a checked statement cannot produce: fail closed.
        throw new ProxyError('internal_error', { logMessage: `unexpected upstream message '${frame.code}'` });
    }
  }

  private expect(head: PendingItem | undefined, frame: BackendFrame, ...kinds: PendingItem['kind'][]): void {
    if (!head || !kinds.includes(head.kind)) {
      throw new ProxyError('internal_error', {
        logMessage: `upstream message '${frame.code}' does not answer the pending ${head?.kind ?? 'nothing'}`,
      });
    }
  }

  private complete(head: PendingItem | undefined, frame: BackendFrame, kind: PendingItem['kind']): void {
    this.expect(head, frame, kind);
    this.pending.shift();
  }

  private upstreamError(frame: BackendFrame, head: PendingItem | undefined): Buffer {
    if (!head) return frame.raw; // e.g. FATAL before the upstream closes
    const bytes = head.refused ? backend.errorResponse(head.refused.toFields()) : frame.raw;
    if (head.kind !== 'query' && head.kind !== 'sync') {
      this.pending.shift();
      this.pending.skipToSync();
    }
    return bytes;
  }

  private parameterStatus(frame: BackendFrame): Buffer {
    const { name, value } = parameterStatusOf(frame);
    const shown = clientParameterValue(name, value, this.deps.principal);
    return shown === value ? frame.raw : backend.parameterStatus(name, shown);
  }

  // ---- endings ----

  private terminate(): void {
    this.terminating = true;
    this.server.end(serialize.end());
    this.client.end();
    this.close();
  }

  /** Sends a FATAL error to the client and ends the session. */
  private fatal(error: ProxyError): void {
    if (this.closed) return;
    const fields = { ...error.toFields(), severity: 'FATAL' };
    this.client.end(backend.errorResponse(fields));
    this.releaseUpstream();
    this.close();
  }

  private onClientClose(): void {
    if (this.closed) return;
    this.releaseUpstream();
    this.close();
  }

  private onUpstreamClose(): void {
    if (this.closed || this.terminating) return;
    this.deps.log.warn('upstream connection lost');
    this.fatal(new ProxyError('upstream_lost'));
  }

  /** Cancels anything still running upstream, then closes the upstream session. */
  private releaseUpstream(): void {
    if (this.pending.size > 0) {
      const { upstream, config } = this.deps;
      void cancelUpstream(config.upstream, upstream.processId, upstream.secretKey).finally(() => this.server.destroy());
    } else if (!this.server.destroyed) {
      this.server.end(serialize.end());
    }
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.deps.onClose();
  }
}
