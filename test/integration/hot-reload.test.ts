// Hot reload on a running proxy: open sessions follow a new policy per statement, bad files change nothing, new users log in, removed policies refuse.
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { loginError, withClient, type PgError } from '../support/clients';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';

const QUICKSTART_DIR = path.resolve(__dirname, '..', '..', 'config', 'quickstart');
const POLICY = readFileSync(path.join(QUICKSTART_DIR, 'policy.yaml'), 'utf8');
const USERS = readFileSync(path.join(QUICKSTART_DIR, 'users.yaml'), 'utf8');
/** Tenant 1 has four orders in the seed. */
const ORDERS = 'SELECT id FROM orders ORDER BY id';

let db: TestDatabase;
let dir: string;
let proxy: TestProxy;
let clients: Client[];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

beforeEach(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-hot-'));
  writeFileSync(path.join(dir, 'policy.yaml'), POLICY);
  writeFileSync(path.join(dir, 'users.yaml'), USERS);
  proxy = await startTestProxy(db.url, {
    auth: { method: 'scram-sha-256', users_file: path.join(dir, 'users.yaml') },
    policies: [path.join(dir, 'policy.yaml')],
  });
  clients = [];
});
afterEach(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await proxy?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Replaced whole (write, then rename), as an editor or a ConfigMap swap does: no check ever reads half a file. */
function replace(name: string, text: string): void {
  const file = path.join(dir, name);
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

async function session(user?: string, password?: string): Promise<{ client: Client; notices: string[] }> {
  const client = new Client({ connectionString: proxy.url(user, password) });
  const notices: string[] = [];
  client.on('notice', (n) => notices.push(n.message ?? ''));
  await client.connect();
  clients.push(client);
  return { client, notices };
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${proxy.admin.port}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}

async function versionPolicies(): Promise<Array<{ name: string; hash: string }>> {
  return ((await (await fetch(`http://127.0.0.1:${proxy.admin.port}/version`)).json()) as { policies: Array<{ name: string; hash: string }> }).policies;
}

test('an open session sees max_rows change from its next statement, under both protocols, without reconnecting', async () => {
  const { client, notices } = await session();
  expect((await client.query(ORDERS)).rows).toHaveLength(4);
  const [before] = await versionPolicies();

  replace('policy.yaml', POLICY.replace('max_rows: 200', 'max_rows: 2'));
  expect((await proxy.reload()).policies).toBe('reloaded');

  expect((await client.query(ORDERS)).rows).toHaveLength(2);
  expect(notices.join('\n')).toMatch(/truncated to 2 rows/);
  expect((await client.query({ text: 'SELECT id FROM orders WHERE id > $1 ORDER BY id', values: [0] })).rows).toHaveLength(2);

  // /version and /metrics show the policy in force now.
  const [after] = await versionPolicies();
  expect(after.name).toBe('quickstart');
  expect(after.hash).not.toBe(before.hash);
  expect(await metric(`ormai_policy_info\\{name="quickstart",hash="${after.hash}"\\}`)).toBe(1);
  expect(await metric('ormai_policy_reloads_total')).toBeGreaterThanOrEqual(1);
});

test('a broken policy file keeps the last good policy, and /metrics counts the failure', async () => {
  const { client, notices } = await session();
  replace('policy.yaml', POLICY.replace('max_rows: 200', 'max_rows: 2'));
  await proxy.reload();
  const [good] = await versionPolicies();

  replace('policy.yaml', POLICY.replace('max_rows: 200', 'max_rows: [2'));
  expect((await proxy.reload()).policies).toBe('failed');
  replace('policy.yaml', `${POLICY}max_rowz: 1\n`);
  expect((await proxy.reload()).policies).toBe('failed');

  expect(await metric('ormai_policy_reload_failures_total')).toBeGreaterThanOrEqual(2);
  expect(await versionPolicies()).toEqual([good]);
  expect((await client.query(ORDERS)).rows).toHaveLength(2);
  expect(notices.join('\n')).toMatch(/truncated to 2 rows/);
  // New sessions get the last good policy too.
  const fresh = await session();
  expect((await fresh.client.query(ORDERS)).rows).toHaveLength(2);
});

test('a user added to users.yaml can log in after the reload; sessions already open carry on', async () => {
  const { client } = await session();
  const newcomer = ['tenant3-agent', 'tenant3-password'] as const;
  expect((await loginError(proxy.url(...newcomer))).code).toBe('28P01');

  replace('users.yaml', `${USERS}  - name: tenant3-agent\n    password: tenant3-password\n    tenant_id: 1\n    roles: [agent]\n`);
  expect((await proxy.reload()).users).toBe('reloaded');

  await withClient(proxy.url(...newcomer), async (c) => {
    expect((await c.query(ORDERS)).rows).toHaveLength(4);
  });
  expect((await client.query(ORDERS)).rows).toHaveLength(4);

  // A broken users file: the last good users stay.
  replace('users.yaml', `${USERS}  - name: broken\n    tenant_id: 1\n`);
  expect((await proxy.reload()).users).toBe('failed');
  await withClient(proxy.url(...newcomer), async (c) => {
    expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });
});

test('removing the policy of an open session refuses its statements with policy_removed; new logins use the policy now in force', async () => {
  const { client } = await session();
  await client.query({ name: 'prepared-before', text: 'SELECT id FROM orders WHERE id > $1', values: [0] });

  replace('policy.yaml', POLICY.replace('name: quickstart', 'name: quickstart-next').replace('max_rows: 200', 'max_rows: 3'));
  expect((await proxy.reload()).policies).toBe('reloaded');

  for (const statement of [ORDERS, { text: 'SELECT id FROM orders WHERE id > $1', values: [1] }, { name: 'prepared-before', text: 'SELECT id FROM orders WHERE id > $1', values: [0] }]) {
    const err = (await client.query(statement).then(
      () => undefined,
      (e: PgError) => e,
    )) as PgError;
    expect(err).toBeDefined();
    expect(err.code).toBe('55000');
    expect(err.routine).toBe('ormai.policy_removed');
    expect(err.message).toMatch(/^policy_removed: /);
  }
  // The session itself is still there: the error is per statement.
  await expect(client.query(ORDERS)).rejects.toMatchObject({ routine: 'ormai.policy_removed' });

  const fresh = await session();
  expect((await fresh.client.query(ORDERS)).rows).toHaveLength(3);
  expect((await versionPolicies()).map((p) => p.name)).toEqual(['quickstart-next']);
});

test('a named prepared statement follows a reload, its upstream text replaced when the policy changes it', async () => {
  const { client } = await session();
  const byId = { name: 'by_id', text: 'SELECT id, status FROM orders WHERE id > $1 ORDER BY id' };
  const names = { name: 'names', text: 'SELECT name FROM customers ORDER BY id' };
  expect((await client.query({ ...byId, values: [0] })).rows).toHaveLength(4);
  expect((await client.query(names)).rows).toHaveLength(3);

  // A new row cap changes the forwarded LIMIT: the statement is prepared again upstream, silently.
  replace('policy.yaml', POLICY.replace('max_rows: 200', 'max_rows: 2'));
  expect((await proxy.reload()).policies).toBe('reloaded');
  expect((await client.query({ ...byId, values: [0] })).rows).toHaveLength(2);

  expect((await client.query({ ...byId, values: [0] })).rows).toHaveLength(2);
  // A column that is now denied does not exist for the statement either.
  replace('policy.yaml', POLICY.replace('deny_fields: ["*secret*", "*token*", "*password*"]', 'deny_fields: ["*secret*", "*token*", "*password*", "customers.name"]'));
  expect((await proxy.reload()).policies).toBe('reloaded');
  await expect(client.query(names)).rejects.toMatchObject({ code: '42703' });
  // A table the policy no longer lists: the new policy's own refusal.
  replace('policy.yaml', POLICY.replace('  - customers\n', ''));
  expect((await proxy.reload()).policies).toBe('reloaded');
  await expect(client.query(names)).rejects.toMatchObject({ routine: 'ormai.model_not_allowed' });
  expect((await client.query({ ...byId, values: [0] })).rows).toHaveLength(4);
});
