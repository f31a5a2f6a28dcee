// Expires unanswered approvals on a timer: each one past expiresAt is denied automatically.
import type { Logger } from '../log';
import type { Approval, ApprovalStore } from './types';

export interface SweeperOptions {
  intervalMs: number;
  log: Logger;
  /** Called once per approval this process expired (another sidecar may expire the rest). */
  onExpired?: (approval: Approval) => void;
  now?: () => Date;
}

export class ExpirySweeper {
  private timer?: NodeJS.Timeout;
  private running?: Promise<Approval[]>;

  constructor(
    private readonly store: ApprovalStore,
    private readonly options: SweeperOptions,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.sweep(), this.options.intervalMs);
    // The sweeper alone must not keep a process alive.
    this.timer.unref();
  }

  /**
   * One pass. Overlapping passes (a slow store and a short interval) share the one in flight
   * instead of piling up; a failing store is logged and retried on the next tick.
   */
  sweep(): Promise<Approval[]> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Stops the timer and waits for a pass in flight, so the store can be closed after. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private async pass(): Promise<Approval[]> {
    let expired: Approval[];
    try {
      expired = await this.store.expire(this.options.now?.() ?? new Date());
    } catch (err) {
      this.options.log.warn({ err: (err as Error).message }, 'approval expiry sweep failed');
      return [];
    }
    for (const a of expired) {
      this.options.log.info({ approval_id: a.id, model: a.model, operation: a.operation, tenant: a.requester.tenantId }, 'approval expired');
      try {
        this.options.onExpired?.(a);
      } catch (err) {
        this.options.log.error({ err: (err as Error).message, approval_id: a.id }, 'approval listener failed');
      }
    }
    return expired;
  }
}
