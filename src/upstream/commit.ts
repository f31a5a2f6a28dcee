// Errors of the statements the proxy sends on its own connections: answered by the server (the session goes on) or not, and a COMMIT that did not succeed.
import { DatabaseError } from 'pg';

/**
 * SQLSTATEs of errors that end the session (FATAL or PANIC), by class: connection exceptions
 * (08), operator intervention (57P: shutdowns, idle_session_timeout), system errors (58),
 * internal errors (XX), and idle_in_transaction_session_timeout (25P03).
 */
const SESSION_ENDING = /^(?:08|57P|58|XX)|^25P03$/;

/**
 * Did the server answer with an error its session outlives (a constraint, a cancel, a missing
 * table)? Then the statement's outcome is known: it did not happen. Anything else (a socket
 * error, a session the server ended) leaves it unknown. Told by the SQLSTATE: the severity pg
 * reports is the server's `S` field, which lc_messages translates (the untranslated `V` is not
 * exposed).
 */
export function answeredWithError(err: unknown): err is DatabaseError {
  return err instanceof DatabaseError && typeof err.code === 'string' && !SESSION_ENDING.test(err.code);
}

/**
 * PostgreSQL refused the COMMIT (an error such as a deferred constraint's): nothing was
 * committed. The connection failed while it was on its way or being answered, or the server
 * ended the session: the outcome is unknown (`outcomeUnknown`), and only the rows tell.
 */
export class CommitFailedError extends Error {
  readonly outcomeUnknown: boolean;
  readonly sqlstate?: string;

  constructor(readonly original: unknown) {
    const cause = original;
    // An error the session outlives: the COMMIT did not happen. A socket error (whose code may
    // look like a SQLSTATE: EPIPE), a FATAL or a PANIC says nothing certain about it.
    const known = answeredWithError(cause);
    const sqlstate = known ? cause.code : undefined;
    super(
      known
        ? `PostgreSQL refused the COMMIT (${sqlstate}): nothing changed`
        : `the connection failed during COMMIT (${cause instanceof Error ? cause.message : String(cause)}): whether it committed is not known`,
    );
    this.name = 'CommitFailedError';
    this.outcomeUnknown = !known;
    if (sqlstate) this.sqlstate = sqlstate;
  }
}

/** COMMIT on `client`; a failure is thrown as a CommitFailedError. */
export async function commit(client: { query(text: string): Promise<unknown> }): Promise<void> {
  try {
    await client.query('COMMIT');
  } catch (err) {
    throw new CommitFailedError(err);
  }
}
