// Bounds of one logged-in session: how many statements and portals it may hold, and how long past its timeout a statement may run.

export interface SessionLimits {
  /**
   * Named prepared statements and named portals: PostgreSQL holds as many as a session creates,
   * and the proxy a record of each. Drivers keep far fewer (pgx caches 512 statements, JDBC 256).
   */
  statements: number;
  portals: number;
  /**
   * Text of the named prepared statements (the agent's and the forwarded, UTF-16 code units) one
   * session may hold, and all sessions of the process together: a 1 MB statement keeps about 3 MB
   * of heap, and one process holds every session's.
   */
  preparedSize: number;
  preparedSizeTotal: number;
  /**
   * PostgreSQL checks statement_timeout only where it checks for interrupts, which planning may
   * not do for a long time (a chain of a thousand CTEs plans for minutes under a 3 s timeout, and
   * a cancel request waits just the same). A statement gets the policy's timeout plus this margin,
   * then PostgreSQL is asked to cancel it, and after the same margin again its session ends.
   */
  deadlineMarginMs: number;
  /**
   * On shutdown (SIGTERM) a session that is busy, or inside a transaction block, may go on this
   * long to reach an idle point (its statements finish, its transaction commits or rolls back);
   * then what still runs is cancelled.
   */
  shutdownGraceMs: number;
}
