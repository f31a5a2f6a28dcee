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
