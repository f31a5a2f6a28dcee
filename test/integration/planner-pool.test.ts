// The planner's connections when PostgreSQL goes away: a caller waiting for a connection gets the error of making a new
// one, not a wait that never ends (the session behind it would hang with it).
import { Planner } from '../../src/budgets/planner';
import { silentLogger } from '../../src/log';
import type { UpstreamTarget } from '../../src/config/load';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { relayTo, type Relay } from '../support/relay';

let db: TestDatabase;
let relay: Relay;
let planner: Planner;

beforeAll(async () => {
  db = await createTestDatabase();
  const through = await relayTo(db.url);
  relay = through.relay;
  const url = new URL(through.url);
  const target: UpstreamTarget = {
    host: url.hostname,
    port: Number(url.port),
    user: decodeURIComponent(url.username),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    database: url.pathname.slice(1),
    tls: { mode: 'disable' },
    connectTimeoutMs: 2000,
    searchPath: 'public',
    readScope: 'barrier_views',
    jit: true,
  };
  // One connection per pool: the second caller waits for the first's.
  planner = new Planner(target, 1 << 20, silentLogger, 1);
});
afterAll(async () => {
  await planner?.close();
  await relay?.close();
  await db?.drop();
});

const NO_PARAMS = { types: [], values: [], formats: [] };

test('a caller waiting for the held writes\' connection gets an error when it is lost and cannot be made again', async () => {
  expect(await planner.rows('SELECT 1', NO_PARAMS, undefined, 10_000)).toBe('1');
  const first = planner.rows('SELECT count(*) FROM generate_series(1, 50000000)', NO_PARAMS, undefined, 10_000);
  const second = planner.rows('SELECT 2', NO_PARAMS, undefined, 10_000);
  await new Promise((r) => setTimeout(r, 200));
  relay.setDown(true);
  relay.cut();
  await expect(first).rejects.toThrow();
  const waited = await Promise.race([second.then(() => 'answered', () => 'refused'), new Promise((r) => setTimeout(() => r('still waiting'), 5000))]);
  expect(waited).toBe('refused');
  relay.setDown(false);
  // PostgreSQL back: the pool makes a connection again.
  expect(await planner.rows('SELECT 3', NO_PARAMS, undefined, 10_000)).toBe('3');
});
