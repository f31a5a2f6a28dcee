// The FIFO of requests forwarded upstream whose responses have not all arrived yet.
//
// Each item says which upstream message completes it, so that responses can be
// attributed to the statement that caused them (error substitution for refused
// statements now; row caps, masking and audit rows later).
import type { ProxyError } from '../errors/catalogue';

export type PendingKind = 'query' | 'parse' | 'bind' | 'describe' | 'execute' | 'close' | 'sync';

export interface PendingItem {
  kind: PendingKind;
  /** Set when the proxy refused the statement: the upstream error is replaced by this one. */
  refused?: ProxyError;
  /** Rows seen so far (DataRow messages). */
  rows: number;
}

export class PendingQueue {
  private items: PendingItem[] = [];
  private head = 0;
  /** After an extended-protocol error the upstream discards everything up to Sync. */
  private skipping = false;

  push(kind: PendingKind, refused?: ProxyError): void {
    if (kind === 'sync') this.skipping = false;
    else if (this.skipping) return;
    this.items.push({ kind, refused, rows: 0 });
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
