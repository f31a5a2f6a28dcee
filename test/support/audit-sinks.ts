// In-process audit sinks for tests: they record what they persist and can be made to fail or to hold a batch.
import type { AuditEvent } from '../../src/audit/event';
import type { AuditSink } from '../../src/audit/sink';

export class MemorySink implements AuditSink {
  readonly events: AuditEvent[] = [];
  /** Every write attempted, successful or not, by batch size. */
  readonly attempts: number[] = [];
  down = false;
  closed = false;
  private gate?: Promise<void>;
  private release?: () => void;

  constructor(readonly name = 'memory') {}

  /** Holds every write until release() — an in-flight batch. */
  hold(): void {
    this.gate = new Promise((resolve) => (this.release = resolve));
  }

  unhold(): void {
    this.release?.();
    this.gate = undefined;
  }

  /** Asynchronous like a real sink, even when not held. */
  protected async passGate(): Promise<void> {
    await (this.gate ?? Promise.resolve());
  }

  async write(batch: readonly AuditEvent[]): Promise<void> {
    this.attempts.push(batch.length);
    await this.passGate();
    if (this.down) throw Object.assign(new Error('sink is down'), { code: 'ECONNREFUSED' });
    this.events.push(...batch);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** A sink with an open() step that fails while `down`. */
export class OpeningSink extends MemorySink {
  opens = 0;

  async open(): Promise<void> {
    this.opens++;
    if (this.down) throw new Error('cannot open');
  }
}

export async function until(condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * A sink that can defer persistence, like a file's fsync: a write with `sync` false leaves its
 * events written (`written`) but not persisted (`events`) until sync() or a write with `sync`.
 * While `syncDown`, sync() and syncing writes fail, and the sink is cut back to what it
 * persisted, as the file sink is.
 */
export class SyncingSink extends MemorySink {
  /** Written, persisted or not, in order. */
  written: AuditEvent[] = [];
  /** The `sync` flag of every write attempted, and 'sync' for every sync() attempted. */
  readonly calls: Array<boolean | 'sync'> = [];
  syncDown = false;

  override async write(batch: readonly AuditEvent[], sync = true): Promise<void> {
    this.calls.push(sync);
    this.attempts.push(batch.length);
    await this.passGate();
    if (this.down || (sync && this.syncDown)) return this.cutBack();
    this.written.push(...batch);
    if (sync) this.events.splice(0, this.events.length, ...this.written);
  }

  async sync(): Promise<void> {
    this.calls.push('sync');
    await this.passGate();
    if (this.syncDown) return this.cutBack();
    this.events.splice(0, this.events.length, ...this.written);
  }

  private cutBack(): never {
    this.written = [...this.events];
    throw Object.assign(new Error('fsync failed'), { code: 'EIO' });
  }
}
