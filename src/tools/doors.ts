// The tool doors of a running proxy: the engine behind them (opened at first use), the principal's specs, the HTTP listener.
import type { AuthSettings } from '../auth/authenticator';
import { authenticateBearer } from '../auth/bearer';
import type { Principal } from '../auth/principal';
import { parseHostPort, type ProxyConfig } from '../config/load';
import type { Logger } from '../log';
import { selectPolicy, type PolicySnapshot } from '../policy/load';
import type { ToolsHttpServer, BearerAuthenticator } from './http';
import type { ToolSpec } from './schemas';
import { ProxyError } from '../errors/catalogue';
import { errorOf } from './engine';
import type { ToolRunner } from './types';

/** The engine as the doors hold it: closed (its sessions ended) when the proxy stops. */
export type ClosableRunner = ToolRunner & { close?(): Promise<void> };

export interface ToolDoors {
  /** The engine behind both doors, opened at the first call (a proxy nobody calls tools on opens no tool door). */
  runner: ToolRunner;
  /** The principal's tools under the policy it selects now; undefined when none applies. */
  specs(principal: Principal): readonly ToolSpec[] | undefined;
  /** `Authorization: Bearer …` → principal: a users-file token or a JWT (auth.jwt), the users file as reloaded. */
  authenticate: BearerAuthenticator;
  /** The HTTP listener's address, when tools.listen is set. */
  http?: { host: string; port: number; server: ToolsHttpServer };
  /** Stops the HTTP listener (calls in flight finish), then ends the engine's sessions. */
  close(): Promise<void>;
}

export interface ToolDoorsDeps {
  config: ProxyConfig;
  /** The proxy's auth settings; their users are swapped on reload, and bearer tokens are read from them at each request. */
  auth: AuthSettings;
  policies: () => readonly PolicySnapshot[];
  /** The principal's tool specs under its policy (toolSpecs in src/tools/schemas.ts). */
  toolSpecs: (policy: PolicySnapshot) => readonly ToolSpec[];
  /** Opens the engine; called once, at the first tool call. */
  openRunner: () => Promise<ClosableRunner>;
  log: Logger;
}

/** Opens the engine once, at the first call; a failed open is retried by the next call. */
class LazyRunner implements ToolRunner {
  private opening?: Promise<ClosableRunner>;
  private closed = false;

  constructor(private readonly open: () => Promise<ClosableRunner>) {}

  async call(...args: Parameters<ToolRunner['call']>): ReturnType<ToolRunner['call']> {
    // After shutdown nothing opens the engine again (a tool door on a stopped server).
    if (this.closed) return { ok: false, error: errorOf(new ProxyError('proxy_shutting_down')) };
    return (await this.get()).call(...args);
  }

  async refuse(...args: Parameters<NonNullable<ToolRunner['refuse']>>): ReturnType<NonNullable<ToolRunner['refuse']>> {
    if (this.closed) return { ok: false, error: errorOf(args[2]) };
    const runner = await this.get();
    return runner.refuse ? runner.refuse(...args) : { ok: false, error: errorOf(args[2]) };
  }

  private get(): Promise<ClosableRunner> {
    this.opening ??= this.open().catch((err: unknown) => {
      this.opening = undefined;
      throw err;
    });
    return this.opening;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const engine = await this.opening?.catch(() => undefined);
    await engine?.close?.();
  }
}

/** Starts the doors; the HTTP listener only when tools.listen is set (`ormai-proxy mcp` serves stdio without it). */
export async function startToolDoors(deps: ToolDoorsDeps): Promise<ToolDoors> {
  const runner = new LazyRunner(deps.openRunner);
  // A reload replaces the snapshot, so specs kept per snapshot are never stale (making them takes ~2 ms).
  const cache = new WeakMap<PolicySnapshot, readonly ToolSpec[]>();
  const specs = (principal: Principal) => {
    const policy = selectPolicy(deps.policies(), principal);
    if (!policy) return undefined;
    let list = cache.get(policy);
    if (!list) cache.set(policy, (list = deps.toolSpecs(policy)));
    return list;
  };
  const authenticate: BearerAuthenticator = (authorization) => authenticateBearer(deps.auth, authorization);
  const { listen, max_body_bytes } = deps.config.raw.tools;
  let http: ToolDoors['http'];
  if (listen !== undefined) {
    // The listener (and the MCP SDK behind it) loads only when tools.listen is set.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { ToolsHttpServer } = require('./http') as typeof import('./http');
    const server = new ToolsHttpServer({ listen: parseHostPort(listen), authenticate, runner, specs, log: deps.log, maxBodyBytes: max_body_bytes });
    try {
      http = { ...(await server.listen()), server };
    } catch (err) {
      await runner.close();
      throw err;
    }
  }
  return {
    runner,
    specs,
    authenticate,
    ...(http ? { http } : {}),
    close: async () => {
      try {
        await http?.server.close();
      } finally {
        await runner.close();
      }
    },
  };
}
