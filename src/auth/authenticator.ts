// The authentication conversation of one client connection: what to ask, and what the answers prove.
//
// The listener sends each AuthRequest and feeds back the body of every 'p' message.
// Unknown users are walked through the same exchange as known ones (a mock SCRAM
// exchange with a deterministic fake salt, or a password hashed against a fake
// verifier) and then get the very same 28P01 error as a wrong password, so a client
// cannot learn which user names exist. Reasons go to logMessage only.
import { createHmac } from 'node:crypto';
import { ProxyError } from '../errors/catalogue';
import type { JwtVerifier } from './jwt';
import type { Principal } from './principal';
import { createScramServer } from './scram';
import type { UsersSnapshot } from './users';
import { DEFAULT_ITERATIONS, DEFAULT_SALT_LENGTH, KEY_LENGTH, SCRAM_MECHANISM, verifyPassword, type ScramVerifier } from './verifier';

export type AuthRequest =
  | { kind: 'cleartext' } // AuthenticationCleartextPassword
  | { kind: 'sasl'; mechanisms: string[] } // AuthenticationSASL
  | { kind: 'sasl-continue'; data: Buffer }
  | { kind: 'sasl-final'; data: Buffer };

export interface AuthSettings {
  /** How users from the users file authenticate. */
  method: 'scram-sha-256' | 'password';
  users?: UsersSnapshot;
  jwt?: JwtVerifier;
  /** Per-process random secret, for fake salts of unknown users. */
  mockSecret: Buffer;
  /** The tool door's logins: a one-time ticket as the password, nothing else (docs/tools.md). */
  tickets?: { redeem(user: string, ticket: string): Principal | undefined };
}

export interface AuthStep {
  next?: AuthRequest;
  principal?: Principal;
}

export interface AuthConversation {
  /** What to ask the client first. */
  readonly first: AuthRequest;
  /** `body` is the raw body of one 'p' message (PasswordMessage, SASLInitialResponse or SASLResponse). */
  step(body: Buffer): Promise<AuthStep>;
  /** How the client is being authenticated (a user not known is asked as users are, and counted so). */
  readonly method?: 'scram-sha-256' | 'password' | 'jwt';
}

function using(conversation: AuthConversation, method: 'scram-sha-256' | 'password' | 'jwt'): AuthConversation {
  return { first: conversation.first, step: (body) => conversation.step(body), method };
}

function authFailed(user: string, reason: string): ProxyError {
  return new ProxyError('authentication_failed', { logMessage: `authentication failed for user ${JSON.stringify(user)}: ${reason}` });
}

function violation(detail: string): ProxyError {
  return new ProxyError('protocol_violation', { detail, logMessage: `authentication: ${detail}` });
}

/** PasswordMessage: one NUL-terminated string filling the whole body. */
export function parsePasswordMessage(body: Buffer): Buffer {
  const nul = body.indexOf(0);
  if (nul < 0 || nul !== body.length - 1) throw violation('malformed password message');
  return body.subarray(0, nul);
}

/** SASLInitialResponse: mechanism cstring, Int32 length (-1: no initial response), then that many bytes. */
export function parseSaslInitialResponse(body: Buffer): { mechanism: string; data: Buffer | null } {
  const nul = body.indexOf(0);
  if (nul < 0 || body.length < nul + 5) throw violation('malformed SASLInitialResponse');
  const mechanism = body.toString('utf8', 0, nul);
  const length = body.readInt32BE(nul + 1);
  const rest = body.subarray(nul + 5);
  if (length === -1 && rest.length === 0) return { mechanism, data: null };
  if (length !== rest.length) throw violation('SASLInitialResponse length does not match its data');
  return { mechanism, data: rest };
}

/** PostgreSQL's trick: a salt derived from a secret and the user name looks real and stays stable. */
function mockVerifier(secret: Buffer, user: string): ScramVerifier {
  const salt = createHmac('sha256', secret).update(user, 'utf8').digest().subarray(0, DEFAULT_SALT_LENGTH);
  return { iterations: DEFAULT_ITERATIONS, salt, storedKey: Buffer.alloc(KEY_LENGTH), serverKey: Buffer.alloc(KEY_LENGTH) };
}

function passwordConversation(check: (password: Buffer) => Promise<Principal>): AuthConversation {
  let used = false;
  return {
    first: { kind: 'cleartext' },
    async step(body) {
      if (used) throw violation('unexpected message after the password');
      used = true;
      return { principal: await check(parsePasswordMessage(body)) };
    },
  };
}

function scramConversation(user: string, verifier: ScramVerifier, principal: Principal | null): AuthConversation {
  // A null principal is an unknown user: the exchange runs to the end, then fails.
  const server = createScramServer(verifier, { doomed: principal === null });
  let stage: 'initial' | 'first' | 'final' | 'done' = 'initial';
  return {
    first: { kind: 'sasl', mechanisms: [SCRAM_MECHANISM] },
    async step(body) {
      const current = stage;
      stage = 'done';
      switch (current) {
        case 'initial': {
          const { mechanism, data } = parseSaslInitialResponse(body);
          if (mechanism !== SCRAM_MECHANISM) throw violation('client selected an invalid SASL authentication mechanism');
          // RFC 4422 lets a client omit the initial response; an empty challenge asks for it.
          if (data === null) {
            stage = 'first';
            return { next: { kind: 'sasl-continue', data: Buffer.alloc(0) } };
          }
          stage = 'final';
          return { next: { kind: 'sasl-continue', data: server.first(data) } };
        }
        case 'first':
          stage = 'final';
          return { next: { kind: 'sasl-continue', data: server.first(body) } };
        case 'final': {
          const serverFinal = server.final(body);
          if (!serverFinal || !principal) throw authFailed(user, principal ? 'SCRAM proof does not match' : 'no such user (mock SCRAM exchange)');
          return { next: { kind: 'sasl-final', data: serverFinal }, principal };
        }
        case 'done':
          throw violation('unexpected SASL message after the exchange ended');
      }
    },
  };
}

export function beginAuth(settings: AuthSettings, startupUser: string): AuthConversation {
  const tickets = settings.tickets;
  if (tickets) {
    return using(
      passwordConversation(async (ticket) => {
        const principal = tickets.redeem(startupUser, ticket.toString('utf8'));
        if (!principal) throw authFailed(startupUser, 'not a valid tool-door ticket');
        return principal;
      }),
      'password',
    );
  }
  const record = settings.users?.get(startupUser);
  const verifier = settings.users?.verifierFor(startupUser);
  const jwt = settings.jwt;
  if (record && verifier) {
    const principal: Principal = {
      user: startupUser,
      subject: startupUser,
      tenantId: record.tenantId,
      roles: record.roles,
      authMethod: jwt ? 'password' : settings.method,
    };
    // With JWTs every name is asked for a cleartext password (a token, or this user's password,
    // checked against its verifier): SCRAM for some names and cleartext for the rest would tell
    // which names the users file has.
    if (settings.method === 'scram-sha-256' && !jwt) return using(scramConversation(startupUser, verifier, principal), 'scram-sha-256');
    return using(
      passwordConversation(async (password) => {
        if (!verifyPassword(password, verifier)) throw authFailed(startupUser, 'wrong password');
        return principal;
      }),
      'password',
    );
  }

  const fake = mockVerifier(settings.mockSecret, startupUser);
  if (jwt) {
    return using(
      passwordConversation(async (token) => {
        try {
          return await jwt.verify(token.toString('utf8'), startupUser, (user) => settings.users?.get(user) !== undefined);
        } catch (err) {
          // A refusal takes as long as a wrong password of a users-file user.
          verifyPassword(token, fake);
          throw err;
        }
      }),
      'jwt',
    );
  }

  if (settings.method === 'scram-sha-256') return using(scramConversation(startupUser, fake, null), 'scram-sha-256');
  return using(
    passwordConversation(async (password) => {
      // Spend the same PBKDF2 time a real user's check costs before failing.
      verifyPassword(password, fake);
      throw authFailed(startupUser, 'no such user');
    }),
    'password',
  );
}
