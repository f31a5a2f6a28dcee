// A COMMIT the proxy sends on its own connection (an approved write, a rollback) that did not succeed: refused, or of unknown outcome.
import { DatabaseError } from 'pg';

/**
 * PostgreSQL refused the COMMIT (an ERROR, such as a deferred constraint's): nothing was
 * committed. The connection failed while it was on its way or being answered, or the server
 * ended the session: the outcome is unknown (`outcomeUnknown`), and only the rows tell.
 */
export class CommitFailedError extends Error {
  readonly outcomeUnknown: boolean;
  readonly sqlstate?: string;

  constructor(readonly original: unknown) {
    const cause = original;
    // An ERROR from the server: the COMMIT did not happen. A socket error (whose code may look
    // like a SQLSTATE: EPIPE), a FATAL or a PANIC says nothing certain about it.
    const known = cause instanceof DatabaseError && cause.severity === 'ERROR';
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
