// Rate limits shared by many proxy processes: a sliding-window log per key in Redis, one atomic Lua script per event.
import { randomBytes } from 'node:crypto';
import type Redis from 'ioredis';
import { ProxyError } from '../errors/catalogue';
import { silentLogger, type Logger } from '../log';
import type { RateDecision, RateLimitStore } from './rate-limit';

/** The shared store could not be asked (unreachable, too slow, or it answered with an error). */
export class RateStoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RateStoreUnavailableError';
  }
}

/**
 * KEYS[1]: the sorted set of one key's allowed events, scored by time in microseconds.
 * ARGV: limit, window in ms, a member unique to this event.
 * Returns { allowed 0/1, retry-after ms, count }.
 *
 * The clock is Redis's (TIME), not the caller's, so that sidecars whose clocks disagree still
 * share one window. Microseconds keep events in order and stay exact in a double (< 2^53).
 * Refused events are not added, as in the memory store. The key expires one window after its
 * last allowed event, when every member has aged out anyway.
 */
const HIT_SCRIPT = `
if redis.replicate_commands then redis.replicate_commands() end
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2]) * 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count >= limit then
  local retry = window
  local freeing = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
  if freeing[2] then retry = tonumber(freeing[2]) + window - now end
  return {0, math.ceil(retry / 1000), count}
end
redis.call('ZADD', key, now, ARGV[3])
redis.call('PEXPIRE', key, ARGV[2])
return {1, 0, count + 1}
`;

type HitReply = [allowed: number, retryAfterMs: number, count: number];
type ScriptedRedis = Redis & { ormaiRateHit(key: string, limit: number, windowMs: number, member: string): Promise<HitReply> };

export interface RedisRateLimitStoreOptions {
  /** redis:// or rediss:// URL; may carry a password, so it is never logged. */
  url: string;
  /** Prepended to every key. Default: ormai:rl: */
  keyPrefix?: string;
  /** A command (and a wait for the first connection) that takes longer fails. Default: 500 ms. */
  commandTimeoutMs?: number;
  log?: Logger;
}

/**
 * ioredis, loaded when the first Redis store is made: a proxy whose budgets live in memory never
 * loads it and its dependencies (4 MB of RSS that each sidecar would otherwise keep for nothing).
 */
function ioredis(): typeof Redis {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const loaded = require('ioredis') as { default?: typeof Redis } & typeof Redis;
  return loaded.default ?? loaded;
}

/**
 * Fails fast by design: with no offline queue, a hit while the connection is down rejects at
 * once instead of waiting for a reconnect, and every command has a timeout. Callers decide what
 * an unavailable store means (see refusalWhenStoreUnavailable); this class never guesses.
 */
export class RedisRateLimitStore implements RateLimitStore {
  private readonly redis: ScriptedRedis;
  private readonly keyPrefix: string;
  private readonly timeoutMs: number;
  private readonly log: Logger;
  /** Members must be unique per event across all sidecars: a random id per store plus a counter. */
  private readonly memberPrefix = randomBytes(8).toString('hex');
  private sequence = 0;
  private outage = false;
  private closed = false;
  /** One wait for a connection in progress, shared by every hit that arrives meanwhile. */
  private connecting?: Promise<void>;

  constructor(options: RedisRateLimitStoreOptions) {
    this.keyPrefix = options.keyPrefix ?? 'ormai:rl:';
    this.timeoutMs = options.commandTimeoutMs ?? 500;
    this.log = options.log ?? silentLogger;
    const RedisClient = ioredis();
    this.redis = new RedisClient(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      commandTimeout: this.timeoutMs,
      connectTimeout: Math.max(this.timeoutMs, 1000),
      // close() only disconnects a connection that is not ready or did not answer QUIT: nothing
      // graceful is left to wait for, so its socket (and ioredis's timer) must not linger 2 s.
      disconnectTimeout: 100,
      // A command lost with its connection is not re-sent later: its caller has already been answered.
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      // Reconnect in the background, soon enough that the store comes back within seconds.
      retryStrategy: (times) => Math.min(times * 200, 2000),
    }) as ScriptedRedis;
    this.redis.defineCommand('ormaiRateHit', { numberOfKeys: 1, lua: HIT_SCRIPT });
    // Without a listener, ioredis writes every failed reconnect to stderr with console.error, and an
    // 'error' it emits directly (a protocol error) would crash the process. Log state changes only.
    this.redis.on('error', (err: Error) => {
      if (this.outage) return;
      this.outage = true;
      this.log.warn({ err: err.message }, 'rate-limit store unreachable; shared budgets cannot be checked');
    });
    this.redis.on('ready', () => {
      if (this.outage) this.log.info('rate-limit store reachable again');
      this.outage = false;
    });
  }

  /**
   * Opens the connection, or rejects within the timeout. Not required (the first hit connects),
   * but lets start-up report an unreachable store early.
   */
  async connect(): Promise<void> {
    await this.ready();
  }

  /** `now` is ignored: the window runs on Redis's clock, shared by every sidecar. */
  async hit(key: string, limit: number, windowMs: number): Promise<RateDecision> {
    await this.ready();
    const member = `${this.memberPrefix}:${(this.sequence++).toString(36)}`;
    let reply: HitReply;
    try {
      reply = await this.redis.ormaiRateHit(this.keyPrefix + key, limit, Math.max(1, Math.round(windowMs)), member);
    } catch (err) {
      throw new RateStoreUnavailableError(`rate-limit store command failed: ${(err as Error).message}`, { cause: err });
    }
    const [allowed, retryAfterMs, count] = reply.map(Number);
    return { allowed: allowed === 1, retryAfterMs: Math.max(0, retryAfterMs), count };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.redis.status !== 'ready') {
      this.redis.disconnect();
      return;
    }
    // QUIT lets Redis finish what it was sent; a store that does not answer is cut off.
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  /**
   * Resolves when the connection is ready. Only an attempt in progress is waited for (at most the
   * command timeout); one that already failed and is backing off rejects at once.
   */
  private ready(): Promise<void> {
    const redis = this.redis;
    if (this.closed) return Promise.reject(new RateStoreUnavailableError('rate-limit store is closed'));
    if (redis.status === 'ready') return Promise.resolve();
    if (redis.status === 'wait') redis.connect().catch(() => undefined);
    else if (redis.status !== 'connecting' && redis.status !== 'connect') {
      return Promise.reject(new RateStoreUnavailableError(`rate-limit store not connected (${redis.status})`));
    }
    this.connecting ??= new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        redis.off('ready', onReady);
        redis.off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onReady = () => done();
      const onClose = () => done(new RateStoreUnavailableError('rate-limit store connection failed'));
      const timer = setTimeout(() => done(new RateStoreUnavailableError(`rate-limit store did not connect within ${this.timeoutMs} ms`)), this.timeoutMs);
      redis.once('ready', onReady);
      redis.once('close', onClose);
    }).finally(() => (this.connecting = undefined));
    return this.connecting;
  }
}

/** How a statement is treated when the shared store cannot be asked. */
export type StoreAccess = 'read' | 'write';

/**
 * The decision when a budget could not be checked because the store is unavailable: undefined
 * lets the statement through, otherwise the refusal to send. Writes always fail closed; reads
 * follow store.reads_when_unavailable (fail open for reads is the operator's explicit choice).
 */
export function refusalWhenStoreUnavailable(access: StoreAccess, readsWhenUnavailable: 'refuse' | 'allow', err: Error): ProxyError | undefined {
  if (access === 'read' && readsWhenUnavailable === 'allow') return undefined;
  return new ProxyError('rate_store_unavailable', { logMessage: err.message });
}
