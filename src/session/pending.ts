// The FIFO of requests forwarded upstream whose responses have not all arrived yet.
//
// Each item says which upstream message completes it, so that responses can be
// attributed to the statement that caused them: error substitution for refused
// statements, row caps per result, and (later) audit rows.
import type { ProxyError } from '../errors/catalogue';
import type { RowCap } from '../results/row-cap';

export type PendingKind = 'query' | 'parse' | 'bind' | 'describe' | 'execute' | 'close' | 'sync';

export interface PendingItem {
  kind: PendingKind;
  /** Set when the proxy refused the request: the upstream error is replaced by this one. */
  refused?: ProxyError;
  /** query: the row limit of each statement, in order; execute: the portal's cap. */
  rowLimits?: Array<number | undefined>;
  cap?: RowCap;
  /** query and parse: the text sent upstream and the agent's, when they differ (error positions are moved). */
  texts?: { sent: string; agent: string };
  /** query, parse and execute of a write: the database's errors are reduced (results/write-errors.ts). */
  write?: boolean;
  /** query: index of the statement whose result is arriving. */
  result: number;
}

export class PendingQueue {
  private items: PendingItem[] = [];
  private head = 0;
  /** After an extended-protocol error the upstream discards everything up to Sync. */
  private skipping = false;

  push(item: Omit<PendingItem, 'result'>): void {
    if (item.kind === 'sync') this.skipping = false;
    else if (this.skipping) return;
    this.items.push({ ...item, result: 0 });
  }

  peek(): PendingItem | undefined {
    return this.items[this.head];
  }

  shift(): PendingItem | undefined {
    const item = this.items[this.head];
    if (item === undefined) return undefined;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** The upstream reported an error for an extended-protocol message: drop what it will skip. */
  skipToSync(): void {
    while (this.head < this.items.length && this.items[this.head].kind !== 'sync') this.head++;
    if (this.head >= this.items.length) this.skipping = true;
  }

  get size(): number {
    return this.items.length - this.head;
  }
}
