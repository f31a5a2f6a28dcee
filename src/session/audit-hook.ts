// The audit hook of one pending item: each of its statements reported once, as it ends; what was not reported when the item ends did not run.
import { performance } from 'node:perf_hooks';
import type { SentStatement, StatementAuditor, ToolAuditContext, Who, WriteReported } from './auditing';
import type { AuditHook, StatementOutcome } from './pending';

/** What a hook reports on until every statement of its item is reported. */
export interface LiveStatement {
  sent: SentStatement;
  text: { sql: string; sql_hmac: string };
  who: Who;
}

/**
 * One pending item's hook (StatementAuditor.hook): an object rather than closures, since every
 * statement makes one. Each statement is reported once; what was not reported when the item
 * ends did not run.
 */
export class StatementHook implements AuditHook {
  private readonly started = performance.now();
  private live: LiveStatement | undefined;
  private left: number;
  /** Which statements are reported, when the item has several (with one, `live` says it). */
  private readonly reported?: boolean[];

  constructor(
    private readonly auditor: StatementAuditor,
    live: LiveStatement,
    private readonly count: number,
    private readonly tool: ToolAuditContext | undefined,
    private readonly onWrite?: WriteReported,
  ) {
    this.live = live;
    this.left = count;
    if (count > 1) this.reported = new Array<boolean>(count).fill(false);
  }

  result(index: number, outcome: StatementOutcome): Promise<void> | undefined {
    const live = this.live;
    if (index >= this.count || !live || this.reported?.[index]) return undefined;
    this.mark(index);
    return this.auditor.reportEnded(live, index, outcome, performance.now() - this.started, this.tool, this.onWrite);
  }

  skip(): void {
    this.reported?.fill(true);
    this.left = 0;
    this.live = undefined;
  }

  end(): void {
    for (let i = 0; i < this.count && this.live; i++) {
      if (this.reported?.[i]) continue;
      const live = this.live;
      this.mark(i);
      this.auditor.reportNotExecuted(live, i, performance.now() - this.started, this.tool);
    }
    this.live = undefined;
  }

  private mark(index: number): void {
    if (this.reported) this.reported[index] = true;
    if (--this.left === 0) this.live = undefined;
  }
}

