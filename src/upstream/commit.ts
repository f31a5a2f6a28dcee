// A COMMIT the proxy sends on its own connection (an approved write, a rollback) that did not succeed: refused, or of unknown outcome.

/**
 * PostgreSQL refused the COMMIT (an error with a SQLSTATE, such as a deferred constraint):
 * nothing was committed. The connection failed while it was on its way or being answered: the
 * outcome is unknown (`outcomeUnknown`), and only the rows tell.
 */
export class CommitFailedError extends Error {
  readonly outcomeUnknown: boolean;
  readonly sqlstate?: string;

  constructor(readonly original: unknown) {
    const cause = original;
    const sqlstate = (cause as { code?: unknown } | null)?.code;
    const known = typeof sqlstate === 'string' && /^[0-9A-Z]{5}$/.test(sqlstate);
    super(
      known
        ? `PostgreSQL refused the COMMIT (${sqlstate}): nothing changed`
        : `the connection failed during COMMIT (${cause instanceof Error ? cause.message : String(cause)}): whether it committed is not known`,
    );
    this.name = 'CommitFailedError';
    this.outcomeUnknown = !known;
    if (known) this.sqlstate = sqlstate;
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
