// The admin API inside a running proxy, and two sidecars sharing the Postgres approvals store.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startProxy, type RunningProxy } from '../../src/app';
import { PostgresApprovalStore } from '../../src/approvals/postgres-store';
import type { Approval } from '../../src/approvals/types';
import { ConfigError, resolveConfig } from '../../src/config/load';
import { silentLogger } from '../../src/log';
import { parseStructuredFile } from '../../src/policy/load';
import { api, approve, closeAdminServers, startAdmin, type Harness, writeAdminSecrets } from '../support/admin';
import { approvalRequest } from '../support/approvals';
import { createTestDatabase, type TestDatabase } from '../support/db';

const QUICKSTART = path.resolve(__dirname, '..', '..', 'config', 'quickstart', 'ormai.yaml');

let db: TestDatabase;
let dir: string;
beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-admin-'));
  writeAdminSecrets(dir);
});
afterEach(() => closeAdminServers());
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await db?.drop();
});

/** A proxy from the quickstart config with `overrides`, both listeners on free ports. */
async function proxyWith(overrides: Record<string, unknown>, options: Parameters<typeof startProxy>[2] = {}): Promise<RunningProxy> {
  const doc = { ...(parseStructuredFile(readFileSync(QUICKSTART, 'utf8'), QUICKSTART) as object), ...overrides };
  const config = resolveConfig(doc, QUICKSTART, { ORMAI_UPSTREAM_URL: db.url, ORMAI_LISTEN: '127.0.0.1:0', ORMAI_ADMIN_LISTEN: '127.0.0.1:0' });
  return startProxy(config, silentLogger, options);
}

describe('two sidecars sharing the Postgres store', () => {
  test('final approvals racing through both admin APIs run the statement exactly once', async () => {
    const table = 'ormai_approvals_sidecars';
    const stores = [0, 1].map(() => new PostgresApprovalStore({ client: { connectionString: db.url }, table }));
    try {
      const slow = async () => new Promise<{ rowsAffected: number }>((r) => setTimeout(() => r({ rowsAffected: 1 }), 30));
      const [a, b]: Harness[] = [await startAdmin({ approvals: stores[0], result: slow }), await startAdmin({ approvals: stores[1], result: slow })];
      for (let round = 0; round < 5; round++) {
        const held = await stores[0].create(approvalRequest({ approvers: 2 }));
        await approve(b, held.id, 'alice');
        const replies = await Promise.all([approve(a, held.id, 'bob'), approve(b, held.id, 'carol'), approve(a, held.id, 'dave'), approve(b, held.id, 'erin')]);
        expect(replies.filter((r) => r.body?.executed)).toHaveLength(1);
        expect([...a.calls, ...b.calls].filter((c) => c.id === held.id)).toHaveLength(1);
        expect((await api(a, 'GET', `/approvals/${held.id}`)).body.approval.state).toBe('executed');
      }
    } finally {
      await closeAdminServers();
      await Promise.all(stores.map((s) => s.close()));
      await db.query('DROP TABLE IF EXISTS ormai_approvals_sidecars');
    }
  });
});

describe('the admin API in a running proxy', () => {
  test('serves /healthz and the approvals API on admin_listen; the executor runs nothing held under another policy; close stops it', async () => {
    const proxy = await proxyWith({ admin: { token_file: path.join(dir, 'admin-token'), identities_file: path.join(dir, 'admin-identities.yaml') }, approvals: { store: 'postgres', table: 'ormai_approvals_app' } });
    const admin = { url: `http://127.0.0.1:${proxy.admin.port}` };
    try {
      expect(proxy.admin.port).not.toBe(proxy.port);
      expect((await api(admin, 'GET', '/healthz', { token: null })).body).toEqual({ status: 'ok' });
      expect((await api(admin, 'GET', '/approvals', { token: null })).status).toBe(401);
      const held = await proxy.approvals.create(approvalRequest({ approvers: 1 }));
      const reply = await api(admin, 'POST', `/approvals/${held.id}/approve`, { body: { approver: 'alice' } });
      expect(reply.body.approval).toMatchObject({ state: 'failed', result: { error: { code: 'policy_changed' } } });
      const [row] = await db.query('SELECT state FROM ormai_approvals_app WHERE id = $1', [held.id]);
      expect(row.state).toBe('failed');
    } finally {
      await proxy.close();
      await db.query('DROP TABLE IF EXISTS ormai_approvals_app');
    }
    await expect(fetch(`${admin.url}/healthz`)).rejects.toThrow();
  });

  test('the approval executor and event listener are taken from startProxy options', async () => {
    const calls: Approval[] = [];
    const actions: string[] = [];
    const proxy = await proxyWith(
      { admin: { token_file: path.join(dir, 'admin-token'), identities_file: path.join(dir, 'admin-identities.yaml') } },
      { approvalExecutor: async (a) => (calls.push(a), { rowsAffected: 2 }), onApprovalEvent: (e) => actions.push(e.action) },
    );
    try {
      const admin = { url: `http://127.0.0.1:${proxy.admin.port}` };
      const held = await proxy.approvals.create(approvalRequest({ approvers: 1 }));
      const reply = await api(admin, 'POST', `/approvals/${held.id}/approve`, { body: { approver: 'alice' } });
      expect(reply.body.approval).toMatchObject({ state: 'executed', result: { rows_affected: 2 } });
      expect(calls.map((c) => c.id)).toEqual([held.id]);
      expect(actions).toEqual(['approve', 'execute']);
    } finally {
      await proxy.close();
    }
  });

  test('without admin.token_file the API answers 503; a missing token file stops start-up', async () => {
    const proxy = await proxyWith({});
    try {
      const admin = { url: `http://127.0.0.1:${proxy.admin.port}` };
      expect((await api(admin, 'GET', '/healthz', { token: null })).status).toBe(200);
      expect((await api(admin, 'GET', '/approvals')).body.error.code).toBe('admin_disabled');
    } finally {
      await proxy.close();
    }
    await expect(proxyWith({ admin: { token_file: path.join(dir, 'absent') } })).rejects.toThrow(ConfigError);
  });

  test('an admin port already in use fails start-up', async () => {
    const first = await proxyWith({});
    try {
      const doc = { ...(parseStructuredFile(readFileSync(QUICKSTART, 'utf8'), QUICKSTART) as object) };
      const env = { ORMAI_UPSTREAM_URL: db.url, ORMAI_LISTEN: '127.0.0.1:0', ORMAI_ADMIN_LISTEN: `127.0.0.1:${first.admin.port}` };
      await expect(startProxy(resolveConfig(doc, QUICKSTART, env), silentLogger)).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await first.close();
    }
  });
});
