// A signed JWT sent as the password: key loading, verification, and claims mapped to a Principal.
//
// Every rejection is the same 28P01 'password authentication failed' a wrong password
// gets; why it was rejected goes to the log only, so a client cannot probe which check
// failed. The token itself is never logged.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { errors, importSPKI, jwtVerify, type CryptoKey, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { ProxyError } from '../errors/catalogue';
import type { Principal } from './principal';
import { describeIssues } from './users';

const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;
const PUBLIC_KEY_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
type HmacAlgorithm = (typeof HMAC_ALGORITHMS)[number];
const isHmac = (alg: string): alg is HmacAlgorithm => (HMAC_ALGORITHMS as readonly string[]).includes(alg);

/** RFC 7518 section 3.2: an HMAC key must be at least as long as the hash output. */
const MIN_SECRET_BYTES = 32;
/** Far above any real token; refuses absurd inputs before any parsing. */
const MAX_TOKEN_LENGTH = 16 * 1024;

export const jwtConfigSchema = z
  .strictObject({
    /** Accepted signature algorithms; anything else, 'none' included, is refused. */
    algorithms: z.array(z.enum([...HMAC_ALGORITHMS, ...PUBLIC_KEY_ALGORITHMS])).min(1),
    /** Shared secret for HS*, relative to the config file; one trailing newline is ignored. */
    secret_file: z.string().min(1).optional(),
    /** PEM public key (SPKI, "BEGIN PUBLIC KEY") for RS*, PS*, ES*, EdDSA. */
    public_key_file: z.string().min(1).optional(),
    issuer: z.string().min(1).optional(),
    audience: z.string().min(1).optional(),
    clock_tolerance_s: z.number().int().min(0).max(3600).default(30),
    claims: z
      .strictObject({
        tenant: z.string().min(1).default('tenant_id'),
        subject: z.string().min(1).default('sub'),
        /** An array of strings or one space-separated string (OAuth "scope" style). */
        roles: z.string().min(1).default('roles'),
      })
      .default({ tenant: 'tenant_id', subject: 'sub', roles: 'roles' }),
    /** Require the startup user name to equal the subject claim. */
    require_user_match: z.boolean().default(false),
  })
  .superRefine((cfg, ctx) => {
    const hmac = cfg.algorithms.some(isHmac);
    const publicKey = cfg.algorithms.some((alg) => !isHmac(alg));
    if (hmac && !cfg.secret_file) ctx.addIssue({ code: 'custom', path: ['secret_file'], message: 'required for HS* algorithms' });
    if (publicKey && !cfg.public_key_file) ctx.addIssue({ code: 'custom', path: ['public_key_file'], message: 'required for RS*, PS*, ES* and EdDSA algorithms' });
    if (!hmac && cfg.secret_file) ctx.addIssue({ code: 'custom', path: ['secret_file'], message: 'given but no HS* algorithm is listed' });
    if (!publicKey && cfg.public_key_file) ctx.addIssue({ code: 'custom', path: ['public_key_file'], message: 'given but no public-key algorithm is listed' });
  });

export type JwtConfigInput = z.input<typeof jwtConfigSchema>;
export type JwtConfig = z.output<typeof jwtConfigSchema>;

export interface JwtVerifier {
  /**
   * Verifies the token and maps its claims; throws ProxyError('authentication_failed').
   * `taken`: user names that belong to another namespace (the users file's); a subject among them
   * is refused, so that a token never acts as, or reads the approvals of, a users-file user.
   */
  verify(token: string, startupUser: string | undefined, taken?: (user: string) => boolean): Promise<Principal>;
}

class Rejected extends Error {}

function claimString(payload: JWTPayload, name: string): string | undefined {
  const value = payload[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw new Rejected(`claim "${name}" is not a non-empty string`);
  return value;
}

function tenantClaim(payload: JWTPayload, name: string): string {
  const value = payload[name];
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  throw new Rejected(value === undefined ? `missing tenant claim "${name}"` : `tenant claim "${name}" is not a string or integer`);
}

function rolesClaim(payload: JWTPayload, name: string): string[] {
  const value = payload[name];
  if (value === undefined) return [];
  if (typeof value === 'string') return value.split(/\s+/).filter((r) => r !== '');
  if (Array.isArray(value) && value.every((r): r is string => typeof r === 'string' && r !== '')) return value;
  throw new Rejected(`roles claim "${name}" is neither a string nor an array of strings`);
}

async function loadKeys(cfg: JwtConfig, baseDir: string): Promise<Map<string, CryptoKey | Uint8Array>> {
  const keys = new Map<string, CryptoKey | Uint8Array>();
  if (cfg.secret_file) {
    const path = resolve(baseDir, cfg.secret_file);
    const raw = await readFile(path);
    // Files written with `echo` end in a newline that is not part of the secret.
    let end = raw.length;
    if (raw[end - 1] === 0x0a) end--;
    if (raw[end - 1] === 0x0d) end--;
    const secret = raw.subarray(0, end);
    if (secret.length < MIN_SECRET_BYTES) throw new Error(`jwt.secret_file ${path}: the secret must be at least ${MIN_SECRET_BYTES} bytes`);
    for (const alg of cfg.algorithms) if (isHmac(alg)) keys.set(alg, new Uint8Array(secret));
  }
  if (cfg.public_key_file) {
    const path = resolve(baseDir, cfg.public_key_file);
    const pem = await readFile(path, 'utf8');
    for (const alg of cfg.algorithms) {
      if (isHmac(alg)) continue;
      try {
        // Importing once per algorithm also proves at startup that the key suits it.
        keys.set(alg, await importSPKI(pem, alg));
      } catch (err) {
        throw new Error(`jwt.public_key_file ${path}: not a PEM public key usable with ${alg} (${(err as Error).message})`);
      }
    }
  }
  return keys;
}

/** Validates the config and loads its keys once; file paths are relative to baseDir. */
export async function createJwtVerifier(config: JwtConfigInput, baseDir: string): Promise<JwtVerifier> {
  const parsed = jwtConfigSchema.safeParse(config);
  if (!parsed.success) throw new Error(`invalid auth.jwt configuration:\n${describeIssues(parsed.error.issues)}`);
  const cfg = parsed.data;
  const keys = await loadKeys(cfg, baseDir);
  // jose has already refused algorithms outside cfg.algorithms before asking for a key.
  const getKey: JWTVerifyGetKey = (header) => {
    const key = keys.get(header.alg);
    if (!key) throw new Rejected(`no key for algorithm ${header.alg}`);
    return key;
  };

  return {
    async verify(token, startupUser, taken) {
      try {
        if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw new Rejected(`token length ${token.length} out of range`);
        const { payload } = await jwtVerify(token, getKey, {
          algorithms: cfg.algorithms,
          issuer: cfg.issuer,
          audience: cfg.audience,
          clockTolerance: cfg.clock_tolerance_s,
          requiredClaims: ['exp'],
        });
        const tenantId = tenantClaim(payload, cfg.claims.tenant);
        const roles = rolesClaim(payload, cfg.claims.roles);
        const sub = claimString(payload, cfg.claims.subject);
        // The subject is the user, on the wire as at the tool doors: the name a connection sends
        // is the caller's choice, and approvals (never by the requester), the agent's own
        // approvals and the audit trail go by the user.
        if (!sub) throw new Rejected(`a JWT needs the subject claim "${cfg.claims.subject}"`);
        if (startupUser !== undefined && cfg.require_user_match && sub !== startupUser) {
          throw new Rejected(`subject claim "${cfg.claims.subject}" does not match the startup user`);
        }
        if (taken?.(sub)) throw new Rejected(`subject claim "${cfg.claims.subject}" names a user of the users file`);
        return { user: sub, subject: sub, tenantId, roles, authMethod: 'jwt' };
      } catch (err) {
        const reason = err instanceof errors.JOSEError ? `${err.code}: ${err.message}` : err instanceof Rejected ? err.message : `unexpected ${(err as Error).name}`;
        throw new ProxyError('authentication_failed', { logMessage: `JWT rejected for user ${JSON.stringify(startupUser)}: ${reason}` });
      }
    },
  };
}
