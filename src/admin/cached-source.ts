// A value read from something slow (a database, a store, a callback): cached briefly, loaded once at a time, waited for a bounded time.

export interface CachedSourceOptions<T> {
  /** How long a loaded value (or the fallback after a failed load) is served without asking again. */
  ttlMs: number;
  /** How long a caller waits for a load in progress before it gets the fallback; the load goes on and is cached when it ends. */
  waitMs: number;
  /** The value when the load failed or is too slow; `last` is the previous value, if any. */
  fallback: (err: unknown, last: T | undefined) => T;
  now?: () => number;
}

export class SourceTimeoutError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'SourceTimeoutError';
  }
}

/**
 * Health probes and Prometheus scrapes arrive on their own schedule, from several callers at
 * once: without this, each would hit the database. Failures are cached too, so that a source
 * that is down is asked at most once per ttl.
 */
export class CachedSource<T> {
  private cached?: { at: number; value: T };
  private loading?: Promise<T>;
  private readonly now: () => number;

  constructor(
    private readonly load: () => Promise<T> | T,
    private readonly options: CachedSourceOptions<T>,
  ) {
    this.now = options.now ?? (() => Date.now());
  }

  async get(): Promise<T> {
    if (this.cached && this.now() - this.cached.at < this.options.ttlMs) return this.cached.value;
    this.loading ??= this.refresh().finally(() => (this.loading = undefined));
    return withTimeout(this.loading, this.options.waitMs).catch((err: unknown) => this.options.fallback(err, this.cached?.value));
  }

  /** Never rejects: a failed load caches the fallback. */
  private async refresh(): Promise<T> {
    let value: T;
    try {
      value = await this.load();
    } catch (err) {
      value = this.options.fallback(err, this.cached?.value);
    }
    this.cached = { at: this.now(), value };
    return value;
  }
}

/** Rejects with SourceTimeoutError when `promise` has not settled within `ms`; the timer never keeps the process alive. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SourceTimeoutError(ms)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
