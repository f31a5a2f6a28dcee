// The admin HTTP listener: routing, bearer-token auth, JSON errors, and the approvals expiry sweeper.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { registerApprovalRoutes } from './approval-routes';
import type { AdminAuth, AdminIdentity } from './auth';
import { closeHttp, createHttpServer, DEFAULT_BODY_LIMIT, HttpError, listenHttp, readJsonBody, sendError, sendJson, sendText } from './http';
import { Router, type AdminRequest, type Method } from './router';
import { ExpirySweeper } from '../approvals/sweeper';
import type { ApprovalEvent, ApprovalExecutor, ApprovalListener, ApprovalStore } from '../approvals/types';
import type { HostPort } from '../config/load';
import type { Logger } from '../log';

export interface AdminServerOptions {
  listen: HostPort;
  /** Without a token (shared or named) every route that requires auth answers 503. */
  auth?: AdminAuth;
  approvals: ApprovalStore;
  executor: ApprovalExecutor;
  log: Logger;
  sweepIntervalMs: number;
  bodyLimit?: number;
  /** The clock for approve, deny and expiry (tests move it). */
  now?: () => Date;
  onApprovalEvent?: ApprovalListener;
  /** Reports an approved write's execution before it commits; settles once the event is durable (see ApprovalRouteDeps.onExecuted). */
  onApprovalExecuted?: (event: ApprovalEvent) => Promise<void>;
}

const METHODS = new Set<string>(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);

export class AdminServer {
  /** Other modules add their routes here before listen(). */
  readonly router = new Router();
  readonly sweeper: ExpirySweeper;
  private readonly server: http.Server;
  private readonly log: Logger;

  constructor(private readonly options: AdminServerOptions) {
    this.log = options.log.child({ component: 'admin' });
    const now = options.now ?? (() => new Date());
    this.router.add({ method: 'GET', path: '/healthz', auth: false, handler: async () => ({ status: 200, body: { status: 'ok' } }) });
    registerApprovalRoutes(this.router, {
      store: options.approvals,
      executor: options.executor,
      log: this.log,
      now,
      onEvent: options.onApprovalEvent,
      onExecuted: options.onApprovalExecuted,
    });
    this.sweeper = new ExpirySweeper(options.approvals, {
      intervalMs: options.sweepIntervalMs,
      log: this.log,
      now,
      onExpired: (approval) => options.onApprovalEvent?.({ action: 'expire', approval }),
    });
    this.server = createHttpServer((req, res) => this.handle(req, res), this.log, 'admin');
  }

  /** Starts listening and sweeping; resolves with the bound address (port 0 picks a free port). */
  async listen(): Promise<{ host: string; port: number }> {
    const address = await listenHttp(this.server, this.options.listen, this.log, 'admin');
    this.sweeper.start();
    this.log.info({ host: address.host, port: address.port, api: this.options.auth?.enabled ? 'enabled' : 'disabled' }, 'admin listening');
    return address;
  }

  /** Stops sweeping and listening; requests in flight get a grace period, idle keep-alive connections close now. */
  async close(): Promise<void> {
    await this.sweeper.stop();
    await closeHttp(this.server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    try {
      await this.dispatch(req, res);
    } catch (err) {
      if (err instanceof HttpError) sendError(res, err);
      else {
        this.log.error({ err: (err as Error).message, method: req.method, path: pathOf(req.url) }, 'admin request failed');
        sendError(res, new HttpError(500, 'internal_error', 'the request failed; see the proxy log'));
      }
    } finally {
      this.log.debug({ method: req.method, path: pathOf(req.url), status: res.statusCode, ms: Date.now() - started }, 'admin request');
    }
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q < 0 ? url : url.slice(0, q);
    if (!rawPath.startsWith('/')) throw new HttpError(400, 'bad_request', 'the request target must be a path');
    let segments: string[];
    try {
      segments = rawPath.slice(1).split('/').map(decodeURIComponent);
    } catch {
      throw new HttpError(400, 'bad_request', 'the path is not validly percent-encoded');
    }
    const method = req.method ?? '';
    const match = this.router.match(METHODS.has(method) ? method : '', segments);
    if (match.kind === 'none') throw new HttpError(404, 'not_found', `no route ${rawPath}`);
    if (match.kind === 'method') {
      throw new HttpError(405, 'method_not_allowed', `use ${match.allowed.join(' or ')} for ${rawPath}`, { allow: match.allowed.join(', ') });
    }
    const identity = match.route.auth !== false ? this.authorise(req) : undefined;
    if (identity && identity.role !== 'admin' && match.route.role !== identity.role) {
      throw new HttpError(403, 'forbidden', `the token of "${identity.name}" (role ${identity.role}) may only read /metrics`);
    }
    let body: Promise<unknown> | undefined;
    const request: AdminRequest = {
      method: method as Method,
      path: rawPath,
      params: match.params,
      query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)),
      // The stream can be read once; a second call gets the same result.
      json: () => (body ??= readJsonBody(req, this.options.bodyLimit ?? DEFAULT_BODY_LIMIT)),
      raw: req,
      identity,
    };
    const response = await match.route.handler(request);
    if ('text' in response) sendText(res, response.status, response.text, response.contentType);
    else sendJson(res, response.status, response.body, response.headers);
  }

  private authorise(req: IncomingMessage): AdminIdentity {
    const { auth } = this.options;
    if (!auth?.enabled) throw new HttpError(503, 'admin_disabled', 'admin API disabled: set admin.token_file or admin.identities_file');
    const identity = auth.identify(req.headers.authorization);
    if (!identity) throw new HttpError(401, 'unauthorized', 'a valid bearer token is required', { 'www-authenticate': 'Bearer realm="ormai-proxy admin"' });
    return identity;
  }
}

/** The path without the query string: query values are never logged. */
function pathOf(url: string | undefined): string {
  return (url ?? '').split('?')[0];
}
