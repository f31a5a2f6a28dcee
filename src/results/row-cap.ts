// The wire-side row cap: at most max_rows rows reach the agent, and a truncated result says so.
import { commandCompleteTag, type BackendFrame } from '../protocol/backend/framer';
import * as backend from '../protocol/backend/serializer';

/** Rows sent from one cursor over all its FETCHes: its results share one cap. */
export interface RowBudget {
  rows: number;
}

/** Counts the rows of one result; past the limit, rows are dropped and the completion says so. */
export class RowCap {
  rows = 0;
  truncated = false;

  /** `shared`: the cursor whose rows this result is one FETCH of; the limit is over all of them. */
  constructor(
    readonly limit: number | undefined,
    private readonly shared?: RowBudget,
  ) {}

  /** True when this DataRow may be forwarded. */
  admit(): boolean {
    if (this.limit !== undefined && (this.shared ?? this).rows >= this.limit) {
      this.truncated = true;
      return false;
    }
    this.rows++;
    if (this.shared) this.shared.rows++;
    return true;
  }

  /**
   * The bytes to send for the CommandComplete that ends the result: unchanged when nothing was
   * dropped; otherwise a NOTICE explaining the cut, then the tag: a SELECT's or FETCH's with the
   * count actually sent, a write's unchanged (its count is of rows written, which all were).
   */
  complete(frame: BackendFrame): Buffer {
    // The cut is told once, with the result it ended: an Execute of the portal again (done, no
    // rows) makes none.
    const truncated = this.truncated;
    this.truncated = false;
    if (!truncated) return frame.raw;
    const tag = commandCompleteTag(frame);
    const words = tag.split(' ');
    const read = words[0] === 'SELECT' || words[0] === 'FETCH';
    if (read) words[words.length - 1] = String(this.rows);
    return Buffer.concat([
      backend.noticeResponse({
        severity: 'NOTICE',
        code: '01000',
        message: read
          ? `result truncated to ${this.rows} rows: the policy allows at most ${this.limit} rows per ${this.shared ? 'cursor' : 'statement'}`
          : `RETURNING truncated to ${this.rows} rows: the policy allows at most ${this.limit} rows per statement; all ${words[words.length - 1]} rows were written`,
        hint: read
          ? 'Add a narrower WHERE clause, aggregate in SQL (count, sum, GROUP BY), or page with ORDER BY … LIMIT/OFFSET.'
          : 'The write itself is complete. To see the changed rows, SELECT them in pages with ORDER BY … LIMIT/OFFSET, or write fewer rows per statement.',
        routine: 'ormai.rows_truncated',
      }),
      backend.commandComplete(words.join(' ')),
    ]);
  }
}
