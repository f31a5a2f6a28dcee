// The expiry sweeper: expires overdue approvals once, never overlaps passes, survives a failing store.
import { MemoryApprovalStore } from '../../../src/approvals/memory-store';
import { ExpirySweeper } from '../../../src/approvals/sweeper';
import type { Approval } from '../../../src/approvals/types';
import { silentLogger } from '../../../src/log';
import { approvalRequest } from '../../support/approvals';

const T0 = new Date('2030-01-01T00:00:00Z');
const later = new Date(T0.getTime() + 120_000);

test('a pass expires what is overdue and reports each approval once', async () => {
  const store = new MemoryApprovalStore();
  const a = await store.create(approvalRequest({ expiresInS: 60 }), T0);
  await store.create(approvalRequest({ expiresInS: 600 }), T0);
  const seen: Approval[] = [];
  const sweeper = new ExpirySweeper(store, { intervalMs: 1000, log: silentLogger, now: () => later, onExpired: (x) => seen.push(x) });
  expect((await sweeper.sweep()).map((x) => x.id)).toEqual([a.id]);
  expect(await sweeper.sweep()).toEqual([]);
  expect(seen.map((x) => [x.id, x.state])).toEqual([[a.id, 'expired']]);
});

test('overlapping calls share the pass in flight', async () => {
  const store = new MemoryApprovalStore();
  let calls = 0;
  const expire = store.expire.bind(store);
  store.expire = async (now) => {
    calls++;
    await new Promise((r) => setTimeout(r, 20));
    return expire(now);
  };
  const sweeper = new ExpirySweeper(store, { intervalMs: 1000, log: silentLogger });
  await Promise.all([sweeper.sweep(), sweeper.sweep(), sweeper.sweep()]);
  expect(calls).toBe(1);
});

test('a failing store or listener is logged, not thrown, and the timer keeps running until stop', async () => {
  const store = new MemoryApprovalStore();
  await store.create(approvalRequest({ expiresInS: 0.01 }), new Date(Date.now() - 1000));
  let failures = 0;
  const expire = store.expire.bind(store);
  store.expire = async (now) => {
    if (failures++ < 2) throw new Error('store down');
    return expire(now);
  };
  const sweeper = new ExpirySweeper(store, {
    intervalMs: 5,
    log: silentLogger,
    onExpired: () => {
      throw new Error('listener bug');
    },
  });
  sweeper.start();
  for (let i = 0; i < 100 && (await store.list({ state: 'expired' })).length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  await sweeper.stop();
  expect(failures).toBeGreaterThanOrEqual(3);
  expect(await store.list({ state: 'expired' })).toHaveLength(1);
  const after = failures;
  await new Promise((r) => setTimeout(r, 30));
  expect(failures).toBe(after);
});
