// Bearer tokens for the tool doors (docs/tools.md): a users-file token (by its SHA-256) or a JWT verified by auth.jwt.
import { createHash } from 'node:crypto';
import type { AuthSettings } from './authenticator';
import type { Principal } from './principal';

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * The principal of an `Authorization: Bearer …` header, or undefined (no header, an unknown
 * token, a JWT that does not verify). The users file is read at each call, so a hot reload that
 * removes a user or changes a token takes effect at once.
 */
export async function authenticateBearer(settings: AuthSettings, authorization: string | undefined): Promise<Principal | undefined> {
  const token = BEARER.exec(authorization ?? '')?.[1];
  if (!token || token.length > 16 * 1024) return undefined;
  // A map lookup by the token's SHA-256: its timing tells at most about a digest, not the token.
  const record = settings.users?.byTokenDigest(createHash('sha256').update(token, 'utf8').digest('hex'));
  if (record) return { user: record.name, subject: record.name, tenantId: record.tenantId, roles: record.roles, authMethod: 'token' };
  if (settings.jwt && JWT_SHAPE.test(token)) {
    try {
      return await settings.jwt.verify(token, undefined, (user) => settings.users?.get(user) !== undefined);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** `ormai-proxy mcp --user NAME`: a users-file user, trusted as the local process's own. */
export function localPrincipal(settings: AuthSettings, user: string): Principal | undefined {
  const record = settings.users?.get(user);
  return record ? { user: record.name, subject: record.name, tenantId: record.tenantId, roles: record.roles, authMethod: 'local' } : undefined;
}
