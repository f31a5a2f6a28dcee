// Rate limits over a sliding one-window log, behind a store interface: in memory for one proxy, shared stores later.

export interface RateDecision {
  allowed: boolean;
  /** Milliseconds until one more event would be allowed (0 when allowed). */
  retryAfterMs: number;
  /** Events counted in the window, this one included when allowed. */
  count: number;
}

export interface RateLimitStore {
  /** Counts one event for `key` if fewer than `limit` were counted in the last `windowMs`. */
  hit(key: string, limit: number, windowMs: number, now?: number): Promise<RateDecision>;
}

/**
 * One process's counters. Each key keeps the times of its last `limit` allowed events, so the
 * rule holds over every window of `windowMs`, not only over aligned minutes; refused events are
 * not counted (a client that keeps retrying does not push its own budget further away).
 */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly logs = new Map<string, number[]>();

  async hit(key: string, limit: number, windowMs: number, now = Date.now()): Promise<RateDecision> {
    let log = this.logs.get(key);
    if (!log) {
      log = [];
      this.logs.set(key, log);
      if (this.logs.size > 100_000) this.sweep(now, windowMs);
    }
    while (log.length > 0 && log[0] <= now - windowMs) log.shift();
    if (log.length >= limit) return { allowed: false, retryAfterMs: log[0] + windowMs - now, count: log.length };
    log.push(now);
    return { allowed: true, retryAfterMs: 0, count: log.length };
  }

  private sweep(now: number, windowMs: number): void {
    for (const [k, log] of this.logs) if (log.length === 0 || log[log.length - 1] <= now - windowMs) this.logs.delete(k);
  }
}
