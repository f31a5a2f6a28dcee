// Turns at the analysis for long statement texts, per tenant: one tenant's costly statements cannot
// stall every other tenant's.
//
// Analysis runs on the process's one thread: a 20,000-value IN list passes every bound and takes
// 0.25 s, a 30,000-value one 0.4 s. Sent on four connections at once and again as each finished,
// they ran back to back, and another tenant's one-row read, which needs a few round trips of its
// own (the scan budget's EXPLAIN, the statement, the audit), waited behind one of them at each:
// 1.1 s. Here every analysis that took long is followed by a pause as long, for its tenant: its
// next statement waits for its turn until then, and meanwhile every other session runs. A long
// text waits for its turn in any case, since its cost is known only once it is analysed: one at a
// time per tenant. A tenant's costly statements then take at most half the thread while they
// last, however many connections send them, and another tenant waits for at most one of them.

/** Texts shorter than this (in UTF-16 units) are analysed at once: their analysis takes a few milliseconds at most. */
export const LONG_TEXT = 4096;

/** An analysis shorter than this leaves no pause after it (a first-seen statement takes 1–2 ms). */
const PAUSE_FROM_MS = 5;

interface TenantTurns {
  waiting: Array<() => void>;
  /** When the tenant's next statement may be analysed (performance.now()). */
  readyAt: number;
  /** A turn has been given and its work is not over. */
  busy: boolean;
  timer: NodeJS.Timeout | undefined;
}

export class AnalysisTurns {
  private readonly tenants = new Map<string, TenantTurns>();

  /** Runs `work` (synchronous: an analysis and what follows it) in the tenant's turn; resolves with its result. */
  run<T>(tenant: string, work: () => T): Promise<T> {
    return new Promise<void>((resolve) => {
      const turns = this.entry(tenant);
      turns.waiting.push(resolve);
      turns.timer?.ref();
      this.next(tenant, turns);
    }).then(() => {
      try {
        return work();
      } finally {
        const turns = this.entry(tenant);
        turns.busy = false;
        this.next(tenant, turns);
      }
    });
  }

  /** An analysis of the tenant's took `ms`: its next statement waits as long, when that is long enough to matter. */
  charge(tenant: string, ms: number): void {
    if (ms < PAUSE_FROM_MS) return;
    const turns = this.entry(tenant);
    turns.readyAt = Math.max(turns.readyAt, performance.now() + ms);
    this.next(tenant, turns);
  }

  /** Must the tenant's next statement wait for its turn: one at work, one waiting, or a pause not over? */
  owes(tenant: string): boolean {
    const turns = this.tenants.get(tenant);
    return turns !== undefined && (turns.busy || turns.waiting.length > 0 || turns.readyAt > performance.now());
  }

  /** Tenants with a statement waiting, at work, or in a pause. */
  get active(): number {
    return this.tenants.size;
  }

  private entry(tenant: string): TenantTurns {
    let turns = this.tenants.get(tenant);
    if (!turns) this.tenants.set(tenant, (turns = { waiting: [], readyAt: 0, busy: false, timer: undefined }));
    return turns;
  }

  /** Gives the next turn once the pause is over; forgets the tenant when nothing waits and the pause is over. */
  private next(tenant: string, turns: TenantTurns): void {
    if (turns.busy || turns.timer) return;
    const delay = Math.max(0, turns.readyAt - performance.now());
    if (turns.waiting.length === 0 && delay === 0) {
      this.tenants.delete(tenant);
      return;
    }
    // A timer, even of 0 ms, lets the event loop read every socket before the turn is given.
    turns.timer = setTimeout(() => {
      turns.timer = undefined;
      if (turns.readyAt > performance.now()) {
        this.next(tenant, turns);
        return;
      }
      const resolve = turns.waiting.shift();
      if (!resolve) {
        this.next(tenant, turns);
        return;
      }
      turns.busy = true;
      resolve();
    }, delay);
    // Only a pause with nothing waiting: no reason to keep the process up.
    if (turns.waiting.length === 0) turns.timer.unref();
  }
}

/** The process's turns: every session analyses on the same thread. */
export const analysisTurns = new AnalysisTurns();
