// A session's budgets: the tenant's statements per minute, the agent's and tenant's writes per minute, the planner's scan estimate.
import type { BarrierView } from '../analysis/rewrite/derived';
import { PLANNER_TIMEOUT_MS, PlannerStatementError, PlannerTimeoutError, type PlanParams, type Planner } from '../budgets/planner';
import type { RateLimitStore } from '../budgets/rate-limit';
import { RateStoreUnavailableError, refusalWhenStoreUnavailable, type StoreAccess } from '../budgets/redis-store';
import type { Principal } from '../auth/principal';
import type { ProxyConfig } from '../config/load';
import { ProxyError } from '../errors/catalogue';
import type { Logger } from '../log';
import type { PolicySnapshot } from '../policy/load';
import type { ReadScope } from '../policy/scope';
import { UpstreamConnectError } from '../upstream/connect';

const MINUTE_MS = 60_000;

const tenantTableMaps = new WeakMap<ReadScope, ReadonlyMap<string, string>>();

/** schema.name → tenant column of the scope's tenant-scoped tables: their sizes count other tenants' rows. */
function tenantTables(scope: ReadScope): ReadonlyMap<string, string> {
  let map = tenantTableMaps.get(scope);
  if (!map) {
    map = new Map([...scope.tables.values()].flatMap((t) => (t.tenantColumn !== undefined ? [[`${t.schema}.${t.name}`, t.tenantColumn] as const] : [])));
    tenantTableMaps.set(scope, map);
  }
  return map;
}

export interface BudgetDeps {
  policy: PolicySnapshot;
  scope: ReadScope;
  scopeKey: string;
  principal: Principal;
  rateLimits: RateLimitStore;
  planner: Planner;
  config: ProxyConfig;
  log: Logger;
}

/** What a budget check decided: go ahead, or the refusal to send instead. */
export type Verdict = { refused?: ProxyError };

export class SessionBudgets {
  constructor(private readonly deps: BudgetDeps) {}

  get limitsQueries(): boolean {
    return this.deps.policy.raw.queries_per_minute_per_tenant !== undefined;
  }

  get limitsWrites(): boolean {
    return this.deps.policy.raw.max_writes_per_minute !== undefined;
  }

  get limitsScans(): boolean {
    return this.deps.policy.raw.max_scan_rows !== undefined;
  }

  /**
   * One statement of queries_per_minute_per_tenant. When the shared store is unavailable,
   * `access()` says whether the statement reads or writes: writes always fail closed, reads
   * follow store.reads_when_unavailable (each one let through is logged).
   */
  async query(access: () => StoreAccess): Promise<Verdict> {
    const { policy, principal, rateLimits, config, log } = this.deps;
    const limit = policy.raw.queries_per_minute_per_tenant!;
    try {
      const decision = await rateLimits.hit(`q:${policy.name}:${principal.tenantId}`, limit, MINUTE_MS);
      if (decision.allowed) return {};
      log.info({ code: 'query_rate_limited' }, 'statement refused');
      return {
        refused: new ProxyError('query_rate_limited', {
          message: `the tenant's budget of ${limit} statements per minute is used up`,
          detail: `retry after ${Math.ceil(decision.retryAfterMs / 1000)} s`,
        }),
      };
    } catch (err) {
      if (!(err instanceof RateStoreUnavailableError)) throw err;
      const mode = config.store.readsWhenUnavailable;
      const refused = refusalWhenStoreUnavailable(mode === 'allow' ? access() : 'write', mode, err);
      if (!refused) {
        log.warn({ err: err.message }, 'rate-limit store unavailable; read allowed without a budget check');
        return {};
      }
      log.warn({ code: refused.code, err: err.message }, 'statement refused');
      return { refused };
    }
  }

  /**
   * Spends `count` writes of max_writes_per_minute, per agent and per tenant (across the
   * tenant's sessions, and across proxies with a shared store). An unreachable shared store
   * refuses writes, always.
   */
  async writes(count: number): Promise<ProxyError | undefined> {
    const { policy, principal, rateLimits, log } = this.deps;
    const limit = policy.raw.max_writes_per_minute!;
    const [agent, tenant] = writeBudgetKeys(policy.name, principal.user, principal.tenantId);
    const budgets: Array<[key: string, whose: string]> = [
      [agent, 'for this agent'],
      [tenant, 'for this tenant'],
    ];
    try {
      for (let i = 0; i < count; i++) {
        for (const [key, whose] of budgets) {
          const decision = await rateLimits.hit(key, limit, MINUTE_MS);
          if (!decision.allowed) {
            log.info({ code: 'write_rate_limited' }, 'statement refused');
            return new ProxyError('write_rate_limited', {
              message: `the budget of ${limit} writes per minute ${whose} is used up`,
              detail: `retry after ${Math.ceil(decision.retryAfterMs / 1000)} s`,
            });
          }
        }
      }
      return undefined;
    } catch (err) {
      if (!(err instanceof RateStoreUnavailableError)) throw err;
      log.warn({ err: err.message }, 'rate-limit store unavailable; write refused');
      return refusalWhenStoreUnavailable('write', 'refuse', err);
    }
  }

  /**
   * Asks the planner how many rows each statement would scan; the refusal when one exceeds
   * max_scan_rows. A statement the planner rejects is let through: the database gives the
   * agent the same error for the statement itself.
   */
  async scans(sqls: string[], params: PlanParams, views: readonly BarrierView[] = []): Promise<ProxyError | undefined> {
    const { policy, scope, scopeKey, planner, principal, log } = this.deps;
    const budget = policy.raw.max_scan_rows!;
    for (const sql of sqls) {
      let rows: number;
      try {
        rows = await planner.scanRows(sql, params, scope.catalog, `${scopeKey}\u0000${sql}`, views, principal.tenantId, tenantTables(scope), policy.statementTimeoutMs);
      } catch (err) {
        // A planner that did not answer in time, or PostgreSQL that cancelled the EXPLAIN at its
        // timeout or ran out of a resource planning it: no estimate, and the statement does not go
        // ahead unbudgeted (it would plan as long again in the session).
        if (err instanceof UpstreamConnectError || (err instanceof PlannerStatementError && (err.sqlstate === '57014' || err.sqlstate.startsWith('53')))) {
          log.warn({ err: err.message }, 'planner unavailable');
          return unplanned(err, policy.statementTimeoutMs);
        }
        // A plan too large to read (a constant of many megabytes, folded into it): refused, not let through unbudgeted.
        if (err instanceof ProxyError && err.code === 'message_too_large') {
          log.warn({ err: err.logMessage ?? err.message }, 'plan too large');
          return new ProxyError('statement_too_complex', {
            message: 'the plan PostgreSQL prints for the statement is too large to check against the scan budget',
            hint: 'Nothing was run. The plan holds the statement\'s constants once computed, so a value of millions of characters (repeat(), lpad(), a long literal or parameter) makes it too large: compare with or compute smaller values.',
          });
        }
        log.debug({ err: (err as Error).message }, 'EXPLAIN failed; the statement goes ahead');
        continue;
      }
      if (rows > budget) {
        log.info({ code: 'scan_budget_exceeded', rows, budget }, 'statement refused');
        // Not the estimate itself: it comes from statistics over every tenant's rows (the log has it).
        return new ProxyError('scan_budget_exceeded', { message: `the statement would scan more rows than the policy allows (${budget})` });
      }
    }
    return undefined;
  }
}

/** The rate-limit keys of max_writes_per_minute: per agent, and per tenant. */
export function writeBudgetKeys(policy: string, user: string, tenantId: string): [agent: string, tenant: string] {
  return [`w:${policy}:u:${user}`, `w:${policy}:t:${tenantId}`];
}

/**
 * The refusal of a read whose scans the planner could not estimate. When PostgreSQL did not plan
 * it within its statement_timeout, retrying the same statement ends the same way (it would not
 * plan in time when run either): the agent is told so, not only to retry.
 */
function unplanned(err: Error, timeoutMs: number): ProxyError {
  const slow = 'Nothing was run. Deeply nested subqueries, expressions repeated at each level and computed constants of millions of characters (repeat(), lpad()) are what PostgreSQL takes long to plan';
  if (err instanceof PlannerStatementError && err.sqlstate === '57014') {
    // The EXPLAIN runs under the policy's timeout, at most PLANNER_TIMEOUT_MS.
    const planMs = Math.min(timeoutMs, PLANNER_TIMEOUT_MS);
    return new ProxyError('budget_unavailable', {
      message: `PostgreSQL stopped planning the statement after ${planMs} ms, so its scans could not be checked`,
      hint: `${slow}: make the statement cheaper to plan instead of sending it again as it is${timeoutMs <= planMs ? '; it would be cancelled the same way when run' : ''}.`,
    });
  }
  if (err instanceof PlannerTimeoutError) {
    return new ProxyError('budget_unavailable', {
      message: `the database did not finish planning the statement within ${err.limitMs} ms, so its scans could not be checked`,
      hint: `${slow}: if this statement ends this way again, make it cheaper to plan; otherwise retry in a few seconds.`,
    });
  }
  return new ProxyError('budget_unavailable');
}
