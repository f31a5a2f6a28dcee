// Small pg helpers for integration tests.
import { Client } from 'pg';

export type PgError = Error & { code?: string; routine?: string; hint?: string };

/** Connects and expects the login to fail; returns the error. */
export async function loginError(url: string, extra: Record<string, unknown> = {}): Promise<PgError> {
  const c = new Client({ connectionString: url, ...extra });
  const err = await c.connect().then(
    () => undefined,
    (e: PgError) => e,
  );
  if (!err) {
    await c.end();
    throw new Error('login unexpectedly succeeded');
  }
  // pg's end() after a failed connect can wait forever for an 'end' event that already fired.
  await Promise.race([c.end().catch(() => undefined), new Promise((r) => setTimeout(r, 200))]);
  return err;
}

export async function withClient<T>(url: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/**
 * A statement that runs until it is cancelled or times out, built only from functions the
 * policy allows (pg_sleep is refused): a count over a 4·10^10-row cross join.
 */
export const SLOW_QUERY = 'SELECT count(*) AS n FROM generate_series(1, 200000) a, generate_series(1, 200000) b';

/** Statements of the test database running right now that match `pattern` (direct connection). */
export async function activeStatements(directUrl: string, pattern: string): Promise<number> {
  const c = new Client({ connectionString: directUrl });
  await c.connect();
  try {
    const r = await c.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid() AND query LIKE $1",
      [`%${pattern}%`],
    );
    return r.rows[0].n;
  } finally {
    await c.end();
  }
}

export async function waitFor(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}
