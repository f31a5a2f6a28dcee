// Starts the PostgreSQL server the integration tests share: the machine's (DATABASE_URL) or an embedded one.
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/demo/embedded';

declare global {
  // eslint-disable-next-line no-var
  var __ORMAI_EMBEDDED_PG__: EmbeddedPostgres | undefined;
}

export default async function globalSetup(): Promise<void> {
  if (process.env.DATABASE_URL) {
    process.env.ORMAI_TEST_SERVER_URL = process.env.DATABASE_URL;
    process.stderr.write(`\nintegration tests: PostgreSQL from DATABASE_URL\n`);
    return;
  }
  const pg = await startEmbeddedPostgres();
  globalThis.__ORMAI_EMBEDDED_PG__ = pg;
  process.env.ORMAI_TEST_SERVER_URL = pg.url;
  process.stderr.write(`\nintegration tests: embedded PostgreSQL on port ${pg.port}\n`);
}
