// Fixed-window rate limits behind a store interface: in memory for one proxy, shared stores later.

export interface RateDecision {
  allowed: boolean;
  /** Milliseconds until the current window ends. */
  retryAfterMs: number;
  count: number;
}

export interface RateLimitStore {
  /** Counts one event for `key` in the current window of `windowMs`; allowed while count ≤ limit. */
  hit(key: string, limit: number, windowMs: number, now?: number): Promise<RateDecision>;
}

/** One process's counters; windows are aligned to multiples of windowMs. */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly windows = new Map<string, { start: number; count: number }>();

  async hit(key: string, limit: number, windowMs: number, now = Date.now()): Promise<RateDecision> {
    const start = now - (now % windowMs);
    let w = this.windows.get(key);
    if (!w || w.start !== start) {
      w = { start, count: 0 };
      this.windows.set(key, w);
      if (this.windows.size > 100_000) this.sweep(now, windowMs);
    }
    w.count++;
    return { allowed: w.count <= limit, retryAfterMs: start + windowMs - now, count: w.count };
  }

  private sweep(now: number, windowMs: number): void {
    for (const [k, w] of this.windows) if (w.start + windowMs <= now) this.windows.delete(k);
  }
}
