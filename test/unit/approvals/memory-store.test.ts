// The in-memory approvals store: the shared store contract, plus isolation of returned records.
import { MemoryApprovalStore } from '../../../src/approvals/memory-store';
import { approvalRequest, approvalStoreContract } from '../../support/approvals';

let store: MemoryApprovalStore;
beforeEach(() => {
  store = new MemoryApprovalStore();
});
afterEach(() => store.close());

describe('MemoryApprovalStore', () => {
  approvalStoreContract(() => store);

  test('records handed out are copies: changing one does not change the store', async () => {
    const a = await store.create(approvalRequest());
    a.state = 'approved';
    a.approvals.push({ approver: 'mallory', at: a.createdAt });
    (a.params as string[])[0] = '999';
    const stored = (await store.get(a.id))!;
    expect(stored.state).toBe('pending');
    expect(stored.approvals).toEqual([]);
    expect(stored.params).toEqual(['7']);
  });

  test('the preview is stored as JSON, so every store returns the same value', async () => {
    const a = await store.create(approvalRequest({ preview: { at: new Date('2030-01-01T00:00:00Z'), gone: undefined } }));
    expect(a.preview).toEqual({ at: '2030-01-01T00:00:00.000Z' });
  });

  test('a closed store refuses further calls', async () => {
    await store.close();
    await expect(store.list()).rejects.toThrow(/closed/);
  });
});
