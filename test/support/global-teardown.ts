// Stops the embedded PostgreSQL started by global-setup, if any.
export default async function globalTeardown(): Promise<void> {
  await globalThis.__ORMAI_EMBEDDED_PG__?.stop();
}
