// Wires a resolved configuration into a running proxy: analysis engine, auth, listener.
import path from 'node:path';
import { initAnalysis } from './analysis/parser';
import { createJwtVerifier, jwtConfigSchema } from './auth/jwt';
import { loadUsersFile } from './auth/users';
import { ConfigError, type ProxyConfig } from './config/load';
import { formatIssues } from './policy/load';
import { ProxyServer } from './listener/server';
import { ScopeProvider } from './policy/provider';
import { PolicyCatalogError } from './policy/scope';
import { loadCatalog } from './upstream/catalog';
import type { Logger } from './log';

export interface RunningProxy {
  host: string;
  port: number;
  server: ProxyServer;
  close(): Promise<void>;
}

export async function buildAuthSettings(config: ProxyConfig) {
  const { auth } = config.raw;
  const users = auth.users_file ? loadUsersFile(path.resolve(config.dir, auth.users_file)) : undefined;
  let jwt;
  if (auth.jwt !== undefined) {
    const parsed = jwtConfigSchema.safeParse(auth.jwt);
    if (!parsed.success) throw new ConfigError(`invalid auth.jwt in ${config.file}:\n${formatIssues(parsed.error)}`);
    jwt = await createJwtVerifier(parsed.data, config.dir);
  }
  if (!users && !jwt) throw new ConfigError(`${config.file}: configure auth.users_file, auth.jwt, or both`);
  return ProxyServer.authSettings({ method: auth.method, users, jwt });
}

/**
 * Loads the catalog and compiles the policies against it. A policy naming a table that does
 * not exist stops start-up; an unreachable database does not (sessions retry the load).
 */
async function prepareScopes(config: ProxyConfig, log: Logger): Promise<ScopeProvider> {
  const scopes = new ScopeProvider(config.upstream, config.policies, loadCatalog, log);
  try {
    await scopes.refresh();
  } catch (err) {
    if (err instanceof PolicyCatalogError) throw new ConfigError(err.message);
    log.warn({ err: (err as Error).message }, 'database not reachable at start-up; the catalog loads with the first session');
  }
  return scopes;
}

export async function startProxy(config: ProxyConfig, log: Logger): Promise<RunningProxy> {
  await initAnalysis();
  const auth = await buildAuthSettings(config);
  const server = new ProxyServer(config, auth, await prepareScopes(config, log), log);
  const { host, port } = await server.listen();
  return { host, port, server, close: () => server.close() };
}
