// The behaviour every approvals store must have, run against the memory store (unit) and the Postgres store (integration).
import { ApprovalError, type ApprovalErrorCode, type ApprovalRequest, type ApprovalStore } from '../../src/approvals/types';

export function approvalRequest(overrides: Partial<ApprovalRequest> = {}): ApprovalRequest {
  return {
    requester: { user: 'agent1', tenantId: '1', roles: ['agent'] },
    policy: { name: 'quickstart', hash: 'abc123' },
    rule: 'update orders when affected_rows > 50',
    operation: 'update',
    model: 'orders',
    reason: 'customer asked to cancel',
    originalSql: "UPDATE orders SET status = 'cancelled' WHERE customer_id = $1",
    statementSql: "UPDATE public.orders SET status = 'cancelled' WHERE customer_id = $1 AND tenant_id = 1",
    params: ['7'],
    preview: { rows: [{ id: 1, status_before: 'open', status_after: 'cancelled' }], count: 1 },
    approvers: 2,
    expiresInS: 3600,
    ...overrides,
  };
}

export async function refusal(promise: Promise<unknown>): Promise<ApprovalErrorCode> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ApprovalError) return err.code;
    throw err;
  }
  throw new Error('expected an ApprovalError, got success');
}

const T0 = new Date('2030-01-01T00:00:00.000Z');
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

/** Registers the shared cases; `store()` returns the store under test (fresh or emptied per test). */
export function approvalStoreContract(store: () => ApprovalStore): void {
  test('create returns a pending approval with an appr_ ULID id, expiry and the request unchanged', async () => {
    const a = await store().create(approvalRequest(), T0);
    expect(a.id).toMatch(/^appr_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(a).toMatchObject({ state: 'pending', createdAt: T0.toISOString(), expiresAt: at(3600).toISOString(), approvals: [], ...approvalRequest() });
    expect(await store().get(a.id)).toEqual(a);
    expect(await store().get('appr_00000000000000000000000000')).toBeUndefined();
  });

  test('create refuses an approver count below 1 and a non-positive expiry', async () => {
    await expect(store().create(approvalRequest({ approvers: 0 }))).rejects.toThrow(RangeError);
    await expect(store().create(approvalRequest({ expiresInS: 0 }))).rejects.toThrow(RangeError);
  });

  test("maxPendingPerTenant: a tenant's pending requests are bounded, even created all at once; decided ones and other tenants do not count", async () => {
    const other = { requester: { user: 'agent2', tenantId: '2', roles: [] } };
    await store().create(approvalRequest(other), T0, 1);
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => store().create(approvalRequest(), at(i), 3)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ name: 'ApprovalError', code: 'approval_limit_reached', status: 429 });
    expect(await store().list({ state: 'pending', tenantId: '1' })).toHaveLength(3);
    // A decided one makes room; without a bound nothing is refused.
    const [first] = await store().list({ state: 'pending', tenantId: '1' });
    await store().deny(first.id, 'alice', undefined, at(20));
    await store().create(approvalRequest(), at(21), 3);
    await expect(store().create(approvalRequest(), at(22), 3)).rejects.toMatchObject({ code: 'approval_limit_reached' });
    await store().create(approvalRequest(), at(23));
    expect(await store().list({ state: 'pending', tenantId: '1' })).toHaveLength(4);
  });

  test('list filters by state, tenant and requester, oldest first', async () => {
    const a = await store().create(approvalRequest(), T0);
    const b = await store().create(approvalRequest({ requester: { user: 'agent2', tenantId: '2', roles: [] } }), at(1));
    const c = await store().create(approvalRequest({ approvers: 1 }), at(2));
    await store().approve(c.id, 'alice', undefined, at(3));
    expect((await store().list()).map((x) => x.id)).toEqual([a.id, b.id, c.id]);
    expect((await store().list({ state: 'pending' })).map((x) => x.id)).toEqual([a.id, b.id]);
    expect((await store().list({ state: 'approved' })).map((x) => x.id)).toEqual([c.id]);
    expect((await store().list({ tenantId: '2' })).map((x) => x.id)).toEqual([b.id]);
    expect((await store().list({ user: 'agent1', state: 'pending' })).map((x) => x.id)).toEqual([a.id]);
  });

  test('the threshold is reached by the second distinct approver, who alone gets ready=true', async () => {
    const a = await store().create(approvalRequest(), T0);
    const first = await store().approve(a.id, 'alice', 'looks right', at(10));
    expect(first.ready).toBe(false);
    expect(first.approval.state).toBe('pending');
    expect(first.approval.approvals).toEqual([{ approver: 'alice', note: 'looks right', at: at(10).toISOString() }]);
    const second = await store().approve(a.id, 'bob', undefined, at(20));
    expect(second.ready).toBe(true);
    expect(second.approval.state).toBe('approved');
    expect(second.approval.decision).toEqual({ by: 'bob', at: at(20).toISOString() });
    expect(await refusal(store().approve(a.id, 'carol', undefined, at(30)))).toBe('approval_not_pending');
  });

  test('a repeated approver is refused, also with other case or surrounding spaces', async () => {
    const a = await store().create(approvalRequest(), T0);
    await store().approve(a.id, 'alice', undefined, at(1));
    expect(await refusal(store().approve(a.id, 'alice', undefined, at(2)))).toBe('approval_repeated_approver');
    expect(await refusal(store().approve(a.id, ' Alice ', undefined, at(2)))).toBe('approval_repeated_approver');
    expect((await store().get(a.id))!.approvals).toHaveLength(1);
  });

  test('the requester cannot approve their own write', async () => {
    const a = await store().create(approvalRequest({ approvers: 1 }), T0);
    expect(await refusal(store().approve(a.id, 'agent1', undefined, at(1)))).toBe('approval_by_requester');
    expect(await refusal(store().approve(a.id, 'AGENT1', undefined, at(1)))).toBe('approval_by_requester');
    expect((await store().get(a.id))!.state).toBe('pending');
  });

  test('an unknown id is refused as not found', async () => {
    const missing = 'appr_01ARZ3NDEKTSV4RRFFQ69G5FAV';
    expect(await refusal(store().approve(missing, 'alice'))).toBe('approval_not_found');
    expect(await refusal(store().deny(missing, 'alice'))).toBe('approval_not_found');
    expect(await refusal(store().recordResult(missing, { rowsAffected: 1 }))).toBe('approval_not_found');
  });

  test('deny ends a pending approval; nothing can approve or deny it after', async () => {
    const a = await store().create(approvalRequest(), T0);
    await store().approve(a.id, 'alice', undefined, at(1));
    const denied = await store().deny(a.id, 'bob', 'too many rows', at(2));
    expect(denied.state).toBe('denied');
    expect(denied.decision).toEqual({ by: 'bob', note: 'too many rows', at: at(2).toISOString() });
    expect(await refusal(store().approve(a.id, 'carol', undefined, at(3)))).toBe('approval_not_pending');
    expect(await refusal(store().deny(a.id, 'carol', undefined, at(3)))).toBe('approval_not_pending');
  });

  test('expiry: overdue pending approvals expire once; approving one the sweeper missed is refused and expires it', async () => {
    const a = await store().create(approvalRequest({ expiresInS: 60 }), T0);
    const b = await store().create(approvalRequest({ expiresInS: 600 }), T0);
    const c = await store().create(approvalRequest({ expiresInS: 60, approvers: 1 }), T0);
    const d = await store().create(approvalRequest({ expiresInS: 60 }), T0);
    await store().approve(c.id, 'alice', undefined, at(10));
    expect(await store().expire(at(59))).toEqual([]);
    const expired = await store().expire(at(60));
    expect(expired.map((x) => x.id)).toEqual([a.id, d.id]);
    expect(expired[0]).toMatchObject({ state: 'expired', decision: { by: 'ormai:expiry', at: at(60).toISOString() } });
    expect(await store().expire(at(61))).toEqual([]);
    expect(await refusal(store().approve(a.id, 'bob', undefined, at(61)))).toBe('approval_expired');
    expect(await refusal(store().approve(b.id, 'bob', undefined, at(600)))).toBe('approval_expired');
    expect((await store().get(b.id))!.state).toBe('expired');
    expect(await refusal(store().deny(b.id, 'bob', undefined, at(601)))).toBe('approval_expired');
    expect((await store().get(c.id))!.state).toBe('approved');
  });

  test('recordResult moves approved to executed or failed, once', async () => {
    const a = await store().create(approvalRequest({ approvers: 1 }), T0);
    expect(await refusal(store().recordResult(a.id, { rowsAffected: 1 }, at(1)))).toBe('approval_not_approved');
    await store().approve(a.id, 'alice', undefined, at(1));
    const done = await store().recordResult(a.id, { rowsAffected: 3 }, at(2));
    expect(done).toMatchObject({ state: 'executed', result: { rowsAffected: 3, at: at(2).toISOString() } });
    expect(await refusal(store().recordResult(a.id, { rowsAffected: 3 }, at(3)))).toBe('approval_not_approved');
    const b = await store().create(approvalRequest({ approvers: 1 }), T0);
    await store().approve(b.id, 'alice', undefined, at(1));
    const failed = await store().recordResult(b.id, { error: { code: '23505', message: 'duplicate key' } }, at(2));
    expect(failed).toMatchObject({ state: 'failed', result: { error: { code: '23505', message: 'duplicate key' } } });
    expect(await store().get(b.id)).toEqual(failed);
  });

  test('concurrent approvals: exactly one caller gets ready=true', async () => {
    for (const approvers of [1, 2, 3]) {
      const a = await store().create(approvalRequest({ approvers }));
      const names = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];
      const results = await Promise.allSettled(names.map((n) => store().approve(a.id, n)));
      const ready = results.filter((r) => r.status === 'fulfilled' && r.value.ready);
      expect(ready).toHaveLength(1);
      const final = (await store().get(a.id))!;
      expect(final.state).toBe('approved');
      expect(final.approvals).toHaveLength(approvers);
      for (const r of results) if (r.status === 'rejected') expect((r.reason as ApprovalError).code).toBe('approval_not_pending');
    }
  });
}
