// Turns at the analysis, per tenant: one tenant's costly statements cannot stall every other tenant's.
//
// Analysis runs on the process's one thread: a 20,000-value IN list passes every bound and takes
// 0.25 s, a 30,000-value one 0.4 s. Sent on four connections at once and again as each finished,
// they ran back to back, and another tenant's one-row read, which needs a few round trips of its
// own (the scan budget's EXPLAIN, the statement, the audit), waited behind one of them at each:
// 1.1 s. Here every analysis that took long is followed by a pause as long, for its tenant: its
// statements then wait for their turns, one a turn of the event loop once the pause is over, and
// meanwhile every other session runs. A long text waits for its turn in any case, since its cost
// is known only once it is analysed. A tenant's costly statements then take at most about half
// the thread while they last, however many connections send them, and another tenant waits for
// at most one of them; a tenant whose analyses are cheap never waits.

/** Texts shorter than this (in UTF-16 units) are analysed at once: their analysis takes a few milliseconds at most. */
export const LONG_TEXT = 4096;

/** An analysis shorter than this leaves no pause after it (a first-seen statement takes 1–2 ms). */
const PAUSE_FROM_MS = 5;

interface TenantTurns {
  /** When the tenant's pause ends (performance.now()). */
  readyAt: number;
  /** Statements waiting for their turn, oldest first. */
  queue: Array<() => void>;
  timer: NodeJS.Timeout | undefined;
  immediate: NodeJS.Immediate | undefined;
}

export class AnalysisTurns {
  private readonly tenants = new Map<string, TenantTurns>();

  /** Runs `work` (synchronous: an analysis and what follows it) in the tenant's turn; resolves with its result. */
  run<T>(tenant: string, work: () => T): Promise<T> {
    return new Promise<void>((resolve) => {
      const turns = this.entry(tenant);
      turns.queue.push(resolve);
      this.schedule(tenant, turns);
    }).then(work);
  }

  /** An analysis of the tenant's took `ms`: its next statements wait as long, when that is long enough to matter. */
  charge(tenant: string, ms: number): void {
    if (ms < PAUSE_FROM_MS) return;
    const turns = this.entry(tenant);
    turns.readyAt = Math.max(turns.readyAt, performance.now() + ms);
    this.schedule(tenant, turns);
  }

  /**
   * Must a statement of the tenant wait for a turn: a long text always; another while the
   * tenant's pause lasts or others wait before it.
   */
  waits(tenant: string, long: boolean): boolean {
    if (long) return true;
    const turns = this.tenants.get(tenant);
    return turns !== undefined && (turns.queue.length > 0 || turns.readyAt > performance.now());
  }

  /** Tenants with a statement waiting or in a pause. */
  get active(): number {
    return this.tenants.size;
  }

  private entry(tenant: string): TenantTurns {
    let turns = this.tenants.get(tenant);
    if (!turns) this.tenants.set(tenant, (turns = { readyAt: 0, queue: [], timer: undefined, immediate: undefined }));
    return turns;
  }

  /**
   * One statement a turn of the event loop once the pause is over (setImmediate: after the loop
   * has read every socket): its work runs before the next turn, so a costly one's pause holds
   * back the rest. Forgets a tenant with nothing waiting once its pause is over.
   */
  private schedule(tenant: string, turns: TenantTurns): void {
    if (turns.timer || turns.immediate) return;
    const delay = turns.readyAt - performance.now();
    if (turns.queue.length === 0) {
      if (delay <= 0) this.tenants.delete(tenant);
      else (turns.timer = setTimeout(() => this.woken(tenant, turns), delay)).unref();
      return;
    }
    if (delay > 0) turns.timer = setTimeout(() => this.woken(tenant, turns), delay);
    else {
      turns.immediate = setImmediate(() => {
        turns.immediate = undefined;
        if (turns.readyAt <= performance.now()) turns.queue.shift()?.();
        this.schedule(tenant, turns);
      });
    }
  }

  private woken(tenant: string, turns: TenantTurns): void {
    turns.timer = undefined;
    this.schedule(tenant, turns);
  }
}

/** The process's turns: every session analyses on the same thread. */
export const analysisTurns = new AnalysisTurns();
