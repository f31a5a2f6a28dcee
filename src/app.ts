// Wires a resolved configuration into a running proxy: analysis engine, auth, listener.
import path from 'node:path';
import { initAnalysis } from './analysis/parser';
import { createJwtVerifier, jwtConfigSchema } from './auth/jwt';
import { loadUsersFile } from './auth/users';
import { ConfigError, type ProxyConfig } from './config/load';
import { formatIssues } from './policy/load';
import { ProxyServer } from './listener/server';
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

export async function startProxy(config: ProxyConfig, log: Logger): Promise<RunningProxy> {
  await initAnalysis();
  const server = new ProxyServer(config, await buildAuthSettings(config), log);
  const { host, port } = await server.listen();
  return { host, port, server, close: () => server.close() };
}
