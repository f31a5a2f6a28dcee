// Bearer-token checks for the admin API: the shared token and the named identities, from mounted secrets; only digests are kept.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError, type ProxyConfig } from '../config/load';

/** Short tokens are guessable over a network; 16 characters is the floor, a random 32 bytes the advice. */
export const MIN_TOKEN_LENGTH = 16;

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

export class AdminToken {
  /** Comparing digests makes the comparison constant-time whatever the presented token's length. */
  private readonly expected: Buffer;

  constructor(token: string) {
    if (token.length < MIN_TOKEN_LENGTH) throw new ConfigError(`the admin token must be at least ${MIN_TOKEN_LENGTH} characters`);
    if (/\s/.test(token)) throw new ConfigError('the admin token must not contain whitespace');
    this.expected = digest(token);
  }

  /** Reads the token file; one trailing newline (as `echo` and most secret tools write) is ignored. */
  static fromFile(file: string): AdminToken {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read admin token file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return new AdminToken(text.replace(/\r?\n$/, ''));
  }

  /** The admin token configured by admin.token_file (relative to the config file), if any. */
  static fromConfig(config: ProxyConfig): AdminToken | undefined {
    const file = config.raw.admin.token_file;
    return file === undefined ? undefined : AdminToken.fromFile(path.resolve(config.dir, file));
  }

  /** True when the Authorization header carries this token as `Bearer <token>`. */
  matches(authorization: string | undefined): boolean {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
    if (!m) return false;
    return timingSafeEqual(digest(m[1]), this.expected);
  }

  /** The token's SHA-256, hex: how admin.identities_file names tokens. */
  hex(): string {
    return this.expected.toString('hex');
  }

  /** Neither the token nor its digest ends up in logs or JSON. */
  toJSON(): string {
    return '[admin token]';
  }
}

/** Who an admin request speaks for: an identity of admin.identities_file, or the shared token's `admin`. */
export interface AdminIdentity {
  name: string;
  /** Authenticated by the shared admin.token_file token, which names no person. */
  shared: boolean;
  /** admin: every route; metrics: /metrics only (a scraper's token approves nothing). */
  role: AdminRole;
}

export type AdminRole = 'admin' | 'metrics';

/** The name the shared token's requests are recorded under. */
export const SHARED_IDENTITY = 'admin';

const identitiesFile = z.strictObject({
  identities: z
    .array(
      z.strictObject({
        /** Recorded as the approver, denier or rollback actor. */
        name: z
          .string()
          .trim()
          .min(1)
          .max(200)
          .regex(/^[^\u0000-\u001f\u007f]+$/, 'must not contain control characters'),
        /** SHA-256 of the identity's bearer token, hex: the file never holds a token. */
        token_sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits (sha256 of the token)'),
        /** admin (default): the whole API; metrics: only /metrics, for a scraper. */
        role: z.enum(['admin', 'metrics']).default('admin'),
      }),
    )
    .min(1),
});

/**
 * The admin API's callers: the shared token (identity `admin`) and the named identities of
 * admin.identities_file, each with its own token. Approvals and rollbacks are recorded under the
 * caller's identity, never under a name the request body gives.
 */
export class AdminAuth {
  declare private readonly byDigest: Map<string, { name: string; role: AdminRole }>;

  constructor(
    private readonly shared?: AdminToken,
    identities: ReadonlyArray<{ name: string; token_sha256: string; role?: AdminRole }> = [],
  ) {
    const byDigest = new Map<string, { name: string; role: AdminRole }>();
    for (const { name, token_sha256, role = 'admin' } of identities) {
      if (sameName(name, SHARED_IDENTITY)) throw new ConfigError(`admin identity "${name}" is reserved for the shared admin token`);
      const twice = [...byDigest.values()].find((n) => sameName(n.name, name));
      if (twice !== undefined) throw new ConfigError(`admin identity "${name}" is listed twice`);
      if (byDigest.has(token_sha256)) throw new ConfigError(`admin identities "${byDigest.get(token_sha256)!.name}" and "${name}" have the same token`);
      byDigest.set(token_sha256, { name: name.trim(), role });
    }
    if (shared && byDigest.has(shared.hex())) throw new ConfigError('an admin identity has the same token as admin.token_file');
    Object.defineProperty(this, 'byDigest', { value: byDigest, enumerable: false });
  }

  /** True when any token is configured; without one the routes that need auth answer 503. */
  get enabled(): boolean {
    return this.shared !== undefined || this.byDigest.size > 0;
  }

  /** The caller of a request with this Authorization header, or undefined when it carries no known token. */
  identify(authorization: string | undefined): AdminIdentity | undefined {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
    if (!m) return undefined;
    if (this.shared?.matches(authorization)) return { name: SHARED_IDENTITY, shared: true, role: 'admin' };
    // A map lookup by the token's SHA-256: its timing tells at most about a digest, not the token.
    const found = this.byDigest.get(digest(m[1]).toString('hex'));
    return found === undefined ? undefined : { name: found.name, shared: false, role: found.role };
  }

  /** admin.token_file and admin.identities_file, relative to the config file. */
  static fromConfig(config: ProxyConfig): AdminAuth {
    const file = config.raw.admin.identities_file;
    return new AdminAuth(AdminToken.fromConfig(config), file === undefined ? [] : readIdentities(path.resolve(config.dir, file)));
  }

  toJSON(): string {
    return '[admin auth]';
  }
}

function sameName(a: string, b: string): boolean {
  return a.trim().toLowerCase() === b.trim().toLowerCase();
}

function readIdentities(file: string): Array<{ name: string; token_sha256: string; role: AdminRole }> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read admin identities file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`admin identities file ${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const parsed = identitiesFile.safeParse(doc);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`admin identities file ${file}: ${issues.join('; ')}`);
  }
  return parsed.data.identities;
}

/** A new random admin token and the identities-file entry that names it (`ormai-proxy admin-token NAME [--role metrics]`). */
export function newIdentityToken(name: string, role: AdminRole = 'admin'): { token: string; entry: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, entry: `  - { name: ${JSON.stringify(name)}, token_sha256: ${digest(token).toString('hex')}${role === 'admin' ? '' : `, role: ${role}`} }` };
}
