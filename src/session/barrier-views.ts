// The session's barrier views (rewrite/derived.ts): which ones PostgreSQL has confirmed, and the Query that makes the rest.
//
// A statement is rewritten over the views only when every view of its policy snapshot is in the
// session, or on its way in a Query sent before it; otherwise over fenced derived tables, which
// need nothing from the session. The views are made by the proxy's own Query, sent only where
// the session is idle (no transaction block, nothing unanswered), as an implicit transaction of
// its own that starts READ WRITE (a read-only session's default would refuse CREATE; an agent's
// transaction could roll them back). If PostgreSQL refuses them, the snapshot is marked failed
// and its statements use the fenced form. DISCARD ALL and DISCARD TEMP drop them; they are made
// again at the next idle point.
import type { DiscardStmt } from '@pgsql/types';
import type { AnalyzedStatement } from '../analysis/pipeline';
import { nodeBody } from '../analysis/types';
import type { Principal } from '../auth/principal';
import type { Logger } from '../log';
import type { ReadScope } from '../policy/scope';
import { barrierViewsOf, type BarrierView } from '../analysis/rewrite/derived';

export class SessionViews {
  /** Views PostgreSQL confirmed, by name (a name is a hash of the definition). */
  private readonly made = new Set<string>();
  /** Snapshots whose views could not be made: their statements use the fenced form, and no retry is sent. */
  private readonly failed = new WeakSet<ReadScope>();

  constructor(
    private readonly enabled: boolean,
    private readonly principal: Principal,
    private readonly log: Logger,
  ) {}

  /** The last snapshot found ready: asked for every statement, answered without walking its tables again. */
  private readyFor?: ReadScope;

  /** Every view of the snapshot is in the session: statements may be rewritten over them. */
  ready(scope: ReadScope): boolean {
    if (!this.enabled || this.failed.has(scope)) return false;
    if (this.readyFor === scope) return true;
    if (this.missing(scope).length > 0) return false;
    this.readyFor = scope;
    return true;
  }

  /** The views of the snapshot still to make; none when they are not wanted or could not be made. */
  missing(scope: ReadScope): BarrierView[] {
    if (!this.enabled || this.failed.has(scope)) return [];
    try {
      return barrierViewsOf(scope, this.principal).filter((v) => !this.made.has(v.name));
    } catch (err) {
      // A principal whose tenant does not fit the column: every statement is refused by the rewrite anyway.
      this.failed.add(scope);
      this.log.warn({ err: (err as Error).message }, 'barrier views not made: statements use fenced derived tables');
      return [];
    }
  }

  /** The Query that makes `views` went upstream: statements behind it may read them. */
  sent(views: readonly BarrierView[]): void {
    for (const v of views) this.made.add(v.name);
  }

  /** PostgreSQL answered the Query that makes `views` for `scope`. */
  answered(scope: ReadScope, views: readonly BarrierView[], error: string | undefined): void {
    if (error === undefined) return;
    for (const v of views) this.made.delete(v.name);
    this.readyFor = undefined;
    this.failed.add(scope);
    this.log.warn({ err: error }, 'barrier views not made: statements use fenced derived tables');
  }

  /** A DISCARD ALL or DISCARD TEMP is on its way: no view is assumed to exist any more. */
  discarded(): void {
    this.made.clear();
    this.readyFor = undefined;
  }
}

/** Does one of the statements drop the session's temporary objects (DISCARD ALL, DISCARD TEMP)? */
export function dropsViews(statements: readonly AnalyzedStatement[]): boolean {
  return statements.some((s) => s.nodeType === 'DiscardStmt' && ['DISCARD_ALL', 'DISCARD_TEMP'].includes(nodeBody<DiscardStmt>(s.stmt).target ?? ''));
}
