// Per-test-file databases on the shared server: created with the quickstart schema and seed, dropped after.
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { seedDatabase } from '../../src/demo/demo';

export function serverUrl(): string {
  const url = process.env.ORMAI_TEST_SERVER_URL;
  if (!url) throw new Error('ORMAI_TEST_SERVER_URL is not set: run integration tests through jest (global-setup)');
  return url;
}

export interface TestDatabase {
  name: string;
  /** Direct connection URL (bypasses the proxy). */
  url: string;
  /** Runs SQL directly against the database, bypassing the proxy. */
  query<T extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `ormai_t_${randomBytes(5).toString('hex')}`;
  const url = await seedDatabase(serverUrl(), name);
  return {
    name,
    url,
    async query(sql, params) {
      const c = new Client({ connectionString: url });
      await c.connect();
      try {
        return (await c.query(sql, params as unknown[])).rows;
      } finally {
        await c.end();
      }
    },
    async drop() {
      const admin = new Client({ connectionString: serverUrl() });
      await admin.connect();
      try {
        await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}
