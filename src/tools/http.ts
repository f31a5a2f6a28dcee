// The tools HTTP listener (tools.listen): POST /agent/tool, GET /agent/tools, and MCP over Streamable HTTP at /mcp.
//
// Every request is authenticated by its own bearer token, so /mcp is stateless (the SDK's
// sessionIdGenerator: undefined): each POST gets a Server for its principal and a transport
// that answer it and are closed with the response. No MCP session can then outlive, or be
// taken over from, the token that opened it; server-initiated messages (GET /mcp) are not offered.
//
// Every answer has a bounded time to reach its client (ResponseDelivery): a client that stops
// reading loses the connection, and the call behind the answer keeps its caller's session until
// then (engine.ts, Delivery), so unread answers cannot pile up in memory.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';
import { closeHttp, createHttpServer, HttpError, listenHttp, readJsonBody, sendError, sendJson } from '../admin/http';
import { isLoopback } from '../listener/handshake';
import type { Principal } from '../auth/principal';
import type { HostPort } from '../config/load';
import { ProxyError } from '../errors/catalogue';
import type { Logger } from '../log';
import { httpStatusOf, internalToolError, refusalBody, retryAfterHeader, successBody } from './answers';
import { withDelivery, type Delivery } from './engine';
import { createMcpServer } from './mcp';
import { canonicalToolName } from './names';
import { toolSpecsAs, type ToolSpec, type ToolSpecFormat } from './schemas';
import type { ToolResult, ToolRunner } from './types';

/** The principal a request's Authorization header speaks for; undefined: no or a wrong credential. */
export type BearerAuthenticator = (authorization: string | undefined) => Promise<Principal | undefined>;

export interface ToolsHttpOptions {
  listen: HostPort;
  authenticate: BearerAuthenticator;
  runner: ToolRunner;
  /** The principal's tools under its policy now; undefined when no policy applies to it. */
  specs: (principal: Principal) => readonly ToolSpec[] | undefined;
  log: Logger;
  maxBodyBytes: number;
}

/** POST /agent/tool's body. tool_call_id is the agent's own id for the call (the model's tool-use id), for the audit. */
const toolCallBody = z.strictObject({
  name: z.string().min(1).max(200),
  arguments: z.unknown().optional(),
  tool_call_id: z.string().min(1).max(200).optional(),
});

const FORMATS: readonly string[] = ['anthropic', 'openai', 'mcp', 'json-schema'];

const WWW_AUTHENTICATE = 'Bearer realm="ormai-proxy tools"';

/**
 * How long an answer no call is behind (a listing, an HTTP error, MCP's initialize) may take to
 * reach its client; a call's answer gets tools.response_timeout_ms, which the engine sets.
 */
const DEFAULT_RESPONSE_TIMEOUT_MS = 30_000;

/** JSON-RPC's Invalid Request: MCP 2025-06-18 removed batches, and one POST must not hold a batch of results. */
const BATCH_REFUSED = {
  jsonrpc: '2.0',
  error: { code: -32600, message: 'Invalid Request: JSON-RPC batches are not supported (MCP 2025-06-18 removed them); send one message per POST' },
  id: null,
} as const;

/**
 * One request's answer on its way out. It settles when the response closes: written out, or its
 * connection gone. Once a deadline is set, a response not written out by then is abandoned: its
 * connection is destroyed, which also closes the response, so `settled` always comes.
 */
class ResponseDelivery implements Delivery {
  readonly settled: Promise<void>;
  private timer?: NodeJS.Timeout;
  private closed = false;

  get gone(): boolean {
    return this.closed;
  }

  constructor(
    private readonly res: ServerResponse,
    private readonly onAbandon: (ms: number) => void,
  ) {
    this.settled = new Promise((resolve) => {
      res.once('close', () => {
        this.closed = true;
        clearTimeout(this.timer);
        resolve();
      });
    });
  }

  deadline(ms: number): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = setTimeout(() => {
      if (this.closed) return;
      this.onAbandon(ms);
      this.res.destroy();
    }, ms);
    this.timer.unref();
  }
}

export class ToolsHttpServer {
  private readonly server: http.Server;
  private readonly log: Logger;

  constructor(private readonly options: ToolsHttpOptions) {
    this.log = options.log.child({ component: 'tools-http' });
    // The server's timeouts bound receiving a request; a call then runs as long as the policy's
    // statement_timeout lets it, and its answer has a deadline of its own (ResponseDelivery).
    this.server = createHttpServer((req, res) => this.handle(req, res), this.log, 'tools');
  }

  /** Resolves with the bound address (port 0 picks a free port). */
  async listen(): Promise<{ host: string; port: number }> {
    const address = await listenHttp(this.server, this.options.listen, this.log, 'tools');
    this.log.info(address, 'tools listening (POST /agent/tool, GET /agent/tools, MCP at /mcp)');
    if (!isLoopback(address.host)) {
      this.log.warn({ host: address.host }, 'the tools listener speaks plain HTTP on a non-loopback address: terminate TLS in front of it, bearer tokens travel in every request');
    }
    return address;
  }

  /** Calls in flight get a grace period to finish (their sessions are drained by the proxy's close); idle connections close now. */
  async close(): Promise<void> {
    await closeHttp(this.server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const path = (req.url ?? '').split('?')[0];
    const delivery = new ResponseDelivery(res, (ms) => {
      // The call's audit event was written when its statement ran; only the answer is dropped.
      this.log.warn({ method: req.method, path, ms }, 'tools answer abandoned: the client did not read it in time; connection closed');
    });
    try {
      await withDelivery(delivery, () => this.dispatch(req, res, path));
    } catch (err) {
      if (err instanceof HttpError) sendError(res, err);
      else {
        this.log.error({ err: (err as Error).message, method: req.method, path }, 'tools request failed');
        sendError(res, new HttpError(500, 'internal_error', 'the request failed; see the proxy log'));
      }
    } finally {
      // The answer is handed over (a call's already has its deadline, which holds).
      delivery.deadline(DEFAULT_RESPONSE_TIMEOUT_MS);
      // The path only: query values and bodies (tool arguments) are never logged.
      this.log.debug({ method: req.method, path, status: res.statusCode, ms: Date.now() - started }, 'tools request');
    }
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const route = ROUTES.get(path);
    if (!route) throw new HttpError(404, 'not_found', `no route ${path}; the tool doors are POST /agent/tool, GET /agent/tools and /mcp`);
    if (!route.methods.includes(req.method ?? '')) {
      // Stateless MCP has no server-initiated stream (GET) and no session to end (DELETE).
      throw new HttpError(405, 'method_not_allowed', `use ${route.methods.join(' or ')} for ${path}`, { allow: route.methods.join(', ') });
    }
    const principal = await this.authenticate(req);
    if (path === '/agent/tools') return this.listTools(req, res, principal);
    const body = await readJsonBody(req, this.options.maxBodyBytes);
    if (path === '/agent/tool') return this.callTool(res, principal, body);
    return this.serveMcp(req, res, principal, body);
  }

  private async authenticate(req: IncomingMessage): Promise<Principal> {
    const authorization = req.headers.authorization;
    let principal: Principal | undefined;
    try {
      principal = await this.options.authenticate(authorization);
    } catch (err) {
      // A refused JWT is a ProxyError; anything else is a fault of ours, not the caller's.
      if (!(err instanceof ProxyError)) throw err;
    }
    if (principal) return principal;
    // RFC 6750: error="invalid_token" only when a token was presented.
    const challenge = authorization ? `${WWW_AUTHENTICATE}, error="invalid_token"` : WWW_AUTHENTICATE;
    throw new HttpError(401, 'unauthorized', 'a valid bearer token is required: Authorization: Bearer <token> (a users-file token or a JWT)', { 'www-authenticate': challenge });
  }

  private specsOf(principal: Principal): readonly ToolSpec[] {
    const specs = this.options.specs(principal);
    if (!specs) throw new HttpError(403, 'principal_has_no_policy', 'no policy applies to this principal');
    return specs;
  }

  /** `?format=anthropic|openai|mcp|json-schema` gives them in that SDK's shape; without it, canonical names and JSON Schemas. */
  private listTools(req: IncomingMessage, res: ServerResponse, principal: Principal): void {
    const format = new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get('format');
    if (format !== null && !FORMATS.includes(format as ToolSpecFormat)) {
      throw new HttpError(400, 'invalid_request', `format takes ${FORMATS.join(', ')}`);
    }
    const specs = this.specsOf(principal);
    sendJson(res, 200, { tools: format === null ? specs : toolSpecsAs(specs, format as ToolSpecFormat) });
  }

  private async callTool(res: ServerResponse, principal: Principal, body: unknown): Promise<void> {
    const parsed = toolCallBody.safeParse(body);
    if (!parsed.success) {
      const shape = 'send { "name": "<tool>", "arguments": { ... }, "tool_call_id"?: "<id>" } as application/json';
      if (!this.options.runner.refuse) throw new HttpError(400, 'invalid_request', shape);
      // A malformed call is still a call: it is refused and audited like one.
      const raw = (body !== null && typeof body === 'object' ? body : {}) as { name?: unknown; arguments?: unknown };
      const call = { name: typeof raw.name === 'string' ? raw.name.slice(0, 200) : '(no name)', arguments: raw.arguments ?? {} };
      const refused = await this.options.runner.refuse(principal, call, new ProxyError('tool_arguments_invalid', { message: `invalid request: ${shape}`, hint: shape }));
      if (refused.ok) throw new HttpError(400, 'invalid_request', shape);
      sendJson(res, 400, refusalBody(refused));
      return;
    }
    const { name, arguments: args, tool_call_id } = parsed.data;
    let result: ToolResult;
    try {
      // The principal's tools first: a domain tool's namespace may hold an underscore (names.ts).
      const known = this.options.specs(principal)?.map((s) => s.name) ?? [];
      result = await this.options.runner.call(principal, { name: canonicalToolName(name, known) ?? name, arguments: args ?? {}, ...(tool_call_id !== undefined ? { toolCallId: tool_call_id } : {}) });
    } catch (err) {
      this.log.error({ err: (err as Error).message, tool: name, user: principal.user }, 'tool call failed');
      result = { ok: false, error: internalToolError() };
    }
    if (result.ok) sendJson(res, 200, successBody(result));
    else sendJson(res, httpStatusOf(result.error), refusalBody(result), retryAfterHeader(result.error));
  }

  private async serveMcp(req: IncomingMessage, res: ServerResponse, principal: Principal, body: unknown): Promise<void> {
    this.specsOf(principal); // no policy: 403 here, as for the other routes
    // The SDK would run up to 100 messages of a batch at once and answer them in one response.
    if (Array.isArray(body)) return sendJson(res, 400, BATCH_REFUSED);
    const server = createMcpServer(this.options.runner, principal, () => this.specsOf(principal), { log: this.log });
    // JSON responses, not SSE: one answer per POST, nothing streams from a stateless server.
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.once('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  }
}

const ROUTES = new Map<string, { methods: string[] }>([
  ['/agent/tool', { methods: ['POST'] }],
  ['/agent/tools', { methods: ['GET'] }],
  ['/mcp', { methods: ['POST'] }],
]);

