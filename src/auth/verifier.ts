// SCRAM-SHA-256 verifiers in PostgreSQL's text format, and the key derivations behind them.
//
// Format (as stored in pg_authid.rolpassword):
//   SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>
// A verifier is enough to run the server side of SCRAM and to check a cleartext
// password, and it cannot be used to log in elsewhere, so it is the only form in which
// the proxy keeps a password.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { preparePassword } from './saslprep';

export const SCRAM_MECHANISM = 'SCRAM-SHA-256';
export const DEFAULT_ITERATIONS = 4096;
export const DEFAULT_SALT_LENGTH = 16;
/** SHA-256 output length: every key and proof in SCRAM-SHA-256 has this size. */
export const KEY_LENGTH = 32;

export interface ScramVerifier {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

export function hmac(key: Buffer, data: Buffer | string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/** SaltedPassword := Hi(Normalize(password), salt, i), where Hi is PBKDF2-HMAC-SHA-256. */
export function saltedPassword(password: Buffer | string, salt: Buffer, iterations: number): Buffer {
  return pbkdf2Sync(preparePassword(password), salt, iterations, KEY_LENGTH, 'sha256');
}

/** ClientKey, StoredKey and ServerKey of RFC 5802 section 3. */
export function scramKeys(salted: Buffer): { clientKey: Buffer; storedKey: Buffer; serverKey: Buffer } {
  const clientKey = hmac(salted, 'Client Key');
  return { clientKey, storedKey: sha256(clientKey), serverKey: hmac(salted, 'Server Key') };
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes canonical base64, or returns null; Buffer.from alone would skip bad characters. */
export function decodeBase64(text: string): Buffer | null {
  return BASE64.test(text) ? Buffer.from(text, 'base64') : null;
}

/** Parses a verifier, or returns null when the text is not a SCRAM-SHA-256 verifier. */
export function parseVerifier(text: string): ScramVerifier | null {
  const m = /^SCRAM-SHA-256\$(\d{1,10}):([^$]+)\$([^:]+):(.+)$/.exec(text);
  if (!m) return null;
  const iterations = Number(m[1]);
  const salt = decodeBase64(m[2]!);
  const storedKey = decodeBase64(m[3]!);
  const serverKey = decodeBase64(m[4]!);
  if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > 0x7fffffff) return null;
  if (!salt || salt.length === 0 || !storedKey || !serverKey) return null;
  if (storedKey.length !== KEY_LENGTH || serverKey.length !== KEY_LENGTH) return null;
  return { iterations, salt, storedKey, serverKey };
}

export function formatVerifier(v: ScramVerifier): string {
  return (
    `${SCRAM_MECHANISM}$${v.iterations}:${v.salt.toString('base64')}` +
    `$${v.storedKey.toString('base64')}:${v.serverKey.toString('base64')}`
  );
}

export interface BuildVerifierOptions {
  iterations?: number;
  /** Fixed salt, for tests and for the mock exchange of unknown users. */
  salt?: Buffer;
}

export function buildVerifier(password: Buffer | string, opts: BuildVerifierOptions = {}): ScramVerifier {
  const iterations = opts.iterations ?? DEFAULT_ITERATIONS;
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw new RangeError('iterations must be a positive integer');
  const salt = opts.salt ?? randomBytes(DEFAULT_SALT_LENGTH);
  const { storedKey, serverKey } = scramKeys(saltedPassword(password, salt, iterations));
  return { iterations, salt, storedKey, serverKey };
}

/** The verifier text PostgreSQL would store for this password (for a CLI command). */
export function hashPassword(password: string, iterations = DEFAULT_ITERATIONS): string {
  return formatVerifier(buildVerifier(password, { iterations }));
}

/** Checks a cleartext password against a verifier, comparing StoredKey in constant time. */
export function verifyPassword(password: Buffer | string, verifier: ScramVerifier): boolean {
  const { storedKey } = scramKeys(saltedPassword(password, verifier.salt, verifier.iterations));
  return timingSafeEqual(storedKey, verifier.storedKey);
}
