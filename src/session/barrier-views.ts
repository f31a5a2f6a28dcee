// The session's barrier views (rewrite/derived.ts): which ones PostgreSQL has confirmed, and the Query that makes the rest.
//
// A statement is rewritten over the views only when PostgreSQL has confirmed every view of its
// policy snapshot in the session; otherwise over fenced derived tables, which need nothing from
// the session. The views are made by the proxy's own Query as the session starts, before the
// client is told it is ready (listener/handshake.ts), so its first statement reads through them.
// After DISCARD ALL or DISCARD TEMP, or a reload that changed a table's scope, the Query is sent
// again where the session is idle (no transaction block, nothing unanswered); statements sent
// before its answer use the fenced form. It is an implicit transaction of its own that starts
// READ WRITE (a read-only session's default would refuse CREATE; an agent's transaction could roll
// them back). If PostgreSQL refuses them, the snapshot is marked failed and its statements use
// the fenced form.
import type { DiscardStmt } from '@pgsql/types';
import type { AnalyzedStatement } from '../analysis/pipeline';
import { nodeBody } from '../analysis/types';
import type { Principal } from '../auth/principal';
import type { Logger } from '../log';
import type { ReadScope } from '../policy/scope';
import { barrierViewsOf, type BarrierView } from '../analysis/rewrite/derived';

/** What the session's start made: the views PostgreSQL confirmed for `scope`, or its error. */
export interface SessionViewsAtStart {
  scope: ReadScope;
  made: readonly BarrierView[];
  error?: string;
}

export class SessionViews {
  /** Views PostgreSQL confirmed, by name (a name is a hash of the definition). */
  private readonly made = new Set<string>();
  /** Snapshots whose views could not be made: their statements use the fenced form, and no retry is sent. */
  private readonly failed = new WeakSet<ReadScope>();

  /** A Query making views is on its way: no second one is sent before its answer. */
  private making = false;
  /** Counts DISCARDs sent: views made by a Query sent before one are gone again. */
  private discards = 0;

  constructor(
    private readonly enabled: boolean,
    private readonly principal: Principal,
    private readonly log: Logger,
    atStart?: SessionViewsAtStart,
  ) {
    if (!atStart) return;
    for (const v of atStart.made) this.made.add(v.name);
    if (atStart.error !== undefined) this.refused(atStart.scope, atStart.error);
  }

  /** The last snapshot found ready: asked for every statement, answered without walking its tables again. */
  private readyFor?: ReadScope;

  /** Every view of the snapshot is in the session: statements may be rewritten over them. */
  ready(scope: ReadScope): boolean {
    if (!this.enabled || this.failed.has(scope)) return false;
    if (this.readyFor === scope) return true;
    const absent = this.absent(scope);
    if (absent === undefined || absent.length > 0) return false;
    this.readyFor = scope;
    return true;
  }

  /** The views of the snapshot still to make; none when they are not wanted, could not be made, or are on their way. */
  missing(scope: ReadScope): BarrierView[] {
    if (!this.enabled || this.readyFor === scope || this.failed.has(scope) || this.making) return [];
    return this.absent(scope) ?? [];
  }

  /** The snapshot's views PostgreSQL has not confirmed; undefined when the principal's views cannot be defined. */
  private absent(scope: ReadScope): BarrierView[] | undefined {
    try {
      return barrierViewsOf(scope, this.principal).filter((v) => !this.made.has(v.name));
    } catch (err) {
      // A principal whose tenant does not fit the column: every statement is refused by the rewrite anyway.
      this.refused(scope, (err as Error).message);
      return undefined;
    }
  }

  /** The Query that makes views went upstream; the value to give answered(). */
  sent(): number {
    this.making = true;
    return this.discards;
  }

  /**
   * PostgreSQL answered the Query that makes `views` for `scope` (sent when `discards` was the
   * count): they exist from now on, unless it refused them or a DISCARD sent after it drops them.
   */
  answered(scope: ReadScope, views: readonly BarrierView[], error: string | undefined, discards: number): void {
    this.making = false;
    if (error !== undefined) this.refused(scope, error);
    else if (discards === this.discards) for (const v of views) this.made.add(v.name);
  }

  private refused(scope: ReadScope, error: string): void {
    this.failed.add(scope);
    this.log.warn({ err: error }, 'barrier views not made: statements use fenced derived tables');
  }

  /**
   * A DISCARD ALL or DISCARD TEMP is on its way: from here on no view is assumed to exist (the
   * statements behind it run after it). Should it fail, the views are still there, and the next
   * Query that makes them replaces them with the same definitions.
   */
  discarded(): void {
    this.discards++;
    this.made.clear();
    this.readyFor = undefined;
  }
}

/** Does one of the statements drop the session's temporary objects (DISCARD ALL, DISCARD TEMP)? */
export function dropsViews(statements: readonly AnalyzedStatement[]): boolean {
  return statements.some((s) => s.nodeType === 'DiscardStmt' && ['DISCARD_ALL', 'DISCARD_TEMP'].includes(nodeBody<DiscardStmt>(s.stmt).target ?? ''));
}
