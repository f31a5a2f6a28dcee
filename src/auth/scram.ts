// SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it: server side for agents, client side for upstream.
//
// Messages are handled as latin1 strings so that every byte maps to one character and
// back: the AuthMessage that both sides sign must be the exact bytes that crossed the
// wire, whatever the client put in the (ignored) user name.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { ProxyError } from '../errors/catalogue';
import { decodeBase64, hmac, KEY_LENGTH, saltedPassword, scramKeys, sha256, type ScramVerifier } from './verifier';

/** Random bytes in a server or client nonce, as in PostgreSQL (base64, 24 characters). */
export const NONCE_BYTES = 18;

/** printable = %x21-2B / %x2D-7E: visible ASCII except ','. */
const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/;

function violation(detail: string): ProxyError {
  return new ProxyError('protocol_violation', { detail, logMessage: `SCRAM: ${detail}` });
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** Splits `k=v,k=v` into attributes; values never contain ',' in SCRAM (saslname escapes it). */
function attributes(text: string, what: string, fail: (detail: string) => Error): Array<[string, string]> {
  return text.split(',').map((part) => {
    if (!/^[A-Za-z]=/.test(part)) throw fail(`malformed ${what}: expected an attribute, got ${JSON.stringify(part.slice(0, 2))}`);
    return [part[0]!, part.slice(2)];
  });
}

export interface ScramServerOptions {
  /** Run the whole exchange but fail at the end (unknown user: indistinguishable from a wrong password). */
  doomed?: boolean;
  /** Server part of the nonce; random unless a test fixes it. */
  serverNonce?: string;
}

export interface ScramServer {
  /** client-first-message in, server-first-message out. */
  first(clientFirst: Buffer): Buffer;
  /** client-final-message in; server-final-message out, or null when the proof is wrong. */
  final(clientFinal: Buffer): Buffer | null;
}

export function createScramServer(verifier: ScramVerifier, opts: ScramServerOptions = {}): ScramServer {
  const serverNonce = opts.serverNonce ?? randomBytes(NONCE_BYTES).toString('base64');
  let stage: 'first' | 'final' | 'done' = 'first';
  let gs2Header = '';
  let nonce = '';
  let clientFirstBare = '';
  let serverFirst = '';

  return {
    first(message) {
      if (stage !== 'first') throw violation('unexpected SCRAM client-first-message');
      // Any refusal ends the exchange; only a well-formed message moves it on.
      stage = 'done';
      const text = message.toString('latin1');
      if (text.includes('\0')) throw violation('malformed client-first-message: NUL byte');
      const flagEnd = text.indexOf(',');
      const headerEnd = text.indexOf(',', flagEnd + 1);
      if (flagEnd < 0 || headerEnd < 0) throw violation('malformed client-first-message: missing GS2 header');
      const flag = text.slice(0, flagEnd);
      // Only SCRAM-SHA-256 is offered, never -PLUS: 'p' asks for a binding we did not offer.
      // 'y' (client could bind, thinks we cannot) is honest here, since we really cannot.
      if (flag.startsWith('p=')) throw violation('channel binding requested, but SCRAM-SHA-256-PLUS was not offered');
      if (flag !== 'n' && flag !== 'y') throw violation('malformed client-first-message: bad channel-binding flag');
      if (text.slice(flagEnd + 1, headerEnd) !== '') throw violation('authorization identity is not supported');
      gs2Header = text.slice(0, headerEnd + 1);
      clientFirstBare = text.slice(headerEnd + 1);
      const attrs = attributes(clientFirstBare, 'client-first-message', violation);
      if (attrs[0]?.[0] === 'm') throw violation('unsupported mandatory SCRAM extension');
      // The user name is present for the grammar's sake; PostgreSQL uses the startup user.
      if (attrs[0]?.[0] !== 'n' || attrs[1]?.[0] !== 'r') throw violation('malformed client-first-message: expected n= and r=');
      if (attrs.length > 2) throw violation(`unsupported SCRAM extension "${attrs[2]![0]}"`);
      const clientNonce = attrs[1][1];
      if (!PRINTABLE.test(clientNonce)) throw violation('malformed client-first-message: nonce is not printable');
      nonce = clientNonce + serverNonce;
      serverFirst = `r=${nonce},s=${verifier.salt.toString('base64')},i=${verifier.iterations}`;
      stage = 'final';
      return Buffer.from(serverFirst, 'latin1');
    },

    final(message) {
      if (stage !== 'final') throw violation('unexpected SCRAM client-final-message');
      stage = 'done';
      const text = message.toString('latin1');
      if (text.includes('\0')) throw violation('malformed client-final-message: NUL byte');
      const attrs = attributes(text, 'client-final-message', violation);
      if (attrs[0]?.[0] !== 'c' || attrs[1]?.[0] !== 'r') throw violation('malformed client-final-message: expected c= and r=');
      const last = attrs[attrs.length - 1]!;
      if (attrs.length > 3 && last[0] === 'p') throw violation(`unsupported SCRAM extension "${attrs[2]![0]}"`);
      if (attrs.length !== 3 || last[0] !== 'p') throw violation('malformed client-final-message: expected p= last');
      // Without channel binding the attribute just repeats the GS2 header ("biws" for "n,,").
      const binding = decodeBase64(attrs[0][1]);
      if (!binding || !binding.equals(Buffer.from(gs2Header, 'latin1'))) throw violation('channel-binding attribute does not match the GS2 header');
      if (attrs[1][1] !== nonce) throw violation('nonce does not match');
      const proof = decodeBase64(last[1]);
      if (!proof || proof.length !== KEY_LENGTH) throw violation('malformed client proof');

      const withoutProof = text.slice(0, text.lastIndexOf(',p='));
      const authMessage = Buffer.from(`${clientFirstBare},${serverFirst},${withoutProof}`, 'latin1');
      const clientKey = xor(proof, hmac(verifier.storedKey, authMessage));
      const ok = timingSafeEqual(sha256(clientKey), verifier.storedKey);
      if (!ok || opts.doomed) return null;
      return Buffer.from(`v=${hmac(verifier.serverKey, authMessage).toString('base64')}`, 'latin1');
    },
  };
}

/** Thrown by the client side; messages describe the exchange, never the password. */
export class ScramClientError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScramClientError';
  }
}

const clientFail = (detail: string): ScramClientError => new ScramClientError(`SCRAM: ${detail}`);

export interface ScramClientOptions {
  /** Client nonce; random unless a test fixes it. */
  nonce?: string;
  /** User name inside client-first; empty by default, as libpq sends it (the startup user counts). */
  username?: string;
}

export interface ScramClient {
  clientFirst(): Buffer;
  clientFinal(serverFirst: Buffer): Buffer;
  /** Throws unless the server proved it knows the password's ServerKey. */
  verifyServerFinal(serverFinal: Buffer): void;
}

export function createScramClient(password: string | Buffer, opts: ScramClientOptions = {}): ScramClient {
  const clientNonce = opts.nonce ?? randomBytes(NONCE_BYTES).toString('base64');
  // saslname escaping (RFC 5802 section 5.1): '=' and ',' cannot appear raw.
  const username = (opts.username ?? '').replace(/=/g, '=3D').replace(/,/g, '=2C');
  // Kept as latin1 (one character per byte) like every message here; the name may be UTF-8.
  const clientFirstBare = Buffer.from(`n=${username},r=${clientNonce}`, 'utf8').toString('latin1');
  let expectedServerSignature: Buffer | null = null;

  return {
    clientFirst() {
      return Buffer.from(`n,,${clientFirstBare}`, 'latin1');
    },

    clientFinal(message) {
      const serverFirst = message.toString('latin1');
      const attrs = attributes(serverFirst, 'server-first-message', clientFail);
      if (attrs[0]?.[0] === 'm') throw clientFail('server requires an unsupported SCRAM extension');
      const [r, s, i] = attrs;
      if (attrs.length !== 3 || r?.[0] !== 'r' || s?.[0] !== 's' || i?.[0] !== 'i') throw clientFail('malformed server-first-message');
      const nonce = r[1];
      if (!nonce.startsWith(clientNonce) || nonce.length === clientNonce.length || !PRINTABLE.test(nonce)) {
        throw clientFail('server nonce does not extend the client nonce');
      }
      const salt = decodeBase64(s[1]);
      if (!salt || salt.length === 0) throw clientFail('malformed salt in server-first-message');
      if (!/^[1-9]\d{0,9}$/.test(i[1]) || Number(i[1]) > 0x7fffffff) throw clientFail('malformed iteration count');

      const salted = saltedPassword(password, salt, Number(i[1]));
      const { clientKey, storedKey, serverKey } = scramKeys(salted);
      const withoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${nonce}`;
      const authMessage = Buffer.from(`${clientFirstBare},${serverFirst},${withoutProof}`, 'latin1');
      expectedServerSignature = hmac(serverKey, authMessage);
      const proof = xor(clientKey, hmac(storedKey, authMessage));
      return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'latin1');
    },

    verifyServerFinal(message) {
      if (!expectedServerSignature) throw clientFail('server-final-message before client-final-message');
      const text = message.toString('latin1');
      if (text.startsWith('e=')) throw clientFail(`server reported an error: ${text.slice(2, 64)}`);
      const signature = text.startsWith('v=') ? decodeBase64(text.slice(2)) : null;
      if (!signature || signature.length !== KEY_LENGTH || !timingSafeEqual(signature, expectedServerSignature)) {
        throw clientFail('server signature is invalid: the server does not know the password');
      }
    },
  };
}
