// The Postgres approvals store against a real server: the shared contract, and two stores (two sidecars) deciding once.
import { Client } from 'pg';
import { PostgresApprovalStore, approvalsTableName } from '../../src/approvals/postgres-store';
import { approvalRequest, approvalStoreContract } from '../support/approvals';
import { capturingLogger } from '../support/logs';
import { relayTo } from '../support/relay';
import { createTestDatabase, serverUrl, type TestDatabase } from '../support/db';

let db: TestDatabase;
let storeA: PostgresApprovalStore;
let storeB: PostgresApprovalStore;
const TABLE = 'ormai_approvals';

beforeAll(async () => {
  db = await createTestDatabase();
  // Two pools on one table, as two sidecars would have; both create the table at once.
  storeA = new PostgresApprovalStore({ client: { connectionString: db.url } });
  storeB = new PostgresApprovalStore({ client: { connectionString: db.url }, table: `public.${TABLE}` });
  await Promise.all([storeA.init(), storeB.init()]);
});
beforeEach(async () => {
  await db.query(`DELETE FROM ${TABLE}`);
});
afterAll(async () => {
  await storeA?.close();
  await storeB?.close();
  await db?.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await db?.drop();
});

describe('PostgresApprovalStore: the store contract', () => {
  approvalStoreContract(() => storeA);
});

describe('PostgresApprovalStore: shared by two sidecars', () => {
  test('one store sees what the other wrote', async () => {
    const a = await storeA.create(approvalRequest());
    expect(await storeB.get(a.id)).toEqual(a);
    await storeB.approve(a.id, 'alice');
    expect((await storeA.get(a.id))!.approvals.map((v) => v.approver)).toEqual(['alice']);
  });

  test('concurrent final approvals through two pools: ready=true exactly once, every time', async () => {
    for (let round = 0; round < 10; round++) {
      const a = await storeA.create(approvalRequest({ approvers: 2 }));
      await storeA.approve(a.id, 'alice');
      const results = await Promise.allSettled([
        storeA.approve(a.id, 'bob'),
        storeB.approve(a.id, 'carol'),
        storeA.approve(a.id, 'dave'),
        storeB.approve(a.id, 'erin'),
      ]);
      const ready = results.filter((r) => r.status === 'fulfilled' && r.value.ready);
      expect(ready).toHaveLength(1);
      const final = (await storeB.get(a.id))!;
      expect(final.state).toBe('approved');
      expect(final.approvals).toHaveLength(2);
    }
  });

  test("maxPendingPerTenant holds across two pools creating at once", async () => {
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => (i % 2 ? storeA : storeB).create(approvalRequest(), undefined, 5)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
    expect(await storeA.list({ state: 'pending', tenantId: '1' })).toHaveLength(5);
  });

  test('the same approver through both pools at once is counted once', async () => {
    const a = await storeA.create(approvalRequest({ approvers: 3 }));
    const results = await Promise.allSettled([storeA.approve(a.id, 'alice'), storeB.approve(a.id, 'Alice')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect((await storeA.get(a.id))!.approvals).toHaveLength(1);
  });

  test('concurrent sweeps from both stores expire each approval exactly once', async () => {
    const created = await Promise.all(Array.from({ length: 20 }, () => storeA.create(approvalRequest({ expiresInS: 1 }), new Date('2030-01-01T00:00:00Z'))));
    const now = new Date('2030-01-01T00:00:05Z');
    const [fromA, fromB] = await Promise.all([storeA.expire(now), storeB.expire(now)]);
    const ids = [...fromA, ...fromB].map((x) => x.id).sort();
    expect(ids).toEqual(created.map((x) => x.id).sort());
    expect(await storeA.list({ state: 'expired' })).toHaveLength(20);
  });

  test('recordResult is accepted once across stores', async () => {
    const a = await storeA.create(approvalRequest({ approvers: 1 }));
    await storeB.approve(a.id, 'alice');
    const results = await Promise.allSettled([storeA.recordResult(a.id, { rowsAffected: 2 }), storeB.recordResult(a.id, { rowsAffected: 2 })]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect((await storeA.get(a.id))!.state).toBe('executed');
  });

  test('the row keeps tenant and requester in columns and the request as JSONB', async () => {
    const a = await storeA.create(approvalRequest());
    const [row] = await db.query(`SELECT state, tenant_id, requester, request->>'statementSql' AS sql, jsonb_typeof(request->'preview') AS preview FROM ${TABLE} WHERE id = $1`, [a.id]);
    expect(row).toEqual({ state: 'pending', tenant_id: '1', requester: 'agent1', sql: a.statementSql, preview: 'object' });
  });
});

describe('PostgresApprovalStore: table name', () => {
  test('a configured schema.table is created there and dropped cleanly', async () => {
    await db.query('CREATE SCHEMA ormai_ops');
    const store = new PostgresApprovalStore({ client: { connectionString: db.url }, table: 'ormai_ops.held_writes' });
    try {
      const a = await store.create(approvalRequest());
      const [row] = await db.query(`SELECT count(*)::int AS n FROM ormai_ops.held_writes WHERE id = $1`, [a.id]);
      expect(row.n).toBe(1);
    } finally {
      await store.close();
      await db.query('DROP SCHEMA ormai_ops CASCADE');
    }
  });

  test('names that are not plain identifiers are refused before any SQL is built', () => {
    for (const bad of ['x"; DROP TABLE orders; --', 'a.b.c', '', '1abc', 'public.']) expect(() => approvalsTableName(bad)).toThrow(/approvals table/);
    expect(approvalsTableName('ops.held').qualified).toBe('"ops"."held"');
  });

  test('while the database is missing calls fail; once it exists the next call creates the table', async () => {
    const name = `${db.name}_late`;
    const url = new URL(serverUrl());
    url.pathname = `/${name}`;
    const store = new PostgresApprovalStore({ client: { connectionString: url.toString() } });
    const admin = new Client({ connectionString: serverUrl() });
    await admin.connect();
    try {
      await expect(store.create(approvalRequest())).rejects.toThrow(/does not exist/);
      await admin.query(`CREATE DATABASE "${name}"`);
      const a = await store.create(approvalRequest());
      expect((await store.get(a.id))!.state).toBe('pending');
    } finally {
      await store.close();
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.end();
    }
  });
});

describe('PostgresApprovalStore: connections lost while idle', () => {
  for (const poolSize of [1, 3]) {
    test(`the client learns of it only when it next sends: every call runs again until it has a live connection (${poolSize} pooled)`, async () => {
      const { relay, url } = await relayTo(db.url);
      const { log, lines: warnings } = capturingLogger('warn');
      const store = new PostgresApprovalStore({ client: { connectionString: url }, poolSize, log });
      try {
        const a = await store.create(approvalRequest());
        const calls: Array<[string, () => Promise<unknown>]> = [
          ['get', async () => expect((await store.get(a.id))!.id).toBe(a.id)],
          ['list', async () => expect((await store.list({ state: 'pending' })).map((x) => x.id)).toContain(a.id)],
          ['approve', async () => expect((await store.approve(a.id, 'alice')).ready).toBe(false)],
          ['create', async () => expect((await store.get((await store.create(approvalRequest())).id))!.state).toBe('pending')],
          ['expire', async () => expect((await store.expire(new Date(Date.now() + 30 * 86_400_000))).map((x) => x.id)).toContain(a.id)],
        ];
        for (const [name, call] of calls) {
          // Every pooled connection open and idle, then all of them dropped unseen (a database restart).
          await Promise.all(Array.from({ length: poolSize }, () => store.get(a.id)));
          expect([name, relay.forget()]).toEqual([name, poolSize]);
          const before = warnings.length;
          await call();
          // Each dropped connection was met once, and said so.
          expect([name, warnings.slice(before).filter((w) => /reading again|running it again/.test(w)).length]).toEqual([name, poolSize]);
        }
        const rows = await db.query<{ state: string; n: string }>(`SELECT state, count(*) AS n FROM ${TABLE} GROUP BY state ORDER BY state`);
        expect(rows).toEqual([{ state: 'expired', n: '2' }]);
      } finally {
        await store.close();
        await relay.close();
      }
    });
  }

  test('an error the server answers with is the answer: not run again', async () => {
    const { log, lines: warnings } = capturingLogger('warn');
    const table = 'ormai_approvals_gone';
    const store = new PostgresApprovalStore({ client: { connectionString: db.url }, table: `public.${table}`, log });
    try {
      await store.init();
      await db.query(`DROP TABLE public.${table}`);
      await expect(store.get('appr_missing')).rejects.toThrow(/does not exist/);
      await expect(store.list({})).rejects.toThrow(/does not exist/);
      await expect(store.create(approvalRequest())).rejects.toThrow(/does not exist/);
      expect(warnings).toEqual([]);
    } finally {
      await store.close();
      await db.query(`DROP TABLE IF EXISTS public.${table}`);
    }
  });
});
