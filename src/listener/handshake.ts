// The startup phase of one client connection: TLS negotiation, startup packet, authentication, upstream session.
import net from 'node:net';
import tls from 'node:tls';
import { ulid } from 'ulid';
import { beginAuth, type AuthRequest, type AuthSettings } from '../auth/authenticator';
import type { ProxyConfig } from '../config/load';
import { ProxyError, toProxyError } from '../errors/catalogue';
import type { Logger } from '../log';
import { selectPolicy } from '../policy/load';
import type { ScopeProvider } from '../policy/provider';
import { tenantFitsType } from '../policy/tenant';
import type { StatementCache } from '../analysis/cache';
import type { ProxyMetrics } from '../admin/metrics';
import type { ApprovalStore } from '../approvals/types';
import type { AuditPort } from '../audit/port';
import type { RateLimitStore } from '../budgets/rate-limit';
import type { Planner } from '../budgets/planner';
import { FrontendDecoder } from '../protocol/frontend/decoder';
import type { FrontendMessage } from '../protocol/frontend/messages';
import * as backend from '../protocol/backend/serializer';
import { clientParameterValue } from '../session/router';
import { Session } from '../session/session';
import { connectUpstream, ownStartupQuery, UpstreamConnectError } from '../upstream/connect';
import { barrierViewsCreation, barrierViewsOf } from '../analysis/rewrite/derived';
import type { SessionViewsAtStart } from '../session/barrier-views';
import type { PreparedTextBudget } from '../session/state';
import type { CancelRegistry } from './cancel';
import { ClientGone, PacketStream } from './packet-stream';
import { filterStartupParams } from './startup-params';
import { TENANT_SETTING } from '../policy/row-security';

export interface ListenerContext {
  config: ProxyConfig;
  scopes: ScopeProvider;
  cache: StatementCache;
  /** What every session's prepared statements hold together (session.max_prepared_size_total). */
  preparedText?: PreparedTextBudget;
  rateLimits: RateLimitStore;
  approvals?: ApprovalStore | undefined;
  audit?: AuditPort | undefined;
  metrics?: ProxyMetrics | undefined;
  planner: Planner;
  auth: AuthSettings;
  cancels: CancelRegistry;
  log: Logger;
  /** Agent sessions past authentication right now, this one included. */
  openConnections: () => number;
  /** Logged-in sessions of a tenant. */
  tenantSessions: (tenantId: string) => number;
  onSession: (session: Session) => void;
  onSessionClosed: (session: Session) => void;
}

/** After a FATAL, the client has this long to read it and close before the socket is destroyed. */
const LINGER_MS = 1000;

function authMessage(request: AuthRequest): Buffer {
  switch (request.kind) {
    case 'cleartext':
      return backend.authenticationCleartextPassword();
    case 'sasl':
      return backend.authenticationSASL(request.mechanisms);
    case 'sasl-continue':
      return backend.authenticationSASLContinue(request.data);
    case 'sasl-final':
      return backend.authenticationSASLFinal(request.data);
  }
}

/** A loopback peer or listener address (IPv4, IPv6, or IPv4-mapped). */
export function isLoopback(address: string | undefined): boolean {
  return !!address && (address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.'));
}

export async function handshake(raw: net.Socket, ctx: ListenerContext): Promise<void> {
  const { config, log } = ctx;
  const id = ulid();
  // Until the login succeeds a message may be no larger than a startup packet: the decoder refuses
  // a longer one as soon as its length header is read, before any of its bytes are buffered.
  const stream = new PacketStream(new FrontendDecoder({ maxMessageSize: config.startup.maxMessageSize }));
  let socket: net.Socket = raw;
  let secure = false;
  let attemptedUser: string | undefined;
  /** How that user was being authenticated (the failed-login metric's method). */
  let attemptedMethod: string | undefined;
  let timedOut = false;
  // The socket closes once the client has read the FATAL (or after LINGER_MS); the pending read
  // then fails with ClientGone and the steps below stop.
  const timer = setTimeout(() => {
    timedOut = true;
    ctx.metrics?.connectionRefused('startup_timeout');
    fatal(new ProxyError('authentication_timeout'));
  }, config.startup.timeoutMs);
  function fatal(err: unknown): void {
    const error = toProxyError(err);
    if (error.code === 'message_too_large') ctx.metrics?.connectionRefused('startup_message_too_large');
    if (error.code === 'too_many_connections') ctx.metrics?.connectionRefused('too_many_connections');
    // A refused login is an audit event; a probe that never named a user is not.
    if (error.code === 'authentication_failed') ctx.metrics?.login(attemptedMethod ?? 'other', false);
    if (attemptedUser !== undefined) {
      ctx.audit?.emit({ kind: 'connection', decision: 'login_failed', session_id: id, code: error.code, client: raw.remoteAddress ?? '', message: `user "${attemptedUser}"` });
    }
    if (error.logMessage) log.warn({ session: id, code: error.code, reason: error.logMessage }, 'connection refused');
    else log.info({ session: id, code: error.code }, 'connection refused');
    if (!socket.destroyed) {
      socket.end(backend.errorResponse({ ...error.toFields(), severity: 'FATAL' }));
      // A client that keeps sending instead of reading the answer does not keep the socket.
      const s = socket;
      setTimeout(() => s.destroy(), LINGER_MS).unref();
    }
  }

  try {
    stream.attach(socket);
    let startup;
    // PostgreSQL answers one SSLRequest and one GSSENCRequest (none after TLS is up); a repeated
    // one is read as a startup packet of protocol 1234.5679 / 1234.5680 and refused.
    let sslDone = false;
    let gssDone = false;
    for (;;) {
      const packet = await stream.next();
      if ((packet.type === 'SSLRequest' && sslDone) || (packet.type === 'GSSENCRequest' && gssDone)) {
        throw new ProxyError('unsupported_protocol', { message: `unsupported frontend protocol 1234.${packet.type === 'SSLRequest' ? 5679 : 5680}: server supports 3.0 to 3.0` });
      }
      if (packet.type === 'SSLRequest') {
        sslDone = true;
        if (!config.tls || secure) {
          socket.write(backend.sslResponse(false));
          stream.resumeDecoding();
          continue;
        }
        // Bytes sent before the TLS handshake must not be read as part of the encrypted session.
        if (stream.decoder.bufferedBytes() > 0 || stream.queued > 0) {
          throw new ProxyError('protocol_violation', { message: 'received unencrypted data after SSL request' });
        }
        socket.write(backend.sslResponse(true));
        stream.detach();
        socket = new tls.TLSSocket(socket, { isServer: true, cert: config.tls.cert, key: config.tls.key });
        secure = true;
        gssDone = true;
        stream.attach(socket);
        continue;
      }
      if (packet.type === 'GSSENCRequest') {
        gssDone = true;
        socket.write(backend.sslResponse(false));
        stream.resumeDecoding();
        continue;
      }
      if (packet.type === 'CancelRequest') {
        const matched = ctx.cancels.cancel(packet.processId, packet.secretKey);
        log.debug({ matched }, 'cancel request');
        socket.destroy();
        return;
      }
      if (packet.type === 'StartupMessage') {
        startup = packet;
        break;
      }
      throw new ProxyError('protocol_violation', { message: 'expected a startup packet' });
    }

    if (startup.majorVersion !== 3) throw new ProxyError('unsupported_protocol', { message: `unsupported frontend protocol ${startup.majorVersion}.${startup.minorVersion}` });
    const request = filterStartupParams(startup.params);
    attemptedUser = request.user;
    if (startup.minorVersion > 0 || request.protocolOptions.length > 0) {
      socket.write(backend.negotiateProtocolVersion(0, request.protocolOptions));
    }
    if (config.tls?.required && !secure) throw new ProxyError('ssl_required');
    if (ctx.openConnections() > config.maxClientConnections) throw new ProxyError('too_many_connections');

    const conversation = beginAuth(ctx.auth, request.user);
    attemptedMethod = conversation.method;
    let next: AuthRequest | undefined = conversation.first;
    let principal;
    for (;;) {
      if (next) {
        if (next.kind === 'cleartext' && config.raw.auth.cleartext_only_secure && !secure && !isLoopback(raw.remoteAddress)) {
          throw new ProxyError('ssl_required', { message: 'password authentication needs TLS on a non-loopback connection' });
        }
        // SASLFinal carries the proxy's signature; it goes out before AuthenticationOk.
        socket.write(authMessage(next));
      }
      if (principal) break;
      const packet = await stream.next();
      if (packet.type === 'Terminate') {
        socket.destroy();
        return;
      }
      if (packet.type !== 'AuthResponse') throw new ProxyError('authentication_method_not_supported');
      ({ next, principal } = await conversation.step(packet.data));
    }

    if (ctx.tenantSessions(principal.tenantId) >= config.maxConnectionsPerTenant) {
      throw new ProxyError('too_many_connections', { message: `this tenant already has ${config.maxConnectionsPerTenant} sessions, the most one tenant may hold` });
    }
    ctx.metrics?.login(principal.authMethod, true);
    // The policies in force now: after a hot reload, new logins select among the new ones.
    let policy = selectPolicy(ctx.scopes.policies, principal);
    if (!policy) throw new ProxyError('principal_has_no_policy');
    if (request.database !== config.database) {
      throw new ProxyError('database_not_found', { message: `database "${request.database}" does not exist` });
    }
    // Catalog answers (information_schema's *_catalog columns) name the database the agent asked for.
    principal = { ...principal, database: request.database };

    if (policy.raw.tenant_scope && !tenantFitsType(principal.tenantId, policy.raw.tenant_scope.type)) {
      throw new ProxyError('invalid_tenant', { logMessage: `tenant of ${principal.user} is not a valid ${policy.raw.tenant_scope.type}` });
    }
    let view;
    try {
      view = await ctx.scopes.get(policy);
    } catch (err) {
      throw new ProxyError('upstream_unavailable', { logMessage: `catalog: ${(err as Error).message}` });
    }
    // A reload may have landed while the catalog loaded: the session starts on the compiled version.
    policy = view.policy;

    let upstream;
    try {
      upstream = await connectUpstream(
        config.upstream,
        {
          application_name: 'ormai-proxy',
          ...request.settings,
          search_path: config.upstream.searchPath,
          // The analyser reads string literals as PostgreSQL does with this on (the default).
          standard_conforming_strings: 'on',
          statement_timeout: String(policy.statementTimeoutMs),
          // A startup parameter is the session default: RESET, RESET ALL and DISCARD ALL return to it.
          ...(policy.raw.idle_in_transaction_timeout_ms !== undefined ? { idle_in_transaction_session_timeout: String(policy.raw.idle_in_transaction_timeout_ms) } : {}),
          // JIT compile time counts against that timeout (upstream.jit).
          ...(config.upstream.jit ? {} : { jit: 'off' }),
          ...(policy.raw.enable_writes.length === 0 ? { default_transaction_read_only: 'on' } : {}),
          // The tenant for row-level security (policy/row-security.ts). A startup parameter is the
          // setting's session default, so RESET ALL and DISCARD ALL return to it; the agent can
          // name no custom setting in SET, set_config or its own startup parameters.
          [TENANT_SETTING]: principal.tenantId,
        },
        config.maxMessageSize,
      );
    } catch (err) {
      // A value of the client's own startup settings that PostgreSQL refuses (TimeZone=Nowhere):
      // the client's to fix, not an outage. Its message names only the setting and the value sent.
      if (err instanceof UpstreamConnectError && err.sqlstate?.startsWith('22') && err.serverMessage) {
        throw new ProxyError('invalid_startup_parameter', { message: err.serverMessage, logMessage: err.message });
      }
      if (err instanceof UpstreamConnectError) throw new ProxyError('upstream_unavailable', { logMessage: err.message });
      throw err;
    }
    // The session's barrier views (docs/read-scope.md), made before the client is told it is ready:
    // its first statement already reads through them, and the proxy knows they exist.
    let views: SessionViewsAtStart | undefined;
    if (config.upstream.readScope !== 'fence') {
      try {
        const wanted = barrierViewsOf(view.scope, principal);
        const error = wanted.length > 0 ? await ownStartupQuery(upstream, barrierViewsCreation(wanted), config.upstream.connectTimeoutMs) : undefined;
        views = { scope: view.scope, made: error === undefined ? wanted : [], ...(error !== undefined ? { error } : {}) };
      } catch (err) {
        if (err instanceof UpstreamConnectError) {
          upstream.socket.destroy();
          throw new ProxyError('upstream_unavailable', { logMessage: err.message });
        }
        // A tenant id the policy's tenant type cannot hold: the rewrite refuses every statement of this session anyway.
        views = { scope: view.scope, made: [], error: (err as Error).message };
      }
    }
    if (socket.destroyed || timedOut || !socket.writable) {
      // The client left, timed out or gave up its startup slot while the upstream session was being opened.
      upstream.socket.destroy();
      return;
    }

    let session: Session | undefined;
    const { processId, secretKey } = ctx.cancels.register(() => session?.cancel());
    const hello: Buffer[] = [backend.authenticationOk()];
    for (const [name, value] of upstream.parameters) hello.push(backend.parameterStatus(name, clientParameterValue(name, value, principal)));
    hello.push(backend.backendKeyData(processId, secretKey), backend.readyForQuery('I'));
    socket.write(Buffer.concat(hello));

    const sessionLog = log.child({ session: id, user: principal.user, tenant: principal.tenantId, policy: policy.name });
    sessionLog.info('session started');
    session = new Session({
      id,
      client: socket,
      decoder: stream.decoder,
      upstream,
      principal,
      initial: view,
      current: () => ctx.scopes.current(view.policy.name),
      cache: ctx.cache,
      ...(ctx.preparedText ? { preparedText: ctx.preparedText } : {}),
      rateLimits: ctx.rateLimits,
      ...(ctx.approvals ? { approvals: ctx.approvals } : {}),
      ...(ctx.audit ? { audit: ctx.audit } : {}),
      ...(ctx.metrics ? { metrics: ctx.metrics } : {}),
      planner: ctx.planner,
      ...(views ? { views } : {}),
      config,
      log: sessionLog,
      onClose: () => {
        ctx.cancels.unregister(processId);
        sessionLog.info('session ended');
        ctx.onSessionClosed(session!);
      },
    });
    ctx.onSession(session);
    stream.decoder.setMaxMessageSize(config.maxMessageSize);
    session.start(stream.detach() as FrontendMessage[]);
  } catch (err) {
    stream.detach();
    if (err instanceof ClientGone) socket.destroy();
    else fatal(err);
  } finally {
    clearTimeout(timer);
  }
}
