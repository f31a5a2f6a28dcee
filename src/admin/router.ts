// The admin API's route table: method + path pattern (`/approvals/:id`) → handler; other modules add routes.
import type { IncomingMessage } from 'node:http';
import type { AdminIdentity } from './auth';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface AdminRequest {
  method: Method;
  path: string;
  /** Decoded values of the pattern's `:name` segments. */
  params: Record<string, string>;
  query: URLSearchParams;
  /** The JSON body (size-limited; undefined when empty). Rejects with an HttpError. */
  json(): Promise<unknown>;
  raw: IncomingMessage;
  /** The authenticated caller; undefined only on routes that need no token. */
  identity?: AdminIdentity;
}

/** JSON `body`, or `text` with its content type (e.g. Prometheus metrics). */
export type AdminResponse =
  | { status: number; body: unknown; headers?: Record<string, string> }
  | { status: number; text: string; contentType: string };

export interface Route {
  method: Method;
  /** Literal segments and `:name` parameters, e.g. `/approvals/:id/approve`. */
  path: string;
  /** Requires the bearer token. Default: true; only liveness-style routes opt out. */
  auth?: boolean;
  /** The least role that may call it: metrics (a scraper's token) or admin (default). */
  role?: 'admin' | 'metrics';
  handler: (req: AdminRequest) => Promise<AdminResponse>;
}

interface Compiled {
  route: Route;
  segments: Array<{ literal: string } | { param: string }>;
}

export type Match = { kind: 'found'; route: Route; params: Record<string, string> } | { kind: 'method'; allowed: Method[] } | { kind: 'none' };

export class Router {
  private readonly routes: Compiled[] = [];

  add(route: Route): this {
    if (!route.path.startsWith('/')) throw new Error(`route path must start with /: ${route.path}`);
    const segments = route.path
      .slice(1)
      .split('/')
      .map((s) => (s.startsWith(':') ? { param: s.slice(1) } : { literal: s }));
    const shape = (c: Compiled['segments']) => c.map((s) => ('param' in s ? ':' : s.literal)).join('/');
    if (this.routes.some((r) => r.route.method === route.method && shape(r.segments) === shape(segments))) {
      throw new Error(`duplicate admin route ${route.method} ${route.path}`);
    }
    this.routes.push({ route, segments });
    return this;
  }

  /** `segments` are already percent-decoded. */
  match(method: string, segments: string[]): Match {
    const allowed: Method[] = [];
    for (const { route, segments: pattern } of this.routes) {
      const params = matchSegments(pattern, segments);
      if (!params) continue;
      if (route.method === method) return { kind: 'found', route, params };
      allowed.push(route.method);
    }
    return allowed.length > 0 ? { kind: 'method', allowed } : { kind: 'none' };
  }
}

function matchSegments(pattern: Compiled['segments'], segments: string[]): Record<string, string> | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if ('param' in p) {
      if (segments[i] === '') return undefined;
      params[p.param] = segments[i];
    } else if (p.literal !== segments[i]) return undefined;
  }
  return params;
}
