// Approvals kept in this process's memory: one sidecar, lost on restart (the audit trail keeps the history).
import { approveTransition, denyTransition, expireTransition, newApproval, resultTransition, type Outcome } from './transitions';
import { ApprovalError, type Approval, type ApprovalFilter, type ApprovalRequest, type ApprovalStore, type ExecutionResult } from './types';

/**
 * Every method reads and writes the map without awaiting in between, so concurrent calls in
 * this process are serialised by the event loop: exactly one approve sees the threshold reached.
 * Callers get copies, so nothing outside can change a stored record.
 */
export class MemoryApprovalStore implements ApprovalStore {
  private readonly approvals = new Map<string, Approval>();
  private closed = false;

  async create(req: ApprovalRequest, now: Date = new Date(), maxPendingPerTenant?: number): Promise<Approval> {
    this.checkOpen();
    // Counted and inserted with no await between: one step.
    if (maxPendingPerTenant !== undefined) {
      let pending = 0;
      for (const a of this.approvals.values()) if (a.state === 'pending' && a.requester.tenantId === req.requester.tenantId) pending++;
      if (pending >= maxPendingPerTenant) throw new ApprovalError('approval_limit_reached');
    }
    const approval = newApproval(req, now);
    this.approvals.set(approval.id, approval);
    return structuredClone(approval);
  }

  async get(id: string): Promise<Approval | undefined> {
    this.checkOpen();
    const found = this.approvals.get(id);
    return found && structuredClone(found);
  }

  async list(filter: ApprovalFilter = {}): Promise<Approval[]> {
    this.checkOpen();
    const out: Approval[] = [];
    // Map iteration follows insertion order, which is creation (and id) order.
    for (const a of this.approvals.values()) {
      if (filter.state !== undefined && a.state !== filter.state) continue;
      if (filter.tenantId !== undefined && a.requester.tenantId !== filter.tenantId) continue;
      if (filter.user !== undefined && a.requester.user !== filter.user) continue;
      out.push(structuredClone(a));
    }
    return out;
  }

  async approve(id: string, approver: string, note?: string, now: Date = new Date()): Promise<{ approval: Approval; ready: boolean }> {
    const { approval, value } = this.apply(id, (a) => approveTransition(a, approver, note, now));
    return { approval, ready: value === true };
  }

  async deny(id: string, by: string, note?: string, now: Date = new Date()): Promise<Approval> {
    return this.apply(id, (a) => denyTransition(a, by, note, now)).approval;
  }

  async recordResult(id: string, result: ExecutionResult, now: Date = new Date()): Promise<Approval> {
    return this.apply(id, (a) => resultTransition(a, result, now)).approval;
  }

  async expire(now: Date = new Date()): Promise<Approval[]> {
    this.checkOpen();
    const out: Approval[] = [];
    for (const a of this.approvals.values()) {
      const next = expireTransition(a, now);
      if (!next) continue;
      this.approvals.set(a.id, next);
      out.push(structuredClone(next));
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private apply<T>(id: string, transition: (a: Approval) => Outcome<T>): { approval: Approval; value?: T } {
    this.checkOpen();
    const current = this.approvals.get(id);
    if (!current) throw new ApprovalError('approval_not_found');
    const { next, value, error } = transition(current);
    if (next) this.approvals.set(id, next);
    if (error) {
      if (next?.state === 'expired' && error instanceof ApprovalError) error.expired = structuredClone(next);
      throw error;
    }
    return { approval: structuredClone(next ?? current), value };
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('approval store is closed');
  }
}
