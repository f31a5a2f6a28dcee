// Turns at the analysis for long statement texts, per tenant: one tenant's costly statements cannot
// stall every other tenant's.
//
// Analysis runs on the process's one thread: a 20,000-value IN list passes every bound and takes
// 0.25 s, a 30,000-value one 0.4 s. Sent on four connections at once and again as each finished,
// they ran back to back, and another tenant's one-row read, which needs a few round trips of its
// own (the scan budget's EXPLAIN, the statement, the audit), waited behind one of them at each:
// 1.1 s. Here a long text waits for its tenant's turn: one at a time, each followed by a pause as
// long as the work it took, during which every other session runs. A tenant's long statements
// then take at most half the thread while they last; another tenant waits for at most one of
// them. Short texts, whose analysis costs little, never wait.

/** Texts shorter than this (in UTF-16 units) are analysed at once: their analysis takes a few milliseconds at most. */
export const LONG_TEXT = 4096;

/** Work shorter than this leaves no pause after it. */
const PAUSE_FROM_MS = 5;

interface TenantTurns {
  waiting: Array<() => void>;
  /** When the tenant's next long text may start (performance.now()). */
  readyAt: number;
  /** A turn has been given and its work not yet reported. */
  busy: boolean;
  timer: NodeJS.Timeout | undefined;
}

export class AnalysisTurns {
  private readonly tenants = new Map<string, TenantTurns>();

  /** Runs `work` (synchronous: an analysis and what follows it) in the tenant's turn; resolves with its result. */
  run<T>(tenant: string, work: () => T): Promise<T> {
    return new Promise<void>((resolve) => {
      let turns = this.tenants.get(tenant);
      if (!turns) this.tenants.set(tenant, (turns = { waiting: [], readyAt: 0, busy: false, timer: undefined }));
      turns.waiting.push(resolve);
      this.schedule(tenant, turns);
    }).then(() => {
      const started = performance.now();
      try {
        return work();
      } finally {
        this.finished(tenant, performance.now() - started);
      }
    });
  }

  /** Tenants with a text waiting or at work. */
  get active(): number {
    return this.tenants.size;
  }

  private schedule(tenant: string, turns: TenantTurns): void {
    if (turns.busy || turns.timer || turns.waiting.length === 0) return;
    const delay = Math.max(0, turns.readyAt - performance.now());
    // A timer, even of 0 ms, lets the event loop read every socket before the turn is given.
    turns.timer = setTimeout(() => {
      turns.timer = undefined;
      const next = turns.waiting.shift();
      if (!next) return;
      turns.busy = true;
      next();
    }, delay);
  }

  private finished(tenant: string, ms: number): void {
    const turns = this.tenants.get(tenant);
    if (!turns) return;
    turns.busy = false;
    if (ms >= PAUSE_FROM_MS) turns.readyAt = performance.now() + ms;
    if (turns.waiting.length > 0) {
      this.schedule(tenant, turns);
      return;
    }
    // Nothing waits: the tenant's entry goes once its pause is over (a text sent meanwhile waits for that).
    const rest = turns.readyAt - performance.now();
    if (rest <= 0) {
      this.tenants.delete(tenant);
      return;
    }
    turns.timer = setTimeout(() => {
      turns.timer = undefined;
      if (turns.waiting.length === 0) this.tenants.delete(tenant);
      else this.schedule(tenant, turns);
    }, rest);
    turns.timer.unref();
  }
}

/** The process's turns: every session analyses on the same thread. */
export const analysisTurns = new AnalysisTurns();
