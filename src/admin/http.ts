// HTTP plumbing for the admin API and the tools listener: the server and its listen, JSON errors, size-limited JSON bodies, JSON responses.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type net from 'node:net';
import type { HostPort } from '../config/load';
import type { Logger } from '../log';

/**
 * An HTTP server with the proxy's timeouts (receiving a request only; what it runs is bounded
 * elsewhere); a malformed request gets a 400 if the socket can still take it, never a crash.
 */
export function createHttpServer(handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>, log: Logger, what: string): http.Server {
  const server = http.createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => void handle(req, res));
  server.on('clientError', (err, socket: net.Socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
    log.debug({ err: err.message }, `malformed ${what} request`);
  });
  return server;
}

/** Stops listening: idle keep-alive connections close now, requests in flight get `graceMs` to finish. */
export async function closeHttp(server: http.Server, graceMs = 5000): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const grace = setTimeout(() => server.closeAllConnections(), graceMs);
  await closed;
  clearTimeout(grace);
}

/** Listens on `at` (port 0 picks a free port) and resolves with the bound address; errors after that are logged. */
export function listenHttp(server: http.Server, at: HostPort, log: Logger, what: string): Promise<{ host: string; port: number }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      server.on('error', (err) => log.error({ err: err.message }, `${what} listener error`));
      const address = server.address() as net.AddressInfo;
      resolve({ host: address.address, port: address.port });
    });
  });
}

/** A refusal the admin API answers with `{ error: { code, message } }` and this status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const DEFAULT_BODY_LIMIT = 64 * 1024;

const utf8 = new TextDecoder('utf-8', { fatal: true });

function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return true;
  const type = value.split(';')[0].trim().toLowerCase();
  return type === 'application/json' || type === '';
}

/**
 * Reads and parses a JSON body of at most `limit` bytes. An empty body reads as undefined
 * (the route's own validation then says what is missing). A body over the limit is refused
 * as soon as the limit is crossed, without buffering the rest.
 */
export function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  // An empty body has no media type to speak of (fetch labels it text/plain anyway).
  if (declared !== 0 && !isJsonContentType(req.headers['content-type'])) {
    return Promise.reject(new HttpError(415, 'unsupported_media_type', 'send the body as application/json'));
  }
  const tooLarge = () => new HttpError(413, 'body_too_large', `the body exceeds ${limit} bytes`, { connection: 'close' });
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | undefined, value?: unknown) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // Stop buffering; the response closes the connection, so the unread rest is dropped.
        req.pause();
        finish(tooLarge());
      } else chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('error', (err) => finish(new HttpError(400, 'bad_request', `the request body could not be read: ${err.message}`)));
    req.once('aborted', () => finish(new HttpError(400, 'bad_request', 'the request was aborted')));
    req.once('end', () => {
      if (size === 0) return finish(undefined, undefined);
      let text: string;
      try {
        text = utf8.decode(Buffer.concat(chunks));
      } catch {
        return finish(new HttpError(400, 'invalid_json', 'the body is not valid UTF-8'));
      }
      try {
        finish(undefined, JSON.parse(text));
      } catch {
        finish(new HttpError(400, 'invalid_json', 'the body is not valid JSON'));
      }
    });
  });
}

const COMMON_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
};

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { ...COMMON_HEADERS, 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

export function sendError(res: ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { error: { code: err.code, message: err.message } }, err.headers);
}
